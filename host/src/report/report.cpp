#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "panelboot/config.hpp"
#include "panelboot/error.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/report.hpp"
#include "panelboot/text.hpp"
#include "report/format.hpp"

namespace panelboot {

const char* const kSimulatedNote =
    "SIMULATED DATA: a seeded stand-in for the study's panel, not the paper's data";

std::string dump_json(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string csv_quote(const std::string& s) {
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

std::string csv_field(const std::string& s) {
  return s.find_first_of(",\"\n\r") == std::string::npos ? s : csv_quote(s);
}

std::string md_cell(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += "\\|";
    else if (ch == '\n' || ch == '\r') out += ' ';
    else out += ch;
  }
  return out;
}

std::string latex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '_': case '&': case '%': case '#': case '$': case '{': case '}': out += '\\'; out += c; break;
      case '^': out += "\\^{}"; break;
      case '~': out += "\\~{}"; break;
      case '\\': out += "\\textbackslash{}"; break;
      case '\n': case '\r': out += ' '; break;
      default: out += c;
    }
  }
  return out;
}

namespace {
using report::num_or_null;
std::string f(const char* spec, double v) { return report::fmt_num(spec, v); }

std::string stars(double p) {
  if (!(p == p)) return "";
  return p < 0.01 ? "***" : p < 0.05 ? "**" : p < 0.1 ? "*" : "";
}

std::string pad(const std::string& s, std::size_t w, bool left = false) {
  if (s.size() >= w) return s;
  return left ? s + std::string(w - s.size(), ' ') : std::string(w - s.size(), ' ') + s;
}

std::string sample_line(const FitResult& m) {
  std::string s = "Observations: " + std::to_string(m.n_obs) + " of " + std::to_string(m.n_input) +
                  " rows";
  std::vector<std::string> parts;
  if (m.n_dropped_where) parts.push_back(std::to_string(m.n_dropped_where) + " excluded by --where");
  if (m.n_dropped_missing) {
    std::string mm = std::to_string(m.n_dropped_missing) + " dropped for missing values (";
    for (std::size_t i = 0; i < m.missing_by_variable.size(); ++i)
      mm += (i ? ", " : "") + m.missing_by_variable[i].first + ": " +
            std::to_string(m.missing_by_variable[i].second);
    parts.push_back(mm + ")");
  }
  if (m.n_singletons) parts.push_back(std::to_string(m.n_singletons) + " singletons dropped");
  if (!parts.empty()) {
    s += " (";
    for (std::size_t i = 0; i < parts.size(); ++i) s += (i ? "; " : "") + parts[i];
    s += ")";
  }
  return s;
}

std::string fe_line(const FitResult& m) {
  if (m.fe_names.empty()) return "Fixed effects: none";
  std::string s = "Fixed effects: ";
  for (std::size_t i = 0; i < m.fe_names.size(); ++i)
    s += (i ? ", " : "") + m.fe_names[i] + " (" + std::to_string(m.fe_levels[i]) + ")";
  s += "  [" + m.demean_method;
  if (m.demean_method == "alternating projections")
    s += ", " + std::to_string(m.demean_iterations) + " sweeps";
  return s + "]";
}

std::string coefficient_rows(const std::vector<Coefficient>& cs, int lvl) {
  std::ostringstream o;
  std::vector<std::string> names;  // one line each, whatever a level holds
  for (const auto& c : cs) names.push_back(printable(c.name, 200));
  std::size_t wname = 12;
  for (const auto& n : names) wname = std::max(wname, n.size() + 1);
  o << pad("", wname, true) << pad("Estimate", 13) << pad("Std. Error", 13) << pad("t", 9)
    << pad("Pr(>|t|)", 10) << "     " << pad("[" + std::to_string(lvl) + "% CI", 13)
    << pad("]", 13) << "\n";
  for (std::size_t i = 0; i < cs.size(); ++i) {
    const Coefficient& c = cs[i];
    o << pad(names[i], wname, true) << pad(f("%.6g", c.estimate), 13) << pad(f("%.6g", c.std_error), 13)
      << pad(f(std::fabs(c.t_stat) < 1e5 ? "%.3f" : "%.2e", c.t_stat), 9) << pad(f("%.4f", c.p_value), 10) << " " << pad(stars(c.p_value), 3, true)
      << " " << pad(f("%.6g", c.ci_low), 13) << pad(f("%.6g", c.ci_high), 13) << "\n";
  }
  return o.str();
}

std::string list_text(const std::vector<std::string>& xs) {
  std::string s;
  for (const std::string& x : xs) s += (s.empty() ? "" : " ") + printable(x, 200);
  return s.empty() ? "(none)" : s;
}

std::string stat_line(const std::string& what, double v, const std::string& tail = "") {
  return pad(what, 62, true) + pad(f("%.3f", v), 12) + tail + "\n";
}

// The IV block, compact, in ivreghdfe's order: first stages (on request), the identification
// tests with Stock-Yogo's critical values, the effective F, Hansen's J, the variable roles.
std::string iv_text(const FitResult& m, bool first_stage) {
  const IvInfo& iv = *m.iv;
  const IvDiagnostics& dg = iv.diagnostics;
  std::ostringstream o;
  const int lvl = static_cast<int>(std::lround(m.level * 100));
  if (first_stage)
    for (const FirstStage& fs : iv.first_stages) {
      o << "\nFirst stage: " << printable(fs.variable, 200) << "\n" << coefficient_rows(fs.coefficients, lvl);
      o << "F test of excluded instruments: F(" << f("%g", fs.f_df1) << ", " << f("%g", fs.f_df2) << ") = "
        << f("%.3f", fs.f_stat) << ", p = " << f("%.4g", fs.f_p_value) << "; partial R2 " << f("%.4f", fs.partial_r2) << "\n";
      if (fs.sw_f == fs.sw_f)
        o << "Sanderson-Windmeijer F: F(" << f("%g", fs.sw_df1) << ", " << f("%g", fs.sw_df2) << ") = " << f("%.3f", fs.sw_f)
          << ", p = " << f("%.4g", fs.sw_p_value) << "\n";
    }
  o << "\n";
  if (!first_stage)
    for (const FirstStage& fs : iv.first_stages)
      o << stat_line("First-stage F (" + printable(fs.variable, 40) + "), F(" + f("%g", fs.f_df1) + ", " + f("%g", fs.f_df2) + "):",
                     fs.f_stat, "  p = " + f("%.4g", fs.f_p_value) +
                                    (fs.sw_f == fs.sw_f ? "; SW F = " + f("%.3f", fs.sw_f) : std::string()));
  const bool iid = m.vcov_type == "iid";
  o << stat_line(std::string("Underidentification (") + (iid ? "Anderson canon. corr. LM" : "Kleibergen-Paap rk LM") +
                     "), chi2(" + f("%g", dg.kp_rk_lm_df) + "):",
                 dg.kp_rk_lm, "  p = " + f("%.4g", dg.kp_rk_lm_p));
  o << stat_line("Weak identification (Cragg-Donald Wald F):", dg.cragg_donald_f);
  if (!iid) o << stat_line("                    (Kleibergen-Paap rk Wald F):", dg.kp_rk_wald_f);
  for (std::size_t i = 0; i < dg.stock_yogo.size(); ++i)
    o << pad(i == 0 ? "Stock-Yogo critical values: " + dg.stock_yogo[i].label : "                            " + dg.stock_yogo[i].label, 62, true)
      << pad(f("%.2f", dg.stock_yogo[i].value), 12) << "\n";
  if (!dg.stock_yogo.empty()) o << "  (Stock-Yogo's values are for the Cragg-Donald F with i.i.d. errors)\n";
  if (dg.effective_f == dg.effective_f)
    o << stat_line("Effective F (Montiel Olea-Pflueger):", dg.effective_f,
                   "  critical value " + f("%.3f", dg.effective_f_crit) + " (2SLS, tau = 10%, 5% test)");
  if (dg.hansen_j == dg.hansen_j)
    o << stat_line(dg.j_name + " statistic (overidentification), chi2(" + f("%g", dg.hansen_j_df) + "):", dg.hansen_j,
                   "  p = " + f("%.4g", dg.hansen_j_p));
  else
    o << pad(dg.j_name + " statistic (overidentification):", 62, true)
      << (dg.hansen_j_df == 0 ? "  (exactly identified)\n" : "          NA (not reported; see the warnings)\n");
  o << "Instrumented: " << list_text(iv.endogenous) << "\n";
  o << "Included instruments: " << list_text(iv.exogenous) << (m.fe_names.empty() ? "" : " (and the absorbed fixed effects)") << "\n";
  o << "Excluded instruments: " << list_text(iv.instruments) << "\n";
  return o.str();
}

std::string text_one(const FitResult& m, bool first_stage) {
  std::ostringstream o;
  o << "Model: " << m.formula << "\n";
  o << "Data: " << m.data_source << "\n";
  if (m.simulated) o << "NOTE: " << kSimulatedNote << "\n";
  o << sample_line(m) << "\n" << fe_line(m) << "\n";
  o << "Variance: " << m.vcov_label << "; reference " << m.reference << "\n";
  for (const auto& d : m.dropped) o << "Omitted: " << d << "\n";
  const int lvl = static_cast<int>(std::lround(m.level * 100));
  if (m.iv) o << "Estimator: 2SLS (IV), " << m.iv->endogenous.size() << " endogenous, " << m.iv->instruments.size()
              << " excluded instrument" << (m.iv->instruments.size() == 1 ? "" : "s") << "\n";
  o << "\n" << coefficient_rows(m.coefficients, lvl);
  o << "---\nSignif. codes: *** p<0.01, ** p<0.05, * p<0.1, under " << m.reference << "\n";
  o << "R2: " << f("%.5f", m.r2);
  if (m.r2_within == m.r2_within) o << "   Within R2: " << f("%.5f", m.r2_within);
  o << "   Residual std. error: " << f("%.6g", m.sigma) << "\n";
  if (m.iv) o << iv_text(m, first_stage);
  for (const auto& w : m.wald)
    o << "Wald test (" << w.hypothesis << "): F(" << w.df1 << ", " << f("%g", w.df2)
      << ") = " << f("%.4f", w.f_stat) << ", p = " << f("%.4g", w.p_value) << "\n";
  for (const auto& w : m.warnings) o << "Warning: " << w << "\n";
  return o.str();
}

// Union of coefficient names over models, in order of first appearance.
std::vector<std::string> all_names(const std::vector<FitResult>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms)
    for (const auto& c : m.coefficients)
      if (std::find(out.begin(), out.end(), c.name) == out.end()) out.push_back(c.name);
  return out;
}

