#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "panelboot/cli.hpp"
#include "panelboot/config.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/design.hpp"
#include "panelboot/error.hpp"
#include "panelboot/estimate.hpp"
#include "panelboot/report.hpp"
#include "panelboot/wild.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace panelboot {
namespace {

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
};

void add_data_options(CLI::App* app, CommonOptions& o) {
  app->add_option("--data", o.data,
                  "Data file: CSV (comma, semicolon or tab) or Stata .dta; default: the embedded "
                  "simulated stand-in of the study's panel");
  app->add_option("--panel", o.panel, "Panel structure 'id,time' (needed by lags, leads and dk)");
  app->add_option("--where", o.where,
                  "Keep rows where EXPR holds, e.g. 'region == \"East\" and year >= 2015'");
  app->add_option("--weights", o.weights, "Regression (analytic) weights, as [aw=] / weights=");
  app->add_flag("--keep-singletons", o.keep_singletons,
                "Keep singleton FE groups (xtreg/areg); by default they are dropped and counted");
  app->add_option("--fe-tol", o.fe_tol, "Relative tolerance of the FE projections")
      ->capture_default_str();
  app->add_option("--fe-maxiter", o.fe_maxiter, "Most sweeps of the FE projections")
      ->capture_default_str();
  app->add_option("--threads", o.threads, "Worker threads (0: all cores); results do not depend on it");
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
  app->add_option("--level", o.level, "Confidence level")->capture_default_str();
}

void add_vcov_options(CLI::App* app, CommonOptions& o) {
  app->add_option("--vcov", o.vcov,
                  "iid | hc1 | cluster | dk (default: cluster with --cluster, else iid)")
      ->check(CLI::IsMember({"iid", "hc1", "cluster", "dk"}));
  app->add_flag("--vcov-psd-fix", o.psd_fix, "Clip negative eigenvalues of a multiway variance");
  app->add_option("--dk-lag", o.dk_lag, "Driscoll-Kraay lag (default floor(T^(1/4)), as plm)");
}

