// The command line's outputs: JSON contract fields, formats, atomic files, subsets, weights.
#include <filesystem>
#include <fstream>

#include "helpers.hpp"

using pbtest::coef;
using pbtest::data_path;

TEST(CliOutput, JsonCarriesTheContractFields) {
  const auto j = pbtest::fit_json({"--data", data_path("grunfeld_plm.csv"), "-f",
                                   "inv ~ value + capital | firm + year", "--cluster", "firm"});
  const auto& m = j.at("models").at(0);
  for (const char* k : {"formula", "nobs", "n_clusters", "vcov", "r2_within", "coefficients"})
    EXPECT_TRUE(m.contains(k)) << k;
  EXPECT_EQ(m["nobs"], 200);
  EXPECT_EQ(m["n_clusters"], 10);
  EXPECT_EQ(m["vcov"], "cluster");
  for (const char* k : {"name", "estimate", "std_error", "t_stat", "p_value", "ci_low", "ci_high"})
    EXPECT_TRUE(m["coefficients"][0].contains(k)) << k;
  // CI = b +- t(9, 0.975) se
  const auto& c = coef(m, "capital");
  EXPECT_NEAR(c["ci_high"].get<double>() - c["estimate"].get<double>(), 2.2621571627 * c["std_error"].get<double>(), 1e-8);
}

TEST(CliOutput, SeveralFormulasSideBySideInEveryFormat) {
  const std::vector<std::string> base{"fit", "--data", data_path("grunfeld_plm.csv"), "-f",
                                      "inv ~ value | firm + year", "-f", "inv ~ value + capital | firm + year"};
  auto with = [&](const std::string& fmt) {
    auto a = base;
    a.insert(a.end(), {"--format", fmt});
    const auto r = pbtest::run(a);
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  };
  const std::string md = with("markdown");
  EXPECT_NE(md.find("| (1) | (2) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| capital |  | 0.3579***"), std::string::npos) << md;
  const std::string tex = with("latex");
  EXPECT_NE(tex.find("\\begin{tabular}{lcc}"), std::string::npos);
  const std::string csv = with("csv");
  EXPECT_NE(csv.find("2,\"inv ~ value + capital | firm + year\",\"capital\",0.3579162"), std::string::npos) << csv;
  const std::string text = with("text");
  EXPECT_NE(text.find("== Side by side =="), std::string::npos);
  const auto j = nlohmann::json::parse(with("json"));
  EXPECT_EQ(j["models"].size(), 2u);
}

TEST(CliOutput, OutputFileIsWrittenWhole) {
  const std::string out = pbtest::temp_path(".json");
  const auto r = pbtest::run({"fit", "--data", data_path("grunfeld_plm.csv"), "-f", "inv ~ value | firm",
                              "--format", "json", "--output", out});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.out.empty());
  std::ifstream in(out);
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["models"][0]["nobs"], 200);
  // no temporary file left beside it
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(out).parent_path()))
    EXPECT_EQ(e.path().filename().string().rfind(".pbtmp.", 0), std::string::npos) << e.path();
  std::filesystem::remove(out);
}

TEST(CliOutput, WhereSubsetsAndCountsRows) {
  const auto j = pbtest::fit_json({"--data", data_path("grunfeld_plm.csv"), "-f", "inv ~ value | firm + year",
                                   "--where", "year >= 1940 and firm in (1, 2, 3, 4, 5)"});
  const auto& m = j["models"][0];
  EXPECT_EQ(m["nobs"], 75);
  EXPECT_EQ(m["dropped"]["where"], 125);
}

TEST(CliOutput, MissingValuesAreDroppedAndCountedPerVariable) {
  const auto j = pbtest::fit_json({"--data", data_path("boottest_nlsw88.csv"), "-f", "wage ~ tenure",
                                   "--cluster", "industry"});
  const auto& m = j["models"][0];
  EXPECT_EQ(m["dropped"]["missing"], 29);
  EXPECT_EQ(m["dropped"]["missing_by_variable"]["tenure"], 15);
  EXPECT_EQ(m["dropped"]["missing_by_variable"]["industry"], 14);
}

TEST(CliOutput, LagsAndInteractionsBuildTheRightColumns) {
  // l(value, 1) loses the first year of each firm: 10 rows
  const auto j = pbtest::fit_json({"--data", data_path("grunfeld_plm.csv"), "-f",
                                   "inv ~ l(value, 1) + value:capital + I(capital^2) + log(value) | firm",
                                   "--panel", "firm,year"});
  const auto& m = j["models"][0];
  EXPECT_EQ(m["nobs"], 190);
  EXPECT_EQ(m["dropped"]["missing"], 10);
  std::vector<std::string> names;
  for (const auto& c : m["coefficients"]) names.push_back(c["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"l(value,1)", "value:capital", "I(capital^2)", "log(value)"}));
}

TEST(CliOutput, WaldTestOfOneRestrictionEqualsTSquared) {
  const auto j = pbtest::fit_json({"--data", data_path("grunfeld_plm.csv"), "-f",
                                   "inv ~ value + capital | firm + year", "--cluster", "firm", "--wald",
                                   "capital = 0", "--wald", "value = 0, capital - 3*value = 0"});
  const auto& m = j["models"][0];
  const double t = coef(m, "capital")["t_stat"];
  EXPECT_NEAR(m["wald"][0]["f_stat"].get<double>(), t * t, 1e-9 * t * t);
  EXPECT_NEAR(m["wald"][0]["p_value"].get<double>(), coef(m, "capital")["p_value"].get<double>(), 1e-12);
  EXPECT_EQ(m["wald"][1]["q"], 2);
  EXPECT_EQ(m["wald"][1]["df2"], 9.0);
}

TEST(CliOutput, WeightsChangeTheFit) {
  const std::string p = data_path("grunfeld_plm.csv");
  const auto a = pbtest::fit_json({"--data", p, "-f", "inv ~ value | firm", "--weights", "capital", "--cluster", "firm"});
  const auto u = pbtest::fit_json({"--data", p, "-f", "inv ~ value | firm", "--cluster", "firm"});
  EXPECT_GT(std::fabs(coef(a["models"][0], "value")["estimate"].get<double>() -
                      coef(u["models"][0], "value")["estimate"].get<double>()), 1e-4);
}

TEST(CliOutput, EmbeddedDataIsDefaultAndSaysSimulated) {
  const auto r = pbtest::run({"fit", "-f", "newqua ~ rgzn | province + year", "--cluster", "province"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("SIMULATED DATA"), std::string::npos);
  EXPECT_NE(r.out.find("t(29)"), std::string::npos);
  const auto j = pbtest::fit_json({"-f", "newqua ~ rgzn | province + year"});
  EXPECT_EQ(j["simulated_data"], true);
}

TEST(CliOutput, FactorDummiesWithReferenceLevel) {
  const auto j = pbtest::fit_json({"--data", data_path("grunfeld_plm.csv"), "-f",
                                   "inv ~ value + i(firm, ref=3)"});
  const auto& m = j["models"][0];
  std::vector<std::string> names;
  for (const auto& c : m["coefficients"]) names.push_back(c["name"]);
  ASSERT_EQ(names.size(), 11u);
  EXPECT_EQ(names[0], "(Intercept)");
  EXPECT_EQ(names[2], "firm::1");
  EXPECT_EQ(names[4], "firm::4");  // firm::3 is the reference
}
