#pragma once
// `panelboot bench`'s problems (workloads.cpp): each size of each problem as a Workload, with its
// data (made before the clock starts), one run on a backend, and the work model that turns the
// run's seconds into FLOP/s or bytes/s.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "panelboot/backend.hpp"

namespace panelboot::bench {

// What one run computed and what it cost by the work model.
struct RunOutcome {
  std::vector<double> signature;  // the results compared across backends
  double flops = 0, bytes = 0;
  double ladder_value = 0;        // the size once known (threshold: the grid's points); 0: as planned
  double device_s = 0;    // a GPU's own time (its kernels, copies excluded); 0: not reported
  double host_bytes = 0;  // the bytes the call copies from host memory to a GPU
};

struct Workload {
  std::string problem, ladder, size, replication_unit, model;
  double ladder_value = 0, replications = 0;
  double memory_bytes = 0;        // estimated before prepare() allocates
  double tolerance = 0;           // relative, between backends (0: bit for bit)
  bool gpu_capable = true;        // false: the problem has no device path (the bench runs it on the CPU only)
  // makes the data, in `host`'s memory (the GPU's pinned memory when a GPU runs); not timed
  std::function<void(const Backend& host)> prepare;
  std::function<RunOutcome(const Backend&)> run;
  std::function<void()> release;  // frees the data
};

// The sizes of `problem` (bench_problem_names()), short with `quick`; the engine's own memory
// checks read `max_memory` (--max-memory; 0: what the machine has).
std::vector<Workload> workloads_of(const std::string& problem, bool quick, std::uint64_t max_memory);

}  // namespace panelboot::bench
