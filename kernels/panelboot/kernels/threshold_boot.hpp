#pragma once
// One replication of Hansen's threshold bootstrap, as PB_HD functions that the CPU backend (one
// OpenMP iteration per replication, SoloTeam) and the CUDA kernel (one warp per replication)
// both run, operation for operation: every reduction is defined over kLanes fixed lanes (see
// fold_lanes), so with the device's multiply-adds left unfused (nvcc --fmad=false) the two give
// the same bits.
//
// Per replication b of test k (k thresholds against k - 1), in the transformed space:
//   y*   = fitted + the residual block of unit threshold_draw(seed, k, b, i) (or, wild, unit i's
//          own block times a Rademacher sign)
//   e    = M y* = y* - Q (Q'y*), S0 = |e|^2                      (Q: the linear regressors' basis)
//   r_g  = w_g'e = sum over design rows below grid point g of x (D'e)      (segment sums over the
//          rows sorted by q, then a running sum over g; D' the within transform's adjoint)
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
constexpr int kLanes = 32;  // the lanes of every reduction (see fold_lanes)

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
  const double* Q = nullptr;             // n_obs x n_q, column-major (column c at Q + c n_obs), orthonormal
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

// Multiply-adds of one replication: the projections of its residuals (n_q + 2 per observation)
// and the k-stage search over the grid (p per point and stage). The CPU backend's unit of
// ThresholdBootSpec::min_team_work, and `panelboot bench`'s work model.
inline double threshold_work_per_replication(const ThresholdBootView& v) {
  return static_cast<double>(v.n_obs) * (v.n_q + 2) + static_cast<double>(v.n_grid) * v.p * v.k;
}

// Where replication b takes unit i's residual block from: y*_i = fitted_i + w resid[src, src + len)
// (blocks: unit threshold_draw_unit(...)'s block, w = 1; wild: unit i's own block, w = +-1). One
// Philox block serves 4 units (blocks) or 128 (wild signs, as wild_weight's Rademacher); the cursor
// keeps the last one, so units visited in increasing order draw each block once.
struct ThresholdDrawCursor {
  std::uint64_t ctr = 0;
  r123::Philox4x32::ctr_type blk = {{0, 0, 0, 0}};
  std::int64_t have = -1;
  ThresholdDrawCursor() = default;
  PB_HD ThresholdDrawCursor(const ThresholdBootView& v, std::uint64_t b)
      : ctr((b << 6) | static_cast<std::uint64_t>(v.k)) {}
  PB_HD PB_INLINE std::int64_t source(const ThresholdBootView& v, std::int64_t i, double& w) {
    const std::uint32_t ui = static_cast<std::uint32_t>(i);
    const std::int64_t want = v.wild ? (i >> 7) : (i >> 2);
    if (want != have) {
      blk = philox_block(v.seed, ctr, static_cast<std::uint32_t>(want), v.wild ? 0 : 7);
      have = want;
    }
    if (v.wild) {
      w = ((blk.v[(ui >> 5) & 3] >> (ui & 31)) & 1u) ? 1.0 : -1.0;
      return v.offset[i];
    }
    w = 1.0;  // fitted + 1.0 x resid: the same bits as fitted + resid
    const std::int64_t j = static_cast<std::int64_t>((static_cast<std::uint64_t>(blk.v[ui & 3]) *
                                                      static_cast<std::uint64_t>(v.n_units)) >> 32);
    return v.offset[j];
  }
};

// Scratch of one replication (contiguous): ys, e (n_obs); usum (n_units); psum (n_periods);
// z (n_design); r (n_grid p); part (kLanes (n_q + 1), the lanes' partial sums).
struct ThresholdScratch {
  double *ys = nullptr, *e = nullptr, *usum = nullptr, *psum = nullptr, *z = nullptr, *r = nullptr, *part = nullptr;
};

// The doubles one replication's scratch takes, and the scratch laid out from base.
PB_HD inline std::int64_t threshold_scratch_size(const ThresholdBootView& v) {
  return 2 * v.n_obs + v.n_units + (v.n_periods + 1) + v.n_design + v.n_grid * v.p + kLanes * (v.n_q + 1);
}
PB_HD inline ThresholdScratch threshold_scratch_at(const ThresholdBootView& v, double* base) {
  ThresholdScratch s;
  s.ys = base;
  s.e = s.ys + v.n_obs;
  s.usum = s.e + v.n_obs;
  s.psum = s.usum + v.n_units;
  s.z = s.psum + v.n_periods + 1;
  s.r = s.z + v.n_design;
  s.part = s.r + v.n_grid * v.p;
  return s;
}

