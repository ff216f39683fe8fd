// CSV reader: leading "# panelboot" note lines, then a header row; comma, semicolon or tab (detected
// from the header); RFC 4180 quotes (doubled quotes inside, newlines inside quotes); missing as
// empty, NA or '.'. One pass parses numbers with fast_float: a record of plain numbers straight
// from the text (plain_numeric_record), any other through the tokenizer's fields. A column that
// meets text becomes a text column, and only those columns are read a second time, as text.
#include <fast_float/fast_float.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cmath>
#include <deque>
#include <exception>
#include <limits>
#include <string_view>
#include <unordered_map>

#include "encoding.hpp"
#include "input_file.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/error.hpp"
#include "panelboot/text.hpp"

namespace panelboot {
namespace {

// Splits records; fields are views into the text, or into scratch_ when unescaping was needed.
// The first position at or after p holding the delimiter or a newline (n if none): 16 bytes at a
// time with SSE2 where the build has it, then byte by byte.
inline std::size_t field_end(const char* s, std::size_t p, std::size_t n, char delim) {
#if defined(__SSE2__)
  const __m128i d = _mm_set1_epi8(delim), nl = _mm_set1_epi8('\n');
  for (; p + 16 <= n; p += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + p));
    const int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, d), _mm_cmpeq_epi8(x, nl)));
    if (m) return p + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(m)));
  }
#endif
  while (p < n && s[p] != delim && s[p] != '\n') ++p;
  return p;
}

class Tokenizer {
 public:
  Tokenizer(std::string_view text, char delim, const std::string& source, std::uint32_t first_line = 1)
      : text_(text), delim_(delim), source_(source), line_(first_line) {}

  // Where the next record starts, its line; resume_after moves past a record read elsewhere.
  std::size_t position() const { return pos_; }
  std::uint32_t line() const { return line_; }
  void resume_after(std::size_t next_record, std::size_t records = 1) {
    pos_ = next_record;
    line_ += static_cast<std::uint32_t>(records);
  }

  // Reads the next non-blank record into fields; false at end of input.
  bool next(std::vector<std::string_view>& fields, std::uint32_t& record_line) {
    for (;;) {
      if (pos_ >= text_.size()) return false;
      // skip blank lines
      std::size_t p = pos_;
      while (p < text_.size() && (text_[p] == ' ' || text_[p] == '\r')) ++p;
      if (p < text_.size() && text_[p] == '\n') {
        pos_ = p + 1;
        ++line_;
        continue;
      }
      if (p >= text_.size()) {
        pos_ = p;
        return false;
      }
      break;
    }
    fields.clear();
    scratch_used_ = 0;
    record_line = line_;
    for (;;) {
      // one field
      std::size_t p = pos_;
      while (p < text_.size() && text_[p] == ' ') ++p;
      if (p < text_.size() && text_[p] == '"') {
        ++p;
        std::size_t start = p;
        bool escaped = false;
        for (;;) {
          if (p >= text_.size())
            throw InvalidInput("file '" + source_ + "', line " + std::to_string(record_line) +
                               ": a quoted field is never closed; check the quotes");
          if (text_[p] == '"') {
            if (p + 1 < text_.size() && text_[p + 1] == '"') {
              escaped = true;
              p += 2;
              continue;
            }
            break;
          }
          if (text_[p] == '\n') ++line_;
          ++p;
        }
        std::string_view raw = text_.substr(start, p - start);
        ++p;  // closing quote
        while (p < text_.size() && (text_[p] == ' ' || text_[p] == '\r')) ++p;
        if (escaped) {
          if (scratch_used_ == scratch_.size()) scratch_.emplace_back();
          std::string& s = scratch_[scratch_used_++];
          s.clear();
          for (std::size_t i = 0; i < raw.size(); ++i) {
            s.push_back(raw[i]);
            if (raw[i] == '"') ++i;
          }
          fields.emplace_back(s);
        } else {
          fields.push_back(raw);
        }
        pos_ = p;
      } else {
        std::size_t start = p;
        p = field_end(text_.data(), p, text_.size(), delim_);
        std::size_t end = p;
        while (end > start && (text_[end - 1] == ' ' || text_[end - 1] == '\r')) --end;
        fields.push_back(text_.substr(start, end - start));
        pos_ = p;
      }
      if (pos_ >= text_.size()) return true;
      if (text_[pos_] == delim_) {
        ++pos_;
        continue;
      }
      if (text_[pos_] == '\n') {
        ++pos_;
        ++line_;
        return true;
      }
      throw InvalidInput("file '" + source_ + "', line " + std::to_string(line_) +
                         ": unexpected text after a closing quote");
    }
  }

