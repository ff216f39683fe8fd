// Plain threads for jobs below the OpenMP team rule (cpu.hpp).
#include <sched.h>

#include <algorithm>
#include <thread>

#include "backend/cpu/cpu.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace panelboot::cpu {
namespace {

// The CPUs this thread may run on (its affinity mask; a new std::thread inherits it): one where
// OMP_PROC_BIND pinned the process's first thread, so that helpers there would only take turns.
int cpus_of_this_thread() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1 << 20;  // unknown: no cap
  return std::max(1, CPU_COUNT(&set));
}

}  // namespace

int max_threads() {
#ifdef _OPENMP
  return std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

int light_team_size(double work, int max_threads) {
  const double n = std::min(static_cast<double>(max_threads), work / kLightThreadWork);
  return n >= 2 ? static_cast<int>(n) : 1;
}

void on_threads(int n, const std::function<void()>& body) {
  n = std::min(n, cpus_of_this_thread());
  std::vector<std::thread> helpers;
  helpers.reserve(
      static_cast<std::size_t>(std::max(0, n - 1)));  // may throw: no thread started yet
  for (int t = 1; t < n; ++t) {
    try {
      helpers.emplace_back(body);
    } catch (...) {  // no thread (or no memory for one) to be had: the others take its share
      break;
    }
  }
  body();
  for (std::thread& h : helpers) h.join();
}

}  // namespace panelboot::cpu
