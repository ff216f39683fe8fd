// Property tests for 2SLS: absorbed fixed effects against explicit dummy columns, and the
// diagnostics against a direct computation of their formulas from the dummy regression, on
// random panels (balanced and unbalanced, weighted, one- and two-way clusters), fresh seeds.
#include <Eigen/Dense>
#include <map>
#include <random>

#include "helpers.hpp"
#include "panelboot/design.hpp"
#include "panelboot/distributions.hpp"
#include "panelboot/estimate.hpp"

using namespace panelboot;

namespace {

using Mat = Eigen::MatrixXd;
using Vec = Eigen::VectorXd;

using pbtest::numeric_column;

struct IvPanel {
  DataFrame df;
  std::vector<int> unit, time, cl;
  std::vector<double> y, d, x1, z1, z2, w;
  int n_units = 0, n_t = 0, n_groups = 0;
};

// d is endogenous (shares v with y's error); z1, z2 move it; unit and period effects everywhere.
IvPanel random_iv_panel(std::mt19937_64& rng, bool balanced, int n_units, int n_t) {
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0.5, 2.0), u01(0, 1);
  IvPanel p;
  p.n_units = n_units;
  p.n_t = n_t;
  p.n_groups = std::max(4, n_units / 3);
  std::vector<double> ua(n_units), ta(n_t);
  for (auto& a : ua) a = nd(rng);
  for (auto& a : ta) a = nd(rng);
  for (int i = 0; i < n_units; ++i)
    for (int t = 0; t < n_t; ++t) {
      // unit 0 and period 0 keep every row, so every dummy has a row
      if (!balanced && i > 0 && t > 0 && u01(rng) < 0.25) continue;
      const double x = nd(rng) + 0.5 * ua[i], z1 = nd(rng) + 0.3 * ta[t], z2 = nd(rng) - 0.4 * ua[i];
      const double v = nd(rng), e = nd(rng);
      const double d = 0.8 * z1 + 0.5 * z2 + 0.3 * x + ua[i] + ta[t] + v;
      p.unit.push_back(i);
      p.time.push_back(t);
      p.cl.push_back(i % p.n_groups);  // unit FE nested in the clusters
      p.x1.push_back(x);
      p.z1.push_back(z1);
      p.z2.push_back(z2);
      p.d.push_back(d);
      p.y.push_back(1.5 * d + 0.5 * x + ua[i] - ta[t] + e + 0.6 * v);
      p.w.push_back(ud(rng));
    }
  auto as_d = [](const std::vector<int>& v) { return std::vector<double>(v.begin(), v.end()); };
  p.df.source = "random";
  p.df.columns = {numeric_column("unit", as_d(p.unit)), numeric_column("time", as_d(p.time)), numeric_column("cl", as_d(p.cl)),
                  numeric_column("y", p.y),  numeric_column("d", p.d), numeric_column("x1", p.x1), numeric_column("z1", p.z1),
                  numeric_column("z2", p.z2), numeric_column("w", p.w)};
  p.df.row_line.resize(p.y.size());
  for (std::size_t r = 0; r < p.y.size(); ++r) p.df.row_line[r] = static_cast<std::uint32_t>(r + 2);
  return p;
}

// The dense problem with dummies, rows scaled by sqrt(w): D = [unit dummies, time dummies but
// the first], X = [d x1 D] (regressors), W = [z1 z2 x1 D] (instruments).
struct Dense {
  Mat X, W, D;
  Vec y;
};

Dense dense(const IvPanel& p, bool weighted) {
  const auto n = static_cast<Eigen::Index>(p.y.size());
  const Eigen::Index nd = p.n_units + p.n_t - 1;
  Dense m;
  m.D = Mat::Zero(n, nd);
  m.X.resize(n, 2 + nd);
  m.W.resize(n, 3 + nd);
  m.y.resize(n);
  for (Eigen::Index r = 0; r < n; ++r) {
    const double s = weighted ? std::sqrt(p.w[r]) : 1.0;
    m.D(r, p.unit[r]) = s;
    if (p.time[r] > 0) m.D(r, p.n_units + p.time[r] - 1) = s;
    m.y(r) = s * p.y[r];
    m.X(r, 0) = s * p.d[r];
    m.X(r, 1) = m.W(r, 2) = s * p.x1[r];
    m.W(r, 0) = s * p.z1[r];
    m.W(r, 1) = s * p.z2[r];
  }
  m.X.rightCols(nd) = m.D;
  m.W.rightCols(nd) = m.D;
  return m;
}

