// `power`: every replication against `fit` and `wild` on the dataset it saves (brute force), the
// CRVE power curve against the noncentral t, the size of WCR on the embedded data's regions,
// determinism (threads, batches, effect lists), and the parsers.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "helpers.hpp"
#include "panelboot/distributions.hpp"
#include "panelboot/error.hpp"
#include "panelboot/kernels/wild_weights.hpp"
#include "panelboot/power.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace panelboot;

namespace {

const char* kStudy = "newqua ~ rgzn + urban + ind + fdi + open + fin | province + year";

json power_json(std::vector<std::string> args) {
  args.insert(args.begin(), "power");
  args.insert(args.end(), {"--format", "json"});
  const pbtest::CliRun r = pbtest::run(args);
  EXPECT_EQ(r.status, 0) << r.err;
  if (r.status != 0) return json::object();
  return json::parse(r.out);
}

json cli_json(std::vector<std::string> args) {
  args.insert(args.end(), {"--format", "json"});
  const pbtest::CliRun r = pbtest::run(args);
  EXPECT_EQ(r.status, 0) << r.err;
  if (r.status != 0) return json::object();
  return json::parse(r.out);
}

struct TempDir {
  fs::path path;
  TempDir() : path(pbtest::temp_path("_power")) { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string first_line(const std::string& file) {
  std::ifstream in(file);
  std::string l;
  std::getline(in, l);
  return l;
}

// The cells of a run keyed by (split, group, effect, test, alpha).
std::map<std::string, json> cells_by_key(const json& j) {
  std::map<std::string, json> m;
  for (const json& c : j.at("results"))
    m[c.at("split").get<std::string>() + "|" + c.at("group").get<std::string>() + "|" +
      std::to_string(c.at("effect").get<double>()) + "|" + c.at("test").get<std::string>() + "|" +
      std::to_string(c.at("alpha").get<double>())] = c;
  return m;
}

// Each bootstrap p-value of a saved replication equals `wild` on its file with the recorded seed
// and B: the rows as --test (with --joint when there are two or more).
void expect_bootstraps_reproduced(const json& s, const std::string& formula, const std::string& cluster,
                                  const std::vector<std::string>& rows) {
  const json& p = s.at("p_values");
  const std::string seed = std::to_string(s.at("wild_seed").get<std::uint64_t>());
  const std::string B = std::to_string(s.at("wild_B").get<std::int64_t>());
  const std::vector<std::pair<std::string, std::vector<std::string>>> boots = {
      {"wild", {}}, {"wild-webb", {"--weight-type", "webb"}}, {"wcu", {"--impose-null", "no"}}};
  for (const auto& [test, extra] : boots) {
    if (!p.contains(test)) continue;
    std::vector<std::string> args = {"wild", "--data", s.at("file"), "-f", formula, "--cluster", cluster, "--seed", seed,
                                     "--B", B, "--no-ci"};
    for (const std::string& r : rows) args.insert(args.end(), {"--test", r});
    if (rows.size() > 1) args.push_back("--joint");
    args.insert(args.end(), extra.begin(), extra.end());
    const json w = cli_json(args);
    if (!w.contains("tests")) continue;
    EXPECT_EQ(w["tests"][0].at("p_value").get<double>(), p.at(test).get<double>()) << test;
  }
}

// Reruns one saved replication through fit and wild and compares every number power reported.
void expect_replication_reproduced(const json& s, const std::string& formula, const std::string& cluster = "province",
                                   const std::string& target = "rgzn") {
  const std::string file = s.at("file");
  SCOPED_TRACE(file);
  const std::string seed = std::to_string(s.at("wild_seed").get<std::uint64_t>());
  const std::string B = std::to_string(s.at("wild_B").get<std::int64_t>());
  EXPECT_NE(first_line(file).find("--seed " + seed + " --B " + B), std::string::npos) << first_line(file);
  const json fit = cli_json({"fit", "--data", file, "-f", formula, "--cluster", cluster});
  if (!fit.contains("models")) return;
  const json& c = pbtest::coef(fit["models"][0], target);
  const double est = s.at("estimate");
  EXPECT_NEAR(c.at("estimate").get<double>(), est, 1e-9 * std::fabs(est) + 1e-13);
  EXPECT_NEAR(c.at("std_error").get<double>(), s.at("std_error").get<double>(), 1e-9 * s.at("std_error").get<double>());
  EXPECT_NEAR(c.at("t_stat").get<double>(), s.at("t").get<double>(), 1e-8 * (1 + std::fabs(s.at("t").get<double>())));
  const json& p = s.at("p_values");
  if (p.contains("crve")) {
    EXPECT_NEAR(c.at("p_value").get<double>(), p.at("crve").get<double>(), 1e-9);
  }
  expect_bootstraps_reproduced(s, formula, cluster, {target + " = 0"});
}

}  // namespace

// Every replication's estimate, SE, t, CRVE p and the three bootstrap p-values equal what fit and
// wild compute on the dataset --save-replication writes, with the seed its first line records;
// and the rejection counts are those p-values counted at alpha.
TEST(PowerBruteForce, EveryReplicationIsFitAndWildOnItsSavedDataset) {
  PB_FRESH_RNG(rng);
  const std::string seed = std::to_string(rng() >> 1);
  const int R = 5;
  const std::vector<std::string> base = {"-f", kStudy, "--cluster", "province", "--target", "rgzn", "--effects", "0,0.002",
                                         "--split", "region", "--tests", "crve,wild,wild-webb,wcu", "--R",
                                         std::to_string(R), "--seed", seed, "--alpha", "0.1,0.5"};
  std::map<std::string, std::int64_t> rejections;  // (group, effect, test, alpha) counted from the saved p-values
  json full;
  for (int K = 1; K <= R; ++K) {
    TempDir dir;
    std::vector<std::string> args = base;
    args.insert(args.end(), {"--save-replication", std::to_string(K), dir.path.string()});
    const json j = power_json(args);
    ASSERT_TRUE(j.contains("saved_replications"));
    ASSERT_EQ(j["saved_replications"].size(), 6u);  // 3 regions x 2 effects
    for (const json& s : j["saved_replications"]) {
      EXPECT_EQ(s.at("replication").get<int>(), K);
      expect_replication_reproduced(s, kStudy);
      for (const auto& [test, p] : s.at("p_values").items())
        for (double a : {0.1, 0.5})
          rejections[s.at("group").get<std::string>() + "|" + std::to_string(s.at("effect").get<double>()) + "|" + test +
                     "|" + std::to_string(a)] += p.get<double>() <= a;
    }
    full = j;
  }
  int checked = 0;
  for (const json& c : full.at("results")) {
    const std::string key = c.at("group").get<std::string>() + "|" + std::to_string(c.at("effect").get<double>()) + "|" +
                            c.at("test").get<std::string>() + "|" + std::to_string(c.at("alpha").get<double>());
    EXPECT_EQ(c.at("rejections").get<std::int64_t>(), rejections[key]) << key;
    EXPECT_EQ(c.at("n_rep").get<int>(), R);
    ++checked;
  }
  EXPECT_EQ(checked, 3 * 2 * 4 * 2);
}

// The other error model and calibration reproduce too (normal errors from the pooled fit).
TEST(PowerBruteForce, NormalErrorsCalibratedOnThePooledFitReproduce) {
  PB_FRESH_RNG(rng);
  TempDir dir;
  const json j = power_json({"-f", kStudy, "--cluster", "province", "--target", "rgzn", "--effects", "x1", "--split",
                             "devlevel", "--pooled", "--tests", "crve,wild", "--R", "3", "--errors", "normal",
                             "--calibrate", "pooled", "--seed", std::to_string(rng() >> 1), "--save-replication", "2",
                             dir.path.string()});
  ASSERT_EQ(j.at("saved_replications").size(), 3u);  // pooled + high + average
  for (const json& s : j["saved_replications"]) expect_replication_reproduced(s, kStudy);
  for (const json& g : j.at("calibration")) EXPECT_EQ(g.at("calibrated_on"), "pooled");
  // x1: the full-sample estimate itself
  EXPECT_DOUBLE_EQ(j.at("effects")[0].get<double>(), j.at("full_sample_estimate").get<double>());
}

namespace {

// P(|T| > c) for T noncentral t(nu, ncp), by Simpson's rule over the chi-square variable.
double noncentral_t_power(double ncp, double nu, double c) {
  const int n = 4000;
  const double hi = nu + 40 * std::sqrt(2 * nu), h = hi / n;
  auto phi = [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); };
  auto f = [&](double v) {
    if (v <= 0) return 0.0;
    const double logd = (nu / 2 - 1) * std::log(v) - v / 2 - (nu / 2) * std::log(2.0) - std::lgamma(nu / 2);
    const double s = std::sqrt(v / nu);
    return std::exp(logd) * ((1 - phi(c * s - ncp)) + phi(-c * s - ncp));
  };
  double sum = f(0) + f(hi);
  for (int i = 1; i < n; ++i) sum += f(i * h) * (i % 2 ? 4 : 2);
  return sum * h / 3;
}

// 60 equal clusters x 12 periods, y = 0.3 x + a_i + g_t + N(0, 1), x iid normal; the normals are
// the Philox draws of the engine (the same on every standard library).
std::string synthetic_panel(std::uint64_t seed) {
  std::uint64_t counter = 0;
  auto z = [&](auto&) { return kernels::wild_weight(seed, counter++, 0, kernels::WeightType::kNormal); };
  int rng = 0;
  std::string csv = "id,t,x,y\n";
  std::vector<double> a(60), g(12);
  for (double& v : a) v = z(rng);
  for (double& v : g) v = z(rng);
  char buf[160];
  for (int i = 0; i < 60; ++i)
    for (int t = 0; t < 12; ++t) {
      const double x = z(rng) + 0.5 * a[i];
      std::snprintf(buf, sizeof buf, "%d,%d,%.17g,%.17g\n", i + 1, 2000 + t, x, 0.3 * x + a[i] + g[t] + z(rng));
      csv += buf;
    }
  return csv;
}

}  // namespace

// The CRVE t-test's power under iid normal errors follows the noncentral t(G-1) with
// ncp = effect / SE (SE = s sqrt((X~'X~)^-1), the estimate's true SD); its size is alpha.
TEST(PowerCalibration, CrvePowerFollowsTheNoncentralT) {
  const std::string data = pbtest::write_temp(synthetic_panel(20260101));
  const json fit = cli_json({"fit", "--data", data, "-f", "y ~ x | id + t", "--vcov", "iid", "--dof-fe", "all"});
  const double se_true = pbtest::coef(fit["models"][0], "x").at("std_error");
  const std::vector<double> ncp = {1.2, 2.2, 3.2};
  std::string effects = "0";
  for (double n : ncp) effects += "," + std::to_string(n * se_true);
  const json j = power_json({"--data", data, "-f", "y ~ x | id + t", "--cluster", "id", "--target", "x", "--effects",
                             effects, "--tests", "crve", "--R", "4000", "--errors", "normal", "--seed", "7"});
  fs::remove(data);
  ASSERT_TRUE(j.contains("results"));
  const json& cal = j["calibration"][0];
  EXPECT_EQ(cal.at("n_clusters"), 60);
  // the simulated errors' variance is the fit's RSS / (N - K): the iid SE is the estimate's SD
  EXPECT_NEAR(cal.at("s2").get<double>(), std::pow(fit["models"][0].at("sigma").get<double>(), 2), 1e-9);
  const double crit = t_quantile(0.975, 59);
  for (const json& c : j["results"]) {
    const double e = c.at("effect"), rate = c.at("rejection_rate");
    const double expected = e == 0 ? 0.05 : noncentral_t_power(e / se_true, 59, crit);
    const double se = std::sqrt(expected * (1 - expected) / 4000);
    EXPECT_NEAR(rate, expected, 3 * se) << "effect " << e;
    EXPECT_NEAR(c.at("estimate_sd").get<double>(), se_true, 0.05 * se_true);  // SD of the estimates: the true SE
  }
  ASSERT_EQ(j["results"][0].at("effect").get<double>(), 0.0);
  EXPECT_EQ(j["results"][0].at("size_flag"), false);
  // the MDE interpolates inside its bracket; the analytic one uses t(59) and the fitted SE
  const json& m = j.at("mde")[0];
  ASSERT_FALSE(m.at("effect").is_null());
  EXPECT_GE(m.at("effect").get<double>(), m.at("bracket")[0].get<double>());
  EXPECT_LE(m.at("effect").get<double>(), m.at("bracket")[1].get<double>());
  EXPECT_NEAR(m.at("mde_analytic").get<double>(), (crit + t_quantile(0.8, 59)) * cal.at("std_error").get<double>(), 1e-12);
}

// WCR's size on the embedded data's regions at a fixed seed. The issue expected [0.02, 0.085]
// (a balanced Monte Carlo design gave 5.3% at G = 11, 6.2% at G = 8). East and West (G = 11)
// lie there; Central (G = 8) does not: 0.0897 (MC SE 0.002) at R = 20,000 under wild-normal
// errors, found by this command and confirmed by the pyfixest + wildboottest loop of
// bench/peers/power.py (scripts/bench-peers --only power). Its bound is widened to 0.11 on that measurement, not to hide it: the
// bench and docs/POWER.md report it.
TEST(PowerSize, WildOnTheEmbeddedRegions) {
  const json j = power_json({"-f", kStudy, "--cluster", "province", "--target", "rgzn", "--effects", "0", "--split",
                             "region", "--tests", "wild", "--R", "2000", "--seed", "20250101"});
  ASSERT_TRUE(j.contains("results"));
  ASSERT_EQ(j["results"].size(), 3u);
  for (const json& c : j["results"]) {
    const std::string g = c.at("group");
    const double rate = c.at("rejection_rate");
    EXPECT_GE(rate, 0.02) << g;
    EXPECT_LE(rate, g == "Central" ? 0.11 : 0.085) << g;
    EXPECT_EQ(c.at("n_rep"), 2000);
    if (g == "Central") {  // 2^8 <= 399: enumerated, compared with its exact level 7/128
      EXPECT_DOUBLE_EQ(c.at("size_reference").get<double>(), 7.0 / 128.0);
    } else {
      EXPECT_DOUBLE_EQ(c.at("size_reference").get<double>(), 0.05);
    }
  }
}

// The same seed gives the same rejections on 1 and 2 threads and batches of 1, 7 and 1000, and
// the same cells for the same (group, effect) whatever else the effect list holds.
TEST(PowerDeterminism, ThreadsBatchesAndEffectLists) {
  PB_FRESH_RNG(rng);
  const std::string seed = std::to_string(rng() >> 1);
  auto run = [&](const std::string& threads, const std::string& batch, const std::string& effects) {
    return power_json({"-f", kStudy, "--cluster", "province", "--target", "rgzn", "--effects", effects, "--split", "region",
                       "--tests", "crve,wild,wild-webb,wcu", "--R", "40", "--seed", seed, "--threads", threads, "--batch",
                       batch, "--alpha", "0.05,0.2"});
  };
  const json ref = run("1", "1", "0,0.001,0.003");
  ASSERT_TRUE(ref.contains("results"));
  for (const auto& [threads, batch] : std::vector<std::pair<std::string, std::string>>{{"2", "7"}, {"2", "1000"}, {"1", "7"}}) {
    const json other = run(threads, batch, "0,0.001,0.003");
    EXPECT_EQ(other.at("results"), ref.at("results")) << threads << " threads, batch " << batch;
    EXPECT_EQ(other.at("mde"), ref.at("mde"));
  }
  const json sub = run("2", "0", "0.003,0.0025,0.001");
  const auto a = cells_by_key(ref), b = cells_by_key(sub);
  int same = 0;
  for (const auto& [key, cell] : b) {
    if (!a.count(key)) continue;
    EXPECT_EQ(cell, a.at(key)) << key;
    ++same;
  }
  EXPECT_EQ(same, 3 * 2 * 4 * 2);  // 3 regions x effects 0.001, 0.003 x 4 tests x 2 alphas
  // the errors do not depend on the effect: within a group every effect's estimate SD is the same
  std::map<std::string, json> sd;
  for (const json& c : ref.at("results")) {
    const std::string g = c.at("group");
    if (!sd.count(g)) sd[g] = c.at("estimate_sd");
    EXPECT_EQ(c.at("estimate_sd"), sd[g]) << c.dump();
  }
  EXPECT_EQ(sd.size(), 3u);
}

TEST(PowerParse, EffectLists) {
  auto values = [](const std::string& t) {
    std::vector<double> v;
    for (const EffectItem& e : parse_effects(t)) v.push_back(e.multiple ? -1000 - e.value : e.value);
    return v;
  };
  EXPECT_EQ(values("0,0.001, 0.002"), (std::vector<double>{0, 0.001, 0.002}));
  EXPECT_EQ(values("0:1:5"), (std::vector<double>{0, 0.25, 0.5, 0.75, 1}));
  EXPECT_EQ(values("0:0.004:21")[11], 0.0022);  // the decimal, as if typed
  EXPECT_EQ(values("x0.5,x2"), (std::vector<double>{-1000.5, -1002}));
  EXPECT_EQ(values("1e-3,2:2:1"), (std::vector<double>{0.001, 2}));
  for (const char* bad : {"", ",", "abc", "0,,1", "0:1", "0:1:0", "0:1:2.5", "x", "xx1", "0:1:1", "nan", "1:2:3:4"})
    EXPECT_THROW(parse_effects(bad), InvalidInput) << bad;
}

TEST(PowerParse, WilsonIntervalKnownValues) {
  // Wilson (1927) 95% intervals, as R's prop.test(correct = FALSE) and statsmodels' proportion_confint(method="wilson")
  auto [lo0, hi0] = wilson_interval(0, 10);
  EXPECT_NEAR(lo0, 0.0, 1e-12);
  EXPECT_NEAR(hi0, 0.2775327, 1e-6);
  auto [lo5, hi5] = wilson_interval(5, 10);
  EXPECT_NEAR(lo5, 0.2365931, 1e-6);
  EXPECT_NEAR(hi5, 0.7634069, 1e-6);
  auto [lo, hi] = wilson_interval(50, 1000);
  EXPECT_NEAR(lo, 0.03813026, 1e-6);
  EXPECT_NEAR(hi, 0.06531382, 1e-6);
}

TEST(PowerSeeds, WildSeedDependsOnEveryKeyAndNothingElse) {
  const std::uint64_t g = power_group_key("region", "East");
  const std::uint64_t s = power_wild_seed(1, g, 0.002, 3);
  EXPECT_EQ(s, power_wild_seed(1, g, 0.002, 3));
  EXPECT_NE(s, power_wild_seed(2, g, 0.002, 3));
  EXPECT_NE(s, power_wild_seed(1, power_group_key("region", "West"), 0.002, 3));
  EXPECT_NE(s, power_wild_seed(1, g, 0.003, 3));
  EXPECT_NE(s, power_wild_seed(1, g, 0.002, 4));
  EXPECT_EQ(power_wild_seed(1, g, 0.0, 3), power_wild_seed(1, g, -0.0, 3));
  EXPECT_NE(power_group_key("ab", "c"), power_group_key("a", "bc"));
}

// The wild errors' scale: K counts every absorbed level (Central: 6 regressors + 8 provinces + 12
// years - 1 = 25), and the estimates' SD is error_scale x SE / sqrt(m), m the CRVE's small-sample
// factor (the simulated variance of the estimate is c^2 sum_g (a'X~_g'u_g)^2 = c^2 V / m).
TEST(PowerCalibration, WildErrorsAreRescaledByEveryAbsorbedLevel) {
  const json j = power_json({"-f", kStudy, "--cluster", "province", "--target", "rgzn", "--effects", "0", "--split",
                             "region", "--R", "4000", "--seed", "11"});
  ASSERT_TRUE(j.contains("calibration"));
  for (const json& g : j["calibration"]) {
    const double N = g.at("n_obs"), G = g.at("n_clusters"), K = g.at("k_all"), dof = g.at("dof_k");
    if (g.at("group") == "Central") {
      EXPECT_EQ(K, 25.0);
      EXPECT_DOUBLE_EQ(g.at("error_scale").get<double>(), std::sqrt(96.0 / 71.0));
    }
    EXPECT_DOUBLE_EQ(g.at("error_scale").get<double>(), std::sqrt(N / (N - K)));
    const double m = G / (G - 1) * (N - 1) / (N - dof);
    const double expected_sd = g.at("error_scale").get<double>() * g.at("std_error").get<double>() / std::sqrt(m);
    for (const json& c : j["results"])
      if (c.at("group") == g.at("group")) {
        EXPECT_NEAR(c.at("estimate_sd").get<double>(), expected_sd, 0.05 * expected_sd) << g.dump();
      }
  }
}

// A power curve that starts above the target gives no interpolated MDE, only its upper bound.
TEST(PowerMde, ReachedAtTheSmallestEffectIsAnUpperBound) {
  const json j = power_json({"-f", kStudy, "--cluster", "province", "--target", "rgzn", "--effects", "0.003,0.004",
                             "--split", "region", "--R", "200"});
  ASSERT_TRUE(j.contains("mde"));
  for (const json& m : j["mde"]) {
    if (m.at("group") != "East") continue;  // East: power 1.00 at 0.003
    EXPECT_TRUE(m.at("effect").is_null());
    EXPECT_TRUE(m.at("bracket")[0].is_null());
    EXPECT_EQ(m.at("bracket")[1].get<double>(), 0.003);
    EXPECT_NE(m.at("note").get<std::string>().find("at most"), std::string::npos);
  }
}

// Replications without a positive variance (two-way clustering's is not always PSD) are left out
// of the counts, and the output says how many.
TEST(PowerCounts, ReplicationsWithoutAVarianceAreCountedOutLoudly) {
  const json j = power_json({"-f", kStudy, "--cluster", "province,year", "--target", "rgzn", "--effects", "0", "--R",
                             "100", "--seed", "20250101"});
  ASSERT_TRUE(j.contains("results"));
  const std::int64_t undefined = j["calibration"][0].at("n_undefined");
  EXPECT_GT(undefined, 0);
  EXPECT_EQ(j["results"][0].at("n_rep").get<std::int64_t>(), 100 - undefined);
  ASSERT_EQ(j.at("notes").size(), 1u);
  EXPECT_NE(j["notes"][0].get<std::string>().find(std::to_string(undefined) + " of 100 replications"), std::string::npos);
}

// Numeric split values are grouped by value (-0 with 0), text ones by text; a repeated --split
// counts once.
TEST(PowerGroups, NumericSplitsByValueAndRepeatsOnce) {
  std::string csv = "id,t,s,x,y\n";
  char buf[160];
  for (int i = 1; i <= 8; ++i)
    for (int t = 0; t < 4; ++t) {
      const char* sv = i <= 4 ? (t % 2 ? "-0" : "0") : "2.5";
      std::snprintf(buf, sizeof buf, "%d,%d,%s,%.6f,%.6f\n", i, t, sv, std::sin(i * 1.7 + t), std::cos(i * 0.3 + 2.1 * t) + 0.1 * i);
      csv += buf;
    }
  const std::string data = pbtest::write_temp(csv);
  const json j = power_json({"--data", data, "-f", "y ~ x | id + t", "--cluster", "id", "--target", "x", "--effects", "0",
                             "--split", "s", "--split", "s", "--R", "10"});
  fs::remove(data);
  ASSERT_TRUE(j.contains("calibration"));
  ASSERT_EQ(j["calibration"].size(), 2u);
  EXPECT_EQ(j["calibration"][0].at("group"), "0");
  EXPECT_EQ(j["calibration"][0].at("n_obs"), 16);
  EXPECT_EQ(j["calibration"][1].at("group"), "2.5");
}

// --errors block draws a permutation of the clusters per replication (each block used once),
// the same for the same (seed, replication), and each cluster's block lands on each position
// about equally often.
TEST(PowerErrors, BlockDrawsArePermutations) {
  std::vector<int> first(11, 0);
  for (std::int64_t rep = 1; rep <= 1100; ++rep) {
    std::vector<std::int32_t> p = power_block_permutation(12345, rep, 11);
    EXPECT_EQ(p, power_block_permutation(12345, rep, 11));
    ++first[static_cast<std::size_t>(p[0])];
    std::sort(p.begin(), p.end());
    for (std::int32_t i = 0; i < 11; ++i) ASSERT_EQ(p[static_cast<std::size_t>(i)], i) << "replication " << rep;
  }
  for (int c : first) {  // 100 expected each; a binomial SD of 9.5
    EXPECT_GT(c, 60);
    EXPECT_LT(c, 140);
  }
  EXPECT_NE(power_block_permutation(12345, 1, 11), power_block_permutation(12346, 1, 11));
}

// Block errors reproduce through fit and wild too (the regions are balanced: 12 years each).
TEST(PowerBruteForce, BlockErrorsReproduce) {
  PB_FRESH_RNG(rng);
  TempDir dir;
  const json j = power_json({"-f", kStudy, "--cluster", "province", "--target", "rgzn", "--effects", "0,0.002", "--split",
                             "region", "--tests", "crve,wild,wcu", "--R", "4", "--errors", "block", "--seed",
                             std::to_string(rng() >> 1), "--save-replication", "3", dir.path.string()});
  ASSERT_EQ(j.at("errors"), "block");
  ASSERT_EQ(j.at("saved_replications").size(), 6u);
  for (const json& s : j["saved_replications"]) expect_replication_reproduced(s, kStudy);
}

namespace {

// n units x T periods: y = 0.2 x + a_i + 0.1 t + e, e a stationary AR(1) with coefficient rho and
// variance 1 (Philox normals).
std::string ar1_panel(int n, int T, double rho, std::uint64_t seed) {
  std::uint64_t k = 0;
  auto z = [&] { return kernels::wild_weight(seed, k++, 0, kernels::WeightType::kNormal); };
  std::string csv = "id,t,x,y\n";
  char buf[160];
  for (int i = 1; i <= n; ++i) {
    const double a = z();
    double e = z();
    for (int t = 0; t < T; ++t) {
      if (t) e = rho * e + std::sqrt(1 - rho * rho) * z();
      const double x = z();
      std::snprintf(buf, sizeof buf, "%d,%d,%.17g,%.17g\n", i, 2000 + t, x, 0.2 * x + a + 0.1 * t + e);
      csv += buf;
    }
  }
  return csv;
}

}  // namespace

// --errors ar1 against a direct simulation: the within residuals' autocorrelation is biased by
// about -(1 + rho)/(T - 1) (-0.136 at rho = 0.5, T = 12); the coefficient used corrects it, and the
// variance used undoes the loss of the unit means; --rho overrides the estimate.
TEST(PowerErrors, Ar1BiasCorrectionAgainstADirectSimulation) {
  const std::string data = pbtest::write_temp(ar1_panel(400, 12, 0.5, 99));
  const std::vector<std::string> base = {"--data", data, "-f", "y ~ x | id + t", "--cluster", "id", "--panel", "id,t",
                                         "--target", "x", "--effects", "0", "--errors", "ar1", "--R", "400"};
  const json j = power_json(base);
  ASSERT_TRUE(j.contains("calibration"));
  const json& c = j["calibration"][0];
  EXPECT_EQ(c.at("periods"), 12.0);
  EXPECT_NEAR(c.at("rho_estimated").get<double>(), 0.5 - 1.5 / 11, 0.04);
  EXPECT_NEAR(c.at("rho").get<double>(), 0.5, 0.05);
  EXPECT_EQ(c.at("rho_source"), "estimated, bias-corrected");
  EXPECT_NEAR(c.at("ar1_variance").get<double>(), 1.0, 0.06);
  EXPECT_LT(c.at("s2").get<double>(), 0.9);  // RSS / (N - K) alone understates it
  // clustered by unit, the CRVE t has its size under AR(1) errors with 400 clusters
  EXPECT_NEAR(j["results"][0].at("rejection_rate").get<double>(), 0.05, 3 * std::sqrt(0.05 * 0.95 / 400));
  std::vector<std::string> given = base;
  given.insert(given.end(), {"--rho", "0.3"});
  const json g = power_json(given);
  ASSERT_TRUE(g.contains("calibration"));
  EXPECT_EQ(g["calibration"][0].at("rho"), 0.3);
  EXPECT_EQ(g["calibration"][0].at("rho_source"), "--rho");
  fs::remove(data);
}

// AR(1) errors reproduce through fit and wild as well.
TEST(PowerBruteForce, Ar1ErrorsReproduce) {
  PB_FRESH_RNG(rng);
  TempDir dir;
  const json j = power_json({"-f", kStudy, "--cluster", "province", "--panel", "province,year", "--target", "rgzn",
                             "--effects", "0.002", "--split", "region", "--tests", "crve,wild", "--R", "3", "--errors",
                             "ar1", "--seed", std::to_string(rng() >> 1), "--save-replication", "2", dir.path.string()});
  ASSERT_EQ(j.at("errors"), "ar1");
  ASSERT_EQ(j.at("saved_replications").size(), 3u);
  for (const json& s : j["saved_replications"]) expect_replication_reproduced(s, kStudy);
}

// ---- synthetic designs (--design) ----

TEST(PowerDesign, SpecificationsAreParsedNormalizedAndRefusedByKey) {
  const SyntheticDesign d = parse_design("clusters=8, periods=12,obs=96,sizes=0.4:rest,rho_x=0.7,rho_u=0.7,shocks=cluster-period");
  EXPECT_EQ(d.text, "clusters=8,periods=12,obs=96,sizes=0.4:rest,rho_x=0.7,rho_u=0.7,shocks=cluster-period,shock_share=0.5");
  ASSERT_EQ(d.shares.size(), 8u);
  EXPECT_DOUBLE_EQ(d.shares[0], 0.4);
  for (std::size_t g = 1; g < 8; ++g) EXPECT_NEAR(d.shares[g], 0.6 / 7, 1e-15);
  // 38.4 and 7 x 8.23: floors 38 + 56 = 94, the two largest remainders (0.4, then cluster 2's) get one more
  EXPECT_EQ(design_cluster_sizes(d), (std::vector<std::int64_t>{39, 9, 8, 8, 8, 8, 8, 8}));
  // one design, one text (hence one seed), however it is spelled
  EXPECT_EQ(parse_design("clusters=8, sizes=0.40 : rest").text, parse_design("clusters=8,sizes=0.4:rest").text);
  EXPECT_EQ(parse_design("clusters=4,sizes=0.25:0.25:0.25:0.25").sizes, "equal");
  EXPECT_EQ(parse_design("clusters=4,sizes=0.25:rest").sizes, "equal");
  EXPECT_EQ(parse_design("clusters=3,sizes=0.5:0.25:0.25").sizes, "0.5:0.25:0.25");
  const SyntheticDesign e = parse_design("clusters=5");  // defaults: 10 periods, 10 individuals per cluster
  EXPECT_EQ(e.text, "clusters=5,periods=10,obs=50,sizes=equal,rho_x=0,rho_u=0,shocks=none");
  EXPECT_EQ(design_cluster_sizes(e), (std::vector<std::int64_t>(5, 10)));
  // 3.5, 1.75, 1.75: floors 3 + 1 + 1, the two largest remainders (0.75, 0.75) get the other two
  EXPECT_EQ(design_cluster_sizes(parse_design("clusters=3,obs=7,sizes=0.5:0.25:0.25")), (std::vector<std::int64_t>{3, 2, 2}));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"periods=5", "needs clusters=G"},
      {"clusters=2", "clusters=2: not a whole number from 3"},
      {"clusters=8,clusters=9", "clusters is given twice"},
      {"clusters=8,colour=red", "unknown key 'colour'"},
      {"clusters=8,rho_x=1", "rho_x=1: must lie in [0, 1)"},
      {"clusters=8,rho_u=-1", "rho_u=-1: must lie strictly between -1 and 1"},
      {"clusters=8,shocks=yes", "shocks=yes: choose none or cluster-period"},
      {"clusters=8,shock_share=0.2", "shock_share is the share of shocks=cluster-period"},
      {"clusters=3,sizes=0.5:0.4", "2 shares for 3 clusters"},
      {"clusters=3,sizes=0.5:0.4:0.2", "the shares sum to 1.1, not 1"},
      {"clusters=3,sizes=0.6:0.4:rest", "leave nothing for 'rest'"},
      {"clusters=3,sizes=0.5:x", "sizes=0.5:x: 'x' is not a share"},
      {"clusters=4,obs=3", "fewer individuals per period than clusters"},
      {"clusters=4,obs=10,sizes=0.97:rest", "cluster 2 gets no individual"},
      {"clusters=8 periods=3", "not a whole number"},
      {"clusters=3,sizes=0x0.8:rest", "'0x0.8' is not a share"},
  };
  for (const auto& [spec, msg] : bad) {
    try {
      parse_design(spec);
      ADD_FAILURE() << spec << " was accepted";
    } catch (const InvalidInput& ex) {
      EXPECT_NE(std::string(ex.what()).find(msg), std::string::npos) << spec << ": " << ex.what();
    }
  }
}

