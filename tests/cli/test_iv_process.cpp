// IV models as a user meets them: the executable run on a small panel, each bad input a one-line
// error naming the variables, exit status 2, and no output file left behind.
#include <filesystem>
#include <fstream>
#include <random>

#include "helpers.hpp"
#include "process.hpp"

namespace fs = std::filesystem;
using pbtest::expect_user_error;
using pbtest::run_process;

namespace {

// 12 units x 6 periods; d endogenous, z1 z2 instruments, zu = a copy of the unit id (absorbed by
// the unit FE), zx = 2 x (collinear with the exogenous regressor).
std::string iv_csv() {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nd;
  std::string s = "unit,year,y,x,d,z1,z2,zu,zx\n";
  for (int i = 0; i < 12; ++i)
    for (int t = 0; t < 6; ++t) {
      const double x = nd(rng), z1 = nd(rng), z2 = nd(rng), v = nd(rng);
      const double d = z1 + 0.5 * z2 + 0.2 * x + v;
      const double y = 1.5 * d + x + 0.5 * v + nd(rng);
      s += std::to_string(i) + "," + std::to_string(2000 + t) + "," + std::to_string(y) + "," + std::to_string(x) + "," +
           std::to_string(d) + "," + std::to_string(z1) + "," + std::to_string(z2) + "," + std::to_string(i * 1.0) + "," +
           std::to_string(2 * x) + "\n";
    }
  return s;
}

struct IvRun {
  pbtest::ProcRun r;
  bool output_left;
};

IvRun run_iv(const std::string& formula, std::vector<std::string> extra = {}) {
  const std::string data = pbtest::write_temp(iv_csv());
  const std::string out = pbtest::temp_path(".json");
  std::vector<std::string> args{"fit", "--data", data, "--formula", formula, "--format", "json", "--output", out};
  args.insert(args.end(), extra.begin(), extra.end());
  IvRun run{run_process(args), fs::exists(out)};
  fs::remove(out);
  fs::remove(data);
  return run;
}

}  // namespace

TEST(IvProcess, FewerInstrumentsThanEndogenousRegressorsIsRefused) {
  const IvRun r = run_iv("y ~ x | unit + year | d + z2 ~ z1");
  expect_user_error(r.r, {"2 endogenous regressors but only 1 instrument", "at least as many"}, 1);
  EXPECT_FALSE(r.output_left);
}

TEST(IvProcess, AnInstrumentAbsorbedByTheFixedEffectsIsNamed) {
  const IvRun r = run_iv("y ~ x | unit + year | d ~ z1 + zu");
  expect_user_error(r.r, {"instrument 'zu'", "collinear with the fixed effects"}, 1);
  EXPECT_FALSE(r.output_left);
}

TEST(IvProcess, AnInstrumentCollinearWithTheExogenousRegressorsIsNamed) {
  const IvRun r = run_iv("y ~ x | unit + year | d ~ z1 + zx");
  expect_user_error(r.r, {"instrument 'zx'", "the exogenous regressors or the other instruments"}, 1);
  EXPECT_FALSE(r.output_left);
}

TEST(IvProcess, AVariableBothEndogenousAndExogenousIsRefused) {
  const IvRun r = run_iv("y ~ x + d | unit + year | d ~ z1");
  expect_user_error(r.r, {"'d' is both an exogenous regressor and an endogenous one"}, 1);
  EXPECT_FALSE(r.output_left);
  const IvRun r2 = run_iv("y ~ x | unit + year | d ~ z1 + x");
  expect_user_error(r2.r, {"'x' is an exogenous regressor", "instruments itself"}, 1);
  const IvRun r3 = run_iv("y ~ x | unit + year | d ~ d + z1");
  expect_user_error(r3.r, {"'d' is both endogenous and an instrument"}, 1);
}

TEST(IvProcess, AnEndogenousRegressorAbsorbedByTheFixedEffectsIsNamed) {
  const IvRun r = run_iv("y ~ x | unit + year | zu ~ z1");
  expect_user_error(r.r, {"endogenous regressor 'zu'", "collinear with the fixed effects"}, 1);
}

TEST(IvProcess, CommandsWithoutAnIvFormRefuseAnIvFormula) {
  const std::string data = pbtest::write_temp(iv_csv());
  expect_user_error(run_process({"threshold", "--data", data, "--panel", "unit,year", "--formula",
                                 "y ~ x | unit | d ~ z1", "--threshold-var", "z2", "--regime", "x", "--B", "0"}),
                    {"threshold:", "IV model"}, 1);
  fs::remove(data);
}

