#pragma once
// Reference distributions for inference: Student t and F through the regularized incomplete
// beta function (continued fraction, Lentz's method).
namespace panelboot {

double incomplete_beta(double a, double b, double x);  // I_x(a, b)
double t_two_sided_p(double t, double df);              // P(|T| > |t|)
double t_quantile(double p, double df);                 // P(T <= q) = p
double f_upper_p(double f, double df1, double df2);     // P(F > f)
double normal_two_sided_p(double z);

}  // namespace panelboot
