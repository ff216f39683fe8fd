// Long runs split and resumed, as a user runs them: `--shard i/n` parts merged by `panelboot merge`
// give exactly the single run's output (every format; wild with its CI, enumeration and the
// Gray-code walk, threshold, power); merge refuses a missing, duplicated, overlapping or foreign
// part; a checkpointed run killed by SIGKILL resumes to the uninterrupted result, SIGTERM writes
// the checkpoint and exits 143, and a checkpoint from another run is refused.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "cli/scale_helpers.hpp"
#include "helpers.hpp"
#include "process.hpp"

namespace {
using namespace scaletest;

const Args kWild = {"wild", "-f", "newqua ~ rgzn + urban | province + year", "--cluster", "province",
                    "--test", "rgzn = 0", "--test", "urban = 0.1", "--B", "999"};

TEST(Shards, WildWithItsCiMergesToTheSingleRunInEveryFormat) {
  const std::vector<std::string> parts = shards(kWild, 3, {2, 3, 1});
  for (const std::string fmt : {"text", "markdown", "latex", "csv"})
    EXPECT_EQ(merged(parts, {"--format", fmt}), ok(with(kWild, {"--format", fmt}))) << fmt;
  const json single = json::parse(ok(with(kWild, {"--format", "json"})));
  const json merge = json::parse(merged(parts, {"--format", "json"}));
  EXPECT_EQ(comparable(merge), comparable(single));
  ASSERT_EQ(merge["tests"].size(), 2u);
  EXPECT_TRUE(merge["tests"][0]["ci_low"].is_number());
  EXPECT_EQ(merge["tests"][1]["n_boot"], 999);
  // one shard (n = 1) is the single run too, and a part says it is partial
  const std::vector<std::string> one = shards(kWild, 1);
  EXPECT_EQ(comparable(json::parse(merged(one, {"--format", "json"}))), comparable(single));
  const json part = json::parse(pbtest::file_bytes(parts[0]));
  EXPECT_EQ(part["partial"], true);
  EXPECT_EQ(part["run"]["shard"]["count"], 3);
  EXPECT_EQ(part["tasks"][0]["width"], 5);  // n0, d0, n1, d1, d2: the CI's pieces
}

TEST(Shards, EnumerationAndTheGrayWalkMergeToTheSingleRun) {
  // 8 clusters: every sign vector stored (with the CI); 23 clusters: the Gray-code walk's counts
  const std::string small = panel_csv(8, 6, 11), big = panel_csv(23, 4, 12);
  const Args enumerated = {"wild", "--data", small, "-f", "y ~ x | id", "--cluster", "id", "--test", "x = 0.5",
                           "--B", "999", "--format", "json"};
  const json single = json::parse(ok(enumerated));
  EXPECT_EQ(single["tests"][0]["enumerated"], true);
  EXPECT_EQ(comparable(json::parse(merged(shards(enumerated, 3)))), comparable(single));
  const Args gray = {"wild", "--data", big, "-f", "y ~ x | id", "--cluster", "id", "--test", "x = 0.5",
                     "--enumerate", "always", "--format", "json"};
  const json walk = json::parse(ok(gray));
  EXPECT_EQ(walk["tests"][0]["n_boot"], std::int64_t{1} << 23);
  // 4 shards: cuts inside the walk's 2^22 vectors, each on a block of the walk's restarts
  EXPECT_EQ(comparable(json::parse(merged(shards(gray, 4, {4, 1, 3, 2})))), comparable(walk));
}

TEST(Shards, ThresholdAndPowerMergeToTheSingleRun) {
  const Args threshold = {"threshold", "--panel", "province,year", "-f", "newqua ~ urban + ind | province",
                          "--regime", "rgzn", "--threshold-var", "fin", "--thresholds", "2", "--B", "50",
                          "--format", "json"};
  const json t1 = json::parse(ok(threshold));
  EXPECT_EQ(comparable(json::parse(merged(shards(threshold, 3)))), comparable(t1));
  const Args power = {"power", "-f", "newqua ~ rgzn + urban | province + year", "--cluster", "province",
                      "--target", "rgzn", "--split", "region", "--R", "30", "--wild-B", "99", "--effects", "0,0.002",
                      "--tests", "crve,wild"};
  const std::vector<std::string> parts = shards(with(power, {"--format", "json"}), 4, {3, 1, 4, 2});
  const json p1 = json::parse(ok(with(power, {"--format", "json"})));
  const json pm = json::parse(merged(parts));
  EXPECT_EQ(comparable(pm), comparable(p1));
  // the estimates' mean and SD (floating sums over every replication) came through bit for bit
  EXPECT_EQ(pm["results"][0]["estimate_sd"], p1["results"][0]["estimate_sd"]);
  EXPECT_GT(pm["results"][0]["estimate_sd"].get<double>(), 0.0);
  EXPECT_EQ(merged(parts, {"--format", "markdown"}), ok(with(power, {"--format", "markdown"})));
}

TEST(Shards, DesignsDifferencesSideFilesAndIvModelsMergeToTheSingleRun) {
  // power on synthetic designs (x draws per design) and with the difference test
  const Args design = {"power", "--design", "clusters=8,periods=6,obs=48,rho_x=0.5,rho_u=0.5", "--effects", "0,0.2",
                       "--tests", "crve,wild", "--R", "24", "--wild-B", "99", "--format", "json"};
  EXPECT_EQ(comparable(json::parse(merged(shards(design, 3)))), comparable(json::parse(ok(design))));
  const Args diff = {"power", "-f", "newqua ~ rgzn + urban | province + year", "--cluster", "province", "--target",
                     "rgzn", "--split", "devlevel", "--tests", "crve,wild,diff", "--R", "20", "--wild-B", "99",
                     "--effects", "0", "--format", "json"};
  EXPECT_EQ(comparable(json::parse(merged(shards(diff, 2)))), comparable(json::parse(ok(diff))));
  // threshold's side files are written by merge, as the single run writes them
  const std::string curve_single = pbtest::temp_path(".csv"), curve_merged = pbtest::temp_path(".csv");
  const Args threshold = {"threshold", "--panel", "province,year", "-f", "newqua ~ urban | province", "--regime", "rgzn",
                          "--threshold-var", "fin", "--B", "40"};
  ok(with(threshold, {"--lr-curve", curve_single}));
  const std::vector<std::string> parts = shards(with(threshold, {"--lr-curve", curve_merged}), 2);
  EXPECT_FALSE(fs::exists(curve_merged));  // not by a shard
  merged(parts);
  EXPECT_EQ(pbtest::file_bytes(curve_merged), pbtest::file_bytes(curve_single));
  // an IV model: the WRE row and the AR row with their sets; and exactly enumerated (G = 8)
  const Args iv = {"wild", "-f", "newqua ~ urban | province + year | rgzn ~ l(rgzn, 1)", "--panel", "province,year",
                   "--cluster", "province", "--test", "rgzn = 0", "--ar", "--B", "399", "--format", "json"};
  const json iv_single = json::parse(ok(iv));
  ASSERT_EQ(iv_single["tests"].size(), 2u);
  EXPECT_EQ(comparable(json::parse(merged(shards(iv, 3, {3, 1, 2})))), comparable(iv_single));
  const Args iv_enum = with(iv, {"--where", "region == \"Central\""});
  const json iv_enum_single = json::parse(ok(iv_enum));
  EXPECT_EQ(iv_enum_single["tests"][0]["enumerated"], true);
  EXPECT_EQ(comparable(json::parse(merged(shards(iv_enum, 2)))), comparable(iv_enum_single));
}

TEST(Shards, MergeRefusesMissingDuplicatedOverlappingAndForeignParts) {
  const std::vector<std::string> parts = shards(kWild, 3);
  pbtest::expect_user_error(pbtest::run_process({"merge", parts[0], parts[2]}), {"shard 2/3 missing"});
  pbtest::expect_user_error(pbtest::run_process({"merge", parts[0], parts[1], parts[1], parts[2]}),
                            {"are both shard 2/3"});
  // another seed, another option, other data: named
  const std::vector<std::string> seeded = shards(with(kWild, {"--seed", "7"}), 3);
  pbtest::expect_user_error(pbtest::run_process({"merge", parts[0], parts[1], seeded[2]}), {"different runs", "--seed"});
  const std::vector<std::string> other_b = shards(replaced(kWild, "--B", "998"), 3);
  pbtest::expect_user_error(pbtest::run_process({"merge", parts[0], other_b[1], parts[2]}), {"different runs", "--B"});
  const Args on_file = {"wild", "--data", panel_csv(12, 5, 3), "-f", "y ~ x | id", "--cluster", "id", "--test", "x = 0"};
  Args on_other = on_file;
  on_other[2] = panel_csv(12, 5, 4);
  const std::vector<std::string> a = shards(on_file, 2), b = shards(on_other, 2);
  pbtest::expect_user_error(pbtest::run_process({"merge", a[0], b[1]}), {"different runs", "the data"});
  // merge reads the data again: moved, it is named with --data; changed, it is refused
  const std::string moved = pbtest::temp_path(".csv");
  fs::copy_file(on_file[2], moved);
  fs::remove(on_file[2]);
  pbtest::expect_user_error(pbtest::run_process({"merge", a[0], a[1]}), {"--data"});
  EXPECT_EQ(pbtest::run_process({"merge", a[0], a[1], "--data", moved}).status, 0);
  pbtest::expect_user_error(pbtest::run_process({"merge", a[0], a[1], "--data", on_other[2]}),
                            {"not the data the shards ran on"});
  // a relative --data: merge started in another folder runs the command in the shards' folder,
  // so the report (its data name included) is the single run's
  pbtest::ProcOptions in_data_folder = slow();
  in_data_folder.cwd = fs::path(moved).parent_path().string();
  const std::string name = fs::path(moved).filename().string();
  const Args relative = {"wild", "--data", name, "-f", "y ~ x | id", "--cluster", "id", "--test", "x = 0", "--format", "json"};
  std::vector<std::string> rel_parts;
  for (const std::string i : {"1", "2"}) {
    rel_parts.push_back(pbtest::temp_path("_rel" + i + ".json"));
    ASSERT_EQ(pbtest::run_process(with(relative, {"--shard", i + "/2", "--output", rel_parts.back()}), in_data_folder).status, 0);
  }
  const pbtest::ProcRun rel_single = pbtest::run_process(relative, in_data_folder);
  pbtest::ProcOptions elsewhere = slow();
  elsewhere.cwd = "/";
  const pbtest::ProcRun rel_merged = pbtest::run_process({"merge", rel_parts[0], rel_parts[1]}, elsewhere);
  ASSERT_EQ(rel_merged.status, 0) << rel_merged.err;
  EXPECT_EQ(comparable(json::parse(rel_merged.out)), comparable(json::parse(rel_single.out)));
  // a shard count that differs, and ranges that overlap
  const std::vector<std::string> halves = shards(kWild, 2);
  pbtest::expect_user_error(pbtest::run_process({"merge", parts[0], halves[1]}), {"shard count"});
  json bad = json::parse(pbtest::file_bytes(parts[1]));
  for (auto& t : bad["tasks"])
    for (auto& s : t["segments"]) {
      s["begin"] = s["begin"].get<std::uint64_t>() - 1;
      s["end"] = s["end"].get<std::uint64_t>() - 1;
    }
  const std::string overlapping = pbtest::write_temp(bad.dump(), ".json");
  pbtest::expect_user_error(pbtest::run_process({"merge", parts[0], overlapping, parts[2]}), {"overlap"});
  // not a part at all; a part whose header or counts were damaged: one line, exit 2, never a crash
  pbtest::expect_user_error(pbtest::run_process({"merge", pbtest::write_temp("{}", ".json")}),
                            {"not a panelboot partial result"});
  json damaged = json::parse(pbtest::file_bytes(parts[0]));
  damaged["run"].erase("checksums");
  pbtest::expect_user_error(pbtest::run_process({"merge", pbtest::write_temp(damaged.dump(), ".json"), parts[1], parts[2]}),
                            {"run header", "data"});
  damaged = json::parse(pbtest::file_bytes(parts[0]));
  damaged["run"]["shard"]["count"] = 1000000000000000ULL;
  pbtest::expect_user_error(pbtest::run_process({"merge", pbtest::write_temp(damaged.dump(), ".json")}), {"shard"});
  damaged = json::parse(pbtest::file_bytes(parts[0]));
  damaged["run"]["argv"][0] = "merge";
  pbtest::expect_user_error(pbtest::run_process({"merge", pbtest::write_temp(damaged.dump(), ".json")}), {"argv"});
  damaged = json::parse(pbtest::file_bytes(parts[0]));
  damaged["tasks"][0]["segments"][0]["counts"][3] = -400;
  pbtest::expect_user_error(pbtest::run_process({"merge", pbtest::write_temp(damaged.dump(), ".json"), parts[1], parts[2]}),
                            {"count"});
  // merge never writes over one of its parts
  pbtest::expect_user_error(pbtest::run_process({"merge", parts[0], parts[1], parts[2], "--output", parts[1]}), {"--output"});
}

TEST(Checkpoint, KilledAfterTheFirstCheckpointResumesToTheUninterruptedResult) {
  const json single = json::parse(ok(kLongWild));
  const std::string cp = private_checkpoint(), out = pbtest::temp_path(".json");
  const Args run = with(kLongWild, {"--checkpoint", cp, "--checkpoint-every", "0.2", "--output", out});
  std::string err;
  const int st = signal_when_file_appears(run, cp, SIGKILL, err);
  ASSERT_TRUE(WIFSIGNALED(st)) << "the run ended before it was killed: " << err;
  ASSERT_TRUE(fs::exists(cp));
  EXPECT_FALSE(fs::exists(out));
  const json saved = json::parse(pbtest::file_bytes(cp));
  EXPECT_EQ(saved["kind"], "checkpoint");
  // the same command without --resume refuses to start over the checkpoint
  pbtest::expect_user_error(pbtest::run_process(run), {"exists", "--resume"});
  // resumed on one thread: the uninterrupted result, and the checkpoint is gone
  const pbtest::ProcRun resumed = pbtest::run_process(with(run, {"--resume", "--threads", "1"}), slow());
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resuming from checkpoint"), std::string::npos) << resumed.err;
  EXPECT_EQ(comparable(json::parse(pbtest::file_bytes(out))), comparable(single));
  EXPECT_FALSE(fs::exists(cp));
}

TEST(Checkpoint, SigtermWritesTheCheckpointAndExits143ThenResumeFinishes) {
  const json single = json::parse(ok(kLongWild));
  const std::string cp = private_checkpoint(), out = pbtest::temp_path(".json");
  const Args run = with(kLongWild, {"--checkpoint", cp, "--checkpoint-every", "0.2", "--output", out});
  std::string err;
  const int st = signal_when_file_appears(run, cp, SIGTERM, err);
  ASSERT_TRUE(WIFEXITED(st)) << err;
  EXPECT_EQ(WEXITSTATUS(st), 143) << err;
  EXPECT_NE(err.find("interrupted by SIGTERM"), std::string::npos) << err;
  EXPECT_NE(err.find("--resume"), std::string::npos) << err;
  const json saved = json::parse(pbtest::file_bytes(cp));
  std::uint64_t done = 0;
  for (const json& t : saved["tasks"])
    for (const json& s : t["segments"]) done += s["end"].get<std::uint64_t>() - s["begin"].get<std::uint64_t>();
  EXPECT_GT(done, 0u);
  // stopped between blocks of the first test (6,000,000 replications), not at its end
  EXPECT_LT(done, 6000000u);
  // a checkpoint of other options, data or seed is refused, naming what differs
  pbtest::expect_user_error(pbtest::run_process(with(with(kLongWild, {"--checkpoint", cp, "--resume"}), {"--seed", "5"})),
                            {"another run", "--seed"});
  pbtest::expect_user_error(
      pbtest::run_process(replaced(with(kLongWild, {"--checkpoint", cp, "--resume"}), "--B", "5000000")),
      {"another run", "--B"});
  ASSERT_EQ(pbtest::run_process(with(run, {"--resume"}), slow()).status, 0);
  EXPECT_EQ(comparable(json::parse(pbtest::file_bytes(out))), comparable(single));
}

TEST(Checkpoint, ASymlinkOrDeviceIsRefusedAndAShardsCheckpointIsRemovedWhenDone) {
  const Args small = {"wild", "-f", "newqua ~ rgzn | province + year", "--cluster", "province", "--test", "rgzn = 0",
                      "--B", "999", "--no-ci", "--format", "json"};
  const std::string target = pbtest::temp_path(".ckpt"), link = pbtest::temp_path(".lnk");
  fs::create_symlink(target, link);  // dangling
  pbtest::expect_user_error(pbtest::run_process(with(small, {"--checkpoint", link})), {"symbolic link"});
  pbtest::expect_user_error(pbtest::run_process(with(small, {"--checkpoint", "/dev/null", "--resume"})),
                            {"not a regular file"});
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_FALSE(fs::exists(target));
  // a shard with a checkpoint: its partial result, then no checkpoint left behind
  const std::string cp = pbtest::temp_path(".ckpt"), part = pbtest::temp_path(".json");
  ok(with(small, {"--shard", "2/2", "--checkpoint", cp, "--output", part}));
  EXPECT_FALSE(fs::exists(cp));
  EXPECT_EQ(json::parse(pbtest::file_bytes(part))["run"]["shard"]["index"], 2);
  const std::string first = pbtest::temp_path(".json");
  ok(with(small, {"--shard", "1/2", "--output", first}));
  EXPECT_EQ(comparable(json::parse(merged({first, part}))), comparable(json::parse(ok(small))));
}

TEST(Checkpoint, ResumeWithoutACheckpointStartsAfreshAndWildNeedsNoCi) {
  const std::string cp = pbtest::temp_path(".ckpt");
  const Args small = {"wild", "-f", "newqua ~ rgzn | province + year", "--cluster", "province", "--test", "rgzn = 0",
                      "--B", "999", "--no-ci", "--format", "json"};
  const pbtest::ProcRun r = pbtest::run_process(with(small, {"--checkpoint", cp, "--resume"}), slow());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("starting afresh"), std::string::npos) << r.err;
  EXPECT_EQ(comparable(json::parse(r.out)), comparable(json::parse(ok(small))));
  EXPECT_FALSE(fs::exists(cp));
  Args with_ci = small;
  with_ci.erase(with_ci.begin() + 9);  // --no-ci
  pbtest::expect_user_error(pbtest::run_process(with(with_ci, {"--checkpoint", cp})), {"--checkpoint", "--no-ci"});
  pbtest::expect_user_error(pbtest::run_process(with(small, {"--resume"})), {"--resume", "--checkpoint"});
}

