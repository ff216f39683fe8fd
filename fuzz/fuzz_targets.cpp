#include "fuzz_targets.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "panelboot/config.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/design.hpp"
#include "panelboot/error.hpp"
#include "panelboot/expr.hpp"
#include "panelboot/formula.hpp"
#if PANELBOOT_HAVE_READSTAT
#include "io/readstat_api.hpp"
#endif

namespace panelboot::fuzz {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw Finding("invariant broken: " + what);
}

// Every column as long as the frame, every text code a level or -1; then each column read as
// numbers (an Error is fine: text or unparsable) and every value as text.
void check_frame(const DataFrame& df) {
  const std::size_t n = df.n_rows();
  for (const Column& c : df.columns) {
    if (c.is_string()) {
      require(c.codes.size() == n, "text column '" + c.name + "' has " +
                                       std::to_string(c.codes.size()) + " codes for " +
                                       std::to_string(n) + " rows");
      for (std::int32_t k : c.codes)
        require(k >= -1 && k < static_cast<std::int64_t>(c.levels.size()),
                "code " + std::to_string(k) + " of column '" + c.name + "' out of range");
    } else {
      require(c.num.size() == n, "numeric column '" + c.name + "' has " +
                                     std::to_string(c.num.size()) + " values for " +
                                     std::to_string(n) + " rows");
    }
    try {
      const DoubleSpan v = df.numeric(c.name);
      require(v.size() == n, "numeric('" + c.name + "') size");
    } catch (const Error&) {
    }
    for (std::size_t r = 0; r < n; ++r) (void)c.text(r);
  }
  if (n > 0) (void)df.where(n - 1);
}

void check_design(const Design& d) {
  require(d.x_names.size() == d.n_reg, "x_names vs n_reg");
  require(d.n_endo + d.n_inst <= d.n_reg && (d.n_endo == 0) == (d.n_inst == 0), "IV column counts");
  require(d.y.size() == d.n_obs, "y size");
  require(d.X.size() == d.n_obs * d.n_reg, "X size");
  require(d.w.empty() || d.w.size() == d.n_obs, "w size");
  require(d.rows.empty() || d.rows.size() == d.n_obs, "rows size");
  for (std::uint32_t r : d.rows) require(r < d.n_input, "row index");
  require(d.n_obs + d.n_dropped_where + d.n_dropped_missing + d.n_singletons == d.n_input,
          "row accounting");
  auto check_grouping = [&](const Grouping& g, bool required) {
    if (!required && g.code.empty()) return;
    require(g.code.size() == d.n_obs, "grouping '" + g.name + "' size");
    for (std::int32_t k : g.code)
      require(k >= 0 && k < g.n_levels, "grouping '" + g.name + "' code out of range");
  };
  for (const Grouping& g : d.fe) check_grouping(g, true);
  for (const Grouping& g : d.clusters) check_grouping(g, true);
  check_grouping(d.time, false);
}

// A small unbalanced panel: numbers, missing values (empty, NA, .), text with a missing level,
// a column that is mostly numbers with one text field, and one with a non-finite value.
const char kPanelCsv[] =
    "id,year,x,y,z,w,g,region,bad,nf\n"
    "1,2000,1.5,2,0,1,a,East,1,1\n"
    "1,2001,,3,1,2,b,West,2,2\n"
    "1,2002,2.5,NA,0,0.5,a,East,oops,3\n"
    "1,2004,4,5.5,1,1,c,West,4,4\n"
    "2,2000,-1,4,1,1,b,,5,inf\n"
    "2,2001,0,5,0,3,c,North,6,6\n"
    "2,2002,1e3,6,1,1,a,East,7,7\n"
    "3,2000,3.25,.,0,2,c,West,8,8\n"
    "3,2001,7,8,1,1,b,North,9,9\n"
    "3,2002,-0.5,9,0,1,a,South,10,10\n"
    "4,2001,2,1,1,1,a,East,11,11\n"
    "5,2000,1,1,0,1,b,West,12,12\n";

const DataFrame& panel_frame() {
  static const DataFrame df = read_csv_text(kPanelCsv, "fuzz-panel.csv");
  return df;
}
const DataFrame& empty_frame() {
  static const DataFrame df = read_csv_text("id,year,x,y,z,w,g,region,bad,nf\n", "fuzz-empty.csv");
  return df;
}
const PanelIndex& panel_index() {
  static const PanelIndex p(panel_frame(), "id", "year");
  return p;
}

std::string as_text(const std::uint8_t* data, std::size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// The fast path for records of plain numbers, on one thread or read ahead in stretches, must give
// what the tokenizer gives for every record.
void require_same_reading_on_every_path(const std::string& text) {
  const std::string tokenizer = csv_reading(text, false);
  require(csv_reading(text, true) == tokenizer,
          "the plain-record fast path and the tokenizer differ");
  require(csv_reading(text, true, 3) == tokenizer,
          "plain records read ahead in stretches and the tokenizer differ");
}

}  // namespace

