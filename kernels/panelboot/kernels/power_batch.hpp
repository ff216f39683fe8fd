#pragma once
// power's regressions over one fixed design (power.hpp; Backend::fixed_design_ols): a batch of
// error columns at once, row-major, so that the innermost loops run over the batch's columns
// (vectorized) and each column's sums keep one order whatever else the batch holds. Host code
// shared by the CPU backend (column blocks in parallel) and the Backend's default.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace panelboot::kernels {

// One group's fixed demeaned design and batches of simulated,
// within-transformed error columns e_b over it. For each column b:
//   d_b = A X~' e_b (k),  u_b = e_b - X~ d_b,
//   v_b = sum_S w_S sum_{c in S} (sum_{i in c} xa_i u_ib)^2   (the target's CRVE variance,
//         xa = X~ A e_target, w_S the terms' signed small-sample weights)
// Each column's arithmetic is the same whatever the batch (its sums run over i, then over c, in
// order), so results do not depend on the batch size or thread count.
struct FixedDesign {
  std::int64_t n = 0, k = 0;
  const double* X = nullptr;   // n x k, column-major: X~
  const double* A = nullptr;   // k x k, column-major: (X~'X~)^-1
  const double* xa = nullptr;  // n
  int target = 0;
  std::vector<const std::int32_t*> term_code;  // [S] each observation's cluster in term S
  std::vector<std::int32_t> term_levels;       // [S] its number of clusters
  std::vector<double> term_weight;             // [S] w_S
};
struct FixedDesignBatch {
  const double* E = nullptr;  // n x nb, row-major: column b of row i at E[i nb + b]
  std::int64_t nb = 0;
};
struct FixedDesignResult {
  std::vector<double> U;         // n x nb, row-major: the residuals
  std::vector<double> d_target;  // nb: the target's row of d
  std::vector<double> variance;  // nb: v_b
};

constexpr std::int64_t kFixedDesignBlock = 64;  // columns per block (a thread's unit on the CPU)

// The result's arrays, sized for the batch and zeroed.
inline FixedDesignResult fixed_design_result(const FixedDesign& d, const FixedDesignBatch& bt) {
  FixedDesignResult out;
  out.U.assign(static_cast<std::size_t>(d.n * bt.nb), 0.0);
  out.d_target.assign(static_cast<std::size_t>(bt.nb), 0.0);
  out.variance.assign(static_cast<std::size_t>(bt.nb), 0.0);
  return out;
}

// Columns b0 .. b1-1 of the batch (out's arrays sized for the whole batch).
inline void fixed_design_columns(const FixedDesign& d, const FixedDesignBatch& bt, std::int64_t b0, std::int64_t b1, FixedDesignResult& out) {
  const std::int64_t n = d.n, k = d.k, nb = bt.nb, w = b1 - b0;
  std::vector<double> xte(static_cast<std::size_t>(k * w), 0.0), dv(static_cast<std::size_t>(k * w), 0.0);
  for (std::int64_t kk = 0; kk < k; ++kk) {  // X~'E
    double* acc = xte.data() + kk * w;
    for (std::int64_t i = 0; i < n; ++i) {
      const double x = d.X[kk * n + i];
      const double* e = bt.E + i * nb + b0;
      for (std::int64_t b = 0; b < w; ++b) acc[b] += x * e[b];
    }
  }
  for (std::int64_t j = 0; j < k; ++j)  // d = A X~'E
    for (std::int64_t kk = 0; kk < k; ++kk) {
      const double a = d.A[kk * k + j];
      const double* src = xte.data() + kk * w;
      double* dst = dv.data() + j * w;
      for (std::int64_t b = 0; b < w; ++b) dst[b] += a * src[b];
    }
  for (std::int64_t i = 0; i < n; ++i) {  // u = e - X~ d
    double* u = out.U.data() + i * nb + b0;
    const double* e = bt.E + i * nb + b0;
    for (std::int64_t b = 0; b < w; ++b) u[b] = e[b];
    for (std::int64_t kk = 0; kk < k; ++kk) {
      const double x = d.X[kk * n + i];
      const double* dk = dv.data() + kk * w;
      for (std::int64_t b = 0; b < w; ++b) u[b] -= x * dk[b];
    }
  }
  std::copy(dv.data() + d.target * w, dv.data() + (d.target + 1) * w, out.d_target.data() + b0);
  std::vector<double> score;
  for (std::size_t s = 0; s < d.term_code.size(); ++s) {  // the target's cluster scores, squared
    const std::int32_t C = d.term_levels[s];
    score.assign(static_cast<std::size_t>(C * w), 0.0);
    for (std::int64_t i = 0; i < n; ++i) {
      double* sc = score.data() + static_cast<std::int64_t>(d.term_code[s][i]) * w;
      const double xa = d.xa[i];
      const double* u = out.U.data() + i * nb + b0;
      for (std::int64_t b = 0; b < w; ++b) sc[b] += xa * u[b];
    }
    for (std::int64_t b = 0; b < w; ++b) {
      double ss = 0;
      for (std::int32_t c = 0; c < C; ++c) ss += score[static_cast<std::size_t>(c * w + b)] * score[static_cast<std::size_t>(c * w + b)];
      out.variance[static_cast<std::size_t>(b0 + b)] += d.term_weight[s] * ss;
    }
  }
}

}  // namespace panelboot::kernels