const Coefficient* find_coef(const FitResult& m, const std::string& name) {
  for (const auto& c : m.coefficients)
    if (c.name == name) return &c;
  return nullptr;
}

std::string side_by_side(const std::vector<FitResult>& ms, Format fmt) {
  std::ostringstream o;
  const auto names = all_names(ms);
  const std::size_t n_m = ms.size();
  auto esc = [&](const std::string& s) {
    return fmt == Format::kLatex ? latex_escape(s) : fmt == Format::kMarkdown ? md_cell(s) : printable(s, 200);
  };
  std::vector<std::pair<std::string, std::vector<std::string>>> text_rows;
  auto row = [&](const std::string& head, const std::vector<std::string>& cells) {
    if (fmt == Format::kMarkdown) {
      o << "| " << esc(head);
      for (const auto& c : cells) o << " | " << c;
      o << " |\n";
    } else if (fmt == Format::kLatex) {
      o << esc(head);
      for (const auto& c : cells) o << " & " << c;
      o << " \\\\\n";
    } else {
      text_rows.emplace_back(esc(head), cells);  // printed at the end, once the widths are known
    }
  };
  if (fmt == Format::kLatex) {
    o << "\\begin{tabular}{l" << std::string(n_m, 'c') << "}\n\\hline\n";
  }
  std::vector<std::string> hdr;
  for (std::size_t i = 0; i < n_m; ++i) hdr.push_back("(" + std::to_string(i + 1) + ")");
  row("", hdr);
  if (fmt == Format::kMarkdown) {
    o << "|---";
    for (std::size_t i = 0; i < n_m; ++i) o << "|---:";
    o << "|\n";
  }
  if (fmt == Format::kLatex) o << "\\hline\n";
  std::vector<std::string> dep;
  for (const auto& m : ms) dep.push_back(esc(m.y_name));
  row("Dependent variable", dep);
  for (const auto& nm : names) {
    std::vector<std::string> est, se;
    for (const auto& m : ms) {
      const Coefficient* c = find_coef(m, nm);
      std::string st = c ? stars(c->p_value) : "";
      if (fmt == Format::kLatex && !st.empty()) st = "$^{" + st + "}$";
      est.push_back(c ? f("%.4g", c->estimate) + st : "");
      se.push_back(c ? "(" + f("%.4g", c->std_error) + ")" : "");
    }
    row(nm, est);
    row("", se);
  }
  if (fmt == Format::kLatex) o << "\\hline\n";
  std::vector<std::string> fe, nobs, r2w, vc, cl;
  for (const auto& m : ms) {
    std::string s;
    for (std::size_t i = 0; i < m.fe_names.size(); ++i) s += (i ? ", " : "") + esc(m.fe_names[i]);
    fe.push_back(s.empty() ? "none" : s);
    nobs.push_back(std::to_string(m.n_obs));
    r2w.push_back(m.r2_within == m.r2_within ? f("%.4f", m.r2_within) : f("%.4f", m.r2));
    vc.push_back(m.vcov_type + (m.cluster_names.empty() ? "" : ": " + esc([&] {
      std::string c;
      for (std::size_t i = 0; i < m.cluster_names.size(); ++i) c += (i ? "+" : "") + m.cluster_names[i];
      return c; }())));
    cl.push_back(m.n_clusters.empty() ? "" : std::to_string(m.min_clusters()));
  }
  row("Fixed effects", fe);
  row("Observations", nobs);
  row("R2 (within if FE)", r2w);
  row("Variance", vc);
  row("Clusters", cl);
  if (std::any_of(ms.begin(), ms.end(), [](const FitResult& m) { return static_cast<bool>(m.iv); })) {
    std::vector<std::string> est, kp, eff;
    for (const auto& m : ms) {
      est.push_back(m.iv ? "2SLS" : "OLS");
      kp.push_back(m.iv ? f("%.2f", m.iv->diagnostics.kp_rk_wald_f) : "");
      eff.push_back(m.iv && m.iv->diagnostics.effective_f == m.iv->diagnostics.effective_f
                        ? f("%.2f", m.iv->diagnostics.effective_f) : "");
    }
    row("Estimator", est);
    row("Weak-IV F (KP rk Wald)", kp);
    row("Effective F (MOP)", eff);
  }
  if (fmt == Format::kLatex) o << "\\hline\n\\end{tabular}\n";
  if (!text_rows.empty()) {
    std::size_t wh = 12, wc = 12;
    for (const auto& tr : text_rows) {
      wh = std::max(wh, tr.first.size() + 2);
      for (const auto& c : tr.second) wc = std::max(wc, c.size() + 2);
    }
    for (const auto& tr : text_rows) {
      o << pad(tr.first, wh, true);
      for (const auto& c : tr.second) o << pad(c, wc);
      o << "\n";
    }
  }
  std::string note = "Standard errors in parentheses; *** p<0.01, ** p<0.05, * p<0.1 under each model's "
                     "reference distribution (t(G-1) when clustered; N(0,1) with --small no).";
  if (std::any_of(ms.begin(), ms.end(), [](const FitResult& m) { return m.simulated; }))
    note += std::string(" ") + kSimulatedNote + ".";
  if (fmt == Format::kLatex) o << "% " << note << "\n";
  else o << "\n" << note << "\n";
  return o.str();
}

}  // namespace

