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
  if (std::isinf(df2)) return chi2_upper_p(f * df1, df1);  // F(q, inf) = chi2(q) / q
  return incomplete_beta(0.5 * df2, 0.5 * df1, df2 / (df2 + df1 * f));
}

namespace {
// P(a, x) by its series, for x < a + 1.
double gamma_series(double a, double x) {
  double sum = 1.0 / a, term = sum;
  for (int n = 1; n < 100000; ++n) {
    term *= x / (a + n);
    sum += term;
    if (std::fabs(term) < std::fabs(sum) * 1e-17) break;
  }
  return sum * std::exp(-x + a * std::log(x) - std::lgamma(a));
}
// Q(a, x) by its continued fraction (Lentz), for x >= a + 1.
double gamma_cf(double a, double x) {
  const double tiny = 1e-300;
  double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, h = d;
  for (int i = 1; i < 100000; ++i) {
    const double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (std::fabs(d) < tiny) d = tiny;
    c = b + an / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < 1e-16) break;
  }
  return std::exp(-x + a * std::log(x) - std::lgamma(a)) * h;
}
}  // namespace

double gamma_p(double a, double x) {
  if (!(x > 0)) return 0.0;
  if (std::isinf(x)) return 1.0;
  return x < a + 1.0 ? gamma_series(a, x) : 1.0 - gamma_cf(a, x);
}

double chi2_upper_p(double x, double df) {
  if (x != x) return x;
  if (!(x > 0)) return 1.0;
  if (std::isinf(x)) return 0.0;
  return x < 0.5 * df + 1.0 ? 1.0 - gamma_series(0.5 * df, 0.5 * x) : gamma_cf(0.5 * df, 0.5 * x);
}

double noncentral_chi2_cdf(double x, double df, double lambda) {
  if (x != x || !(df > 0) || !(lambda >= 0) || std::isinf(df) || std::isinf(lambda))
    return std::numeric_limits<double>::quiet_NaN();
  if (!(x > 0)) return 0.0;
  if (!(lambda > 0)) return gamma_p(0.5 * df, 0.5 * x);
  // Poisson(lambda/2) mixture of central chi2(df + 2j), summed outwards from the mode.
  const double m = 0.5 * lambda;
  const long j0 = static_cast<long>(std::floor(m));
  auto weight = [&](long j) { return std::exp(-m + j * std::log(m) - std::lgamma(j + 1.0)); };
  double sum = 0;
  for (long j = j0; j < j0 + 100000; ++j) {
    const double w = weight(j);
    sum += w * gamma_p(0.5 * df + j, 0.5 * x);
    if (w < 1e-18 && j > j0 + 10) break;
  }
  for (long j = j0 - 1; j >= 0; --j) {
    const double w = weight(j);
    sum += w * gamma_p(0.5 * df + j, 0.5 * x);
    if (w < 1e-18) break;
  }
  return std::min(1.0, sum);
}

double noncentral_chi2_quantile(double p, double df, double lambda) {
  if (!(p > 0 && p < 1) || !(df > 0) || !(lambda >= 0) || std::isinf(df) || std::isinf(lambda))
    return std::numeric_limits<double>::quiet_NaN();
  double lo = 0.0, hi = df + lambda + 10.0;
  while (noncentral_chi2_cdf(hi, df, lambda) < p && hi < 1e12) hi *= 2.0;
  for (int it = 0; it < 200 && hi - lo > 1e-13 * hi; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (noncentral_chi2_cdf(mid, df, lambda) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace panelboot