Mat inverse(const Mat& A) { return A.ldlt().solve(Mat::Identity(A.rows(), A.cols())); }

// sum over groups of (sum_{i in g} s_i)(...)' for scores S (N x q).
Mat cluster_sum(const Mat& S, const std::vector<int>& code) {
  int G = 0;
  for (int c : code) G = std::max(G, c + 1);
  Mat T = Mat::Zero(G, S.cols());
  for (Eigen::Index r = 0; r < S.rows(); ++r) T.row(code[r]) += S.row(r);
  return T.transpose() * T;
}

int levels(const std::vector<int>& code) {
  int G = 0;
  for (int c : code) G = std::max(G, c + 1);
  return G;
}

Mat scores(const Mat& M, const Vec& e) { return M.array().colwise() * e.array(); }

// residuals of the columns of A on B
Mat resid(const Mat& A, const Mat& B) { return A - B * B.colPivHouseholderQr().solve(A); }

struct BruteIv {
  Vec beta, se_cl1, se_cl2;
  double kp_lm, kp_wald_f, first_f, effective_f, hansen_j;
};

// 2SLS and the diagnostics from the dense dummy problem, by their formulas (METHODS.md section 5
// and docs/IV.md), every FE level counted in K (--dof-fe all).
BruteIv brute_iv(const IvPanel& p, bool weighted) {
  const Dense m = dense(p, weighted);
  const double N = static_cast<double>(m.y.size());
  const Mat PW = m.W * inverse(m.W.transpose() * m.W) * m.W.transpose();
  const Mat Xh = PW * m.X;
  const Mat bread = inverse(Xh.transpose() * Xh);
  BruteIv b;
  const Vec beta = bread * Xh.transpose() * m.y;
  const Vec u = m.y - m.X * beta;
  b.beta = beta.head(2);
  const double K = static_cast<double>(m.X.cols());
  const double G1 = levels(p.cl), G2 = p.n_t;
  std::vector<int> both(p.cl.size());
  for (std::size_t r = 0; r < both.size(); ++r) both[r] = p.cl[r] * p.n_t + p.time[r];
  std::vector<int> dense_both = both;  // densify the intersection codes
  {
    std::map<int, int> ids;
    for (int& c : dense_both) c = ids.emplace(c, static_cast<int>(ids.size())).first->second;
  }
  const double G12 = levels(dense_both), small = (N - 1) / (N - K);
  const Mat S = scores(Xh, u);
  const Mat V1 = G1 / (G1 - 1) * small * bread * cluster_sum(S, p.cl) * bread;
  const Mat V2 = small * bread *
                 (G1 / (G1 - 1) * cluster_sum(S, p.cl) + G2 / (G2 - 1) * cluster_sum(S, p.time) -
                  G12 / (G12 - 1) * cluster_sum(S, dense_both)) *
                 bread;
  b.se_cl1 = V1.diagonal().head(2).cwiseSqrt();
  b.se_cl2 = V2.diagonal().head(2).cwiseSqrt();
  // diagnostics, one-way clusters: the first stage of d on W
  const Mat Bw = inverse(m.W.transpose() * m.W);
  const Vec pi_all = Bw * m.W.transpose() * m.X.col(0);
  const Vec pi = pi_all.head(2);
  const Vec v = m.X.col(0) - m.W * pi_all;
  const Mat Bzz = Bw.topLeftCorner(2, 2), Q = inverse(Bzz);
  const Mat V_raw = (Bw * cluster_sum(scores(m.W, v), p.cl) * Bw).topLeftCorner(2, 2);
  const double K_first = static_cast<double>(m.W.cols()), L = 2;
  const double kp_wald = pi.dot(V_raw.ldlt().solve(pi));
  b.kp_wald_f = kp_wald / (N - 1) * (N - K_first) * (G1 - 1) / G1 / L;
  b.first_f = pi.dot((V_raw * (N - 1) / (N - K_first) * G1 / (G1 - 1)).ldlt().solve(pi)) / L;
  // LM: the residuals under pi = 0, d on the exogenous columns only
  const Mat exo = m.W.rightCols(m.W.cols() - 2);
  const Vec e0 = resid(m.X.col(0), exo);
  const Mat V_lm = (Bw * cluster_sum(scores(m.W, e0), p.cl) * Bw).topLeftCorner(2, 2);
  b.kp_lm = pi.dot(V_lm.ldlt().solve(pi));
  // effective F: Var(pi) with N/(N - K_first), no G/(G-1)
  const Mat V_eff = V_raw * N / (N - K_first);
  b.effective_f = pi.dot(Q * pi) / (V_eff * Q).trace();
  // Hansen's J: two-step GMM on the partialled instruments, weight from the 2SLS residuals
  const Mat Zt = resid(m.W.leftCols(2), exo);
  const Vec dt = resid(m.X.col(0), exo), yt = resid(m.y, exo);
  const Mat omega_inv = inverse(cluster_sum(scores(Zt, u), p.cl));
  const Vec ZY = Zt.transpose() * dt, Zy = Zt.transpose() * yt;
  const double b2 = ZY.dot(omega_inv * Zy) / ZY.dot(omega_inv * ZY);
  const Vec g = Zy - ZY * b2;
  b.hansen_j = g.dot(omega_inv * g);
  return b;
}

