// Stata .dta input through ReadStat (optional at build time). ReadStat's handlers get no
// exceptions through C, so a handler that finds a problem keeps the message and aborts the parse;
// parse_dta raises it afterwards. Nothing ReadStat hands over is trusted blindly: names may be
// NULL, string values NULL, the header's row count wrong.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string_view>
#include <unordered_map>

#include "panelboot/config.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/error.hpp"
#include "panelboot/text.hpp"

#include "encoding.hpp"
#include "input_file.hpp"

#if PANELBOOT_HAVE_READSTAT
#include "readstat_api.hpp"
#endif

namespace panelboot {

#if PANELBOOT_HAVE_READSTAT
namespace {

struct DtaContext {
  const ReadStat& rs;
  DataFrame* df;
  std::size_t file_size;  // bounds the rows reserved: a damaged header must not allocate gigabytes
  std::vector<std::unordered_map<std::string, std::int32_t>> level_index;
  std::unordered_map<std::string, int> name_index;
  std::size_t rows_to_reserve = 0;
  std::string error;  // set by the handler that aborted the parse
};

int abort_with(DtaContext& ctx, const std::string& problem) {
  ctx.error = "file '" + ctx.df->source + "': " + problem +
              "; the file is damaged or was not written by Stata: save it from Stata again, or "
              "export the data to CSV";
  return READSTAT_HANDLER_ABORT;
}

int on_metadata(readstat_metadata_t* meta, void* ctx_ptr) {
  auto& ctx = *static_cast<DtaContext*>(ctx_ptr);
  const ReadStat& rs = ctx.rs;
  // -1 when unknown; each row of each variable takes at least one byte of the file
  const long long rows = rs.get_row_count(meta);
  const long long vars = std::max(1, rs.get_var_count(meta));
  const long long fit = static_cast<long long>(ctx.file_size) / vars;
  ctx.rows_to_reserve = rows > 0 ? static_cast<std::size_t>(std::min(rows, fit)) : 0;
  return READSTAT_HANDLER_OK;
}

int on_variable(int index, readstat_variable_t* var, const char*, void* ctx_ptr) {
  auto& ctx = *static_cast<DtaContext*>(ctx_ptr);
  const ReadStat& rs = ctx.rs;
  const std::string position = "variable " + std::to_string(index + 1);
  if (static_cast<std::size_t>(index) != ctx.df->columns.size())
    return abort_with(ctx, position + " came out of order");
  const char* name = rs.variable_get_name(var);  // NULL when the name is empty
  if (!name || !*name) return abort_with(ctx, position + " has an empty name");
  const auto seen = ctx.name_index.emplace(name, index + 1);
  if (!seen.second)
    return abort_with(ctx, position + " has the name " + quoted(name) + " of variable " +
                               std::to_string(seen.first->second));
  Column c;
  c.name = name;
  if (rs.variable_get_type_class(var) == READSTAT_TYPE_CLASS_STRING) {
    c.type = Column::Type::kString;
    c.codes.reserve(ctx.rows_to_reserve);
  } else {
    c.num.reserve(ctx.rows_to_reserve);
  }
  ctx.df->columns.push_back(std::move(c));
  ctx.level_index.emplace_back();
  return READSTAT_HANDLER_OK;
}

void add_text_value(DtaContext& ctx, Column& c, std::size_t j, const char* s) {
  if (!s || !*s) {  // NULL: a missing or binary strL
    c.codes.push_back(-1);
    return;
  }
  auto& idx = ctx.level_index[j];
  auto it = idx.find(s);
  if (it == idx.end()) {
    it = idx.emplace(s, static_cast<std::int32_t>(c.levels.size())).first;
    c.levels.emplace_back(s);
  }
  c.codes.push_back(it->second);
  ++c.n_text_fields;
}

double numeric_value(const ReadStat& rs, readstat_value_t value) {
  switch (rs.value_type(value)) {
    case READSTAT_TYPE_INT8:
      return rs.int8_value(value);
    case READSTAT_TYPE_INT16:
      return rs.int16_value(value);
    case READSTAT_TYPE_INT32:
      return rs.int32_value(value);
    case READSTAT_TYPE_FLOAT:
      return rs.float_value(value);
    case READSTAT_TYPE_DOUBLE:
      return rs.double_value(value);
    default: return std::numeric_limits<double>::quiet_NaN();
  }
}

int on_value(int obs, readstat_variable_t* var, readstat_value_t value, void* ctx_ptr) {
  auto& ctx = *static_cast<DtaContext*>(ctx_ptr);
  const ReadStat& rs = ctx.rs;
  const int j = rs.variable_get_index(var);
  if (j < 0 || static_cast<std::size_t>(j) >= ctx.df->columns.size())
    return abort_with(ctx, "a value of undeclared variable " + std::to_string(j + 1));
  Column& c = ctx.df->columns[static_cast<std::size_t>(j)];
  if (j == 0) ctx.df->row_line.push_back(static_cast<std::uint32_t>(obs + 1));
  const bool missing = rs.value_is_missing(value, var);
  if (c.is_string()) {
    add_text_value(ctx, c, static_cast<std::size_t>(j), missing ? nullptr : rs.string_value(value));
    return READSTAT_HANDLER_OK;
  }
  ++c.n_numeric_fields;
  c.num.push_back(missing ? std::numeric_limits<double>::quiet_NaN() : numeric_value(rs, value));
  return READSTAT_HANDLER_OK;
}

// Stata 14 and later (formats 118, 119) store UTF-8, and ReadStat hands their bytes on unchecked
// (it converts the Windows-1252 of older formats itself); a file from other software may hold
// Windows-1252 there. Then all its text is read as Windows-1252, which keeps distinct levels
// distinct (byte by byte, one code point each), and the user is told once.
void decode_windows1252_unless_utf8(DataFrame& df) {
  const auto utf8 = [](const std::string& s) { return valid_utf8(s); };
  const bool all_utf8 = std::all_of(df.columns.begin(), df.columns.end(), [&](const Column& c) {
    return utf8(c.name) && std::all_of(c.levels.begin(), c.levels.end(), utf8);
  });
  if (all_utf8) return;
  for (Column& c : df.columns) {
    c.name = cp1252_to_utf8(c.name);
    for (std::string& level : c.levels) level = cp1252_to_utf8(level);
  }
  df.warnings.push_back(read_as_windows1252_warning(df.source));
}

// Every column must hold one value per observation before anything indexes them by row.
void check_complete(const DataFrame& df) {
  for (std::size_t j = 0; j < df.columns.size(); ++j) {
    const Column& c = df.columns[j];
    const std::size_t n = c.is_string() ? c.codes.size() : c.num.size();
    if (n != df.n_rows())
      throw InvalidInput("file '" + df.source + "': variable " + std::to_string(j + 1) + " (" +
                         printable(c.name) + ") has " + std::to_string(n) + " values for " +
                         std::to_string(df.n_rows()) + " observations; the file is damaged");
  }
}

std::size_t file_size_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && st.st_size > 0 ? static_cast<std::size_t>(st.st_size) : 0;
}

using ParserPtr = std::unique_ptr<readstat_parser_t, decltype(ReadStat::parser_free)>;

ParserPtr make_parser(const ReadStat& rs) {
  ParserPtr parser(rs.parser_init(), rs.parser_free);
  if (!parser) throw std::bad_alloc();
  rs.set_metadata_handler(parser.get(), &on_metadata);
  rs.set_variable_handler(parser.get(), &on_variable);
  rs.set_value_handler(parser.get(), &on_value);
  return parser;
}

void raise_parse_error(readstat_error_t err, const DtaContext& ctx) {
  if (!ctx.error.empty()) throw InvalidInput(ctx.error);
  const char* why = ctx.rs.error_message(err);
  throw InvalidInput("cannot read Stata file '" + ctx.df->source + "': " + (why ? why : "unknown error") +
                     "; check the path given to --data and that it is a .dta file");
}

// ReadStat reading from memory, for a .dta that arrived on a pipe (which cannot seek).
struct MemoryFile {
  std::string_view bytes;
  readstat_off_t pos = 0;
};

int memory_open(const char*, void*) { return 0; }
int memory_close(void*) { return 0; }

readstat_off_t memory_seek(readstat_off_t offset, readstat_io_flags_t whence, void* io) {
  auto& f = *static_cast<MemoryFile*>(io);
  const auto size = static_cast<readstat_off_t>(f.bytes.size());
  const readstat_off_t base = whence == READSTAT_SEEK_SET ? 0 : whence == READSTAT_SEEK_CUR ? f.pos : size;
  if (offset < -base || offset > size - base) return -1;
  f.pos = base + offset;
  return f.pos;
}

ssize_t memory_read(void* buf, size_t n, void* io) {
  auto& f = *static_cast<MemoryFile*>(io);
  const std::size_t left = f.bytes.size() - static_cast<std::size_t>(f.pos);
  const std::size_t k = std::min(n, left);
  std::memcpy(buf, f.bytes.data() + f.pos, k);
  f.pos += static_cast<readstat_off_t>(k);
  return static_cast<ssize_t>(k);
}

readstat_error_t memory_update(long, readstat_progress_handler, void*, void*) { return READSTAT_OK; }

void read_from_memory(const ReadStat& rs, readstat_parser_t* parser, MemoryFile& file) {
  rs.set_open_handler(parser, &memory_open);
  rs.set_close_handler(parser, &memory_close);
  rs.set_seek_handler(parser, &memory_seek);
  rs.set_read_handler(parser, &memory_read);
  rs.set_update_handler(parser, &memory_update);
  rs.set_io_ctx(parser, &file);
}

// ReadStat (1.1.8) hands a text strL to the value handler as a C string without checking that the
// file stored its terminating NUL, so a damaged file sends strlen past the buffer. Before ReadStat
// parses a format 117-119 file, its strL section is walked here (the same offsets ReadStat uses:
// entry 10 of the <map>) and a text strL without its NUL refused. Anything else amiss is left to
// ReadStat, which reports it.
// Reads up to n bytes at offset; returns how many it read.
using ReadAt = std::function<std::size_t(std::uint64_t offset, char* buf, std::size_t n)>;

bool read_exactly(const ReadAt& read_at, std::uint64_t offset, char* buf, std::size_t n) {
  return read_at(offset, buf, n) == n;
}

std::uint64_t unsigned_at(const char* p, std::size_t n, bool big_endian) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto byte = static_cast<unsigned char>(p[big_endian ? i : n - 1 - i]);
    v = (v << 8) | byte;
  }
  return v;
}

