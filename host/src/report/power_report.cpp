// `power`'s report: text, Markdown and JSON (results[], mde[], calibration: field names are a
// contract).
#include <cmath>
#include <cstdio>
#include <sstream>

#include "panelboot/config.hpp"
#include "panelboot/power.hpp"
#include "panelboot/report.hpp"
#include "report/format.hpp"

namespace panelboot {
namespace {
using report::num_or_null;
std::string f(const char* spec, double v) { return report::fmt_num(spec, v); }

nlohmann::json opt_or_null(const std::optional<double>& v) { return v ? num_or_null(*v) : nlohmann::json(); }

std::string group_label(const std::string& split, const std::string& group) {
  return split == "pooled" ? std::string("pooled (whole sample)") : split + " = " + group;
}

nlohmann::json cell_json(const PowerCell& c) {
  nlohmann::json j;
  j["split"] = c.split;
  j["group"] = c.group;
  j["effect"] = c.effect;
  j["test"] = c.test;
  j["alpha"] = c.alpha;
  j["rejection_rate"] = num_or_null(c.rejection_rate);
  j["mc_se"] = num_or_null(c.mc_se);
  j["mc_ci"] = {num_or_null(c.ci_low), num_or_null(c.ci_high)};
  j["n_rep"] = c.n_rep;
  j["rejections"] = c.rejections;
  j["n_clusters"] = c.n_clusters;
  j["size_flag"] = c.size_flag ? nlohmann::json(*c.size_flag) : nlohmann::json();
  if (c.size_flag) j["size_reference"] = c.size_reference;
  j["estimate_mean"] = num_or_null(c.estimate_mean);
  j["estimate_sd"] = num_or_null(c.estimate_sd);
  return j;
}

nlohmann::json mde_json(const PowerMde& m) {
  nlohmann::json j;
  j["split"] = m.split;
  j["group"] = m.group;
  j["test"] = m.test;
  j["alpha"] = m.alpha;
  j["power"] = m.power;
  j["effect"] = opt_or_null(m.effect);
  j["bracket"] = {opt_or_null(m.bracket_low), opt_or_null(m.bracket_high)};
  j["mde_analytic"] = num_or_null(m.mde_analytic);
  if (!m.note.empty()) j["note"] = m.note;
  return j;
}

nlohmann::json group_json(const PowerGroup& g) {
  nlohmann::json j;
  j["split"] = g.split;
  j["group"] = g.group;
  j["n_obs"] = g.n_obs;
  j["n_clusters"] = g.n_clusters;
  j["calibrated_on"] = g.calibrated_on;
  j["s2"] = g.s2;
  j["error_scale"] = g.error_scale;
  j["k_all"] = g.k_all;
  j["dof_k"] = g.dof_k;
  j["estimate"] = g.estimate;
  j["std_error"] = num_or_null(g.std_error);
  nlohmann::json co = nlohmann::json::object();
  for (const auto& kv : g.coefficients) co[kv.first] = kv.second;
  j["coefficients"] = co;
  j["enumerated"] = g.enumerated;
  j["n_undefined"] = g.n_undefined;
  if (!g.rho_source.empty()) {
    j["rho_estimated"] = g.rho_estimated;
    j["rho"] = g.rho;
    j["rho_source"] = g.rho_source;
    j["periods"] = g.periods;
    j["ar1_variance"] = g.ar1_variance;
  }
  nlohmann::json ex = nlohmann::json::object();
  for (const auto& kv : g.exact_level) ex[kv.first] = kv.second;
  j["exact_level"] = ex;
  if (!g.design.empty()) j["design"] = g.design;
  if (g.placebo_sd > 0) {
    j["placebo_rho_estimated"] = g.placebo_rho_estimated;
    j["placebo_rho"] = g.placebo_rho;
    j["placebo_icc"] = g.placebo_icc;
    j["placebo_sd"] = g.placebo_sd;
  }
  if (!g.formula.empty()) {
    j["formula"] = g.formula;
    j["contrast"] = g.contrast;
    j["q"] = g.q;
  }
  return j;
}

nlohmann::json paired_json(const PowerPaired& p) {
  nlohmann::json j;
  j["split"] = p.split;
  j["group"] = p.group;
  j["effect"] = p.effect;
  j["alpha"] = p.alpha;
  j["test_a"] = p.test_a;
  j["test_b"] = p.test_b;
  j["n_rep"] = p.n_rep;
  j["only_a"] = p.only_a;
  j["only_b"] = p.only_b;
  j["mcnemar_p"] = p.mcnemar_p;
  return j;
}

nlohmann::json saved_json(const SavedReplication& s) {
  nlohmann::json j;
  j["file"] = s.file;
  j["split"] = s.split;
  j["group"] = s.group;
  j["effect"] = s.effect;
  j["replication"] = s.replication;
  j["wild_seed"] = s.wild_seed;
  j["wild_B"] = s.wild_B;
  j["estimate"] = s.estimate;
  j["std_error"] = s.std_error;
  j["t"] = num_or_null(s.t);
  j["statistic"] = num_or_null(s.statistic);
  j["formula"] = s.formula;
  j["wild_tests"] = s.wild_tests;
  nlohmann::json p = nlohmann::json::object();
  for (const auto& kv : s.p_values) p[kv.first] = num_or_null(kv.second);
  j["p_values"] = p;
  return j;
}

nlohmann::json power_json(const PowerResult& r) {
  nlohmann::json j;
  j["program"] = "panelboot";
  j["version"] = PANELBOOT_VERSION;
  j["command"] = "power";
  j["simulated_data"] = r.simulated;
  if (r.simulated) j["note"] = kSimulatedNote;
  j["formula"] = r.formula;
  j["target"] = r.target;
  if (!r.placebo_of.empty()) j["placebo_of"] = r.placebo_of;
  j["data_source"] = r.data_source;
  j["full_sample_estimate"] = r.full_sample_estimate;
  j["effects"] = r.effects;
  j["tests"] = r.tests;
  j["alpha"] = r.alphas;
  j["R"] = r.n_rep;
  j["wild_B"] = r.wild_B;
  j["power_target"] = r.power_target;
  j["errors"] = r.errors;
  j["calibrate"] = r.calibrate;
  j["seed"] = r.seed;
  j["results"] = nlohmann::json::array();
  for (const PowerCell& c : r.cells) j["results"].push_back(cell_json(c));
  j["mde"] = nlohmann::json::array();
  for (const PowerMde& m : r.mde) j["mde"].push_back(mde_json(m));
  j["paired"] = nlohmann::json::array();
  for (const PowerPaired& p : r.paired) j["paired"].push_back(paired_json(p));
  j["calibration"] = nlohmann::json::array();
  for (const PowerGroup& g : r.groups) j["calibration"].push_back(group_json(g));
  j["saved_replications"] = nlohmann::json::array();
  for (const SavedReplication& s : r.saved) j["saved_replications"].push_back(saved_json(s));
  j["notes"] = r.notes;
  j["timing"] = report::timing_json(r.timing);
  j["backend"] = r.backend;
  j["threads"] = r.threads;
  return j;
}

std::string mde_text(const PowerMde& m) {
  if (!m.effect) return m.bracket_high ? "<= " + f("%.4g", *m.bracket_high) : std::string("not reached");
  std::string s = f("%.4g", *m.effect);
  if (m.bracket_low && m.bracket_high) s += " [" + f("%.4g", *m.bracket_low) + ", " + f("%.4g", *m.bracket_high) + "]";
  return s;
}

std::string size_text(const PowerCell& c) {
  if (!c.size_flag) return "";
  return std::string(*c.size_flag ? "SIZE OFF" : "size ok") + " (vs " + f("%.4g", c.size_reference) + ")";
}

void header_text(const PowerResult& r, std::ostringstream& o, bool md) {
  const std::string b = md ? "**" : "";
  o << (md ? "## " : "") << "Monte Carlo power: " << r.formula << "\n\n";
  if (r.simulated) o << (md ? "> " : "NOTE: ") << kSimulatedNote << "\n\n";
  const bool design = r.errors == "design";
  o << b << "Target" << b << ": " << r.target;
  if (design) o << " (synthetic designs: x and the errors have variance 1)";
  else if (!r.placebo_of.empty()) o << " (drawn per replication with " << r.placebo_of << "'s correlation; the data's own outcome)";
  else o << " (full-sample estimate " << f("%.6g", r.full_sample_estimate) << ")";
  o << "; H0: " << r.target << " = 0, two-sided\n";
  o << (md ? "\n" : "") << b << "Design" << b << ": R = " << r.n_rep << " replications per group and effect, errors "
    << r.errors << (design || !r.placebo_of.empty() ? std::string() : r.calibrate == "group" ? ", calibrated on each group's own fit" : ", calibrated on the pooled fit")
    << ", seed " << r.seed << "; wild bootstraps B = " << r.wild_B << "\n\n";
}

// Each pair of tests on the same datasets: who rejected alone, and McNemar's exact p.
void paired_text(const PowerResult& r, std::ostringstream& o, bool md) {
  if (r.paired.empty()) return;
  o << "\n" << (md ? "### " : "") << "Paired tests on the same datasets (McNemar)\n\n";
  if (md) o << "| group | effect | alpha | tests a / b | only a rejects | only b rejects | McNemar p |\n|---|---:|---:|---|---:|---:|---:|\n";
  for (const PowerPaired& p : r.paired) {
    const std::string pair = p.test_a + " / " + p.test_b;
    if (md) {
      o << "| " << group_label(p.split, p.group) << " | " << f("%.6g", p.effect) << " | " << f("%g", p.alpha) << " | " << pair
        << " | " << p.only_a << " | " << p.only_b << " | " << f("%.4g", p.mcnemar_p) << " |\n";
    } else {
      char buf[400];
      std::snprintf(buf, sizeof buf, "  %-28s %12s %6s %-22s only a %7lld  only b %7lld  p %s\n", group_label(p.split, p.group).c_str(),
                    f("%.6g", p.effect).c_str(), f("%g", p.alpha).c_str(), pair.c_str(), static_cast<long long>(p.only_a),
                    static_cast<long long>(p.only_b), f("%.4g", p.mcnemar_p).c_str());
      o << buf;
    }
  }
}

std::string power_text(const PowerResult& r, bool md) {
  std::ostringstream o;
  header_text(r, o, md);
  for (const PowerGroup& g : r.groups) {
    const std::string fitted = g.contrast.empty() ? r.target : g.contrast[0] + " - " + g.contrast[1];
    o << (md ? "### " : "") << group_label(g.split, g.group) << ": N = " << g.n_obs << ", G = " << g.n_clusters;
    if (g.placebo_sd > 0)
      o << ", placebo with " << r.placebo_of << "'s correlation: AR(1) " << f("%.3g", g.placebo_rho) << " (estimated "
        << f("%.3g", g.placebo_rho_estimated) << " within), between units of a cluster " << f("%.3g", g.placebo_icc) << ", SD "
        << f("%.4g", g.placebo_sd);
    else
      o << ", fitted " << fitted << " = " << f("%.6g", g.estimate) << " (SE " << f("%.4g", g.std_error) << "), s2 = "
        << f("%.4g", g.s2);
    o << (g.enumerated ? "; Rademacher tests enumerate all 2^G sign vectors" : "") << "\n";
    if (!g.formula.empty()) {
      o << (md ? "\n" : "  ") << "Difference test (effect = how much the first group's " << r.target
        << " exceeds the others'): " << (g.q > 1 ? "joint F(" + std::to_string(g.q) + ", G-1) of" : std::string("t(G-1) of"));
      for (std::size_t i = 1; i < g.contrast.size(); ++i) o << (i > 1 ? "," : "") << " " << g.contrast[0] << " = " << g.contrast[i];
      o << "; model " << g.formula << "\n";
    }
    o << "\n";
    if (md) o << "| effect | test | alpha | rejection rate | MC SE | 95% MC interval | mean estimate | size |\n|---:|---|---:|---:|---:|---|---:|---|\n";
    else {
      char buf[200];
      std::snprintf(buf, sizeof buf, "  %12s %-10s %6s %9s %8s %19s %13s  %s\n", "effect", "test", "alpha", "rejection", "MC SE",
                    "95% MC interval", "mean estimate", "size");
      o << buf;
    }
    for (const PowerCell& c : r.cells) {
      if (c.split != g.split || c.group != g.group) continue;
      const std::string ci = "[" + f("%.4f", c.ci_low) + ", " + f("%.4f", c.ci_high) + "]";
      if (md) {
        o << "| " << f("%.6g", c.effect) << " | " << c.test << " | " << f("%g", c.alpha) << " | " << f("%.4f", c.rejection_rate)
          << " | " << f("%.4f", c.mc_se) << " | " << ci << " | " << f("%.6g", c.estimate_mean) << " | " << size_text(c) << " |\n";
      } else {
        char buf[260];
        std::snprintf(buf, sizeof buf, "  %12s %-10s %6s %9s %8s %19s %13s  %s\n", f("%.6g", c.effect).c_str(), c.test.c_str(),
                      f("%g", c.alpha).c_str(), f("%.4f", c.rejection_rate).c_str(), f("%.4f", c.mc_se).c_str(), ci.c_str(),
                      f("%.6g", c.estimate_mean).c_str(), size_text(c).c_str());
        o << buf;
      }
    }
    o << "\n";
  }
  o << (md ? "### " : "") << "Minimum detectable effect at power " << f("%g", r.power_target) << "\n\n";
  if (md) o << "| group | test | alpha | MDE (simulated) [bracket] | MDE (analytic) |\n|---|---|---:|---|---:|\n";
  for (const PowerMde& m : r.mde) {
    if (md) {
      o << "| " << group_label(m.split, m.group) << " | " << m.test << " | " << f("%g", m.alpha) << " | " << mde_text(m) << " | "
        << f("%.4g", m.mde_analytic) << " |\n";
    } else {
      char buf[300];
      std::snprintf(buf, sizeof buf, "  %-28s %-10s %6s %-36s analytic %s\n", group_label(m.split, m.group).c_str(), m.test.c_str(),
                    f("%g", m.alpha).c_str(), mde_text(m).c_str(), f("%.4g", m.mde_analytic).c_str());
      o << buf;
    }
  }
  paired_text(r, o, md);
  o << "\n" << (md ? "" : "  ")
    << "Analytic MDE: (t_{G-1,1-alpha/2} + t_{G-1,power}) x SE (Stata power's rule). Size flagged when more than 3 "
       "Monte Carlo SEs (under the null) from alpha, or from an enumerated test's exact level.\n";
  for (const std::string& n : r.notes) o << (md ? "- " : "  Note: ") << n << "\n";
  return o.str();
}

}  // namespace

std::string render_power(const PowerResult& r, Format fmt) {
  switch (fmt) {
    case Format::kJson: return dump_json(power_json(r));
    case Format::kMarkdown: return power_text(r, true);
    default: return power_text(r, false);
  }
}

}  // namespace panelboot
