// Property tests: the within estimator against OLS with explicit dummy columns, on random
// panels (balanced and unbalanced, with and without weights), fresh seeds each run.
#include <Eigen/Dense>
#include <random>

#include "helpers.hpp"
#include "panelboot/design.hpp"
#include "panelboot/estimate.hpp"

using namespace panelboot;

namespace {

struct Panel {
  DataFrame df;
  std::vector<int> unit, time, cl;
  std::vector<double> y, w;
  std::vector<std::vector<double>> x;
};

Column numeric(const std::string& name, const std::vector<double>& v) {
  Column c;
  c.name = name;
  c.num = v;
  return c;
}

Panel random_panel(std::mt19937_64& rng, bool balanced, int n_units, int n_t, int k) {
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0.5, 2.0);
  Panel p;
  std::vector<double> ua(n_units), ta(n_t);
  for (auto& a : ua) a = nd(rng);
  for (auto& a : ta) a = nd(rng);
  p.x.resize(k);
  const int n_groups = std::max(3, n_units / 4);
  for (int i = 0; i < n_units; ++i)
    for (int t = 0; t < n_t; ++t) {
      if (!balanced && std::uniform_real_distribution<double>(0, 1)(rng) < 0.25) continue;
      p.unit.push_back(i);
      p.time.push_back(t);
      p.cl.push_back(i % n_groups);  // clusters coarser than units: unit FE nested
      double yv = ua[i] + ta[t];
      for (int j = 0; j < k; ++j) {
        const double xv = nd(rng) + 0.7 * ua[i] - 0.4 * ta[t] * j;
        p.x[j].push_back(xv);
        yv += (j + 1) * 0.5 * xv;
      }
      p.y.push_back(yv + nd(rng));
      p.w.push_back(ud(rng));
    }
  auto as_d = [](const std::vector<int>& v) { return std::vector<double>(v.begin(), v.end()); };
  p.df.source = "random";
  p.df.columns.push_back(numeric("unit", as_d(p.unit)));
  p.df.columns.push_back(numeric("time", as_d(p.time)));
  p.df.columns.push_back(numeric("cl", as_d(p.cl)));
  p.df.columns.push_back(numeric("y", p.y));
  p.df.columns.push_back(numeric("w", p.w));
  for (int j = 0; j < k; ++j) p.df.columns.push_back(numeric("x" + std::to_string(j + 1), p.x[j]));
  p.df.row_line.resize(p.y.size());
  for (std::size_t r = 0; r < p.y.size(); ++r) p.df.row_line[r] = static_cast<std::uint32_t>(r + 2);
  return p;
}

struct Brute {
  Eigen::VectorXd beta, se_cluster;
};

// OLS with explicit dummies for unit and time (time's first level dropped), rows scaled by
// sqrt(w); clustered SE with every column counted in K (areg's convention).
Brute brute_force(const Panel& p, int n_units, int n_t, int k, bool weighted) {
  const Eigen::Index n = static_cast<Eigen::Index>(p.y.size());
  const Eigen::Index cols = k + n_units + n_t - 1;
  Eigen::MatrixXd X = Eigen::MatrixXd::Zero(n, cols);
  Eigen::VectorXd y(n);
  for (Eigen::Index r = 0; r < n; ++r) {
    const double s = weighted ? std::sqrt(p.w[r]) : 1.0;
    for (int j = 0; j < k; ++j) X(r, j) = s * p.x[j][r];
    X(r, k + p.unit[r]) = s;
    if (p.time[r] > 0) X(r, k + n_units + p.time[r] - 1) = s;
    y(r) = s * p.y[r];
  }
  // drop all-zero dummy columns (units or periods absent after unbalancing)
  std::vector<Eigen::Index> keep;
  for (Eigen::Index c = 0; c < cols; ++c)
    if (X.col(c).squaredNorm() > 0) keep.push_back(c);
  Eigen::MatrixXd Xk(n, static_cast<Eigen::Index>(keep.size()));
  for (std::size_t a = 0; a < keep.size(); ++a) Xk.col(a) = X.col(keep[a]);
  Eigen::ColPivHouseholderQR<Eigen::MatrixXd> qr(Xk);
  const Eigen::VectorXd b = qr.solve(y);
  const Eigen::VectorXd u = y - Xk * b;
  const Eigen::MatrixXd bread = (Xk.transpose() * Xk).inverse();
  int G = 0;
  for (int c : p.cl) G = std::max(G, c + 1);
  Eigen::MatrixXd S = Eigen::MatrixXd::Zero(G, Xk.cols());
  for (Eigen::Index r = 0; r < n; ++r) S.row(p.cl[r]) += Xk.row(r) * u(r);
  const double N = static_cast<double>(n), K = static_cast<double>(qr.rank());
  const Eigen::MatrixXd V = (G / (G - 1.0)) * ((N - 1) / (N - K)) * bread * (S.transpose() * S) * bread;
  Brute out;
  out.beta = b.head(k);
  out.se_cluster = V.diagonal().head(k).cwiseSqrt();
  return out;
}

}  // namespace

