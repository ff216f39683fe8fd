// Plain threads for jobs below the OpenMP team rule (cpu.hpp).
#include <pthread.h>
#include <sched.h>

#include <algorithm>

#include "backend/cpu/cpu.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace panelboot::cpu {
namespace {

// A helper thread's start (pthread_create's function): it may run on every CPU of *all again
// (where all is known), then runs *body.
struct HelperJob {
  const cpu_set_t* all;
  const std::function<void()>* body;
};
void* run_helper(void* arg) {
  const auto* job = static_cast<const HelperJob*>(arg);
  if (job->all) ::pthread_setaffinity_np(::pthread_self(), sizeof *job->all, job->all);
  (*job->body)();
  return nullptr;
}

}  // namespace

cpu_set_t helper_start_cpus(const cpu_set_t& allowed, int here) {
  cpu_set_t others = allowed;
  if (here >= 0 && here < CPU_SETSIZE) CPU_CLR(here, &others);
  return CPU_COUNT(&others) > 0 ? others : allowed;
}

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
  // The CPUs this thread may run on (a new thread inherits them): no more threads than those, so
  // that where OMP_PROC_BIND pinned the process's first thread to one, helpers do not take turns.
  cpu_set_t all;
  CPU_ZERO(&all);
  const bool known = ::sched_getaffinity(0, sizeof all, &all) == 0;
  if (known) n = std::min(n, std::max(1, CPU_COUNT(&all)));
  if (n <= 1) {
    body();
    return;
  }
  std::vector<pthread_t> helpers;
  helpers.reserve(static_cast<std::size_t>(n - 1));  // may throw: no thread started yet
  // each helper born on the other CPUs (an attribute, not a later call that it could outrun)
  pthread_attr_t attr;
  const bool have_attr = known && ::pthread_attr_init(&attr) == 0;
  bool steer = false;
  if (have_attr) {
    const cpu_set_t start = helper_start_cpus(all, ::sched_getcpu());
    steer = ::pthread_attr_setaffinity_np(&attr, sizeof start, &start) == 0;
  }
  HelperJob job{steer ? &all : nullptr, &body};
  for (int t = 1; t < n; ++t) {
    pthread_t id;
    // no thread (or no memory for one) to be had: the others take its share
    if (::pthread_create(&id, steer ? &attr : nullptr, run_helper, &job) != 0 &&
        (!steer || ::pthread_create(&id, nullptr, run_helper, &job) != 0))
      break;
    helpers.push_back(id);
  }
  if (have_attr) ::pthread_attr_destroy(&attr);
  auto join_helpers = [&] {
    for (pthread_t id : helpers) {
      // one that has not run yet may then start on this thread's CPU, free while it waits
      if (steer) ::pthread_setaffinity_np(id, sizeof all, &all);
      ::pthread_join(id, nullptr);
    }
  };
  try {
    body();
  } catch (...) {  // body must not throw; if it does, the helpers (reading job) end first
    join_helpers();
    throw;
  }
  join_helpers();
}

}  // namespace panelboot::cpu
