// MPI ranks as a user launches them (`mpirun -np 3 panelboot ...`): the output is the single
// process's, bit for bit (wild with its CI, stored enumeration and the Gray-code walk, IV models,
// threshold, power); a plain run of the MPI build neither loads nor starts MPI; errors reach the
// user once and no rank is left waiting; a checkpointed job stopped by SIGTERM resumes on another
// rank count; a shard run by ranks merges with plain shards. Skipped (with the reason) where this
// build has no MPI or mpirun is not on PATH.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "cli/scale_helpers.hpp"
#include "panelboot/config.hpp"

namespace {
using namespace scaletest;

// OpenMPI's shared-memory transport copies between processes with process_vm_readv by default,
// which containers often forbid (ptrace rules): plain copies through shared memory instead.
bool mpi_ready() {
  setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
  return std::system("command -v mpirun >/dev/null 2>&1") == 0;
}

#define SKIP_WITHOUT_MPI()                                                            \
  do {                                                                                \
    if (!PANELBOOT_HAVE_MPI) GTEST_SKIP() << "this build has no MPI (PANELBOOT_MPI)"; \
    if (!mpi_ready()) GTEST_SKIP() << "no mpirun on PATH";                            \
  } while (0)

// mpirun of n ranks on this machine (more ranks than cores; as root in CI containers).
Args mpirun(int n) { return {"mpirun", "--oversubscribe", "--allow-run-as-root", "-np", std::to_string(n)}; }

// Under AddressSanitizer (scripts/test-sanitize) the ranks skip the leak check: OpenMPI keeps
// allocations until exit in components it has unloaded by then (unsymbolizable, so no
// suppression can name them). Plain runs, and the hand-out with ranks as threads
// (test_replications.cpp), keep the check.
std::string ranks_asan_options() {
  const char* a = std::getenv("ASAN_OPTIONS");
  return std::string("ASAN_OPTIONS=") + (a ? a : "") + ":detect_leaks=0";
}

pbtest::ProcRun ranks(int n, const Args& args, pbtest::ProcOptions o = slow()) {
  o.launcher = mpirun(n);
  o.env.push_back(ranks_asan_options());
  return pbtest::run_process(args, o);
}

std::string ok_ranks(int n, const Args& args) {
  const pbtest::ProcRun r = ranks(n, args);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(r.timed_out);
  return r.out;
}

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const Args kWild = {"wild", "-f", "newqua ~ rgzn + urban | province + year", "--cluster", "province",
                    "--test", "rgzn = 0", "--test", "urban = 0.1", "--B", "9999"};

TEST(MpiRanks, WildWithItsCiEnumerationAndIvGiveTheSingleProcessResult) {
  SKIP_WITHOUT_MPI();
  // three ranks on two cores: ranges of every size, out of order
  EXPECT_EQ(ok_ranks(3, kWild), ok(kWild));
  const json single = json::parse(ok(with(kWild, {"--format", "json"})));
  const json job = json::parse(ok_ranks(3, with(kWild, {"--format", "json"})));
  EXPECT_EQ(comparable(job), comparable(single));
  EXPECT_TRUE(job["tests"][0]["ci_low"].is_number());
  // 8 clusters: every sign vector stored; 23 clusters: the Gray-code walk, on 2 and 3 ranks
  const std::string small = panel_csv(8, 6, 21), big = panel_csv(23, 4, 22);
  const Args enumerated = {"wild", "--data", small, "-f", "y ~ x | id", "--cluster", "id", "--test", "x = 0.5",
                           "--B", "999", "--format", "json"};
  EXPECT_EQ(comparable(json::parse(ok_ranks(3, enumerated))), comparable(json::parse(ok(enumerated))));
  const Args gray = {"wild", "--data", big, "-f", "y ~ x | id", "--cluster", "id", "--test", "x = 0.5",
                     "--enumerate", "always", "--format", "json"};
  const json walk = json::parse(ok(gray));
  EXPECT_EQ(walk["tests"][0]["n_boot"], std::int64_t{1} << 23);
  EXPECT_EQ(comparable(json::parse(ok_ranks(2, gray))), comparable(walk));
  EXPECT_EQ(comparable(json::parse(ok_ranks(3, gray))), comparable(walk));
  // IV: the WRE row and the AR row with its set
  const Args iv = {"wild", "-f", "newqua ~ urban | province + year | rgzn ~ l(rgzn, 1)", "--panel", "province,year",
                   "--cluster", "province", "--test", "rgzn = 0", "--ar", "--B", "999", "--format", "json"};
  EXPECT_EQ(comparable(json::parse(ok_ranks(3, iv))), comparable(json::parse(ok(iv))));
}

TEST(MpiRanks, ThresholdAndPowerGiveTheSingleProcessResult) {
  SKIP_WITHOUT_MPI();
  const Args threshold = {"threshold", "--panel", "province,year", "-f", "newqua ~ urban + ind | province",
                          "--regime", "rgzn", "--threshold-var", "fin", "--thresholds", "2", "--B", "100",
                          "--format", "json"};
  const json t1 = json::parse(ok(threshold));
  EXPECT_EQ(comparable(json::parse(ok_ranks(3, threshold))), comparable(t1));
  EXPECT_TRUE(t1["tests"][1]["p_value"].is_number());
  const Args power = {"power", "-f", "newqua ~ rgzn + urban | province + year", "--cluster", "province",
                      "--target", "rgzn", "--split", "region", "--R", "40", "--wild-B", "99", "--effects", "0,0.002",
                      "--tests", "crve,wild", "--format", "json"};
  const json p1 = json::parse(ok(power));
  const json p3 = json::parse(ok_ranks(3, power));
  EXPECT_EQ(comparable(p3), comparable(p1));
  // the estimates' mean and SD are floating sums over every replication: bit for bit too
  ASSERT_FALSE(p1["results"].empty());
  EXPECT_EQ(p3["results"][0]["estimate_sd"], p1["results"][0]["estimate_sd"]);
  EXPECT_GT(p1["results"][0]["estimate_sd"].get<double>(), 0.0);
}

TEST(MpiRanks, APlainRunOfTheMpiBuildNeitherLoadsNorStartsMpi) {
  SKIP_WITHOUT_MPI();
  const Args threshold = {"threshold", "--panel", "province,year", "-f", "newqua ~ urban + ind | province",
                          "--regime", "rgzn", "--threshold-var", "fin", "--B", "20", "--format", "json"};
  // the dynamic loader lists every library it maps (LD_DEBUG=libs): a plain run maps no libmpi,
  // the same binary under mpirun does
  pbtest::ProcOptions o = slow();
  o.env = {"LD_DEBUG=libs"};
  const pbtest::ProcRun plain = pbtest::run_process(threshold, o);
  ASSERT_EQ(plain.status, 0) << plain.err.substr(0, 2000);
  EXPECT_EQ(plain.err.find("libmpi"), std::string::npos);
  EXPECT_EQ(plain.err.find("libpanelboot_mpi"), std::string::npos);
  const pbtest::ProcRun launched = ranks(2, threshold, o);
  ASSERT_EQ(launched.status, 0);
  EXPECT_NE(launched.err.find("libpanelboot_mpi"), std::string::npos);
  // timed against the build without MPI, interleaved: MPI's start (MPI_Init, ~0.3 s here) is
  // absent from the plain run; a margin of 0.1 s (the run itself takes ~20 ms)
  const std::string nompi = std::string(PB_BINARY_DIR) + "/panelboot_nompi";
  std::vector<double> with_mpi, without;
  for (int i = 0; i < 7; ++i)
    for (bool mpi_build : {true, false}) {
      pbtest::ProcOptions t;
      if (!mpi_build) t.exe = nompi;
      const auto t0 = std::chrono::steady_clock::now();
      ASSERT_EQ(pbtest::run_process(threshold, t).status, 0);
      (mpi_build ? with_mpi : without).push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  std::sort(with_mpi.begin(), with_mpi.end());
  std::sort(without.begin(), without.end());
  EXPECT_LT(with_mpi[3], without[3] + 0.1) << "median " << with_mpi[3] << " s against " << without[3] << " s";
}

TEST(MpiRanks, ErrorsReachTheUserOnceAndNoRankIsLeftWaiting) {
  SKIP_WITHOUT_MPI();
  pbtest::ProcOptions quick;
  quick.timeout_s = 60;
  quick.env = {ranks_asan_options()};
  // the same bad option on every rank: one line, from rank 0
  const pbtest::ProcRun bad = ranks(3, with(kWild, {"--wieght-type", "webb"}), quick);
  EXPECT_FALSE(bad.timed_out);
  EXPECT_EQ(bad.status, 2);
  EXPECT_EQ(count_of(bad.err, "panelboot: error: unknown option '--wieght-type'"), 1) << bad.err;
  EXPECT_TRUE(bad.out.empty());
  // ranks started with other options (an MPMD launch): rank 0 names the rank and the option
  Args mpmd = mpirun(1);
  mpmd.push_back(pbtest::panelboot_exe());
  mpmd.insert(mpmd.end(), kWild.begin(), kWild.end());
  mpmd.insert(mpmd.end(), {":", "-np", "1"});
  quick.launcher = mpmd;
  const pbtest::ProcRun other = pbtest::run_process(replaced(kWild, "--B", "999"), quick);
  EXPECT_FALSE(other.timed_out);
  EXPECT_EQ(other.status, 2);
  EXPECT_EQ(count_of(other.err, "panelboot: error: rank 1 runs another job than rank 0: it differs in option --B"), 1)
      << other.err;
  // a rank that cannot read its data: its own error, reported by rank 0 with its rank
  const pbtest::ProcRun missing = pbtest::run_process(with(kWild, {"--data", "/nonexistent/panel.csv"}), quick);
  EXPECT_FALSE(missing.timed_out);
  EXPECT_EQ(missing.status, 2);
  EXPECT_EQ(count_of(missing.err, "panelboot: rank 1: error: "), 1) << missing.err;
  EXPECT_NE(missing.err.find("/nonexistent/panel.csv"), std::string::npos) << missing.err;
  // a stream cannot be read by every rank
  pbtest::ProcOptions in = quick;
  in.launcher = mpirun(2);
  in.stdin_text = "a,b\n1,2\n";
  const pbtest::ProcRun stream = pbtest::run_process(with(kWild, {"--data", "-"}), in);
  EXPECT_EQ(stream.status, 2);
  EXPECT_EQ(count_of(stream.err, "under MPI every rank reads the data itself"), 1) << stream.err;
  // srun of several tasks that no PMI joins; a build without MPI started as several ranks
  pbtest::ProcOptions srun;
  srun.env = {"SLURM_STEP_ID=0", "SLURM_STEP_NUM_TASKS=4", "SLURM_PROCID=0"};
  pbtest::expect_user_error(pbtest::run_process(kWild, srun), {"srun started 4 tasks", "srun --mpi=pmix"}, 1);
  pbtest::ProcOptions nompi;
  nompi.exe = std::string(PB_BINARY_DIR) + "/panelboot_nompi";
  nompi.env = {"OMPI_COMM_WORLD_SIZE=3", "OMPI_COMM_WORLD_RANK=0"};
  pbtest::expect_user_error(pbtest::run_process(kWild, nompi), {"3 ranks", "built without MPI"}, 1);
}

TEST(MpiRanks, ACheckpointedJobStoppedBySigtermResumesOnAnotherRankCount) {
  SKIP_WITHOUT_MPI();
  const json single = json::parse(ok(kLongWild));
  const std::string cp = private_checkpoint(), out = pbtest::temp_path(".json");
  const Args run = with(kLongWild, {"--checkpoint", cp, "--checkpoint-every", "0.2", "--output", out, "--threads", "1"});
  // mpirun passes SIGTERM to every rank (and SIGKILL soon after): rank 0 saves at once
  std::string err;
  signal_when_file_appears(run, cp, SIGTERM, err, mpirun(3));
  ASSERT_TRUE(fs::exists(cp)) << err;
  EXPECT_FALSE(fs::exists(out));
  const json saved = json::parse(pbtest::file_bytes(cp));
  EXPECT_EQ(saved["kind"], "checkpoint");
  const pbtest::ProcRun resumed = ranks(2, with(run, {"--resume"}));
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_EQ(count_of(resumed.err, "resuming from checkpoint"), 1) << resumed.err;
  EXPECT_EQ(comparable(json::parse(pbtest::file_bytes(out))), comparable(single));
  EXPECT_FALSE(fs::exists(cp));
}

TEST(MpiRanks, ACheckpointThatCannotBeWrittenEndsTheJobWithItsErrorAndNoRankWaits) {
  SKIP_WITHOUT_MPI();
  // the checkpoint's folder is removed once the first save is there: the next save fails on
  // rank 0, whose coordinator still answers every worker (before the fix the job hung)
  const std::string cp = private_checkpoint(), dir = fs::path(cp).parent_path().string();
  const Args run = with(kLongWild, {"--checkpoint", cp, "--checkpoint-every", "0.2", "--threads", "1"});
  std::thread remover([&] {
    for (int i = 0; i < 30000 && !fs::exists(cp); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    fs::remove_all(dir);
  });
  pbtest::ProcOptions o;
  o.timeout_s = 120;
  const pbtest::ProcRun r = ranks(3, run, o);
  remover.join();
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(count_of(r.err, "panelboot: error: "), 1) << r.err;
  EXPECT_NE(r.err.find(dir), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(MpiRanks, AShardRunByRanksMergesWithPlainShards) {
  SKIP_WITHOUT_MPI();
  const Args args = with(kWild, {"--format", "json"});
  const std::string first = pbtest::temp_path(".json"), second = pbtest::temp_path(".json");
  ok_ranks(3, with(args, {"--shard", "1/2", "--output", first}));
  ok(with(args, {"--shard", "2/2", "--output", second}));
  EXPECT_EQ(json::parse(pbtest::file_bytes(first))["partial"], true);
  EXPECT_EQ(comparable(json::parse(merged({second, first}))), comparable(json::parse(ok(args))));
}

}  // namespace