// `wild` on an IV model: the WRE and AR rows with the JSON contract; the limits refused.
TEST(IvProcess, WildOnAnIvModelWritesTheWreAndArRows) {
  const std::string data = pbtest::write_temp(iv_csv());
  const pbtest::ProcRun r = run_process({"wild", "--data", data, "--formula", "y ~ x | unit + year | d ~ z1 + z2",
                                         "--cluster", "unit", "--test", "d = 1.5", "--ar", "--B", "999", "--format",
                                         "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["method"], "WRE");
  ASSERT_EQ(j["tests"].size(), 2u);
  const auto& wre = j["tests"][0];
  const auto& ar = j["tests"][1];
  EXPECT_EQ(wre["test"], "wre");
  EXPECT_TRUE(wre.contains("t_stat"));
  EXPECT_EQ(ar["test"], "ar");
  EXPECT_TRUE(ar.contains("f_stat"));
  EXPECT_EQ(ar["q"], 2);
  for (const auto& row : {wre, ar}) {
    EXPECT_GT(row["p_value"].get<double>(), 0.0);
    EXPECT_LE(row["p_value"].get<double>(), 1.0);
    ASSERT_FALSE(row["ci_pieces"].empty());
    EXPECT_TRUE(row["ci_bounded"].get<bool>());
    EXPECT_LT(row["ci_low"].get<double>(), 1.5);
    EXPECT_GT(row["ci_high"].get<double>(), 1.5);
    EXPECT_EQ(row["n_boot"], 999);
  }
  // the unrestricted variant
  const pbtest::ProcRun u = run_process({"wild", "--data", data, "--formula", "y ~ x | unit + year | d ~ z1",
                                         "--cluster", "unit", "--test", "d = 0", "--impose-null", "no", "--no-ci",
                                         "--format", "json"});
  ASSERT_EQ(u.status, 0) << u.err;
  EXPECT_EQ(nlohmann::json::parse(u.out)["tests"][0]["test"], "wue");
  fs::remove(data);
}

TEST(IvProcess, WildRefusesWhatTheIvBootstrapCannotDo) {
  const std::string data = pbtest::write_temp(iv_csv());
  auto wild = [&](const std::string& f, std::vector<std::string> extra) {
    std::vector<std::string> a{"wild", "--data", data, "--formula", f, "--cluster", "unit"};
    a.insert(a.end(), extra.begin(), extra.end());
    return run_process(a);
  };
  expect_user_error(wild("y ~ x | unit + year | d + z2 ~ z1 + zx", {"--test", "d = 0"}),
                    {"2 endogenous regressors", "supports one"}, 1);
  expect_user_error(wild("y ~ x | unit + year | d ~ z1", {"--test", "x = 0"}),
                    {"endogenous coefficient 'd' alone", "'x' is exogenous"}, 1);
  expect_user_error(wild("y ~ x | unit + year | d ~ z1", {"--test", "d = 0", "--test", "d = 1", "--joint"}),
                    {"--joint", "IV model"}, 1);
  expect_user_error(wild("y ~ x | unit + year", {"--test", "x = 0", "--ar"}), {"--ar", "no IV part"}, 1);
  expect_user_error(wild("y ~ x | unit + year | d ~ z1", {"--test", "2*d = 1"}), {"write the IV restriction as 'd = value'"}, 1);
  expect_user_error(wild("y ~ x | unit + year | d ~ z1 + z2", {"--test", "d = 0", "--ar", "--where", "unit < 2"}),
                    {"--ar", "more clusters than instruments"}, 1);
  fs::remove(data);
}

// --enumerate always states its limit on G with a time estimate.
TEST(IvProcess, WreEnumerationBeyondItsLimitIsRefusedWithATimeEstimate) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> nd;
  std::string s = "g,y,d,z\n";
  for (int g = 0; g < 30; ++g)
    for (int i = 0; i < 3; ++i) {
      const double z = nd(rng), v = nd(rng);
      s += std::to_string(g) + "," + std::to_string(v + nd(rng)) + "," + std::to_string(z + v) + "," + std::to_string(z) + "\n";
    }
  const std::string data = pbtest::write_temp(s);
  expect_user_error(run_process({"wild", "--data", data, "--formula", "y ~ 1 | g | d ~ z", "--cluster", "g", "--test",
                                 "d = 0", "--enumerate", "always"}),
                    {"limited to 26 bootstrap clusters", "hours", "--enumerate never"}, 1);
  // the heteroskedastic bootstrap's memory is checked against --max-memory before it is allocated
  std::string big = "y,d,z\n";
  for (int i = 0; i < 400; ++i) {
    const double z = nd(rng), v = nd(rng);
    big += std::to_string(v + nd(rng)) + "," + std::to_string(z + v) + "," + std::to_string(z) + "\n";
  }
  const std::string big_data = pbtest::write_temp(big);
  expect_user_error(run_process({"wild", "--data", big_data, "--formula", "y ~ 1 | d ~ z", "--cluster", "none", "--test",
                                 "d = 0", "--no-ci", "--max-memory", "1M"}),
                    {"IV wild bootstrap", "--max-memory allows"}, 2);
  // ... as the factored products hold it (a few hundred KB here), not as the dense N x N matrix
  // would (3.8 MB)
  const pbtest::ProcRun fits = run_process({"wild", "--data", big_data, "--formula", "y ~ 1 | d ~ z", "--cluster", "none",
                                            "--test", "d = 0", "--no-ci", "--B", "99", "--chunk", "16", "--max-memory",
                                            "1M"});
  EXPECT_EQ(fits.status, 0) << fits.err;
  fs::remove(big_data);
  fs::remove(data);
}

TEST(IvProcess, AGoodModelWritesTheIvFieldsAndTheTextNamesTheConvention) {
  const IvRun r = run_iv("y ~ x | unit + year | d ~ z1 + z2", {"--cluster", "unit"});
  EXPECT_EQ(r.r.status, 0) << r.r.err;
  EXPECT_TRUE(r.output_left);
  const std::string data = pbtest::write_temp(iv_csv());
  const pbtest::ProcRun t = run_process({"fit", "--data", data, "--formula", "y ~ x | unit + year | d ~ z1 + z2",
                                         "--cluster", "unit", "--first-stage"});
  EXPECT_EQ(t.status, 0) << t.err;
  for (const char* phrase : {"Estimator: 2SLS (IV), 1 endogenous, 2 excluded instruments", "First stage: d",
                             "F test of excluded instruments: F(2, 11)", "Kleibergen-Paap rk LM", "Kleibergen-Paap rk Wald F",
                             "Stock-Yogo critical values: 10% maximal IV size", "19.93", "Effective F (Montiel Olea-Pflueger)",
                             "Hansen J statistic", "Instrumented: d", "Excluded instruments: z1 z2",
                             "G/(G-1)*(N-1)/(N-K)", "reference t(11)"})
    EXPECT_NE(t.out.find(phrase), std::string::npos) << phrase << "\n" << t.out;
  const pbtest::ProcRun big = run_process({"fit", "--data", data, "--formula", "y ~ x | unit + year | d ~ z1 + z2",
                                           "--cluster", "unit", "--small", "no"});
  EXPECT_EQ(big.status, 0) << big.err;
  EXPECT_NE(big.out.find("no small-sample factor"), std::string::npos) << big.out;
  EXPECT_NE(big.out.find("reference N(0,1)"), std::string::npos) << big.out;
  fs::remove(data);
}

TEST(IvProcess, TheOutcomeInTheIvPartAndTooFewRowsAreRefused) {
  expect_user_error(run_iv("y ~ x | unit + year | d ~ I(2*y) + z1").r, {"uses the outcome 'y' in the IV part"}, 1);
  // 4 rows, no FE: the second stage has 3 parameters (intercept, x, d), each first stage 4
  const IvRun r = run_iv("y ~ x | d ~ z1 + z2", {"--where", "unit == 0 and year <= 2003", "--vcov", "hc1"});
  expect_user_error(r.r, {"observations but", "parameters in each first stage"}, 1);
  EXPECT_FALSE(r.output_left);
}

TEST(IvProcess, FirstStageOptionIsForTheTextOutput) {
  expect_user_error(run_iv("y ~ x | unit + year | d ~ z1", {"--first-stage"}).r,
                    {"--first-stage prints", "first_stages[]"}, 1);
}

TEST(IvProcess, TooFewClustersLeaveTheStatisticsOutWithTheReason) {
  const std::string data = pbtest::write_temp(iv_csv());
  const pbtest::ProcRun t = run_process({"fit", "--data", data, "--formula", "y ~ x | unit + year | d ~ z1 + z2",
                                         "--cluster", "unit", "--where", "unit <= 1"});
  fs::remove(data);
  EXPECT_EQ(t.status, 0) << t.err;
  for (const char* phrase : {"first-stage F of 'd' not reported: 2 clusters for 2 excluded instruments",
                             "Kleibergen-Paap rk Wald F not reported", "effective F not reported",
                             "Hansen J statistic not reported", "NA (not reported; see the warnings)"})
    EXPECT_NE(t.out.find(phrase), std::string::npos) << phrase << "\n" << t.out;
}
