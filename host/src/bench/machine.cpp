// The CPU's limits for `panelboot bench` (panelboot/bench.hpp): its peak FP64 rate from the
// cores, the clock and its widest vector unit, and its memory bandwidth measured by a STREAM-like
// copy in the same run.
#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "panelboot/bench.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/timing.hpp"

namespace panelboot {
namespace {

// Used when neither the kernel nor the hypervisor tells the clock (README, "panelboot bench").
constexpr double kDocumentedClockHz = 3.0e9;

std::string cpuinfo_field(const std::string& key) {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.compare(0, key.size(), key) != 0) continue;
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    return v;
  }
  return "";
}

// The clock in Hz and where it came from: the kernel's maximum frequency, the "@ 2.60GHz" of the
// model name, the hypervisor's "cpu MHz", else the documented constant.
std::pair<double, std::string> cpu_clock(const std::string& model) {
  std::ifstream maxf("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
  double khz = 0;
  if (maxf >> khz && khz > 0) return {khz * 1e3, "cpufreq cpuinfo_max_freq"};
  const std::size_t at = model.find('@');
  if (at != std::string::npos) {
    const double ghz = std::atof(model.c_str() + at + 1);
    if (ghz > 0) return {ghz * 1e9, "the model name"};
  }
  const double mhz = std::atof(cpuinfo_field("cpu MHz").c_str());
  if (mhz > 0) return {mhz * 1e6, "/proc/cpuinfo cpu MHz (as the hypervisor reports it)"};
  return {kDocumentedClockHz, "not reported: a documented 3.0 GHz"};
}

// FP64 lanes of the CPU's widest vector unit: the machine's limit, whether or not a kernel uses
// it (the threshold kernels carry AVX-512 clones, the Gray walk AVX2 ones; the rest is built for
// the baseline, SSE2).
int fp64_lanes() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") ? 8 : __builtin_cpu_supports("avx2") ? 4 : 2;
}

// Physical cores: the distinct (package, core) pairs of the online CPUs in sysfs; 0 when unknown.
int physical_cores() {
  std::vector<std::pair<int, int>> seen;
  for (int cpu = 0; cpu < 4096; ++cpu) {
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::ifstream pkg(dir + "physical_package_id"), core(dir + "core_id");
    int p = 0, c = 0;
    if (!(pkg >> p) || !(core >> c)) {
      if (cpu > 0 && !std::ifstream(dir + "../online")) break;  // past the last CPU
      continue;  // an offline CPU has no topology
    }
    if (std::find(seen.begin(), seen.end(), std::make_pair(p, c)) == seen.end()) seen.emplace_back(p, c);
  }
  return static_cast<int>(seen.size());
}

}  // namespace

double stream_copy_rate(std::size_t bytes, int runs) {
  const std::size_t n = std::max<std::size_t>(bytes / sizeof(double), 1);
  std::unique_ptr<double[]> a(new double[n]), b(new double[n]);
  // first touch by the threads that copy, as STREAM does
#pragma omp parallel for schedule(static)
  for (std::size_t i = 0; i < n; ++i) {
    a[i] = 0.0;
    b[i] = static_cast<double>(i);
  }
  double best = 0;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = Clock::now();
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < n; ++i) a[i] = b[i];
    const double s = seconds_since(t0);
    if (s > 0) best = std::max(best, 2.0 * static_cast<double>(n * sizeof(double)) / s);
    b[r % n] = a[(r + 1) % n];  // the copy is used, so it is not elided
  }
  return best;
}

MachineLimits cpu_limits(int threads, std::size_t copy_bytes) {
  MachineLimits m;
  m.device = "cpu";
  m.name = cpuinfo_field("model name");
  if (m.name.empty()) m.name = "unknown CPU";
  // the threads in use, at most the physical cores (a core's second hardware thread adds no FP64 unit)
  const int cores = physical_cores();
  m.units = std::max(cores > 0 ? std::min(threads, cores) : threads, 1);
  m.fp64_lanes = fp64_lanes();
  const auto [hz, source] = cpu_clock(m.name);
  m.clock_hz = hz;
  m.clock_source = source;
  m.fp64_flops = m.units * static_cast<double>(m.fp64_lanes) * 2.0 * m.clock_hz;
  m.bytes_per_s = stream_copy_rate(copy_bytes, 5);
  m.bytes_source = "STREAM-like copy of 2 x " + format_bytes(static_cast<double>(copy_bytes)) + " by " +
                   std::to_string(std::max(threads, 1)) + " threads (read + write), best of 5, measured in this run";
  return m;
}

}  // namespace panelboot
