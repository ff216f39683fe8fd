#pragma once
// One replication of Hansen's threshold bootstrap, as PB_HD functions that the CPU backend (one
// OpenMP iteration per replication) and the CUDA kernel (one thread per replication) both run,
// operation for operation: with the device's multiply-adds left unfused (nvcc --fmad=false) the
// two give the same bits. Every array a replication owns is strided (element i at p[i * stride])
// so that the device lays replications side by side and its loads coalesce.
//
// Per replication b of test k (k thresholds against k - 1), in the transformed space:
//   y*   = fitted + the residual block of unit threshold_draw(seed, k, b, i) (or, wild, unit i's
//          own block times a Rademacher sign)
//   e    = M y* = y* - Q (Q'y*), S0 = |e|^2                      (Q: the linear regressors' basis)
//   r_g  = w_g'e = sum over design rows below grid point g of x (D'e)      (prefix sums over the
//          rows sorted by q; D' the within transform's adjoint)
//   stages 1..k: S(g | F) = S_F - a'd^-1 a with a = r_g - G_gF GFF^-1 r_F, d = G_gg - G_gF GFF^-1 G_Fg,
//          S_F = S0 - r_F'GFF^-1 r_F; the argmin joins F (Hansen's exclusion windows after stage 1)
//   F*   = (S_{k-1} / S_k - 1) n_scale
#include <cmath>
#include <cstdint>

#include "panelboot/kernels/hd.hpp"
#include "panelboot/kernels/small_solve.hpp"
#include "panelboot/kernels/wild_weights.hpp"

