#pragma once
// Reference distributions for inference: Student t and F through the regularized incomplete
// beta function (continued fraction, Lentz's method); chi-square (central and noncentral, df may
// be fractional) through the regularized incomplete gamma function.
namespace panelboot {

double incomplete_beta(double a, double b, double x);  // I_x(a, b)
double t_two_sided_p(double t, double df);              // P(|T| > |t|)
double t_quantile(double p, double df);                 // P(T <= q) = p
// P(F > f); df2 = infinity gives the chi2(df1)/df1 limit (large-sample Wald tests).
double f_upper_p(double f, double df1, double df2);
double normal_two_sided_p(double z);
double gamma_p(double a, double x);                      // regularized lower incomplete gamma P(a, x)
double chi2_upper_p(double x, double df);                // P(chi2(df) > x)
double noncentral_chi2_cdf(double x, double df, double lambda);       // P(chi2(df, lambda) <= x)
double noncentral_chi2_quantile(double p, double df, double lambda);  // its inverse in x

}  // namespace panelboot