std::string csv_reading(const std::string& text, bool plain_records, std::size_t stretches) {
  CsvOptions opts;
  opts.plain_records = plain_records;
  opts.stretches = stretches;
  opts.min_stretch_bytes = 1;
  DataFrame df;
  try {
    df = read_csv_text(text, "fuzz.csv", opts);
  } catch (const Error& e) {
    return std::string("error: ") + e.what();
  }
  std::string out;
  for (const Column& c : df.columns) {
    out += c.name + '\x1f' + (c.is_string() ? 's' : 'n') + std::to_string(c.n_numeric_fields) + ',' +
           std::to_string(c.n_text_fields) + c.first_text_where + '|' + c.first_text_value + '|' +
           c.first_nonfinite_where + '|' + c.first_nonfinite_value + '\x1f';
    for (double x : c.num) {
      std::uint64_t bits = 0x7ff8000000000000ull;
      if (!std::isnan(x)) std::memcpy(&bits, &x, sizeof bits);
      out += std::to_string(bits) + ',';
    }
    for (std::int32_t k : c.codes) out += std::to_string(k) + ',';
    for (const std::string& l : c.levels) out += l + '\x1e';
  }
  for (std::uint32_t l : df.row_line) out += std::to_string(l) + ',';
  for (const std::string& w : df.warnings) out += w + '\n';
  return out;
}

void csv(const std::uint8_t* data, std::size_t size) {
  const std::string text = as_text(data, size);
  require_same_reading_on_every_path(text);
  const DataFrame df = read_csv_text(text, "fuzz.csv");
  check_frame(df);
  // the first two columns as a grouping and as --panel id,time
  if (df.columns.size() < 2) return;
  const std::string& a = df.columns[0].name;
  const std::string& b = df.columns[1].name;
  try {
    const GroupCodes g = group_codes(df, {a, b});
    require(g.code.size() == df.n_rows(), "group_codes size");
    for (std::int32_t k : g.code) require(k >= -1 && k < g.n_levels, "group code out of range");
  } catch (const Error&) {
  }
  const PanelIndex p(df, a, b);
  for (int k : {1, -1, 2}) {
    const std::vector<std::int64_t> idx = p.shifted(k);
    require(idx.size() == df.n_rows(), "shifted() size");
    for (std::int64_t r : idx)
      require(r >= -1 && r < static_cast<std::int64_t>(df.n_rows()), "shifted() row out of range");
  }
}

void require_dta_reader() {
#if PANELBOOT_HAVE_READSTAT
  readstat("the fuzzer's inputs");
#else
  throw NotCompiled("fuzz_dta: this build has no ReadStat (.dta input disabled)");
#endif
}

void dta(const std::uint8_t* data, std::size_t size) {
  static const int fd = memfd_create("fuzz.dta", MFD_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("memfd_create: ") + std::strerror(errno));
  if (ftruncate(fd, 0) != 0) throw std::runtime_error("ftruncate failed");
  for (std::size_t done = 0; done < size;) {
    const ssize_t w = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (w <= 0) throw std::runtime_error("pwrite failed");
    done += static_cast<std::size_t>(w);
  }
  const DataFrame df = read_dta("/proc/self/fd/" + std::to_string(fd));
  check_frame(df);
}

void formula(const std::uint8_t* data, std::size_t size) {
  const Formula fm = parse_formula(as_text(data, size));
  (void)fm.variables();
  (void)fm.uses_panel_functions();
  require(!fm.terms.empty() || fm.intercept || fm.is_iv(), "a formula with no regressors was accepted");
  require(fm.instruments.size() >= fm.endogenous.size(), "an IV formula with too few instruments was accepted");
  SampleOptions opts;
  opts.panel_id = "id";
  opts.panel_time = "year";
  opts.cluster = {"id"};
  opts.need_time = true;
  check_design(build_design(panel_frame(), fm, opts));
}

void where(const std::uint8_t* data, std::size_t size) {
  const std::string text = as_text(data, size);
  const ExprPtr e = parse_expression(text, "--where '" + text + "'");
  (void)to_string(*e);
  std::vector<std::string> vars;
  collect_variables(*e, vars);
  const bool lags = has_panel_call(*e);
  const DataFrame& df = panel_frame();
  if (!lags) {  // describe: no panel index
    const std::vector<double> m = evaluate(*e, EvalContext{&df, nullptr, "--where"});
    require(m.size() == df.n_rows(), "evaluate() size");
  }
  const std::vector<double> m = evaluate(*e, EvalContext{&df, &panel_index(), "--where"});
  require(m.size() == df.n_rows(), "evaluate() size with the panel index");
  if (!lags) {  // a data file with a header and no rows
    const std::vector<double> m0 = evaluate(*e, EvalContext{&empty_frame(), nullptr, "--where"});
    require(m0.empty(), "evaluate() on no rows");
  }
  SampleOptions opts;
  opts.where = text;
  opts.panel_id = "id";
  opts.panel_time = "year";
  static const Formula fm = parse_formula("y ~ x | id");
  check_design(build_design(df, fm, opts));
}

Entry entry(const std::string& target) {
  if (target == "csv") return &csv;
  if (target == "dta") return &dta;
  if (target == "formula") return &formula;
  if (target == "where") return &where;
  return nullptr;
}

}  // namespace panelboot::fuzz
