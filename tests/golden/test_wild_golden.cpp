// The wild bootstrap's golden numbers: boottest's examples (counts, t, the CI) through the CLI
// and the engine.
#include "helpers.hpp"
#include "panelboot/design.hpp"
#include "panelboot/wild.hpp"

using namespace panelboot;

TEST(WildGolden, BoottestCollapsedEnumeratedCountsUnderEachTieRule) {
  const std::string d = pbtest::data_path("boottest_collapsed.csv");
  for (const char* ties : {"strict", "inclusive"}) {
    const auto r = pbtest::run({"wild", "--data", d, "-f", "hasinsurance ~ selfemployed + post + post_self",
                                "--cluster", "year", "--test", "post_self = 0.04", "--test", "post = 0",
                                "--ties", ties, "--format", "json"});
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    const auto& t = j["tests"][0];
    pbtest::expect_printed(t["t_stat"], "2.0194", "t");
    EXPECT_EQ(t["enumerated"], true);
    EXPECT_EQ(t["n_boot"], 256);
    EXPECT_EQ(t["n_exceed"], std::string(ties) == "strict" ? 18 : 20) << ties;
    EXPECT_DOUBLE_EQ(t["p_value"].get<double>(), (std::string(ties) == "strict" ? 18 : 20) / 256.0);
    pbtest::expect_printed(j["tests"][1]["t_stat"], "-5.5821", "t post");
    if (std::string(ties) == "strict") {
      EXPECT_NEAR(t["ci_low"].get<double>(), 0.03874, 0.002);
      EXPECT_NEAR(t["ci_high"].get<double>(), 0.07098, 0.002);
    }
  }
}

TEST(WildGolden, GrayCodeWalkGivesTheSameCounts) {
  const auto cpu = make_backend(Device::kCpu);
  const DataFrame df = read_data(pbtest::data_path("boottest_collapsed.csv"));
  SampleOptions so;
  so.cluster = {"year"};
  for (Ties ties : {Ties::kStrict, Ties::kInclusive}) {
    Design d = build_design(df, parse_formula("hasinsurance ~ selfemployed + post + post_self"), so);
    WildOptions wo;
    wo.tests = {"post_self = 0.04"};
    wo.force_gray = true;
    wo.enumerate = Enumerate::kAlways;
    wo.ties = ties;
    FitOptions fo;
    const WildResult r = wild_bootstrap(d, fo, wo, *cpu);
    EXPECT_EQ(r.tests[0].n_exceed, ties == Ties::kStrict ? 18 : 20);
    EXPECT_EQ(r.tests[0].n_boot, 256);
  }
}

TEST(WildGolden, Nlsw88CrveT) {
  const auto r = pbtest::run({"wild", "--data", pbtest::data_path("boottest_nlsw88.csv"), "-f",
                              "wage ~ tenure + ttl_exp + collgrad", "--cluster", "industry", "--test",
                              "tenure = 0", "--B", "999", "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  pbtest::expect_printed(j["tests"][0]["t_stat"], "1.0772", "t tenure");
  EXPECT_EQ(j["n_bootclusters"], 12);
  EXPECT_EQ(j["tests"][0]["n_boot"], 999);
}
