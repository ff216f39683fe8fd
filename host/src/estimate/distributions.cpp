#include "panelboot/distributions.hpp"

#include <cmath>
#include <limits>

namespace panelboot {
namespace {
// Continued fraction for I_x(a, b), valid for x < (a + 1) / (a + b + 2).
double beta_cf(double a, double b, double x) {
  const double tiny = 1e-300, eps = 1e-16;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::fabs(d) < tiny) d = tiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 10000; ++m) {
    const double m2 = 2.0 * m;
    double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    d = 1.0 + num * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1.0 + num / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    h *= d * c;
    num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    d = 1.0 + num * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1.0 + num / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < eps) break;
  }
  return h;
}
}  // namespace

double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0.0;
  if (x >= 1) return 1.0;
  const double lbt = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) +
                     b * std::log1p(-x);
  const double bt = std::exp(lbt);
  if (x < (a + 1.0) / (a + b + 2.0)) return bt * beta_cf(a, b, x) / a;
  return 1.0 - bt * beta_cf(b, a, 1.0 - x) / b;
}

double t_two_sided_p(double t, double df) {
  if (!std::isfinite(t)) return t != t ? std::numeric_limits<double>::quiet_NaN() : 0.0;
  if (!(df > 0) || df > 1e7) return normal_two_sided_p(t);  // t(df) -> N(0,1)
  return incomplete_beta(0.5 * df, 0.5, df / (df + t * t));
}

double normal_two_sided_p(double z) { return std::erfc(std::fabs(z) / std::sqrt(2.0)); }

double t_quantile(double p, double df) {
  if (p == 0.5) return 0.0;
  if (p < 0.5) return -t_quantile(1.0 - p, df);
  // Two-sided tail 2(1 - p); bisection on |t| (the tail is monotone), then polish.
  const double target = 2.0 * (1.0 - p);
  double lo = 0.0, hi = 1.0;
  while (t_two_sided_p(hi, df) > target && hi < 1e12) hi *= 2.0;
  for (int it = 0; it < 200 && hi - lo > 1e-15 * hi; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (t_two_sided_p(mid, df) > target) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

double f_upper_p(double f, double df1, double df2) {
  if (!(f > 0)) return f == f ? 1.0 : f;
  return incomplete_beta(0.5 * df2, 0.5 * df1, df2 / (df2 + df1 * f));
}

}  // namespace panelboot