namespace {

// Lag-1 pairs within each individual and pairs of the first two individuals of each cluster
// and period, from columns laid out as synthetic_panel lays them out (cluster, id, period).
struct MomentPairs {
  std::vector<double> now, before, first, second;
};

MomentPairs moment_pairs(const std::vector<double>& v, const std::vector<double>& cluster, const std::vector<double>& id,
                         int T) {
  MomentPairs m;
  const std::size_t n = v.size(), t = static_cast<std::size_t>(T);
  for (std::size_t i = 1; i < n; ++i)
    if (id[i] == id[i - 1]) {
      m.now.push_back(v[i]);
      m.before.push_back(v[i - 1]);
    }
  for (std::size_t i = 0; i < n; i += t)  // i: the first row of an individual
    if ((i == 0 || cluster[i - 1] != cluster[i]) && i + t < n && cluster[i + t] == cluster[i])
      for (std::size_t k = 0; k < t; ++k) {  // the cluster's first and second individuals, period by period
        m.first.push_back(v[i + k]);
        m.second.push_back(v[i + t + k]);
      }
  return m;
}

}  // namespace

// From one large draw: the clusters' shares, x's within-cluster and serial correlation rho_x,
// the errors' serial correlation rho_u and their within-cluster-period correlation (the shock's
// share), and unit variances.
TEST(PowerDesign, MomentsAreRecoveredFromALargeDraw) {
  PB_FRESH_RNG(rng);
  const int T = 40;
  // 1000 clusters, the first with 2% (a larger one would dominate the sample mean through its
  // own cluster-period series: at 10% the mean's SD was 0.027, and a 0.05 bound failed 1 run in 20)
  const SyntheticDesign d = parse_design("clusters=1000,periods=40,obs=10000,sizes=0.02:rest,rho_x=0.6,rho_u=0.5,"
                                         "shocks=cluster-period,shock_share=0.3");
  const DataFrame df = synthetic_panel({d}, rng(), 0);
  const std::vector<double>& cl = df.numeric("cluster").to_vector();
  const std::vector<double>& id = df.numeric("id").to_vector();
  const std::vector<double>& x = df.numeric("x").to_vector();
  ASSERT_EQ(x.size(), 10000u * T);
  std::map<double, double> per_cluster;
  for (double c : cl) per_cluster[c] += 1.0 / static_cast<double>(cl.size());
  EXPECT_NEAR(per_cluster.at(1), 0.02, 1e-12);
  EXPECT_NEAR(per_cluster.at(2), 0.98 / 999, 1.0 / 10000);
  // x
  const MomentPairs mx = moment_pairs(x, cl, id, T);
  EXPECT_NEAR(pbtest::correlation(mx.now, mx.before), 0.6, 0.03);
  ASSERT_GT(mx.first.size(), 10000u);
  EXPECT_NEAR(pbtest::correlation(mx.first, mx.second), 0.6, 0.03);
  double m = 0, v = 0;
  for (double a : x) m += a / static_cast<double>(x.size());
  for (double a : x) v += (a - m) * (a - m) / static_cast<double>(x.size());
  EXPECT_NEAR(m, 0, 0.05);
  EXPECT_NEAR(v, 1, 0.05);
  // the errors of a replication, on the data's own layout
  DesignLayout L;
  L.n_cells = 1000 * T;
  L.cell.resize(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (i == 0 || id[i] != id[i - 1]) L.series.emplace_back();
    L.series.back().push_back(static_cast<std::int32_t>(i));
    L.cell[i] = static_cast<std::int32_t>(cl[i] - 1) * T + static_cast<std::int32_t>(i % T);
  }
  std::vector<double> u(x.size());
  design_errors(d, L, rng(), 7, u.data());
  const MomentPairs mu = moment_pairs(u, cl, id, T);
  EXPECT_NEAR(pbtest::correlation(mu.now, mu.before), 0.5, 0.03);
  EXPECT_NEAR(pbtest::correlation(mu.first, mu.second), 0.3, 0.03);
  double vu = 0;
  for (double a : u) vu += a * a / static_cast<double>(u.size());
  EXPECT_NEAR(vu, 1, 0.05);
  // the counter-based draws: the same replication twice is the same, another is not
  std::vector<double> u2(x.size());
  design_errors(d, L, 99, 3, u.data());
  design_errors(d, L, 99, 3, u2.data());
  EXPECT_EQ(u, u2);
  design_errors(d, L, 99, 4, u2.data());
  EXPECT_NE(u, u2);
}

