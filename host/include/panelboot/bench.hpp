#pragma once
// `panelboot bench`: the engine's core workloads at a ladder of sizes on every backend asked
// for, each timed cold (the case's first run) and warm (the median, fastest and slowest of the
// later runs), with its replications per second and the rate it reaches against the
// machine's limit for the bound that applies (host/src/bench/: workloads.cpp the problems and
// their work models, machine.cpp the limits, bench.cpp the runs).
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "panelboot/backend.hpp"

namespace panelboot {

// The CPU's limits for `threads` threads: the FP64 peak, the larger of the model (the clock from
// the kernel or the hypervisor, else a documented 3.0 GHz, x the widest vector unit's lanes,
// AVX-512: 8 doubles, AVX2: 4, else 2, x 2: the build forbids FMA contraction, so a multiply and
// an add a cycle) and fp64_mul_add_rate measured now (a boost clock above the reported one, or
// two adders and two multipliers a core, as AMD's Zen cores have, go past the model); and the copy
// bandwidth measured over two arrays of `copy_bytes` each.
MachineLimits cpu_limits(int threads, std::size_t copy_bytes);
// FP64 operations per second of independent vector multiplies and adds on the widest vector unit
// (as many of each) by `threads` threads, `steps` steps of 12-16 vector operations each, the best
// of `runs` after one untimed.
double fp64_mul_add_rate(int threads, long steps, int runs);
// A STREAM-like copy (a[i] = b[i]) by every thread: bytes read plus bytes written per second, the
// best of `runs`.
double stream_copy_rate(std::size_t bytes, int runs);

struct BenchOptions {
  bool quick = false;                 // the short ladders (under 3 minutes on 2 cores)
  std::vector<std::string> backends;  // "cpu", "cuda" (the CPU runs first); empty: every available one
  std::vector<std::string> problems;  // bench_problem_names(); empty: all
  int repeats = 3;                    // warm runs per case, after the cold one
  int threads = 0;                    // as the CLI reports them (0: not known)
  std::ostream* progress = nullptr;   // a line per case; null: none
  std::uint64_t max_memory = 0;       // --max-memory (0: what the machine has)
};

// One problem at one size on one backend.
struct BenchCase {
  std::string problem, backend;
  std::string ladder;          // what the ladder varies: "B", "G", "grid", "batch", "R", "N"
  double ladder_value = 0;
  std::string size;            // e.g. "G=30, B=10^6"
  double replications = 0;     // per run: replications, sign vectors, regressions or rows
  std::string replication_unit;
  double cold_seconds = 0;     // the case's first run: its data just made, the caches and the device's
                               // memory pool not yet warm for it (the backend is made before any case)
  std::vector<double> runs;    // the warm runs' seconds
  double seconds = 0, seconds_min = 0, seconds_max = 0;  // their median, fastest, slowest
  double reps_per_s = 0;
  double flops = 0, bytes = 0;  // per run, by the work model
  std::string model;            // how they are counted
  std::string bound;            // "compute" or "memory": the larger time at the limits
  double achieved = 0, limit = 0, fraction_of_limit = 0;  // FLOP/s or bytes/s
  std::string unit;             // "FLOP/s" or "B/s"
  std::vector<double> signature;  // the run's results, compared across backends
  double tolerance = 0;            // relative; 0: bit for bit
  std::string check;               // against the CPU's run: "" (none), "identical", "within 1e-09", "DIFFERS ..."
  double cpu_over_this = 0;        // the CPU's seconds over this backend's (0 on the CPU)
  // a GPU's kernels alone (median of the warm runs; 0: not reported) against the device's floor
  // (the model's bytes at its memory bandwidth), and the whole call against the transfer floor
  // (the bytes copied up at the measured pinned host-to-device rate)
  double device_seconds = 0, device_floor_seconds = 0, transfer_floor_seconds = 0;
};

struct BenchReport {
  std::string date;  // UTC, ISO 8601
  std::string command_line;  // the run's options, as a command
  bool quick = false;
  int repeats = 0, threads = 0;
  MachineLimits cpu;
  std::vector<MachineLimits> gpus;   // the CUDA device when it runs
  std::vector<std::string> backends, problems;
  std::vector<std::string> notes;    // backends asked for but unavailable, and why
  std::vector<BenchCase> results;
  double total_seconds = 0;
};

// The problems, in the order they run: wild, wild-enum, threshold, ols-batch, power, iv-wre, fit.
const std::vector<std::string>& bench_problem_names();
// InvalidInput naming --problems or --backends for an unknown name.
void check_bench_options(const BenchOptions& o);
BenchReport run_bench(const BenchOptions& o);

}  // namespace panelboot
