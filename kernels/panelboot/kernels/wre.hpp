#pragma once
// The IV wild bootstrap's per-replication arithmetic (WRE/WUE t, and the wild bootstrap
// Anderson-Rubin F), shared by the CPU backend and the CUDA kernels (PB_HD, no library).
//
// Everything lives in the within-transformed, sqrt(w)-scaled space with the exogenous regressors
// X partialled out: Zt = M_X Z (N x L excluded instruments), Q = (Zt'Zt)^-1, r1 = M_X y1,
// r2 = M_X y2, pihat = Q Zt'r2, m2 = r2 - Zt pihat. Every bootstrap residual vector is a
// combination of the J = L + 2 basis vectors e = [r1, m2, Zt_1 .. Zt_L]:
//   u1~(b0) = r1 - b0 r2                   the restricted structural residuals (WUE: b0 = b_hat)
//   U2~     = r2 - Zt p~                   the efficient first stage's residuals (p~ depends on b0)
// so for the weights v of one replication the G-dimensional work is one product P = K v
// (WreProblem), the same for every null value:
//   P(j, 0, l)     = sum_g v_g Zt_g' e_j,g                       (A_j v)
//   P(j, 1 + c, l) = sum_g v_g Zt_c' [M (e_j 1_g)]_c             each error cluster c
// (M annihilates X and every fixed effect: the bootstrap data are re-demeaned). From P one pass
// over the error clusters gives the replication's moments, which no longer depend on b0:
//   Aa = A_0 v,  Am = A_1 v + sum_k pihat_k A_{2+k} v,  Az_k = A_{2+k} v           (L each)
//   H_c = [a_c, m_c, h_1c .. h_Lc]  (L x (L + 2)),  a_c = P(0, c), m_c = P(1, c) + sum_k pihat_k
//         P(2+k, c), h_kc = (Zt_c'Zt_c)_{:,k} - P(2+k, c)
//   M   = sum_c w_c vec(H_c) vec(H_c)'                          (K x K, K = L (L + 2), packed)
//   s0_c = a_c - ZZQ_c Aa,  s1_c = m_c - ZZQ_c Am  (ZZQ_c = Zt_c'Zt_c Q);
//   O00, O01, O11 = sum_c w_c s0 s0', s0 s1', s1 s1'
// and the statistic at a null value b0 (with the efficient first stage's p~, zzp = Zt'Zt p~) is
// O(K^2) per replication:
//   WRE/WUE t:  alpha = zzp + Am - sum_k p~_k Az_k,  beta = Aa - b0 Am,  pi = Q alpha,
//               num = pi'beta,  den = alpha'pi,  delta = num / den  (= b* - b0),
//               mu = (1, -(b0 + delta), -delta p~),  x = pi (x) mu,  t* = num / sqrt(x'M x)
//               (b0 + delta computed as (pi'Aa + b0 pi'(alpha - Am)) / den)
//   AR F:       beta = Aa - b0 Am,  O = O00 - b0 (O01 + O01') + b0^2 O11,
//               F* = beta' (s O)^-1 beta / L  (s: the AR regression's small-sample factor over
//               the structural one's); |b0| -> infinity: beta = Am, O = O11.
// The derivation is in docs/IV.md. An enumerated sign vector's negation has the negated products
// but not the negated moments (h_kc has a constant part), so each sign gets its own moments.
#include <cmath>
#include <cstdint>

#include "panelboot/kernels/hd.hpp"
#include "panelboot/kernels/small_solve.hpp"