// Gram access for the search: the diagonal p x p blocks as one flat array (block g at
// diag + g p^2, column-major) and the column block (n_grid p) x p of a fixed point f, column-major
// with leading dimension ld = n_grid p. GramTable (the CUDA backend's) holds the column blocks of
// some points, point f's in slot slot[f]; the CPU backend's accessor computes a column the first
// time a replication fixes its point.
struct GramTable {
  const double* diag = nullptr;
  const double* G = nullptr;           // column blocks, one per slot
  const std::int32_t* slot = nullptr;  // n_grid: the slot of point f's column block (-1: none)
  std::int64_t ld = 0;
  int p = 1;
  PB_HD const double* column(std::int64_t f) const { return G + static_cast<std::int64_t>(slot[f]) * p * ld; }
};

// The reductions of one replication are defined over kLanes lanes, so that a CUDA warp (one lane
// per accumulator) and one CPU thread (all lanes in turn) add the same numbers in the same order:
// lane l sums the elements l, l + kLanes, ... in increasing order and the lanes' sums are folded
// by the tree of fold_lanes. A Team is who runs a replication: SoloTeam (one CPU thread) or the
// CUDA backend's warp; rank r of a team of size n takes elements r, r + n, ...; sync() orders
// the team's memory; argmin combines the members' (smallest value, first index) pairs.
struct SoloTeam {
  static constexpr int kSize = 1;
  PB_HD int rank() const { return 0; }
  PB_HD void sync() const {}
  PB_HD void argmin(double&, std::int64_t&) const {}
};

// Folds x[0 .. kLanes) (the lanes' partial sums, each at x[l * step]) by the fixed tree
// x[l] += x[l + h] for h = 16, 8, 4, 2, 1. T: double, or (the CPU backend's batches) a vector
// of replications folded element by element.
template <class T = double>
PB_HD PB_INLINE T fold_lanes(const T* x, std::int64_t step = 1) {
  T t[kLanes];
  for (int l = 0; l < kLanes; ++l) t[l] = x[l * step];
  for (int h = kLanes / 2; h > 0; h /= 2)
    for (int l = 0; l < h; ++l) t[l] += t[l + h];
  return t[0];
}

