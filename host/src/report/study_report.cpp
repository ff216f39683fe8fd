// `replicate`'s report, rendered from the results tree (results.json): report.md (the paper's
// tables with the bootstrap and power rows, mediation, IV, threshold, the audit), tables.tex
// (booktabs) and the one-screen console summary.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "panelboot/audit.hpp"
#include "panelboot/report.hpp"
#include "panelboot/study.hpp"
#include "report/format.hpp"

namespace panelboot {
namespace {
using Json = nlohmann::json;

bool num(const Json& j) { return j.is_number(); }
double val(const Json& j) { return j.is_number() ? j.get<double>() : std::nan(""); }

// Three significant digits with trailing zeros kept, as the paper prints (0.000550, 0.567).
std::string sig3(const Json& j) {
  if (!num(j)) return "—";
  const double v = j.get<double>();
  char b[48];
  if (v != 0 && (std::fabs(v) >= 1e5 || std::fabs(v) < 1e-5)) std::snprintf(b, sizeof b, "%.2e", v);
  else std::snprintf(b, sizeof b, "%#.3g", v);
  std::string s = b;
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::string pval(const Json& j) {
  if (!num(j)) return "—";
  const double p = j.get<double>();
  char b[32];
  if (p < 0.0001) return "<0.0001";
  if (p < 0.001) std::snprintf(b, sizeof b, "%.4f", p);
  else std::snprintf(b, sizeof b, "%.3f", p);
  return b;
}

std::string pct(const Json& j) {
  if (!num(j)) return "—";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", 100 * j.get<double>());
  return b;
}

std::string stars(double p) { return !(p == p) ? "" : p < 0.01 ? "***" : p < 0.05 ? "**" : p < 0.1 ? "*" : ""; }

std::string interval(const Json& lo, const Json& hi) {
  return "[" + (lo.is_null() ? std::string("-inf") : sig3(lo)) + ", " + (hi.is_null() ? std::string("+inf") : sig3(hi)) + "]";
}

std::string label_of(const Json& spec, const std::string& name) {
  if (spec.contains("labels") && spec["labels"].contains(name)) return spec["labels"][name];
  return name;
}

// A table of the paper: rows the coefficients (labelled as the paper names them), columns the
// specifications, then the inference rows of the coefficient of interest.
struct Grid {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

const Json* interest_of(const Json& spec, std::size_t k = 0) {
  return k < spec["interest"].size() ? &spec["interest"][k] : nullptr;
}

// A bootstrap p-value: 0 is shown as below 1/B for random draws (the resolution of B draws), as
// exactly 0 when every sign vector was enumerated; `compact` (the console's columns) without the
// blank and without "(exact)".
std::string boot_pval(const Json& test, bool compact = false) {
  const double p = val(test["p_value"]);
  const bool exact = test.value("enumerated", false);
  if (p == 0 && !exact) return (compact ? "<" : "< ") + report::fmt_num("%.2g", 1.0 / val(test["n_boot"]));
  if (compact) return p == 0 ? std::string("0") : pval(test["p_value"]);
  return (p == 0 ? std::string("0") : pval(test["p_value"])) + (exact ? " (exact)" : "");
}

std::string level_pct(double level) { return report::fmt_num("%g", 100 * level) + "%"; }

Grid table_grid(const std::vector<const Json*>& specs, double level) {
  Grid g;
  g.header.push_back("");
  std::vector<std::string> order;
  std::size_t n_interest = 0;
  for (const Json* s : specs) {
    g.header.push_back((*s)["column"].get<std::string>());
    n_interest = std::max(n_interest, (*s)["interest"].size());
    for (const Json& c : (*s)["fit"]["coefficients"]) {
      const std::string l = label_of(*s, c["name"]);
      if (std::find(order.begin(), order.end(), l) == order.end()) order.push_back(l);
    }
  }
  for (const std::string& l : order) {
    std::vector<std::string> row{l};
    for (const Json* s : specs) {
      std::string cell;
      for (const Json& c : (*s)["fit"]["coefficients"])
        if (label_of(*s, c["name"]) == l)
          cell = sig3(c["estimate"]) + stars(val(c["p_value"])) + " (" + sig3(c["std_error"]) + ")";
      row.push_back(cell);
    }
    g.rows.push_back(row);
  }
  auto add = [&](const std::string& name, auto&& f) {
    std::vector<std::string> row{name};
    bool any = false;
    for (const Json* s : specs) {
      row.push_back(f(*s));
      any = any || (row.back() != "" && row.back() != "—");
    }
    if (any) g.rows.push_back(row);
  };
  std::size_t k = 0;  // the coefficient of interest the rows below describe
  auto w = [&k](const Json& s, const char* key) -> const Json& {
    static const Json null;
    const Json* i = interest_of(s, k);
    return i && i->contains(key) ? (*i)[key] : null;
  };
  for (k = 0; k < n_interest; ++k) {
    add("tested coefficient", [&](const Json& s) { return interest_of(s, k) ? label_of(s, (*interest_of(s, k))["variable"]) : ""; });
    add("p, t(G-1)", [&](const Json& s) { return interest_of(s, k) ? pval((*interest_of(s, k))["p_value"]) : ""; });
    add("p, wild bootstrap (WCR)", [&](const Json& s) {
      const Json& x = w(s, "wild");
      return x.is_null() ? "" : boot_pval(x);
    });
    add("wild bootstrap " + level_pct(level) + " CI", [&](const Json& s) {
      const Json& x = w(s, "wild");
      return x.is_null() || !x.contains("ci_low") ? "" : interval(x["ci_low"], x["ci_high"]);
    });
    add("p, wild bootstrap (Webb)", [&](const Json& s) {
      const Json& x = w(s, "webb");
      return x.is_null() ? "" : boot_pval(x);
    });
  }
  k = 0;
  auto power = [&](const Json& s, const char* what, const char* test) -> std::string {
    const Json& p = w(s, "power");
    if (p.is_null() || !p.contains(what) || !p[what].contains(test)) return "";
    return std::string(what) == "mde" ? sig3(p[what][test]) : pct(p[what][test]);
  };
  add("size at 5% (t / wild)", [&](const Json& s) {
    const std::string a = power(s, "size", "crve"), b = power(s, "size", "wild");
    return a.empty() ? a : a + " / " + b;
  });
  add("power at the full-sample effect (t / wild)", [&](const Json& s) {
    const std::string a = power(s, "power", "crve"), b = power(s, "power", "wild");
    return a.empty() ? a : a + " / " + b;
  });
  add("MDE at 80% power (t / wild)", [&](const Json& s) {
    const Json& p = w(s, "power");
    if (p.is_null()) return std::string();
    auto m = [&](const char* t) { return p["mde"].contains(t) && !p["mde"][t].is_null() ? sig3(p["mde"][t]) : std::string("not reached"); };
    return m("crve") + " / " + m("wild");
  });
  add("Observations", [](const Json& s) { return std::to_string(s["fit"]["nobs"].get<long long>()); });
  add("Clusters (provinces)", [](const Json& s) { return std::to_string(s["fit"]["n_clusters"].get<long long>()); });
  add("R² within", [](const Json& s) {
    char b[16];
    std::snprintf(b, sizeof b, "%.3f", val(s["fit"]["r2_within"]));
    return std::string(b);
  });
  return g;
}

std::string markdown_grid(const Grid& g) {
  std::string out = "|";
  for (const std::string& h : g.header) out += " " + md_cell(h) + " |";
  out += "\n|";
  for (std::size_t i = 0; i < g.header.size(); ++i) out += i ? "---:|" : "---|";
  out += "\n";
  for (const auto& row : g.rows) {
    out += "|";
    for (const std::string& c : row) out += " " + md_cell(c) + " |";
    out += "\n";
  }
  return out;
}

std::string latex_grid(const Grid& g, const std::string& caption, const std::string& label) {
  std::string out = "\\begin{table}[htbp]\\centering\n\\caption{" + latex_escape(caption) + "}\\label{" + label +
                    "}\n\\small\n\\begin{tabular}{l" + std::string(g.header.size() - 1, 'c') + "}\n\\toprule\n";
  for (std::size_t i = 0; i < g.header.size(); ++i) out += (i ? " & " : "") + latex_escape(g.header[i]);
  out += " \\\\\n\\midrule\n";
  for (const auto& row : g.rows) {
    if (row[0] == "tested coefficient") out += "\\midrule\n";
    for (std::size_t i = 0; i < row.size(); ++i) out += (i ? " & " : "") + latex_escape(row[i]);
    out += " \\\\\n";
  }
  out += "\\bottomrule\n\\end{tabular}\n\\par\\smallskip\\footnotesize Coefficients with clustered standard errors "
         "(province) in parentheses; stars from t(G-1): *** 1\\%, ** 5\\%, * 10\\%.\n\\end{table}\n\n";
  return out;
}

std::vector<const Json*> specs_of(const Json& r, const std::string& table) {
  std::vector<const Json*> out;
  for (const Json& s : r["specifications"])
    if (s["table"] == table) out.push_back(&s);
  return out;
}

struct TableDef {
  std::string table, caption, label;
};
const std::vector<TableDef> kTables = {
    {"Table 5", "Table 5: baseline two-way FE regressions", "tab:pb-baseline"},
    {"Table 6", "Table 6: rgzn lagged one year", "tab:pb-lag"},
    {"Table 7", "Table 7: robustness", "tab:pb-robust"},
    {"Table 8", "Table 8: heterogeneity (split samples) with size, power and MDE", "tab:pb-hetero"},
};

std::vector<const Json*> mediation_specs(const Json& r) {
  std::vector<const Json*> out;
  if (!r["mediation"].is_null())
    for (const Json& s : r["mediation"]["equations"]) out.push_back(&s);
  return out;
}

std::string skipped_lines(const Json& r, const std::string& prefix) {
  std::string out;
  for (const Json& s : r["skipped"])
    if (s["id"].get<std::string>().rfind(prefix, 0) == 0)
      out += "- Column `" + s["id"].get<std::string>() + "` not run: " + s["reason"].get<std::string>() + "\n";
  return out;
}

std::string mediation_markdown(const Json& m) {
  std::ostringstream o;
  o << "Indirect effect of rgzn through tec: a = " << sig3(m["a"]) << " (SE " << sig3(m["se_a"]) << "), b = " << sig3(m["b"])
    << " (SE " << sig3(m["se_b"]) << "), a·b = **" << sig3(m["indirect"]) << "**.\n\n";
  o << "| inference on a·b | SE | p | " << static_cast<int>(std::lround(100 * val(m["level"]))) << "% interval |\n|---|---:|---:|---:|\n";
  o << "| delta method, cross-equation cluster-robust covariance (corr(a, b) = " << sig3(m["corr_ab"]) << "), N(0,1) | "
    << sig3(m["se_delta"]) << " | " << pval(m["p_delta"]) << " | " << interval(m["ci_delta"][0], m["ci_delta"][1]) << " |\n";
  o << "| Sobel (assumes a and b independent), N(0,1) | " << sig3(m["se_sobel"]) << " | " << pval(m["p_sobel"]) << " | |\n";
  o << "| wild cluster bootstrap (WCU), percentile, B = " << m["n_boot"].get<long long>() << " | | " << pval(m["p_boot"])
    << " | " << interval(m["ci_boot"][0], m["ci_boot"][1]) << " |\n\n";
  o << "Mediated share a·b / c with c = " << sig3(m["total_effect"]) << " (Table 5, column 2): **" << pct(m["share_mediated"])
    << "**. Both equations use the same " << m["nobs"].get<long long>() << " observations and "
    << m["n_clusters"].get<long long>() << " province clusters; the bootstrap draws one Rademacher weight per province "
    << "for both equations (regressors, tec included, held fixed).\n";
  return o.str();
}

std::string iv_markdown(const Json& iv) {
  std::ostringstream o;
  const Json& fit = iv["fit"];
  o << "Model: `" << iv["formula"].get<std::string>() << "` (2SLS, " << fit["nobs"].get<long long>()
    << " observations: the first year has no lag).\n\n";
  for (const Json& c : fit["coefficients"])
    if (c["name"] == "rgzn")
      o << "- rgzn (2SLS): " << sig3(c["estimate"]) << " (clustered SE " << sig3(c["std_error"]) << "), p = "
        << pval(c["p_value"]) << " from " << fit["reference"].get<std::string>() << ".\n";
  if (fit.contains("first_stages") && !fit["first_stages"].empty()) {
    const Json& fs = fit["first_stages"][0];
    o << "- First stage: F on the excluded instrument = " << sig3(fs["f_stat"]) << ", partial R² = " << sig3(fs["partial_r2"])
      << ".\n";
  }
  if (fit.contains("diagnostics")) {
    const Json& d = fit["diagnostics"];
    o << "- Weak identification: Kleibergen–Paap Wald F = " << sig3(d["kp_rk_wald_f"]) << "; Montiel Olea–Pflueger effective F = "
      << sig3(d["effective_f"]) << " (critical value " << sig3(d["effective_f_crit"]) << ").\n";
  }
  for (const Json& t : iv["wild"]) {
    const std::string kind = t["test"];
    o << "- " << (kind == "ar" ? std::string("Anderson–Rubin (wild bootstrap)") : "WRE bootstrap (" + kind + ")") << ": p = "
      << pval(t["p_value"]);
    if (t.contains("ci_low")) o << ", confidence set " << interval(t["ci_low"], t["ci_high"]);
    o << ".\n";
  }
  if (iv.contains("pvalue_recommended"))
    o << "- The instrument is weak by the effective F: read the equal-tailed p-value (" << iv["pvalue_recommended"].get<std::string>()
      << ").\n";
  return o.str();
}

std::string threshold_markdown(const Json& th, const std::string& title) {
  std::ostringstream o;
  o << "**" << title << "** (" << th["nobs"].get<long long>() << " observations, " << th["n_grid"].get<long long>()
    << " grid points)\n\n| test | F | bootstrap p | crit. 10% | 5% | 1% |\n|---|---:|---:|---:|---:|---:|\n";
  for (const Json& t : th["tests"])
    o << "| " << t["k"].get<int>() << " vs " << t["k"].get<int>() - 1 << " thresholds | " << sig3(t["F"]) << " | "
      << pval(t["p_value"]) << " | " << sig3(t["crit"][0]) << " | " << sig3(t["crit"][1]) << " | " << sig3(t["crit"][2])
      << " |\n";
  o << "\n";
  for (const Json& m : th["models"]) {
    o << "- " << m["n_thresholds"].get<int>() << " threshold(s): ";
    for (std::size_t i = 0; i < m["gammas"].size(); ++i)
      o << (i ? "; " : "") << "γ" << i + 1 << " = " << sig3(m["gammas"][i]) << " (95% LR set "
        << interval(m["ci95"][i][0], m["ci95"][i][1]) << ")";
    o << "; fin's slope by regime: ";
    bool first = true;
    for (const Json& c : m["coefficients"])
      if (c["name"].get<std::string>().rfind("fin:", 0) == 0) {
        o << (first ? "" : ", ") << c["name"].get<std::string>().substr(4) << " " << sig3(c["estimate"]) << " ("
          << sig3(c["std_error"]) << ")";
        first = false;
      }
    o << "\n";
  }
  return o.str();
}

std::string section_status(const Json& r, const std::string& id) {
  for (const Json& s : r["sections"])
    if (s["id"] == id && s["status"] == "skipped") return "*Skipped: " + s["reason"].get<std::string>() + ".*\n\n";
  return "";
}

}  // namespace

std::string study_markdown(const Json& r, const std::vector<StudyFigure>& figures, const std::string& figures_note) {
  const bool sim = r["simulated_data"].get<bool>();
  const Json& st = r["settings"];
  std::ostringstream o;
  auto fig = [&](const std::string& name, const std::string& caption) {
    for (const StudyFigure& f : figures)
      if (f.file == name) o << "\n![" << caption << "](" << name << ")\n\n*" << md_cell(f.caption) << "*\n";
  };
  o << "# Replication report: AI and new quality productive forces\n\n";
  if (sim)
    o << "> **Simulated data.** Every number below comes from `" << r["data_source"].get<std::string>()
      << "`, a seeded stand-in calibrated to the paper's Tables 3-5, **not the paper's data**. It shows what the "
         "methods do on a panel of this shape; it cannot confirm or refute the paper's findings.\n\n";
  else
    o << "Data: `" << r["data_source"].get<std::string>() << "`.\n\n";
  o << "panelboot " << r["version"].get<std::string>() << ", backend " << r["backend"].get<std::string>()
    << (r["power"].is_null() ? std::string() : " (power study: " + r["power"]["backend"].get<std::string>() + ")") << "; seed "
    << st["seed"].get<std::uint64_t>() << "; wild bootstraps B = " << st["B"].get<long long>() << ", power R = "
    << st["R"].get<long long>() << " (nested B = " << st["wild_B"].get<long long>() << "), threshold B = "
    << st["threshold_B"].get<long long>() << " per test" << (st["quick"].get<bool>() ? " (--quick: a first look)" : "")
    << ". Every regression: two-way FE (" << st["fixed_effects"].get<std::string>() << "), SEs clustered by province, "
    << "stars and p from t(G-1) with G the provinces in the sample. Each number can be rerun from `"
    << st["data_file"].get<std::string>() << "` (written beside this report, with the derived variables) by the "
    << "commands in results.json.\n\n";

  o << "## Contents\n\n";
  for (const Json& s : r["sections"])
    o << "- " << s["title"].get<std::string>() << (s["status"] == "skipped" ? " — skipped: " + s["reason"].get<std::string>() : "")
      << "\n";
  o << "\n";

  const std::vector<std::pair<std::string, std::string>> intros = {
      {"Table 5", "## Table 5: baseline\n\n"},
      {"Table 6", "## Table 6: lagged regressor\n\n"},
      {"Table 7",
       "## Table 7: robustness\n\nPCA index: the first principal component of the ten ai_* sub-indicators "
       "(pooled z-scores), unit variance, oriented to correlate positively with rgzn; its coefficient is per SD of the "
       "index. Winsorized: every continuous variable at winsor2's 1%/99% cut points over the pooled sample.\n\n"},
      {"Table 8",
       "## Table 8: heterogeneity\n\nWith 8-11 clusters a cluster-robust t-test over-rejects and has little power. "
       "Beside each split: the wild bootstrap (exact enumeration of the 2^G sign vectors when 2^G <= B), Webb's six-point "
       "weights, and from a Monte Carlo study calibrated on each split's own fit (`power`): the size of each test at 5%, "
       "its power to detect the full-sample effect, and the minimum detectable effect at 80% power. A split whose power "
       "is low says little when it finds \"no effect\". The observations are those left after dropping singleton "
       "groups of the fixed effects (as reghdfe and fixest do): a development group's province seen in a single year "
       "is dropped.\n\n"},
  };
  for (const auto& [table, intro] : intros) {
    o << intro;
    const auto specs = specs_of(r, table);
    if (!specs.empty()) o << markdown_grid(table_grid(specs, val(r["settings"]["level"])));
    o << skipped_lines(r, "table" + table.substr(6));
    if (table == "Table 8") o << skipped_lines(r, "power");
    if (table == "Table 5") fig("bootstrap_t.png", "The baseline bootstrap t* against t(G-1)");
    if (table == "Table 8") {
      o << section_status(r, "heterogeneity");
      fig("power_curves.png", "Power curves per split");
    }
    o << "\n";
  }

  o << "## Table 9: mediation\n\n" << section_status(r, "mediation");
  if (!r["mediation"].is_null()) o << markdown_grid(table_grid(mediation_specs(r), val(r["settings"]["level"]))) << "\n" << mediation_markdown(r["mediation"]);
  o << "\n## Instrumental variables\n\n" << section_status(r, "iv");
  if (!r["iv"].is_null()) o << iv_markdown(r["iv"]);
  o << "\n## Panel threshold in fin (Section 5.3)\n\n" << section_status(r, "threshold");
  if (!r["threshold"].is_null()) {
    o << "The paper reports an effect of fin that changes at fin = 0.35. Hansen's (1999) model with fin as regime "
         "regressor and threshold variable, rgzn, urban, ind, fdi and open as controls; bootstrap p-values from "
      << st["threshold_B"].get<long long>() << " replications per test; slopes with SEs clustered by province.\n\n";
    o << threshold_markdown(r["threshold"]["hansen"], "Hansen (1999): his one-way FE (province), last period deleted")
      << "\n"
      << threshold_markdown(r["threshold"]["two_way"], "Two-way FE (province and year effects, `--time-effects`)");
    fig("lr_gamma.png", "LR(gamma) of the single-threshold search");
  }
  o << "\n## Audit of the published tables\n\n" << section_status(r, "audit");
  if (!r["audit"].is_null()) o << audit_markdown(r["audit"]);

  o << "\n## What simulated data can and cannot show\n\n"
    << (sim ? "This run used simulated stand-in data. Its coefficients are close to the paper's by construction and "
              "say nothing about Chinese provinces. What it does show: how the inference behaves on a panel of this "
              "shape (30 clusters, splits with 8-11), how much the reference distribution and the bootstrap change the "
              "stars, and how little power the splits have. Run it on the real data (`--data FILE`, `--map` for other "
              "names) to check the paper's claims.\n"
            : "This run used the data in " + r["data_source"].get<std::string>() +
                  ". The audit compares the paper's published numbers with each other, not with these estimates.\n");
  o << "\n## Figures\n\n";
  if (figures.empty()) o << "No figures were drawn: " << figures_note << "\n";
  else
    for (const StudyFigure& f : figures) o << "- `" << f.file << "`: " << md_cell(f.caption) << "\n";
  if (!figures.empty() && !figures_note.empty()) o << "\n" << figures_note << "\n";
  return o.str();
}

std::string study_latex(const Json& r) {
  std::string out = "% panelboot replicate: booktabs tables (\\usepackage{booktabs}); \\input this file.\n";
  if (r["simulated_data"].get<bool>()) out += "% SIMULATED DATA: a seeded stand-in, not the paper's data.\n";
  out += "\n";
  for (const TableDef& t : kTables) {
    const auto specs = specs_of(r, t.table);
    if (!specs.empty()) out += latex_grid(table_grid(specs, val(r["settings"]["level"])), t.caption, t.label);
  }
  if (!r["mediation"].is_null()) {
    out += latex_grid(table_grid(mediation_specs(r), val(r["settings"]["level"])), "Table 9: mediation through tec", "tab:pb-mediation");
    const Json& m = r["mediation"];
    out += "\\begin{table}[htbp]\\centering\n\\caption{Indirect effect of rgzn through tec}\\label{tab:pb-indirect}\n"
           "\\begin{tabular}{lccc}\n\\toprule\n & SE & p & interval \\\\\n\\midrule\n";
    out += "Delta method (cross-equation) & " + sig3(m["se_delta"]) + " & " + pval(m["p_delta"]) + " & " +
           latex_escape(interval(m["ci_delta"][0], m["ci_delta"][1])) + " \\\\\n";
    out += "Sobel & " + sig3(m["se_sobel"]) + " & " + pval(m["p_sobel"]) + " & \\\\\n";
    out += "Wild cluster bootstrap (WCU, percentile) & & " + pval(m["p_boot"]) + " & " +
           latex_escape(interval(m["ci_boot"][0], m["ci_boot"][1])) + " \\\\\n";
    out += "\\midrule\n$a \\cdot b$ & \\multicolumn{3}{c}{" + sig3(m["indirect"]) + "} \\\\\nMediated share $ab/c$ & "
           "\\multicolumn{3}{c}{" + latex_escape(pct(m["share_mediated"])) + "} \\\\\n\\bottomrule\n\\end{tabular}\n\\end{table}\n\n";
  }
  if (!r["threshold"].is_null()) {
    out += "\\begin{table}[htbp]\\centering\n\\caption{Panel threshold in fin: bootstrap tests}\\label{tab:pb-threshold}\n"
           "\\begin{tabular}{llcccc}\n\\toprule\nModel & Test & F & p & $\\hat\\gamma$ & 95\\% LR set \\\\\n\\midrule\n";
    for (const auto& [key, name] : std::vector<std::pair<std::string, std::string>>{{"hansen", "One-way FE"}, {"two_way", "Two-way FE"}}) {
      const Json& th = r["threshold"][key];
      for (std::size_t i = 0; i < th["tests"].size(); ++i) {
        const Json& t = th["tests"][i];
        const Json& m = th["models"][i];
        const std::size_t last = m["gammas"].size() - 1;
        out += (i ? std::string() : name) + " & " + std::to_string(t["k"].get<int>()) + " vs " +
               std::to_string(t["k"].get<int>() - 1) + " & " + sig3(t["F"]) + " & " + pval(t["p_value"]) + " & " +
               sig3(m["gammas"][last]) + " & " + latex_escape(interval(m["ci95"][last][0], m["ci95"][last][1])) + " \\\\\n";
      }
    }
    out += "\\bottomrule\n\\end{tabular}\n\\end{table}\n\n";
  }
  if (!r["audit"].is_null()) out += audit_latex(r["audit"]);
  return out;
}

std::string study_summary(const Json& r, const std::string& out_dir) {
  std::ostringstream o;
  if (r["simulated_data"].get<bool>()) o << "SIMULATED DATA: a seeded stand-in for the study's panel, not the paper's data\n";
  o << "panelboot replicate: " << r["data_source"].get<std::string>() << ", backend " << r["backend"].get<std::string>()
    << ", B = " << r["settings"]["B"].get<long long>() << ", R = " << r["settings"]["R"].get<long long>() << "\n\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-28s %10s %10s %8s %8s %8s %8s %5s\n", "specification", "estimate", "SE", "p t(G-1)",
                "p wild", "p Webb", "power", "G");
  o << line;
  auto row = [&](const Json& s) {
    const Json* i = interest_of(s);
    if (!i) return;
    const std::string name = s["table"].get<std::string>() + " " + s["column"].get<std::string>();
    std::string power = "";
    if (!(*i)["power"].is_null() && (*i)["power"].contains("power")) power = pct((*i)["power"]["power"]["wild"]);
    std::snprintf(line, sizeof line, "%-28.28s %10s %10s %8s %8s %8s %8s %5lld\n", name.c_str(), sig3((*i)["estimate"]).c_str(),
                  sig3((*i)["std_error"]).c_str(), pval((*i)["p_value"]).c_str(), boot_pval((*i)["wild"], true).c_str(),
                  (*i)["webb"].is_null() ? "" : boot_pval((*i)["webb"], true).c_str(), power.c_str(),
                  s["fit"]["n_clusters"].get<long long>());
    o << line;
  };
  for (const Json& s : r["specifications"]) row(s);
  for (const Json* s : mediation_specs(r)) row(*s);
  if (!r["mediation"].is_null()) {
    const Json& m = r["mediation"];
    o << "\nmediation a*b = " << sig3(m["indirect"]) << ": delta-method p " << pval(m["p_delta"]) << ", bootstrap "
      << interval(m["ci_boot"][0], m["ci_boot"][1]) << ", share " << pct(m["share_mediated"]) << "\n";
  }
  if (!r["threshold"].is_null())
    for (const auto& key : {"hansen", "two_way"}) {
      const Json& th = r["threshold"][key];
      o << "threshold (" << key << "): ";
      for (const Json& t : th["tests"]) o << "F" << t["k"].get<int>() << " = " << sig3(t["F"]) << " (p " << pval(t["p_value"]) << ") ";
      o << "\n";
    }
  if (!r["audit"].is_null()) o << "audit: " << r["audit"]["flags"].size() << " flagged inconsistencies in the published tables\n";
  for (const Json& s : r["sections"])
    if (s["status"] == "skipped") o << "skipped: " << s["title"].get<std::string>() << " (" << s["reason"].get<std::string>() << ")\n";
  o << "\nreport written to " << out_dir << "/report.md (tables.tex, results.json, figures)\n";
  return o.str();
}

}  // namespace panelboot