// A design's replications are fit and wild on the dataset --save-replication writes, whose
// outcome is x times the effect plus the design's errors (no fixed-effects part).
TEST(PowerBruteForce, DesignReplicationsReproduce) {
  PB_FRESH_RNG(rng);
  TempDir dir;
  const std::string spec = "clusters=6,periods=5,obs=18,sizes=0.4:rest,rho_x=0.5,rho_u=0.6,shocks=cluster-period";
  const json j = power_json({"--design", spec, "--effects", "0,0.5", "--tests", "crve,wild,wild-webb,wcu", "--R", "6",
                             "--wild-B", "99", "--seed", std::to_string(rng() >> 1), "--save-replication", "4",
                             dir.path.string()});
  ASSERT_EQ(j.value("errors", ""), "design");
  ASSERT_EQ(j.at("saved_replications").size(), 2u);
  for (const json& s : j["saved_replications"]) expect_replication_reproduced(s, "y ~ x | cluster + period", "cluster", "x");
  ASSERT_EQ(j.at("calibration").size(), 1u);
  EXPECT_EQ(j["calibration"][0].at("design").get<std::string>(), parse_design(spec).text);
  EXPECT_EQ(j["calibration"][0].at("n_obs").get<int>(), 90);
  // every pair of the four tests at each effect and alpha
  EXPECT_EQ(j.at("paired").size(), 2u * 6u);
}

