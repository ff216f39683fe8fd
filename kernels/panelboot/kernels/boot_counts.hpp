#pragma once
// Bootstrap exceedance counts and the wild bootstrap's per-replication statistic, shared by the
// CPU backend, the CUDA kernels and the Thrust code compiled for the host (PB_HD, no library).
#include <cmath>
#include <cstdint>

#include "panelboot/kernels/hd.hpp"

namespace panelboot::kernels {

// Counts of bootstrap statistics against the observed t. A statistic within tol of the
// threshold is a tie: counted under the inclusive rule, not under the strict one.
struct BootCounts {
  std::int64_t abs = 0, upper = 0, lower = 0, finite = 0;
};
PB_HD inline BootCounts operator+(const BootCounts& a, const BootCounts& b) {
  BootCounts c;
  c.abs = a.abs + b.abs;
  c.upper = a.upper + b.upper;
  c.lower = a.lower + b.lower;
  c.finite = a.finite + b.finite;
  return c;
}

// How one stored statistic stands for replications: itself; itself and its negation (an
// enumerated sign vector and its mirror, q = 1); itself twice (the mirror of a Wald statistic).
enum class Pairs : int { kSingle = 0, kNegated = 1, kDoubled = 2 };

// Adds statistic s (non-finite ones are skipped) to c.
PB_HD inline void count_one(double s, double t, double tol, bool inclusive, BootCounts& c) {
  const double as = s < 0 ? -s : s, at = t < 0 ? -t : t;
  if (!(as <= 1.7976931348623157e308)) return;  // NaN or inf
  ++c.finite;
  if (inclusive) {
    c.abs += as >= at - tol;
    c.upper += s >= t - tol;
    c.lower += s <= t + tol;
  } else {
    c.abs += as > at + tol;
    c.upper += s > t + tol;
    c.lower += s < t - tol;
  }
}

PB_HD inline void count_stat(double s, double t, double tol, bool inclusive, Pairs pairs, BootCounts& c) {
  count_one(s, t, tol, inclusive, c);
  if (pairs == Pairs::kNegated) count_one(-s, t, tol, inclusive, c);
  if (pairs == Pairs::kDoubled) count_one(s, t, tol, inclusive, c);
}

// The wild bootstrap t of one replication at delta = R b - r: numerator n0 + delta n1 over the
// square root of d0 + 2 delta d1 + delta^2 d2 (WCR residuals are affine in r). Written in this
// order everywhere so every backend rounds alike.
PB_HD inline double wild_t(double n0, double n1, double d0, double d1, double d2, double delta) {
  return (n0 + delta * n1) / sqrt(d0 + 2 * delta * d1 + delta * delta * d2);
}

// The stored coefficients of every replication (column arrays; n1, d1, d2 may be null: zero).
struct WildCoefView {
  const double *n0 = nullptr, *n1 = nullptr, *d0 = nullptr, *d1 = nullptr, *d2 = nullptr;
  std::int64_t n_rep = 0;
};

// Counts of replication b at delta; as a functor for a transform-reduce over b.
struct WildCountOp {
  WildCoefView cf;
  double delta = 0, t = 0, tol = 0;
  bool inclusive = false;
  Pairs pairs = Pairs::kSingle;
  PB_HD BootCounts operator()(std::int64_t b) const {
    BootCounts c;
    const double s = wild_t(cf.n0[b], cf.n1 ? cf.n1[b] : 0.0, cf.d0[b], cf.d1 ? cf.d1[b] : 0.0,
                            cf.d2 ? cf.d2[b] : 0.0, delta);
    count_stat(s, t, tol, inclusive, pairs, c);
    return c;
  }
};

struct BootCountsPlus {
  PB_HD BootCounts operator()(const BootCounts& a, const BootCounts& b) const { return a + b; }
};

}  // namespace panelboot::kernels