// Runs of about half a second here, killed once their first checkpoint is on disk.
TEST(Checkpoint, ThresholdPowerAndIvResumeToTheUninterruptedResult) {
  const Args threshold = {"threshold", "--panel", "province,year", "-f", "newqua ~ urban + ind | province",
                          "--regime", "rgzn", "--threshold-var", "fin", "--thresholds", "2", "--B", "150000",
                          "--format", "json"};
  const Args power = {"power", "-f", "newqua ~ rgzn + urban | province + year", "--cluster", "province", "--target",
                      "rgzn", "--split", "region", "--R", "4000", "--wild-B", "199", "--tests", "crve,wild",
                      "--effects", "0,0.002", "--format", "json"};
  const Args iv = {"wild", "-f", "newqua ~ urban | province + year | rgzn ~ l(rgzn, 1)", "--panel", "province,year",
                   "--cluster", "province", "--test", "rgzn = 0", "--ar", "--B", "300000", "--no-ci", "--format", "json"};
  for (const Args& args : {threshold, power, iv}) {
    SCOPED_TRACE(args[0]);
    const json single = json::parse(ok(args));
    const std::string cp = private_checkpoint(), out = pbtest::temp_path(".json");
    const Args run = with(args, {"--checkpoint", cp, "--checkpoint-every", "0.1", "--output", out});
    std::string err;
    const int st = signal_when_file_appears(with(run, {"--threads", "1"}), cp, SIGKILL, err);
    ASSERT_TRUE(WIFSIGNALED(st)) << "the run ended before it was killed: " << err;
    const pbtest::ProcRun resumed = pbtest::run_process(with(run, {"--resume", "--threads", "2"}), slow());
    ASSERT_EQ(resumed.status, 0) << resumed.err;
    EXPECT_EQ(comparable(json::parse(pbtest::file_bytes(out))), comparable(single));
  }
}

}  // namespace
