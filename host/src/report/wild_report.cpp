#include <cmath>
#include <cstdio>
#include <sstream>

#include "panelboot/config.hpp"
#include "panelboot/report.hpp"
#include "report/format.hpp"
#include "panelboot/wild.hpp"

namespace panelboot {
namespace {
using report::num_or_null;
std::string f(const char* spec, double v) { return report::fmt_num(spec, v); }

// A confidence set as text: [lo, hi], or its pieces joined by U with infinite ends open.
std::string set_text(const WildTest& t, const char* spec = "%.6g") {
  if (t.ci_pieces.size() <= 1 && std::isfinite(t.ci_low) && std::isfinite(t.ci_high))
    return "[" + f(spec, t.ci_low) + ", " + f(spec, t.ci_high) + "]";
  std::string s;
  for (const auto& pc : t.ci_pieces) {
    if (!s.empty()) s += " U ";
    s += (std::isinf(pc.first) ? "(-inf" : "[" + f(spec, pc.first)) + ", " +
         (std::isinf(pc.second) ? "+inf)" : f(spec, pc.second) + "]");
  }
  return s;
}

// The row's label: the hypothesis, and for an IV model's rows which test.
std::string row_label(const WildTest& t) {
  if (t.test == "wre" || t.test == "wue" || t.test == "ar") return t.hypothesis + " (" + (t.test == "ar" ? std::string("AR") : t.test == "wre" ? "WRE" : "WUE") + ")";
  return t.hypothesis;
}

// The tests as a LaTeX tabular (the model's coefficients are `fit --format latex`'s table).
std::string wild_latex(const WildResult& w, const WildOptions& wo) {
  std::ostringstream o;
  const int lvl = static_cast<int>(std::lround(wo.level * 100));
  o << "\\begin{tabular}{lrrrcr}\n\\hline\nHypothesis & $t$ / $F$ & CRVE $p$ & Bootstrap $p$ & " << lvl
    << "\\% CI & $B$ \\\\\n\\hline\n";
  for (const WildTest& t : w.tests) {
    const std::string ci = t.ci_available ? latex_escape(set_text(t, "%.4g")) : "";
    o << latex_escape(row_label(t)) << " & " << f("%.3f", t.stat) << " & " << f("%.4f", t.crve_p_value) << " & "
      << f("%.4f", t.p_value) << " & " << ci << " & " << t.n_boot << (t.enumerated ? " (all)" : "") << " \\\\\n";
  }
  o << "\\hline\n\\end{tabular}\n";
  o << "% Wild " << (w.bootcluster == "(observation)" ? "(heteroskedastic) " : "cluster ") << "bootstrap: "
    << w.method << ", " << w.weight_type << " weights, bootstrap clusters " << latex_escape(w.bootcluster) << " ("
    << w.n_bootclusters << "), seed " << w.seed << "; " << pvalue_type_name(wo.pvalue) << " p-values; model "
    << latex_escape(w.fit.formula) << "\n";
  if (w.fit.simulated) o << "% " << kSimulatedNote << "\n";
  return o.str();
}
}  // namespace

nlohmann::json wild_json(const WildResult& w, const WildOptions& wo) {
  nlohmann::json j;
  j["program"] = "panelboot";
  j["version"] = PANELBOOT_VERSION;
  j["command"] = "wild";
  j["simulated_data"] = w.fit.simulated;
  if (w.fit.simulated) j["note"] = kSimulatedNote;
  j["model"] = fit_json({w.fit})["models"][0];
  j["method"] = w.method;
  j["weight_type"] = w.weight_type;
  j["bootcluster"] = w.bootcluster;
  j["n_bootclusters"] = w.n_bootclusters;
  j["seed"] = w.seed;
  j["backend"] = w.backend;
  j["level"] = wo.level;
  j["ties"] = wo.ties == Ties::kStrict ? "strict" : "inclusive";
  j["pvalue_type"] = pvalue_type_name(wo.pvalue);
  if (!w.pvalue_recommended.empty()) j["pvalue_recommended"] = w.pvalue_recommended;
  j["fe_reprojected"] = w.fe_reprojected;
  j["notes"] = w.notes;
  j["timing"] = report::timing_json(w.timing);
  j["threads"] = w.threads;
  j["tests"] = nlohmann::json::array();
  for (const WildTest& t : w.tests) {
    nlohmann::json tj;
    tj["hypothesis"] = t.hypothesis;
    tj["test"] = t.test;
    tj["q"] = t.q;
    if (t.q == 1 && t.test != "ar") tj["t_stat"] = t.stat;
    else tj["f_stat"] = t.stat;
    tj["p_value"] = num_or_null(t.p_value);
    tj["p_value_adjusted"] = num_or_null(t.p_value_adjusted);
    tj["crve_p_value"] = t.crve_p_value;
    // an unbounded end (AR sets) is null, with ci_bounded false
    tj["ci_low"] = t.ci_available ? num_or_null(t.ci_low) : nlohmann::json();
    tj["ci_high"] = t.ci_available ? num_or_null(t.ci_high) : nlohmann::json();
    tj["ci_pieces"] = nlohmann::json::array();
    for (const auto& pc : t.ci_pieces) tj["ci_pieces"].push_back({num_or_null(pc.first), num_or_null(pc.second)});
    if (t.ci_available) tj["ci_bounded"] = t.ci_bounded;
    if (t.ci_available) tj["ci_tolerance"] = t.ci_tol;
    tj["n_boot"] = t.n_boot;
    tj["n_finite"] = t.n_finite;
    tj["n_exceed"] = t.n_exceed;
    tj["enumerated"] = t.enumerated;
    if (!t.note.empty()) tj["note"] = t.note;
    j["tests"].push_back(tj);
  }
  return j;
}

std::string render_wild(const WildResult& w, const WildOptions& wo, Format fmt) {
  if (fmt == Format::kJson) return dump_json(wild_json(w, wo));
  std::ostringstream o;
  if (fmt == Format::kCsv) {
    o << "hypothesis,q,stat,crve_p_value,p_value,p_value_adjusted,ci_low,ci_high,n_boot,enumerated,method,weight_type,"
         "test,simulated_data\n";
    for (const WildTest& t : w.tests)
      o << csv_quote(t.hypothesis) << "," << t.q << "," << f("%.17g", t.stat) << "," << f("%.17g", t.crve_p_value)
        << "," << f("%.17g", t.p_value) << "," << f("%.17g", t.p_value_adjusted) << ","
        << (t.ci_available ? f("%.17g", t.ci_low) : "") << "," << (t.ci_available ? f("%.17g", t.ci_high) : "")
        << "," << t.n_boot << "," << (t.enumerated ? 1 : 0) << "," << w.method << "," << w.weight_type << "," << t.test << ","
        << (w.fit.simulated ? 1 : 0) << "\n";
    return o.str();
  }
  if (fmt == Format::kLatex) return wild_latex(w, wo);
  const int lvl = static_cast<int>(std::lround(wo.level * 100));
  o << render_fit({w.fit}, Format::kText);
  o << "Wild " << (w.bootcluster == "(observation)" ? "(heteroskedastic) " : "cluster ") << "bootstrap: "
    << w.method << ", " << w.weight_type << " weights, bootstrap clusters " << w.bootcluster << " ("
    << w.n_bootclusters << "), seed " << w.seed << ", backend " << w.backend << "\n";
  const bool md = fmt == Format::kMarkdown;
  if (md) o << "\n| hypothesis | t / F | CRVE p | bootstrap p | " << lvl << "% CI | B | enumerated |\n|---|---:|---:|---:|---|---:|---|\n";
  else
    o << "\n  hypothesis                      t / F    CRVE p  boot. p    [" << lvl
      << "% CI (test inversion)]            B  enum.\n";
  for (const WildTest& t : w.tests) {
    std::string ci = t.ci_available ? set_text(t) : "-";
    std::string stat = (t.q > 1 || t.test == "ar" ? "F=" : "") + f("%.4f", t.stat);
    std::string pb = f("%.4f", t.p_value);
    if (wo.padjust != PAdjust::kNone) pb += " (adj " + f("%.4f", t.p_value_adjusted) + ")";
    if (md) {
      o << "| " << md_cell(row_label(t)) << " | " << stat << " | " << f("%.4f", t.crve_p_value) << " | " << pb << " | " << ci
        << " | " << t.n_boot << " | " << (t.enumerated ? "yes" : "no") << " |\n";
    } else {
      char line[512];
      std::snprintf(line, sizeof line, "  %-30s %8s  %8s  %7s  %-34s %9lld  %s\n", row_label(t).c_str(),
                    stat.c_str(), f("%.4f", t.crve_p_value).c_str(), pb.c_str(), ci.c_str(),
                    static_cast<long long>(t.n_boot), t.enumerated ? "yes" : "no");
      o << line;
    }
    if (!t.note.empty()) o << "    note: " << t.note << "\n";
  }
  for (const auto& n : w.notes) o << "Note: " << n << "\n";
  o << "p-values: " << pvalue_type_name(wo.pvalue)
    << "; ties (|t*| within 1e-10 of |t|) " << (wo.ties == Ties::kStrict ? "not counted (strict)" : "counted (inclusive)") << "\n";
  return o.str();
}

}  // namespace panelboot