 private:
  std::string_view text_;
  char delim_;
  const std::string& source_;
  std::size_t pos_ = 0;
  std::uint32_t line_ = 1;
  // Unescaped copies of quoted fields with "" in them; a deque, so that adding one never moves
  // the strings earlier fields of the record point into.
  std::deque<std::string> scratch_{8};
  std::size_t scratch_used_ = 0;
};

// The rows to reserve for, from the newlines in the first MiB (all of a smaller file) scaled to the
// whole, with 2% to spare: counting every newline of a large file costs a pass over it, and a
// short guess only makes the columns grow once more.
std::size_t estimated_rows(std::string_view text) {
  constexpr std::size_t kSample = std::size_t{1} << 20;
  const std::string_view head = text.substr(0, kSample);
  const auto lines = static_cast<std::size_t>(std::count(head.begin(), head.end(), '\n'));
  if (head.size() == text.size()) return lines + 1;
  const double per_byte = static_cast<double>(lines + 1) / static_cast<double>(head.size());
  return static_cast<std::size_t>(per_byte * 1.02 * static_cast<double>(text.size())) + 16;
}

bool is_missing(std::string_view f) { return f.empty() || f == "NA" || f == "."; }

// One record of plain numbers, the common case ("1.5,-2,,3e-4\n"): parsed straight from the text
// into `values` (NaN for an empty field) with the same fast_float call the tokenizer's path makes,
// and `pos` moved past its newline. False, with nothing consumed, at anything else: quotes, blanks,
// text, NA or '.', a value that is not finite, another number of fields, a blank line. The
// tokenizer then reads that record by the full rules, so both paths give the same frame.
bool plain_numeric_record(std::string_view text, std::size_t& pos, char delim, std::size_t n_col,
                          double* values) {
  const char* s = text.data();
  const std::size_t n = text.size();
  std::size_t p = pos;
  for (std::size_t j = 0; j < n_col; ++j) {
    if (p < n && (s[p] == delim || s[p] == '\n' || s[p] == '\r')) {
      if (j == 0 && s[p] != delim) return false;  // a blank line: the tokenizer skips it
      values[j] = std::numeric_limits<double>::quiet_NaN();
    } else {
      const char* b = s + p + (p < n && s[p] == '+');
      const auto r = fast_float::from_chars(b, s + n, values[j]);
      if (r.ec != std::errc() || r.ptr == b || !std::isfinite(values[j])) return false;
      p = static_cast<std::size_t>(r.ptr - s);
    }
    if (j + 1 < n_col) {
      if (p >= n || s[p] != delim) return false;
      ++p;
    }
  }
  if (n_col == 0) return false;
  if (p < n && s[p] == '\r' && p + 1 < n && s[p + 1] == '\n') ++p;
  if (p < n && s[p] != '\n') return false;
  pos = p < n ? p + 1 : p;
  return true;
}

// Rows below which copying a stretch's columns into the frame starts no thread team.
[[maybe_unused]] constexpr std::size_t kMinTeamRows = 1 << 16;

// The plain numeric records of one stretch of the text, read ahead of the sequential pass and in
// parallel with the other stretches. A stretch begins just after a newline; whether that is where
// a record begins (and not inside a quoted field) is known only when the sequential pass gets
// there: it takes the stretch's rows if it arrives exactly at `begin`, and drops them otherwise.
struct PlainStretch {
  std::size_t begin = 0, end = 0;  // its bytes: from just after a newline to the next stretch
  std::size_t stop = 0;            // the first byte not read: `end`, or a record that is not plain
  std::size_t rows = 0;
  std::vector<std::vector<double>> values;  // by column; the first stretch's go into the frame
  std::vector<std::size_t> numeric;         // by column, the fields that are not empty
};