namespace {

nlohmann::json coefficients_json(const std::vector<Coefficient>& cs) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : cs)
    out.push_back({{"name", c.name}, {"estimate", c.estimate},
                   {"std_error", num_or_null(c.std_error)},
                   {"t_stat", num_or_null(c.t_stat)},
                   {"p_value", num_or_null(c.p_value)},
                   {"ci_low", num_or_null(c.ci_low)},
                   {"ci_high", num_or_null(c.ci_high)}});
  return out;
}

// An IV model's extra fields: the roles, first_stages[] and diagnostics.
void add_iv_json(const FitResult& m, nlohmann::json& mj) {
  const IvInfo& iv = *m.iv;
  mj["endogenous"] = iv.endogenous;
  mj["instruments"] = iv.instruments;
  mj["exogenous"] = iv.exogenous;
  mj["first_stages"] = nlohmann::json::array();
  for (const FirstStage& fs : iv.first_stages) {
    nlohmann::json fj{{"variable", fs.variable}, {"coefficients", coefficients_json(fs.coefficients)},
                      {"f_stat", num_or_null(fs.f_stat)}, {"f_df1", fs.f_df1}, {"f_df2", num_or_null(fs.f_df2)},
                      {"f_p_value", num_or_null(fs.f_p_value)}, {"partial_r2", num_or_null(fs.partial_r2)}};
    if (iv.endogenous.size() > 1) {
      fj["sw_f"] = num_or_null(fs.sw_f);
      fj["sw_df1"] = fs.sw_df1;
      fj["sw_df2"] = num_or_null(fs.sw_df2);
      fj["sw_p_value"] = num_or_null(fs.sw_p_value);
    }
    mj["first_stages"].push_back(fj);
  }
  const IvDiagnostics& dg = iv.diagnostics;
  nlohmann::json sy = nlohmann::json::array();
  for (const StockYogoValue& v : dg.stock_yogo) sy.push_back({{"label", v.label}, {"value", v.value}});
  mj["diagnostics"] = {{"kp_rk_lm", num_or_null(dg.kp_rk_lm)}, {"kp_rk_lm_df", dg.kp_rk_lm_df},
                       {"kp_rk_lm_p", num_or_null(dg.kp_rk_lm_p)}, {"kp_rk_wald", num_or_null(dg.kp_rk_wald)},
                       {"kp_rk_wald_f", num_or_null(dg.kp_rk_wald_f)},
                       {"cragg_donald_f", num_or_null(dg.cragg_donald_f)}, {"stock_yogo", sy},
                       {"effective_f", num_or_null(dg.effective_f)},
                       {"effective_f_crit", num_or_null(dg.effective_f_crit)},
                       {"effective_f_k_eff", num_or_null(dg.effective_f_k_eff)},
                       {"effective_f_crit_simplified", num_or_null(dg.effective_f_crit_simplified)},
                       {"mop_b_tsls", num_or_null(dg.mop_b_tsls)},
                       {"hansen_j", num_or_null(dg.hansen_j)}, {"hansen_j_df", dg.hansen_j_df},
                       {"hansen_j_p", num_or_null(dg.hansen_j_p)}, {"j_statistic", dg.j_name}};
}

}  // namespace

