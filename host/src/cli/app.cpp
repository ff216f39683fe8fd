#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <new>
#include <sstream>

#include "panelboot/cli.hpp"
#include "panelboot/config.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/design.hpp"
#include "panelboot/error.hpp"
#include "panelboot/estimate.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/report.hpp"
#include "panelboot/text.hpp"
#include "panelboot/threshold.hpp"
#include "panelboot/wild.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace panelboot {
namespace {

// Notices and warnings reach stderr as they come, but those after the first two are held back
// until the command ends: shown after a success, dropped when it fails, so that a failing run
// prints at most three lines, its error the last (README). Progress lines do not pass here: they
// go to stderr itself, whose terminal they need.
class HeldBackLines : public std::streambuf {
 public:
  explicit HeldBackLines(std::ostream& to) : to_(to) {}
  void release() {
    to_ << held_;
    held_.clear();
  }

 protected:
  int overflow(int c) override {
    if (c == traits_type::eof()) return 0;
    if (lines_ >= kPassed) {
      held_ += static_cast<char>(c);
      return c;
    }
    to_.put(static_cast<char>(c));
    if (c == '\n') {
      ++lines_;
      to_.flush();
    }
    return c;
  }

 private:
  static constexpr int kPassed = 2;
  std::ostream& to_;
  std::string held_;
  int lines_ = 0;
};

// ---- numeric options: every one has a stated range, checked as it is parsed (exit 2) ----

// A whole number from lo to hi, written in full: no sign wrap ("-1" for an unsigned option), no
// trailing text, no overflow, and decimal (a transform: it hands CLI11 the number without
// leading zeros).
CLI::Validator whole_in(long long lo, long long hi) {
  const std::string range = "from " + std::to_string(lo) + " to " + std::to_string(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& s) -> std::string {
        errno = 0;
        char* end = nullptr;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || *end || errno == ERANGE || v < lo || v > hi)
          return quoted(s) + " is not a whole number " + range;
        s = std::to_string(v);  // decimal for CLI11's conversion, which reads 010 as octal
        return "";
      },
      range);
}

// A seed: 0 .. 2^64-1, as Stata's and boottest's seeds are non-negative.
CLI::Validator seed_range() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        errno = 0;
        char* end = nullptr;
        const bool digits = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
        const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
        if (!digits || errno == ERANGE) return quoted(s) + " is not a whole number from 0 to 18446744073709551615";
        s = std::to_string(v);  // decimal for CLI11's conversion, which reads 010 as octal
        return "";
      },
      "from 0 to 2^64-1");
}

// A real number in (lo, hi) or [lo, hi].
CLI::Validator real_in(double lo, double hi, bool open) {
  char buf[96];
  std::snprintf(buf, sizeof buf, open ? "strictly between %g and %g" : "from %g to %g", lo, hi);
  const std::string range = buf;
  return CLI::Validator(
      [lo, hi, open, range](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        const bool inside = open ? (v > lo && v < hi) : (v >= lo && v <= hi);
        if (s.empty() || *end || !inside) return quoted(s) + " is not a number " + range;
        return "";
      },
      range);
}

// A file name: not empty (an empty --output would silently mean standard output).
CLI::Validator file_name() {
  return CLI::Validator([](std::string& s) { return s.empty() ? std::string("give a file name, not an empty one") : std::string(); },
                        "FILE");
}

// --max-memory: a size with its range stated.
CLI::Validator memory_size() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        try {
          parse_memory_size(s);
        } catch (const Error& e) {
          return e.what();
        }
        return "";
      },
      "SIZE from 1M to 1024P");
}

constexpr long long kMaxThreads = 1024;
constexpr long long kMaxWildB = 1000000000000LL;     // 10^12
constexpr long long kMaxThresholdB = 1000000000LL;   // 10^9
constexpr long long kMaxChunk = 1LL << 24;
constexpr long long kMaxGrid = 10000000;             // 10^7 (memory is checked as well)

// Options shared by every command that reads data and fits a model.
struct CommonOptions {
  std::string data;
  std::vector<std::string> formulas;
  std::string panel, where, weights, cluster, vcov;
  int dk_lag = -1;
  std::string dof_fe = "nested", multiway_adj = "min";
  bool keep_singletons = false, psd_fix = false;
  double fe_tol = 1e-10;
  int fe_maxiter = 10000;
  double level = 0.95;
  std::string format = "text", output;
  int threads = 0;
  std::string backend;  // "" (not given: auto), auto, cpu or cuda
  bool verbose = false;
  std::string max_memory;  // "" : what the machine has
};

// --backend and --verbose: every command takes them.
void add_backend_option(CLI::App* app, CommonOptions& o) {
  app->add_option("--backend", o.backend,
                  "auto | cpu | cuda: where replication-heavy work runs (auto: the GPU when this build has "
                  "CUDA and a device is present); results are the same on either")
      ->check(CLI::IsMember({"auto", "cpu", "cuda", "gpu"}));
  app->add_flag("--verbose", o.verbose, "Say on stderr which backend runs and why");
}

void add_threads_option(CLI::App* app, CommonOptions& o) {
  app->add_option("--threads", o.threads,
                  "Worker threads (0: all cores; more than the cores are reduced to them); results do not "
                  "depend on it")
      ->transform(whole_in(0, kMaxThreads));
}

void add_memory_option(CLI::App* app, CommonOptions& o) {
  app->add_option("--max-memory", o.max_memory,
                  "Most memory a run may use, e.g. 4G (default: what the machine or its cgroup has free); "
                  "runs estimated above it are refused before they start")
      ->check(memory_size());
}