// A design's draws depend on (seed, its specification) only: listed alone or after another,
// its cells are the same.
TEST(PowerDesign, ADesignsResultsDoNotDependOnTheOtherDesigns) {
  PB_FRESH_RNG(rng);
  const std::string seed = std::to_string(rng() >> 1), a = "clusters=5,periods=4,rho_u=0.3", b = "clusters=9,periods=3";
  const std::vector<std::string> common = {"--effects", "0,0.3", "--tests", "crve,wild", "--R", "40", "--seed", seed};
  std::vector<std::string> alone = common, both = common;
  alone.insert(alone.end(), {"--design", a});
  both.insert(both.end(), {"--design", b, "--design", a});
  const auto one = cells_by_key(power_json(alone)), two = cells_by_key(power_json(both));
  ASSERT_EQ(one.size(), 4u);
  ASSERT_EQ(two.size(), 8u);
  for (const auto& [key, cell] : one) {
    ASSERT_TRUE(two.count(key)) << key;
    EXPECT_EQ(cell.at("rejections"), two.at(key).at("rejections")) << key;
    EXPECT_EQ(cell.at("estimate_mean"), two.at(key).at("estimate_mean")) << key;
  }
}

TEST(PowerPaired, McNemarKnownValues) {
  EXPECT_EQ(mcnemar_p(0, 0), 1.0);
  EXPECT_EQ(mcnemar_p(4, 4), 1.0);
  EXPECT_NEAR(mcnemar_p(5, 0), 0.0625, 1e-14);
  EXPECT_NEAR(mcnemar_p(0, 5), 0.0625, 1e-14);
  EXPECT_NEAR(mcnemar_p(23, 9), 0.020061607006937265, 1e-12);  // sum of binomial terms in exact arithmetic
  EXPECT_NEAR(mcnemar_p(100, 70), 0.02584438758134169, 1e-12);
}