nlohmann::json fit_json(const std::vector<FitResult>& ms) {
  nlohmann::json j;
  j["program"] = "panelboot";
  j["version"] = PANELBOOT_VERSION;
  j["command"] = "fit";
  j["backend"] = "cpu";  // one regression per model: always on the host
  bool sim = std::any_of(ms.begin(), ms.end(), [](const FitResult& m) { return m.simulated; });
  j["simulated_data"] = sim;
  if (sim) j["note"] = kSimulatedNote;
  j["models"] = nlohmann::json::array();
  for (const auto& m : ms) {
    nlohmann::json mj;
    mj["formula"] = m.formula;
    mj["depvar"] = m.y_name;
    mj["data"] = m.data_source;
    mj["simulated_data"] = m.simulated;
    mj["nobs"] = m.n_obs;
    mj["n_input_rows"] = m.n_input;
    mj["dropped"] = {{"where", m.n_dropped_where}, {"missing", m.n_dropped_missing},
                     {"singletons", m.n_singletons}};
    nlohmann::json mv = nlohmann::json::object();
    for (const auto& kv : m.missing_by_variable) mv[kv.first] = kv.second;
    mj["dropped"]["missing_by_variable"] = mv;
    mj["n_clusters"] = m.n_clusters.empty()
                           ? nlohmann::json()
                           : nlohmann::json(m.min_clusters());
    mj["clusters"] = nlohmann::json::array();
    for (std::size_t i = 0; i < m.cluster_names.size(); ++i)
      mj["clusters"].push_back({{"name", m.cluster_names[i]}, {"n", m.n_clusters[i]}});
    mj["vcov"] = m.vcov_type;
    mj["vcov_label"] = m.vcov_label;
    if (m.dk_lag >= 0) mj["dk_lag"] = m.dk_lag;
    mj["dof_k"] = m.dof_k;
    mj["df"] = num_or_null(m.df_inference);
    mj["reference"] = m.reference;
    mj["level"] = m.level;
    mj["r2"] = num_or_null(m.r2);
    mj["r2_within"] = num_or_null(m.r2_within);
    mj["rss"] = m.rss;
    mj["sigma"] = m.sigma;
    mj["fixed_effects"] = nlohmann::json::array();
    for (std::size_t i = 0; i < m.fe_names.size(); ++i)
      mj["fixed_effects"].push_back({{"name", m.fe_names[i]}, {"levels", m.fe_levels[i]}});
    mj["nested_fe"] = m.nested_fe;
    mj["demean_method"] = m.demean_method;
    mj["omitted"] = m.dropped;
    mj["estimator"] = m.iv ? "2sls" : "ols";
    mj["small"] = m.small;
    mj["coefficients"] = coefficients_json(m.coefficients);
    if (m.iv) add_iv_json(m, mj);
    nlohmann::json V = nlohmann::json::array();
    for (Eigen::Index a = 0; a < m.vcov.rows(); ++a) {
      nlohmann::json r = nlohmann::json::array();
      for (Eigen::Index b = 0; b < m.vcov.cols(); ++b) r.push_back(m.vcov(a, b));
      V.push_back(r);
    }
    mj["vcov_matrix"] = V;
    mj["wald"] = nlohmann::json::array();
    for (const auto& w : m.wald)
      mj["wald"].push_back({{"hypothesis", w.hypothesis}, {"q", w.q}, {"f_stat", w.f_stat},
                            {"df1", w.df1}, {"df2", num_or_null(w.df2)}, {"p_value", w.p_value}});
    mj["warnings"] = m.warnings;
    if (!m.timing.empty()) mj["timing"] = report::timing_json(m.timing);
    j["models"].push_back(mj);
  }
  return j;
}