// Makes the backend. It is named on stderr with --verbose, when --backend auto found no GPU,
// or when a GPU was asked for by a command that has no batched work (fit, describe,
// threshold --B 0), which then says that it runs on the CPU; the JSON's `backend` always says.
std::unique_ptr<Backend> open_backend(const CommonOptions& o, std::ostream& err, const char* host_only) {
  std::unique_ptr<Backend> b = make_backend(parse_device(o.backend.empty() ? "auto" : o.backend));
  const bool no_gpu_for_auto = o.backend == "auto" && b->device() == Device::kCpu;
  const bool gpu_unused = host_only && (o.backend == "cuda" || o.backend == "gpu");
  if (o.verbose || no_gpu_for_auto || gpu_unused)
    err << "panelboot: " << b->describe() << (host_only ? std::string("; ") + host_only : std::string()) << "\n";
  return b;
}

// Reads --data and prints what the reader warned about, one line each.
void add_data_options(CLI::App* app, CommonOptions& o) {
  app->add_option("--data", o.data,
                  "Data file: CSV (comma, semicolon or tab) or Stata .dta; default: the embedded "
                  "simulated stand-in of the study's panel")
      ->check(file_name());
  app->add_option("--panel", o.panel, "Panel structure 'id,time' (needed by lags, leads and dk)");
  app->add_option("--where", o.where,
                  "Keep rows where EXPR holds, e.g. 'region == \"East\" and year >= 2015'");
  app->add_option("--weights", o.weights, "Regression (analytic) weights, as [aw=] / weights=");
  app->add_flag("--keep-singletons", o.keep_singletons,
                "Keep singleton FE groups (xtreg/areg); by default they are dropped and counted");
  app->add_option("--fe-tol", o.fe_tol, "Relative tolerance of the FE projections")
      ->check(real_in(1e-16, 0.01, false))
      ->capture_default_str();
  app->add_option("--fe-maxiter", o.fe_maxiter, "Most sweeps of the FE projections")
      ->transform(whole_in(1, 10000000))
      ->capture_default_str();
  add_threads_option(app, o);
  add_backend_option(app, o);
}

void add_level_option(CLI::App* app, CommonOptions& o, const std::string& help) {
  app->add_option("--level", o.level, help)->check(real_in(0, 1, true))->capture_default_str();
}

void add_cluster_options(CLI::App* app, CommonOptions& o) {
  app->add_option("--cluster", o.cluster, "Cluster variable(s): 'a' or 'a,b' (two-way)");
  app->add_option("--dof-fe", o.dof_fe,
                  "nested: FE nested in a cluster not counted in K (xtreg, reghdfe, fixest); "
                  "all: every level counted (areg)")
      ->check(CLI::IsMember({"nested", "all"}))
      ->capture_default_str();
  app->add_option("--multiway-adj", o.multiway_adj,
                  "min: one G_min/(G_min-1) (fixest, reghdfe); each: every term its own (sandwich)")
      ->check(CLI::IsMember({"min", "each"}))
      ->capture_default_str();
  add_level_option(app, o, "Confidence level");
}

void add_vcov_options(CLI::App* app, CommonOptions& o) {
  app->add_option("--vcov", o.vcov,
                  "iid | hc1 | cluster | dk (default: cluster with --cluster, else iid)")
      ->check(CLI::IsMember({"iid", "hc1", "cluster", "dk"}));
  app->add_flag("--vcov-psd-fix", o.psd_fix, "Clip negative eigenvalues of a multiway variance");
  app->add_option("--dk-lag", o.dk_lag, "Driscoll-Kraay lag (default floor(T^(1/4)), as plm)")
      ->transform(whole_in(0, 100000));
}

