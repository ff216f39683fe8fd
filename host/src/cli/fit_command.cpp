// `panelboot fit`: fixed-effects OLS, one or several models side by side.
#include "options.hpp"

#include "panelboot/error.hpp"
#include "panelboot/formula.hpp"

namespace panelboot::cli {
namespace {

struct IvFlags {
  bool first_stage = false;
  std::string small = "yes";
};

int cmd_fit(const CommonOptions& o, const std::vector<std::string>& wald, const IvFlags& iv, std::ostream& out,
            std::ostream& err) {
  if (o.formulas.empty())
    throw InvalidInput("fit needs --formula, e.g. --formula 'y ~ x1 + x2 | id + year'");
  check_paths(o);
  apply_threads(o.threads, err);
  const Format fmt = value_of(kFormatNames, o.format, "--format");
  FitOptions fo = fit_options(o);
  fo.wald = wald;
  fo.small = iv.small == "yes";
  if (iv.first_stage && fmt != Format::kText)
    throw InvalidInput("--first-stage prints the first-stage regressions in the text output; with --format " + o.format +
                       " drop it (the JSON always holds them in first_stages[])");
  note_host_only(o, err, "fit solves one regression per model");
  const DataFrame df = read_input(o, err);
  std::vector<FitResult> results;
  for (const std::string& ftext : o.formulas) {
    const auto t0 = Clock::now();
    const Formula fm = parse_formula(ftext);
    SampleOptions so = sample_options(o, fo.vcov == VcovType::kDk);
    so.defer_columns = true;  // df outlives the fit
    Design d = build_design(df, fm, so);
    const auto t1 = Clock::now();
    results.push_back(fit(d, fo));
    results.back().timing = {{"design_s", seconds_between(t0, t1)}, {"fit_s", seconds_since(t1)}};
    results.back().warnings.insert(results.back().warnings.begin(), df.warnings.begin(), df.warnings.end());
    warn_serious(results.back(), err);
  }
  keep_text_report([&] { return render_fit(results, Format::kText, false); });
  deliver(render_fit(results, fmt, iv.first_stage), o, out);
  return 0;
}

}  // namespace

Command register_fit(CLI::App& app) {
  auto o = std::make_shared<CommonOptions>();
  auto wald = std::make_shared<std::vector<std::string>>();
  auto iv = std::make_shared<IvFlags>();
  CLI::App* cmd = app.add_subcommand(
      "fit", "Fixed-effects OLS or IV (2SLS) with iid, HC1, cluster-robust (one- or multi-way) or "
             "Driscoll-Kraay standard errors, and the weak-instrument diagnostics");
  add_model_options(cmd, *o, "Model 'y ~ x1 + x2 | fe1 + fe2' (repeat for several models side by side)");
  add_vcov_option(cmd, o->vcov, accepted_names(kVcovNames),
                  choices(kVcovNames) + " (default: cluster with --cluster, else iid)");
  add_dk_options(cmd, *o);
  cmd->add_option("--wald", *wald, "Joint test, e.g. 'x1 = 0, x2 = 0' (repeatable)");
  add_small_option(cmd, iv->small);
  cmd->add_flag("--first-stage", iv->first_stage,
                "IV models: print each first-stage regression (always in the JSON)");
  add_output_options(cmd, *o, {Format::kText, Format::kJson, Format::kMarkdown, Format::kLatex, Format::kCsv});
  cmd->footer(
      "Formula: y ~ x1 + x2 + a:b + a*b + i(f) + i(f, ref=v) + i(f, x) + I(x^2) + log(x) + l(x, 1)"
      " + f(x, 1) [+ 0] | fe1 + fe2 + fe3^fe4\n"
      "IV (2SLS): y ~ x_exo | fe1 + fe2 | x_endo ~ z1 + z2   (without FE: y ~ x_exo | x_endo ~ z)\n"
      "Example: panelboot fit --formula 'newqua ~ rgzn + urban | province + year' --cluster province");
  return {cmd, [o, wald, iv](const Streams& s) { return cmd_fit(*o, *wald, *iv, s.out, s.notices); }};
}

}  // namespace panelboot::cli
