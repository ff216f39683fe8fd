#pragma once
// What the process tests of long runs share (test_scale_process.cpp, test_mpi_process.cpp): runs
// of the executable, shards and merges, JSON reports compared without their timings, panels.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "helpers.hpp"
#include "process.hpp"

namespace scaletest {
using nlohmann::json;
namespace fs = std::filesystem;
using Args = std::vector<std::string>;

// A wild run of a few seconds, counts only: long enough for a checkpoint every 0.2 s to be saved
// and a signal to stop it (16 x 10^6 replications, about 2.5 s on one thread of the project's VM
// since the vectorised weights and products; 6 x 10^6 came to end before the first save).
inline const Args kLongWild = {"wild",      "-f",       "newqua ~ rgzn + urban | province + year",
                               "--cluster", "province", "--test",
                               "rgzn = 0",  "--test",   "urban = 0.1",
                               "--B",       "16000000", "--no-ci",
                               "--format",  "json"};

inline pbtest::ProcOptions slow() {
  pbtest::ProcOptions o;
  o.timeout_s = 300;
  return o;
}

inline Args with(Args a, const Args& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// Runs panelboot and requires exit 0; returns stdout.
inline std::string ok(const Args& args) {
  const pbtest::ProcRun r = pbtest::run_process(args, slow());
  EXPECT_EQ(r.status, 0) << r.err;
  return r.out;
}

// A JSON report without what differs between any two runs (seconds per stage, threads).
inline json comparable(json j) {
  if (j.is_object()) {
    j.erase("timing");
    j.erase("threads");
    for (auto& [k, v] : j.items()) v = comparable(v);
  } else if (j.is_array()) {
    for (auto& v : j) v = comparable(v);
  }
  return j;
}

// The n shards of `args` written to files (in the order given), their paths.
inline std::vector<std::string> shards(const Args& args, int n, const std::vector<int>& order = {}) {
  std::vector<std::string> parts;
  for (int k = 0; k < n; ++k) {
    const int i = order.empty() ? k + 1 : order[static_cast<std::size_t>(k)];
    const std::string part = pbtest::temp_path("_part" + std::to_string(i) + ".json");
    ok(with(args, {"--shard", std::to_string(i) + "/" + std::to_string(n), "--output", part}));
    parts.push_back(part);
  }
  return parts;
}

// `args` with the value of `name` replaced.
inline Args replaced(Args a, const std::string& name, const std::string& value) {
  for (std::size_t i = 0; i + 1 < a.size(); ++i)
    if (a[i] == name) a[i + 1] = value;
  return a;
}

inline std::string merged(const std::vector<std::string>& parts, const Args& extra = {}) {
  Args a{"merge"};
  a.insert(a.end(), parts.begin(), parts.end());
  return ok(with(a, extra));
}

// A panel of G clusters x T periods (CSV), y = 0.5 x + a cluster effect + noise.
inline std::string panel_csv(int G, int T, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  std::ostringstream s;
  s.precision(17);
  s << "id,t,x,y\n";
  for (int g = 0; g < G; ++g) {
    const double a = nd(rng);
    for (int t = 0; t < T; ++t) {
      const double x = nd(rng) + 0.3 * a;
      s << "c" << g << "," << t << "," << x << "," << 0.5 * x + a + nd(rng) * (1 + 0.5 * (g % 3)) << "\n";
    }
  }
  return pbtest::write_temp(s.str());
}

// Starts panelboot; once `file` exists, sends `sig`; returns the wait status.
inline int signal_when_file_appears(const Args& args, const std::string& file, int sig, std::string& err,
                                    const Args& launcher = {}) {
  const std::string err_file = pbtest::temp_path(".err");
  const pid_t pid = fork();
  if (pid == 0) {
    freopen(err_file.c_str(), "w", stderr);
    freopen("/dev/null", "w", stdout);
    pbtest::exec_panelboot(args, environ, launcher);
  }
  int st = 0;
  for (int i = 0; i < 30000; ++i) {
    if (waitpid(pid, &st, WNOHANG) == pid) {
      err = pbtest::file_bytes(err_file);
      return st;  // ended before the checkpoint appeared: the caller's checks fail
    }
    if (fs::exists(file)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, sig);
  waitpid(pid, &st, 0);
  err = pbtest::file_bytes(err_file);
  return st;
}

// A checkpoint's path in a folder of its own: a SIGKILL during a save leaves the save's temporary
// (.pbtmp.*) beside it, which must not land in the shared temporary folder other tests inspect.
inline std::string private_checkpoint() {
  const std::string dir = pbtest::temp_path("_ckdir");
  fs::create_directory(dir);
  return dir + "/run.ckpt";
}

}  // namespace scaletest