// Known results (R = 4000, fixed seed). 30 balanced clusters x 12 periods, AR(1) 0.7 in x and u:
// WCR holds its level. 8 clusters, one with 40% of the individuals, cluster-period shocks: CRVE
// over-rejects (>= 0.065) and WCR rejects less often on the same datasets (McNemar), though it
// over-rejects there too: nothing expects it near 0.05.
TEST(PowerKnownResults, WcrLevelAndTheUnbalancedFewClusterDesign) {
  const json j = power_json({"--design", "clusters=30,periods=12,obs=90,rho_x=0.7,rho_u=0.7", "--design",
                             "clusters=8,periods=12,obs=96,sizes=0.4:rest,rho_x=0.7,rho_u=0.7,shocks=cluster-period",
                             "--effects", "0", "--tests", "crve,wild", "--R", "4000", "--seed", "20251202"});
  ASSERT_EQ(j.at("results").size(), 4u);
  const double se = std::sqrt(0.05 * 0.95 / 4000);
  for (const json& c : j["results"]) {
    const std::string g = c.at("group");
    const double rate = c.at("rejection_rate");
    SCOPED_TRACE(g + " " + c.at("test").get<std::string>() + " " + std::to_string(rate));
    if (g.rfind("clusters=30", 0) == 0 && c.at("test") == "wild") {
      EXPECT_NEAR(rate, 0.05, 3 * se);
    }
    if (g.rfind("clusters=8", 0) == 0 && c.at("test") == "crve") {
      EXPECT_GE(rate, 0.065);
    }
  }
  bool found = false;
  for (const json& p : j.at("paired"))
    if (p.at("group").get<std::string>().rfind("clusters=8", 0) == 0) {
      found = true;
      ASSERT_EQ(p.at("test_a"), "crve");
      EXPECT_GT(p.at("only_a").get<int>(), p.at("only_b").get<int>());
      EXPECT_LT(p.at("mcnemar_p").get<double>(), 0.01) << p.dump();
    }
  EXPECT_TRUE(found);
}

