// The executable as a user meets it: exit statuses, stderr, stdout failures and the files left
// on disk, for every case of the hardening review (outputs that must never destroy anything,
// crashes, hangs, options out of range, formats, progress).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "helpers.hpp"
#include "process.hpp"

namespace fs = std::filesystem;
using pbtest::data_path;
using pbtest::expect_user_error;
using pbtest::ProcOptions;
using pbtest::ProcRun;
using pbtest::run_process;

namespace {

// A fresh folder per test, removed at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("pbproc_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  static int& counter() {
    static int c = 0;
    return c;
  }
  // names of the files in the folder, sorted
  std::vector<std::string> listing() const {
    std::vector<std::string> v;
    for (const auto& e : fs::directory_iterator(path)) v.push_back(e.path().filename().string());
    std::sort(v.begin(), v.end());
    return v;
  }
};

std::string slurp(const std::string& p) { return pbtest::file_bytes(p); }

void spit(const std::string& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

const std::string kFitFormula = "inv ~ value + capital | firm + year";

std::vector<std::string> grunfeld_fit(const std::string& data) {
  return {"fit", "--data", data, "-f", kFitFormula, "--cluster", "firm"};
}

std::vector<std::string> hansen_threshold() {
  return {"threshold", "--data", data_path("hansen1999_invest.csv"), "--panel", "id,year", "-f",
          "inva ~ l(vala,1) | id", "--regime", "l(cfa,1)", "--threshold-var", "l(debta,1)", "--B", "0"};
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

}  // namespace

// ---- 1. outputs never destroy anything ----

TEST(ProcessOutput, OutputOntoTheInputFileIsRefusedAndTheInputKept) {
  TempDir dir;
  const std::string data = dir / "g.csv";
  fs::copy_file(data_path("grunfeld_plm.csv"), data);
  const std::string before = slurp(data);
  expect_user_error(run_process(with(grunfeld_fit(data), {"--output", data})), {"--output", "input file", "--data"});
  EXPECT_EQ(slurp(data), before);
  // also through a symlink to it, and as a side file of threshold
  const std::string link = dir / "link.csv";
  fs::create_symlink(data, link);
  expect_user_error(run_process(with(grunfeld_fit(data), {"--output", link})), {"input file"});
  EXPECT_EQ(slurp(data), before);
  const std::string hansen = dir / "h.csv";
  fs::copy_file(data_path("hansen1999_invest.csv"), hansen);
  auto thr = hansen_threshold();
  thr[2] = hansen;
  expect_user_error(run_process(with(thr, {"--lr-curve", hansen})), {"--lr-curve", "input file"});
  EXPECT_EQ(slurp(hansen), slurp(data_path("hansen1999_invest.csv")));
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"g.csv", "h.csv", "link.csv"}));
}

TEST(ProcessOutput, TwoOutputsNamingOneFileAreRefused) {
  TempDir dir;
  fs::create_directories(dir.path / "sub");
  const std::string out = dir / "same.txt";
  expect_user_error(run_process(with(hansen_threshold(), {"--output", out, "--lr-curve", out})),
                    {"--lr-curve", "--output", "same file"});
  expect_user_error(run_process(with(hansen_threshold(), {"--save-regimes", out, "--lr-curve", out})), {"same file"});
  // the same new file spelled three ways, from the folder as the working directory
  ProcOptions here;
  here.cwd = dir.path.string();
  expect_user_error(run_process(with(hansen_threshold(), {"--output", "same.txt", "--lr-curve", out}), here),
                    {"same file"});
  expect_user_error(run_process(with(hansen_threshold(), {"--output", "./same.txt", "--save-regimes", "sub/../same.txt"}),
                                here),
                    {"same file"});
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"sub"});
}

TEST(ProcessOutput, EmptyFileNamesAreRefusedNotReadAsStandardOutput) {
  expect_user_error(run_process(with(grunfeld_fit(data_path("grunfeld_plm.csv")), {"--output", ""})),
                    {"--output", "give a file name"});
  expect_user_error(run_process(with(hansen_threshold(), {"--lr-curve", ""})), {"--lr-curve", "give a file name"});
}