// r = W'e for a transformed vector e: D'e on the sorted design rows (the within transform's
// adjoint), then for each grid point g and regime regressor j the sum of x_j (D'e) over the
// sorted rows between the cuts of points g - 1 and g (segment sums, in row order; with one
// regressor D'e is made where it is used), and the running sum of the segments over g. Uses
// usum (n_units), psum (n_periods + 1) and z (n_design, p > 1); writes r (n_grid p). The host's
// GridProjector calls it too (SoloTeam), and the CPU backend's batches with T a vector of
// replications (each element gets the operations a double would).
template <class Team, class T>
PB_HD PB_INLINE void threshold_grid_products(const ThresholdBootView& v, const T* e, T* usum, T* psum, T* z, T* r,
                                             const Team& tm) {
  const int rk = tm.rank(), ts = Team::kSize;
  T total{};
  if (v.time_effects) {  // period sums across units: one member, in unit order
    if (rk == 0) {
      for (std::int64_t t = 0; t < v.n_periods; ++t) psum[t] = T{};
      for (std::int64_t i = 0; i < v.n_units; ++i) {
        T u{};
        for (std::int64_t rr = v.offset[i]; rr < v.offset[i + 1]; ++rr) {
          u += e[rr];
          psum[v.t_period[rr]] += e[rr];
          total += e[rr];
        }
        usum[i] = u * v.unit_inv_len[i];
      }
      psum[v.n_periods] = total;
    }
    tm.sync();
    total = psum[v.n_periods];
  } else {
    for (std::int64_t i = rk; i < v.n_units; i += ts) {
      T u{};
      for (std::int64_t rr = v.offset[i]; rr < v.offset[i + 1]; ++rr) u += e[rr];
      usum[i] = u * v.unit_inv_len[i];
    }
    tm.sync();
  }
  const double nu = static_cast<double>(v.n_units), nt = static_cast<double>(v.n_units * v.n_periods);
  // z = D'e on sorted design row kk
  auto z_of = [&](std::int64_t kk) {
    const std::int64_t row = v.s_row[kk];
    T zz = (row >= 0 ? e[row] : T{}) - usum[v.s_unit[kk]];
    if (v.time_effects) zz -= psum[v.s_period[kk]] / nu - total / nt;
    return zz;
  };
  if (v.p == 1) {  // one regime regressor: z made where it is used
    for (std::int64_t g = rk; g < v.n_grid; g += ts) {
      const std::int64_t lo = g > 0 ? v.cut[g - 1] : 0, hi = v.cut[g];
      T acc{};
      for (std::int64_t kk = lo; kk < hi; ++kk) acc += v.s_x[kk] * z_of(kk);
      r[g] = acc;
    }
  } else {  // z once for the p regressors
    for (std::int64_t kk = rk; kk < v.n_design; kk += ts) z[kk] = z_of(kk);
    tm.sync();
    for (std::int64_t g = rk; g < v.n_grid; g += ts) {
      const std::int64_t lo = g > 0 ? v.cut[g - 1] : 0, hi = v.cut[g];
      for (int j = 0; j < v.p; ++j) {
        T acc{};
        for (std::int64_t kk = lo; kk < hi; ++kk) acc += v.s_x[kk * v.p + j] * z[kk];
        r[g * v.p + j] = acc;
      }
    }
  }
  tm.sync();
  for (int j = rk; j < v.p; j += ts) {
    T acc{};
    for (std::int64_t g = 0; g < v.n_grid; ++g) {
      acc += r[g * v.p + j];
      r[g * v.p + j] = acc;
    }
  }
  tm.sync();
}
template <class Team>
PB_HD PB_INLINE void threshold_grid_products(const ThresholdBootView& v, const double* e, const ThresholdScratch& s,
                                             const Team& tm) {
  threshold_grid_products(v, e, s.usum, s.psum, s.z, s.r, tm);
}

// y*, e = M y*, S0 = |e|^2 and r = W'e of replication b; returns S0.
template <class Team>
PB_HD PB_INLINE double threshold_project(const ThresholdBootView& v, std::uint64_t b, const ThresholdScratch& s,
                               const Team& tm) {
  const int rk = tm.rank(), ts = Team::kSize;
  // y*: unit i's rows
  ThresholdDrawCursor draws(v, b);
  for (std::int64_t i = rk; i < v.n_units; i += ts) {
    const std::int64_t lo = v.offset[i], len = v.offset[i + 1] - lo;
    double w;
    const std::int64_t src = draws.source(v, i, w);
    for (std::int64_t t = 0; t < len; ++t) s.ys[lo + t] = v.fitted[lo + t] + w * v.resid[src + t];
  }
  tm.sync();
  const int nq = v.n_q;
  double s0 = 0;
  if (nq <= kMaxQ) {
    // Q'y*: lane l's partial sums over rows l, l + kLanes, ... in order (member rk runs lanes rk,
    // rk + size, ...: its own lane in a warp, all 32 in turn on one thread), folded
    const std::int64_t N = v.n_obs;
    for (int l = rk; l < kLanes; l += ts) {
      double al[kMaxQ];
      for (int c = 0; c < nq; ++c) al[c] = 0;
      for (std::int64_t r = l; r < N; r += kLanes) {
        const double y = s.ys[r];
        for (int c = 0; c < nq; ++c) al[c] += v.Q[c * N + r] * y;
      }
      for (int c = 0; c < nq; ++c) s.part[c * kLanes + l] = al[c];
    }
    tm.sync();
    double a[kMaxQ];
    for (int c = 0; c < nq; ++c) a[c] = fold_lanes(s.part + c * kLanes);
    // e = y* - Q a (per row: y*, then the columns in order) and S0's lane partials, folded
    for (int l = rk; l < kLanes; l += ts) {
      double sp = 0;
      for (std::int64_t r = l; r < N; r += kLanes) {
        double ev = s.ys[r];
        for (int c = 0; c < nq; ++c) ev -= a[c] * v.Q[c * N + r];
        s.e[r] = ev;
        sp += ev * ev;
      }
      s.part[nq * kLanes + l] = sp;
    }
    tm.sync();
    s0 = fold_lanes(s.part + nq * kLanes);
  } else {  // many linear regressors: column by column, one member
    if (rk == 0) {
      for (std::int64_t r = 0; r < v.n_obs; ++r) s.e[r] = s.ys[r];
      for (int c = 0; c < nq; ++c) {
        double a = 0;
        for (std::int64_t r = 0; r < v.n_obs; ++r) a += v.Q[c * v.n_obs + r] * s.ys[r];
        for (std::int64_t r = 0; r < v.n_obs; ++r) s.e[r] -= a * v.Q[c * v.n_obs + r];
      }
      for (std::int64_t r = 0; r < v.n_obs; ++r) s0 += s.e[r] * s.e[r];
      s.part[0] = s0;
    }
    tm.sync();
    s0 = s.part[0];
  }
  tm.sync();
  threshold_grid_products(v, s.e, s, tm);
  return s0;
}

