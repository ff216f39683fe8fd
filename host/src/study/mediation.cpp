// Mediation (the study's Table 9): the indirect effect a*b of x through m, its delta-method SE
// from the cross-equation cluster-robust covariance, the Sobel SE, and the wild cluster
// bootstrap percentile interval (study.hpp gives the derivation).
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "panelboot/distributions.hpp"
#include "panelboot/error.hpp"
#include "panelboot/study.hpp"
#include "panelboot/text.hpp"

namespace panelboot {
namespace {

// One equation after its fit: the coefficient of interest, its SE, and each cluster's score
// psi_g = e_j' A X~_g' u_g (so that the clustered variance is factor * sum_g psi_g^2).
struct EquationScores {
  double estimate = 0, se = 0, factor = 0;
  std::vector<double> psi;
};

Eigen::Index coefficient_index(const FitResult& fr, const std::string& name, const std::string& equation) {
  for (std::size_t j = 0; j < fr.coefficients.size(); ++j)
    if (fr.coefficients[j].name == name) return static_cast<Eigen::Index>(j);
  throw InvalidInput("mediation: " + quoted(name) + " is not a coefficient of the " + equation + " equation (" +
                     fr.formula + ")");
}

// The caller has checked that d has exactly one cluster variable.
EquationScores fit_and_score(Design& d, const FitOptions& fo, const std::string& name, const std::string& equation) {
  const FitResult fr = fit(d, fo);
  const Eigen::Index j = coefficient_index(fr, name, equation);
  const auto n = static_cast<Eigen::Index>(d.n_obs), k = static_cast<Eigen::Index>(fr.beta.size());
  const Eigen::Map<const Eigen::MatrixXd> X(d.X.data(), n, k);
  const Eigen::RowVectorXd arow = fr.bread.row(j);
  const Grouping& g = d.clusters[0];
  EquationScores s;
  s.estimate = fr.beta(j);
  s.se = fr.coefficients[static_cast<std::size_t>(j)].std_error;
  s.psi.assign(static_cast<std::size_t>(g.n_levels), 0.0);
  for (Eigen::Index i = 0; i < n; ++i)
    s.psi[static_cast<std::size_t>(g.code[static_cast<std::size_t>(i)])] +=
        arow.dot(X.row(i)) * d.y[static_cast<std::size_t>(i)];
  s.factor = clustering_terms(d.clusters, fo.multiway_adj, static_cast<double>(d.n_obs), fr.dof_k, fo.small)[0].weight;
  return s;
}

void check_same_sample(const Design& a, const Design& b) {
  if (a.n_obs != b.n_obs || a.rows != b.rows || a.clusters[0].code != b.clusters[0].code)
    throw InvalidInput("mediation: the two equations have different samples (" + std::to_string(a.n_obs) + " and " +
                       std::to_string(b.n_obs) + " observations); both must use the same rows");
}

// The level's percentile interval of the sorted draws: the order statistics at ceil(n alpha/2)
// and ceil(n (1 - alpha/2)) (1-based), as boottest and Stata's estat bootstrap, percentile.
std::pair<double, double> percentile_interval(std::vector<double> draws, double level) {
  std::sort(draws.begin(), draws.end());
  const double n = static_cast<double>(draws.size()), alpha = 1 - level;
  auto at = [&](double q) {
    const double pos = std::ceil(n * q - 1e-9);
    const auto k = static_cast<std::size_t>(std::min(std::max(pos, 1.0), n));
    return draws[k - 1];
  };
  return {at(alpha / 2), at(1 - alpha / 2)};
}

// z with P(|Z| > z) = 1 - level, by bisection on the two-sided normal p-value.
double normal_critical_value(double level) {
  double lo = 0, hi = 40;
  for (int it = 0; it < 200; ++it) {
    const double mid = (lo + hi) / 2;
    (normal_two_sided_p(mid) > 1 - level ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

}  // namespace

MediationResult mediation(Design& eq_a, Design& eq_b, const FitOptions& fo, const MediationOptions& mo,
                          bool keep_draws) {
  if (eq_a.clusters.size() != 1 || eq_b.clusters.size() != 1)
    throw InvalidInput("mediation needs exactly one cluster variable");
  check_same_sample(eq_a, eq_b);
  const EquationScores sa = fit_and_score(eq_a, fo, mo.x, "mediator");
  const EquationScores sb = fit_and_score(eq_b, fo, mo.m, "outcome");
  MediationResult r;
  r.n_obs = eq_a.n_obs;
  r.n_clusters = eq_a.clusters[0].n_levels;
  r.a = sa.estimate;
  r.se_a = sa.se;
  r.b = sb.estimate;
  r.se_b = sb.se;
  double cross = 0;
  for (std::size_t g = 0; g < sa.psi.size(); ++g) cross += sa.psi[g] * sb.psi[g];
  r.cov_ab = std::sqrt(sa.factor * sb.factor) * cross;
  r.corr_ab = r.cov_ab / (r.se_a * r.se_b);
  r.indirect = r.a * r.b;
  const double var_sobel = r.b * r.b * r.se_a * r.se_a + r.a * r.a * r.se_b * r.se_b;
  r.se_sobel = std::sqrt(var_sobel);
  r.se_delta = std::sqrt(std::max(0.0, var_sobel + 2 * r.a * r.b * r.cov_ab));
  r.z_delta = r.indirect / r.se_delta;
  r.p_delta = normal_two_sided_p(r.z_delta);
  r.p_sobel = normal_two_sided_p(r.indirect / r.se_sobel);
  const double z = normal_critical_value(mo.level);
  r.ci_delta_low = r.indirect - z * r.se_delta;
  r.ci_delta_high = r.indirect + z * r.se_delta;
  // the bootstrap: a* = a + sqrt(m_a) sum_g v_g psi_a,g, b* likewise, with the same v_g: the
  // residuals scaled by each equation's small-sample factor, so that Var*(a*) is the reported
  // clustered Var(a)
  const double scale_a = std::sqrt(sa.factor), scale_b = std::sqrt(sb.factor);
  if (mo.n_boot < 1) throw InvalidInput("mediation: the bootstrap needs at least one replication");
  std::vector<double> draws(static_cast<std::size_t>(mo.n_boot));
  std::int64_t below = 0, above = 0;
  for (std::int64_t rep = 0; rep < mo.n_boot; ++rep) {
    double da = 0, db = 0;
    for (std::size_t g = 0; g < sa.psi.size(); ++g) {
      const double v = kernels::wild_weight(mo.seed, static_cast<std::uint64_t>(rep), static_cast<std::uint32_t>(g),
                                            mo.weight);
      da += v * sa.psi[g];
      db += v * sb.psi[g];
    }
    const double ab = (r.a + scale_a * da) * (r.b + scale_b * db);
    draws[static_cast<std::size_t>(rep)] = ab;
    below += ab <= 0;
    above += ab >= 0;
  }
  r.n_boot = mo.n_boot;
  const auto [lo, hi] = percentile_interval(draws, mo.level);
  r.ci_boot_low = lo;
  r.ci_boot_high = hi;
  r.p_boot = std::min(1.0, 2.0 * static_cast<double>(std::min(below, above)) / static_cast<double>(mo.n_boot));
  if (keep_draws) r.boot_draws = std::move(draws);
  return r;
}

}  // namespace panelboot