// ---- the between-group difference test (--tests diff) ----

namespace {

// A saved replication of a difference test rerun through fit --wald and wild --test ... [--joint].
void expect_difference_reproduced(const json& s) {
  const std::string file = s.at("file"), formula = s.at("formula");
  SCOPED_TRACE(file);
  const std::vector<std::string> rows = s.at("wild_tests").get<std::vector<std::string>>();
  ASSERT_FALSE(rows.empty());
  std::string wald, tests;
  for (const std::string& r : rows) {
    wald += (wald.empty() ? "" : ", ") + r;
    tests += " --test '" + r + "'";
  }
  // the file's first line: the model and the wild command that reproduce it
  const std::string head = first_line(file);
  EXPECT_NE(head.find("its model: -f '" + formula + "'"), std::string::npos) << head;
  EXPECT_NE(head.find("wild" + tests + (rows.size() > 1 ? " --joint" : "") + " --seed " +
                      std::to_string(s.at("wild_seed").get<std::uint64_t>())),
            std::string::npos)
      << head;
  const json fit = cli_json({"fit", "--data", file, "-f", formula, "--cluster", "province", "--wald", wald});
  if (!fit.contains("models")) return;
  const json& w = fit["models"][0].at("wald")[0];
  const double stat = s.at("statistic");
  // one row: F = t^2; more: the joint F
  const double f = rows.size() == 1 ? stat * stat : stat;
  EXPECT_NEAR(w.at("f_stat").get<double>(), f, 1e-8 * (1 + f));
  EXPECT_EQ(w.at("q").get<int>(), static_cast<int>(rows.size()));
  const json& p = s.at("p_values");
  EXPECT_NEAR(w.at("p_value").get<double>(), p.at("crve").get<double>(), 1e-9);
  expect_bootstraps_reproduced(s, formula, "province", rows);
}

}  // namespace

