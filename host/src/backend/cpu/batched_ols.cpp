// Batched OLS on the CPU (cuda/batched_ols.cu is its twin): each item's normal equations summed
// in observation order, solved by the shared Cholesky (kernels/small_solve.hpp).
#include <limits>

#include "backend/cpu/cpu.hpp"

namespace panelboot::cpu {

OlsBatchResult batched_ols(const OlsBatch& bt) {
  const std::int64_t n = bt.n_obs, k = bt.n_reg;
  OlsBatchResult r;
  r.beta.assign(static_cast<std::size_t>(k * bt.n_batch), 0.0);
  r.ssr.assign(static_cast<std::size_t>(bt.n_batch), 0.0);
  r.status.assign(static_cast<std::size_t>(bt.n_batch), 0);
#pragma omp parallel
  {
    std::vector<double> A(static_cast<std::size_t>(k * k));
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < bt.n_batch; ++b) {
      const double* X = bt.X + b * bt.stride_x;
      const double* y = bt.y + b * bt.stride_y;
      double* beta = r.beta.data() + b * k;
      // X'X (lower triangle) and X'y, each a dot product summed in observation order
      for (std::int64_t j = 0; j < k; ++j) {
        for (std::int64_t l = j; l < k; ++l) {
          double s = 0;
          for (std::int64_t i = 0; i < n; ++i) s += X[i + l * n] * X[i + j * n];
          A[static_cast<std::size_t>(l + j * k)] = s;
        }
        double s = 0;
        for (std::int64_t i = 0; i < n; ++i) s += X[i + j * n] * y[i];
        beta[j] = s;
      }
      const auto st = kernels::cholesky_solve(static_cast<int>(k), A.data(), beta, bt.rel_tol);
      r.status[static_cast<std::size_t>(b)] = static_cast<int>(st);
      double ssr = 0;
      if (st == kernels::SolveStatus::kOk) {
        for (std::int64_t i = 0; i < n; ++i) {
          double e = y[i];
          for (std::int64_t j = 0; j < k; ++j) e -= X[i + j * n] * beta[j];
          ssr += e * e;
        }
      } else {
        ssr = std::numeric_limits<double>::quiet_NaN();
      }
      r.ssr[static_cast<std::size_t>(b)] = ssr;
    }
  }
  return r;
}

}  // namespace panelboot::cpu
