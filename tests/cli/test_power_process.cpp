// `power` as a user meets it: each bad input is a one-line error, exit 2, and no output file or
// saved dataset left behind.
#include <filesystem>
#include <fstream>

#include "helpers.hpp"
#include "process.hpp"

namespace fs = std::filesystem;
using pbtest::expect_user_error;
using pbtest::ProcRun;
using pbtest::run_process;

namespace {

// ids 1-4 in group a (4 clusters), 5-6 in group b (2 clusters), 7-9 in group c (3 clusters of 2
// periods: 6 observations); x2, x3 make c's model have more parameters than observations; zconst
// is constant within id (absorbed by the id effects).
std::string panel_csv() {
  std::string csv = "id,t,grp,x,x2,x3,zconst,y\n";
  char buf[200];
  for (int i = 1; i <= 9; ++i) {
    const char* g = i <= 4 ? "a" : i <= 6 ? "b" : "c";
    for (int t = 0; t < (i >= 7 ? 2 : 5); ++t) {
      const double x = std::sin(i * 1.3 + t * 0.7), x2 = std::cos(i * 0.4 + t * 1.1), x3 = std::sin(i * t + 0.2);
      std::snprintf(buf, sizeof buf, "%d,%d,%s,%.6f,%.6f,%.6f,%d,%.6f\n", i, t, g, x, x2, x3, i % 3,
                    0.5 * x + 0.1 * i + 0.2 * t + std::cos(3.1 * i + 2.3 * t));
      csv += buf;
    }
  }
  return csv;
}

struct Case {
  std::string data, out, save;
  Case() {
    data = pbtest::write_temp(panel_csv());
    out = pbtest::temp_path(".json");
    save = pbtest::temp_path("_saved");
  }
  ~Case() {
    std::error_code ec;
    fs::remove(data, ec);
    fs::remove(out, ec);
    fs::remove_all(save, ec);
  }
  ProcRun run(std::vector<std::string> extra) const {
    std::vector<std::string> args = {"power", "--data", data, "--cluster", "id",
                                     "--format", "json", "--output", out};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_process(args);
  }
  void expect_nothing_written() const {
    EXPECT_FALSE(fs::exists(out)) << "a failed run left its output";
    EXPECT_FALSE(fs::exists(save)) << "a failed run left saved datasets";
  }
};

const std::vector<std::string> kModel = {"-f", "y ~ x | id + t", "--target", "x", "--effects", "0,0.5", "--R", "20"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST(PowerProcess, GoodRunWritesItsOutputAndSavedDatasets) {
  const Case c;
  const ProcRun r = c.run(with(kModel, {"--split", "grp", "--where", "grp != \"b\"", "--save-replication", "3", c.save}));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(c.out));
  int files = 0;
  for (const auto& e : fs::directory_iterator(c.save)) files += e.path().extension() == ".csv";
  EXPECT_EQ(files, 4);  // groups a and c x 2 effects
}

TEST(PowerProcess, GroupWithTooFewClustersIsNamedWithItsCount) {
  const Case c;
  expect_user_error(c.run(with(kModel, {"--split", "grp", "--save-replication", "1", c.save})),
                    {"group grp = b has 2 clusters of id", "at least 3"});
  c.expect_nothing_written();
}

TEST(PowerProcess, GroupWithMoreParametersThanObservations) {
  const Case c;
  expect_user_error(c.run({"-f", "y ~ x + x2 + x3 | id + t", "--target", "x", "--effects", "0", "--split", "grp",
                           "--where", "grp != \"b\""}),
                    {"group grp = c has 6 observations for 7 parameters"});
  c.expect_nothing_written();
}

TEST(PowerProcess, EmptyOrNonNumericEffects) {
  const Case c;
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", ""}), {"--effects"});
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", "0,abc"}), {"--effects", "'abc'"});
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", "0:1"}), {"--effects", "'0:1'"});
  c.expect_nothing_written();
}

TEST(PowerProcess, TargetNotInTheModelOrAbsorbed) {
  const Case c;
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x2", "--effects", "0"}),
                    {"--target x2 is not a coefficient of the model", "x"});
  expect_user_error(c.run({"-f", "y ~ x + zconst | id + t", "--target", "zconst", "--effects", "0"}),
                    {"--target zconst was dropped", "absorbed by the fixed effects"});
  c.expect_nothing_written();
}

