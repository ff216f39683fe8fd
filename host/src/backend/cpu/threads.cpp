// Plain threads for jobs below the OpenMP team rule (cpu.hpp).
#include <algorithm>
#include <system_error>
#include <thread>

#include "backend/cpu/cpu.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace panelboot::cpu {

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
  std::vector<std::thread> helpers;
  for (int t = 1; t < n; ++t) {
    try {
      helpers.emplace_back(body);
    } catch (const std::system_error&) {  // no thread to be had: the others take its share
      break;
    }
  }
  body();
  for (std::thread& h : helpers) h.join();
}

}  // namespace panelboot::cpu