// The sequential search's state between stages: the fixed points, S0, S_{m-1}, S_m.
struct ThresholdSearchState {
  std::int64_t fixed[kMaxFixedDim + 1];
  double s0 = 0, s_prev = 0, s_k = 0;
  int failed = 0;  // a fixed set's Gram block was singular: F* is NaN
};

PB_HD inline void threshold_search_start(ThresholdSearchState& ss, double s0) {
  ss.s0 = ss.s_prev = ss.s_k = s0;
  ss.failed = 0;
}
PB_HD inline double threshold_search_fstar(const ThresholdBootView& v, const ThresholdSearchState& ss) {
  return ss.failed ? ::nan("") : (ss.s_prev / ss.s_k - 1.0) * v.n_scale;
}

// S(g | F) with one regime regressor: S_F - a^2 / d, or S_F where d has vanished against the
// point's own Gram value dg (the division is done either way: no branch for vector code).
PB_HD PB_INLINE double threshold_ssr_one(double SF, double a, double d, double dg) {
  const double s = SF - a * a / d;
  return d > 1e-14 * dg ? s : SF;
}

// The end of stage m + 1: its best point (best_g < 0: none, F* fails) joins the fixed set.
PB_HD PB_INLINE void threshold_stage_close(ThresholdSearchState& ss, int m, double best, std::int64_t best_g) {
  if (best_g < 0) {
    ss.failed = 1;
    return;
  }
  ss.s_prev = ss.s_k;
  ss.s_k = best;
  ss.fixed[m] = best_g;
}

// The fixed set's part of stage m + 1 (m = stage - 1 fixed points, f = m p values): their Gram
// column blocks, L L' = G_FF (lower, column-major, lda f), zr = L^-1 r_F and S_F = S0 - |zr|^2.
struct ThresholdStageFixed {
  int m = 0, f = 0;
  const double* cols[kMaxFixedDim + 1];
  double L[kMaxFixedDim * kMaxFixedDim], zr[kMaxFixedDim];
  double SF = 0;
};

// Fills fx for stage `stage` given ss.fixed; false (and ss.failed) when G_FF is singular.
template <class Gram>
PB_HD PB_INLINE bool threshold_stage_fixed(const ThresholdBootView& v, const Gram& gram, const double* r, int stage,
                                           ThresholdSearchState& ss, ThresholdStageFixed& fx) {
  const int p = v.p;
  const std::int64_t ld = v.n_grid * p;
  const std::int64_t* fixed = ss.fixed;
  const int m = stage - 1, f = m * p;
  fx.m = m;
  fx.f = f;
  for (int a = 0; a < m; ++a) fx.cols[a] = gram.column(fixed[a]);
  fx.SF = ss.s0;
  if (m > 0) {
    double* L = fx.L;
    for (int a = 0; a < m; ++a)
      for (int b = 0; b <= a; ++b)
        for (int i = 0; i < p; ++i)
          for (int j = 0; j < p; ++j) {
            const int row = a * p + i, colm = b * p + j;
            if (colm > row) continue;
            L[row + colm * f] = a == b ? gram.diag[fixed[a] * p * p + i + j * p] : fx.cols[b][fixed[a] * p + i + j * ld];
          }
    double dmax = 0;
    for (int c = 0; c < f; ++c) dmax = L[c + c * f] > dmax ? L[c + c * f] : dmax;
    if (!cholesky_factor(f, L, 1e-12 * dmax)) {
      ss.failed = 1;
      return false;
    }
    for (int c = 0; c < f; ++c) fx.zr[c] = r[fixed[c / p] * p + c % p];
    forward_solve(f, L, fx.zr);
    for (int c = 0; c < f; ++c) fx.SF -= fx.zr[c] * fx.zr[c];
  }
  return true;
}