// Reads plain records from s.begin while they last, up to s.end, appending to `columns`. The
// columns and counts are the thread's own while it reads (moved in and out), so that no cache line
// it writes is shared with another thread's stretch.
void read_plain_stretch(std::string_view text, char delim,
                        const std::vector<std::vector<double>*>& columns, PlainStretch& s) {
  const std::size_t n_col = columns.size();
  std::vector<std::vector<double>> own(n_col);
  for (std::size_t j = 0; j < n_col; ++j) own[j] = std::move(*columns[j]);
  std::vector<double> record(n_col);
  std::vector<std::size_t> numeric(n_col, 0);
  std::size_t pos = s.begin, rows = 0;
  while (pos < s.end) {
    std::size_t next = pos;
    if (!plain_numeric_record(text, next, delim, n_col, record.data())) break;
    for (std::size_t j = 0; j < n_col; ++j) {
      own[j].push_back(record[j]);
      numeric[j] += !std::isnan(record[j]);
    }
    pos = next;
    ++rows;
  }
  for (std::size_t j = 0; j < n_col; ++j) *columns[j] = std::move(own[j]);
  s.numeric = std::move(numeric);
  s.rows = rows;
  s.stop = pos;
}

// The text from `start` cut into stretches at newlines, one a thread (opts.stretches when set),
// each at least opts.min_stretch_bytes long: a thread team costs milliseconds, a small file
// micro-seconds.
std::vector<PlainStretch> plain_stretches(std::string_view text, std::size_t start,
                                          const CsvOptions& opts) {
  const std::size_t bytes = text.size() - start;
#ifdef _OPENMP
  const std::size_t threads = static_cast<std::size_t>(omp_get_max_threads());
#else
  const std::size_t threads = 1;
#endif
  const std::size_t wanted = opts.stretches ? opts.stretches : threads;
  const std::size_t count = std::max<std::size_t>(
      1, std::min(wanted, bytes / std::max<std::size_t>(opts.min_stretch_bytes, 1)));
  std::vector<PlainStretch> out;
  std::size_t begin = start;
  for (std::size_t k = 1; k <= count && begin < text.size(); ++k) {
    std::size_t end = text.size();
    if (k < count) {
      const std::size_t nl = text.find('\n', start + bytes / count * k);
      end = nl == std::string_view::npos ? text.size() : nl + 1;
    }
    if (end <= begin) continue;
    PlainStretch s;
    s.begin = begin;
    s.end = end;
    out.push_back(std::move(s));
    begin = end;
  }
  return out;
}