// The difference tests of a 3-group split (region: joint F, 2 df) and a 2-group split (devlevel:
// t) equal fit --wald and wild --test ... --joint on the interacted model of every saved dataset.
TEST(PowerBruteForce, DifferenceTestsAreFitWaldAndWildOnTheSavedDataset) {
  PB_FRESH_RNG(rng);
  TempDir dir;
  const json j = power_json({"-f", kStudy, "--cluster", "province", "--target", "rgzn", "--effects", "0,0.003", "--split",
                             "region", "--split", "devlevel", "--tests", "diff,wild,wild-webb,wcu", "--R", "3", "--seed",
                             std::to_string(rng() >> 1), "--save-replication", "2", dir.path.string()});
  int diffs = 0;
  for (const json& s : j.at("saved_replications")) {
    if (s.at("group") != "(difference)") continue;
    ++diffs;
    EXPECT_EQ(s.at("wild_tests").size(), s.at("split") == "region" ? 2u : 1u);
    expect_difference_reproduced(s);
  }
  EXPECT_EQ(diffs, 4);  // 2 splits x 2 effects
  for (const json& g : j.at("calibration"))
    if (g.at("group") == "(difference)") {
      EXPECT_EQ(g.at("q").get<int>(), g.at("split") == "region" ? 2 : 1);
      EXPECT_EQ(g.at("n_clusters").get<int>(), 30);  // a province in two devlevel groups is one cluster
    }
  // the per-group tests ran too (diff was not alone)
  EXPECT_EQ(j.at("tests"), json({"wild", "wild-webb", "wcu", "diff"}));
}

// The size of the difference test's WCR bootstrap is within 3 Monte Carlo SEs of 0.05 on both
// splits (R = 4000, fixed seed); its CRVE F over-rejects there (0.069 and 0.080): reported, not
// asserted near 0.05. Only the difference tests run when --tests is diff and bootstraps.
TEST(PowerSize, DifferenceTestWcrHoldsItsLevel) {
  const json j = power_json({"-f", kStudy, "--cluster", "province", "--target", "rgzn", "--effects", "0", "--split",
                             "region", "--split", "devlevel", "--tests", "diff", "--R", "4000"});
  ASSERT_EQ(j.at("results").size(), 2u);  // crve only, one per split
  const json jw = power_json({"-f", kStudy, "--cluster", "province", "--target", "rgzn", "--effects", "0", "--split",
                              "region", "--split", "devlevel", "--tests", "wild,diff", "--R", "4000"});
  const double se = std::sqrt(0.05 * 0.95 / 4000);
  int checked = 0;
  for (const json& c : jw.at("results"))
    if (c.at("group") == "(difference)" && c.at("test") == "wild") {
      ++checked;
      EXPECT_NEAR(c.at("rejection_rate").get<double>(), 0.05, 3 * se) << c.dump();
    }
  EXPECT_EQ(checked, 2);
}

// ---- placebo regressors (--placebo) ----

namespace {

// Units nested in clusters (k per cluster) over T periods: x = sqrt(icc) a_ct + sqrt(1 - icc) z_it,
// a and z stationary AR(1)(rho); y = 0.3 x + unit effect + period effect + AR(1)(0.6) errors.
std::string placebo_panel(int clusters, int k, int T, double rho, double icc, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  const double s = std::sqrt(1 - rho * rho);
  std::string csv = "cluster,unit,t,x,y\n";
  char buf[200];
  for (int c = 1; c <= clusters; ++c) {
    std::vector<double> a(static_cast<std::size_t>(T));
    for (int t = 0; t < T; ++t) a[static_cast<std::size_t>(t)] = t ? rho * a[static_cast<std::size_t>(t - 1)] + s * nd(rng) : nd(rng);
    for (int j = 1; j <= k; ++j) {
      double z = nd(rng), e = nd(rng);
      const double fe = nd(rng);
      for (int t = 0; t < T; ++t) {
        if (t) {
          z = rho * z + s * nd(rng);
          e = 0.6 * e + 0.8 * nd(rng);
        }
        const double x = std::sqrt(icc) * a[static_cast<std::size_t>(t)] + std::sqrt(1 - icc) * z;
        std::snprintf(buf, sizeof buf, "%d,%d,%d,%.17g,%.17g\n", c, c * 100 + j, 2000 + t, x, 0.3 * x + fe + 0.05 * t + e);
        csv += buf;
      }
    }
  }
  return csv;
}

}  // namespace

