// `panelboot threshold`: Hansen's panel threshold regression and its bootstrap tests.
#include "options.hpp"
#include "scale.hpp"

#include <chrono>
#include <cmath>
#include <cstdlib>

#include "panelboot/error.hpp"
#include "panelboot/text.hpp"
#include "panelboot/threshold.hpp"

namespace panelboot::cli {
namespace {

struct ThresholdCli {
  std::vector<std::string> regime;
  std::string threshold_var, trim = "0.01,0.01,0.05", vcov = "iid", lr_curve, mode = "hansen", gammas, save_regimes;
  bool b_given = false, time_effects = false, robust_ci = false, vcov_given = false;
  std::string bootstrap = "blocks", robust_ci_method = "kernel";
  int thresholds = 1;
  std::string grid = "400";
  std::int64_t B = 300;
  std::uint64_t seed = kDefaultSeed;
};

// --trim's or --gammas' comma list of numbers; `bad` says what to write instead.
std::vector<double> parse_number_list(const std::string& list, const std::string& bad, bool finite) {
  std::vector<double> out;
  for (const std::string& t : split_list(list)) {
    char* end = nullptr;
    out.push_back(std::strtod(t.c_str(), &end));
    if (*end || (finite && !std::isfinite(out.back()))) throw InvalidInput(bad);
  }
  return out;
}

// The engine's options from threshold's command line; the sample through the shared
// sample_options (threshold's --cluster is its own option, one variable).
ThresholdOptions threshold_options(const CommonOptions& o, const ThresholdCli& c) {
  ThresholdOptions to;
  to.formula = o.formulas[0];
  for (const std::string& r : c.regime)  // comma list, commas inside parentheses kept
    for (std::string& x : split_outside_parentheses(r, ','))
      if (!x.empty()) to.regime.push_back(std::move(x));
  to.threshold_var = c.threshold_var;
  if (split_list(o.panel).size() != 2) throw InvalidInput("threshold needs --panel id,time");
  if (o.cluster == "none")
    throw InvalidInput("--cluster none: threshold's clustered standard errors need a variable (without "
                       "--cluster they cluster by the panel unit); use --vcov iid or white instead");
  to.sample = sample_options(o, true);
  to.n_thresholds = c.thresholds;
  to.trim = parse_number_list(c.trim, "--trim '" + c.trim + "': give numbers like 0.01,0.01,0.05", false);
  to.grid = c.grid == "all" ? 0 : static_cast<int>(std::strtol(c.grid.c_str(), nullptr, 10));  // checked by grid_range
  to.xthreg = c.mode == "xthreg";
  to.time_effects = c.time_effects;
  to.bootstrap_wild = c.bootstrap == "wild";
  to.robust_ci = c.robust_ci;
  to.level = o.level;
  to.keep_regimes = !c.save_regimes.empty();
  to.robust_kernel = c.robust_ci_method == "kernel";
  // --cluster VAR without --vcov: the clustered SE fills std_error
  to.vcov = !o.cluster.empty() && !c.vcov_given ? "cluster" : c.vcov;
  to.gammas = parse_number_list(
      c.gammas, "--gammas " + quoted(c.gammas) + ": give finite threshold values like 0.0157,0.536", true);
  if (!to.gammas.empty()) {
    if (c.b_given) throw InvalidInput("--gammas fixes the thresholds: there is no bootstrap test, so drop --B");
    if (!c.lr_curve.empty())
      throw InvalidInput("--gammas fixes the thresholds: there is no search and so no LR curve, so drop --lr-curve");
    to.n_thresholds = static_cast<int>(to.gammas.size());
  }
  to.n_boot = to.gammas.empty() ? c.B : 0;
  to.seed = c.seed;
  to.max_memory = max_memory_bytes(o);
  return to;
}

int cmd_threshold(CLI::App* app, CommonOptions& o, const ThresholdCli& c, const ScaleCli& sc, std::ostream& out,
                  std::ostream& err, std::ostream& terminal) {
  if (o.formulas.size() != 1) throw InvalidInput("threshold takes one --formula, e.g. 'y ~ z1 + z2 | id'");
  ScaleRun scale("threshold", app, sc, o);
  std::vector<NamedPath> side = {{"--lr-curve", c.lr_curve}, {"--save-regimes", c.save_regimes}};
  for (const NamedPath& p : scale.paths()) side.push_back(p);
  check_paths(o, side);
  apply_threads(o.threads, err);
  const Format fmt = value_of(kFormatNames, o.format, "--format");
  ThresholdOptions to = threshold_options(o, c);
  to.progress = &terminal;
  const auto t_read0 = Clock::now();
  const DataFrame df = read_input(o, err);
  const double read_s = seconds_since(t_read0);
  // the model search runs on the host; the bootstrap replications on the backend
  std::unique_ptr<Backend> backend;
  if (to.n_boot > 0) {
    backend = open_backend(o, err);
  } else {
    const std::string why = "with --B 0 threshold has no replication work";
    note_host_only(o, err, why);
    backend = cpu::make_cpu_backend(why);
  }
  to.runner = scale.start(df, to.seed, backend->name(), err);
  ThresholdResult r;
  scale.run([&] { r = estimate_threshold(df, to, *backend); });
  if (scale.worker()) return 0;  // rank 0 writes the job's output
  if (scale.partial()) {  // the side files are the merge's to write
    deliver(scale.partial_text(), o, out);
    scale.finished(err);
    return 0;
  }
  r.backend = scale.backend_name(r.backend);
  r.timing.insert(r.timing.begin(), {"read_s", read_s});
  r.warnings = df.warnings;
  r.threads = threads_in_use();
  // side files: written with the report, at the end, only when the whole run succeeded
  PendingOutputs files;
  if (!c.save_regimes.empty()) files.add(c.save_regimes, threshold_regimes_csv(r, to));
  if (!c.lr_curve.empty()) files.add(c.lr_curve, threshold_lr_curve_csv(r, to));
  keep_text_report([&] { return render_threshold(r, to, Format::kText); });
  deliver(files, render_threshold(r, to, fmt), o, out);
  scale.finished(err);
  return 0;
}

}  // namespace

Command register_threshold(CLI::App& app) {
  auto op = std::make_shared<CommonOptions>();
  auto cp = std::make_shared<ThresholdCli>();
  auto sc = std::make_shared<ScaleCli>();
  CommonOptions& o = *op;
  ThresholdCli& c = *cp;
  CLI::App* cmd = app.add_subcommand(
      "threshold", "Hansen (1999) panel threshold regression with bootstrap tests (his program's conventions)");
  add_data_option(cmd, o);
  add_panel_option(cmd, o, "Panel structure 'id,time' (required; balanced)", true);
  add_formula_option(cmd, o, "'y ~ z1 + z2 | id': z are the regime-independent regressors", true);
  cmd->add_option("--regime", c.regime, "Regime-dependent regressor(s) x (repeatable or comma list)")->required();
  cmd->add_option("--threshold-var", c.threshold_var, "Threshold variable q (an expression, e.g. l(debta, 1))")
      ->required();
  cmd->add_option("--thresholds", c.thresholds, "Number of thresholds K (sequential; > 3 allowed)")
      ->transform(whole_in(1, 20))
      ->capture_default_str();
  cmd->add_option("--trim", c.trim,
                  "Trim per stage; the first trims the grid, the others set the exclusion windows (the last "
                  "value repeats)")
      ->capture_default_str();
  cmd->add_option("--grid", c.grid,
                  "Hansen's quantile grid: step 1/N (N = 400 gives 393 points at 1% trim); 'all': every "
                  "distinct value in the trimmed range (a departure)")
      ->transform(CLI::Validator(
          [](std::string& s) { return s == "all" ? std::string() : whole_in(10, kMaxGrid)(s); },
          "from 10 to " + std::to_string(kMaxGrid) + " or all"))
      ->capture_default_str();
  add_replications_option(cmd, c.B, 0, kMaxThresholdB, "Bootstrap replications per test (0: none)")
      ->each([&c](const std::string&) { c.b_given = true; });
  cmd->add_option("--gammas", c.gammas, "Fixed thresholds 'g1,g2' (xthreg's thgiven): the model only");
  cmd->add_option("--save-regimes", c.save_regimes, "Write each observation's regime (last model) as CSV")
      ->check(file_name());
  add_seed_option(cmd, c.seed);
  cmd->add_option("--mode", c.mode,
                  "hansen: Hansen's program (deleted last period, q < gamma, quantile grid); xthreg: "
                  "Stata xthreg (NT observations, q <= gamma, its grid, sigma^2 = S/(NT - T))")
      ->check(CLI::IsMember({"hansen", "xthreg"}))
      ->capture_default_str();
  add_vcov_option(cmd, c.vcov, {"iid", "white", "cluster"},
                  "iid (homoskedastic), white (HC0) or cluster (by the panel unit or --cluster, HC0): which SE "
                  "fills std_error")
      ->capture_default_str()
      ->each([&c](const std::string&) { c.vcov_given = true; });
  add_cluster_option(cmd, o.cluster,
                     "Cluster variable of the clustered SEs (default: the panel unit); implies --vcov cluster");
  add_level_option(cmd, o, "Level of the confidence set `ci` (95% and 99% sets are always given)");
  add_where_option(cmd, o);
  cmd->add_option("--bootstrap", c.bootstrap,
                  "blocks: Hansen's resampling of units' residual blocks; wild: Rademacher signs on each "
                  "unit's block (heteroskedastic, clustered errors; unbalanced panels)")
      ->check(CLI::IsMember({"blocks", "wild"}))
      ->capture_default_str();
  cmd->add_flag("--robust-ci", c.robust_ci,
                "Heteroskedasticity-robust LR confidence sets for gamma (Hansen 2000: LR scaled by eta^2); "
                "outside Hansen's 1999 program");
  cmd->add_option("--robust-ci-method", c.robust_ci_method,
                  "kernel (Hansen's default: Epanechnikov, his plug-in bandwidth) | quadratic (regression on q, q^2)")
      ->check(CLI::IsMember({"kernel", "quadratic"}))
      ->capture_default_str();
  cmd->add_flag("--time-effects", c.time_effects,
                "Also remove period effects (two-way, the study's setting); outside Hansen's program");
  cmd->add_option("--lr-curve", c.lr_curve, "Write LR(gamma) of the single-threshold search as CSV")
      ->check(file_name());
  add_threads_option(cmd, o);
  add_memory_option(cmd, o);
  add_backend_options(cmd, o);
  add_output_options(cmd, o, {Format::kText, Format::kJson});
  add_scale_options(cmd, *sc);

  return {cmd, [cmd, op, cp, sc](const Streams& s) {
            return cmd_threshold(cmd, *op, *cp, *sc, s.out, s.notices, s.terminal);
          }};
}

}  // namespace panelboot::cli
