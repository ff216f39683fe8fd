// Bad input: each case gives a one-line error naming the file, line, column or variable, a
// non-zero exit, and no output file.
#include <filesystem>

#include "helpers.hpp"

namespace {

const char* kGood =
    "id,year,y,x,w,g\n"
    "1,2001,1.0,0.5,1,a\n"
    "1,2002,2.0,1.5,1,a\n"
    "2,2001,0.5,2.5,2,b\n"
    "2,2002,1.5,0.2,1,b\n"
    "3,2001,2.5,1.1,1,c\n"
    "3,2002,0.1,0.7,3,c\n";

struct Bad {
  pbtest::CliRun r;
  bool output_exists;
};

Bad run_bad(std::vector<std::string> args) {
  const std::string out = pbtest::temp_path(".json");
  args.insert(args.begin(), "fit");
  args.insert(args.end(), {"--format", "json", "--output", out});
  Bad b{pbtest::run(args), std::filesystem::exists(out)};
  std::filesystem::remove(out);
  return b;
}

void expect_error(const Bad& b, const std::vector<std::string>& phrases) {
  EXPECT_NE(b.r.status, 0);
  EXPECT_FALSE(b.output_exists) << "a failed run left an output file";
  EXPECT_TRUE(b.r.out.empty());
  for (const auto& p : phrases) EXPECT_NE(b.r.err.find(p), std::string::npos) << "missing '" << p << "' in: " << b.r.err;
  // one line
  EXPECT_EQ(std::count(b.r.err.begin(), b.r.err.end(), '\n'), 1) << b.r.err;
}

}  // namespace

TEST(BadInput, MissingFileNamesThePath) {
  expect_error(run_bad({"--data", "/nonexistent/panel.csv", "-f", "y ~ x"}),
               {"cannot open data file '/nonexistent/panel.csv'", "No such file"});
}

TEST(BadInput, UnparsableNumberNamesLineAndColumn) {
  std::string csv = kGood;
  csv.replace(csv.find("0.2"), 3, "0.2x");
  const std::string p = pbtest::write_temp(csv);
  expect_error(run_bad({"--data", p, "-f", "y ~ x"}),
               {"unparsable number '0.2x'", "line 5, column 4 (x)"});
}

TEST(BadInput, UnknownVariableSuggestsTheNearestName) {
  const std::string p = pbtest::write_temp(kGood);
  expect_error(run_bad({"--data", p, "-f", "y ~ xx"}), {"unknown variable 'xx'", "did you mean 'x'"});
}

TEST(BadInput, FormulaSyntaxErrorPointsAtTheColumn) {
  const std::string p = pbtest::write_temp(kGood);
  expect_error(run_bad({"--data", p, "-f", "y ~ x + + w"}), {"syntax error at column 9", "after '+'"});
  expect_error(run_bad({"--data", p, "-f", "y ~ log(x"}), {"syntax error", "missing ')'"});
  expect_error(run_bad({"--data", p, "-f", "y x"}), {"needs '~'"});
}

TEST(BadInput, ClusterVariableWithOneLevel) {
  const std::string p = pbtest::write_temp(kGood);
  expect_error(run_bad({"--data", p, "-f", "y ~ x", "--cluster", "g", "--where", "g == \"a\""}),
               {"cluster variable 'g' has a single level"});
}

TEST(BadInput, FewerObservationsThanParameters) {
  const std::string p = pbtest::write_temp(kGood);
  expect_error(run_bad({"--data", p, "-f", "y ~ x + w | id + year"}),
               {"6 observations but", "parameters"});
}

TEST(BadInput, DuplicateIdTimeWithLags) {
  std::string csv = kGood;
  csv += "3,2002,0.3,0.9,1,c\n";
  const std::string p = pbtest::write_temp(csv);
  expect_error(run_bad({"--data", p, "-f", "y ~ l(x, 1)", "--panel", "id,year"}),
               {"duplicate (id, year) pair (3, 2002)", "line 7", "line 8"});
}

TEST(BadInput, EveryRowDroppedForMissingValues) {
  const std::string p = pbtest::write_temp("y,x,z\n1,NA,2\n2,.,3\n3,,4\n");
  expect_error(run_bad({"--data", p, "-f", "y ~ x + z"}),
               {"every row was dropped for missing values", "x 3"});
}

TEST(BadInput, NonFiniteValue) {
  std::string csv = kGood;
  csv.replace(csv.find("2.5,1.1"), 3, "inf");
  const std::string p = pbtest::write_temp(csv);
  expect_error(run_bad({"--data", p, "-f", "y ~ x"}), {"non-finite value 'inf'", "line 6, column 3 (y)"});
}

TEST(BadInput, NonPositiveWeights) {
  std::string csv = kGood;
  csv.replace(csv.find(",2,b"), 4, ",0,b");
  const std::string p = pbtest::write_temp(csv);
  expect_error(run_bad({"--data", p, "-f", "y ~ x", "--weights", "w"}),
               {"--weights w: weight 0", "line 4", "not positive"});
  csv.replace(csv.find(",0,b"), 4, ",-1,b");
  const std::string p2 = pbtest::write_temp(csv);
  expect_error(run_bad({"--data", p2, "-f", "y ~ x", "--weights", "w"}), {"weight -1", "not positive"});
}

TEST(BadInput, TextVariableUsedAsNumber) {
  const std::string p = pbtest::write_temp(kGood);
  expect_error(run_bad({"--data", p, "-f", "y ~ g"}), {"'g'", "holds text", "i(g)"});
}

TEST(BadInput, EveryRowExcludedByWhere) {
  const std::string p = pbtest::write_temp(kGood);
  expect_error(run_bad({"--data", p, "-f", "y ~ x", "--where", "year > 3000"}), {"every row", "--where"});
}

TEST(BadInput, UnreadableStataFile) {
  const std::string p = pbtest::write_temp("not a stata file", ".dta");
  expect_error(run_bad({"--data", p, "-f", "y ~ x"}), {"cannot read Stata file"});
}

// threshold's --panel and --cluster through the shared options: its own messages kept, and
// `--cluster none` (which fit and wild read as "no clusters") refused rather than silently
// clustering by the unit.
TEST(BadInput, ThresholdPanelAndClusterNone) {
  const std::vector<std::string> base{"threshold", "-f", "newqua ~ urban | province", "--regime", "rgzn",
                                      "--threshold-var", "fin", "--B", "0"};
  std::vector<std::string> a = base;
  a.insert(a.end(), {"--panel", "province"});
  pbtest::CliRun r = pbtest::run(a);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("panelboot: error: threshold needs --panel id,time"), std::string::npos) << r.err;
  a = base;
  a.insert(a.end(), {"--panel", "province,year", "--cluster", "none"});
  r = pbtest::run(a);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--cluster none: threshold's clustered standard errors need a variable"), std::string::npos)
      << r.err;
  EXPECT_TRUE(r.out.empty());
}