TEST(ProcessOutput, AFifoThatNobodyReadsIsAnErrorNotAHang) {
  TempDir dir;
  const std::string fifo = dir / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ProcOptions o;
  o.timeout_s = 20;
  const ProcRun r = run_process(with(hansen_threshold(), {"--output", fifo, "--lr-curve", dir / "lr.csv"}), o);
  ASSERT_FALSE(r.timed_out) << "waits for a reader";
  expect_user_error(r, {"FIFO that nobody reads"});
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"pipe"}) << "the side file was written before the report failed";
}

TEST(ProcessOutput, StandardOutputAsAnOutputFileIsWrittenThroughItsDescriptor) {
  // --output /proc/self/fd/1 (what /dev/stdout links to) with stdout appended to a log: the
  // log's earlier lines stay (they were lost when the path was renamed over)
  TempDir dir;
  const std::string log = dir / "log.txt";
  spit(log, "precious\n");
  ProcOptions o;
  o.stdout_path = log;
  o.stdout_append = true;
  const ProcRun r = run_process(with(grunfeld_fit(data_path("grunfeld_plm.csv")), {"--output", "/proc/self/fd/1"}), o);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string text = slurp(log);
  EXPECT_EQ(text.rfind("precious\nModel: ", 0), 0u) << text.substr(0, 200);
  // into a pipe (the test's): the report arrives, no error about "pipe:[N]"
  const ProcRun p = run_process(with(grunfeld_fit(data_path("grunfeld_plm.csv")), {"--output", "/proc/self/fd/1"}));
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_EQ(p.out.rfind("Model: ", 0), 0u) << p.out.substr(0, 200);
}

TEST(ProcessOutput, ASymlinkKeepsPointingAtItsTargetWhichIsReplaced) {
  TempDir dir;
  const std::string target = dir / "target.txt", link = dir / "link.txt";
  spit(target, "old");
  fs::create_symlink("target.txt", link);
  const ProcRun r = run_process(with(grunfeld_fit(data_path("grunfeld_plm.csv")), {"--format", "json", "--output", link}));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(fs::read_symlink(link), "target.txt");
  EXPECT_EQ(nlohmann::json::parse(slurp(target))["models"][0]["nobs"], 200);
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"link.txt", "target.txt"}));  // no temporary left
  // a dangling link: its target is created
  fs::remove(target);
  ASSERT_EQ(run_process(with(grunfeld_fit(data_path("grunfeld_plm.csv")), {"--output", link})).status, 0);
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_NE(slurp(target).find("Model: " + kFitFormula), std::string::npos);
}

TEST(ProcessOutput, AnExistingFileKeepsItsPermissions) {
  TempDir dir;
  const std::string out = dir / "private.txt";
  spit(out, "old");
  ::chmod(out.c_str(), 0600);
  ASSERT_EQ(run_process(with(grunfeld_fit(data_path("grunfeld_plm.csv")), {"--output", out})).status, 0);
  struct stat st;
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_NE(slurp(out).find("Model:"), std::string::npos);
}

// What a FIFO delivers until its writer closes it (nonblocking, so that a binary that never
// opens it cannot hang the test: it gives up after `timeout_s`).
std::string read_fifo(const std::string& path, double timeout_s) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);
  if (fd < 0) return "";
  std::string got;
  char buf[4096];
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < timeout_s) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    else if (n == 0 && !got.empty()) break;  // the writer came and went
    else std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::close(fd);
  return got;
}