void expect_rel(double actual, double expected, double rel, const std::string& what) {
  EXPECT_NEAR(actual, expected, rel * std::fabs(expected)) << what;
}

}  // namespace

TEST(IvProperty, AbsorbedEqualsExplicitDummiesWithEveryDiagnostic) {
  PB_FRESH_RNG(rng);
  for (int rep = 0; rep < 12; ++rep) {
    const bool balanced = rep % 2 == 0, weighted = (rep / 2) % 2 == 1;
    const int n_units = 12 + static_cast<int>(rng() % 20), n_t = 3 + static_cast<int>(rng() % 6);
    const IvPanel p = random_iv_panel(rng, balanced, n_units, n_t);
    SCOPED_TRACE("rep " + std::to_string(rep) + (balanced ? " balanced" : " unbalanced") + (weighted ? " weighted" : ""));
    const BruteIv b = brute_iv(p, weighted);
    const Formula fm = parse_formula("y ~ x1 | unit + time | d ~ z1 + z2");
    FitOptions fo;
    fo.vcov = VcovType::kCluster;
    fo.dof_fe = DofFe::kAll;
    fo.multiway_adj = MultiwayAdj::kEach;
    fo.demean.tol = 1e-14;  // the comparison is of the 2SLS algebra, not of the projections' stop
    for (int ways = 1; ways <= 2; ++ways) {
      SampleOptions so;
      so.cluster = ways == 1 ? std::vector<std::string>{"cl"} : std::vector<std::string>{"cl", "time"};
      so.keep_singletons = true;  // the dummy regression keeps them too
      if (weighted) so.weights = "w";
      Design d = build_design(p.df, fm, so);
      const FitResult fr = fit(d, fo);
      ASSERT_TRUE(fr.iv);
      ASSERT_EQ(fr.coefficients.size(), 2u);
      EXPECT_EQ(fr.coefficients[0].name, "d");
      const Vec& se = ways == 1 ? b.se_cl1 : b.se_cl2;
      for (int j = 0; j < 2; ++j) {
        expect_rel(fr.coefficients[j].estimate, b.beta(j), 1e-10, "beta " + std::to_string(j));
        if (std::isnan(se(j))) {  // a two-way variance can be negative: no SE on either side
          EXPECT_TRUE(std::isnan(fr.coefficients[j].std_error));
          continue;
        }
        expect_rel(fr.coefficients[j].std_error, se(j), 1e-10, "se " + std::to_string(ways) + "-way " + std::to_string(j));
      }
      if (ways == 2) continue;
      const IvDiagnostics& dg = fr.iv->diagnostics;
      expect_rel(dg.kp_rk_wald_f, b.kp_wald_f, 1e-9, "KP rk Wald F");
      expect_rel(dg.kp_rk_lm, b.kp_lm, 1e-9, "KP rk LM");
      expect_rel(fr.iv->first_stages[0].f_stat, b.first_f, 1e-9, "first-stage F");
      expect_rel(dg.effective_f, b.effective_f, 1e-9, "effective F");
      expect_rel(dg.hansen_j, b.hansen_j, 1e-8, "Hansen J");
      EXPECT_EQ(dg.kp_rk_lm_df, 2.0);
      EXPECT_EQ(dg.hansen_j_df, 1.0);
      // one endogenous regressor: the KP rk Wald F is the cluster-robust first-stage F
      expect_rel(dg.kp_rk_wald_f, fr.iv->first_stages[0].f_stat, 1e-10, "KP F = first-stage F");
    }
  }
}