struct StrlLayout {
  bool has_strls = false;
  bool big_endian = false;
  std::size_t o_bytes = 4;    // 4 in format 117, 8 from 118 on
  std::uint64_t offset = 0;  // of "<strls>"
};

StrlLayout strl_layout(const ReadAt& read_at) {
  StrlLayout layout;
  char head[1024];
  const std::string_view h(head, read_at(0, head, sizeof head));
  if (h.substr(0, 20) != "<stata_dta><header><") return layout;
  const std::size_t rel = h.find("<release>");
  const std::size_t order = h.find("<byteorder>");
  const std::size_t map = h.find("<map>");
  if (rel == std::string_view::npos || order == std::string_view::npos || map == std::string_view::npos)
    return layout;
  const std::string_view release = h.substr(rel + 9, 3);
  if (release != "117" && release != "118" && release != "119") return layout;
  layout.big_endian = h.substr(order + 11, 3) == "MSF";
  layout.o_bytes = release == "117" ? 4 : 8;
  char entry[8];
  if (!read_exactly(read_at, map + 5 + 10 * 8, entry, 8)) return layout;
  layout.offset = unsigned_at(entry, 8, layout.big_endian);
  char tag[7];
  layout.has_strls = read_exactly(read_at, layout.offset, tag, 7) && std::string_view(tag, 7) == "<strls>";
  return layout;
}