TEST(ProcessOutput, DevicesAndFifosAreWrittenInPlaceNeverReplaced) {
  // A null device of our own where we may make one (root: the old binary replaced /dev/null
  // itself, so a regression must not be tested on the machine's), else /dev/null, which a
  // non-root run could not replace anyway.
  TempDir dir;
  std::string null_dev = dir / "null";
  if (::mknod(null_dev.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) null_dev = "/dev/null";
  const ProcRun r = run_process(with(grunfeld_fit(data_path("grunfeld_plm.csv")), {"--output", null_dev}));
  EXPECT_EQ(r.status, 0) << r.err;
  struct stat st;
  ASSERT_EQ(::stat(null_dev.c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << null_dev << " is no longer a device";
  const std::string fifo = dir / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string got;
  std::thread reader([&] { got = read_fifo(fifo, 20); });
  const ProcRun w = run_process(with(grunfeld_fit(data_path("grunfeld_plm.csv")), {"--format", "csv", "--output", fifo}));
  reader.join();
  EXPECT_EQ(w.status, 0) << w.err;
  EXPECT_NE(got.find("\"capital\""), std::string::npos) << got;
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO was replaced by a file";
}

TEST(ProcessOutput, AFailedRunLeavesNoFileAndSideFilesOnlyWithSuccess) {
  TempDir dir;
  const std::string lr = dir / "lr.csv", reg = dir / "reg.csv";
  // the report's folder does not exist: refused before any work, no side file written
  expect_user_error(run_process(with(hansen_threshold(), {"--lr-curve", lr, "--save-regimes", reg, "--output",
                                                          dir / "missing/report.txt"})),
                    {"folder", "does not exist"});
  // the run fails after reading: nothing either
  auto bad = hansen_threshold();
  bad[10] = "nonexistent";
  expect_user_error(run_process(with(bad, {"--lr-curve", lr, "--save-regimes", reg, "--output", dir / "r.txt"})),
                    {"unknown variable 'nonexistent'"});
  EXPECT_TRUE(dir.listing().empty());
  // success writes all three, with no temporary beside them
  const ProcRun ok = run_process(with(hansen_threshold(), {"--lr-curve", lr, "--save-regimes", reg, "--output", dir / "r.txt"}));
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"lr.csv", "r.txt", "reg.csv"}));
}

TEST(ProcessOutput, OutputsThatAreDirectoriesAreRefused) {
  TempDir dir;
  expect_user_error(run_process(with(grunfeld_fit(data_path("grunfeld_plm.csv")), {"--output", dir.path.string()})),
                    {"is a directory"});
}

// ---- standard output ----

TEST(ProcessStdout, AFullDiskIsAnErrorNotASilentSuccessAndLeavesNoSideFiles) {
  ProcOptions o;
  o.stdout_path = "/dev/full";
  const ProcRun r = run_process(grunfeld_fit(data_path("grunfeld_plm.csv")), o);
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "panelboot: error: cannot write to standard output: No space left on device\n");
  // the report goes to stdout before the side files are renamed into place
  TempDir dir;
  const ProcRun t = run_process(with(hansen_threshold(), {"--lr-curve", dir / "lr.csv", "--save-regimes", dir / "reg.csv"}), o);
  EXPECT_EQ(t.status, 2) << t.err;
  EXPECT_TRUE(dir.listing().empty()) << "side files of a failed run";
}

TEST(ProcessStdout, AClosedPipeEndsTheRunSilentlyBySigpipe) {
  for (bool ignored : {false, true}) {
    ProcOptions o;
    o.close_stdout_early = true;
    o.ignore_sigpipe = ignored;  // even where the parent ignores SIGPIPE: 141 in a shell, as other tools
    const ProcRun r = run_process(grunfeld_fit(data_path("grunfeld_plm.csv")), o);
    EXPECT_EQ(r.signal, SIGPIPE) << "ignored=" << ignored << " status " << r.status << ": " << r.err;
    EXPECT_TRUE(r.err.empty()) << r.err;
  }
}

// ---- 2, 3. crashes and hangs ----