namespace panelboot::kernels {

// The most excluded instruments the fixed-size arrays hold.
constexpr int kMaxWreInstruments = 8;
constexpr int kMaxWreK = kMaxWreInstruments * (kMaxWreInstruments + 2);

PB_HD inline std::int64_t wre_row(int L, std::int64_t C, int j, std::int64_t c1, int l) {
  return (static_cast<std::int64_t>(j) * (C + 1) + c1) * L + l;
}
PB_HD inline std::int64_t wre_rows(int L, std::int64_t C) { return static_cast<std::int64_t>(L + 2) * (C + 1) * L; }

// The moments' layout: Aa, Am, Az (column k = A_{2+k} v), M packed (lower triangle, row by row),
// O00 packed, O01 (L x L, row-major), O11 packed.
struct WreMomentLayout {
  int L = 0;
  PB_HD int K() const { return L * (L + 2); }
  PB_HD std::int64_t aa() const { return 0; }
  PB_HD std::int64_t am() const { return L; }
  PB_HD std::int64_t az() const { return 2 * L; }
  PB_HD std::int64_t m() const { return 2 * L + L * L; }
  PB_HD std::int64_t o00() const { return m() + static_cast<std::int64_t>(K()) * (K() + 1) / 2; }
  PB_HD std::int64_t o01() const { return o00() + L * (L + 1) / 2; }
  PB_HD std::int64_t o11() const { return o01() + L * L; }
  PB_HD std::int64_t size() const { return o11() + L * (L + 1) / 2; }
};
PB_HD inline std::int64_t packed(int a, int b) {  // a >= b
  return static_cast<std::int64_t>(a) * (a + 1) / 2 + b;
}

// The model's constants the moments read (WreProblem's arrays).
struct WreModelView {
  int L = 0;
  std::int64_t C = 0;
  const double* pihat = nullptr;  // [L]
  const double* zz = nullptr;     // [C L L] Zt_c'Zt_c, row-major per cluster
  const double* zzq = nullptr;    // [C L L] Zt_c'Zt_c Q
  const double* row_w = nullptr;  // [C] the variance term's weight of each error cluster
};

// The moments of replications from their products: P(j, c1, l) gives product wre_row(j, c1, l)
// as T, a double (one replication) or, on the CPU, a vector of doubles (one replication a lane,
// the same operations in the same order, so the same bits); out holds lay.size() values of T.
template <class T, class Products>
PB_HD inline void wre_moments_of(const Products& P, const WreModelView& m, T* out) {
  const int L = m.L;
  const WreMomentLayout lay{L};
  const int K = lay.K();
  const std::int64_t C = m.C;
  for (std::int64_t i = 0; i < lay.size(); ++i) out[i] = T{};
  for (int l = 0; l < L; ++l) {
    T am = P(1, 0, l);
    for (int k = 0; k < L; ++k) am += m.pihat[k] * P(2 + k, 0, l);
    out[lay.aa() + l] = P(0, 0, l);
    out[lay.am() + l] = am;
    for (int k = 0; k < L; ++k) out[lay.az() + l + L * k] = P(2 + k, 0, l);
  }
  T h[kMaxWreK], s0[kMaxWreInstruments], s1[kMaxWreInstruments];
  for (std::int64_t c = 0; c < C; ++c) {
    const double* zz = m.zz + c * L * L;
    const double* zq = m.zzq + c * L * L;
    for (int l = 0; l < L; ++l) {
      T mc = P(1, 1 + c, l);
      for (int k = 0; k < L; ++k) mc += m.pihat[k] * P(2 + k, 1 + c, l);
      h[l] = P(0, 1 + c, l);
      h[l + L] = mc;
      for (int k = 0; k < L; ++k) h[l + L * (2 + k)] = zz[l * L + k] - P(2 + k, 1 + c, l);
    }
    const double w = m.row_w[c];
    T* M = out + lay.m();
    for (int a = 0; a < K; ++a)
      for (int b = 0; b <= a; ++b) M[packed(a, b)] += w * (h[a] * h[b]);
    for (int l = 0; l < L; ++l) {
      T r0 = T{}, r1 = T{};
      for (int k = 0; k < L; ++k) {
        r0 += zq[l * L + k] * out[lay.aa() + k];
        r1 += zq[l * L + k] * out[lay.am() + k];
      }
      s0[l] = h[l] - r0;
      s1[l] = h[l + L] - r1;
    }
    for (int a = 0; a < L; ++a) {
      for (int b = 0; b <= a; ++b) {
        out[lay.o00() + packed(a, b)] += w * (s0[a] * s0[b]);
        out[lay.o11() + packed(a, b)] += w * (s1[a] * s1[b]);
      }
      for (int b = 0; b < L; ++b) out[lay.o01() + a * L + b] += w * (s0[a] * s1[b]);
    }
  }
}

// The moments of one replication from its products p (read at p[r * stride]), with every
// product multiplied by `sign` (an enumerated vector's negation).
PB_HD inline void wre_moments(const double* p, std::int64_t stride, double sign,
                              const WreModelView& m, double* out) {
  const int L = m.L;
  const std::int64_t C = m.C;
  const auto P = [&](int j, std::int64_t c1, int l) {
    return sign * p[wre_row(L, C, j, c1, l) * stride];
  };
  wre_moments_of<double>(P, m, out);
}

// One evaluation: the null value and its efficient first stage (t), or the AR test's b0.
struct WreEvalView {
  int L = 0;
  bool ar = false;
  bool at_infinity = false;      // AR: the limit |b0| -> infinity
  double b0 = 0;
  double ar_scale = 1;           // AR: its small-sample factor over the structural one's
  const double* ptilde = nullptr;  // [L] (t)
  const double* zzp = nullptr;     // [L] Zt'Zt p~ (t)
  const double* Q = nullptr;       // [L L] (t)
};

PB_HD inline double wre_t(const double* mom, const WreEvalView& e) {
  const int L = e.L;
  const WreMomentLayout lay{L};
  const int K = lay.K(), Jc = L + 2;
  double alpha[kMaxWreInstruments], beta[kMaxWreInstruments], pi[kMaxWreInstruments], mu[kMaxWreInstruments + 2];
  double x[kMaxWreK];
  for (int l = 0; l < L; ++l) {
    double a = e.zzp[l] + mom[lay.am() + l];
    for (int k = 0; k < L; ++k) a -= e.ptilde[k] * mom[lay.az() + l + L * k];
    alpha[l] = a;
    beta[l] = mom[lay.aa() + l] - e.b0 * mom[lay.am() + l];
  }
  double num = 0, den = 0;
  for (int l = 0; l < L; ++l) {
    double s = 0;
    for (int k = 0; k < L; ++k) s += e.Q[l * L + k] * alpha[k];
    pi[l] = s;
    num += s * beta[l];
    den += alpha[l] * s;
  }
  const double delta = num / den;
  // b0 + delta = (pi'Aa + b0 pi'(alpha - Am)) / den, without cancelling b0 against -b0 when |b0|
  // is large
  double pa = 0, pf = 0;
  for (int l = 0; l < L; ++l) {
    pa += pi[l] * mom[lay.aa() + l];
    pf += pi[l] * (alpha[l] - mom[lay.am() + l]);
  }
  mu[0] = 1;
  mu[1] = -((pa + e.b0 * pf) / den);
  for (int k = 0; k < L; ++k) mu[2 + k] = -delta * e.ptilde[k];
  for (int j = 0; j < Jc; ++j)
    for (int l = 0; l < L; ++l) x[l + L * j] = pi[l] * mu[j];
  const double* M = mom + lay.m();
  double D = 0;
  for (int a = 0; a < K; ++a) {
    double r = 0;
    for (int b = 0; b < a; ++b) r += M[packed(a, b)] * x[b];
    D += x[a] * (2 * r + M[packed(a, a)] * x[a]);
  }
  return num / sqrt(D);
}

PB_HD inline double wre_ar_f(const double* mom, const WreEvalView& e) {
  const int L = e.L;
  const WreMomentLayout lay{L};
  double beta[kMaxWreInstruments], x[kMaxWreInstruments], Om[kMaxWreInstruments * kMaxWreInstruments];
  const double b0 = e.b0;
  for (int l = 0; l < L; ++l) beta[l] = e.at_infinity ? mom[lay.am() + l] : mom[lay.aa() + l] - b0 * mom[lay.am() + l];
  for (int a = 0; a < L; ++a)
    for (int b = 0; b <= a; ++b) {  // lower triangle, column-major for cholesky_solve
      const double o11 = mom[lay.o11() + packed(a, b)];
      const double o = e.at_infinity ? o11
                                     : mom[lay.o00() + packed(a, b)] -
                                           b0 * (mom[lay.o01() + a * L + b] + mom[lay.o01() + b * L + a]) + b0 * b0 * o11;
      Om[a + b * L] = e.ar_scale * o;
    }
  for (int l = 0; l < L; ++l) x[l] = beta[l];
  // a variance of rank below L (as many instruments as clusters) has no statistic
  if (cholesky_solve(L, Om, x, 1e-12) != SolveStatus::kOk) return nan("");
  double f = 0;
  for (int l = 0; l < L; ++l) f += beta[l] * x[l];
  return f / L;
}

PB_HD inline double wre_statistic(const double* mom, const WreEvalView& e) {
  return e.ar ? wre_ar_f(mom, e) : wre_t(mom, e);
}

}  // namespace panelboot::kernels