TEST(IvProperty, OneInstrumentEffectiveFIsTheRobustFirstStageFAndItsCriticalValueIs23) {
  PB_FRESH_RNG(rng);
  const IvPanel p = random_iv_panel(rng, false, 25, 5);
  Design d = build_design(p.df, parse_formula("y ~ x1 | unit + time | d ~ z1"), {});
  FitOptions fo;
  fo.vcov = VcovType::kHc1;
  const FitResult fr = fit(d, fo);
  const IvDiagnostics& dg = fr.iv->diagnostics;
  expect_rel(dg.effective_f, fr.iv->first_stages[0].f_stat, 1e-10, "F_eff = robust F");
  EXPECT_NEAR(dg.effective_f_k_eff, 1.0, 1e-12);
  // Montiel Olea-Pflueger's one-instrument threshold: chi2^-1(0.95; 1, 10) = 23.1085
  EXPECT_NEAR(dg.effective_f_crit_simplified, 23.1085, 5e-4);
  EXPECT_TRUE(std::isnan(dg.hansen_j));  // exactly identified
  // homoskedastic: the effective F is the first-stage F too (MOP: F_eff = F under iid errors)
  Design di = build_design(p.df, parse_formula("y ~ x1 | unit + time | d ~ z1"), {});
  FitOptions fi;
  const FitResult fr_iid = fit(di, fi);
  expect_rel(fr_iid.iv->diagnostics.effective_f, fr_iid.iv->first_stages[0].f_stat, 1e-10, "iid F_eff = F");
  EXPECT_EQ(dg.j_name, "Hansen J");
  // the generalized critical value: B_TSLS <= 1 makes it at most the simplified one
  EXPECT_GT(dg.mop_b_tsls, 0.0);
  EXPECT_LE(dg.mop_b_tsls, 1.0);
  EXPECT_LE(dg.effective_f_crit, dg.effective_f_crit_simplified + 1e-9);
  // clustered: weakivtest's scaling has no G/(G-1), the first-stage F has it
  SampleOptions so;
  so.cluster = {"cl"};
  Design dc = build_design(p.df, parse_formula("y ~ x1 | unit + time | d ~ z1"), so);
  fo.vcov = VcovType::kCluster;
  const FitResult fc = fit(dc, fo);
  const double N = static_cast<double>(fc.n_obs), G = fc.min_clusters();
  expect_rel(fc.iv->diagnostics.effective_f, fc.iv->first_stages[0].f_stat * G / (G - 1) * (N - 1) / N, 1e-10,
             "clustered F_eff");
}

TEST(IvProperty, SmallNoDropsTheFactorAndUsesTheNormalReference) {
  PB_FRESH_RNG(rng);
  const IvPanel p = random_iv_panel(rng, true, 20, 6);
  const Formula fm = parse_formula("y ~ x1 | unit + time | d ~ z1 + z2");
  SampleOptions so;
  so.cluster = {"cl"};
  FitOptions fo;
  fo.vcov = VcovType::kCluster;
  Design d1 = build_design(p.df, fm, so);
  const FitResult small = fit(d1, fo);
  fo.small = false;
  Design d2 = build_design(p.df, fm, so);
  const FitResult large = fit(d2, fo);
  const double N = static_cast<double>(small.n_obs), G = small.min_clusters(), K = small.dof_k;
  const double factor = G / (G - 1) * (N - 1) / (N - K);
  expect_rel(small.coefficients[0].std_error / large.coefficients[0].std_error, std::sqrt(factor), 1e-12, "ratio");
  EXPECT_EQ(large.reference, "N(0,1)");
  EXPECT_NEAR(large.coefficients[0].p_value, normal_two_sided_p(large.coefficients[0].t_stat), 1e-14);
  // the diagnostics are the same in both forms (ivreg2: unaffected by small)
  expect_rel(large.iv->diagnostics.kp_rk_wald_f, small.iv->diagnostics.kp_rk_wald_f, 1e-12, "KP F");
  expect_rel(large.iv->first_stages[0].f_stat, small.iv->first_stages[0].f_stat, 1e-12, "first-stage F");
}