void check_strls_terminated(const ReadAt& read_at, const std::string& source) {
  const StrlLayout layout = strl_layout(read_at);
  if (!layout.has_strls) return;
  const std::size_t header_bytes = 3 + 4 + layout.o_bytes + 1 + 4;  // "GSO", v, o, t, len
  std::uint64_t pos = layout.offset + 7;
  for (std::uint64_t count = 1;; ++count) {
    char header[3 + 4 + 8 + 1 + 4];
    if (!read_exactly(read_at, pos, header, header_bytes) || std::string_view(header, 3) != "GSO") return;
    const char* p = header + 3;
    const std::uint64_t v = unsigned_at(p, 4, layout.big_endian);
    const std::uint64_t o = unsigned_at(p + 4, layout.o_bytes, layout.big_endian);
    const auto type = static_cast<unsigned char>(p[4 + layout.o_bytes]);
    const std::uint64_t len = unsigned_at(p + 4 + layout.o_bytes + 1, 4, layout.big_endian);
    pos += header_bytes;
    char last = 1;
    constexpr unsigned char kTextStrl = 130;
    if (type == kTextStrl && (len == 0 || (read_exactly(read_at, pos + len - 1, &last, 1) && last != '\0')))
      throw InvalidInput("file '" + source + "': long string (strL) " + std::to_string(count) +
                         " (variable " + std::to_string(v) + ", observation " + std::to_string(o) +
                         ") does not end where it says; the file is damaged or was not written by "
                         "Stata: save it from Stata again, or export the data to CSV");
    pos += len;
  }
}