std::string render_fit(const std::vector<FitResult>& ms, Format fmt, bool first_stage) {
  switch (fmt) {
    case Format::kJson:
      return dump_json(fit_json(ms));
    case Format::kText: {
      std::string s;
      for (std::size_t i = 0; i < ms.size(); ++i) {
        if (ms.size() > 1) s += "== (" + std::to_string(i + 1) + ") ==\n";
        s += text_one(ms[i], first_stage) + "\n";
      }
      if (ms.size() > 1) s += "== Side by side ==\n" + side_by_side(ms, Format::kText);
      return s;
    }
    case Format::kMarkdown:
    case Format::kLatex:
      return side_by_side(ms, fmt);
    case Format::kCsv: {
      std::ostringstream o;
      o << "model,formula,term,estimate,std_error,t_stat,p_value,ci_low,ci_high,nobs,vcov,simulated_data\n";
      for (std::size_t i = 0; i < ms.size(); ++i)
        for (const auto& c : ms[i].coefficients) {
          o << i + 1 << "," << csv_quote(ms[i].formula) << "," << csv_quote(c.name) << "," << f("%.17g", c.estimate) << ","
            << f("%.17g", c.std_error) << "," << f("%.17g", c.t_stat) << "," << f("%.17g", c.p_value)
            << "," << f("%.17g", c.ci_low) << "," << f("%.17g", c.ci_high) << "," << ms[i].n_obs
            << "," << ms[i].vcov_type << "," << (ms[i].simulated ? 1 : 0) << "\n";
        }
      return o.str();
    }
  }
  return "";
}

