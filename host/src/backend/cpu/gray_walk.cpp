// Exact enumeration on the CPU by the shared Gray-code walk (kernels/gray_walk.hpp; its twin,
// cuda/gray_walk.cu, runs the same function one GPU thread per range).
#include <algorithm>

#include "backend/cpu/cpu.hpp"

namespace panelboot::cpu {
namespace {

// Whole blocks walked by the arithmetic of kernels::gray_walk_range, operation for operation (so
// the same counts), with H's columns padded to a multiple of eight rows: the update of y runs in
// whole vectors, the padding rows of y (never read) absorbing the extra lanes.
constexpr int kPad = 8;
constexpr int kPadded = (kernels::kMaxGrayClusters + kPad - 1) / kPad * kPad;

inline __attribute__((always_inline)) BootCounts gray_padded_block(const kernels::GrayProblem& p,
                                                                   const double* Hp, int Gp,
                                                                   std::uint64_t m0) {
  constexpr std::uint64_t K = kernels::kGrayBlock;
  const kernels::PairCounter pc(p.t, p.tol, p.inclusive);
  double v[kPadded], y[kPadded] = {};
  double num, den;
  kernels::gray_state(p, m0, v, y, num, den);
  BootCounts c;
  for (std::uint64_t s = 1;; ++s) {
    pc.add(num, den, c);
    if (s == K) break;
    const int g = kernels::lowest_bit(s) + 1;
    const double* hg = Hp + static_cast<std::size_t>(g) * Gp;
    const double dv = -2.0 * v[g];
    v[g] = -v[g];
    num += dv * p.C[g];
    den += 2 * dv * y[g] + dv * dv * hg[g];
    for (int a = 0; a < Gp; ++a) y[a] += dv * hg[a];
  }
  return c;
}

// Vectors [lo, hi) (lo on a block): whole blocks by the padded walk, a short last block by the
// shared PB_HD walk; compiled for AVX-512, AVX2 and the baseline (the update of y is element by
// element and num, den are scalars: every clone gives the same bits).
__attribute__((target_clones("avx512f", "avx2", "default"))) BootCounts gray_range(
    const kernels::GrayProblem& p, std::uint64_t lo, std::uint64_t hi) {
  const int G = p.n_clu, Gp = (G + kPad - 1) / kPad * kPad;
  double Hp[kPadded * kernels::kMaxGrayClusters] = {};
  for (int g = 0; g < G; ++g)
    for (int a = 0; a < G; ++a)
      Hp[static_cast<std::size_t>(g) * Gp + a] = p.H[static_cast<std::size_t>(g) * G + a];
  BootCounts total;
  for (; lo + kernels::kGrayBlock <= hi; lo += kernels::kGrayBlock)
    total = total + gray_padded_block(p, Hp, Gp, lo);
  return total + kernels::gray_walk_range(p, lo, hi);
}

// A walk of fewer steps x clusters than this runs on the calling thread (about 5 ms).
constexpr double kMinTeamWork = 1e7;

}  // namespace

BootCounts gray_walk(const kernels::GrayProblem& p, ProgressSink* progress) {
  // parts of whole blocks (kernels::kGrayBlock vectors), at most 2^20 vectors (under a second)
  // each, at least 256 of them when there are that many blocks; integer counts, and every block's
  // walk starts exactly, so the sum does not depend on the split or the order
  const std::uint64_t end = kernels::gray_end(p), blocks = kernels::gray_blocks(p);
  const std::uint64_t per_part = std::clamp<std::uint64_t>(blocks / 256, 1, (std::uint64_t{1} << 20) / kernels::kGrayBlock);
  const std::int64_t n_part = static_cast<std::int64_t>((blocks + per_part - 1) / per_part);
  const bool team = static_cast<double>(end - p.lo) * p.n_clu > kMinTeamWork;
  BootCounts total;
#pragma omp parallel for if (team) schedule(dynamic, 1) reduction(count_sum : total)
  for (std::int64_t part = 0; part < n_part; ++part) {
    const std::uint64_t lo = p.lo + static_cast<std::uint64_t>(part) * per_part * kernels::kGrayBlock;
    const std::uint64_t hi = std::min(end, lo + per_part * kernels::kGrayBlock);
    total = total + gray_range(p, lo, hi);
    if (progress) progress->advance(hi - lo);
  }
  return total;
}

}  // namespace panelboot::cpu