// Hansen's exclusion windows at a stage with m fixed points: grid point g is out when it is
// inside exactly one window (nn - qnt < g + 1 <= nn + qnt, nn = the grid points below a fixed
// point) or is a fixed point itself.
PB_HD PB_INLINE bool threshold_excluded(const ThresholdBootView& v, const ThresholdSearchState& ss, int m,
                                        std::int64_t g) {
  int cnt = 0;
  bool is_fixed = false;
  for (int a = 0; a < m; ++a) {
    const std::int64_t nn = v.nn[ss.fixed[a]], i1 = g + 1;
    cnt += nn - v.qnt < i1 && i1 <= nn + v.qnt;
    is_fixed = is_fixed || ss.fixed[a] == g;
  }
  return cnt == 1 || is_fixed;
}

// Stage `stage` (1..v.k) of the sequential search of one replication given r: the best point
// given the fixed set ss.fixed[0 .. stage - 1) joins it. Reads the Gram columns of the fixed
// points only (none at stage 1). Members take grid points rk, rk + size, ...; every member
// computes the fixed set's factor (the same operations), and argmin picks the first point of
// smallest S, as a loop over all points in order would.
template <class Gram, class Team>
PB_HD PB_INLINE void threshold_stage(const ThresholdBootView& v, const Gram& gram, const double* r, int stage,
                           ThresholdSearchState& ss, const Team& tm, double* ssr_out = nullptr) {
  const int p = v.p;
  const std::int64_t ld = v.n_grid * p;
  double w[kMaxFixedDim * kMaxRegime];
  ThresholdStageFixed fx;
  if (!threshold_stage_fixed(v, gram, r, stage, ss, fx)) return;
  const double* const* cols = fx.cols;
  const double* L = fx.L;
  const double* zr = fx.zr;
  const double SF = fx.SF;
  const int m = fx.m, f = fx.f;
  double best = 1.7976931348623157e308;  // as +inf: non-finite candidates are never chosen
  std::int64_t best_g = -1;
  for (std::int64_t g = tm.rank(); g < v.n_grid; g += Team::kSize) {
    if (m > 0 && threshold_excluded(v, ss, m, g)) continue;
    // w = L^-1 G_Fg (f x p), a = r_g - w'zr, d = G_gg - w'w
    double a[kMaxRegime], d[kMaxRegime * kMaxRegime];
    const double* dg = gram.diag + g * p * p;
    for (int j = 0; j < p; ++j) {
      double* wj = w + j * kMaxFixedDim;
      for (int c = 0; c < f; ++c) wj[c] = cols[c / p][g * p + j + (c % p) * ld];
      forward_solve(f, L, wj);
      double aj = r[g * p + j];
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
      s = threshold_ssr_one(SF, a[0], d[0], dg[0]);
    } else {
      double x[kMaxRegime];
      for (int j = 0; j < p; ++j) x[j] = a[j];
      const SolveStatus stt = cholesky_solve(p, d, x, 1e-14);
      double q = 0;
      for (int j = 0; j < p; ++j) q += a[j] * x[j];
      s = stt == SolveStatus::kOk ? SF - q : SF;
    }
    if (ssr_out) ssr_out[g] = s;
    if (s < best) {
      best = s;
      best_g = g;
    }
  }
  tm.argmin(best, best_g);
  threshold_stage_close(ss, m, best, best_g);
}

// The whole search of one replication given r and S0; returns F* (NaN when a fixed set's Gram
// block is singular).
template <class Gram, class Team>
PB_HD PB_INLINE double threshold_search(const ThresholdBootView& v, const Gram& gram, const double* r, double s0,
                              const Team& tm) {
  ThresholdSearchState ss;
  threshold_search_start(ss, s0);
  for (int stage = 1; stage <= v.k && !ss.failed; ++stage) threshold_stage(v, gram, r, stage, ss, tm);
  return threshold_search_fstar(v, ss);
}

}  // namespace panelboot::kernels
