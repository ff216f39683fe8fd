#include <chrono>
#include <cmath>
#include <iomanip>
#include <new>
#include <sstream>

#include "panelboot/cli.hpp"

#include "options.hpp"
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

// Runs the command that was parsed; an error is one line on stderr (README: exit statuses).
int run_parsed(const std::vector<cli::Command>& commands, std::ostream& out, std::ostream& err) {
  HeldBackLines held(err);
  std::ostream notices(&held);
  try {
    int status = 0;
    for (const cli::Command& c : commands)
      if (c.app->parsed()) status = c.run({out, notices, err});
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

}  // namespace

namespace cli {
namespace {

struct ThresholdCli {
  std::vector<std::string> regime;
  std::string threshold_var, trim = "0.01,0.01,0.05", vcov = "iid", lr_curve, mode = "hansen", gammas, save_regimes;
  bool b_given = false, time_effects = false, robust_ci = false, vcov_given = false;
  std::string cluster;
  std::string bootstrap = "blocks", robust_ci_method = "kernel";
  int thresholds = 1;
  std::string grid = "400";
  std::int64_t B = 300;
  std::uint64_t seed = kDefaultSeed;
};

int cmd_threshold(const CommonOptions& o, const ThresholdCli& c, std::ostream& out, std::ostream& err,
                  std::ostream& terminal) {
  if (o.formulas.size() != 1) throw InvalidInput("threshold takes one --formula, e.g. 'y ~ z1 + z2 | id'");
  check_paths(o, {{"--lr-curve", c.lr_curve}, {"--save-regimes", c.save_regimes}});
  apply_threads(o.threads, err);
  const Format fmt = value_of(kFormatNames, o.format, "--format");
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
  std::unique_ptr<Backend> backend;
  if (to.n_boot > 0)
    backend = open_backend(o, err);
  else
    note_host_only(o, err, "with --B 0 threshold has no replication work");
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

}  // namespace

Command register_threshold(CLI::App& app) {
  auto op = std::make_shared<CommonOptions>();
  auto cp = std::make_shared<ThresholdCli>();
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
  cmd->add_option("--trim", c.trim, "Trim per stage; the first trims the grid, the others set the exclusion "
                                            "windows (the last value repeats)")
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
  add_cluster_option(cmd, c.cluster,
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

  return {cmd, [op, cp](const Streams& s) { return cmd_threshold(*op, *cp, s.out, s.notices, s.terminal); }};
}

}  // namespace cli

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"panelboot " PANELBOOT_VERSION
               ": fixed-effects regressions and their inference (cluster-robust variance, wild "
               "cluster bootstrap, panel thresholds), exactly as Stata/R/Python compute them",
               "panelboot"};
  app.set_version_flag("--version", std::string("panelboot ") + PANELBOOT_VERSION +
                                        (PANELBOOT_HAVE_CUDA ? " (CUDA backend compiled)" : " (CPU only)"));
  app.require_subcommand(1);
  const std::vector<cli::Command> commands = {cli::register_fit(app), cli::register_wild(app),
                                              cli::register_threshold(app), cli::register_describe(app)};
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
  return run_parsed(commands, out, err);
}

}  // namespace panelboot