TEST(PowerProcess, ReplicationCountsOutOfRange) {
  const Case c;
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", "0", "--R", "0"}), {"--R"});
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", "0", "--R", "-5"}), {"--R"});
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", "0", "--R", "10", "--save-replication",
                           "11", c.save}),
                    {"--save-replication", "from 1 to --R (10)"});
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", "0", "--wild-B", "3"}), {"--wild-B"});
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", "0", "--alpha", "1.5"}), {"--alpha"});
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", "0", "--power-target", "0.3"}),
                    {"--power-target"});
  c.expect_nothing_written();
}

TEST(PowerProcess, NoClusterOrWeightsAreRefusedAndCudaNeedsAGpu) {
  const Case c;
  expect_user_error(run_process({"power", "--data", c.data, "-f", "y ~ x | id + t", "--target",
                                 "x", "--effects", "0", "--output", c.out}),
                    {"power needs --cluster"});
  expect_user_error(c.run(with(kModel, {"--weights", "x2"})), {"--weights"});
  c.expect_nothing_written();
  // --backend cuda: the GPU path where there is a GPU; here, one line naming the option
  const ProcRun gpu = c.run(with(kModel, {"--backend", "cuda"}));
  if (gpu.status != 0) {
    expect_user_error(gpu, {"--backend cuda:"});
    c.expect_nothing_written();
  }
}

TEST(PowerProcess, SaveFolderIsCheckedBeforeAnyWorkAndMadeOnlyOnSuccess) {
  const Case c;
  const std::string deep = c.save + "/missing/deeper";
  expect_user_error(c.run(with(kModel, {"--save-replication", "1", deep})), {"--save-replication", "parent folder"});
  c.expect_nothing_written();
  // the outcome must be a variable to be saved
  expect_user_error(c.run({"-f", "log(y + 10) ~ x | id + t", "--target", "x", "--effects", "0", "--R", "5",
                           "--save-replication", "1", c.save}),
                    {"--save-replication needs the outcome to be a numeric variable"});
  c.expect_nothing_written();
  // a run that fails after the simulation (its output is the data file) leaves no folder behind
  expect_user_error(run_process({"power", "--data", c.data, "--cluster", "id", "-f", "y ~ x | id + t", "--target", "x",
                                 "--effects", "0", "--R", "5", "--save-replication", "1", c.save, "--output", c.data}),
                    {"input file"});
  EXPECT_FALSE(fs::exists(c.save));
}

TEST(PowerProcess, GroupLabelsThatFileNamesConflateGetTheirOwnFiles) {
  const Case c;
  std::string csv = "id,t,lab,x,y\n";
  char buf[160];
  for (int i = 1; i <= 8; ++i)
    for (int t = 0; t < 4; ++t) {
      std::snprintf(buf, sizeof buf, "%d,%d,%s,%.6f,%.6f\n", i, t, i <= 4 ? "a b" : "a_b", std::sin(i * 1.7 + t),
                    std::cos(i * 0.3 + 2.1 * t) + 0.1 * i);
      csv += buf;
    }
  const std::string data = pbtest::write_temp(csv);
  const ProcRun r = run_process({"power", "--data", data, "--cluster", "id", "-f", "y ~ x | id + t", "--target", "x",
                                 "--effects", "0", "--R", "5", "--split", "lab", "--save-replication", "2", c.save,
                                 "--output", c.out});
  fs::remove(data);
  ASSERT_EQ(r.status, 0) << r.err;
  int files = 0;
  for (const auto& e : fs::directory_iterator(c.save)) files += e.path().extension() == ".csv";
  EXPECT_EQ(files, 2);
}