TEST(ProcessCrash, FixedThresholdsPrintAsTextWithoutConfidenceSets) {
  const ProcRun r = run_process({"threshold", "--data", data_path("hansen1999_invest.csv"), "--panel", "id,year", "-f",
                                 "inva ~ vala | id", "--regime", "cfa", "--threshold-var", "debta", "--gammas", "0.0157"});
  ASSERT_EQ(r.signal, 0);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("gamma 1 = 0.0157     (given by --gammas)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("F1 = "), std::string::npos);
  EXPECT_EQ(r.out.find("CIs: {gamma"), std::string::npos) << "no confidence sets to explain";
  // and no LR curve to write
  expect_user_error(run_process({"threshold", "--data", data_path("hansen1999_invest.csv"), "--panel", "id,year", "-f",
                                 "inva ~ vala | id", "--regime", "cfa", "--threshold-var", "debta", "--gammas", "0.0157",
                                 "--lr-curve", "/tmp/never-written.csv"}),
                    {"drop --lr-curve"});
}

TEST(ProcessHang, AZeroClusterVarianceIsAWarningInFitAndAnErrorInWild) {
  const std::vector<std::string> model{"--data", data_path("empluk_fem.csv"), "--where", "Firm <= 2", "-f",
                                       "Emp ~ Wage | Firm + Year", "--cluster", "Firm"};
  ProcOptions o;
  o.timeout_s = 30;
  const ProcRun w = run_process(with({"wild"}, with(model, {"--test", "Wage = 0"})), o);
  ASSERT_FALSE(w.timed_out) << "the CI search hangs";
  expect_user_error(w, {"--test 'Wage = 0'", "numerically zero", "2 clusters"});
  const ProcRun f = run_process(with({"fit"}, model), o);
  ASSERT_EQ(f.status, 0) << f.err;
  EXPECT_EQ(f.err.rfind("panelboot: warning: the cluster standard error of 'Wage' is numerically zero", 0), 0u) << f.err;
  const std::size_t row = f.out.find("\nWage ");
  ASSERT_NE(row, std::string::npos) << f.out;
  const std::string wage = f.out.substr(row + 1, f.out.find('\n', row + 1) - row - 1);
  EXPECT_EQ(wage.find('*'), std::string::npos) << "stars on a zero variance: " << wage;
  EXPECT_EQ(wage, "Wage             -2.34893  1.74061e-14       NA        NA                NA           NA");
  // the same in Grunfeld (t was 2.7e15), and JSON carries null t and p and the warning
  const ProcRun g = run_process({"fit", "--data", data_path("grunfeld_plm.csv"), "--where", "firm <= 2", "-f",
                                 "inv ~ value | firm + year", "--cluster", "firm", "--format", "json"});
  ASSERT_EQ(g.status, 0) << g.err;
  const auto j = nlohmann::json::parse(g.out);
  const auto& c = pbtest::coef(j["models"][0], "value");
  EXPECT_TRUE(c["t_stat"].is_null());
  EXPECT_TRUE(c["p_value"].is_null());
  EXPECT_NEAR(c["estimate"].get<double>(), 0.2281, 1e-4);
  EXPECT_NE(j["models"][0]["warnings"].dump().find("numerically zero"), std::string::npos);
}

// ---- 5. options in range ----

TEST(ProcessOptions, NumbersOutsideTheirStatedRangeExitTwo) {
  const std::vector<std::string> wild{"wild", "-f", "newqua ~ rgzn | province + year", "--cluster", "province",
                                      "--test", "rgzn = 0", "--B", "99"};
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {with(wild, {"--chunk", "-1"}), "--chunk: '-1' is not a whole number from 0 to"},
      {with(wild, {"--seed", "-5"}), "--seed: '-5' is not a whole number from 0 to 18446744073709551615"},
      {with(wild, {"--seed", "18446744073709551616"}), "--seed"},
      {with(wild, {"--threads", "-1"}), "--threads: '-1' is not a whole number from 0 to 1024"},
      {with(wild, {"--B", "0"}), "--B: '0' is not a whole number from 1 to"},
      {with(wild, {"--B", "1e3"}), "--B: '1e3'"},
      {with(wild, {"--max-memory", ""}), "--max-memory"},
      {with(wild, {"--level", "1"}), "--level: '1' is not a number strictly between 0 and 1"},
      {with(wild, {"--fe-tol", "0"}), "--fe-tol"},
      {with(wild, {"--fe-maxiter", "0"}), "--fe-maxiter"},
      {with(wild, {"--max-memory", "12Q"}), "--max-memory '12Q'"},
      {with(hansen_threshold(), {"--grid", "0"}), "--grid: '0' is not a whole number from 10 to"},
      {with(hansen_threshold(), {"--grid", "100000000"}), "--grid"},
      {with(hansen_threshold(), {"--thresholds", "0"}), "--thresholds"},
      {with(hansen_threshold(), {"--gammas", "inf"}), "--gammas 'inf'"},
      {{"fit", "-f", "newqua ~ rgzn", "--dk-lag", "-2"}, "--dk-lag"},
  };
  for (const auto& [args, phrase] : cases) {
    SCOPED_TRACE(args[args.size() - 2] + " " + args.back());
    expect_user_error(run_process(args), {phrase});
  }
}

