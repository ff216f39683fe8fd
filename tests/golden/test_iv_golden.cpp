// Golden tests for 2SLS: coefficients and standard errors against R's AER::ivreg with the fixed
// effects as explicit dummies and sandwich's vcovHC / vcovCL(type = "HC1"), recorded by
// tests/data/iv_aer.R in tests/data/iv_aer.out (R 4.2.2, AER 1.2.10, sandwich 3.0.2). The dummy
// regression counts every FE level in K, so panelboot runs with --dof-fe all; sandwich's two-way
// vcovCL gives each term its own G/(G-1) (--multiway-adj each).
#include <fstream>
#include <map>

#include "helpers.hpp"

using pbtest::coef;
using pbtest::data_path;
using pbtest::fit_json;

namespace {

struct Reference {
  double estimate, std_error;
};
// model id -> vcov id -> coefficient -> (estimate, SE)
using Table = std::map<std::string, std::map<std::string, std::map<std::string, Reference>>>;

Table read_reference() {
  std::ifstream in(data_path("iv_aer.out"));
  EXPECT_TRUE(in.good()) << "tests/data/iv_aer.out";
  Table t;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string model, vcov, name;
    double est = 0, se = 0;
    ls >> model >> vcov >> name;
    if (vcov == "nobs" || vcov == "nclust") continue;
    ls >> est >> se;
    t[model][vcov][name] = {est, se};
  }
  return t;
}

struct Model {
  const char* id;
  const char* data;
  const char* formula;
  const char* unit;  // the one-way cluster variable
  const char* time;
  std::vector<std::string> extra;
};

const Model kModels[] = {
    {"c1", "cigar_fem.csv", "log(Sales) ~ log(NDI) | State + Year | log(Price) ~ log(Pimin)", "State", "Year", {}},
    {"c2", "cigar_fem.csv", "log(Sales) ~ log(NDI) | State + Year | log(Price) ~ log(Pimin) + log(Pop16)", "State",
     "Year", {}},
    {"c3", "cigar_fem.csv", "log(Sales) ~ log(NDI) | State + Year | log(Price) ~ log(Pimin) + log(Pop16)", "State",
     "Year", {"--weights", "Pop"}},
    {"c4", "cigar_fem.csv", "log(Sales) ~ log(NDI) | log(Price) ~ log(Pimin) + log(Pop16)", "State", "Year", {}},
    {"c5", "cigar_fem.csv", "log(Sales) ~ 1 | State + Year | log(Price) + log(NDI) ~ log(Pimin) + log(Pop16) + log(Pop)",
     "State", "Year", {}},
    {"e1", "empluk_fem.csv", "log(Emp) ~ log(Capital) | Firm + Year | log(Wage) ~ log(Output)", "Firm", "Year", {}},
};

std::vector<std::string> vcov_args(const std::string& vcov, const Model& m) {
  if (vcov == "iid") return {"--vcov", "iid"};
  if (vcov == "hc1") return {"--vcov", "hc1"};
  if (vcov == "cl1" || vcov == "first_cl1") return {"--cluster", m.unit, "--dof-fe", "all"};
  if (vcov == "cl2") return {"--cluster", std::string(m.unit) + "," + m.time, "--dof-fe", "all", "--multiway-adj", "each"};
  if (vcov == "cl2min") return {"--cluster", std::string(m.unit) + "," + m.time, "--dof-fe", "all", "--multiway-adj", "min"};
  ADD_FAILURE() << "unknown vcov id " << vcov;
  return {};
}

// AER's dummy regression agrees with an exact within transform to about 3e-12 (relative).
void expect_close(double actual, double expected, const std::string& what) {
  EXPECT_NEAR(actual, expected, 1e-8 * std::fabs(expected)) << what;
}

}  // namespace