TEST(PowerProcess, BlockErrorsNeedClustersOfEqualSize) {
  const Case c;
  expect_user_error(c.run(with(kModel, {"--errors", "block"})),
                    {"--errors block needs clusters of equal size", "the whole sample", "2 to 5 observations"});
  c.expect_nothing_written();
}

// --plot draws the curves (scripts/plot-power) into the file, written with the report; a plotter
// that fails is an error that leaves neither the report nor the figure.
TEST(PowerProcess, PlotIsWrittenWithTheReportOrNotAtAll) {
  const Case c;
  const std::string png = c.out + ".png";
  ProcRun r = c.run(with(kModel, {"--split", "grp", "--where", "grp != \"b\"", "--plot", png}));
  ASSERT_EQ(r.status, 0) << r.err;
  std::ifstream in(png, std::ios::binary);
  std::string head(8, '\0');
  in.read(head.data(), 8);
  EXPECT_EQ(head, std::string("\x89PNG\r\n\x1a\n", 8));
  fs::remove(png);
  fs::remove(c.out);
  pbtest::ProcOptions po;
  po.env = {"PANELBOOT_PLOT_POWER=/bin/false"};
  std::vector<std::string> args = {"power", "--data", c.data, "--cluster", "id", "--format", "json", "--output", c.out};
  for (const std::string& a : with(kModel, {"--plot", png})) args.push_back(a);
  expect_user_error(run_process(args, po), {"--plot", "/bin/false failed"});
  EXPECT_FALSE(fs::exists(png));
  c.expect_nothing_written();
}

TEST(PowerProcess, Ar1NeedsThePanelAndRhoNeedsAr1) {
  const Case c;
  expect_user_error(c.run(with(kModel, {"--errors", "ar1"})), {"--errors ar1 needs", "--panel id,time"});
  expect_user_error(c.run(with(kModel, {"--rho", "0.3"})), {"--rho", "--errors ar1"});
  expect_user_error(c.run(with(kModel, {"--errors", "ar1", "--panel", "id,t", "--rho", "1.5"})), {"--rho"});
  c.expect_nothing_written();
}

// Found by a CLI fuzz run: each a one-line error before any file, or accepted as documented.
TEST(PowerProcess, FuzzFindings) {
  const Case c;
  fs::create_directories(c.save);
  const std::string saved = c.save + "/replication-1_grp-a_effect-1.csv";
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", "0", "--R", "3", "--split", "grp",
                           "--where", "grp == \"a\"", "--save-replication", "1", c.save, "--plot", saved}),
                    {"--plot", "--save-replication"});
  EXPECT_FALSE(fs::exists(saved));
  expect_user_error(c.run(with(kModel, {"--plot", ""})), {"--plot"});
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", "-1e308:1e308:3"}), {"--effects", "overflows"});
  expect_user_error(c.run(with(kModel, {"--split", "pooled"})), {"--split pooled", "rename"});
  fs::remove_all(c.save);
  c.expect_nothing_written();
  // --max-memory takes the P its range states
  const ProcRun r = c.run(with(kModel, {"--max-memory", "1P"}));
  EXPECT_EQ(r.status, 0) << r.err;
}

