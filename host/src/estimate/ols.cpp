// FE OLS: within transform, collinearity screen, a stable solve, then the chosen variance.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <unordered_map>

#include "estimate/detail.hpp"
#include "panelboot/distributions.hpp"
#include "panelboot/error.hpp"
#include "panelboot/estimate.hpp"

namespace panelboot {

namespace detail {

// X'X and X'y summed over fixed row chunks in chunk order, so the bits do not depend on the
// thread count.
void gram(const double* X, const double* y, std::size_t n_obs, std::size_t n_reg,
          Eigen::MatrixXd& xtx, Eigen::VectorXd& xty) {
  const std::size_t chunk = kRowChunk;
  const std::size_t n_chunks = (n_obs + chunk - 1) / chunk;
  const Eigen::Index k = static_cast<Eigen::Index>(n_reg);
  std::vector<Eigen::MatrixXd> part_xx(n_chunks);
  std::vector<Eigen::VectorXd> part_xy(n_chunks);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t c = 0; c < static_cast<std::ptrdiff_t>(n_chunks); ++c) {
    const std::size_t b = static_cast<std::size_t>(c) * chunk;
    const Eigen::Index m = static_cast<Eigen::Index>(std::min(chunk, n_obs - b));
    Eigen::Map<const Eigen::MatrixXd, 0, Eigen::OuterStride<>> Xc(
        X + b, m, k, Eigen::OuterStride<>(static_cast<Eigen::Index>(n_obs)));
    Eigen::Map<const Eigen::VectorXd> yc(y + b, m);
    part_xx[c].noalias() = Xc.transpose() * Xc;
    part_xy[c].noalias() = Xc.transpose() * yc;
  }
  xtx = Eigen::MatrixXd::Zero(k, k);
  xty = Eigen::VectorXd::Zero(k);
  for (std::size_t c = 0; c < n_chunks; ++c) {
    xtx += part_xx[c];
    xty += part_xy[c];
  }
}

}  // namespace detail

namespace {

// The collinearity screen compares each column's sums of squares: they must neither overflow
// (many values near 1e154) nor underflow to zero for a column that is not zero (values near
// 1e-160), or a regressor would be silently dropped. Rescaling is the user's call.
void refuse_unscaled(const std::string& name, double sum_sq, double max_abs) {
  if (!std::isfinite(sum_sq))
    throw InvalidInput("the sum of squares of '" + name + "' overflows double precision; rescale it (divide it by a power of ten)");
  if (sum_sq == 0 && max_abs > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", max_abs);
    throw InvalidInput("the values of '" + name + "' are so small (largest " + buf +
                       ") that their squares underflow to zero; rescale it (multiply it by a power of ten)");
  }
}

// Why standard errors came out as zero, and what to do: one line for the model. `first` is the
// first such coefficient with its figures; `names` all of them.
std::string zero_se_warning(const std::vector<std::string>& names, const std::string& first, const FitResult& r) {
  std::string list;
  for (std::size_t i = 0; i < names.size() && i < 5; ++i) list += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > 5) list += " and " + std::to_string(names.size() - 5) + " more";
  std::string why = "the " + r.vcov_type + " standard error" + (names.size() > 1 ? "s of " : " of ") + list +
                    (names.size() > 1 ? " are" : " is") + " numerically zero (" + first + ")";
  if (r.vcov_type == "cluster") {
    why += ": with " + std::to_string(r.min_clusters()) + " clusters the cluster-robust variance has no information about " +
           (names.size() > 1 ? "them" : "it");
  } else {
    why += ": the model fits (almost) exactly";
  }
  return why + "; t, p-value and CI not reported (NA)";
}

}  // namespace

bool se_is_zero(double se, double estimate, double se_iid) {
  return se <= kZeroSeRel * std::max(std::fabs(estimate), se_iid);
}