// --format with exactly the formats the command writes (md and tex are aliases), and --output.
void add_output_options(CLI::App* app, CommonOptions& o, const std::vector<std::string>& formats) {
  std::string help;
  std::vector<std::string> accepted = formats;
  for (const std::string& f : formats) {
    help += (help.empty() ? "" : " | ") + f;
    if (f == "markdown") accepted.push_back("md");
    if (f == "latex") accepted.push_back("tex");
  }
  app->add_option("--format", o.format, help)->check(CLI::IsMember(accepted))->capture_default_str();
  app->add_option("--output", o.output,
                  "Write to FILE instead of standard output (atomically; a symlink's target, a device or FIFO "
                  "in place; never over an input file)")
      ->check(file_name());
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// The thread count: 0 means every core; more than the cores are reduced to them (compute-bound
// work gains nothing from more, and a typo such as --threads 1000 must not start 1000 threads).
void apply_threads(int threads, std::ostream& err) {
#ifdef _OPENMP
  const int cores = std::max(1, omp_get_num_procs());
  if (threads > cores) {
    err << "panelboot: warning: --threads " << threads << " is more than this machine's " << cores
        << " cores; using " << cores << "\n";
    threads = cores;
  }
  if (threads > 0) omp_set_num_threads(threads);
#else
  (void)threads;
  (void)err;
#endif
}

// The worker threads a run uses (after apply_threads), reported in the JSON.
int threads_in_use() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

std::uint64_t max_memory_bytes(const CommonOptions& o) {
  return o.max_memory.empty() ? 0 : parse_memory_size(o.max_memory);
}

SampleOptions sample_options(const CommonOptions& o, bool need_time) {
  SampleOptions s;
  s.where = o.where;
  s.weights = o.weights;
  if (!o.cluster.empty() && o.cluster != "none") s.cluster = split_list(o.cluster);
  if (!o.panel.empty()) {
    const auto p = split_list(o.panel);
    if (p.size() != 2)
      throw InvalidInput("--panel '" + o.panel + "': give the unit and time variables as 'id,time'");
    s.panel_id = p[0];
    s.panel_time = p[1];
  }
  s.keep_singletons = o.keep_singletons;
  s.need_time = need_time;
  return s;
}

FitOptions fit_options(const CommonOptions& o) {
  FitOptions f;
  std::string v = o.vcov;
  const bool have_cluster = !o.cluster.empty() && o.cluster != "none";
  if (v.empty()) v = have_cluster ? "cluster" : "iid";
  if (v == "cluster" && !have_cluster)
    throw InvalidInput("--vcov cluster needs --cluster VAR (or VAR1,VAR2)");
  if (v != "cluster" && have_cluster)
    throw InvalidInput("--cluster " + o.cluster + " was given with --vcov " + v +
                       "; drop one of them (with --cluster the default is --vcov cluster)");
  f.vcov = v == "iid" ? VcovType::kIid : v == "hc1" ? VcovType::kHc1
         : v == "cluster" ? VcovType::kCluster : VcovType::kDk;
  f.dof_fe = o.dof_fe == "all" ? DofFe::kAll : DofFe::kNested;
  f.multiway_adj = o.multiway_adj == "each" ? MultiwayAdj::kEach : MultiwayAdj::kMin;
  f.dk_lag = o.dk_lag;
  f.psd_fix = o.psd_fix;
  if (!(o.level > 0 && o.level < 1)) throw InvalidInput("--level must be between 0 and 1, e.g. 0.95");
  f.level = o.level;
  if (!(o.fe_tol > 0)) throw InvalidInput("--fe-tol must be positive");
  f.demean.tol = o.fe_tol;
  f.demean.max_iter = o.fe_maxiter;
  return f;
}

// Before any work: no output may overwrite --data or another output, and each must be writable.
void check_paths(const CommonOptions& o, std::vector<NamedPath> side_files = {}) {
  side_files.insert(side_files.begin(), {"--output", o.output});
  check_output_paths(side_files, {{"--data", o.data}});
}

// The run's outputs, written at its end and only if it succeeded: the report to --output with
// the side files already in `files` (committed together), or to `out` first (whose failure
// throws), then the side files.
void deliver(PendingOutputs& files, const std::string& report, const CommonOptions& o, std::ostream& out) {
  if (o.output.empty()) {
    out << report;
    out.flush();
    if (!out) throw InvalidInput("cannot write to standard output");
  } else {
    files.add(o.output, report);
  }
  files.commit();
}

void deliver(const std::string& report, const CommonOptions& o, std::ostream& out) {
  PendingOutputs none;
  deliver(none, report, o, out);
}

// The fit's warnings that put its numbers in doubt, also on stderr.
void warn_serious(const FitResult& r, std::ostream& err) {
  for (const std::string& w : r.serious_warnings) err << "panelboot: warning: " << w << "\n";
}

// The data of --data (or the embedded dataset, said on stderr), with the readers' warnings.
DataFrame read_input(const CommonOptions& o, std::ostream& err) {
  DataFrame df = read_data(o.data);
  if (o.data.empty()) err << "panelboot: no --data given; using the embedded simulated dataset\n";
  for (const std::string& w : df.warnings) err << "panelboot: warning: " << printable(w, 1000) << "\n";
  return df;
}

int cmd_fit(const CommonOptions& o, const std::vector<std::string>& wald, std::ostream& out,
            std::ostream& err) {
  if (o.formulas.empty())
    throw InvalidInput("fit needs --formula, e.g. --formula 'y ~ x1 + x2 | id + year'");
  check_paths(o);
  apply_threads(o.threads, err);
  const Format fmt = parse_format(o.format);
  FitOptions fo = fit_options(o);
  fo.wald = wald;
  open_backend(o, err, "fit solves one regression per model and runs on the CPU");
  const DataFrame df = read_input(o, err);
  std::vector<FitResult> results;
  for (const std::string& ftext : o.formulas) {
    const Formula fm = parse_formula(ftext);
    Design d = build_design(df, fm, sample_options(o, fo.vcov == VcovType::kDk));
    results.push_back(fit(d, fo));
    results.back().warnings.insert(results.back().warnings.begin(), df.warnings.begin(), df.warnings.end());
    warn_serious(results.back(), err);
  }
  deliver(render_fit(results, fmt), o, out);
  return 0;
}

struct WildCli {
  std::vector<std::string> tests;
  bool joint = false, no_ci = false;
  std::int64_t B = 9999;
  std::string weight_type = "rademacher", impose_null = "yes", enumerate = "auto",
              pvalue = "symmetric", bootcluster, ties = "strict", padjust = "none";
  std::uint64_t seed = 20250101;
  std::size_t chunk = 0;
};

int cmd_wild(const CommonOptions& o, const WildCli& w, std::ostream& out, std::ostream& err, std::ostream& terminal) {
  if (o.formulas.size() != 1)
    throw InvalidInput("wild takes one --formula (the model whose coefficients --test restricts)");
  if (o.cluster.empty())
    throw InvalidInput("wild needs --cluster VAR (or --cluster none for the heteroskedastic wild "
                       "bootstrap); without it other tools silently bootstrap observations, which "
                       "is wrong for clustered data");
  check_paths(o);
  apply_threads(o.threads, err);
  const Format fmt = parse_format(o.format);
  WildOptions wo;
  wo.tests = w.tests;
  wo.joint = w.joint;
  const std::int64_t B = w.B;
  wo.n_boot = B;
  wo.progress = &terminal;
  wo.max_memory = max_memory_bytes(o);
  if (B < 99) err << "panelboot: warning: --B " << B << " is below 99; the bootstrap p-value will be coarse\n";
  wo.weight = parse_weight_type(w.weight_type);
  wo.impose_null = w.impose_null == "yes";
  wo.enumerate = w.enumerate == "always" ? Enumerate::kAlways : w.enumerate == "never" ? Enumerate::kNever : Enumerate::kAuto;
  wo.pvalue = parse_pvalue_type(w.pvalue);
  wo.ties = w.ties == "inclusive" ? Ties::kInclusive : Ties::kStrict;
  wo.padjust = w.padjust == "bonferroni" ? PAdjust::kBonferroni : w.padjust == "sidak" ? PAdjust::kSidak : PAdjust::kNone;
  wo.level = o.level;
  wo.bootcluster = w.bootcluster;
  wo.seed = w.seed;
  wo.chunk = w.chunk;
  wo.ci = !w.no_ci;
  FitOptions fo = fit_options(o);
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const DataFrame df = read_input(o, err);
  const auto t1 = Clock::now();
  const Formula fm = parse_formula(o.formulas[0]);
  SampleOptions so = sample_options(o, false);
  if (!w.bootcluster.empty() && w.bootcluster != "intersection") {
    if (so.cluster.empty())
      throw InvalidInput("--bootcluster needs error clusters (--cluster VAR)");
    df.column(w.bootcluster);  // an unknown name raises with a suggestion
    so.extra.push_back(w.bootcluster);
  }
  Design d = build_design(df, fm, so);
  if (!w.bootcluster.empty() && w.bootcluster != "intersection" && d.extra[0].n_levels < 2)
    throw InvalidInput("--bootcluster " + w.bootcluster + " has a single level in the sample; the bootstrap needs at least two clusters");
  const std::unique_ptr<Backend> backend = open_backend(o, err, nullptr);
  const auto t2 = Clock::now();
  WildResult res = wild_bootstrap(d, fo, wo, *backend);
  const auto t3 = Clock::now();
  auto sec = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  res.timing = {{"read_s", sec(t0, t1)}, {"design_s", sec(t1, t2)}, {"fit_and_bootstrap_s", sec(t2, t3)}};
  res.threads = threads_in_use();
  res.fit.warnings.insert(res.fit.warnings.begin(), df.warnings.begin(), df.warnings.end());
  warn_serious(res.fit, err);
  deliver(render_wild(res, wo, fmt), o, out);
  return 0;
}

struct ThresholdCli {
  std::vector<std::string> regime;
  std::string threshold_var, trim = "0.01,0.01,0.05", vcov = "iid", lr_curve, mode = "hansen", gammas, save_regimes;
  bool b_given = false, time_effects = false, robust_ci = false, vcov_given = false;
  std::string cluster;
  std::string bootstrap = "blocks", robust_ci_method = "kernel";
  int thresholds = 1;
  std::string grid = "400";
  std::int64_t B = 300;
  std::uint64_t seed = 20250101;
};

int cmd_threshold(const CommonOptions& o, const ThresholdCli& c, std::ostream& out, std::ostream& err,
                  std::ostream& terminal) {
  if (o.formulas.size() != 1) throw InvalidInput("threshold takes one --formula, e.g. 'y ~ z1 + z2 | id'");
  check_paths(o, {{"--lr-curve", c.lr_curve}, {"--save-regimes", c.save_regimes}});
  apply_threads(o.threads, err);
  const Format fmt = parse_format(o.format);
  ThresholdOptions to;
  to.formula = o.formulas[0];
  for (const std::string& r : c.regime) {  // comma list, commas inside parentheses kept
    int depth = 0;
    std::string cur;
    for (char ch : r) {
      if (ch == '(') ++depth;
      if (ch == ')') --depth;
      if (ch == ',' && depth == 0) {
        if (!cur.empty()) to.regime.push_back(cur);
        cur.clear();
      } else {
        cur += ch;
      }
    }
    if (!cur.empty()) to.regime.push_back(cur);
  }
  to.threshold_var = c.threshold_var;
  const auto p = split_list(o.panel);
  if (p.size() != 2) throw InvalidInput("threshold needs --panel id,time");
  to.panel_id = p[0];
  to.panel_time = p[1];
  to.where = o.where;
  to.n_thresholds = c.thresholds;
  to.trim.clear();
  for (const std::string& t : split_list(c.trim)) {
    char* end = nullptr;
    const double v = std::strtod(t.c_str(), &end);
    if (*end) throw InvalidInput("--trim '" + c.trim + "': give numbers like 0.01,0.01,0.05");
    to.trim.push_back(v);
  }
  to.grid = c.grid == "all" ? 0 : static_cast<int>(std::strtol(c.grid.c_str(), nullptr, 10));  // checked by grid_range
  to.xthreg = c.mode == "xthreg";
  to.time_effects = c.time_effects;
  to.bootstrap_wild = c.bootstrap == "wild";
  to.robust_ci = c.robust_ci;
  to.level = o.level;
  to.keep_regimes = !c.save_regimes.empty();
  to.cluster = c.cluster;
  to.robust_kernel = c.robust_ci_method == "kernel";
  for (const std::string& g : split_list(c.gammas)) {
    char* end = nullptr;
    to.gammas.push_back(std::strtod(g.c_str(), &end));
    if (*end || !std::isfinite(to.gammas.back()))
      throw InvalidInput("--gammas " + quoted(c.gammas) + ": give finite threshold values like 0.0157,0.536");
  }
  if (!to.gammas.empty()) {
    if (c.b_given) throw InvalidInput("--gammas fixes the thresholds: there is no bootstrap test, so drop --B");
    if (!c.lr_curve.empty())
      throw InvalidInput("--gammas fixes the thresholds: there is no search and so no LR curve, so drop --lr-curve");
    to.n_thresholds = static_cast<int>(to.gammas.size());
  }
  to.n_boot = to.gammas.empty() ? c.B : 0;
  to.seed = c.seed;
  to.progress = &terminal;
  to.max_memory = max_memory_bytes(o);
  const auto t_read0 = std::chrono::steady_clock::now();
  const DataFrame df = read_input(o, err);
  const double read_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_read0).count();
  // the model search runs on the host; the bootstrap replications on the backend
  const std::unique_ptr<Backend> backend = open_backend(o, err, to.n_boot > 0 ? nullptr : "with --B 0 threshold has no batched work");
  const ThresholdResult r = estimate_threshold(df, to, backend.get());
  // --cluster VAR without --vcov: the clustered SE fills std_error
  const std::string vcov = !c.cluster.empty() && !c.vcov_given ? "cluster" : c.vcov;
  const bool white = vcov == "white", clustered = vcov == "cluster";
  // side files: written with the report, at the end, only when the whole run succeeded
  PendingOutputs files;
  const int sim = r.simulated ? 1 : 0;
  if (!c.save_regimes.empty()) {
    std::ostringstream csv;
    csv << csv_field(to.panel_id) << "," << csv_field(to.panel_time) << ",q,regime,simulated_data\n";
    char buf[128];
    for (const auto& rr : r.regimes) {
      std::snprintf(buf, sizeof buf, ",%.15g,%.15g,%d,%d\n", rr.time, rr.q, rr.regime, sim);
      csv << csv_field(rr.unit) << buf;
    }
    files.add(c.save_regimes, csv.str());
  }
  if (!c.lr_curve.empty()) {
    std::ostringstream csv;
    csv << "gamma,lr,c95,c99" << (c.robust_ci ? ",lr_robust" : "") << ",simulated_data\n";
    char buf[160];
    for (std::size_t i = 0; i < r.lr_gamma.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%.10g,%.10g,%.10g,%.10g", r.lr_gamma[i], r.lr_value[i], r.c95, r.c99);
      csv << buf;
      if (c.robust_ci) {
        std::snprintf(buf, sizeof buf, ",%.10g", r.lr_value[i] * r.lr_robust_factor);
        csv << buf;
      }
      csv << "," << sim << "\n";
    }
    files.add(c.lr_curve, csv.str());
  }
  if (fmt == Format::kJson) {
    nlohmann::json j{{"program", "panelboot"}, {"command", "threshold"}, {"mode", c.mode},
                     {"data", r.data_source}, {"simulated_data", r.simulated},
                     {"n_units", r.n_units}, {"n_periods", r.n_periods}, {"nobs", r.n_obs},
                     {"n_grid", r.n_grid}, {"n_distinct", r.n_distinct}, {"grid_first", r.grid_first},
                     {"grid_last", r.grid_last}, {"ssr_linear", r.ssr_linear}, {"c95", r.c95}, {"c99", r.c99},
                     {"vcov", vcov}, {"departures", r.departures}, {"omitted", r.omitted}, {"level", to.level}, {"c_level", r.c_level},
                     {"cluster", c.cluster.empty() ? to.panel_id : c.cluster}, {"n_clusters", r.n_clusters}};
    j["models"] = nlohmann::json::array();
    for (const auto& m : r.models) {
      nlohmann::json mj{{"n_thresholds", m.n_thresholds}, {"gammas", m.gammas}, {"ssr", m.ssr}};
      mj["notes"] = m.notes;
      mj["ci95"] = nlohmann::json::array();
      mj["ci99"] = nlohmann::json::array();
      for (const auto& ci : m.ci95) mj["ci95"].push_back({ci.first, ci.second});
      for (const auto& ci : m.ci99) mj["ci99"].push_back({ci.first, ci.second});
      mj["ci"] = nlohmann::json::array();  // at --level
      for (const auto& ci : m.ci) mj["ci"].push_back({ci.first, ci.second});
      mj["ci_method"] = c.robust_ci ? "heteroskedasticity-robust LR (Hansen 2000, eta^2 by " + c.robust_ci_method + ")"
                                    : std::string("homoskedastic LR (Hansen 1999)");
      if (c.robust_ci) {
        mj["eta2"] = m.eta2;
        mj["eta_bandwidth"] = nlohmann::json::array();
        for (double h : m.eta_bandwidth) mj["eta_bandwidth"].push_back(std::isfinite(h) ? nlohmann::json(h) : nlohmann::json());
        mj["ci95_homoskedastic"] = nlohmann::json::array();
        mj["ci99_homoskedastic"] = nlohmann::json::array();
        for (const auto& ci : m.ci95_homo) mj["ci95_homoskedastic"].push_back({ci.first, ci.second});
        for (const auto& ci : m.ci99_homo) mj["ci99_homoskedastic"].push_back({ci.first, ci.second});
      }
      mj["coefficients"] = nlohmann::json::array();
      for (const auto& cf : m.coefficients)
        mj["coefficients"].push_back({{"name", cf.name}, {"estimate", cf.estimate}, {"se_homo", cf.se_homo},
                                      {"se_white", cf.se_white}, {"se_cluster", cf.se_cluster},
                                      {"std_error", white ? cf.se_white : clustered ? cf.se_cluster : cf.se_homo}});
      j["models"].push_back(mj);
    }
    j["tests"] = nlohmann::json::array();
    for (const auto& t : r.tests)
      j["tests"].push_back({{"k", t.k}, {"F", t.F}, {"p_value", t.n_boot ? nlohmann::json(t.p_value) : nlohmann::json()},
                            {"crit", t.crit}, {"n_boot", t.n_boot}});
    j["lr_curve"] = {{"gamma", r.lr_gamma}, {"lr", r.lr_value}};
    j["warnings"] = df.warnings;
    j["threads"] = threads_in_use();
    j["timing"] = {{"read_s", read_s}};
    for (const auto& [k, v] : r.timing) j["timing"][k] = v;
    j["backend"] = backend->name();
    if (r.simulated) j["note"] = kSimulatedNote;
    deliver(files, dump_json(j), o, out);
    return 0;
  }
  std::ostringstream t;
  char buf[256];
  t << (to.xthreg ? "Panel threshold regression (Stata xthreg's conventions: NT observations, q <= gamma)\n"
                   : "Panel threshold regression (Hansen 1999, his program's conventions)\n");
  t << "Data: " << r.data_source << "\n";
  if (r.simulated) t << "NOTE: " << kSimulatedNote << "\n";
  std::snprintf(buf, sizeof buf, "Units %zu, periods %zu%s: %zu observations\n", r.n_units, r.n_periods,
                to.xthreg ? "" : " (last deleted after demeaning)", r.n_obs);
  t << buf;
  std::snprintf(buf, sizeof buf, "Grid: %zu points of %zu distinct values, %.6g .. %.6g\n", r.n_grid, r.n_distinct,
                r.grid_first, r.grid_last);
  t << buf;
  std::snprintf(buf, sizeof buf, "SSR without threshold: %.8g\n", r.ssr_linear);
  t << buf;
  for (const auto& dep : r.departures) t << "DEPARTURE: " << dep << "\n";
  for (const auto& om : r.omitted) t << "Omitted: " << om << "\n";
  for (std::size_t k = 0; k < r.models.size(); ++k) {
    const auto& m = r.models[k];
    t << "\n== " << m.n_thresholds << " threshold(s) ==\n";
    for (std::size_t i = 0; i < m.gammas.size(); ++i) {
      if (i >= m.ci95.size()) {  // fixed by --gammas: no search, so no LR confidence sets
        std::snprintf(buf, sizeof buf, "  gamma %zu = %-10.6g (given by --gammas)\n", i + 1, m.gammas[i]);
        t << buf;
        continue;
      }
      std::snprintf(buf, sizeof buf, "  gamma %zu = %-10.6g 95%% CI [%.6g, %.6g]   99%% CI [%.6g, %.6g]", i + 1,
                    m.gammas[i], m.ci95[i].first, m.ci95[i].second, m.ci99[i].first, m.ci99[i].second);
      t << buf;
      if (std::lround(to.level * 1000) != 950 && std::lround(to.level * 1000) != 990) {
        std::snprintf(buf, sizeof buf, "   %g%% CI [%.6g, %.6g]", 100 * to.level, m.ci[i].first, m.ci[i].second);
        t << buf;
      }
      if (!m.eta2.empty()) {
        std::snprintf(buf, sizeof buf, "   (robust, eta^2 = %.4g; homoskedastic 95%% [%.6g, %.6g])", m.eta2[i],
                      m.ci95_homo[i].first, m.ci95_homo[i].second);
        t << buf;
      }
      t << "\n";
    }
    const std::string cl = "se (cl " + (c.cluster.empty() ? to.panel_id : c.cluster) + ")";
    std::snprintf(buf, sizeof buf, "  SSR %.8g\n  %-30s %14s %14s %14s %14s\n", m.ssr, "coefficient", "estimate",
                  "se (homo)", "se (White)", cl.substr(0, 14).c_str());
    t << buf;
    for (const auto& cf : m.coefficients) {
      std::snprintf(buf, sizeof buf, "  %-30s %14.6g %14.6g %14.6g %14.6g\n", cf.name.c_str(), cf.estimate, cf.se_homo,
                    cf.se_white, cf.se_cluster);
      t << buf;
    }
    for (const auto& note : m.notes) t << "  note: " << note << "\n";
    const auto& ts = r.tests[k];
    std::snprintf(buf, sizeof buf, "  F%d = %.6g", ts.k, ts.F);
    t << buf;
    if (ts.n_boot) {
      std::snprintf(buf, sizeof buf, "   bootstrap p = %.4f (B = %lld); critical values 10%% %.4g, 5%% %.4g, 1%% %.4g",
                    ts.p_value, static_cast<long long>(ts.n_boot), ts.crit[0], ts.crit[1], ts.crit[2]);
      t << buf;
    }
    t << "\n";
  }
  t << (to.xthreg ? "\nRegime r of x: regime 1 is q <= gamma_1, the last q > gamma_K."
                   : "\nRegime r of x: regime 1 is q < gamma_1, the last q >= gamma_K.")
    << (!to.gammas.empty() ? "\n"
        : c.robust_ci      ? " CIs: {gamma : LR(gamma) / eta^2 < -2 ln(1 - sqrt(1 - a))} on the grid (Hansen 2000).\n"
                           : " CIs: {gamma : LR(gamma) < -2 ln(1 - sqrt(1 - a))} on the grid.\n");
  deliver(files, t.str(), o, out);
  return 0;
}