TEST(ProcessOptions, TooManyThreadsAreReducedToTheCoresWithAWarning) {
  const ProcRun r = run_process({"wild", "-f", "newqua ~ rgzn | province + year", "--cluster", "province", "--test",
                                 "rgzn = 0", "--B", "99", "--threads", "1000", "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_NE(r.err.find("panelboot: warning: --threads 1000 is more than this machine's " + std::to_string(cores) +
                       " cores; using " + std::to_string(cores)),
            std::string::npos)
      << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["threads"], cores);
}

TEST(ProcessOptions, NumbersWithLeadingZerosAreDecimalNotOctal) {
  const ProcRun r = run_process({"wild", "-f", "newqua ~ rgzn | province + year", "--cluster", "province", "--test",
                                 "rgzn = 0", "--B", "0099", "--seed", "010", "--no-ci", "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["seed"], 10);
  EXPECT_EQ(j["tests"][0]["n_boot"], 99);
}

TEST(ProcessOptions, AFailingRunPrintsAtMostThreeLinesItsErrorLast) {
  // three notices before the error (too many threads, a small B, the embedded data): the third
  // is held back and dropped with the failure; a success shows all three
  const std::vector<std::string> wild{"wild", "-f", "newqua ~ rgzn | province + year", "--cluster", "province",
                                      "--B", "5", "--threads", "999", "--no-ci"};
  const ProcRun bad = run_process(with(wild, {"--test", "zzz = 0"}));
  expect_user_error(bad, {"'zzz' is not a coefficient"});
  EXPECT_EQ(bad.stderr_lines(), 3) << bad.err;
  const ProcRun ok = run_process(with(wild, {"--test", "rgzn = 0"}));
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(ok.stderr_lines(), 3) << ok.err;
  EXPECT_NE(ok.err.find("embedded simulated dataset"), std::string::npos) << ok.err;
}

TEST(ProcessOptions, ReplicationsBeyondMemoryAreRefusedWithTheEstimateAndTheWaysOut) {
  // --B 2147483648 with the CI keeps 5 numbers per replication: about 80 GB
  const std::vector<std::string> wild{"wild", "-f", "newqua ~ rgzn | province + year", "--cluster", "province",
                                      "--test", "rgzn = 0", "--enumerate", "never"};
  expect_user_error(run_process(with(wild, {"--B", "2147483648"})),
                    {"2147483648 replications kept for its confidence interval", "needs about 80 GB", "--no-ci"});
  expect_user_error(run_process(with(wild, {"--B", "1000000000000"})), {"needs about", "lower --B"});
  expect_user_error(
      run_process(with(wild, {"--B", "100000", "--max-memory", "1M", "--threads", "1"})),
      {"(100000 replications kept for its confidence interval, batches of 2016 on 1 thread) needs "
       "about 5.",
       "1.0 MB that --max-memory allows"});
  // without the CI: the batches alone, --chunk 2^24 on one thread (they aborted with bad_alloc)
  expect_user_error(run_process(with(wild, {"--B", "16777216", "--chunk", "16777216", "--no-ci", "--threads", "1",
                                            "--max-memory", "2G"})),
                    {"(batches of 16777216 on 1 thread) needs about", "lower --chunk"});
  expect_user_error(run_process(with(hansen_threshold(), {"--grid", "10000000", "--max-memory", "64M"})),
                    {"threshold with a grid of 9800001 points needs about", "lower --grid"});
}

TEST(ProcessOptions, ParseErrorsExitTwoWithThePrefixAndTheNearestName) {
  expect_user_error(run_process({"fit", "--clustr", "firm"}), {"unknown option '--clustr'", "did you mean '--cluster'?"});
  expect_user_error(run_process({"fitt"}), {"unknown command 'fitt'", "did you mean 'fit'?"});
  expect_user_error(run_process({"wild", "-f", "y ~ x"}), {"--test is required"});
  expect_user_error(run_process({"fit", "--format", "xml"}), {"--format"});
  expect_user_error(run_process({}), {"subcommand is required"});
  // a named command declares only its own options (app.cpp); the others are still what the top
  // level lists and what a second command name meets
  expect_user_error(run_process({"fit", "wild"}), {"unexpected argument 'wild' for panelboot fit"});
  const ProcRun top = run_process({"--help"});
  EXPECT_EQ(top.status, 0);
  for (const char* c :
       {"fit", "wild", "threshold", "power", "describe", "replicate", "merge", "bench"})
    EXPECT_NE(top.out.find(std::string("\n  ") + c + " "), std::string::npos) << c;
  const ProcRun help = run_process({"wild", "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--B"), std::string::npos);
  EXPECT_NE(help.out.find("INT:from 1 to 1000000000000"), std::string::npos) << "the range is stated in --help";
}

// ---- 6. silent wrong or lost output ----

TEST(ProcessValues, ARegressorWhoseSquareOverflowsIsALocatedError) {
  TempDir dir;
  std::string csv = "id,year,y,x\n";
  for (int i = 1; i <= 4; ++i)
    for (int t = 1; t <= 3; ++t) csv += std::to_string(i) + "," + std::to_string(t) + "," + std::to_string(i * t % 5) + "," + std::to_string(i + t * t) + "\n";
  csv.replace(csv.find("\n3,2,") + 1, std::string::npos, "3,2,1,2e155\n" + csv.substr(csv.find("\n3,3,") + 1));
  spit(dir / "big.csv", csv);
  expect_user_error(run_process({"fit", "--data", dir / "big.csv", "-f", "y ~ x | id"}),
                    {"value 2e+155 of 'x'", "line 9, column 4", "too large"});
  // 1e150 is fine: kept, not dropped as collinear
  std::string ok = csv;
  ok.replace(ok.find("2e155"), 5, "1e150");
  spit(dir / "ok.csv", ok);
  const ProcRun r = run_process({"fit", "--data", dir / "ok.csv", "-f", "y ~ x | id", "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["models"][0]["coefficients"].size(), 1u) << r.out;
}

TEST(ProcessValues, ThresholdNeedsTwoUnitsAndItsFixedEffect) {
  auto one = hansen_threshold();
  one.insert(one.end(), {"--where", "id == 1"});
  expect_user_error(run_process(one), {"at least two panel units", "'id' has 1"});
  auto no_fe = hansen_threshold();
  no_fe[6] = "inva ~ l(vala,1)";
  expect_user_error(run_process(no_fe), {"has no fixed effect", "'inva ~ l(vala,1) | id'"});
}

TEST(ProcessValues, ARegimeRegressorRepeatedAmongTheLinearOnesIsOmittedThereAndSaid) {
  // listed first among the linear terms it used to shift the regime columns: vala became the
  // regime regressor, silently
  auto args = hansen_threshold();
  args[6] = "inva ~ l(cfa,1) + l(vala,1) | id";
  const ProcRun r = run_process(with(args, {"--format", "json"}));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["omitted"].size(), 1u);
  EXPECT_EQ(j["omitted"][0].get<std::string>().rfind("l(cfa,1) (linear term", 0), 0u) << j["omitted"];
  std::vector<std::string> names;
  for (const auto& c : j["models"][0]["coefficients"]) names.push_back(c["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"l(vala,1)", "l(cfa,1):regime1", "l(cfa,1):regime2"}));
  // the same model as without the repeat
  const ProcRun plain = run_process(with(hansen_threshold(), {"--format", "json"}));
  EXPECT_EQ(nlohmann::json::parse(plain.out)["models"][0]["ssr"], j["models"][0]["ssr"]);
}

TEST(ProcessValues, AHeaderOnlyFileSaysSoNotWhere) {
  TempDir dir;
  spit(dir / "h.csv", "y,x\n");
  const ProcRun r = run_process({"fit", "--data", dir / "h.csv", "-f", "y ~ x"});
  expect_user_error(r, {"has no data rows"});
  EXPECT_EQ(r.err.find("--where"), std::string::npos) << r.err;
}

// ---- 8. formats ----

TEST(ProcessFormats, EveryCommandWritesExactlyTheFormatsItsHelpLists) {
  const std::vector<std::string> wild{"wild", "-f", "newqua ~ rgzn | province + year", "--cluster", "province",
                                      "--test", "rgzn = 0", "--B", "99", "--no-ci"};
  const ProcRun wl = run_process(with(wild, {"--format", "latex"}));
  ASSERT_EQ(wl.status, 0) << wl.err;
  EXPECT_NE(wl.out.find("\\begin{tabular}"), std::string::npos) << wl.out;
  EXPECT_NE(wl.out.find("% SIMULATED DATA"), std::string::npos) << wl.out;
  const ProcRun dl = run_process({"describe", "--format", "latex"});
  ASSERT_EQ(dl.status, 0) << dl.err;
  EXPECT_NE(dl.out.find("\\begin{tabular}{llrrrrrr}"), std::string::npos) << dl.out;
  EXPECT_NE(dl.out.find("newqua & numeric & 360"), std::string::npos) << dl.out;
  const ProcRun dm = run_process({"describe", "--format", "markdown"});
  EXPECT_NE(dm.out.find("| newqua | numeric | 360 |"), std::string::npos) << dm.out;
  expect_user_error(run_process(with(hansen_threshold(), {"--format", "csv"})), {"--format: csv not in {text,json}"});
  const ProcRun th = run_process({"threshold", "--help"});
  EXPECT_NE(th.out.find("text | json"), std::string::npos);
  EXPECT_EQ(th.out.find("markdown"), std::string::npos);
}

TEST(ProcessFormats, EveryOutputOfTheEmbeddedDataSaysItIsSimulated) {
  const ProcRun wc = run_process({"wild", "-f", "newqua ~ rgzn | province + year", "--cluster", "province", "--test",
                                  "rgzn = 0", "--B", "99", "--no-ci", "--format", "csv"});
  ASSERT_EQ(wc.status, 0) << wc.err;
  EXPECT_NE(wc.out.find(",simulated_data\n"), std::string::npos) << wc.out;
  EXPECT_EQ(wc.out.substr(wc.out.size() - 3), ",1\n") << wc.out;
  const ProcRun dj = run_process({"describe", "--format", "json"});
  const auto j = nlohmann::json::parse(dj.out);
  EXPECT_EQ(j["simulated_data"], true);
  EXPECT_NE(j["note"].get<std::string>().find("SIMULATED"), std::string::npos);
  const ProcRun dc = run_process({"describe", "--format", "csv"});
  EXPECT_NE(dc.out.find("\"newqua\",numeric,360,"), std::string::npos) << dc.out;
  TempDir dir;
  const ProcRun t = run_process({"threshold", "--panel", "province,year", "-f", "newqua ~ urban | province", "--regime",
                                 "rgzn", "--threshold-var", "fin", "--B", "0", "--lr-curve", dir / "lr.csv",
                                 "--save-regimes", dir / "reg.csv"});
  ASSERT_EQ(t.status, 0) << t.err;
  for (const char* f : {"lr.csv", "reg.csv"}) {
    const std::string text = slurp(dir / f);
    const std::string header = text.substr(0, text.find('\n'));
    EXPECT_EQ(header.substr(header.size() - 15), ",simulated_data") << f << ": " << header;
    EXPECT_EQ(text.substr(text.size() - 3), ",1\n") << f;
  }
}

TEST(ProcessFormats, QuotesAndLineBreaksInLevelsSurviveCsvAndMarkdown) {
  TempDir dir;
  std::string csv = "id,year,y,x,g\n";
  const char* levels[] = {"plain", "say \"\"hi\"\"", "two\nlines", "a|b"};
  for (int i = 0; i < 24; ++i)
    csv += std::to_string(i % 6) + "," + std::to_string(i / 6) + "," + std::to_string((i * 7) % 5) + "," +
           std::to_string((i * 3) % 7) + ",\"" + levels[i % 4] + "\"\n";
  spit(dir / "q.csv", csv);
  const std::vector<std::string> fit{"fit", "--data", dir / "q.csv", "-f", "y ~ x + i(g, ref=\"plain\")"};
  const ProcRun c = run_process(with(fit, {"--format", "csv"}));
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_NE(c.out.find(",\"g::say \"\"hi\"\"\","), std::string::npos) << c.out;
  const ProcRun m = run_process(with(fit, {"--format", "markdown"}));
  ASSERT_EQ(m.status, 0) << m.err;
  std::istringstream lines(m.out);
  std::string line;
  bool in_table = true;
  while (std::getline(lines, line)) {
    if (line.empty()) in_table = false;
    if (in_table) {
      EXPECT_EQ(line.rfind("|", 0), 0u) << "a table row broken by a line break: " << line;
    }
  }
  EXPECT_NE(m.out.find("g::two lines"), std::string::npos) << m.out;
  EXPECT_NE(m.out.find("g::a\\|b"), std::string::npos) << m.out;
}

// ---- 9. progress and the backend line ----

TEST(ProcessProgress, ALongRunShowsProgressWithTheTimeLeft) {
  ProcOptions o;
  o.env = {"PANELBOOT_PROGRESS=always"};
  // `always` draws the line from the first batch on (the terminal's rules, with their times, are
  // ProgressReporter's unit tests): 20000 replications in batches of 1000
  const ProcRun r = run_process({"wild", "-f", "newqua ~ rgzn | province + year", "--cluster", "province", "--test",
                                 "rgzn = 0", "--B", "20000", "--chunk", "1000", "--no-ci", "--threads", "1",
                                 "--backend", "cpu", "--format", "json"},
                                o);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("panelboot: wild bootstrap of 'rgzn = 0': 5% (1000 of 20k replications), about "),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(" left"), std::string::npos) << r.err;
  // by default (stderr not a terminal here) nothing is drawn
  const ProcRun quiet = run_process({"wild", "-f", "newqua ~ rgzn | province + year", "--cluster", "province", "--test",
                                     "rgzn = 0", "--B", "999", "--no-ci"});
  ASSERT_EQ(quiet.status, 0) << quiet.err;
  EXPECT_EQ(quiet.err, "panelboot: no --data given; using the embedded simulated dataset\n");
}

TEST(ProcessProgress, TheBackendIsNamedOnlyWithVerboseOrWhenAGpuWasAskedFor) {
  const std::vector<std::string> fit{"fit", "--data", data_path("grunfeld_plm.csv"), "-f", kFitFormula};
  EXPECT_TRUE(run_process(fit).err.empty());
  EXPECT_EQ(nlohmann::json::parse(run_process(with(fit, {"--format", "json"})).out)["backend"], "cpu");
  EXPECT_NE(run_process(with(fit, {"--verbose"})).err.find("panelboot: backend: "), std::string::npos);
  const ProcRun w = run_process({"wild", "--data", data_path("grunfeld_plm.csv"), "-f", kFitFormula, "--cluster",
                                 "firm", "--test", "value = 0", "--B", "99", "--format", "json"});
  ASSERT_EQ(w.status, 0) << w.err;
  EXPECT_TRUE(w.err.empty()) << w.err;
  EXPECT_FALSE(nlohmann::json::parse(w.out)["backend"].get<std::string>().empty());
}
