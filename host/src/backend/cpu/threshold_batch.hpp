#pragma once
// The CPU backend's threshold bootstrap, W replications at a time: kernels::threshold_project's
// operations (y*, Q'y*, e = y* - Q a, S0, D'e, the segment sums and their running sum) with
// replication j of the batch in element j of a vector, so that each of W replications gets the
// bits threshold_project gives it alone (the same operations in the same order per element;
// built without FMA contraction) while the row lookups (the q-sorted rows' gathers, Q's
// columns) are shared by the W replications and the segment sums run as vector adds. y*, Q'y*
// and e are laid out here for the vector registers; the lanes' fold and D'e with the segment
// sums are the kernel's own functions with a vector element type. Only for
// views with at most kernels::kMaxQ linear regressors (threshold_project's one-pass case).
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/cpu/doubles_of.hpp"
#include "panelboot/kernels/hd.hpp"
#include "panelboot/kernels/threshold_boot.hpp"

namespace panelboot::cpu {

template <int W_>
struct ThresholdBatchOf {
  static constexpr int W = W_;
  typedef typename DoublesOf<W>::type V;
  // e (n_obs: y* then e in place), usum (n_units), psum (n_periods + 1), z (n_design, p > 1),
  // r (n_grid p), acc (kLanes n_q: Q'y*'s lanes), sp (kLanes: S0's lanes), wt (n_units: the
  // draws' weights); one block aligned to 64 bytes (what the AVX-512 clone assumes of a V;
  // std::vector<V> gives what the allocating clone assumes, 32 in the AVX2 one)
  static constexpr int kL = kernels::kLanes;
  V *e, *usum, *psum, *z, *r, *acc, *sp, *wt;
  std::unique_ptr<double[]> block_;
  std::unique_ptr<std::int64_t[]> src_;  // n_units W: the replications' block sources
  explicit ThresholdBatchOf(const kernels::ThresholdBootView& v)
      : src_(new std::int64_t[static_cast<std::size_t>(v.n_units * W)]) {
    const std::int64_t n[8] = {
        v.n_obs,    v.n_units, v.n_periods + 1, v.p > 1 ? v.n_design : 0, v.n_grid * v.p,
        kL * v.n_q, kL,        v.n_units};
    std::int64_t total = 0;
    for (std::int64_t x : n) total += x;
    block_.reset(new double[static_cast<std::size_t>(total * W + 8)]);
    double* base = block_.get();
    base += (64 - reinterpret_cast<std::uintptr_t>(base) % 64) % 64 / sizeof(double);
    V* at = reinterpret_cast<V*>(base);
    V** dst[8] = {&e, &usum, &psum, &z, &r, &acc, &sp, &wt};
    for (int i = 0; i < 8; ++i) {
      *dst[i] = at;
      at += n[i];
    }
  }
  ThresholdBatchOf(const ThresholdBatchOf&) = delete;
  ThresholdBatchOf& operator=(const ThresholdBatchOf&) = delete;

