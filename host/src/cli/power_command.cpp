// `panelboot power`: Monte Carlo size, power and minimum detectable effect for split samples.
#include "options.hpp"
#include "scale.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "panelboot/config.hpp"
#include "panelboot/error.hpp"
#include "panelboot/formula.hpp"
#include "panelboot/power.hpp"

namespace panelboot::cli {
namespace {

struct PowerCli {
  std::string target, effects, tests = "crve", alpha = "0.05", errors = "wild", calibrate = "group";
  std::vector<std::string> splits, save, designs;
  std::string plot;
  double rho = 0;
  bool rho_given = false;
  bool pooled = false, placebo = false;
  std::int64_t R = 1000, wild_B = 399;
  double power_target = 0.8;
  std::uint64_t seed = kDefaultSeed;
  std::size_t batch = 0;
};

// --tests: the per-group tests, and `diff` (the between-group difference test) as a flag.
std::vector<PowerTest> parse_tests(const std::string& text, bool& diff) {
  std::vector<PowerTest> out;
  diff = false;
  for (const std::string& t : split_list(text)) {
    PowerTest v;
    if (t == "diff") {
      diff = true;
      continue;
    }
    if (t == "crve") v = PowerTest::kCrve;
    else if (t == "wild" || t == "wcr") v = PowerTest::kWild;
    else if (t == "wild-webb") v = PowerTest::kWildWebb;
    else if (t == "wcu") v = PowerTest::kWcu;
    else throw InvalidInput("--tests: '" + t + "' is not a test; choose from crve, wild, wild-webb, wcu, diff");
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  if (out.empty() && !diff) throw InvalidInput("--tests is empty; choose from crve, wild, wild-webb, wcu, diff");
  return out;
}

std::vector<double> parse_alphas(const std::string& text) {
  std::vector<double> out;
  for (const std::string& a : split_list(text)) {
    char* end = nullptr;
    const double v = std::strtod(a.c_str(), &end);
    if (end != a.c_str() + a.size() || !(v > 0 && v < 1))
      throw InvalidInput("--alpha: '" + a + "' is not a level strictly between 0 and 1");
    out.push_back(v);
  }
  if (out.empty()) throw InvalidInput("--alpha is empty; e.g. --alpha 0.05 or --alpha 0.01,0.05,0.1");
  return out;
}

// Before any work: DIR is a writable folder, or a missing one whose parent folder is writable
// (it is made at the end, once the run has succeeded).
void check_save_folder(const std::string& dir) {
  if (dir.empty()) throw InvalidInput("--save-replication: the folder name is empty");
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw InvalidInput("--save-replication: '" + dir + "' exists and is not a folder");
    if (access(dir.c_str(), W_OK | X_OK) != 0)
      throw InvalidInput("--save-replication: cannot write into the folder '" + dir + "': " + std::strerror(errno));
    return;
  }
  std::string parent = dir;
  while (parent.size() > 1 && parent.back() == '/') parent.pop_back();
  const std::size_t slash = parent.rfind('/');
  parent = slash == std::string::npos ? "." : slash == 0 ? "/" : parent.substr(0, slash);
  if (stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw InvalidInput("--save-replication: the folder '" + dir + "' is missing and so is its parent folder '" + parent +
                       "'; only the last level is made");
  if (access(parent.c_str(), W_OK | X_OK) != 0)
    throw InvalidInput("--save-replication: cannot make the folder '" + dir + "' in '" + parent + "': " + std::strerror(errno));
}

// --save-replication K DIR: K from 1 to --R, DIR a folder (made when missing, at the end).
void read_save_option(const PowerCli& p, PowerOptions& po) {
  if (p.save.empty()) return;
  const std::string& k = p.save[0];
  char* end = nullptr;
  errno = 0;
  const long long K = std::strtoll(k.c_str(), &end, 10);
  if (k.empty() || end != k.c_str() + k.size() || errno == ERANGE || K < 1 || K > p.R)
    throw InvalidInput("--save-replication: '" + k + "' is not a replication from 1 to --R (" + std::to_string(p.R) + ")");
  po.save_replication = K;
  po.save_dir = p.save[1];
  check_save_folder(po.save_dir);
}

PowerOptions power_options(const PowerCli& p, const CommonOptions& o) {
  PowerOptions po;
  po.target = p.target;
  po.effects = parse_effects(p.effects);
  po.splits = p.splits;
  po.pooled = p.pooled;
  po.tests = parse_tests(p.tests, po.diff);
  po.n_rep = p.R;
  po.wild_B = p.wild_B;
  po.alphas = parse_alphas(p.alpha);
  po.power_target = p.power_target;
  po.errors = p.errors == "wild"    ? PowerErrors::kWild
              : p.errors == "block" ? PowerErrors::kBlock
              : p.errors == "ar1"   ? PowerErrors::kAr1
                                    : PowerErrors::kNormal;
  if (p.rho_given) {
    if (po.errors != PowerErrors::kAr1) throw InvalidInput("--rho sets the AR(1) coefficient of --errors ar1; add --errors ar1");
    po.rho = p.rho;
  }
  po.calibrate = p.calibrate == "group" ? PowerCalibration::kGroup : PowerCalibration::kPooled;
  po.seed = p.seed;
  po.batch = p.batch;
  po.max_memory = max_memory_bytes(o);
  read_save_option(p, po);
  return po;
}

// --plot: the JSON report drawn by scripts/plot-power (matplotlib) into a temporary PNG, whose
// bytes are returned to be written with the other outputs. InvalidInput with the script's own
// message when it fails (matplotlib missing, say).
std::string draw_plot(const PowerResult& res) {
  const char* env = std::getenv("PANELBOOT_PLOT_POWER");
  const std::string script = env && *env ? env : PANELBOOT_PLOT_POWER;
  const std::string json = temp_file("power", ".json", "--plot: "), png = temp_file("power", ".png", "--plot: ");
  struct Cleanup {
    std::vector<std::string> files;
    ~Cleanup() {
      for (const std::string& f : files) unlink(f.c_str());
    }
  } cleanup{{json, png}};
  {
    std::ofstream o(json, std::ios::binary);
    o << render_power(res, Format::kJson);
  }
  const ScriptRun run = run_script(script, {json, png});
  if (run.spawn_error != 0) throw InvalidInput("--plot: cannot run " + script + ": " + std::strerror(run.spawn_error));
  if (!run.ok()) {
    const std::string last = run.last_line();
    throw InvalidInput("--plot: " + script + " failed" + (last.empty() ? std::string() : ": " + last));
  }
  std::string bytes = slurp_file(png);
  if (bytes.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)) != 0)
    throw InvalidInput("--plot: " + script + " exited 0 but wrote no PNG");
  return bytes;
}

// The report and the saved datasets, written together through the atomic outputs once the run
// has succeeded; the saved datasets' folder is made (one level) only then, and removed again if
// the writing fails.
void deliver_all(const PowerResult& res, const PowerOptions& po, const CommonOptions& o, const std::string& report,
                 const std::string& plot, std::ostream& out) {
  bool made = false;
  try {
    PendingOutputs files;  // destroyed (its temporaries removed) before the folder is
    if (!res.saved.empty()) {
      if (mkdir(po.save_dir.c_str(), 0777) == 0) made = true;
      else if (errno != EEXIST)
        throw InvalidInput("--save-replication: cannot make the folder '" + po.save_dir + "': " + std::strerror(errno));
      std::vector<NamedPath> outs{{"--output", o.output}, {"--plot", plot}};
      for (const SavedReplication& s : res.saved) outs.push_back({"--save-replication", s.file});
      check_output_paths(outs, {{"--data", o.data}});
      for (const SavedReplication& s : res.saved) files.add(s.file, s.content);
    }
    if (!plot.empty()) files.add(plot, draw_plot(res));
    deliver(files, report, o, out);
  } catch (...) {
    if (made) rmdir(po.save_dir.c_str());  // empty again: the pending files are gone
    throw;
  }
}

// --design: the options that describe data and its model have no place beside it.
void refuse_data_options(const CLI::App& cmd) {
  for (const char* name : {"--data", "--formula", "--cluster", "--split", "--pooled", "--where", "--panel", "--weights",
                           "--errors", "--rho", "--calibrate", "--placebo"})
    if (cmd.count(name) > 0)
      throw InvalidInput(std::string("--design simulates its own data and model (y ~ x | cluster + period, clustered by "
                                     "cluster, errors from the design); drop ") + name);
}

int cmd_power_design(CommonOptions& o, const PowerCli& p, ScaleRun& scale, std::ostream& out, std::ostream& err,
                     std::ostream& terminal) {
  std::vector<NamedPath> side = {{"--plot", p.plot}};
  for (const NamedPath& sp : scale.paths()) side.push_back(sp);
  check_paths(o, side);
  apply_threads(o.threads, err);
  const Format fmt = value_of(kFormatNames, o.format, "--format");
  std::vector<SyntheticDesign> designs;
  for (const std::string& spec : p.designs) designs.push_back(parse_design(spec));
  PowerOptions po = power_options(p, o);
  po.progress = &terminal;
  const auto t0 = Clock::now();
  const std::unique_ptr<Backend> backend = power_backend(o, err);
  po.runner = scale.start(DataFrame{}, po.seed, backend->name(), err);  // the designs are in the options
  PowerResult res;
  scale.run([&] { res = power_design_study(designs, fit_options(o), po, *backend); });
  if (scale.worker()) return 0;  // rank 0 writes the job's output
  if (scale.partial()) {
    deliver(scale.partial_text(), o, out);
    scale.finished(err);
    return 0;
  }
  res.backend = scale.backend_name(res.backend);
  res.timing.push_back({"total_s", seconds_since(t0)});
  res.threads = threads_in_use();
  keep_text_report([&] { return render_power(res, Format::kText); });
  deliver_all(res, po, o, render_power(res, fmt), p.plot, out);
  scale.finished(err);
  return 0;
}

int cmd_power(const CLI::App& cmd, CommonOptions& o, const PowerCli& p, const ScaleCli& sc, std::ostream& out,
              std::ostream& err, std::ostream& terminal) {
  if (!p.designs.empty()) refuse_data_options(cmd);
  else if (o.formulas.size() != 1) throw InvalidInput("power takes one --formula (the model each group estimates)");
  ScaleRun scale("power", &cmd, sc, o);
  if (!p.designs.empty()) return cmd_power_design(o, p, scale, out, err, terminal);
  std::vector<NamedPath> side = {{"--plot", p.plot}};
  for (const NamedPath& sp : scale.paths()) side.push_back(sp);
  check_paths(o, side);
  apply_threads(o.threads, err);
  const Format fmt = value_of(kFormatNames, o.format, "--format");
  PowerOptions po = power_options(p, o);
  if (po.errors == PowerErrors::kAr1 && o.panel.empty())
    throw InvalidInput("--errors ar1 needs the panel's unit and period: --panel id,time");
  if (p.placebo) {
    for (const char* name : {"--errors", "--rho", "--calibrate"})
      if (cmd.count(name) > 0)
        throw InvalidInput(std::string("--placebo keeps the data's own outcome and errors (only the placebo regressor is "
                                       "drawn); drop ") + name);
    if (o.panel.empty()) throw InvalidInput("--placebo copies the target's serial correlation within panel units: give --panel id,time");
    po.placebo = true;
  }
  po.progress = &terminal;
  FitOptions fo = fit_options(o);
  const auto t0 = Clock::now();
  const DataFrame df = read_input(o, err);
  const auto t1 = Clock::now();
  const Formula fm = parse_formula(o.formulas[0]);
  refuse_iv(fm, "power", "power studies simulate OLS models");
  const bool unit_series = po.errors == PowerErrors::kAr1 || po.placebo;
  SampleOptions so = sample_options(o, unit_series);
  if (unit_series) so.extra = {so.panel_id};  // the AR(1) errors and the placebo run over each unit's periods
  const std::unique_ptr<Backend> backend = power_backend(o, err);
  po.runner = scale.start(df, po.seed, backend->name(), err);
  PowerResult res;
  scale.run([&] { res = power_study(df, fm, so, fo, po, *backend); });
  if (scale.worker()) return 0;  // rank 0 writes the job's output
  if (scale.partial()) {  // the plot and saved datasets are the merge's to write
    deliver(scale.partial_text(), o, out);
    scale.finished(err);
    return 0;
  }
  res.backend = scale.backend_name(res.backend);
  const auto t2 = Clock::now();
  res.timing.insert(res.timing.begin(), {"read_s", seconds_between(t0, t1)});
  res.timing.push_back({"total_s", seconds_between(t0, t2)});
  res.threads = threads_in_use();
  keep_text_report([&] { return render_power(res, Format::kText); });
  deliver_all(res, po, o, render_power(res, fmt), p.plot, out);
  scale.finished(err);
  return 0;
}

void add_power_options(CLI::App* cmd, PowerCli& p) {
  cmd->add_option("--target", p.target, "The coefficient whose effect is varied (H0: it is 0); x with --design");
  cmd->add_option("--effects", p.effects,
                  "Effects: '0,0.001,0.002'; 'a:b:n' (n evenly spaced from a to b); 'x0.5,x1,x2' (multiples of the "
                  "full-sample estimate)")
      ->required();
  cmd->add_option("--design", p.designs,
                  "A synthetic design instead of data (repeatable): 'clusters=8,periods=12,obs=96,sizes=0.4:rest,"
                  "rho_x=0.7,rho_u=0.7,shocks=cluster-period[,shock_share=0.5]' (docs/POWER.md)")
      ->type_name("SPEC");
  cmd->add_option("--split", p.splits, "A grouping variable; each of its values is a group (repeatable)");
  cmd->add_flag("--pooled", p.pooled, "Include the whole sample as a group (always when no --split)");
  cmd->add_option("--tests", p.tests,
                  "crve (t with t(G-1)), wild (WCR, Rademacher; enumerated when 2^G <= --wild-B), wild-webb (WCR, "
                  "Webb), wcu (unrestricted, Rademacher); diff: per --split, whether the target's effect differs between "
                  "its groups (the interacted model, crve and the bootstraps asked for; a joint F with 3+ groups)")
      ->capture_default_str();
  add_monte_carlo_options(cmd, p.R, p.wild_B);
  cmd->add_option("--alpha", p.alpha, "Significance level(s), e.g. 0.01,0.05,0.1 (a test rejects when p <= alpha)")
      ->capture_default_str();
  cmd->add_option("--power-target", p.power_target, "The power the minimum detectable effect is read at")
      ->transform(real_in(0.5, 1, true))
      ->capture_default_str();
  cmd->add_option("--errors", p.errors,
                  "wild: each cluster's rescaled residuals times one N(0,1) draw; normal: iid N(0, RSS/(N-K)); "
                  "block: the clusters' rescaled residual blocks permuted across the clusters (equal sizes); "
                  "ar1: AR(1) within each panel unit over time (needs --panel id,time)")
      ->check(CLI::IsMember({"wild", "normal", "block", "ar1"}))
      ->capture_default_str();
  cmd->add_flag("--placebo", p.placebo,
               "Test a placebo regressor drawn per replication with --target's within-cluster and serial correlation, "
               "on the data's own outcome (true effect 0; --effects add effect x placebo); needs --panel id,time");
  cmd->add_option("--rho", p.rho, "The AR(1) coefficient of --errors ar1 (default: estimated, bias-corrected)")
      ->transform(real_in(-0.99, 0.99, false))
      ->each([&p](const std::string&) { p.rho_given = true; });
  cmd->add_option("--calibrate", p.calibrate, "group: each group's own fit; pooled: the whole sample's fit")
      ->check(CLI::IsMember({"group", "pooled"}))
      ->capture_default_str();
  add_seed_option(cmd, p.seed);
  cmd->add_option("--batch", p.batch, "Replications per batch (0: automatic); results do not depend on it")
      ->transform(whole_in(0, kMaxChunk));
  cmd->add_option("--save-replication", p.save,
                  "K DIR: write the K-th simulated dataset of each group and effect as CSV into DIR")
      ->expected(2)
      ->type_name("K DIR");
  cmd->add_option("--plot", p.plot,
                  "Draw the power curves into FILE.png (scripts/plot-power, matplotlib), written with the report")
      ->check(file_name())
      ->type_name("FILE.png");
}

}  // namespace

