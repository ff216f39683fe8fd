// Golden tests of `threshold`: Hansen (1999)'s program's published numbers and Stata xthreg's
// example, to the printed digits.
#include "golden/hansen1999.hpp"
#include "panelboot/threshold.hpp"

using namespace panelboot;

namespace {
void expect_coefs(const ThresholdModel& m, const nlohmann::json& c) {
  ASSERT_EQ(m.coefficients.size(), c["beta"].size());
  for (std::size_t j = 0; j < m.coefficients.size(); ++j) {
    const double b = c["beta"][j], sh = c["se_homo"][j], sw = c["se_het"][j];
    EXPECT_NEAR(m.coefficients[j].estimate, b, 1e-8 * std::fabs(b)) << j;
    EXPECT_NEAR(m.coefficients[j].se_homo, sh, 1e-8 * sh) << j;
    EXPECT_NEAR(m.coefficients[j].se_white, sw, 1e-8 * sw) << j;
    const double sc = c["se_cluster_firm_HC0"][j];
    EXPECT_NEAR(m.coefficients[j].se_cluster, sc, 1e-8 * sc) << j;
  }
}
}  // namespace

TEST(ThresholdGolden, HansenProgramDeterministicNumbers) {
  const DataFrame df = read_data(pbtest::data_path("hansen1999_invest.csv"));
  const ThresholdResult r = estimate_threshold(df, hansen_options(3, 0), pbtest::cpu_backend());
  const nlohmann::json e = expected();
  EXPECT_EQ(r.n_units, 565u);
  EXPECT_EQ(r.n_obs, 7345u);
  EXPECT_EQ(r.n_distinct, 6747u);
  EXPECT_EQ(r.n_grid, 393u);
  EXPECT_EQ(r.grid_first, 0.00403);
  EXPECT_EQ(r.grid_last, 1.00593);
  EXPECT_NEAR(r.ssr_linear, e["SSR_linear"].get<double>(), 1e-10);
  EXPECT_NEAR(r.c95, e["setup"]["c95"].get<double>(), 1e-12);
  // single
  const auto& s = e["single"];
  ASSERT_EQ(r.models.size(), 3u);
  EXPECT_EQ(r.models[0].gammas[0], s["gamma"].get<double>());
  EXPECT_EQ(r.models[0].ci95[0].first, s["ci95"][0].get<double>());
  EXPECT_EQ(r.models[0].ci95[0].second, s["ci95"][1].get<double>());
  EXPECT_EQ(r.models[0].ci99[0].first, s["ci99"][0].get<double>());
  EXPECT_EQ(r.models[0].ci99[0].second, s["ci99"][1].get<double>());
  EXPECT_NEAR(r.models[0].ssr, s["SSR"].get<double>(), 1e-10);
  EXPECT_NEAR(r.tests[0].F, s["F1"].get<double>(), 1e-8);
  expect_coefs(r.models[0], s["coef"]);
  // double: gamma2 with its CI, the refined gamma1
  const auto& d = e["double"];
  EXPECT_EQ(r.models[1].gammas[1], d["gamma2"].get<double>());
  EXPECT_EQ(r.models[1].ci95[1].first, d["ci95_gamma2"][0].get<double>());
  EXPECT_EQ(r.models[1].ci95[1].second, d["ci95_gamma2"][1].get<double>());
  EXPECT_EQ(r.models[1].ci99[1].first, d["ci99_gamma2"][0].get<double>());
  EXPECT_EQ(r.models[1].ci99[1].second, d["ci99_gamma2"][1].get<double>());
  EXPECT_EQ(r.models[1].gammas[0], d["gamma1_refined"].get<double>());
  EXPECT_EQ(r.models[1].ci95[0].first, d["ci95_gamma1_refined"][0].get<double>());
  EXPECT_EQ(r.models[1].ci95[0].second, d["ci95_gamma1_refined"][1].get<double>());
  EXPECT_NEAR(r.models[1].ssr, d["SSR"].get<double>(), 1e-10);
  EXPECT_NEAR(r.tests[1].F, d["F2"].get<double>(), 1e-8);
  expect_coefs(r.models[1], d["coef"]);
  // triple: gamma3 between the two fixed ones
  const auto& t = e["triple"];
  EXPECT_EQ(r.models[2].gammas[1], t["gamma3"].get<double>());
  EXPECT_EQ(r.models[2].ci95[1].first, t["ci95_gamma3"][0].get<double>());
  EXPECT_EQ(r.models[2].ci95[1].second, t["ci95_gamma3"][1].get<double>());
  EXPECT_NEAR(r.models[2].ssr, t["SSR"].get<double>(), 1e-10);
  EXPECT_NEAR(r.tests[2].F, t["F3"].get<double>(), 1e-8);
  expect_coefs(r.models[2], t["coef"]);
}

TEST(ThresholdGolden, BootstrapPValuesAgreeWithHansenWithinMonteCarloError) {
  const DataFrame df = read_data(pbtest::data_path("hansen1999_invest.csv"));
  const ThresholdResult r = estimate_threshold(df, hansen_options(3, 600), pbtest::cpu_backend());
  // Hansen's run (B = 300): 0.0066666667, 0.016666667, 0.74
  const double hansen[3] = {0.0066666667, 0.016666667, 0.74};
  for (int k = 0; k < 3; ++k) {
    const double p = std::max(hansen[k], 0.01);
    const double sd = std::sqrt(p * (1 - p) / 300 + p * (1 - p) / 600);
    EXPECT_NEAR(r.tests[k].p_value, hansen[k], 4 * sd) << "F" << k + 1;
  }
}

TEST(ThresholdGolden, XthregModeReproducesItsSingleThresholdExample) {
  // xthreg i q1 q2 q3 d1 qd1, rx(c1) qx(d1) thnum(1) grid(400) trim(0.01): 0.0154, 17.7818, 35.20
  const DataFrame df = read_data(pbtest::data_path("hansen1999_xthreg.csv"));
  ThresholdOptions o;
  o.formula = "i ~ q1 + q2 + q3 + d1 + qd1 | id";
  o.regime = {"c1"};
  o.threshold_var = "d1";
  o.sample.panel_id = "id";
  o.sample.panel_time = "year";
  o.xthreg = true;
  o.trim = {0.01};
  o.n_boot = 0;
  const ThresholdResult r = estimate_threshold(df, o, pbtest::cpu_backend());
  EXPECT_EQ(r.n_obs, 7910u);
  EXPECT_EQ(r.n_grid, 400u);
  pbtest::expect_printed(r.models[0].gammas[0], "0.0154", "gamma");
  pbtest::expect_printed(r.models[0].ssr, "17.7818", "RSS");
  pbtest::expect_printed(r.tests[0].F, "35.20", "F");
}
