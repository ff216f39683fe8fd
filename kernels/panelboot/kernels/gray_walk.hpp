#pragma once
// Exact enumeration of Rademacher sign vectors by a Gray-code walk, as one PB_HD function that
// the CPU reference, the CUDA kernel (one thread per range) and the host-compiled Thrust test
// all call.
//
// Sign vector m (0 <= m < 2^(G-1)) has v_0 = +1 and v_g = -1 where bit g-1 of the Gray code
// m ^ (m >> 1) is set; each vector also stands for its negation (same |t|, opposite sign).
// With H = sum_S w_S K_S'K_S (G x G) and y = H v, consecutive codes differ in one sign v_g, so
// flipping it by dv = -2 v_g updates num += dv C_g, den += 2 dv y_g + dv^2 H_gg and
// y += dv H[:, g]: O(G) per vector after an O(G^2) start. The state is recomputed exactly at every
// multiple of kGrayBlock, so rounding cannot drift and a vector's counts depend on its block
// alone: any split of the vectors into ranges that start on a block (threads, GPU ranges, shards,
// checkpoints) gives the same counts.
#include <cstddef>
#include <cstdint>

#include "panelboot/kernels/boot_counts.hpp"
#include "panelboot/kernels/hd.hpp"
#include "panelboot/kernels/wild_weights.hpp"  // enumerated_weight

namespace panelboot::kernels {

constexpr int kMaxGrayClusters = 40;
// The walk restarts exactly at every multiple of this many sign vectors.
constexpr std::uint64_t kGrayBlock = 2048;

// Counts of (s, -s) against t with s^2 = num^2 / den, without a square root.
struct PairCounter {
  double t2_abs = 0, up_thr = 0, lo_thr = 0;
  bool inclusive = false;
  PB_HD PairCounter(double t, double tol, bool incl) : inclusive(incl) {
    const double at = t < 0 ? -t : t;
    double a = incl ? at - tol : at + tol;
    if (a < 0) a = 0;
    t2_abs = a * a;
    up_thr = incl ? t - tol : t + tol;
    lo_thr = incl ? -t - tol : -t + tol;
  }
  // #{x in {s, -s} : x > thr} (strict) or >= (inclusive)
  PB_HD static std::int64_t side(double num2, double den, double thr, bool incl) {
    const double th2den = thr * thr * den;
    if (incl) return thr <= 0 ? 1 + (num2 <= th2den) : (num2 >= th2den);
    return thr >= 0 ? (num2 > th2den) : 1 + (num2 < th2den);
  }
  PB_HD void add(double num, double den, BootCounts& c) const {
    if (!(den > 0) || !(den <= 1.7976931348623157e308)) return;
    const double num2 = num * num;
    c.finite += 2;
    c.abs += 2 * (inclusive ? num2 >= t2_abs * den : num2 > t2_abs * den);
    c.upper += side(num2, den, up_thr, inclusive);
    c.lower += side(num2, den, lo_thr, inclusive);
  }
};

// The problem of one enumeration: H (G x G, column-major, symmetric) and C (G); the vectors
// lo .. hi-1 (hi = 0: to the last, 2^(G-1)), lo a multiple of kGrayBlock.
struct GrayProblem {
  const double* H = nullptr;
  const double* C = nullptr;
  int n_clu = 0;
  double t = 0, tol = 0;
  bool inclusive = false;
  std::uint64_t lo = 0, hi = 0;
};

// The end of a problem's vectors.
PB_HD inline std::uint64_t gray_end(const GrayProblem& p) { return p.hi ? p.hi : std::uint64_t{1} << (p.n_clu - 1); }
// Its whole blocks (the last may be short).
PB_HD inline std::uint64_t gray_blocks(const GrayProblem& p) { return (gray_end(p) - p.lo + kGrayBlock - 1) / kGrayBlock; }

// Index of the lowest set bit of m != 0.
PB_HD inline int lowest_bit(std::uint64_t m) {
#if defined(__CUDA_ARCH__)
  return __ffsll(static_cast<long long>(m)) - 1;
#else
  return __builtin_ctzll(m);
#endif
}

// Exact state of vector m: signs v, y = H v, num = C'v, den = v'H v.
PB_HD inline void gray_state(const GrayProblem& p, std::uint64_t m, double* v, double* y, double& num, double& den) {
  const int G = p.n_clu;
  const std::uint64_t code = m ^ (m >> 1);
  for (int g = 0; g < G; ++g) v[g] = enumerated_weight(code, static_cast<std::uint32_t>(g));
  num = 0;
  for (int g = 0; g < G; ++g) num += p.C[g] * v[g];
  for (int a = 0; a < G; ++a) {
    double acc = 0;
    for (int g = 0; g < G; ++g) acc += p.H[a + static_cast<std::size_t>(g) * G] * v[g];
    y[a] = acc;
  }
  den = 0;
  for (int g = 0; g < G; ++g) den += v[g] * y[g];
}

// Counts of vectors [lo, hi) (G <= kMaxGrayClusters).
PB_HD PB_INLINE BootCounts gray_walk_range(const GrayProblem& p, std::uint64_t lo, std::uint64_t hi) {
  const int G = p.n_clu;
  const double* const H = p.H;
  const double* const C = p.C;
  const PairCounter pc(p.t, p.tol, p.inclusive);
  double v[kMaxGrayClusters], y[kMaxGrayClusters];
  double num = 0, den = 0;
  BootCounts c;
  if (lo >= hi) return c;
  gray_state(p, lo, v, y, num, den);
  for (std::uint64_t m = lo;;) {
    pc.add(num, den, c);
    if (++m == hi) break;
    if ((m & (kGrayBlock - 1)) == 0) {  // resynchronize: rounding cannot drift
      gray_state(p, m, v, y, num, den);
      continue;
    }
    // Gray code m differs from m-1 in bit ctz(m), i.e. cluster ctz(m) + 1
    const int g = lowest_bit(m) + 1;
    const double dv = -2.0 * v[g];
    v[g] = -v[g];
    num += dv * C[g];
    const double* hg = H + static_cast<std::size_t>(g) * G;
    den += 2 * dv * y[g] + dv * dv * hg[g];
    for (int a = 0; a < G; ++a) y[a] += dv * hg[a];
  }
  return c;
}

// Functor for a transform-reduce over ranges of whole blocks: range r of n_ranges covers blocks
// [B r / n_ranges, B (r+1) / n_ranges) of the problem's B blocks.
struct GrayRangeOp {
  GrayProblem p;
  std::uint64_t n_ranges = 1;
  PB_HD BootCounts operator()(std::int64_t r) const {
    const std::uint64_t ur = static_cast<std::uint64_t>(r), blocks = gray_blocks(p), end = gray_end(p);
    // blocks * r may overflow 64 bits only beyond 2^28 blocks x 2^36 ranges: split the product
    const std::uint64_t q = blocks / n_ranges, rem = blocks % n_ranges;
    const std::uint64_t b_lo = q * ur + rem * ur / n_ranges, b_hi = q * (ur + 1) + rem * (ur + 1) / n_ranges;
    const std::uint64_t lo = p.lo + b_lo * kGrayBlock, hi = p.lo + b_hi * kGrayBlock;
    return gray_walk_range(p, lo, hi < end ? hi : end);
  }
};

}  // namespace panelboot::kernels
