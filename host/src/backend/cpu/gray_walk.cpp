// Exact enumeration on the CPU by the shared Gray-code walk (kernels/gray_walk.hpp; its twin,
// cuda/gray_walk.cu, runs the same function one GPU thread per range).
#include <algorithm>

#include "backend/cpu/cpu.hpp"

namespace panelboot::cpu {
namespace {

// One Gray-code range, the shared PB_HD walk compiled with and without AVX2.
__attribute__((target_clones("avx2", "default")))
BootCounts gray_range(const kernels::GrayProblem& p, std::uint64_t lo, std::uint64_t hi) {
  return kernels::gray_walk_range(p, lo, hi);
}

// A walk of fewer steps x clusters than this runs on the calling thread (about 5 ms).
constexpr double kMinTeamWork = 1e7;

}  // namespace

BootCounts gray_walk(const kernels::GrayProblem& p, ProgressSink* progress) {
  // ranges of at most 2^20 sign vectors (under a second each), at least 256 of them; integer
  // counts, so the sum does not depend on the split or the order
  const std::uint64_t n_vec = std::uint64_t{1} << (p.n_clu - 1);
  const std::int64_t n_part = static_cast<std::int64_t>(std::max<std::uint64_t>(256, n_vec >> 20));
  const bool team = static_cast<double>(n_vec) * p.n_clu > kMinTeamWork;
  BootCounts total;
#pragma omp parallel for if (team) schedule(dynamic, 1) reduction(count_sum : total)
  for (std::int64_t part = 0; part < n_part; ++part) {
    const std::uint64_t lo = static_cast<std::uint64_t>(static_cast<unsigned __int128>(n_vec) * part / n_part);
    const std::uint64_t hi = static_cast<std::uint64_t>(static_cast<unsigned __int128>(n_vec) * (part + 1) / n_part);
    total = total + gray_range(p, lo, hi);
    if (progress) progress->advance(hi - lo);
  }
  return total;
}

}  // namespace panelboot::cpu