TEST(GoldenIv, TwoSlsCoefficientsAndStandardErrorsEqualAerIvregWithSandwich) {
  const Table ref = read_reference();
  ASSERT_EQ(ref.size(), 6u);
  int compared = 0;
  for (const Model& m : kModels) {
    for (const auto& [vcov, coefs] : ref.at(m.id)) {
      std::vector<std::string> args{"--data", data_path(m.data), "--formula", m.formula};
      args.insert(args.end(), m.extra.begin(), m.extra.end());
      const std::vector<std::string> v = vcov_args(vcov, m);
      args.insert(args.end(), v.begin(), v.end());
      const nlohmann::json j = fit_json(args);
      ASSERT_TRUE(j.contains("models")) << m.id << " " << vcov;
      const nlohmann::json& model = j["models"][0];
      EXPECT_EQ(model["estimator"], "2sls");
      for (const auto& [name, r] : coefs) {
        const std::string what = std::string(m.id) + " " + vcov + " " + name;
        if (vcov == "first_cl1") {
          const nlohmann::json& fs = model["first_stages"][0];
          bool found = false;
          for (const auto& c : fs["coefficients"])
            if (c["name"] == name) {
              found = true;
              expect_close(c["estimate"], r.estimate, what);
              expect_close(c["std_error"], r.std_error, what);
            }
          EXPECT_TRUE(found) << what;
        } else {
          expect_close(coef(model, name)["estimate"], r.estimate, what);
          expect_close(coef(model, name)["std_error"], r.std_error, what);
        }
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 58);
}

TEST(GoldenIv, TheEndogenousRegressorComesFirstUnderItsOwnName) {
  const auto j = fit_json({"--data", data_path("cigar_fem.csv"), "--formula", kModels[0].formula, "--cluster", "State"});
  const auto& m = j["models"][0];
  ASSERT_EQ(m["coefficients"].size(), 2u);
  EXPECT_EQ(m["coefficients"][0]["name"], "log(Price)");
  EXPECT_EQ(m["coefficients"][1]["name"], "log(NDI)");
  EXPECT_EQ(m["endogenous"], nlohmann::json({"log(Price)"}));
  EXPECT_EQ(m["instruments"], nlohmann::json({"log(Pimin)"}));
  EXPECT_EQ(m["df"], 45.0);  // t(G-1)
}

// Montiel Olea-Pflueger on ivreg2r's simulated clustered data (tests/data/ivreg2/), against an
// independent computation of weakivtest's formulas (numpy/scipy, written from weakivtest.ado's
// text for this project; not Stata output - weakivtest is Stata-only): effective F, the
// generalized 2SLS critical value at tau = 10% (c_TSLS), the simplified one, and B_TSLS, to the
// digits that computation printed.
TEST(GoldenIv, MontielOleaPfluegerEqualsAnIndependentComputation) {
  struct Case {
    std::vector<std::string> vcov;
    const char *f, *crit, *simplified, *b;
  } cases[] = {{{"--vcov", "hc1"}, "376.4650", "5.2402", "19.5868", "0.08749"},
               {{"--cluster", "cluster_id"}, "429.4093", "8.2856", "20.0085", "0.23439"}};
  for (const Case& c : cases) {
    std::vector<std::string> args{"--data", data_path("ivreg2/sim_cluster_data.csv"), "--formula", "y ~ x1 | endo1 ~ z1 + z2"};
    args.insert(args.end(), c.vcov.begin(), c.vcov.end());
    const auto j = fit_json(args);
    const auto& d = j["models"][0]["diagnostics"];
    SCOPED_TRACE(c.vcov[1]);
    pbtest::expect_printed(d["effective_f"], c.f, "effective F");
    pbtest::expect_printed(d["effective_f_crit"], c.crit, "c_TSLS(10%)");
    pbtest::expect_printed(d["effective_f_crit_simplified"], c.simplified, "simplified");
    pbtest::expect_printed(d["mop_b_tsls"], c.b, "B_TSLS");
  }
}
