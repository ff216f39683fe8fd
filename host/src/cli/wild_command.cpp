// `panelboot wild`: wild cluster bootstrap tests and confidence intervals.
#include "options.hpp"
#include "scale.hpp"

#include <chrono>

#include "panelboot/error.hpp"
#include "panelboot/formula.hpp"
#include "panelboot/mpi.hpp"
#include "panelboot/wild.hpp"

namespace panelboot::cli {
namespace {

struct WildCli {
  std::vector<std::string> tests;
  bool joint = false, no_ci = false, ar = false;
  std::int64_t B = 9999;
  std::string weight_type = "rademacher", impose_null = "yes", enumerate = "auto",
              pvalue = "symmetric", bootcluster, ties = "strict", padjust = "none", small = "yes";
  std::uint64_t seed = kDefaultSeed;
  std::size_t chunk = 0;
  std::string save_draws;
};

// --save-draws: each test's bootstrap statistics, replication by replication (CSV).
std::string draws_csv(const WildResult& res) {
  std::string out = "test,replication,statistic\n";
  char buf[96];
  for (std::size_t t = 0; t < res.tests.size(); ++t)
    for (std::size_t b = 0; b < res.tests[t].draws.size(); ++b) {
      std::snprintf(buf, sizeof buf, "%zu,%zu,%.17g\n", t + 1, b, res.tests[t].draws[b]);
      out += buf;
    }
  return out;
}

void check_save_draws(const WildCli& w, const ScaleCli& sc) {
  if (w.save_draws.empty()) return;
  if (!sc.shard.empty() || !sc.checkpoint.empty() || mpi::session())
    throw InvalidInput("--save-draws needs every replication computed in one run: not with --shard, --checkpoint or MPI ranks");
}

int cmd_wild(CLI::App* app, CommonOptions& o, const WildCli& w, const ScaleCli& sc, std::ostream& out, std::ostream& err,
             std::ostream& terminal) {
  ScaleRun scale("wild", app, sc, o,
                 w.no_ci ? "" : "--checkpoint on wild needs --no-ci: the confidence interval needs every replication's "
                                "pieces (40 bytes each), which a checkpoint would rewrite at every save; add --no-ci, "
                                "or split the run with --shard i/n, whose parts keep them for merge");
  if (o.formulas.size() != 1)
    throw InvalidInput("wild takes one --formula (the model whose coefficients --test restricts)");
  if (o.cluster.empty())
    throw InvalidInput("wild needs --cluster VAR (or --cluster none for the heteroskedastic wild "
                       "bootstrap); without it other tools silently bootstrap observations, which "
                       "is wrong for clustered data");
  check_save_draws(w, sc);
  std::vector<NamedPath> side = scale.paths();
  if (!w.save_draws.empty()) side.push_back({"--save-draws", w.save_draws});
  check_paths(o, side);
  apply_threads(o.threads, err);
  const Format fmt = value_of(kFormatNames, o.format, "--format");
  WildOptions wo;
  wo.tests = w.tests;
  wo.joint = w.joint;
  const std::int64_t B = w.B;
  wo.n_boot = B;
  wo.progress = &terminal;
  wo.max_memory = max_memory_bytes(o);
  if (B < 99) err << "panelboot: warning: --B " << B << " is below 99; the bootstrap p-value will be coarse\n";
  wo.weight = value_of(kWeightTypeNames, w.weight_type, "--weight-type");
  wo.impose_null = w.impose_null == "yes";
  wo.enumerate = value_of(kEnumerateNames, w.enumerate, "--enumerate");
  wo.pvalue = value_of(kPValueTypeNames, w.pvalue, "--pvalue");
  wo.ties = value_of(kTiesNames, w.ties, "--ties");
  wo.padjust = value_of(kPAdjustNames, w.padjust, "--padjust");
  wo.level = o.level;
  wo.bootcluster = w.bootcluster;
  wo.seed = w.seed;
  wo.chunk = w.chunk;
  wo.ci = !w.no_ci;
  wo.ar = w.ar;
  wo.keep_draws = !w.save_draws.empty();
  FitOptions fo = fit_options(o);
  fo.small = w.small == "yes";
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
  const std::unique_ptr<Backend> backend = open_backend(o, err);
  wo.runner = scale.start(df, wo.seed, backend->name(), err);
  const auto t2 = Clock::now();
  WildResult res;
  scale.run([&] { res = wild_bootstrap(d, fo, wo, *backend); });
  if (scale.worker()) return 0;  // rank 0 writes the job's output
  const auto t3 = Clock::now();
  if (scale.partial()) {
    deliver(scale.partial_text(), o, out);
    scale.finished(err);
    return 0;
  }
  res.backend = scale.backend_name(res.backend);
  res.timing = {{"read_s", seconds_between(t0, t1)}, {"design_s", seconds_between(t1, t2)},
                {"fit_and_bootstrap_s", seconds_between(t2, t3)}};
  res.threads = threads_in_use();
  res.fit.warnings.insert(res.fit.warnings.begin(), df.warnings.begin(), df.warnings.end());
  warn_serious(res.fit, err);
  keep_text_report([&] { return render_wild(res, wo, Format::kText); });
  PendingOutputs files;  // written with the report, only when the whole run succeeded
  if (!w.save_draws.empty()) files.add(w.save_draws, draws_csv(res));
  deliver(files, render_wild(res, wo, fmt), o, out);
  scale.finished(err);
  return 0;
}

void add_wild_options(CLI::App* cmd, WildCli& w) {
  cmd->add_option("--test", w.tests, "Null hypothesis, e.g. 'x1 = 0.04' or 'x1 - x2 = 0' (repeatable)")->required();
  cmd->add_flag("--joint", w.joint, "One Wald/F test of all --test rows (reported first)");
  cmd->add_flag("--ar", w.ar,
                "IV models: also the wild bootstrap Anderson-Rubin test of each --test and its confidence set "
                "(robust to weak instruments; possibly unbounded or two disjoint rays)");
  add_replications_option(cmd, w.B, 1, kMaxWildB, "Bootstrap replications");
  add_choice_option(cmd, "--weight-type", w.weight_type, kWeightTypeNames,
                    choices(kWeightTypeNames));
  cmd->add_option("--impose-null", w.impose_null,
                  "yes: WCR (null imposed; IV: WRE, restricted in both equations); no: WCU (IV: WUE)")
      ->check(CLI::IsMember({"yes", "no"}))
      ->capture_default_str();
  add_choice_option(cmd, "--enumerate", w.enumerate, kEnumerateNames,
                    "auto: all 2^G sign vectors when 2^G <= B (Rademacher); always (OLS: G <= 40, a Gray-code "
                    "walk; IV models: G <= 26, every vector in full); never");
  add_choice_option(cmd, "--pvalue", w.pvalue, kPValueTypeNames, choices(kPValueTypeNames));
  cmd->add_option("--bootcluster", w.bootcluster,
                  "Bootstrap clusters: VAR or 'intersection' (default: the error clustering with the fewest "
                  "clusters)");
  add_choice_option(cmd, "--ties", w.ties, kTiesNames,
                    "strict: statistics within 1e-10 of |t| not counted; inclusive: counted");
  add_choice_option(cmd, "--padjust", w.padjust, kPAdjustNames, choices(kPAdjustNames) + " across several --test");
  add_seed_option(cmd, w.seed);
  add_small_option(cmd, w.small);
  cmd->add_option("--save-draws", w.save_draws,
                  "Write each test's bootstrap statistics (t*, or F* with --joint), replication by replication, "
                  "as CSV test,replication,statistic (drawn replications or a stored enumeration)")
      ->check(file_name());
  cmd->add_option("--chunk", w.chunk, "Replications per batch (0: automatic); results do not depend on it")
      ->transform(whole_in(0, kMaxChunk));
}

}  // namespace

Command register_wild(CLI::App& app) {
  auto o = std::make_shared<CommonOptions>();
  auto w = std::make_shared<WildCli>();
  auto sc = std::make_shared<ScaleCli>();
  CLI::App* cmd = app.add_subcommand(
      "wild", "Wild cluster bootstrap tests and confidence intervals (WCR/WCU; IV models: WRE/WUE and the "
              "Anderson-Rubin test), exact and fast");
  add_model_options(cmd, *o, "Model 'y ~ x1 + x2 | fe1 + fe2', or IV 'y ~ x | fe1 + fe2 | d ~ z1 + z2'");
  add_wild_options(cmd, *w);
  add_memory_option(cmd, *o);
  cmd->add_flag("--no-ci", w->no_ci, "Skip the test-inversion confidence interval");
  add_scale_options(cmd, *sc);
  add_output_options(cmd, *o, {Format::kText, Format::kJson, Format::kMarkdown, Format::kLatex, Format::kCsv});
  cmd->footer("Example: panelboot wild --data d.csv -f 'y ~ x | id + year' --cluster id --test 'x = 0' --B 99999\n"
              "IV (WRE): panelboot wild --data d.csv -f 'y ~ x | id + year | d ~ z' --cluster id --test 'd = 0' --ar");
  return {cmd, [cmd, o, w, sc](const Streams& s) { return cmd_wild(cmd, *o, *w, *sc, s.out, s.notices, s.terminal); }};
}

}  // namespace panelboot::cli
