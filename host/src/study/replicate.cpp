// `replicate`: the study's sections run through the engines, each number beside the command
// that reproduces it from the derived data (study_data.csv in the report), into one results tree.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <set>

#include "panelboot/config.hpp"
#include "panelboot/error.hpp"
#include "panelboot/formula.hpp"
#include "panelboot/power.hpp"
#include "panelboot/report.hpp"
#include "panelboot/study.hpp"
#include "panelboot/text.hpp"
#include "panelboot/threshold.hpp"
#include "panelboot/timing.hpp"
#include "panelboot/wild.hpp"
#include "report/format.hpp"

namespace panelboot {
namespace {
using report::num_or_null;
using Json = nlohmann::json;

const std::string kControls = "urban + ind + fdi + open + fin";
const std::string kFe = "province + year";
const std::string kCluster = "province";
const std::string kPanel = "province,year";
const std::string kPowerEffects = "x0,x0.25,x0.5,x0.75,x1,x1.25,x1.5,x1.75,x2,x2.5,x3";
constexpr std::int32_t kWebbMaxClusters = 11;

// One regression of the study's tables.
struct Spec {
  std::string id, section, table, column, title;
  std::string formula, where;
  std::vector<std::string> interest;  // the coefficients tested (wild, Webb)
  bool lags = false;                  // needs --panel (l() in the formula)
  std::string split, group;           // the power study's group of a split sample
  std::vector<std::pair<std::string, std::string>> labels;  // coefficient -> the paper's row name
  Spec(std::string id_, std::string section_, std::string table_, std::string column_, std::string title_,
       std::string formula_, std::string where_, std::vector<std::string> interest_)
      : id(std::move(id_)), section(std::move(section_)), table(std::move(table_)), column(std::move(column_)),
        title(std::move(title_)), formula(std::move(formula_)), where(std::move(where_)), interest(std::move(interest_)) {}
};

// A value as the shells of the commands take it: single-quoted.
std::string sh(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

class Study {
 public:
  Study(const StudyData& data, const StudyOptions& so, const Backend& backend)
      : data_(data), df_(data.df), so_(so), backend_(backend) {}

  Json run();

 private:
  bool has(const std::string& v) const { return df_.find(v) != nullptr; }
  void section(const std::string& id, const std::string& title);
  void skip(const std::string& id, const std::string& title, const std::string& why);
  // A section that cannot run on these data (too few rows in a group, an unbalanced panel) is
  // skipped with the engine's reason instead of ending the study.
  template <class F>
  void guarded(const std::string& id, const std::string& title, Json& slot, F&& body);
  void add_spec(Json& specs, Json& skipped, const Spec& sp);
  void note_skipped(const std::string& what, const InvalidInput& e) const;
  std::string mediation_where() const;
  std::string data_option() const { return "--data " + so_.data_name; }
  std::string common_args(const Spec& sp) const;
  FitOptions fit_options() const;
  Design design_of(const Spec& sp) const;
  WildOptions wild_options(const std::string& test, kernels::WeightType w) const;
  Json run_wild(const Spec& sp, const std::string& var, kernels::WeightType w, WildTrace* trace);
  Json run_spec(const Spec& sp);
  std::vector<Spec> table5() const;
  std::vector<Spec> robustness(Json& skipped) const;
  std::vector<Spec> heterogeneity(Json& skipped) const;
  std::vector<std::string> levels_of(const std::string& var, const std::vector<std::string>& first) const;
  std::string where_equal(const std::string& var, const std::string& level) const;
  Json power_section(const std::vector<std::string>& splits);
  void attach_power(Json& specs, const Json& power) const;
  Json mediation_section();
  Json iv_section();
  Json threshold_run(bool two_way);
  Json baseline_histogram(const WildTrace& trace, const Json& wild) const;
  Json settings() const;

  const StudyData& data_;
  const DataFrame& df_;
  const StudyOptions& so_;
  const Backend& backend_;
  Json sections_ = Json::array();
  int n_section_ = 0;
  WildTrace baseline_trace_;
  Json baseline_wild_;
};

constexpr int kSections = 8;

void Study::section(const std::string& id, const std::string& title) {
  ++n_section_;
  if (so_.progress) *so_.progress << "panelboot: replicate [" << n_section_ << "/" << kSections << "] " << title << "\n" << std::flush;
  sections_.push_back({{"id", id}, {"title", title}, {"status", "ok"}});
}

void Study::skip(const std::string& id, const std::string& title, const std::string& why) {
  ++n_section_;
  if (so_.progress)
    *so_.progress << "panelboot: replicate [" << n_section_ << "/" << kSections << "] " << title << ": skipped (" << why
                  << ")\n"
                  << std::flush;
  sections_.push_back({{"id", id}, {"title", title}, {"status", "skipped"}, {"reason", why}});
}

void Study::note_skipped(const std::string& what, const InvalidInput& e) const {
  if (so_.progress) *so_.progress << "panelboot: replicate: " << what << " skipped: " << printable(e.what(), 300) << "\n";
}

template <class F>
void Study::guarded(const std::string& id, const std::string& title, Json& slot, F&& body) {
  section(id, title);
  try {
    body();
  } catch (const InvalidInput& e) {
    sections_.back()["status"] = "skipped";
    sections_.back()["reason"] = e.what();
    slot = nullptr;
    note_skipped(title, e);
  }
}

void Study::add_spec(Json& specs, Json& skipped, const Spec& sp) {
  try {
    specs.push_back(run_spec(sp));
  } catch (const InvalidInput& e) {
    skipped.push_back({{"id", sp.id}, {"reason", e.what()}});
    note_skipped(sp.title, e);
  }
}

// The mediation's rows: those with both the mediator and the outcome (a comparison with a missing
// value is missing, and --where drops such rows), so that both equations and the total effect
// share one sample; no condition when neither is ever missing.
std::string Study::mediation_where() const {
  const Column& tec = df_.column("tec");
  const Column& y = df_.column("newqua");
  for (std::size_t r = 0; r < df_.n_rows(); ++r)
    if (tec.missing(r) || y.missing(r)) return "tec == tec and newqua == newqua";
  return "";
}

FitOptions Study::fit_options() const {
  FitOptions fo;
  fo.vcov = VcovType::kCluster;
  fo.level = so_.level;
  return fo;
}

Design Study::design_of(const Spec& sp) const {
  SampleOptions smp;
  smp.cluster = {kCluster};
  smp.where = sp.where;
  if (sp.lags) {
    smp.panel_id = "province";
    smp.panel_time = "year";
  }
  return build_design(df_, parse_formula(sp.formula), smp);
}

std::string Study::common_args(const Spec& sp) const {
  std::string s = data_option() + " -f " + sh(sp.formula) + " --cluster " + kCluster;
  if (!sp.where.empty()) s += " --where " + sh(sp.where);
  if (sp.lags) s += " --panel " + kPanel;
  if (so_.level != 0.95) s += " --level " + report::fmt_num("%.17g", so_.level);
  return s;
}

WildOptions Study::wild_options(const std::string& test, kernels::WeightType w) const {
  WildOptions wo;
  wo.tests = {test};
  wo.n_boot = so_.B;
  wo.weight = w;
  wo.level = so_.level;
  wo.seed = so_.seed;
  wo.progress = so_.progress;
  wo.max_memory = so_.max_memory;
  return wo;
}

Json Study::run_wild(const Spec& sp, const std::string& var, kernels::WeightType w, WildTrace* trace) {
  Design d = design_of(sp);
  const WildOptions wo = wild_options(var + " = 0", w);
  const WildResult res = wild_bootstrap(d, fit_options(), wo, backend_, trace);
  Json j = wild_json(res, wo)["tests"][0];
  j["method"] = res.method;
  j["weight_type"] = res.weight_type;
  j["n_bootclusters"] = res.n_bootclusters;
  std::string cmd = "panelboot wild " + common_args(sp) + " --test " + sh(var + " = 0") + " --B " +
                    std::to_string(so_.B) + " --seed " + std::to_string(so_.seed);
  if (w != kernels::WeightType::kRademacher) cmd += " --weight-type " + weight_type_name(w);
  j["command"] = cmd;
  return j;
}

// One column of a table: the fit (as `fit --format json` writes its model), and per coefficient of
// interest the WCR bootstrap (and Webb's weights with few clusters).
Json Study::run_spec(const Spec& sp) {
  Design d = design_of(sp);
  const FitResult fr = fit(d, fit_options());
  Json j;
  j["id"] = sp.id;
  j["section"] = sp.section;
  j["table"] = sp.table;
  j["column"] = sp.column;
  j["title"] = sp.title;
  j["formula"] = sp.formula;
  j["where"] = sp.where.empty() ? Json() : Json(sp.where);
  j["labels"] = Json::object();
  for (const auto& [k, v] : sp.labels) j["labels"][k] = v;
  j["fit"] = fit_json({fr})["models"][0];
  j["fit_command"] = "panelboot fit " + common_args(sp);
  j["split"] = sp.split.empty() ? Json() : Json(sp.split);
  j["group"] = sp.split.empty() ? Json() : Json(sp.group);
  const std::int32_t G = fr.min_clusters();
  j["interest"] = Json::array();
  for (const std::string& var : sp.interest) {
    Json row;
    row["variable"] = var;
    for (const Coefficient& c : fr.coefficients)
      if (c.name == var) {
        row["estimate"] = c.estimate;
        row["std_error"] = c.std_error;
        row["t_stat"] = num_or_null(c.t_stat);
        row["p_value"] = num_or_null(c.p_value);
      }
    if (!row.contains("estimate")) throw InvalidInput(sp.title + ": " + quoted(var) + " is not estimated (" + sp.formula + ")");
    row["reference"] = fr.reference;
    const bool baseline = sp.id == "table5_2" && var == "rgzn";
    if (baseline) baseline_trace_.keep = static_cast<std::size_t>(so_.B);
    row["wild"] = run_wild(sp, var, kernels::WeightType::kRademacher, baseline ? &baseline_trace_ : nullptr);
    if (baseline) {
      baseline_wild_ = row["wild"];
      baseline_wild_["df"] = num_or_null(fr.df_inference);
    }
    row["webb"] = G <= kWebbMaxClusters ? run_wild(sp, var, kernels::WeightType::kWebb, nullptr) : Json();
    row["power"] = nullptr;  // attached after the power study
    j["interest"].push_back(row);
  }
  return j;
}

std::vector<Spec> Study::table5() const {
  return {{"table5_1", "baseline", "Table 5", "(1)", "Baseline, no controls", "newqua ~ rgzn | " + kFe, "", {"rgzn"}},
          {"table5_2", "baseline", "Table 5", "(2)", "Baseline with controls",
           "newqua ~ rgzn + " + kControls + " | " + kFe, "", {"rgzn"}}};
}

std::vector<Spec> Study::robustness(Json& skipped) const {
  std::vector<Spec> out;
  if (has("ai_pc1")) {
    Spec s{"table7_pca", "robustness", "Table 7", "PCA index", "rgzn replaced by the PC1 index of its sub-indicators",
           "newqua ~ ai_pc1 + " + kControls + " | " + kFe, "", {"ai_pc1"}};
    s.labels = {{"ai_pc1", "rgzn"}};
    out.push_back(s);
  } else {
    skipped.push_back({{"id", "table7_pca"}, {"reason", "the ten ai_* sub-indicators are not all in the data"}});
  }
  Spec w{"table7_winsor", "robustness", "Table 7", "Winsorized", "All continuous variables winsorized at 1%/99%",
         "newqua_w ~ rgzn_w + urban_w + ind_w + fdi_w + open_w + fin_w | " + kFe, "", {"rgzn_w"}};
  for (const char* v : {"newqua", "rgzn", "urban", "ind", "fdi", "open", "fin"}) w.labels.push_back({std::string(v) + "_w", v});
  out.push_back(w);
  if (has("municipality")) {
    out.push_back({"table7_nomuni", "robustness", "Table 7", "No municipalities", "The four municipalities dropped",
                   "newqua ~ rgzn + " + kControls + " | " + kFe, "municipality == 0", {"rgzn"}});
  } else {
    skipped.push_back({{"id", "table7_nomuni"}, {"reason", "no variable 'municipality' (1 for Beijing, Shanghai, Tianjin, "
                                                           "Chongqing) in the data; --map municipality=YOURS"}});
  }
  return out;
}

// The values of a grouping variable over all rows, `first` ones first in that order,
// then the others (text alphabetically, numbers increasing).
std::vector<std::string> Study::levels_of(const std::string& var, const std::vector<std::string>& first) const {
  const Column& c = df_.column(var);
  std::set<std::string> texts;
  std::set<double> nums;
  for (std::size_t r = 0; r < df_.n_rows(); ++r) {
    if (c.missing(r)) continue;
    if (c.is_string()) texts.insert(c.levels[static_cast<std::size_t>(c.codes[r])]);
    else nums.insert(c.value(r));
  }
  std::vector<std::string> out;
  for (const std::string& f : first)
    if (texts.count(f)) out.push_back(f);
  for (const std::string& t : texts)
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  for (double v : nums) out.push_back(report::fmt_num("%.17g", v));
  return out;
}

std::string Study::where_equal(const std::string& var, const std::string& level) const {
  if (!df_.column(var).is_string()) return var + " == " + level;
  return var + " == \"" + level + "\"";
}

std::vector<Spec> Study::heterogeneity(Json& skipped) const {
  std::vector<Spec> out;
  const std::vector<std::pair<std::string, std::vector<std::string>>> splits = {
      {"region", {"East", "Central", "West"}}, {"devlevel", {"high", "average"}}};
  for (const auto& [var, first] : splits) {
    if (!has(var)) {
      skipped.push_back({{"id", "table8_" + var},
                         {"reason", "no variable " + quoted(var) + " in the data; --map " + var + "=YOURS"}});
      continue;
    }
    for (const std::string& level : levels_of(var, first)) {
      Spec s{"table8_" + level, "heterogeneity", "Table 8", level, var + " = " + level,
             "newqua ~ rgzn + " + kControls + " | " + kFe, where_equal(var, level), {"rgzn"}};
      s.split = var;
      s.group = level;
      out.push_back(s);
    }
  }
  return out;
}

Json Study::power_section(const std::vector<std::string>& splits) {
  PowerOptions po;
  po.target = "rgzn";
  po.effects = parse_effects(kPowerEffects);
  po.splits = splits;
  po.tests = {PowerTest::kCrve, PowerTest::kWild, PowerTest::kWildWebb};
  po.n_rep = so_.R;
  po.wild_B = so_.wild_B;
  po.seed = so_.seed;
  po.progress = so_.progress;
  po.max_memory = so_.max_memory;
  SampleOptions smp;
  smp.cluster = {kCluster};
  const Formula fm = parse_formula("newqua ~ rgzn + " + kControls + " | " + kFe);
  const Backend& pb = so_.power_backend ? *so_.power_backend : backend_;
  const PowerResult res = power_study(df_, fm, smp, fit_options(), po, pb);
  Json j = Json::parse(render_power(res, Format::kJson));
  std::string cmd = "panelboot power " + data_option() + " -f " + sh(fm.text) + " --cluster " + kCluster +
                    " --target rgzn --effects " + kPowerEffects;
  for (const std::string& s : splits) cmd += " --split " + s;
  cmd += " --tests crve,wild,wild-webb --R " + std::to_string(so_.R) + " --wild-B " + std::to_string(so_.wild_B) +
         " --seed " + std::to_string(so_.seed);
  j["command_line"] = cmd;
  return j;
}

// Beside each split's coefficient: the size (effect 0) and the power at the full-sample estimate of
// each test, and the MDE at the power target.
void Study::attach_power(Json& specs, const Json& power) const {
  const double full = power["full_sample_estimate"].get<double>();
  for (Json& sp : specs) {
    if (sp["split"].is_null()) continue;
    for (Json& row : sp["interest"]) {
      Json p = Json::object();
      for (const Json& cell : power["results"]) {
        if (cell["split"] != sp["split"] || cell["group"] != sp["group"]) continue;
        const double e = cell["effect"].get<double>();
        const std::string test = cell["test"];
        if (e == 0) p["size"][test] = cell["rejection_rate"];
        if (e == full) p["power"][test] = cell["rejection_rate"];
      }
      for (const Json& m : power["mde"])
        if (m["split"] == sp["split"] && m["group"] == sp["group"]) p["mde"][m["test"].get<std::string>()] = m["effect"];
      for (const Json& g : power["calibration"])
        if (g["split"] == sp["split"] && g["group"] == sp["group"]) p["n_clusters"] = g["n_clusters"];
      p["effect"] = full;
      p["alpha"] = power["alpha"].is_array() ? power["alpha"][0] : power["alpha"];
      p["power_target"] = power["power_target"];
      row["power"] = p;
    }
  }
}

Json Study::mediation_section() {
  const std::string where = mediation_where();
  const Spec a{"table9_tec", "mediation", "Table 9", "tec", "Mediator equation: tec on rgzn and controls",
               "tec ~ rgzn + " + kControls + " | " + kFe, where, {"rgzn"}};
  const Spec b{"table9_newqua", "mediation", "Table 9", "newqua", "Outcome equation: newqua on rgzn, tec and controls",
               "newqua ~ rgzn + tec + " + kControls + " | " + kFe, where, {"rgzn", "tec"}};
  // the total effect c on the same rows (Table 5 column (2) when no row lacks tec)
  const Spec total{"table9_total", "mediation", "Table 9", "total", "Total effect on the mediation's sample",
                   "newqua ~ rgzn + " + kControls + " | " + kFe, where, {"rgzn"}};
  Design dt = design_of(total);
  const FitResult total_fit = fit(dt, fit_options());
  double c = 0;
  for (const Coefficient& k : total_fit.coefficients)
    if (k.name == "rgzn") c = k.estimate;
  Design da = design_of(a), db = design_of(b);
  MediationOptions mo;
  mo.x = "rgzn";
  mo.m = "tec";
  mo.n_boot = so_.B;
  mo.seed = so_.seed;
  mo.level = so_.level;
  const MediationResult r = mediation(da, db, fit_options(), mo);
  Json j;
  j["treatment"] = "rgzn";
  j["mediator"] = "tec";
  j["outcome"] = "newqua";
  j["nobs"] = r.n_obs;
  j["n_clusters"] = r.n_clusters;
  j["a"] = r.a;
  j["se_a"] = r.se_a;
  j["b"] = r.b;
  j["se_b"] = r.se_b;
  j["cov_ab"] = r.cov_ab;
  j["corr_ab"] = num_or_null(r.corr_ab);
  j["indirect"] = r.indirect;
  j["se_delta"] = r.se_delta;
  j["z_delta"] = num_or_null(r.z_delta);
  j["p_delta"] = num_or_null(r.p_delta);
  j["ci_delta"] = {r.ci_delta_low, r.ci_delta_high};
  j["se_sobel"] = r.se_sobel;
  j["p_sobel"] = num_or_null(r.p_sobel);
  j["ci_boot"] = {r.ci_boot_low, r.ci_boot_high};
  j["p_boot"] = r.p_boot;
  j["n_boot"] = r.n_boot;
  j["boot_method"] = "WCU, one Rademacher weight per province shared by both equations, residuals scaled by "
                     "sqrt(each equation's small-sample factor), percentile interval of a*b*";
  j["seed"] = so_.seed;
  j["level"] = so_.level;
  j["total_effect"] = c;
  j["total_command"] = "panelboot fit " + common_args(total);
  j["share_mediated"] = num_or_null(r.indirect / c);
  j["equations"] = {run_spec(a), run_spec(b)};
  return j;
}

Json Study::iv_section() {
  const std::string inst = so_.instrument.empty() ? "l(rgzn,1)" : so_.instrument;
  Spec s{"iv", "iv", "Section 4.2", "IV", "rgzn instrumented by " + inst,
         "newqua ~ " + kControls + " | " + kFe + " | rgzn ~ " + inst, "", {"rgzn"}};
  s.lags = true;
  Design d = design_of(s);
  const FitResult fr = fit(d, fit_options());
  Json j;
  j["instrument"] = inst;
  j["formula"] = s.formula;
  j["fit"] = fit_json({fr})["models"][0];
  j["fit_command"] = "panelboot fit " + common_args(s);
  Design dw = design_of(s);
  WildOptions wo = wild_options("rgzn = 0", kernels::WeightType::kRademacher);
  wo.ar = true;
  const WildResult wr = wild_bootstrap(dw, fit_options(), wo, backend_);
  const Json wj = wild_json(wr, wo);
  j["wild"] = wj["tests"];
  j["method"] = wr.method;
  if (wj.contains("pvalue_recommended")) j["pvalue_recommended"] = wj["pvalue_recommended"];
  j["wild_command"] = "panelboot wild " + common_args(s) + " --test 'rgzn = 0' --ar --B " + std::to_string(so_.B) +
                      " --seed " + std::to_string(so_.seed);
  return j;
}

Json Study::threshold_run(bool two_way) {
  ThresholdOptions to;
  to.formula = "newqua ~ rgzn + urban + ind + fdi + open | province";
  to.regime = {"fin"};
  to.threshold_var = "fin";
  to.sample.cluster = {kCluster};
  to.sample.panel_id = "province";
  to.sample.panel_time = "year";
  to.sample.need_time = true;
  to.n_thresholds = 2;
  to.n_boot = so_.threshold_B;
  to.seed = so_.seed;
  to.vcov = "cluster";
  to.level = so_.level;
  to.keep_regimes = false;
  to.time_effects = two_way;
  to.progress = so_.progress;
  to.max_memory = so_.max_memory;
  const ThresholdResult r = estimate_threshold(df_, to, backend_);
  Json j = Json::parse(render_threshold(r, to, Format::kJson));
  std::string cmd = "panelboot threshold " + data_option() + " -f " + sh(to.formula) +
                    " --panel province,year --regime fin --threshold-var fin --thresholds 2 --cluster province --B " +
                    std::to_string(so_.threshold_B) + " --seed " + std::to_string(so_.seed);
  if (two_way) cmd += " --time-effects";
  if (so_.level != 0.95) cmd += " --level " + report::fmt_num("%.17g", so_.level);
  j["command_line"] = cmd;
  return j;
}

// The bootstrap t* of the baseline test as a histogram (60 bins over their range and the observed t).
Json Study::baseline_histogram(const WildTrace& trace, const Json& wild) const {
  if (trace.stats.empty() || trace.stats[0].empty()) return nullptr;
  std::vector<double> t;
  for (double v : trace.stats[0])
    if (std::isfinite(v)) t.push_back(v);
  if (t.empty()) return nullptr;
  const double obs = wild["t_stat"].get<double>();
  double lo = std::min(*std::min_element(t.begin(), t.end()), obs);
  double hi = std::max(*std::max_element(t.begin(), t.end()), obs);
  if (!(hi > lo)) hi = lo + 1;
  constexpr int kBins = 60;
  std::vector<double> edges(kBins + 1);
  for (int i = 0; i <= kBins; ++i) edges[static_cast<std::size_t>(i)] = lo + (hi - lo) * i / kBins;
  std::vector<std::int64_t> counts(kBins, 0);
  for (double v : t) counts[static_cast<std::size_t>(std::min(kBins - 1, static_cast<int>((v - lo) / (hi - lo) * kBins)))]++;
  Json j;
  j["spec"] = "table5_2";
  j["variable"] = "rgzn";
  j["t_stat"] = obs;
  j["df"] = wild["df"];  // the reference t(G-1) the figure draws beside the t*
  j["n_boot"] = wild["n_boot"];
  j["enumerated"] = wild["enumerated"];
  j["method"] = wild["method"];
  j["weight_type"] = wild["weight_type"];
  j["p_value"] = wild["p_value"];
  j["histogram"] = {{"edges", edges}, {"counts", counts}};
  return j;
}

Json Study::settings() const {
  return {{"B", so_.B},           {"R", so_.R},         {"wild_B", so_.wild_B}, {"threshold_B", so_.threshold_B},
          {"seed", so_.seed},     {"level", so_.level}, {"quick", so_.quick},   {"cluster", kCluster},
          {"fixed_effects", kFe}, {"controls", kControls}, {"power_effects", kPowerEffects},
          {"data_file", so_.data_name}};
}

Json Study::run() {
  const auto t0 = Clock::now();
  Json out;
  out["program"] = "panelboot";
  out["version"] = PANELBOOT_VERSION;
  out["command"] = "replicate";
  out["data_source"] = df_.source;
  out["backend"] = backend_.name();
  out["settings"] = settings();
  out["derived"] = data_.derived;
  Json skipped = Json::array();
  Json specs = Json::array();
  Json timing = Json::object();
  auto timed = [&](const std::string& key, auto&& f) {
    const auto t = Clock::now();
    f();
    timing[key] = seconds_since(t);
  };

  section("baseline", "Table 5: baseline two-way FE");
  timed("baseline_s", [&] {
    for (const Spec& s : table5()) specs.push_back(run_spec(s));
  });
  out["baseline_bootstrap"] = baseline_histogram(baseline_trace_, baseline_wild_);

  section("lag", "Table 6: rgzn lagged one year");
  timed("lag_s", [&] {
    Spec s{"table6", "lag", "Table 6", "Lag", "rgzn lagged one year", "newqua ~ l(rgzn,1) + " + kControls + " | " + kFe,
           "", {"l(rgzn,1)"}};
    s.lags = true;
    s.labels = {{"l(rgzn,1)", "rgzn_{t-1}"}};
    add_spec(specs, skipped, s);
  });

  section("robustness", "Table 7: robustness (PCA index, winsorized, no municipalities)");
  timed("robustness_s", [&] {
    for (const Spec& s : robustness(skipped)) add_spec(specs, skipped, s);
  });

  const std::vector<Spec> splits = heterogeneity(skipped);
  std::vector<std::string> split_vars;
  for (const Spec& s : splits)
    if (std::find(split_vars.begin(), split_vars.end(), s.split) == split_vars.end()) split_vars.push_back(s.split);
  out["power"] = nullptr;
  if (splits.empty()) {
    skip("heterogeneity", "Table 8: heterogeneity with power", "the data have neither 'region' nor 'devlevel'");
  } else {
    section("heterogeneity", "Table 8: heterogeneity, with the splits' size, power and MDE");
    timed("heterogeneity_s", [&] {
      for (const Spec& s : splits) add_spec(specs, skipped, s);
    });
    try {
      timed("power_s", [&] { out["power"] = power_section(split_vars); });
      attach_power(specs, out["power"]);
    } catch (const InvalidInput& e) {
      out["power"] = nullptr;
      skipped.push_back({{"id", "power"}, {"reason", std::string("the power study: ") + e.what()}});
      note_skipped("the power study", e);
    }
  }

  if (has("tec")) {
    guarded("mediation", "Table 9: mediation through tec", out["mediation"],
            [&] { timed("mediation_s", [&] { out["mediation"] = mediation_section(); }); });
  } else {
    skip("mediation", "Table 9: mediation through tec", "no variable 'tec' (the mediator) in the data; --map tec=YOURS");
    out["mediation"] = nullptr;
  }

  guarded("iv", "Instrumental variables (Section 4.2)", out["iv"], [&] { timed("iv_s", [&] { out["iv"] = iv_section(); }); });

  guarded("threshold", "Panel threshold in fin (Section 5.3)", out["threshold"], [&] {
    timed("threshold_s", [&] { out["threshold"] = {{"hansen", threshold_run(false)}, {"two_way", threshold_run(true)}}; });
  });

  guarded("audit", "Audit of the paper's published tables", out["audit"], [&] {
    timed("audit_s",
          [&] { out["audit"] = audit_paper_tables(so_.audit_table ? *so_.audit_table : embedded_paper_tables()); });
  });

  out["simulated_data"] = specs[0]["fit"]["simulated_data"];
  out["specifications"] = specs;
  out["skipped"] = skipped;
  out["sections"] = sections_;
  timing["total_s"] = seconds_since(t0);
  out["timing"] = timing;
  if (out["simulated_data"].get<bool>()) out["note"] = kSimulatedNote;
  return out;
}

}  // namespace

Json run_study(const StudyData& data, const StudyOptions& so, const Backend& backend) {
  return Study(data, so, backend).run();
}

}  // namespace panelboot
