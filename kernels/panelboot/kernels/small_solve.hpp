#pragma once
// Small dense symmetric positive-definite solves (normal equations of one regression), shared by
// the CPU backend's batched OLS and the CUDA kernel (one thread per item).
#include <cmath>
#include <cstdint>

#include "panelboot/kernels/hd.hpp"

namespace panelboot::kernels {

enum class SolveStatus : int { kOk = 0, kSingular = 1, kNotFinite = 2 };

// N > 0 fixes n = N at compile time: the device then unrolls every loop and keeps A and b in
// registers (the same operations in the same order as N = 0, where n is read at run time).

// The lower Cholesky factor of symmetric A (n x n, column-major, lda = n; the lower triangle is
// read and overwritten) in place; false when a pivot is not above pivot_floor (rank deficient).
template <int N = 0>
PB_HD inline bool cholesky_factor(int n_, double* A, double pivot_floor) {
  const int n = N > 0 ? N : n_;
  PB_UNROLL
  for (int j = 0; j < n; ++j) {
    double d = A[j + j * n];
    PB_UNROLL
    for (int k = 0; k < j; ++k) d -= A[j + k * n] * A[j + k * n];
    if (!(d > pivot_floor)) return false;
    const double l = sqrt(d);
    A[j + j * n] = l;
    PB_UNROLL
    for (int i = j + 1; i < n; ++i) {
      double s = A[i + j * n];
      PB_UNROLL
      for (int k = 0; k < j; ++k) s -= A[i + k * n] * A[j + k * n];
      A[i + j * n] = s / l;
    }
  }
  return true;
}

// b <- L^-1 b for the lower factor L (n x n, column-major, lda = n).
template <int N = 0>
PB_HD inline void forward_solve(int n_, const double* L, double* b) {
  const int n = N > 0 ? N : n_;
  PB_UNROLL
  for (int i = 0; i < n; ++i) {
    double s = b[i];
    PB_UNROLL
    for (int k = 0; k < i; ++k) s -= L[i + k * n] * b[k];
    b[i] = s / L[i + i * n];
  }
}

// Solves A x = b in place for symmetric A (n x n, column-major, lda = n; only the lower triangle
// is read and is overwritten by the Cholesky factor L). A pivot below rel_tol times the largest
// diagonal entry, as for a rank-deficient design, marks the item singular and x is left NaN.
template <int N = 0>
PB_HD inline SolveStatus cholesky_solve(int n_, double* A, double* b, double rel_tol = 1e-12) {
  const int n = N > 0 ? N : n_;
  double dmax = 0;
  PB_UNROLL
  for (int j = 0; j < n; ++j) {
    const double d = A[j + j * n];
    if (!(d == d) || d > 1.7976931348623157e308 || d < -1.7976931348623157e308) {
      PB_UNROLL
      for (int i = 0; i < n; ++i) b[i] = ::nan("");
      return SolveStatus::kNotFinite;
    }
    if (d > dmax) dmax = d;
  }
  if (dmax <= 0 || !cholesky_factor<N>(n, A, rel_tol * dmax)) {
    PB_UNROLL
    for (int i = 0; i < n; ++i) b[i] = ::nan("");
    return SolveStatus::kSingular;
  }
  forward_solve<N>(n, A, b);
  PB_UNROLL
  for (int i = n - 1; i >= 0; --i) {  // L' x = z
    double s = b[i];
    PB_UNROLL
    for (int k = i + 1; k < n; ++k) s -= A[k + i * n] * b[k];
    b[i] = s / A[i + i * n];
  }
  return SolveStatus::kOk;
}

}  // namespace panelboot::kernels