int cmd_describe(const CommonOptions& o, std::ostream& out, std::ostream& err) {
  check_paths(o);
  open_backend(o, err, "describe has no batched work and runs on the CPU");
  const DataFrame df = read_input(o, err);
  std::vector<char> keep(df.n_rows(), 1);
  if (!o.where.empty()) {
    const ExprPtr e = parse_expression(o.where, "--where " + quoted(o.where));
    const std::vector<double> m = evaluate(*e, EvalContext{&df, nullptr, "--where"});
    for (std::size_t r = 0; r < m.size(); ++r) keep[r] = m[r] == m[r] && m[r] != 0;
  }
  deliver(render_describe(df, keep, parse_format(o.format)), o, out);
  return 0;
}

// A command-line error as one line: an unknown option or command named with the nearest known
// one, else CLI11's own message; and where to look.
std::string parse_error_message(const CLI::ParseError& e, CLI::App& app, const std::vector<std::string>& args) {
  CLI::App* cmd = &app;
  for (CLI::App* sub : app.get_subcommands()) cmd = sub;
  std::vector<std::string> unknown = cmd->remaining();
  if (cmd != &app)
    for (const std::string& a : app.remaining()) unknown.push_back(a);
  const std::string help = cmd == &app ? "panelboot --help" : "panelboot " + cmd->get_name() + " --help";
  // the first unknown argument in command-line order (CLI11 keeps them reversed)
  const std::string* bad = nullptr;
  for (const std::string& a : args)
    if (std::find(unknown.begin(), unknown.end(), a) != unknown.end()) {
      bad = &a;
      break;
    }
  if (!bad && cmd == &app && !args.empty() && args[0].rfind("-", 0) != 0) bad = &args[0];  // not a command
  if (!bad) return printable(e.what(), 300) + " (see '" + help + "')";
  std::vector<std::string> names;
  const bool option = bad->rfind("-", 0) == 0;
  if (cmd == &app && !option) {
    for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  } else {
    for (const CLI::Option* opt : cmd->get_options())
      for (const std::string& l : opt->get_lnames()) names.push_back("--" + l);
  }
  const std::string what = option ? "unknown option " : cmd == &app ? "unknown command " : "unexpected argument ";
  std::string msg = what + quoted(*bad) + " for " + (cmd == &app ? std::string("panelboot") : "panelboot " + cmd->get_name());
  const std::string near = nearest_name(bad->substr(0, bad->find('=')), names);
  if (!near.empty()) msg += "; did you mean '" + near + "'?";
  else if (!option && cmd != &app) msg += " (each option takes one value; quote values with spaces)";
  return msg + " (see '" + help + "')";
}

}  // namespace

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"panelboot " PANELBOOT_VERSION
               ": fixed-effects regressions and their inference (cluster-robust variance, wild "
               "cluster bootstrap, panel thresholds), exactly as Stata/R/Python compute them",
               "panelboot"};
  app.set_version_flag("--version", std::string("panelboot ") + PANELBOOT_VERSION +
                                        (PANELBOOT_HAVE_CUDA ? " (CUDA backend compiled)" : " (CPU only)"));
  app.require_subcommand(1);
  CommonOptions fit_o, desc_o;
  std::vector<std::string> wald;
  CLI::App* fit_cmd = app.add_subcommand(
      "fit", "Fixed-effects OLS with iid, HC1, cluster-robust (one- or multi-way) or Driscoll-Kraay "
             "standard errors");
  add_data_options(fit_cmd, fit_o);
  fit_cmd->add_option("--formula,-f", fit_o.formulas,
                      "Model 'y ~ x1 + x2 | fe1 + fe2' (repeat for several models side by side)");
  add_cluster_options(fit_cmd, fit_o);
  add_vcov_options(fit_cmd, fit_o);
  fit_cmd->add_option("--wald", wald, "Joint test, e.g. 'x1 = 0, x2 = 0' (repeatable)");
  add_output_options(fit_cmd, fit_o, {"text", "json", "markdown", "latex", "csv"});
  fit_cmd->footer(
      "Formula: y ~ x1 + x2 + a:b + a*b + i(f) + i(f, ref=v) + i(f, x) + I(x^2) + log(x) + l(x, 1)"
      " + f(x, 1) [+ 0] | fe1 + fe2 + fe3^fe4\n"
      "Example: panelboot fit --formula 'newqua ~ rgzn + urban | province + year' --cluster province");

  CommonOptions wild_o;
  WildCli wild_w;
  CLI::App* wild_cmd = app.add_subcommand(
      "wild", "Wild cluster bootstrap tests and confidence intervals (WCR/WCU), exact and fast");
  add_data_options(wild_cmd, wild_o);
  wild_cmd->add_option("--formula,-f", wild_o.formulas, "Model 'y ~ x1 + x2 | fe1 + fe2'");
  add_cluster_options(wild_cmd, wild_o);
  wild_cmd->add_option("--test", wild_w.tests, "Null hypothesis, e.g. 'x1 = 0.04' or 'x1 - x2 = 0' (repeatable)")->required();
  wild_cmd->add_flag("--joint", wild_w.joint, "One Wald/F test of all --test rows (reported first)");
  wild_cmd->add_option("--B", wild_w.B, "Bootstrap replications")
      ->transform(whole_in(1, kMaxWildB))
      ->capture_default_str();
  wild_cmd->add_option("--weight-type", wild_w.weight_type, "rademacher | mammen | webb | normal | gamma")
      ->check(CLI::IsMember({"rademacher", "mammen", "webb", "normal", "gamma"}))->capture_default_str();
  wild_cmd->add_option("--impose-null", wild_w.impose_null, "yes: WCR (null imposed); no: WCU")
      ->check(CLI::IsMember({"yes", "no"}))->capture_default_str();
  wild_cmd->add_option("--enumerate", wild_w.enumerate,
                       "auto: all 2^G sign vectors when 2^G <= B (Rademacher); always; never")
      ->check(CLI::IsMember({"auto", "always", "never"}))->capture_default_str();
  wild_cmd->add_option("--pvalue", wild_w.pvalue, "symmetric | equal-tailed | lower | upper")
      ->check(CLI::IsMember({"symmetric", "equal-tailed", "lower", "upper"}))->capture_default_str();
  wild_cmd->add_option("--bootcluster", wild_w.bootcluster,
                       "Bootstrap clusters: VAR or 'intersection' (default: the error clustering "
                       "with the fewest clusters)");
  wild_cmd->add_option("--ties", wild_w.ties, "strict: statistics within 1e-10 of |t| not counted; inclusive: counted")
      ->check(CLI::IsMember({"strict", "inclusive"}))->capture_default_str();
  wild_cmd->add_option("--padjust", wild_w.padjust, "none | bonferroni | sidak across several --test")
      ->check(CLI::IsMember({"none", "bonferroni", "sidak"}))->capture_default_str();
  wild_cmd->add_option("--seed", wild_w.seed, "Seed of the counter-based generator")
      ->transform(seed_range())
      ->capture_default_str();
  wild_cmd->add_option("--chunk", wild_w.chunk, "Replications per batch (0: automatic); results do not depend on it")
      ->transform(whole_in(0, kMaxChunk));
  add_memory_option(wild_cmd, wild_o);
  wild_cmd->add_flag("--no-ci", wild_w.no_ci, "Skip the test-inversion confidence interval");
  add_output_options(wild_cmd, wild_o, {"text", "json", "markdown", "latex", "csv"});
  wild_cmd->footer("Example: panelboot wild --data d.csv -f 'y ~ x | id + year' --cluster id --test 'x = 0' --B 99999");

  CommonOptions thr_o;
  ThresholdCli thr_c;
  CLI::App* thr_cmd = app.add_subcommand(
      "threshold", "Hansen (1999) panel threshold regression with bootstrap tests (his program's conventions)");
  thr_cmd->add_option("--data", thr_o.data, "Data file (CSV or .dta); default: the embedded dataset")->check(file_name());
  thr_cmd->add_option("--panel", thr_o.panel, "Panel structure 'id,time' (required; balanced)")->required();
  thr_cmd->add_option("--formula,-f", thr_o.formulas, "'y ~ z1 + z2 | id': z are the regime-independent regressors")
      ->required();
  thr_cmd->add_option("--regime", thr_c.regime, "Regime-dependent regressor(s) x (repeatable or comma list)")->required();
  thr_cmd->add_option("--threshold-var", thr_c.threshold_var, "Threshold variable q (an expression, e.g. l(debta, 1))")
      ->required();
  thr_cmd->add_option("--thresholds", thr_c.thresholds, "Number of thresholds K (sequential; > 3 allowed)")
      ->transform(whole_in(1, 20))
      ->capture_default_str();
  thr_cmd->add_option("--trim", thr_c.trim, "Trim per stage; the first trims the grid, the others set the exclusion "
                                            "windows (the last value repeats)")
      ->capture_default_str();
  thr_cmd->add_option("--grid", thr_c.grid,
                      "Hansen's quantile grid: step 1/N (N = 400 gives 393 points at 1% trim); 'all': every "
                      "distinct value in the trimmed range (a departure)")
      ->transform(CLI::Validator(
          [](std::string& s) { return s == "all" ? std::string() : whole_in(10, kMaxGrid)(s); },
          "from 10 to " + std::to_string(kMaxGrid) + " or all"))
      ->capture_default_str();
  thr_cmd->add_option("--B", thr_c.B, "Bootstrap replications per test (0: none)")
      ->transform(whole_in(0, kMaxThresholdB))
      ->capture_default_str()
      ->each([&thr_c](const std::string&) { thr_c.b_given = true; });
  thr_cmd->add_option("--gammas", thr_c.gammas, "Fixed thresholds 'g1,g2' (xthreg's thgiven): the model only");
  thr_cmd->add_option("--save-regimes", thr_c.save_regimes, "Write each observation's regime (last model) as CSV")
      ->check(file_name());
  thr_cmd->add_option("--seed", thr_c.seed, "Seed of the counter-based generator")
      ->transform(seed_range())
      ->capture_default_str();
  thr_cmd->add_option("--mode", thr_c.mode,
                      "hansen: Hansen's program (deleted last period, q < gamma, quantile grid); xthreg: "
                      "Stata xthreg (NT observations, q <= gamma, its grid, sigma^2 = S/(NT - T))")
      ->check(CLI::IsMember({"hansen", "xthreg"}))
      ->capture_default_str();
  thr_cmd->add_option("--vcov", thr_c.vcov,
                      "iid (homoskedastic), white (HC0) or cluster (by the panel unit or --cluster, HC0): which SE "
                      "fills std_error")
      ->check(CLI::IsMember({"iid", "white", "cluster"}))
      ->capture_default_str()
      ->each([&thr_c](const std::string&) { thr_c.vcov_given = true; });
  thr_cmd->add_option("--cluster", thr_c.cluster,
                      "Cluster variable of the clustered SEs (default: the panel unit); implies --vcov cluster");
  add_level_option(thr_cmd, thr_o, "Level of the confidence set `ci` (95% and 99% sets are always given)");
  thr_cmd->add_option("--where", thr_o.where, "Keep rows where EXPR holds");
  thr_cmd->add_option("--bootstrap", thr_c.bootstrap,
                      "blocks: Hansen's resampling of units' residual blocks; wild: Rademacher signs on each "
                      "unit's block (heteroskedastic, clustered errors; unbalanced panels)")
      ->check(CLI::IsMember({"blocks", "wild"}))
      ->capture_default_str();
  thr_cmd->add_flag("--robust-ci", thr_c.robust_ci,
                    "Heteroskedasticity-robust LR confidence sets for gamma (Hansen 2000: LR scaled by eta^2); "
                    "outside Hansen's 1999 program");
  thr_cmd->add_option("--robust-ci-method", thr_c.robust_ci_method,
                      "kernel (Hansen's default: Epanechnikov, his plug-in bandwidth) | quadratic (regression on q, q^2)")
      ->check(CLI::IsMember({"kernel", "quadratic"}))
      ->capture_default_str();
  thr_cmd->add_flag("--time-effects", thr_c.time_effects,
                    "Also remove period effects (two-way, the study's setting); outside Hansen's program");
  thr_cmd->add_option("--lr-curve", thr_c.lr_curve, "Write LR(gamma) of the single-threshold search as CSV")
      ->check(file_name());
  add_threads_option(thr_cmd, thr_o);
  add_memory_option(thr_cmd, thr_o);
  add_backend_option(thr_cmd, thr_o);
  add_output_options(thr_cmd, thr_o, {"text", "json"});

  CLI::App* desc_cmd = app.add_subcommand("describe", "List a data file's variables with summary statistics");
  desc_cmd->add_option("--data", desc_o.data, "Data file (default: the embedded dataset)")->check(file_name());
  desc_cmd->add_option("--where", desc_o.where, "Keep rows where EXPR holds");
  add_backend_option(desc_cmd, desc_o);
  add_output_options(desc_cmd, desc_o, {"text", "json", "markdown", "latex", "csv"});

  std::vector<std::string> rev(args.rbegin(), args.rend());
  try {
    app.parse(rev);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    err << "panelboot: error: " << parse_error_message(e, app, args) << "\n";
    return 2;
  }
  HeldBackLines held(err);
  std::ostream notices(&held);
  try {
    int status = 0;
    if (fit_cmd->parsed()) status = cmd_fit(fit_o, wald, out, notices);
    if (desc_cmd->parsed()) status = cmd_describe(desc_o, out, notices);
    if (wild_cmd->parsed()) status = cmd_wild(wild_o, wild_w, out, notices, err);
    if (thr_cmd->parsed()) status = cmd_threshold(thr_o, thr_c, out, notices, err);
    held.release();
    return status;
  } catch (const Error& e) {
    err << "panelboot: error: " << printable(e.what(), 1000) << "\n";
    return 2;
  } catch (const std::bad_alloc&) {  // past the estimates: the machine, not a bug in the input
    err << "panelboot: error: ran out of memory; lower --B, --chunk, --grid or --threads, or free memory\n";
    return 2;
  } catch (const std::exception& e) {
    err << "panelboot: internal error: " << printable(e.what(), 1000) << "\n";
    return 3;
  }
}

}  // namespace panelboot