  // Replications b0 .. b0 + nb - 1 (nb <= W; the spare elements repeat b0), QL = lane_major(v): r (grid point g,
  // regressor j, replication b0 + i at r[g p + j][i]) and S0 of each into s0[i].
  PB_INLINE void project(const kernels::ThresholdBootView& v, const double* QL, std::uint64_t b0, int nb, double* s0) {
    const std::int64_t N = v.n_obs;
    const int nq = v.n_q;
    draw_sources(v, b0, nb);
    make_ystar(v);
    // a = Q'y*: lane l sums rows l, l + kLanes, ... in order (as threshold_project's one
    // thread), here two lanes at a time with their accumulators in registers, four columns at a
    // time: each lane's sums are their own chains of additions, so two lanes give the adder twice
    // the independent chains of one
    V a[kernels::kMaxQ];
    const int lanes = static_cast<int>(N < kL ? N : kL);
    for (int l = 0; l < lanes; l += 2) {
      const std::int64_t n_l = (N - l + kL - 1) / kL,
                         n_l2 = l + 1 < lanes ? (N - l - 1 + kL - 1) / kL : 0;  // <= n_l
      const double* ql = QL + lane_start(N, l) * nq;  // lane l + 1's rows follow lane l's
      V lane_acc[2][kernels::kMaxQ];
      int c0 = 0;
      for (; c0 + 4 <= nq; c0 += 4) columns<4>(ql, nq, c0, l, n_l, n_l2, lane_acc);
      switch (nq - c0) {
        case 3:
          columns<3>(ql, nq, c0, l, n_l, n_l2, lane_acc);
          break;
        case 2:
          columns<2>(ql, nq, c0, l, n_l, n_l2, lane_acc);
          break;
        case 1:
          columns<1>(ql, nq, c0, l, n_l, n_l2, lane_acc);
          break;
        default: break;
      }
      for (int c = 0; c < nq; ++c) {
        acc[c * kL + l] = lane_acc[0][c];
        if (n_l2 > 0) acc[c * kL + l + 1] = lane_acc[1][c];
      }
    }
    for (int l = lanes; l < kL; ++l)
      for (int c = 0; c < nq; ++c) acc[c * kL + l] = V{};
    for (int c = 0; c < nq; ++c) a[c] = kernels::fold_lanes(acc + c * kL);
    // e = y* - Q a (the columns in order) and S0's lanes, lane by lane
    switch (nq) {
      case 1: residuals<1>(N, nq, QL, a); break;
      case 2: residuals<2>(N, nq, QL, a); break;
      case 3: residuals<3>(N, nq, QL, a); break;
      case 4: residuals<4>(N, nq, QL, a); break;
      case 5: residuals<5>(N, nq, QL, a); break;
      case 6: residuals<6>(N, nq, QL, a); break;
      case 7: residuals<7>(N, nq, QL, a); break;
      case 8: residuals<8>(N, nq, QL, a); break;
      default: residuals<0>(N, nq, QL, a); break;
    }
    const V s0v = kernels::fold_lanes(sp);
    for (int i = 0; i < nb; ++i) s0[i] = s0v[i];
    kernels::threshold_grid_products(v, e, usum, psum, z, r, kernels::SoloTeam{});
  }

  // Replication b0 + i's source of unit u's block at src[u W + i] and its weight in element i of
  // wt[u] (the spare elements repeat b0): each replication's cursor runs over the units alone, so
  // that its Philox block stays in registers, apart from the rows' loop.
  void draw_sources(const kernels::ThresholdBootView& v, std::uint64_t b0, int nb) {
    std::int64_t* src = src_.get();
    for (int i = 0; i < W; ++i) {
      kernels::ThresholdDrawCursor draw(v, b0 + static_cast<std::uint64_t>(i < nb ? i : 0));
      for (std::int64_t u = 0; u < v.n_units; ++u) src[u * W + i] = draw.source(v, u, wt[u][i]);
    }
  }
  // y* = fitted + w resid[source rows], unit by unit; residual blocks have w = 1, and
  // fitted + 1.0 x resid has the bits of fitted + resid, so they skip the product
  PB_INLINE void make_ystar(const kernels::ThresholdBootView& v) {
    const std::int64_t* src = src_.get();
    for (std::int64_t u = 0; u < v.n_units; ++u) {
      const std::int64_t lo = v.offset[u], len = v.offset[u + 1] - lo;
      const double* from[W];
      for (int i = 0; i < W; ++i) from[i] = v.resid + src[u * W + i];
      const double* fit = v.fitted + lo;
      V* y = e + lo;
      if (v.wild) {
        const V w = wt[u];
        for (std::int64_t t = 0; t < len; ++t) y[t] = fit[t] + w * gather(from, t);
      } else {
        for (std::int64_t t = 0; t < len; ++t) y[t] = fit[t] + gather(from, t);
      }
    }
  }
  static PB_INLINE V gather(const double* const* from, std::int64_t t) {
    V x;
    for (int i = 0; i < W; ++i) x[i] = from[i][t];
    return x;
  }

