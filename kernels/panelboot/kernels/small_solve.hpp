#pragma once
// Small dense symmetric positive-definite solves (normal equations of one regression), shared by
// the CPU backend's batched OLS and the CUDA kernel (one thread per item).
#include <cmath>
#include <cstdint>

#include "panelboot/kernels/hd.hpp"

namespace panelboot::kernels {

enum class SolveStatus : int { kOk = 0, kSingular = 1, kNotFinite = 2 };

// Solves A x = b in place for symmetric A (n x n, column-major, lda = n; only the lower triangle
// is read and is overwritten by the Cholesky factor L). A pivot below rel_tol times the largest
// diagonal entry, as for a rank-deficient design, marks the item singular and x is left NaN.
PB_HD inline SolveStatus cholesky_solve(int n, double* A, double* b, double rel_tol = 1e-12) {
  double dmax = 0;
  for (int j = 0; j < n; ++j) {
    const double d = A[j + j * n];
    if (!(d == d) || d > 1.7976931348623157e308 || d < -1.7976931348623157e308) {
      for (int i = 0; i < n; ++i) b[i] = ::nan("");
      return SolveStatus::kNotFinite;
    }
    if (d > dmax) dmax = d;
  }
  for (int j = 0; j < n; ++j) {
    double d = A[j + j * n];
    for (int k = 0; k < j; ++k) d -= A[j + k * n] * A[j + k * n];
    if (!(d > rel_tol * dmax) || dmax <= 0) {
      for (int i = 0; i < n; ++i) b[i] = ::nan("");
      return SolveStatus::kSingular;
    }
    const double l = sqrt(d);
    A[j + j * n] = l;
    for (int i = j + 1; i < n; ++i) {
      double s = A[i + j * n];
      for (int k = 0; k < j; ++k) s -= A[i + k * n] * A[j + k * n];
      A[i + j * n] = s / l;
    }
  }
  for (int i = 0; i < n; ++i) {  // L z = b
    double s = b[i];
    for (int k = 0; k < i; ++k) s -= A[i + k * n] * b[k];
    b[i] = s / A[i + i * n];
  }
  for (int i = n - 1; i >= 0; --i) {  // L' x = z
    double s = b[i];
    for (int k = i + 1; k < n; ++k) s -= A[k + i * n] * b[k];
    b[i] = s / A[i + i * n];
  }
  return SolveStatus::kOk;
}

}  // namespace panelboot::kernels
