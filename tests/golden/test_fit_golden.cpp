// Golden tests: the numbers published for the public datasets (tests/data/README.md), to the
// printed digits, under each named convention, through the command line.
#include "helpers.hpp"

using pbtest::coef;
using pbtest::data_path;
using pbtest::expect_printed;
using pbtest::fit_json;

TEST(GoldenPetersen, OlsIidAndClusteredConventions) {
  const std::string d = data_path("petersen_test_data.csv");
  struct Case {
    std::vector<std::string> opts;
    const char *se_c, *se_x;
  } cases[] = {
      {{}, "0.028359", "0.028583"},
      {{"--cluster", "firmid"}, "0.067013", "0.050596"},
      {{"--cluster", "year"}, "0.023387", "0.033389"},
      {{"--cluster", "firmid,year", "--multiway-adj", "each"}, "0.065064", "0.053558"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"--data", d, "--formula", "y ~ x"};
    args.insert(args.end(), c.opts.begin(), c.opts.end());
    const auto j = fit_json(args);
    const auto& m = j["models"][0];
    SCOPED_TRACE(c.se_c);
    expect_printed(coef(m, "(Intercept)")["estimate"], "0.029680", "const");
    expect_printed(coef(m, "x")["estimate"], "1.034833", "x");
    expect_printed(coef(m, "(Intercept)")["std_error"], c.se_c, "se const");
    expect_printed(coef(m, "x")["std_error"], c.se_x, "se x");
  }
}

TEST(GoldenGrunfeld, TwoWayIidAndWithinR2) {
  const auto j = fit_json({"--data", data_path("grunfeld_plm.csv"), "--formula",
                           "inv ~ value + capital | firm + year"});
  const auto& m = j["models"][0];
  expect_printed(coef(m, "value")["estimate"], "0.117716", "value");
  expect_printed(coef(m, "capital")["estimate"], "0.357916", "capital");
  expect_printed(coef(m, "value")["std_error"], "0.013751", "se value");
  expect_printed(coef(m, "capital")["std_error"], "0.022719", "se capital");
  expect_printed(m["r2_within"], "0.72015", "within R2");
  EXPECT_EQ(m["demean_method"], "balanced two-way");
}

TEST(GoldenGrunfeld, XtregFirmFeYearDummiesClusteredByFirm) {
  const auto j = fit_json({"--data", data_path("grunfeld_plm.csv"), "--formula",
                           "inv ~ value + capital + i(year) | firm", "--cluster", "firm"});
  const auto& m = j["models"][0];
  expect_printed(coef(m, "value")["std_error"], "0.0108244", "se value");
  expect_printed(coef(m, "capital")["std_error"], "0.0478484", "se capital");
  EXPECT_EQ(m["df"], 9.0);  // t(G-1)
}

TEST(GoldenGrunfeld, CapitalOnlyEveryConvention) {
  const std::string d = data_path("grunfeld_plm.csv");
  const std::string f = "inv ~ capital | firm + year";
  struct Case {
    std::vector<std::string> opts;
    const char* se;
  } cases[] = {
      {{}, "0.02597821"},
      {{"--cluster", "firm"}, "0.06328129"},
      {{"--cluster", "firm", "--dof-fe", "all"}, "0.06493478"},
      {{"--cluster", "firm,year"}, "0.06041290"},
      {{"--cluster", "firm,year", "--multiway-adj", "each"}, "0.06213837"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"--data", d, "--formula", f};
    args.insert(args.end(), c.opts.begin(), c.opts.end());
    const auto j = fit_json(args);
    expect_printed(coef(j["models"][0], "capital")["std_error"], c.se, c.se);
  }
}

// R plm 2.6 vcovSCC (defaults: HC0, Bartlett, maxlag floor(T^(1/4))), computed with
//   plm(inv ~ value + capital, model = "within", effect = "twoways") on grunfeld_plm.csv and
//   plm(log(Emp) ~ log(Wage) + log(Capital), ...) on empluk_fem.csv (unbalanced);
// the script is tests/data/plm_vcovscc.R.
TEST(GoldenDriscollKraay, MatchesPlmVcovSCC) {
  struct Case {
    std::string data, formula, panel, lag;
    const char *n1, *n2, *se1, *se2;
  } cases[] = {
      {"grunfeld_plm.csv", "inv ~ value + capital | firm + year", "firm,year", "", "value",
       "capital", "0.0204363229480", "0.0558105306258"},
      {"grunfeld_plm.csv", "inv ~ value + capital | firm + year", "firm,year", "3", "value",
       "capital", "0.0213875473548", "0.0544742261373"},
      {"grunfeld_plm.csv", "inv ~ value + capital | firm", "firm,year", "", "value", "capital",
       "0.0176860327181", "0.0348201468738"},
      {"empluk_fem.csv", "log(Emp) ~ log(Wage) + log(Capital) | Firm + Year", "Firm,Year", "",
       "log(Wage)", "log(Capital)", "0.1336336267134", "0.0326504107582"},
      {"empluk_fem.csv", "log(Emp) ~ log(Wage) + log(Capital) | Firm + Year", "Firm,Year", "2",
       "log(Wage)", "log(Capital)", "0.1404888005243", "0.0333064872831"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"--data", data_path(c.data), "--formula", c.formula, "--vcov", "dk",
                                  "--panel", c.panel};
    if (!c.lag.empty()) {
      args.push_back("--dk-lag");
      args.push_back(c.lag);
    }
    const auto j = fit_json(args);
    const auto& m = j["models"][0];
    SCOPED_TRACE(c.formula + " lag " + c.lag);
    // plm prints 12 significant digits; the demeaning of the unbalanced panel is iterative.
    EXPECT_NEAR(coef(m, c.n1)["std_error"].get<double>(), std::stod(c.se1), 1e-9 * std::stod(c.se1));
    EXPECT_NEAR(coef(m, c.n2)["std_error"].get<double>(), std::stod(c.se2), 1e-9 * std::stod(c.se2));
  }
}

// boottest's examples: the cluster-robust t statistics it prints (the bootstrap p-values are
// the wild-bootstrap issue's).
TEST(GoldenBoottest, CollapsedAndNlswCrveT) {
  for (const char* file : {"boottest_collapsed.csv", "boottest_collapsed.dta"}) {
    const auto j = fit_json({"--data", data_path(file), "--formula",
                             "hasinsurance ~ selfemployed + post + post_self", "--cluster", "year",
                             "--wald", "post_self = 0.04"});
    const auto& m = j["models"][0];
    SCOPED_TRACE(file);
    EXPECT_EQ(m["nobs"], 16);
    EXPECT_EQ(m["n_clusters"], 8);
    expect_printed(std::sqrt(m["wald"][0]["f_stat"].get<double>()), "2.0194", "t post_self = 0.04");
    expect_printed(coef(m, "post")["t_stat"], "-5.5821", "t post");
  }
  const auto j = fit_json({"--data", data_path("boottest_nlsw88.csv"), "--formula",
                           "wage ~ tenure + ttl_exp + collgrad", "--cluster", "industry"});
  const auto& m = j["models"][0];
  EXPECT_EQ(m["nobs"], 2217);
  EXPECT_EQ(m["n_clusters"], 12);
  expect_printed(coef(m, "tenure")["t_stat"], "1.0772", "t tenure");
}