  // Rows with r mod kLanes = l come before lane l (lane l' holds ceil((N - l') / kLanes) rows).
  static std::int64_t lane_start(std::int64_t N, int l) {
    std::int64_t n = 0;
    for (int m = 0; m < l; ++m) n += m < N ? (N - m + kL - 1) / kL : 0;
    return n;
  }
  // Q lane by lane, each row's n_q values together: QL[(lane_start(l) + k) n_q + c] = Q[c][l + k kLanes]
  static std::vector<double> lane_major(const kernels::ThresholdBootView& v) {
    const std::int64_t N = v.n_obs;
    std::vector<double> ql(static_cast<std::size_t>(N * v.n_q));
    std::size_t at = 0;
    for (int l = 0; l < kL; ++l)
      for (std::int64_t rr = l; rr < N; rr += kL)
        for (int c = 0; c < v.n_q; ++c) ql[at++] = v.Q[c * N + rr];
    return ql;
  }
  // lanes l's and l + 1's partial sums of Q'y* for columns c0 .. c0 + CW - 1, each in its rows'
  // order (ql: lane l's rows of QL, lane l + 1's after them; n_l2 <= n_l, 0 for no lane l + 1)
  template <int CW>
  PB_INLINE void columns(const double* ql, int nq, int c0, int l, std::int64_t n_l,
                         std::int64_t n_l2, V (*out)[kernels::kMaxQ]) const {
    V s[CW], t[CW];
    for (int j = 0; j < CW; ++j) s[j] = t[j] = V{};
    const V* ev = e + l;
    const double* ql2 = ql + n_l * nq;
    std::int64_t k = 0;
    for (; k < n_l2; ++k, ev += kL, ql += nq, ql2 += nq)
      for (int j = 0; j < CW; ++j) {
        s[j] += ql[c0 + j] * ev[0];
        t[j] += ql2[c0 + j] * ev[1];
      }
    for (; k < n_l; ++k, ev += kL, ql += nq)
      for (int j = 0; j < CW; ++j) s[j] += ql[c0 + j] * *ev;
    for (int j = 0; j < CW; ++j) {
      out[0][c0 + j] = s[j];
      out[1][c0 + j] = t[j];
    }
  }

  // e = y* - Q a and sp[l] = lane l's sum of e^2; NQ = n_q, or 0: any n_q. Lanes l and l + 1
  // together (as Q'y*): each lane's sum is still its own chain in row order.
  template <int NQ>
  PB_INLINE void residuals(std::int64_t N, int nq_rt, const double* QL, const V* a_in) {
    const int nq = NQ > 0 ? NQ : nq_rt;
    V a[NQ > 0 ? NQ : kernels::kMaxQ];
    for (int c = 0; c < nq; ++c) a[c] = a_in[c];
    auto residual = [&](V* er, const double* ql) {
      V ev = *er;
      for (int c = 0; c < nq; ++c) ev -= a[c] * ql[c];
      *er = ev;
      return ev * ev;
    };
    for (int l = 0; l < kL; l += 2) {
      const std::int64_t n_l = l < N ? (N - l + kL - 1) / kL : 0,
                         n_l2 = l + 1 < N ? (N - l - 1 + kL - 1) / kL : 0;  // <= n_l
      const double* ql = QL + lane_start(N, l) * nq;
      const double* ql2 = ql + n_l * nq;
      V s = V{}, t = V{};
      V* er = e + l;
      std::int64_t k = 0;
      for (; k < n_l2; ++k, er += kL, ql += nq, ql2 += nq) {
        s += residual(er, ql);
        t += residual(er + 1, ql2);
      }
      for (; k < n_l; ++k, er += kL, ql += nq) s += residual(er, ql);
      sp[l] = s;
      sp[l + 1] = t;
    }
  }

  // replication i's r (n_grid p) into out
  void extract(const kernels::ThresholdBootView& v, int i, double* out) const {
    const std::int64_t n = v.n_grid * v.p;
    for (std::int64_t g = 0; g < n; ++g) out[g] = r[g][i];
  }
};

}  // namespace panelboot::cpu