namespace {

struct VariableSummary {
  std::string name;
  bool text = false;
  std::size_t obs = 0, levels = 0;
  double mean = NAN, sd = NAN, min = NAN, max = NAN;
};

VariableSummary summarize(const Column& c, const std::vector<char>& keep) {
  VariableSummary v;
  v.name = c.name;
  v.text = c.is_string();
  const std::size_t n_rows = keep.size();
  if (v.text) {
    for (std::size_t r = 0; r < n_rows; ++r) v.obs += keep[r] && c.codes[r] >= 0;
    v.levels = c.levels.size();
    return v;
  }
  double s1 = 0, s2 = 0, lo = INFINITY, hi = -INFINITY;
  for (std::size_t r = 0; r < n_rows; ++r) {
    const double x = c.value(r);
    if (!keep[r] || x != x) continue;
    ++v.obs;
    s1 += x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  if (!v.obs) return v;
  v.mean = s1 / static_cast<double>(v.obs);
  for (std::size_t r = 0; r < n_rows; ++r)
    if (keep[r] && !c.missing(r)) s2 += (c.value(r) - v.mean) * (c.value(r) - v.mean);
  v.sd = v.obs > 1 ? std::sqrt(s2 / static_cast<double>(v.obs - 1)) : NAN;
  v.min = lo;
  v.max = hi;
  return v;
}

std::string describe_text(const DataFrame& df, const std::vector<VariableSummary>& vs, bool sim) {
  std::ostringstream t;
  t << "Data: " << printable(df.source, 300) << " (" << df.n_rows() << " rows, " << df.columns.size() << " columns)\n";
  if (sim) t << "NOTE: " << kSimulatedNote << "\n";
  t << pad("variable", 16, true) << pad("type", 8) << pad("obs", 8) << pad("mean", 14) << pad("sd", 14)
    << pad("min", 14) << pad("max", 14) << "\n";
  for (const VariableSummary& v : vs) {
    t << pad(printable(v.name, 60), 16, true) << pad(v.text ? "text" : "num", 8) << pad(std::to_string(v.obs), 8);
    if (v.text) t << "   " << v.levels << " levels\n";
    else t << pad(f("%.6g", v.mean), 14) << pad(f("%.6g", v.sd), 14) << pad(f("%.6g", v.min), 14) << pad(f("%.6g", v.max), 14) << "\n";
  }
  return t.str();
}

std::string describe_table(const std::vector<VariableSummary>& vs, bool sim, Format fmt) {
  std::ostringstream t;
  const bool md = fmt == Format::kMarkdown;
  if (md) t << "| variable | type | obs | levels | mean | sd | min | max |\n|---|---|---:|---:|---:|---:|---:|---:|\n";
  else t << "\\begin{tabular}{llrrrrrr}\n\\hline\nvariable & type & obs & levels & mean & sd & min & max \\\\\n\\hline\n";
  const std::string sep = md ? " | " : " & ";
  for (const VariableSummary& v : vs) {
    t << (md ? "| " + md_cell(v.name) : latex_escape(v.name)) << sep << (v.text ? "text" : "numeric") << sep << v.obs << sep
      << (v.text ? std::to_string(v.levels) : "") << sep << (v.text ? "" : f("%.6g", v.mean)) << sep
      << (v.text ? "" : f("%.6g", v.sd)) << sep << (v.text ? "" : f("%.6g", v.min)) << sep
      << (v.text ? "" : f("%.6g", v.max)) << (md ? " |\n" : " \\\\\n");
  }
  if (!md) t << "\\hline\n\\end{tabular}\n";
  if (sim) t << (md ? "\n" : "% ") << kSimulatedNote << "\n";
  return t.str();
}

std::string describe_csv(const std::vector<VariableSummary>& vs, bool sim) {
  std::ostringstream t;
  t << "variable,type,obs,levels,mean,sd,min,max,simulated_data\n";
  for (const VariableSummary& v : vs)
    t << csv_quote(v.name) << "," << (v.text ? "text" : "numeric") << "," << v.obs << ","
      << (v.text ? std::to_string(v.levels) : "") << "," << (v.text ? "" : f("%.17g", v.mean)) << ","
      << (v.text ? "" : f("%.17g", v.sd)) << "," << (v.text ? "" : f("%.17g", v.min)) << ","
      << (v.text ? "" : f("%.17g", v.max)) << "," << (sim ? 1 : 0) << "\n";
  return t.str();
}

std::string describe_json(const DataFrame& df, const std::vector<VariableSummary>& vs, bool sim) {
  nlohmann::json vars = nlohmann::json::array();
  for (const VariableSummary& v : vs) {
    nlohmann::json j{{"name", v.name}, {"type", v.text ? "text" : "numeric"}, {"obs", v.obs}};
    if (v.text) {
      j["levels"] = v.levels;
    } else {
      j["mean"] = num_or_null(v.mean);
      j["sd"] = num_or_null(v.sd);
      j["min"] = num_or_null(v.min);
      j["max"] = num_or_null(v.max);
    }
    vars.push_back(j);
  }
  nlohmann::json j{{"program", "panelboot"}, {"version", PANELBOOT_VERSION}, {"command", "describe"}, {"backend", "cpu"},
                   {"data", df.source}, {"simulated_data", sim}, {"rows", df.n_rows()}, {"variables", vars},
                   {"warnings", df.warnings}};
  if (sim) j["note"] = kSimulatedNote;
  return dump_json(j);
}

}  // namespace

std::string render_describe(const DataFrame& df, const std::vector<char>& keep, Format fmt) {
  std::vector<VariableSummary> vs;
  for (const Column& c : df.columns) vs.push_back(summarize(c, keep));
  const Column* s = df.find("simulated");
  const bool sim = s && !s->is_string();
  switch (fmt) {
    case Format::kText: return describe_text(df, vs, sim);
    case Format::kJson: return describe_json(df, vs, sim);
    case Format::kCsv: return describe_csv(vs, sim);
    case Format::kMarkdown:
    case Format::kLatex: return describe_table(vs, sim, fmt);
  }
  return "";
}

}  // namespace panelboot