namespace panelboot::kernels {

// The largest (thresholds - 1) x regime regressors the bootstrap's fixed set may reach.
constexpr int kMaxFixedDim = 24;
constexpr int kMaxRegime = 8;
constexpr int kMaxQ = 64;  // linear regressors handled in one pass over the rows

// The unit whose residual block replication b of test k attaches to unit i (of n).
// One Philox block gives the draws of four consecutive units (word i mod 4 of block i / 4).
PB_HD inline std::uint64_t threshold_draw_unit(std::uint64_t seed, int k, std::uint64_t b, std::uint64_t i,
                                               std::uint64_t n) {
  const auto rr = philox_block(seed, (b << 6) | static_cast<std::uint64_t>(k), static_cast<std::uint32_t>(i >> 2), 7);
  return (static_cast<std::uint64_t>(rr.v[i & 3]) * n) >> 32;
}

// The data every replication reads (device or host pointers).
struct ThresholdBootView {
  std::int64_t n_obs = 0, n_units = 0, n_periods = 0, n_design = 0, n_grid = 0;
  const std::int64_t* offset = nullptr;  // unit i's transformed rows [offset[i], offset[i + 1])
  const double* fitted = nullptr;        // n_obs
  const double* resid = nullptr;         // n_obs
  const double* Qt = nullptr;            // n_obs x n_q, ROW-major (row r at Qt + r n_q), orthonormal columns
  int n_q = 0;
  // design rows sorted by q: their unit, transformed row (-1: the deleted period), period
  const std::int32_t* s_unit = nullptr;
  const std::int64_t* s_row = nullptr;
  const std::int32_t* s_period = nullptr;
  const std::int32_t* t_period = nullptr;  // period of each transformed row (time effects)
  const double* unit_inv_len = nullptr;    // 1 / design rows of unit i
  bool time_effects = false;
  int p = 1;
  const double* s_x = nullptr;            // n_design x p: x_j of sorted row k at s_x[k * p + j]
  const std::int64_t* cut = nullptr;      // grid point g: sorted rows [0, cut[g]) lie below it
  const std::int32_t* nn = nullptr;       // grid points with a value below grid point g's
  int qnt = 0;                            // exclusion window half-width (grid steps)
  int k = 1;                              // thresholds of the alternative (stages)
  double n_scale = 0;
  std::uint64_t seed = 0;
  bool wild = false;
};

// Strided scratch of one replication: ys, e (n_obs); usum (n_units); psum (n_periods);
// z (n_design); r (n_grid p).
struct ThresholdScratch {
  double *ys = nullptr, *e = nullptr, *usum = nullptr, *psum = nullptr, *z = nullptr, *r = nullptr;
  std::int64_t stride = 1;
};

// Gram access for the search: the diagonal p x p blocks as one flat array (block g at
// diag + g p^2, column-major) and the column block (n_grid p) x p of a fixed point f, column-major
// with leading dimension ld = n_grid p. DeviceGram holds the whole matrix; the CPU backend's
// accessor computes a column the first time a replication fixes its point.
struct FullGram {
  const double* diag = nullptr;
  const double* G = nullptr;  // (n_grid p)^2, column-major
  std::int64_t ld = 0;
  int p = 1;
  PB_HD const double* column(std::int64_t f) const { return G + f * p * ld; }
};

// y*, e = M y*, S0 and r = W'e of replication b.
// r = W'e for a transformed vector e (its element r at e[r * st]): D'e on the sorted design rows
// (the within transform's adjoint), then prefix sums of x_j (D'e) read at each grid point's cut.
// Uses s.usum, s.psum, s.z and writes s.r. The host's GridProjector calls it too (stride 1).
template <bool UnitStride = false>
PB_HD void threshold_grid_products(const ThresholdBootView& v, const double* e, const ThresholdScratch& s,
                                   std::int64_t stride) {
  const std::int64_t st = UnitStride ? 1 : stride;
  // D'e on the sorted design rows
  double total = 0;
  if (v.time_effects)
    for (std::int64_t t = 0; t < v.n_periods; ++t) s.psum[t * st] = 0;
  for (std::int64_t i = 0; i < v.n_units; ++i) {
    double u = 0;
    for (std::int64_t r = v.offset[i]; r < v.offset[i + 1]; ++r) {
      u += e[r * st];
      if (v.time_effects) {
        s.psum[static_cast<std::int64_t>(v.t_period[r]) * st] += e[r * st];
        total += e[r * st];
      }
    }
    s.usum[i * st] = u * v.unit_inv_len[i];
  }
  const double nu = static_cast<double>(v.n_units), nt = static_cast<double>(v.n_units * v.n_periods);
  for (std::int64_t kk = 0; kk < v.n_design; ++kk) {
    const std::int64_t row = v.s_row[kk];
    double zz = (row >= 0 ? e[row * st] : 0.0) - s.usum[static_cast<std::int64_t>(v.s_unit[kk]) * st];
    if (v.time_effects) zz -= s.psum[static_cast<std::int64_t>(v.s_period[kk]) * st] / nu - total / nt;
    s.z[kk * st] = zz;
  }
  // r_{g, j} = prefix sums of x_j z over the sorted rows, read at each cut
  for (int j = 0; j < v.p; ++j) {
    double acc = 0;
    std::int64_t next = 0;
    for (std::int64_t g = 0; g < v.n_grid; ++g) {
      for (; next < v.cut[g]; ++next) acc += v.s_x[next * v.p + j] * s.z[next * st];
      s.r[(g * v.p + j) * st] = acc;
    }
  }
}

// UnitStride: the scratch is contiguous (the CPU backend), so the stride is a compile-time 1 and
// the loops without a reduction vectorize; the arithmetic is the same either way.
template <bool UnitStride = false>
PB_HD double threshold_project(const ThresholdBootView& v, std::uint64_t b, const ThresholdScratch& s) {
  const std::int64_t st = UnitStride ? 1 : s.stride;
  // each Philox block serves several units: 4 draws (blocks) or 128 signs (wild), as
  // threshold_draw_unit and wild_weight define them
  const std::uint64_t ctr = (b << 6) | static_cast<std::uint64_t>(v.k);
  r123::Philox4x32::ctr_type blk = {{0, 0, 0, 0}};
  for (std::int64_t i = 0; i < v.n_units; ++i) {
    const std::int64_t lo = v.offset[i], len = v.offset[i + 1] - lo;
    const std::uint32_t ui = static_cast<std::uint32_t>(i);
    if (v.wild) {
      if ((ui & 127u) == 0) blk = philox_block(v.seed, ctr, ui >> 7, 0);
      const double w = ((blk.v[(ui >> 5) & 3] >> (ui & 31)) & 1u) ? 1.0 : -1.0;
      for (std::int64_t t = 0; t < len; ++t) s.ys[(lo + t) * st] = v.fitted[lo + t] + w * v.resid[lo + t];
    } else {
      if ((ui & 3u) == 0) blk = philox_block(v.seed, ctr, ui >> 2, 7);
      const std::int64_t j = static_cast<std::int64_t>((static_cast<std::uint64_t>(blk.v[ui & 3]) *
                                                        static_cast<std::uint64_t>(v.n_units)) >> 32);
      const std::int64_t lj = v.offset[j];
      for (std::int64_t t = 0; t < len; ++t) s.ys[(lo + t) * st] = v.fitted[lo + t] + v.resid[lj + t];
    }
  }
  // e = y* - Q (Q'y*) and S0 = |e|^2. Up to kMaxQ columns: Q'y* in one pass over the rows (two
  // interleaved partial sums per column), e and S0 in a second; otherwise column by column. The
  // same operations in the same order on every backend.
  double s0 = 0;
  if (v.n_q <= kMaxQ) {
    const int nq = v.n_q;
    double a0[kMaxQ], a1[kMaxQ];
    for (int c = 0; c < nq; ++c) a0[c] = a1[c] = 0;
    std::int64_t r = 0;
    for (; r + 2 <= v.n_obs; r += 2) {
      const double y0 = s.ys[r * st], y1 = s.ys[(r + 1) * st];
      const double* q0 = v.Qt + r * nq;
      const double* q1 = q0 + nq;
      for (int c = 0; c < nq; ++c) {
        a0[c] += q0[c] * y0;
        a1[c] += q1[c] * y1;
      }
    }
    if (r < v.n_obs) {
      const double y0 = s.ys[r * st];
      const double* q0 = v.Qt + r * nq;
      for (int c = 0; c < nq; ++c) a0[c] += q0[c] * y0;
    }
    for (int c = 0; c < nq; ++c) a0[c] += a1[c];
    double sa = 0, sb = 0;
    for (r = 0; r < v.n_obs; ++r) {
      const double* qr = v.Qt + r * nq;
      double ev = s.ys[r * st];
      for (int c = 0; c < nq; ++c) ev -= a0[c] * qr[c];
      s.e[r * st] = ev;
      if (r & 1) sb += ev * ev;
      else sa += ev * ev;
    }
    s0 = sa + sb;
  } else {
    for (std::int64_t r = 0; r < v.n_obs; ++r) s.e[r * st] = s.ys[r * st];
    for (int c = 0; c < v.n_q; ++c) {
      double a = 0;
      for (std::int64_t r = 0; r < v.n_obs; ++r) a += v.Qt[r * v.n_q + c] * s.ys[r * st];
      for (std::int64_t r = 0; r < v.n_obs; ++r) s.e[r * st] -= a * v.Qt[r * v.n_q + c];
    }
    for (std::int64_t r = 0; r < v.n_obs; ++r) s0 += s.e[r * st] * s.e[r * st];
  }
  threshold_grid_products<UnitStride>(v, s.e, s, st);
  return s0;
}

// The sequential search of one replication given r and S0; returns F* (NaN when a fixed set's
// Gram block is singular).
template <class Gram>
PB_HD double threshold_search(const ThresholdBootView& v, const Gram& gram, const double* r, std::int64_t st,
                              double s0) {
  const int p = v.p;
  const std::int64_t ld = v.n_grid * p;
  std::int64_t fixed[kMaxFixedDim + 1];
  const double* cols[kMaxFixedDim + 1];
  double L[kMaxFixedDim * kMaxFixedDim], zr[kMaxFixedDim], w[kMaxFixedDim * kMaxRegime];
  double s_prev = s0, s_k = s0;
  for (int stage = 1; stage <= v.k; ++stage) {
    const int m = stage - 1, f = m * p;
    // L L' = GFF (lower triangle from the fixed points' column blocks), zr = L^-1 r_F
    double SF = s0;
    if (m > 0) {
      for (int a = 0; a < m; ++a)
        for (int b = 0; b <= a; ++b)
          for (int i = 0; i < p; ++i)
            for (int j = 0; j < p; ++j) {
              const int row = a * p + i, colm = b * p + j;
              if (colm > row) continue;
              L[row + colm * f] = a == b ? gram.diag[fixed[a] * p * p + i + j * p] : cols[b][fixed[a] * p + i + j * ld];
            }
      double dmax = 0;
      for (int c = 0; c < f; ++c) dmax = L[c + c * f] > dmax ? L[c + c * f] : dmax;
      if (!cholesky_factor(f, L, 1e-12 * dmax)) return ::nan("");
      for (int c = 0; c < f; ++c) zr[c] = r[(fixed[c / p] * p + c % p) * st];
      forward_solve(f, L, zr);
      for (int c = 0; c < f; ++c) SF -= zr[c] * zr[c];
    }
    double best = 1.7976931348623157e308;  // as +inf: non-finite candidates are never chosen
    std::int64_t best_g = -1;
    for (std::int64_t g = 0; g < v.n_grid; ++g) {
      if (m > 0) {  // Hansen's windows: excluded when inside exactly one, and the fixed points
        int cnt = 0;
        bool is_fixed = false;
        for (int a = 0; a < m; ++a) {
          const std::int64_t nn = v.nn[fixed[a]], i1 = g + 1;
          cnt += nn - v.qnt < i1 && i1 <= nn + v.qnt;
          is_fixed = is_fixed || fixed[a] == g;
        }
        if (cnt == 1 || is_fixed) continue;
      }
      // w = L^-1 G_Fg (f x p), a = r_g - w'zr, d = G_gg - w'w
      double a[kMaxRegime], d[kMaxRegime * kMaxRegime];
      const double* dg = gram.diag + g * p * p;
      for (int j = 0; j < p; ++j) {
        double* wj = w + j * kMaxFixedDim;
        for (int c = 0; c < f; ++c) wj[c] = cols[c / p][g * p + j + (c % p) * ld];
        forward_solve(f, L, wj);
        double aj = r[(g * p + j) * st];
        for (int c = 0; c < f; ++c) aj -= w[c + j * kMaxFixedDim] * zr[c];
        a[j] = aj;
      }
      for (int i = 0; i < p; ++i)
        for (int j = 0; j < p; ++j) {
          double x = dg[i + j * p];
          for (int c = 0; c < f; ++c) x -= w[c + i * kMaxFixedDim] * w[c + j * kMaxFixedDim];
          d[i + j * p] = x;
        }
      double s;
      if (p == 1) {
        s = d[0] > 1e-14 * dg[0] ? SF - a[0] * a[0] / d[0] : SF;
      } else {
        double x[kMaxRegime];
        for (int j = 0; j < p; ++j) x[j] = a[j];
        const SolveStatus stt = cholesky_solve(p, d, x, 1e-14);
        double q = 0;
        for (int j = 0; j < p; ++j) q += a[j] * x[j];
        s = stt == SolveStatus::kOk ? SF - q : SF;
      }
      if (s < best) {
        best = s;
        best_g = g;
      }
    }
    if (best_g < 0) return ::nan("");
    s_prev = s_k;
    s_k = best;
    fixed[m] = best_g;
    if (stage < v.k) cols[m] = gram.column(best_g);
  }
  return (s_prev / s_k - 1.0) * v.n_scale;
}

}  // namespace panelboot::kernels