ReadAt read_from_bytes(std::string_view bytes) {
  return [bytes](std::uint64_t offset, char* buf, std::size_t n) {
    if (offset >= bytes.size()) return std::size_t{0};
    n = std::min<std::size_t>(n, bytes.size() - offset);
    std::memcpy(buf, bytes.data() + offset, n);
    return n;
  };
}

void check_strls_terminated_in_file(const std::string& path, const std::string& source) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // ReadStat reports it
  const ReadAt read_at = [fd](std::uint64_t offset, char* buf, std::size_t n) {
    if (offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) return std::size_t{0};
    const ssize_t got = ::pread(fd, buf, n, static_cast<off_t>(offset));
    return got > 0 ? static_cast<std::size_t>(got) : std::size_t{0};
  };
  try {
    check_strls_terminated(read_at, source);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

// `path` is what ReadStat opens (ignored when reading from `memory`); `file_size` bounds the rows
// reserved.
DataFrame parse_dta(const std::string& path, std::size_t file_size, MemoryFile* memory) {
  DataFrame df;
  df.source = shown_path(path);
  df.row_unit = "observation";
  const ReadStat& rs = readstat(df.source);
  DtaContext ctx{rs, &df, file_size, {}, {}, 0, {}};
  if (memory)
    check_strls_terminated(read_from_bytes(memory->bytes), df.source);
  else
    check_strls_terminated_in_file(path, df.source);
  ParserPtr parser = make_parser(rs);
  if (memory) read_from_memory(rs, parser.get(), *memory);
  const readstat_error_t err = rs.parse_dta(parser.get(), path.c_str(), &ctx);
  if (err != READSTAT_OK || !ctx.error.empty()) raise_parse_error(err, ctx);
  check_complete(df);
  decode_windows1252_unless_utf8(df);
  return df;
}

}  // namespace

DataFrame read_dta(const std::string& path) { return parse_dta(path, file_size_of(path), nullptr); }

DataFrame read_dta_bytes(const std::string& bytes, const std::string& source_name) {
  MemoryFile memory{bytes};
  return parse_dta(source_name, bytes.size(), &memory);
}
#else
DataFrame read_dta_bytes(const std::string&, const std::string& source_name) { return read_dta(source_name); }

DataFrame read_dta(const std::string& path) {
  throw NotCompiled("cannot read '" + path +
                    "': this panelboot was built without ReadStat, so Stata .dta input is "
                    "unavailable; install libreadstat-dev and rebuild, or export the data to CSV");
}
#endif

}  // namespace panelboot