TEST(FitProperty, WithinEqualsExplicitDummiesOnRandomPanels) {
  const std::uint64_t seed = pbtest::fresh_seed();
  SCOPED_TRACE("PB_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int rep = 0; rep < 24; ++rep) {
    const bool balanced = rep % 2 == 0, weighted = (rep / 2) % 2 == 1;
    const int n_units = 8 + static_cast<int>(rng() % 25), n_t = 3 + static_cast<int>(rng() % 6), k = 1 + static_cast<int>(rng() % 3);
    Panel p = random_panel(rng, balanced, n_units, n_t, k);
    // an unbalanced draw can leave no more rows than parameters (PB_SEED=3032: 11 rows for 11),
    // which fit refuses, or so few more that the residuals vanish and both SEs are rounding
    // noise near 1e-16 (PB_SEED=3716): redraw until 4 residual degrees of freedom remain
    while (p.df.n_rows() < static_cast<std::size_t>(k + n_units + n_t + 4)) p = random_panel(rng, balanced, n_units, n_t, k);
    // every unit and period must be present for the brute-force column count; redraw if not
    std::string rhs;
    for (int j = 0; j < k; ++j) rhs += (j ? " + x" : "x") + std::to_string(j + 1);
    SampleOptions so;
    so.cluster = {"cl"};
    so.keep_singletons = true;  // the dummy regression keeps them too
    if (weighted) so.weights = "w";
    Design d = build_design(p.df, parse_formula("y ~ " + rhs + " | unit + time"), so);
    FitOptions fo;
    fo.vcov = VcovType::kCluster;
    fo.dof_fe = DofFe::kAll;
    // the alternating projections stop when a sweep moves nothing by more than tol x scale; their
    // distance to the exact projection can be several times that when convergence is slow, so the
    // comparison at 1e-9 runs them to 1e-13, and the default tolerance (1e-10) is held to 1e-7
    Design d_default = d;  // (fit demeans its design in place)
    const FitResult fr_default = fit(d_default, fo);
    fo.demean.tol = 1e-13;
    const FitResult fr = fit(d, fo);
    const Brute b = brute_force(p, n_units, n_t, k, weighted);
    SCOPED_TRACE("rep " + std::to_string(rep) + (balanced ? " balanced" : " unbalanced") +
                 (weighted ? " weighted" : ""));
    ASSERT_EQ(fr.coefficients.size(), static_cast<std::size_t>(k));
    for (int j = 0; j < k; ++j) {
      EXPECT_NEAR(fr.coefficients[j].estimate, b.beta(j), 1e-10 * std::fabs(b.beta(j)) + 1e-13);
      EXPECT_NEAR(fr.coefficients[j].std_error, b.se_cluster(j), 1e-9 * b.se_cluster(j));
      EXPECT_NEAR(fr_default.coefficients[j].estimate, b.beta(j), 1e-7 * std::fabs(b.beta(j)) + 1e-10);
      EXPECT_NEAR(fr_default.coefficients[j].std_error, b.se_cluster(j), 1e-7 * b.se_cluster(j));
    }
    if (balanced && !weighted) {
      EXPECT_EQ(fr.demean_method, "balanced two-way");
    }
    // an "unbalanced" draw that dropped no row is balanced (PB_SEED=3967) and demeaned exactly
    if (!balanced && p.df.n_rows() < static_cast<std::size_t>(n_units * n_t)) {
      EXPECT_EQ(fr.demean_method, "alternating projections");
    }
  }
}

TEST(FitProperty, NestedConventionDiffersFromAregByTheKnownFactor) {
  // With unit FE nested in clusters, the two conventions differ only through (N-1)/(N-K).
  PB_FRESH_RNG(rng);
  Panel p = random_panel(rng, true, 20, 5, 2);
  SampleOptions so;
  so.cluster = {"unit"};
  const Formula fm = parse_formula("y ~ x1 + x2 | unit + time");
  FitOptions fo;
  fo.vcov = VcovType::kCluster;
  Design d1 = build_design(p.df, fm, so);
  const FitResult nested = fit(d1, fo);
  fo.dof_fe = DofFe::kAll;
  Design d2 = build_design(p.df, fm, so);
  const FitResult all = fit(d2, fo);
  const double N = 100, K_nested = 2 + 5, K_all = 2 + 20 + 5 - 1;
  EXPECT_EQ(nested.dof_k, K_nested);
  EXPECT_EQ(all.dof_k, K_all);
  const double ratio = std::sqrt((N - K_all) / (N - K_nested));
  EXPECT_NEAR(nested.coefficients[0].std_error / all.coefficients[0].std_error, ratio, 1e-12);
}

TEST(FitProperty, CollinearRegressorsAreDroppedByName) {
  PB_FRESH_RNG(rng);
  Panel p = random_panel(rng, true, 10, 4, 2);
  // z = x1 + 2 x2 (collinear with the regressors); u = the unit id (collinear with unit FE)
  std::vector<double> z(p.y.size()), uu(p.y.size());
  for (std::size_t r = 0; r < z.size(); ++r) {
    z[r] = p.x[0][r] + 2 * p.x[1][r];
    uu[r] = p.unit[r] * 3.0;
  }
  p.df.columns.push_back(numeric("z", z));
  p.df.columns.push_back(numeric("u", uu));
  Design d = build_design(p.df, parse_formula("y ~ x1 + x2 + z + u | unit + time"), {});
  const FitResult fr = fit(d, {});
  ASSERT_EQ(fr.coefficients.size(), 2u);
  ASSERT_EQ(fr.dropped.size(), 2u);
  EXPECT_EQ(fr.dropped[0], "z (collinear with other regressors)");
  EXPECT_EQ(fr.dropped[1], "u (collinear with the fixed effects)");
}