Command register_power(CLI::App& app) {
  auto o = std::make_shared<CommonOptions>();
  auto p = std::make_shared<PowerCli>();
  auto sc = std::make_shared<ScaleCli>();
  CLI::App* cmd = app.add_subcommand(
      "power", "Monte Carlo size, power and minimum detectable effect of cluster-robust tests on split samples");
  add_data_option(cmd, *o);
  add_panel_option(cmd, *o, "Panel structure 'id,time' (needed by lags and leads)", false);
  add_where_option(cmd, *o);
  add_sample_options(cmd, *o);
  add_threads_option(cmd, *o);
  add_backend_options(cmd, *o);
  add_formula_option(cmd, *o, "Model 'y ~ x1 + x2 | fe1 + fe2' (each group's regression)", false);
  add_cluster_option(cmd, o->cluster, "Cluster variable(s) of each group's regression: 'a' or 'a,b' (two-way)");
  add_cluster_convention_options(cmd, *o);
  add_power_options(cmd, *p);
  add_memory_option(cmd, *o);
  add_output_options(cmd, *o, {Format::kText, Format::kJson, Format::kMarkdown});
  cmd->footer(
      "Example: panelboot power -f 'newqua ~ rgzn + urban | province + year' --cluster province --target rgzn "
      "--effects 0:0.004:9 --split region --tests crve,wild --R 1000");
  add_scale_options(cmd, *sc);
  return {cmd, [cmd, o, p, sc](const Streams& s) { return cmd_power(*cmd, *o, *p, *sc, s.out, s.notices, s.terminal); }};
}

}  // namespace panelboot::cli