// Reads every stretch, the first into the frame's columns (reserved for the whole file) and each
// other into its own, all at once. The stretches' columns are reserved here, by the calling
// thread, so that their memory comes from its heap and serves its later allocations once freed.
void read_plain_stretches(std::string_view text, char delim, DataFrame& df,
                          std::vector<PlainStretch>& stretches) {
  const std::size_t n_col = df.columns.size();
  for (std::size_t k = 1; k < stretches.size(); ++k) {
    PlainStretch& s = stretches[k];
    s.values.resize(n_col);
    const std::size_t rows = estimated_rows(text.substr(s.begin, s.end - s.begin));
    for (std::vector<double>& v : s.values) v.reserve(rows);
  }
  std::vector<std::exception_ptr> failed(stretches.size());
#pragma omp parallel for schedule(dynamic, 1) if (stretches.size() > 1)
  for (std::ptrdiff_t k = 0; k < static_cast<std::ptrdiff_t>(stretches.size()); ++k) {
    PlainStretch& s = stretches[static_cast<std::size_t>(k)];
    try {
      std::vector<std::vector<double>*> columns(n_col);
      if (k == 0) {
        for (std::size_t j = 0; j < n_col; ++j) columns[j] = &df.columns[j].num;
      } else {
        for (std::size_t j = 0; j < n_col; ++j) columns[j] = &s.values[j];
      }
      read_plain_stretch(text, delim, columns, s);
    } catch (...) {
      failed[static_cast<std::size_t>(k)] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : failed)
    if (e) std::rethrow_exception(e);
}

// Adds a stretch's rows to the frame: their lines follow `first_line` one a row. The columns (and
// the line numbers) are copied in parallel: the copies fault in the frame's new pages.
void take_plain_stretch(PlainStretch& s, bool first, std::uint32_t first_line, DataFrame& df) {
  const std::size_t n_col = df.columns.size();
  std::vector<std::exception_ptr> failed(n_col + 1);
#pragma omp parallel for schedule(dynamic, 1) if (!first && s.rows >= kMinTeamRows)
  for (std::ptrdiff_t t = 0; t <= static_cast<std::ptrdiff_t>(n_col); ++t) {
    const std::size_t j = static_cast<std::size_t>(t);
    try {
      if (j == n_col) {
        for (std::size_t i = 0; i < s.rows; ++i)
          df.row_line.push_back(first_line + static_cast<std::uint32_t>(i));
      } else if (!first) {
        df.columns[j].num.insert(df.columns[j].num.end(), s.values[j].begin(), s.values[j].end());
        std::vector<double>().swap(s.values[j]);
      }
    } catch (...) {
      failed[j] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : failed)
    if (e) std::rethrow_exception(e);
  for (std::size_t j = 0; j < n_col; ++j) df.columns[j].n_numeric_fields += s.numeric[j];
}

// Parses a whole field as a number; false if it is not one.
bool parse_number(std::string_view f, double& out) {
  const char* b = f.data();
  const char* e = b + f.size();
  if (b != e && *b == '+') ++b;
  auto res = fast_float::from_chars(b, e, out);
  return res.ec == std::errc() && res.ptr == e;
}

char detect_delimiter(std::string_view text) {
  std::size_t counts[3] = {0, 0, 0};
  const char cands[3] = {',', ';', '\t'};
  bool in_quote = false;
  for (char ch : text) {
    if (ch == '"') in_quote = !in_quote;
    if (in_quote) continue;
    if (ch == '\n') break;
    for (int k = 0; k < 3; ++k)
      if (ch == cands[k]) ++counts[k];
  }
  int best = 0;
  for (int k = 1; k < 3; ++k)
    if (counts[k] > counts[best]) best = k;
  return cands[best];
}

// The blank-separated fields of one line (spaces, tabs, a CR before the newline).
std::vector<std::string_view> blank_separated(std::string_view line) {
  std::vector<std::string_view> out;
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  for (std::size_t i = 0; i < line.size();) {
    while (i < line.size() && blank(line[i])) ++i;
    const std::size_t start = i;
    while (i < line.size() && !blank(line[i])) ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

// The first `n` lines that are not blank.
std::vector<std::string_view> first_lines(std::string_view text, std::size_t n) {
  std::vector<std::string_view> out;
  for (std::size_t pos = 0; pos < text.size() && out.size() < n;) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view line = text.substr(pos, end - pos);
    if (!blank_separated(line).empty()) out.push_back(line);
    pos = end + 1;
  }
  return out;
}

// A file laid out in columns separated by runs of blanks (Hansen's invest.dat, GAUSS or Fortran
// output) reads as one text column without a word, and the user meets it later as an unknown
// variable; say at once what happened and how to convert the file.
void warn_if_blank_separated(std::string_view text, DataFrame& df) {
  const std::vector<std::string_view> lines = first_lines(text, 2);
  if (lines.size() < 2) return;
  const std::vector<std::string_view> header = blank_separated(lines[0]);
  if (header.size() < 2 || blank_separated(lines[1]).size() != header.size()) return;
  double v;
  const bool no_header =
      std::all_of(header.begin(), header.end(), [&](std::string_view f) { return parse_number(f, v); });
  const std::string n = std::to_string(header.size());
  std::string w = "file '" + df.source + "' reads as one column: its lines hold " + n +
                  " fields separated by spaces, but panelboot reads comma-, semicolon- or "
                  "tab-delimited text";
  if (no_header) w += ", and it has no header row (its first line holds numbers)";
  w += "; convert it, e.g. sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//; s/[[:space:]]+/,/g' " +
       df.source + " > converted.csv";
  if (no_header) w += ", then add a first line naming the " + n + " columns";
  df.warnings.push_back(w);
}

}  // namespace

// Lines before the header that start with "# panelboot" are panelboot's notes (the first line of
// power's --save-replication files): removed from `text`; returns the number of the header line.
// Any other line is data: a header may itself begin with '#'.
std::uint32_t skip_leading_comments(std::string_view& text) {
  constexpr std::string_view kNote = "# panelboot";
  std::uint32_t line = 1;
  while (text.substr(0, kNote.size()) == kNote) {
    const std::size_t nl = text.find('\n');
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line;
  }
  return line;
}

// Thrown by parse_csv on the first bytes that are not UTF-8: read_csv_text starts again on the
// text read as Windows-1252.
struct NotUtf8 {};

// Throws NotUtf8 unless `span` is UTF-8 (a no-op for text already decoded).
void require_utf8(std::string_view span, bool check) {
  if (check && !is_utf8_text(span)) throw NotUtf8{};
}

// The frame of UTF-8 text, or NotUtf8 (when `check_utf8`) at the first record, header or note line
// that is not UTF-8. Only what the tokenizer reads is checked: a record of plain numbers (the fast
// path) is ASCII by construction, so a large numeric file is not read once more for the check.
DataFrame parse_csv(std::string_view text, const std::string& source, const CsvOptions& opts, bool check_utf8) {
  DataFrame df;
  df.source = source;
  const std::string_view with_notes = text;
  const std::uint32_t first_line = skip_leading_comments(text);
  const char delim = opts.delimiter ? opts.delimiter : detect_delimiter(text);
  Tokenizer tok(text, delim, source, first_line);
  std::vector<std::string_view> fields;
  std::uint32_t line = 0;
  const bool has_header = tok.next(fields, line);
  require_utf8(with_notes.substr(0, with_notes.size() - text.size() + tok.position()), check_utf8);
  if (!has_header)
    throw InvalidInput("file '" + source + "' is empty; it needs a header row naming the columns");
  std::unordered_map<std::string, int> seen;
  for (std::size_t j = 0; j < fields.size(); ++j) {
    Column c;
    c.name = std::string(fields[j]);
    if (c.name.empty()) c.name = "V" + std::to_string(j + 1);
    if (seen.count(c.name))
      throw InvalidInput("file '" + source + "', line " + std::to_string(line) + ", column " +
                         std::to_string(j + 1) + ": duplicate column name " + quoted(c.name) +
                         "; rename one of them");
    seen[c.name] = 1;
    df.columns.push_back(std::move(c));
  }
  const std::size_t n_col = df.columns.size();
  if (n_col == 1 && !opts.delimiter) warn_if_blank_separated(text, df);
  const std::size_t approx_rows = estimated_rows(text);
  for (auto& c : df.columns) c.num.reserve(approx_rows + 1);
  df.row_line.reserve(approx_rows + 1);

  auto where = [&](std::uint32_t ln, std::size_t j) {
    return "file '" + source + "', line " + std::to_string(ln) + ", column " +
           std::to_string(j + 1) + " (" + printable(df.columns[j].name) + ")";
  };
  bool any_text = false;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> plain(n_col);
  std::vector<PlainStretch> stretches;
  if (opts.plain_records && n_col > 0) {
    stretches = plain_stretches(text, tok.position(), opts);
    read_plain_stretches(text, delim, df, stretches);
  }
  std::size_t next_stretch = 0;
  for (;;) {
    if (next_stretch < stretches.size() && tok.position() >= stretches[next_stretch].begin) {
      PlainStretch& s = stretches[next_stretch];
      if (tok.position() == s.begin && !any_text) {  // a record begins there: its rows stand
        take_plain_stretch(s, next_stretch == 0, tok.line(), df);
        tok.resume_after(s.stop, s.rows);
      }
      std::vector<std::vector<double>>().swap(s.values);  // taken or dropped, its copy is done with
      ++next_stretch;
      continue;
    }
    std::size_t next = tok.position();
    if (opts.plain_records && !any_text && plain_numeric_record(text, next, delim, n_col, plain.data())) {
      df.row_line.push_back(tok.line());
      tok.resume_after(next);
      for (std::size_t j = 0; j < n_col; ++j) {
        df.columns[j].num.push_back(plain[j]);
        df.columns[j].n_numeric_fields += !std::isnan(plain[j]);
      }
      continue;
    }
    const bool more = tok.next(fields, line);
    require_utf8(text.substr(next, tok.position() - next), check_utf8);  // next: where it began
    if (!more) break;
    if (fields.size() != n_col)
      throw InvalidInput("file '" + source + "', line " + std::to_string(line) + ": expected " +
                         std::to_string(n_col) + " fields as in the header, found " +
                         std::to_string(fields.size()) + "; check delimiters and quotes");
    df.row_line.push_back(line);
    for (std::size_t j = 0; j < n_col; ++j) {
      Column& c = df.columns[j];
      const std::string_view f = fields[j];
      if (is_missing(f)) {
        if (!c.is_string()) c.num.push_back(nan);
        continue;
      }
      double v;
      if (parse_number(f, v)) {
        ++c.n_numeric_fields;
        if (!c.is_string()) {
          if (!std::isfinite(v) && c.first_nonfinite_where.empty()) {
            c.first_nonfinite_where = where(line, j);
            c.first_nonfinite_value = std::string(f);
          }
          c.num.push_back(v);
        }
        continue;
      }
      ++c.n_text_fields;
      if (!c.is_string()) {
        c.type = Column::Type::kString;
        c.first_text_where = where(line, j);
        c.first_text_value = std::string(f);
        std::vector<double>().swap(c.num);
        any_text = true;
      }
    }
  }
  if (any_text) {
    // Second pass, text columns only: factorize in order of first appearance.
    std::vector<std::unordered_map<std::string, std::int32_t>> index(n_col);
    for (auto& c : df.columns)
      if (c.is_string()) c.codes.reserve(df.row_line.size());
    Tokenizer tok2(text, delim, source, first_line);
    tok2.next(fields, line);  // header
    while (tok2.next(fields, line)) {
      for (std::size_t j = 0; j < n_col; ++j) {
        Column& c = df.columns[j];
        if (!c.is_string()) continue;
        if (is_missing(fields[j])) {
          c.codes.push_back(-1);
          continue;
        }
        std::string key(fields[j]);
        auto it = index[j].find(key);
        if (it == index[j].end()) {
          it = index[j].emplace(key, static_cast<std::int32_t>(c.levels.size())).first;
          c.levels.push_back(key);
        }
        c.codes.push_back(it->second);
      }
    }
  }
  return df;
}

DataFrame read_csv_text(std::string_view text, const std::string& source, const CsvOptions& opts) {
  if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF &&
      static_cast<unsigned char>(text[1]) == 0xBB && static_cast<unsigned char>(text[2]) == 0xBF)
    text.remove_prefix(3);
  // Text that is not UTF-8 is read as Windows-1252, all of it, with one warning. A delimiter byte
  // outside ASCII would make plain records non-ASCII: then the whole text is checked first.
  const auto as_windows1252 = [&] {
    const std::string decoded = cp1252_to_utf8(text);
    DataFrame df = parse_csv(decoded, source, opts, false);
    df.warnings.insert(df.warnings.begin(), read_as_windows1252_warning(source));
    return df;
  };
  if ((static_cast<unsigned char>(opts.delimiter) & 0x80) && !is_utf8_text(text)) return as_windows1252();
  try {
    return parse_csv(text, source, opts, true);
  } catch (const NotUtf8&) {
    return as_windows1252();
  } catch (const InvalidInput&) {
    if (is_utf8_text(text)) throw;  // an error in UTF-8 text; else the Windows-1252 reading's own
    return as_windows1252();
  }
}

DataFrame read_csv_file(InputFile& in, std::string head, const CsvOptions& opts) {
  if (in.is_regular() && in.size() > 0) {  // parsed where the page cache holds it: no copy
    const MappedFile mapped(in);
    return read_csv_text(mapped.text(), in.shown(), opts);
  }
  // a pipe, or a size of 0 that may be a /proc file with text all the same: read to its end
  in.read_into(head, InputFile::kAll);
  return read_csv_text(head, in.shown(), opts);
}

DataFrame read_csv(const std::string& path, const CsvOptions& opts) {
  InputFile in(path);
  return read_csv_file(in, {}, opts);
}

}  // namespace panelboot
