// `panelboot threshold`'s report (text or JSON) and its side files (--save-regimes, --lr-curve).
#include <cmath>
#include <cstdio>
#include <sstream>

#include "panelboot/error.hpp"
#include "panelboot/report.hpp"
#include "panelboot/threshold.hpp"
#include "report/format.hpp"

namespace panelboot {
namespace {
using report::num_or_null;

nlohmann::json pairs_json(const std::vector<std::pair<double, double>>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& ci : v) a.push_back({ci.first, ci.second});
  return a;
}

// The SE that fills std_error: --vcov iid (homoskedastic), white or cluster.
double chosen_se(const ThresholdCoef& cf, const std::string& vcov) {
  return vcov == "white" ? cf.se_white : vcov == "cluster" ? cf.se_cluster : cf.se_homo;
}

std::string robust_ci_method(const ThresholdOptions& o) { return o.robust_kernel ? "kernel" : "quadratic"; }

nlohmann::json model_json(const ThresholdModel& m, const ThresholdOptions& o) {
  nlohmann::json mj{{"n_thresholds", m.n_thresholds}, {"gammas", m.gammas}, {"ssr", m.ssr}};
  mj["notes"] = m.notes;
  mj["ci95"] = pairs_json(m.ci95);
  mj["ci99"] = pairs_json(m.ci99);
  mj["ci"] = pairs_json(m.ci);  // at --level
  mj["ci_method"] = o.robust_ci ? "heteroskedasticity-robust LR (Hansen 2000, eta^2 by " + robust_ci_method(o) + ")"
                                : std::string("homoskedastic LR (Hansen 1999)");
  if (o.robust_ci) {
    mj["eta2"] = m.eta2;
    mj["eta_bandwidth"] = nlohmann::json::array();
    for (double h : m.eta_bandwidth) mj["eta_bandwidth"].push_back(num_or_null(h));
    mj["ci95_homoskedastic"] = pairs_json(m.ci95_homo);
    mj["ci99_homoskedastic"] = pairs_json(m.ci99_homo);
  }
  mj["coefficients"] = nlohmann::json::array();
  for (const auto& cf : m.coefficients)
    mj["coefficients"].push_back({{"name", cf.name}, {"estimate", cf.estimate}, {"se_homo", cf.se_homo},
                                  {"se_white", cf.se_white}, {"se_cluster", cf.se_cluster},
                                  {"std_error", chosen_se(cf, o.vcov)}});
  return mj;
}

nlohmann::json threshold_json(const ThresholdResult& r, const ThresholdOptions& o) {
  nlohmann::json j{{"program", "panelboot"}, {"command", "threshold"}, {"mode", o.xthreg ? "xthreg" : "hansen"},
                   {"data", r.data_source}, {"simulated_data", r.simulated},
                   {"n_units", r.n_units}, {"n_periods", r.n_periods}, {"nobs", r.n_obs},
                   {"n_grid", r.n_grid}, {"n_distinct", r.n_distinct}, {"grid_first", r.grid_first},
                   {"grid_last", r.grid_last}, {"ssr_linear", r.ssr_linear}, {"c95", r.c95}, {"c99", r.c99},
                   {"vcov", o.vcov}, {"departures", r.departures}, {"omitted", r.omitted}, {"level", o.level},
                   {"c_level", r.c_level}, {"cluster", r.cluster}, {"n_clusters", r.n_clusters}};
  j["models"] = nlohmann::json::array();
  for (const auto& m : r.models) j["models"].push_back(model_json(m, o));
  j["tests"] = nlohmann::json::array();
  for (const auto& t : r.tests)
    j["tests"].push_back({{"k", t.k}, {"F", t.F}, {"p_value", t.n_boot ? nlohmann::json(t.p_value) : nlohmann::json()},
                          {"crit", t.crit}, {"n_boot", t.n_boot}});
  j["lr_curve"] = {{"gamma", r.lr_gamma}, {"lr", r.lr_value}};
  j["warnings"] = r.warnings;
  j["threads"] = r.threads;
  j["timing"] = report::timing_json(r.timing);
  j["backend"] = r.backend;
  if (r.simulated) j["note"] = kSimulatedNote;
  return j;
}

void text_header(std::ostringstream& t, const ThresholdResult& r, const ThresholdOptions& o) {
  char buf[256];
  t << (o.xthreg ? "Panel threshold regression (Stata xthreg's conventions: NT observations, q <= gamma)\n"
                 : "Panel threshold regression (Hansen 1999, his program's conventions)\n");
  t << "Data: " << r.data_source << "\n";
  if (r.simulated) t << "NOTE: " << kSimulatedNote << "\n";
  std::snprintf(buf, sizeof buf, "Units %zu, periods %zu%s: %zu observations\n", r.n_units, r.n_periods,
                o.xthreg ? "" : " (last deleted after demeaning)", r.n_obs);
  t << buf;
  std::snprintf(buf, sizeof buf, "Grid: %zu points of %zu distinct values, %.6g .. %.6g\n", r.n_grid, r.n_distinct,
                r.grid_first, r.grid_last);
  t << buf;
  std::snprintf(buf, sizeof buf, "SSR without threshold: %.8g\n", r.ssr_linear);
  t << buf;
  for (const auto& dep : r.departures) t << "DEPARTURE: " << dep << "\n";
  for (const auto& om : r.omitted) t << "Omitted: " << om << "\n";
}

// Threshold i of model m with its confidence sets.
void text_gamma(std::ostringstream& t, const ThresholdModel& m, std::size_t i, const ThresholdOptions& o) {
  char buf[256];
  if (i >= m.ci95.size()) {  // fixed by --gammas: no search, so no LR confidence sets
    std::snprintf(buf, sizeof buf, "  gamma %zu = %-10.6g (given by --gammas)\n", i + 1, m.gammas[i]);
    t << buf;
    return;
  }
  std::snprintf(buf, sizeof buf, "  gamma %zu = %-10.6g 95%% CI [%.6g, %.6g]   99%% CI [%.6g, %.6g]", i + 1,
                m.gammas[i], m.ci95[i].first, m.ci95[i].second, m.ci99[i].first, m.ci99[i].second);
  t << buf;
  if (std::lround(o.level * 1000) != 950 && std::lround(o.level * 1000) != 990) {
    std::snprintf(buf, sizeof buf, "   %g%% CI [%.6g, %.6g]", 100 * o.level, m.ci[i].first, m.ci[i].second);
    t << buf;
  }
  if (!m.eta2.empty()) {
    std::snprintf(buf, sizeof buf, "   (robust, eta^2 = %.4g; homoskedastic 95%% [%.6g, %.6g])", m.eta2[i],
                  m.ci95_homo[i].first, m.ci95_homo[i].second);
    t << buf;
  }
  t << "\n";
}

// Model k: its thresholds, coefficients and test.
void text_model(std::ostringstream& t, const ThresholdResult& r, std::size_t k, const ThresholdOptions& o) {
  char buf[256];
  const auto& m = r.models[k];
  t << "\n== " << m.n_thresholds << " threshold(s) ==\n";
  for (std::size_t i = 0; i < m.gammas.size(); ++i) text_gamma(t, m, i, o);
  const std::string cl = "se (cl " + r.cluster + ")";
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

std::string threshold_text(const ThresholdResult& r, const ThresholdOptions& o) {
  std::ostringstream t;
  text_header(t, r, o);
  for (std::size_t k = 0; k < r.models.size(); ++k) text_model(t, r, k, o);
  t << (o.xthreg ? "\nRegime r of x: regime 1 is q <= gamma_1, the last q > gamma_K."
                 : "\nRegime r of x: regime 1 is q < gamma_1, the last q >= gamma_K.")
    << (!o.gammas.empty() ? "\n"
        : o.robust_ci     ? " CIs: {gamma : LR(gamma) / eta^2 < -2 ln(1 - sqrt(1 - a))} on the grid (Hansen 2000).\n"
                          : " CIs: {gamma : LR(gamma) < -2 ln(1 - sqrt(1 - a))} on the grid.\n");
  return t.str();
}
}  // namespace

std::string render_threshold(const ThresholdResult& r, const ThresholdOptions& o, Format fmt) {
  if (fmt == Format::kJson) return dump_json(threshold_json(r, o));
  if (fmt != Format::kText) throw InvalidInput("threshold writes text or json");
  return threshold_text(r, o);
}

std::string threshold_regimes_csv(const ThresholdResult& r, const ThresholdOptions& o) {
  std::ostringstream csv;
  csv << csv_field(o.sample.panel_id) << "," << csv_field(o.sample.panel_time) << ",q,regime,simulated_data\n";
  char buf[128];
  for (const auto& rr : r.regimes) {
    std::snprintf(buf, sizeof buf, ",%.15g,%.15g,%d,%d\n", rr.time, rr.q, rr.regime, r.simulated ? 1 : 0);
    csv << csv_field(rr.unit) << buf;
  }
  return csv.str();
}

std::string threshold_lr_curve_csv(const ThresholdResult& r, const ThresholdOptions& o) {
  std::ostringstream csv;
  csv << "gamma,lr,c95,c99" << (o.robust_ci ? ",lr_robust" : "") << ",simulated_data\n";
  char buf[160];
  for (std::size_t i = 0; i < r.lr_gamma.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%.10g,%.10g,%.10g,%.10g", r.lr_gamma[i], r.lr_value[i], r.c95, r.c99);
    csv << buf;
    if (o.robust_ci) {
      std::snprintf(buf, sizeof buf, ",%.10g", r.lr_value[i] * r.lr_robust_factor);
      csv << buf;
    }
    csv << "," << (r.simulated ? 1 : 0) << "\n";
  }
  return csv.str();
}

}  // namespace panelboot