void add_output_options(CLI::App* app, CommonOptions& o) {
  app->add_option("--format", o.format, "text | json | markdown | latex | csv")
      ->check(CLI::IsMember({"text", "json", "markdown", "md", "latex", "tex", "csv"}))
      ->capture_default_str();
  app->add_option("--output", o.output, "Write to FILE (atomically) instead of standard output");
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

void apply_threads(int threads) {
#ifdef _OPENMP
  if (threads > 0) omp_set_num_threads(threads);
#else
  (void)threads;
#endif
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

void emit(const std::string& text, const CommonOptions& o, std::ostream& out) {
  if (o.output.empty()) out << text;
  else write_file_atomic(o.output, text);
}

int cmd_fit(const CommonOptions& o, const std::vector<std::string>& wald, std::ostream& out,
            std::ostream& err) {
  if (o.formulas.empty())
    throw InvalidInput("fit needs --formula, e.g. --formula 'y ~ x1 + x2 | id + year'");
  apply_threads(o.threads);
  const Format fmt = parse_format(o.format);
  FitOptions fo = fit_options(o);
  fo.wald = wald;
  const DataFrame df = read_data(o.data);
  if (o.data.empty()) err << "panelboot: no --data given; using the embedded simulated dataset\n";
  std::vector<FitResult> results;
  for (const std::string& ftext : o.formulas) {
    const Formula fm = parse_formula(ftext);
    Design d = build_design(df, fm, sample_options(o, fo.vcov == VcovType::kDk));
    results.push_back(fit(d, fo));
  }
  emit(render_fit(results, fmt), o, out);
  return 0;
}

struct WildCli {
  std::vector<std::string> tests;
  bool joint = false, no_ci = false;
  std::string B = "9999", weight_type = "rademacher", impose_null = "yes", enumerate = "auto",
              pvalue = "symmetric", bootcluster, ties = "strict", padjust = "none";
  std::uint64_t seed = 20250101;
  std::size_t chunk = 0;
};

int cmd_wild(const CommonOptions& o, const WildCli& w, std::ostream& out, std::ostream& err) {
  if (o.formulas.size() != 1)
    throw InvalidInput("wild takes one --formula (the model whose coefficients --test restricts)");
  if (o.cluster.empty())
    throw InvalidInput("wild needs --cluster VAR (or --cluster none for the heteroskedastic wild "
                       "bootstrap); without it other tools silently bootstrap observations, which "
                       "is wrong for clustered data");
  apply_threads(o.threads);
  const Format fmt = parse_format(o.format);
  WildOptions wo;
  wo.tests = w.tests;
  wo.joint = w.joint;
  char* end = nullptr;
  const long long B = std::strtoll(w.B.c_str(), &end, 10);
  if (w.B.empty() || *end || B < 1)
    throw InvalidInput("--B '" + w.B + "': give a positive whole number of replications, e.g. --B 9999");
  wo.n_boot = B;
  if (B < 99) err << "panelboot: warning: --B " << B << " is below 99; the bootstrap p-value will be coarse\n";
  wo.weight = parse_weight_type(w.weight_type);
  wo.impose_null = w.impose_null == "yes";
  wo.enumerate = w.enumerate == "always" ? Enumerate::kAlways : w.enumerate == "never" ? Enumerate::kNever : Enumerate::kAuto;
  wo.pvalue = w.pvalue == "equal-tailed" ? PValueType::kEqualTailed : w.pvalue == "lower" ? PValueType::kLower
            : w.pvalue == "upper" ? PValueType::kUpper : PValueType::kSymmetric;
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
  const DataFrame df = read_data(o.data);
  const auto t1 = Clock::now();
  if (o.data.empty()) err << "panelboot: no --data given; using the embedded simulated dataset\n";
  const Formula fm = parse_formula(o.formulas[0]);
  SampleOptions so = sample_options(o, false);
  if (!w.bootcluster.empty() && w.bootcluster != "intersection") {
    if (so.cluster.empty())
      throw InvalidInput("--bootcluster needs error clusters (--cluster VAR)");
    const Column* c = df.find(w.bootcluster);
    if (!c) df.column(w.bootcluster);  // unknown: raises with a suggestion
    so.extra.push_back(w.bootcluster);
  }
  Design d = build_design(df, fm, so);
  if (!w.bootcluster.empty() && w.bootcluster != "intersection" && d.extra[0].n_levels < 2)
    throw InvalidInput("--bootcluster " + w.bootcluster + " has a single level in the sample; the bootstrap needs at least two clusters");
  const auto t2 = Clock::now();
  WildResult res = wild_bootstrap(d, fo, wo);
  const auto t3 = Clock::now();
  auto sec = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  res.timing = {{"read_s", sec(t0, t1)}, {"design_s", sec(t1, t2)}, {"fit_and_bootstrap_s", sec(t2, t3)}};
  emit(render_wild(res, wo, fmt), o, out);
  return 0;
}

int cmd_describe(const CommonOptions& o, std::ostream& out) {
  const DataFrame df = read_data(o.data);
  std::vector<char> keep(df.n_rows(), 1);
  if (!o.where.empty()) {
    const ExprPtr e = parse_expression(o.where, "--where '" + o.where + "'");
    const std::vector<double> m = evaluate(*e, EvalContext{&df, nullptr, "--where"});
    for (std::size_t r = 0; r < m.size(); ++r) keep[r] = m[r] == m[r] && m[r] != 0;
  }
  nlohmann::json vars = nlohmann::json::array();
  std::ostringstream t;
  t << "Data: " << df.source << " (" << df.n_rows() << " rows, " << df.columns.size() << " columns)\n";
  if (const Column* s = df.find("simulated"); s && !s->is_string()) t << "NOTE: " << kSimulatedNote << "\n";
  t << std::left << std::setw(16) << "variable" << std::right << std::setw(8) << "type" << std::setw(8)
    << "obs" << std::setw(14) << "mean" << std::setw(14) << "sd" << std::setw(14) << "min"
    << std::setw(14) << "max" << "\n";
  for (const Column& c : df.columns) {
    nlohmann::json v{{"name", c.name}, {"type", c.is_string() ? "text" : "numeric"}};
    std::size_t n = 0;
    if (c.is_string()) {
      for (std::size_t r = 0; r < df.n_rows(); ++r) n += keep[r] && c.codes[r] >= 0;
      v["obs"] = n;
      v["levels"] = c.levels.size();
      t << std::left << std::setw(16) << c.name << std::right << std::setw(8) << "text" << std::setw(8) << n
        << "   " << c.levels.size() << " levels\n";
    } else {
      double s1 = 0, s2 = 0, lo = INFINITY, hi = -INFINITY;
      for (std::size_t r = 0; r < df.n_rows(); ++r) {
        const double x = c.num[r];
        if (!keep[r] || x != x) continue;
        ++n;
        s1 += x;
        lo = std::min(lo, x);
        hi = std::max(hi, x);
      }
      const double mean = n ? s1 / n : NAN;
      for (std::size_t r = 0; r < df.n_rows(); ++r)
        if (keep[r] && c.num[r] == c.num[r]) s2 += (c.num[r] - mean) * (c.num[r] - mean);
      const double sd = n > 1 ? std::sqrt(s2 / (n - 1)) : NAN;
      v["obs"] = n;
      v["mean"] = mean;
      v["sd"] = sd;
      v["min"] = lo;
      v["max"] = hi;
      t << std::left << std::setw(16) << c.name << std::right << std::setw(8) << "num" << std::setw(8) << n
        << std::setw(14) << std::setprecision(6) << mean << std::setw(14) << sd << std::setw(14) << lo
        << std::setw(14) << hi << "\n";
    }
    vars.push_back(v);
  }
  if (o.format == "json") {
    nlohmann::json j{{"program", "panelboot"}, {"command", "describe"}, {"data", df.source},
                     {"rows", df.n_rows()}, {"variables", vars}};
    emit(j.dump(2) + "\n", o, out);
  } else {
    emit(t.str(), o, out);
  }
  return 0;
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
  add_output_options(fit_cmd, fit_o);
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
  wild_cmd->add_option("--B", wild_w.B, "Bootstrap replications")->capture_default_str();
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
  wild_cmd->add_option("--seed", wild_w.seed, "Seed of the counter-based generator")->capture_default_str();
  wild_cmd->add_option("--chunk", wild_w.chunk, "Replications per batch (0: automatic); results do not depend on it");
  wild_cmd->add_flag("--no-ci", wild_w.no_ci, "Skip the test-inversion confidence interval");
  add_output_options(wild_cmd, wild_o);
  wild_cmd->footer("Example: panelboot wild --data d.csv -f 'y ~ x | id + year' --cluster id --test 'x = 0' --B 99999");

  CLI::App* desc_cmd = app.add_subcommand("describe", "List a data file's variables with summary statistics");
  desc_cmd->add_option("--data", desc_o.data, "Data file (default: the embedded dataset)");
  desc_cmd->add_option("--where", desc_o.where, "Keep rows where EXPR holds");
  add_output_options(desc_cmd, desc_o);

  std::vector<std::string> rev(args.rbegin(), args.rend());
  try {
    app.parse(rev);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err);
  }
  try {
    if (fit_cmd->parsed()) return cmd_fit(fit_o, wald, out, err);
    if (desc_cmd->parsed()) return cmd_describe(desc_o, out);
    if (wild_cmd->parsed()) return cmd_wild(wild_o, wild_w, out, err);
  } catch (const Error& e) {
    err << "panelboot: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    err << "panelboot: internal error: " << e.what() << "\n";
    return 3;
  }
  return 0;
}

}  // namespace panelboot