// A run interrupted while it writes many saved datasets leaves none of its temporaries (the
// signal handler's list of them has no fixed size; it had 8 slots). The signal lands while the
// files are written: the folder appears first, and 1000 fsync'd files take well over the wait.
TEST(PowerProcess, InterruptedSaveLeavesNoTemporaries) {
  const Case c;
  const pid_t pid = fork();
  if (pid == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    const std::string exe = pbtest::panelboot_exe();
    execl(exe.c_str(), exe.c_str(), "power", "-f", "newqua ~ rgzn | province + year", "--cluster", "province", "--target",
          "rgzn", "--R", "2", "--threads", "1", "--effects", "0:1:1000", "--save-replication", "1", c.save.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  for (int i = 0; i < 6000 && !fs::exists(c.save); ++i) usleep(10000);
  ASSERT_TRUE(fs::exists(c.save)) << "the run never made its folder";
  usleep(100000);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  int temporaries = 0;
  for (const auto& e : fs::directory_iterator(c.save)) temporaries += e.path().filename().string().find(".pbtmp") != std::string::npos;
  EXPECT_EQ(temporaries, 0);
  if (WIFSIGNALED(status)) {
    EXPECT_EQ(WTERMSIG(status), SIGTERM);
  }
}

// --design: a run with no data writes its report; data options beside it, a bad specification
// and effects given as multiples are one-line errors naming what to drop or fix.
TEST(PowerProcess, DesignRunsWithoutDataAndRefusesDataOptions) {
  const Case c;
  const std::string out = pbtest::temp_path(".json");
  const ProcRun ok = run_process({"power", "--design", "clusters=4,periods=3,rho_u=0.5", "--effects", "0,0.2", "--R", "10",
                                  "--tests", "crve,wild", "--format", "json", "--output", out});
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_TRUE(fs::exists(out));
  std::error_code ec;
  fs::remove(out, ec);
  const std::vector<std::string> design = {"power", "--design", "clusters=4", "--effects", "0", "--output", c.out};
  for (const std::vector<std::string>& extra : std::vector<std::vector<std::string>>{
           {"--data", c.data}, {"-f", "y ~ x | id + t"}, {"--cluster", "id"}, {"--split", "grp"}, {"--errors", "normal"},
           {"--calibrate", "pooled"}, {"--where", "x > 0"}, {"--pooled"}}) {
    const ProcRun r = run_process(with(design, extra));
    expect_user_error(r, {"--design simulates its own data", "drop " + (extra[0] == "-f" ? std::string("--formula") : extra[0])});
  }
  expect_user_error(run_process({"power", "--design", "clusters=4,rho_x=2", "--effects", "0", "--output", c.out}),
                    {"--design: rho_x=2: must lie in [0, 1)"});
  expect_user_error(run_process({"power", "--design", "clusters=4", "--effects", "x1", "--output", c.out}),
                    {"--effects: multiples (x1)", "a synthetic design has none"});
  expect_user_error(run_process({"power", "--design", "clusters=4", "--design", "clusters=4,periods=10", "--effects", "0",
                                 "--output", c.out}),
                    {"is given twice"});
  c.expect_nothing_written();
}

// --tests diff without a split, with an expression as a regressor, or with one group.
TEST(PowerProcess, DifferenceTestNeedsASplitPlainRegressorsAndTwoGroups) {
  const Case c;
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", "0", "--tests", "diff"}),
                    {"--tests diff compares the groups of a split", "--split"});
  expect_user_error(c.run({"-f", "y ~ log(x2 + 2) + x | id + t", "--target", "x", "--effects", "0", "--tests", "diff",
                           "--split", "grp"}),
                    {"--tests diff interacts each regressor", "make it a variable first"});
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", "0", "--tests", "diff", "--split", "grp",
                           "--where", "grp == \"a\""}),
                    {"--tests diff: --split grp has 1 group"});
  c.expect_nothing_written();
}

// --placebo without a panel, beside options of simulated errors, or on data that has a variable
// named placebo.
TEST(PowerProcess, PlaceboNeedsAPanelAndKeepsTheDatasOwnErrors) {
  const Case c;
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--target", "x", "--effects", "0", "--placebo"}),
                    {"--placebo", "--panel id,time"});
  expect_user_error(c.run({"-f", "y ~ x | id + t", "--panel", "id,t", "--target", "x", "--effects", "0", "--placebo",
                           "--errors", "normal"}),
                    {"--placebo keeps the data's own outcome", "drop --errors"});
  const std::string data = pbtest::write_temp("id,t,x,placebo,y\n1,1,0.1,1,1\n1,2,0.3,2,2\n2,1,0.2,3,1\n2,2,0.5,1,3\n");
  expect_user_error(run_process({"power", "--data", data, "-f", "y ~ x | id + t", "--cluster", "id", "--panel", "id,t",
                                 "--target", "x", "--effects", "0", "--placebo", "--output", c.out}),
                    {"a variable of that name; rename it"});
  std::error_code ec;
  fs::remove(data, ec);
  c.expect_nothing_written();
}
