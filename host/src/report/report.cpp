#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "panelboot/config.hpp"
#include "panelboot/error.hpp"
#include "panelboot/report.hpp"
#include "report/format.hpp"

namespace panelboot {

const char* const kSimulatedNote =
    "SIMULATED DATA: a seeded stand-in for the study's panel, not the paper's data";

Format parse_format(const std::string& s) {
  if (s == "text") return Format::kText;
  if (s == "json") return Format::kJson;
  if (s == "markdown" || s == "md") return Format::kMarkdown;
  if (s == "latex" || s == "tex") return Format::kLatex;
  if (s == "csv") return Format::kCsv;
  throw InvalidInput("--format '" + s + "': choose text, json, markdown, latex or csv");
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

std::string text_one(const FitResult& m) {
  std::ostringstream o;
  o << "Model: " << m.formula << "\n";
  o << "Data: " << m.data_source << "\n";
  if (m.simulated) o << "NOTE: " << kSimulatedNote << "\n";
  o << sample_line(m) << "\n" << fe_line(m) << "\n";
  o << "Variance: " << m.vcov_label << "; reference " << m.reference << "\n";
  for (const auto& d : m.dropped) o << "Omitted: " << d << "\n";
  const int lvl = static_cast<int>(std::lround(m.level * 100));
  std::size_t wname = 12;
  for (const auto& c : m.coefficients) wname = std::max(wname, c.name.size() + 1);
  o << "\n" << pad("", wname, true) << pad("Estimate", 13) << pad("Std. Error", 13) << pad("t", 9)
    << pad("Pr(>|t|)", 10) << "     " << pad("[" + std::to_string(lvl) + "% CI", 13)
    << pad("]", 13) << "\n";
  for (const auto& c : m.coefficients) {
    o << pad(c.name, wname, true) << pad(f("%.6g", c.estimate), 13) << pad(f("%.6g", c.std_error), 13)
      << pad(f("%.3f", c.t_stat), 9) << pad(f("%.4f", c.p_value), 10) << " " << pad(stars(c.p_value), 3, true)
      << " " << pad(f("%.6g", c.ci_low), 13) << pad(f("%.6g", c.ci_high), 13) << "\n";
  }
  o << "---\nSignif. codes: *** p<0.01, ** p<0.05, * p<0.1, under " << m.reference << "\n";
  o << "R2: " << f("%.5f", m.r2);
  if (m.r2_within == m.r2_within) o << "   Within R2: " << f("%.5f", m.r2_within);
  o << "   Residual std. error: " << f("%.6g", m.sigma) << "\n";
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
  auto esc = [&](std::string s) {
    if (fmt != Format::kLatex) return s;
    std::string out;
    for (char c : s) {
      if (c == '_' || c == '&' || c == '%' || c == '#' || c == '$') out += '\\';
      if (c == '^') { out += "\\^{}"; continue; }
      out += c;
    }
    return out;
  };
  std::vector<std::pair<std::string, std::vector<std::string>>> text_rows;
  auto row = [&](const std::string& head, const std::vector<std::string>& cells) {
    if (fmt == Format::kMarkdown) {
      o << "| " << head;
      for (const auto& c : cells) o << " | " << c;
      o << " |\n";
    } else if (fmt == Format::kLatex) {
      o << esc(head);
      for (const auto& c : cells) o << " & " << c;
      o << " \\\\\n";
    } else {
      text_rows.emplace_back(head, cells);  // printed at the end, once the widths are known
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
    cl.push_back(m.n_clusters.empty() ? "" : std::to_string(*std::min_element(m.n_clusters.begin(), m.n_clusters.end())));
  }
  row("Fixed effects", fe);
  row("Observations", nobs);
  row("R2 (within if FE)", r2w);
  row("Variance", vc);
  row("Clusters", cl);
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
                     "reference distribution (t(G-1) when clustered).";
  if (std::any_of(ms.begin(), ms.end(), [](const FitResult& m) { return m.simulated; }))
    note += std::string(" ") + kSimulatedNote + ".";
  if (fmt == Format::kLatex) o << "% " << note << "\n";
  else o << "\n" << note << "\n";
  return o.str();
}

}  // namespace

nlohmann::json fit_json(const std::vector<FitResult>& ms) {
  nlohmann::json j;
  j["program"] = "panelboot";
  j["version"] = PANELBOOT_VERSION;
  j["command"] = "fit";
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
                           : nlohmann::json(*std::min_element(m.n_clusters.begin(), m.n_clusters.end()));
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
    mj["coefficients"] = nlohmann::json::array();
    for (const auto& c : m.coefficients)
      mj["coefficients"].push_back({{"name", c.name}, {"estimate", c.estimate},
                                    {"std_error", num_or_null(c.std_error)},
                                    {"t_stat", num_or_null(c.t_stat)},
                                    {"p_value", num_or_null(c.p_value)},
                                    {"ci_low", num_or_null(c.ci_low)},
                                    {"ci_high", num_or_null(c.ci_high)}});
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
    j["models"].push_back(mj);
  }
  return j;
}

std::string render_fit(const std::vector<FitResult>& ms, Format fmt) {
  switch (fmt) {
    case Format::kJson:
      return fit_json(ms).dump(2) + "\n";
    case Format::kText: {
      std::string s;
      for (std::size_t i = 0; i < ms.size(); ++i) {
        if (ms.size() > 1) s += "== (" + std::to_string(i + 1) + ") ==\n";
        s += text_one(ms[i]) + "\n";
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
          std::string fq = ms[i].formula;
          std::string q = "\"";
          for (char ch : fq) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
          q += "\"";
          o << i + 1 << "," << q << ",\"" << c.name << "\"," << f("%.17g", c.estimate) << ","
            << f("%.17g", c.std_error) << "," << f("%.17g", c.t_stat) << "," << f("%.17g", c.p_value)
            << "," << f("%.17g", c.ci_low) << "," << f("%.17g", c.ci_high) << "," << ms[i].n_obs
            << "," << ms[i].vcov_type << "," << (ms[i].simulated ? 1 : 0) << "\n";
        }
      return o.str();
    }
  }
  return "";
}

}  // namespace panelboot