FitResult fit(Design& d, const FitOptions& opts) {
  FitResult res;
  res.formula = d.formula;
  res.y_name = d.y_name;
  res.data_source = d.data_source;
  res.simulated = d.simulated;
  res.n_obs = d.n_obs;
  res.n_input = d.n_input;
  res.n_dropped_where = d.n_dropped_where;
  res.n_dropped_missing = d.n_dropped_missing;
  res.n_singletons = d.n_singletons;
  res.missing_by_variable = d.missing_by_variable;
  res.level = opts.level;
  const std::size_t n = d.n_obs;
  const std::size_t k_all = d.n_reg;
  for (const Grouping& g : d.fe) {
    res.fe_names.push_back(g.name);
    res.fe_levels.push_back(g.n_levels);
  }

  // Totals before demeaning: the outcome's TSS about its (weighted) mean, and each column's
  // uncentered sum of squares (a column the FE absorb loses all of it).
  const double* w = d.w.empty() ? nullptr : d.w.data();
  double wsum = 0, ymean = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double wi = w ? w[i] : 1.0;
    wsum += wi;
    ymean += wi * d.y[i];
  }
  ymean /= wsum;
  double tss_total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double wi = w ? w[i] : 1.0;
    tss_total += wi * (d.y[i] - ymean) * (d.y[i] - ymean);
  }
  std::vector<double> raw_ss(k_all, 0.0);
  for (std::size_t j = 0; j < k_all; ++j) {
    const double* x = d.X.data() + j * n;
    double max_abs = 0;
    for (std::size_t i = 0; i < n; ++i) {
      raw_ss[j] += (w ? w[i] : 1.0) * x[i] * x[i];
      max_abs = std::max(max_abs, std::fabs(x[i]));
    }
    refuse_unscaled(d.x_names[j], raw_ss[j], max_abs);
  }
  refuse_unscaled(d.y_name, tss_total, tss_total > 0 ? 1.0 : 0.0);

  // 1. Within transform of y and X (in place), then scale rows by sqrt(w).
  std::vector<FeView> views;
  for (const Grouping& g : d.fe) views.push_back({g.code.data(), g.n_levels});
  Demeaner dm(views, n, w);
  std::vector<std::string> names = d.x_names;
  DemeanReport rep = dm.demean(d.y.data(), 1, n, opts.demean, {d.y_name});
  DemeanReport repx = dm.demean(d.X.data(), k_all, n, opts.demean, names);
  res.demean_method = rep.method;
  res.demean_iterations = std::max(rep.max_iterations, repx.max_iterations);
  if (w) {
    std::vector<double> sw(n);
    for (std::size_t i = 0; i < n; ++i) sw[i] = std::sqrt(w[i]);
    for (std::size_t i = 0; i < n; ++i) d.y[i] *= sw[i];
    for (std::size_t j = 0; j < k_all; ++j) {
      double* x = d.X.data() + j * n;
      for (std::size_t i = 0; i < n; ++i) x[i] *= sw[i];
    }
  }
  double tss_within = 0;
  for (std::size_t i = 0; i < n; ++i) tss_within += d.y[i] * d.y[i];

  // 2. Gram matrix and collinearity screen (in formula order; later columns give way).
  Eigen::MatrixXd xtx;
  Eigen::VectorXd xty;
  detail::gram(d.X.data(), d.y.data(), n, k_all, xtx, xty);
  std::vector<std::size_t> keep;
  {
    // Sequential Cholesky on the unit-diagonal scaled Gram: a column whose squared distance to
    // the span of the kept columns is below 1e-9 of its length is dropped.
    Eigen::MatrixXd L = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(k_all), static_cast<Eigen::Index>(k_all));
    std::vector<double> scale(k_all);
    for (std::size_t j = 0; j < k_all; ++j) scale[j] = xtx(j, j) > 0 ? 1.0 / std::sqrt(xtx(j, j)) : 0.0;
    for (std::size_t j = 0; j < k_all; ++j) {
      if (!(xtx(j, j) > 1e-10 * raw_ss[j]) || raw_ss[j] == 0) {
        res.dropped.push_back(names[j] + (d.fe.empty() ? " (constant zero)" : " (collinear with the fixed effects)"));
        continue;
      }
      // row j of L over the kept columns
      double diag = 1.0;
      std::vector<double> row(keep.size());
      for (std::size_t a = 0; a < keep.size(); ++a) {
        const std::size_t ka = keep[a];
        double v = xtx(j, ka) * scale[j] * scale[ka];
        for (std::size_t b = 0; b < a; ++b) v -= row[b] * L(a, b);
        v /= L(a, a);
        row[a] = v;
        diag -= v * v;
      }
      if (diag < 1e-9) {
        res.dropped.push_back(names[j] + " (collinear with other regressors)");
        continue;
      }
      const std::size_t a = keep.size();
      for (std::size_t b = 0; b < a; ++b) L(a, b) = row[b];
      L(a, a) = std::sqrt(diag);
      keep.push_back(j);
    }
  }
  if (keep.empty())
    throw InvalidInput("formula '" + d.formula + "': every regressor was dropped as collinear (" +
                       [&] { std::string s; for (auto& x : res.dropped) s += (s.empty() ? "" : ", ") + x; return s; }() + ")");
  const std::size_t k = keep.size();
  if (k < k_all) {
    // compact X to the kept columns
    for (std::size_t a = 0; a < k; ++a)
      if (keep[a] != a)
        std::copy(d.X.begin() + keep[a] * n, d.X.begin() + (keep[a] + 1) * n, d.X.begin() + a * n);
    d.X.resize(n * k);
    std::vector<std::string> kept_names;
    for (std::size_t j : keep) kept_names.push_back(names[j]);
    names = kept_names;
    Eigen::MatrixXd xx(k, k);
    Eigen::VectorXd xy(k);
    for (std::size_t a = 0; a < k; ++a) {
      xy(a) = xty(keep[a]);
      for (std::size_t b = 0; b < k; ++b) xx(a, b) = xtx(keep[a], keep[b]);
    }
    xtx = xx;
    xty = xy;
  }

  // 3. Degrees of freedom: K and the nesting rule.
  double fe_dof = 0;
  if (!d.fe.empty()) {
    for (const Grouping& g : d.fe) fe_dof += g.n_levels;
    fe_dof -= static_cast<double>(d.fe.size() - 1);
  }
  const bool clustered = opts.vcov == VcovType::kCluster;
  double nested_dof = 0;
  if (clustered && opts.dof_fe == DofFe::kNested) {
    for (const Grouping& g : d.fe)
      for (const Grouping& c : d.clusters)
        if (nested_in(g, c)) {
          nested_dof += g.n_levels - 1;
          res.nested_fe.push_back(g.name);
          break;
        }
  }
  if (clustered)
    for (const Grouping& c : d.clusters)
      if (c.n_levels < 2)
        throw InvalidInput("cluster variable '" + c.name + "' has a single level in the estimation "
                           "sample; cluster-robust inference needs at least two clusters (use "
                           "--vcov hc1, or another cluster variable)");
  const double K = static_cast<double>(k) + fe_dof - nested_dof;
  res.dof_k = K;
  const double N = static_cast<double>(n);
  const double K_all = static_cast<double>(k) + fe_dof;
  if (N <= K_all)
    throw InvalidInput("formula '" + d.formula + "': " + std::to_string(n) + " observations but " +
                       std::to_string(static_cast<long long>(K_all)) +
                       " parameters (regressors plus fixed-effect levels); the model needs more "
                       "observations than parameters");

  // 4. Solve on the scaled Gram (unit diagonal) with one step of iterative refinement.
  Eigen::VectorXd s = xtx.diagonal().cwiseSqrt().cwiseInverse();
  const Eigen::MatrixXd A = s.asDiagonal() * xtx * s.asDiagonal();
  Eigen::LDLT<Eigen::MatrixXd> ldlt(A);
  Eigen::VectorXd beta = s.asDiagonal() * ldlt.solve(s.asDiagonal() * xty);
  Eigen::MatrixXd bread = s.asDiagonal() * ldlt.solve(Eigen::MatrixXd::Identity(k, k)) * s.asDiagonal();
  bread = 0.5 * (bread + bread.transpose());
  {
    Eigen::VectorXd corr = xty - xtx * beta;
    beta += s.asDiagonal() * ldlt.solve(s.asDiagonal() * corr);
  }
  // residuals (in the sqrt(w)-scaled space), written over the demeaned outcome
  double* u = d.y.data();
  {
    Eigen::Map<const Eigen::MatrixXd> X(d.X.data(), static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(k));
    Eigen::Map<Eigen::VectorXd> uu(u, static_cast<Eigen::Index>(n));
    uu.noalias() -= X * beta;
  }
  double rss = 0;
  for (std::size_t i = 0; i < n; ++i) rss += u[i] * u[i];
  res.rss = rss;
  res.r2 = 1.0 - rss / tss_total;
  res.r2_within = d.fe.empty() ? std::numeric_limits<double>::quiet_NaN() : 1.0 - rss / tss_within;
  res.sigma = std::sqrt(rss / (N - K_all));

  // 5. Variance.
  detail::VcovInput in{d, names, d.X.data(), u, n, k, bread, N, K, K_all, opts};
  detail::VcovOutput vo = detail::compute_vcov(in);
  res.vcov = vo.V;
  res.beta = beta;
  res.bread = bread;
  res.vcov_type = vo.type;
  res.vcov_label = vo.label;
  res.df_inference = vo.df;
  res.reference = vo.reference;
  res.cluster_names = vo.cluster_names;
  res.n_clusters = vo.n_clusters;
  res.dk_lag = vo.dk_lag;
  res.warnings = vo.warnings;
  if (res.n_singletons)
    res.warnings.push_back(std::to_string(res.n_singletons) + " singleton observation(s) dropped");

  // 6. Coefficient table.
  const double alpha = 1.0 - opts.level;
  const double crit = t_quantile(1 - alpha / 2, res.df_inference);
  std::vector<std::string> zero_se;
  std::string zero_se_first;
  for (std::size_t a = 0; a < k; ++a) {
    Coefficient c;
    c.name = names[a];
    c.estimate = beta(a);
    const double var = res.vcov(a, a);
    c.std_error = var >= 0 ? std::sqrt(var) : std::numeric_limits<double>::quiet_NaN();
    c.t_stat = c.estimate / c.std_error;
    c.p_value = t_two_sided_p(c.t_stat, res.df_inference);
    c.ci_low = c.estimate - crit * c.std_error;
    c.ci_high = c.estimate + crit * c.std_error;
    const double se_iid = res.sigma * std::sqrt(bread(a, a));
    if (se_is_zero(c.std_error, c.estimate, se_iid)) {
      if (zero_se.empty()) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "%.3g, against an estimate of %.6g and a homoskedastic SE of %.3g",
                      c.std_error, c.estimate, se_iid);
        zero_se_first = buf;
      }
      zero_se.push_back(c.name);
      c.t_stat = c.p_value = c.ci_low = c.ci_high = std::numeric_limits<double>::quiet_NaN();
    }
    res.coefficients.push_back(c);
  }
  if (!zero_se.empty()) {
    res.serious_warnings.push_back(zero_se_warning(zero_se, zero_se_first, res));
    res.warnings.push_back(res.serious_warnings.back());
  }

  // 7. Joint Wald tests: W = (Rb - r)' (R V R')^-1 (Rb - r), F = W / q on (q, df).
  for (const std::string& h : opts.wald) {
    std::vector<LinearRestriction> rows = parse_restrictions(h, names);
    const Eigen::Index q = static_cast<Eigen::Index>(rows.size());
    Eigen::MatrixXd R(q, k);
    Eigen::VectorXd r(q);
    for (Eigen::Index i = 0; i < q; ++i) {
      R.row(i) = rows[i].R.transpose();
      r(i) = rows[i].r;
    }
    const Eigen::VectorXd diff = R * beta - r;
    const Eigen::MatrixXd RVR = R * res.vcov * R.transpose();
    WaldTest t;
    if (!detail::wald_f(diff, RVR, t.f_stat))
      throw InvalidInput("--wald '" + h + "': the restrictions are linearly dependent or the variance "
                         "of R b is singular; remove redundant rows");
    t.hypothesis = h;
    t.q = static_cast<int>(q);
    t.df1 = static_cast<double>(q);
    t.df2 = res.df_inference;
    t.p_value = f_upper_p(t.f_stat, t.df1, t.df2);
    res.wald.push_back(t);
  }
  return res;
}

}  // namespace panelboot
