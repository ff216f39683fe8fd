// The CPU's limits for `panelboot bench` (panelboot/bench.hpp): its peak FP64 rate, the larger of
// a model (cores, clock, widest vector unit) and independent vector multiplies and adds timed in
// the same run, and its memory bandwidth measured by a STREAM-like copy in the same run.
#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "panelboot/bench.hpp"
#include "panelboot/kernels/hd.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/timing.hpp"

namespace panelboot {
namespace {

// Used when neither the kernel nor the hypervisor tells the clock (README, "panelboot bench").
constexpr double kDocumentedClockHz = 3.0e9;
// Steps of fp64_mul_add_rate's chains a thread: about 10 ms a run at 3 GHz, 16 vector operations
// a step issued two a cycle; the best of kMulAddRuns runs is the rate.
constexpr long kMulAddSteps = 4000000;
constexpr int kMulAddRuns = 7;
// The chains of multiplies (and as many of adds) a register file holds with the two constants:
// 32 vector registers with AVX-512, 16 without.
constexpr int kChainsAvx512 = 8, kChainsNarrow = 6;

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

// K chains of vector multiplies and K of vector adds, independent of each other, `steps` steps
// each (a multiply by a factor near 1 and an add of a small constant: no overflow, no subnormal):
// what a core can issue of the two when no dependency waits. Inlined into each ISA's function.
template <class V, int K>
PB_INLINE double mul_add_chains(long steps) {
  V m[K], a[K];
  const V f = V{} + 1.0000001, g = V{} + 1e-9;
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) {
    m[k] = V{} + (1.0 + k);
    a[k] = V{} + static_cast<double>(k);
  }
  for (long i = 0; i < steps; ++i) {
#pragma GCC unroll 16
    for (int k = 0; k < K; ++k) {
      m[k] *= f;
      a[k] += g;
    }
  }
  V s = V{};
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) s += m[k] + a[k];
  double t = 0;
  for (std::size_t l = 0; l < sizeof(V) / sizeof(double); ++l) t += s[l];
  return t;
}

// The chains on each vector unit; returns a value that depends on every chain.
__attribute__((target("avx512f"))) double mul_add_avx512(long steps) {
  typedef double V __attribute__((vector_size(64)));
  return mul_add_chains<V, kChainsAvx512>(steps);
}
__attribute__((target("avx2"))) double mul_add_avx2(long steps) {
  typedef double V __attribute__((vector_size(32)));
  return mul_add_chains<V, kChainsNarrow>(steps);
}
double mul_add_sse2(long steps) {
  typedef double V __attribute__((vector_size(16)));
  return mul_add_chains<V, kChainsNarrow>(steps);
}

}  // namespace

double fp64_mul_add_rate(int threads, long steps, int runs) {
  const int lanes = fp64_lanes(), chains = lanes == 8 ? kChainsAvx512 : kChainsNarrow;
  threads = std::max(threads, 1);
  double best = 0, sink = 0;
  // one run untimed first: a new thread may start beside its parent until Linux moves it
  for (int r = -1; r < runs; ++r) {
    int ran = 0;  // the threads the team had (fewer under OMP_THREAD_LIMIT, none without OpenMP)
    const auto t0 = Clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink, ran)
    {
      sink += lanes == 8   ? mul_add_avx512(steps)
              : lanes == 4 ? mul_add_avx2(steps)
                           : mul_add_sse2(steps);
      ++ran;
    }
    const double s = seconds_since(t0);
    const double flops = 2.0 * ran * static_cast<double>(steps) * chains * lanes;
    if (s > 0 && r >= 0) best = std::max(best, flops / s);
  }
  volatile double keep = sink;  // the chains' values are used, so they are not elided
  (void)keep;
  return best;
}

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
  const double model = fp64_model_flops(m);
  m.fp64_flops_measured = fp64_mul_add_rate(threads, kMulAddSteps, kMulAddRuns);
  m.fp64_flops = std::max(model, m.fp64_flops_measured);
  const std::string measured = "independent vector multiplies and adds on " +
                               std::to_string(std::max(threads, 1)) + " threads, best of " +
                               std::to_string(kMulAddRuns) + ", in this run";
  m.fp64_source = m.fp64_flops_measured > model
                      ? "measured: " + measured + " (above the model, units x lanes x 2 x clock)"
                      : "the model: units x lanes x 2 x clock (above the " + measured + ")";
  m.bytes_per_s = stream_copy_rate(copy_bytes, 5);
  m.bytes_source = "STREAM-like copy of 2 x " + format_bytes(static_cast<double>(copy_bytes)) + " by " +
                   std::to_string(std::max(threads, 1)) + " threads (read + write), best of 5, measured in this run";
  return m;
}

}  // namespace panelboot