// The placebo copies the target's correlation: on a panel built with AR(1) 0.5 and a
// within-cluster correlation of 0.4, the estimates recover both (the AR(1) through the within
// transform's bias correction); the placebo test clustered by cluster has its size (CRVE, 300
// clusters). (The draws' correlation is correlated_regressor's, tested through --design's x.)
TEST(PowerPlacebo, CopiesTheTargetsCorrelationAndHoldsItsSize) {
  const std::string data = pbtest::write_temp(placebo_panel(300, 4, 12, 0.5, 0.4, 7));
  const json j = power_json({"--data", data, "-f", "y ~ x | unit + t", "--cluster", "cluster", "--panel", "unit,t", "--target",
                             "x", "--placebo", "--effects", "0", "--R", "400"});
  ASSERT_TRUE(j.contains("calibration"));
  EXPECT_EQ(j.at("target"), "placebo");
  EXPECT_EQ(j.at("placebo_of"), "x");
  EXPECT_EQ(j.at("errors"), "placebo");
  const json& c = j["calibration"][0];
  EXPECT_NEAR(c.at("placebo_rho").get<double>(), 0.5, 0.05);
  EXPECT_NEAR(c.at("placebo_icc").get<double>(), 0.4, 0.05);
  EXPECT_LT(c.at("placebo_rho_estimated").get<double>(), c.at("placebo_rho").get<double>());  // the Nickell bias
  EXPECT_NEAR(j["results"][0].at("rejection_rate").get<double>(), 0.05, 3 * std::sqrt(0.05 * 0.95 / 400));
  fs::remove(data);
}

// Every placebo replication is fit and wild on its saved dataset (the data with the placebo
// column and y + effect x placebo), with the model the file's first line gives.
TEST(PowerBruteForce, PlaceboReplicationsReproduce) {
  PB_FRESH_RNG(rng);
  TempDir dir;
  const json j = power_json({"-f", kStudy, "--cluster", "province", "--panel", "province,year", "--target", "rgzn",
                             "--placebo", "--effects", "0,0.002", "--split", "region", "--tests", "crve,wild,wild-webb,wcu",
                             "--R", "3", "--seed", std::to_string(rng() >> 1), "--save-replication", "2", dir.path.string()});
  ASSERT_EQ(j.at("saved_replications").size(), 6u);
  const std::string formula = std::string(kStudy).replace(std::string(kStudy).find(" |"), 2, " + placebo |");
  for (const json& s : j["saved_replications"]) {
    EXPECT_EQ(s.at("formula"), formula);
    expect_replication_reproduced(s, formula, "province", "placebo");
  }
}

// Without fixed effects the interacted model keeps each group's intercept (| split), and a model
// without an intercept stays without (+ 0): both reproduce fit --wald and wild on the saved data.
TEST(PowerBruteForce, DifferenceTestsWithoutFixedEffects) {
  PB_FRESH_RNG(rng);
  for (const std::string formula : {"newqua ~ rgzn + urban", "newqua ~ rgzn + urban + 0"}) {
    SCOPED_TRACE(formula);
    TempDir dir;
    const json j = power_json({"-f", formula, "--cluster", "province", "--target", "rgzn", "--effects", "0.001", "--split",
                               "devlevel", "--tests", "diff,wild", "--R", "2", "--seed", std::to_string(rng() >> 1),
                               "--save-replication", "1", dir.path.string()});
    int n = 0;
    for (const json& s : j.at("saved_replications"))
      if (s.at("group") == "(difference)") {
        ++n;
        const std::string f = s.at("formula");
        EXPECT_EQ(f, formula.back() == '0' ? "newqua ~ i(devlevel, rgzn) + i(devlevel, urban) + 0"
                                           : "newqua ~ i(devlevel, rgzn) + i(devlevel, urban) | devlevel");
        expect_difference_reproduced(s);
      }
    EXPECT_EQ(n, 1);
  }
}

// The same digits on any thread count, also for a model whose products Eigen would split by
// thread (24 regressors; before EIGEN_DONT_PARALLELIZE, fit's last digits moved with --threads),
// and so for the difference test of a split with 12 groups.
TEST(PowerDeterminism, ManyRegressorsGiveTheSameDigitsOnAnyThreadCount) {
  const std::vector<std::string> fit = {"fit", "-f", "newqua ~ i(year, rgzn) + i(year, urban) | region^year", "--cluster",
                                        "province", "--threads"};
  std::vector<std::string> one = fit, two = fit;
  one.push_back("1");
  two.push_back("2");
  const json a = cli_json(one), b = cli_json(two);
  ASSERT_TRUE(a.contains("models"));
  EXPECT_EQ(a["models"][0].at("coefficients"), b["models"][0].at("coefficients"));
  EXPECT_EQ(a["models"][0].at("vcov_matrix"), b["models"][0].at("vcov_matrix"));
  const std::vector<std::string> diff = {"-f", "newqua ~ rgzn + urban", "--cluster", "province", "--target", "rgzn", "--split",
                                         "year", "--effects", "0.002", "--R", "5", "--tests", "diff", "--threads"};
  std::vector<std::string> d1 = diff, d2 = diff;
  d1.push_back("1");
  d2.push_back("2");
  const json p1 = power_json(d1), p2 = power_json(d2);
  ASSERT_TRUE(p1.contains("calibration"));
  EXPECT_EQ(p1.at("calibration"), p2.at("calibration"));
  EXPECT_EQ(p1.at("results"), p2.at("results"));
}

namespace {

std::vector<double> csv_column(const std::string& file, const std::string& name) {
  std::ifstream in(file);
  std::string line, header;
  std::getline(in, line);  // the # panelboot line
  std::getline(in, header);
  std::vector<std::string> names;
  std::stringstream hs(header);
  for (std::string f; std::getline(hs, f, ',');) names.push_back(f);
  const std::size_t at = static_cast<std::size_t>(std::find(names.begin(), names.end(), name) - names.begin());
  std::vector<double> out;
  while (std::getline(in, line)) {
    std::stringstream ls(line);
    std::string f;
    for (std::size_t i = 0; i <= at; ++i) std::getline(ls, f, ',');
    out.push_back(std::stod(f));
  }
  return out;
}

}  // namespace

// xdraws=M: --R shared among M draws of x. Replication K belongs to draw (K-1) / (R/M); its saved
// dataset is fit and wild on that draw's x, and two draws' x differ; a design's results count
// all R replications; an --R that M does not divide is refused.
TEST(PowerDesign, XDrawsShareTheReplicationsAmongDrawsOfX) {
  PB_FRESH_RNG(rng);
  const std::string spec = "clusters=5,periods=4,obs=15,rho_x=0.5,rho_u=0.4,xdraws=4";
  const std::string seed = std::to_string(rng() >> 1);
  std::vector<std::vector<double>> x;
  for (const char* K : {"1", "2", "3", "8"}) {
    TempDir dir;
    const json j = power_json({"--design", spec, "--effects", "0.3", "--tests", "crve,wild", "--R", "8", "--seed", seed,
                               "--save-replication", K, dir.path.string()});
    ASSERT_EQ(j.at("saved_replications").size(), 1u);
    const json& s = j["saved_replications"][0];
    EXPECT_EQ(s.at("replication").get<int>(), std::stoi(K));
    expect_replication_reproduced(s, "y ~ x | cluster + period", "cluster", "x");
    x.push_back(csv_column(s.at("file"), "x"));
    for (const json& c : j.at("results")) EXPECT_EQ(c.at("n_rep").get<int>(), 8);
  }
  EXPECT_EQ(x[0], x[1]);  // replications 1 and 2: draw 0
  EXPECT_NE(x[0], x[2]);  // replication 3: draw 1
  EXPECT_NE(x[2], x[3]);  // replication 8: draw 3
  const pbtest::CliRun bad = pbtest::run({"power", "--design", spec, "--effects", "0", "--R", "10"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("give an --R that xdraws divides"), std::string::npos) << bad.err;
}
