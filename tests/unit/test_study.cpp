// replicate's building blocks against direct computations: winsor2's cut points (sorted
// quantiles), the PC1 index (the correlation matrix's leading eigenvector, not the SVD the code
// uses), the mediation's delta-method covariance and bootstrap (a refit with explicit dummies per
// replication), and the --map renaming.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <random>

#include "helpers.hpp"
#include "panelboot/error.hpp"
#include "panelboot/formula.hpp"
#include "panelboot/study.hpp"

namespace {
using namespace panelboot;

TEST(StudyData, StataPercentileAveragesAtIntegerPositions) {
  std::vector<double> v(100);
  for (int i = 0; i < 100; ++i) v[static_cast<std::size_t>(i)] = 100 - i;  // 100..1, unsorted
  // n p / 100 = 1 and 99: integers, so the mean of the 1st and 2nd (99th and 100th) values
  EXPECT_EQ(stata_percentile(v, 1), 1.5);
  EXPECT_EQ(stata_percentile(v, 99), 99.5);
  std::vector<double> w(360);
  for (int i = 0; i < 360; ++i) w[static_cast<std::size_t>(i)] = i + 1;
  // 3.6 and 356.4: the 4th and the 357th values
  EXPECT_EQ(stata_percentile(w, 1), 4);
  EXPECT_EQ(stata_percentile(w, 99), 357);
  w.push_back(std::nan(""));  // missing values are left out
  EXPECT_EQ(stata_percentile(w, 1), 4);
}

TEST(StudyData, WinsorizeClampsAtTheSortedQuantiles) {
  PB_FRESH_RNG(rng);
  std::lognormal_distribution<double> d(0, 1.5);
  std::vector<double> v(360);
  for (double& x : v) x = d(rng);
  v[7] = std::nan("");
  v[8] = v[9];  // a tie
  std::vector<double> sorted;
  for (double x : v)
    if (x == x) sorted.push_back(x);
  std::sort(sorted.begin(), sorted.end());
  const std::size_t n = sorted.size();  // 359: 3.59 and 355.41, so the 4th and 356th values
  ASSERT_EQ(n, 359u);
  const double lo = sorted[3], hi = sorted[355];
  std::vector<double> w = v;
  const auto cuts = winsorize(w);
  EXPECT_EQ(cuts.first, lo);
  EXPECT_EQ(cuts.second, hi);
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != v[i]) {
      EXPECT_TRUE(w[i] != w[i]);
      continue;
    }
    EXPECT_EQ(w[i], v[i] < lo ? lo : v[i] > hi ? hi : v[i]);
  }
}

TEST(StudyData, PrincipalComponentIsTheCorrelationMatrixsLeadingEigenvector) {
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  const std::size_t n = 120, p = 5;
  DataFrame df;
  df.source = "test";
  df.row_line.resize(n);
  std::vector<std::vector<double>> cols(p, std::vector<double>(n));
  std::vector<double> orient(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double f = nd(rng);
    for (std::size_t j = 0; j < p; ++j) cols[j][i] = (j + 1.0) * (0.8 * f + 0.6 * nd(rng)) + 3.0 * j;
    orient[i] = -f + 0.3 * nd(rng);  // PC1's sign must follow this, not the loadings
  }
  cols[2][5] = std::nan("");  // a row left out
  std::vector<std::string> names;
  for (std::size_t j = 0; j < p; ++j) {
    names.push_back("v" + std::to_string(j));
    df.columns.push_back(pbtest::numeric_column(names.back(), cols[j]));
  }
  df.columns.push_back(pbtest::numeric_column("o", orient));
  const PrincipalComponent pc = first_principal_component(df, names, "o");
  ASSERT_EQ(pc.n_used, n - 1);
  EXPECT_TRUE(std::isnan(pc.score[5]));
  // the direct route: z-scores, their correlation matrix, its leading eigenvector
  std::vector<std::size_t> rows;
  for (std::size_t i = 0; i < n; ++i)
    if (i != 5) rows.push_back(i);
  Eigen::MatrixXd Z(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(p));
  for (std::size_t j = 0; j < p; ++j) {
    double m = 0, s = 0;
    for (std::size_t r : rows) m += cols[j][r];
    m /= static_cast<double>(rows.size());
    for (std::size_t r : rows) s += (cols[j][r] - m) * (cols[j][r] - m);
    s = std::sqrt(s / static_cast<double>(rows.size() - 1));
    for (std::size_t k = 0; k < rows.size(); ++k)
      Z(static_cast<Eigen::Index>(k), static_cast<Eigen::Index>(j)) = (cols[j][rows[k]] - m) / s;
  }
  const Eigen::MatrixXd C = Z.transpose() * Z / static_cast<double>(rows.size() - 1);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(C);
  const Eigen::VectorXd v = es.eigenvectors().col(static_cast<Eigen::Index>(p) - 1);
  const Eigen::VectorXd score = Z * v;
  const double sd = std::sqrt(score.squaredNorm() / static_cast<double>(rows.size() - 1));
  double dot = 0;
  for (std::size_t j = 0; j < p; ++j) dot += v(static_cast<Eigen::Index>(j)) * pc.loadings[j];
  EXPECT_NEAR(std::fabs(dot), 1.0, 1e-12);
  EXPECT_NEAR(pc.explained, es.eigenvalues()(static_cast<Eigen::Index>(p) - 1) / static_cast<double>(p), 1e-12);
  const double sign = dot > 0 ? 1 : -1;
  double var = 0, cov = 0;
  for (std::size_t k = 0; k < rows.size(); ++k) {
    EXPECT_NEAR(pc.score[rows[k]], sign * score(static_cast<Eigen::Index>(k)) / sd, 1e-10);
    var += pc.score[rows[k]] * pc.score[rows[k]];
    cov += pc.score[rows[k]] * orient[rows[k]];
  }
  EXPECT_NEAR(var / static_cast<double>(rows.size() - 1), 1.0, 1e-12);  // unit variance
  EXPECT_GT(cov, 0);                                                     // oriented to `o`
  EXPECT_GT(pc.corr_with_orient, 0.5);
}

// A small panel: G ids x T periods, x, a mediator m = a x + noise, y = c x + b m + noise, with
// cluster-level shocks, id and period effects.
DataFrame mediation_panel(std::mt19937_64& rng, int G, int T) {
  std::normal_distribution<double> nd;
  DataFrame df;
  df.source = "test";
  std::vector<double> id, t, x, w, m, y;
  for (int g = 0; g < G; ++g) {
    const double ag = nd(rng), sg = nd(rng);
    for (int s = 0; s < T; ++s) {
      id.push_back(g);
      t.push_back(s);
      x.push_back(nd(rng) + 0.5 * ag);
      w.push_back(nd(rng));
      m.push_back(0.7 * x.back() + 0.3 * w.back() + ag + 0.2 * s + nd(rng) * (1 + 0.5 * std::fabs(sg)));
      y.push_back(0.4 * x.back() + 0.5 * m.back() - 0.2 * w.back() + sg + 0.1 * s + nd(rng));
    }
  }
  df.row_line.resize(id.size());
  for (auto& [name, v] : std::vector<std::pair<std::string, std::vector<double>*>>{
           {"id", &id}, {"t", &t}, {"x", &x}, {"w", &w}, {"m", &m}, {"y", &y}})
    df.columns.push_back(pbtest::numeric_column(name, *v));
  return df;
}

// OLS of v on [x w (m) dummies(id) dummies(t)] (explicit dummies, the first period's dropped).
Eigen::VectorXd dummy_ols(const DataFrame& df, const std::vector<double>& v, bool with_m, int G, int T,
                          Eigen::MatrixXd* X_out = nullptr) {
  const std::size_t n = df.n_rows();
  const int k = (with_m ? 3 : 2) + G + (T - 1);
  Eigen::MatrixXd X = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(n), k);
  const auto& x = df.numeric("x").to_vector();
  const auto& w = df.numeric("w").to_vector();
  const auto& m = df.numeric("m").to_vector();
  const auto& id = df.numeric("id").to_vector();
  const auto& t = df.numeric("t").to_vector();
  for (std::size_t i = 0; i < n; ++i) {
    const auto r = static_cast<Eigen::Index>(i);
    int c = 0;
    X(r, c++) = x[i];
    X(r, c++) = w[i];
    if (with_m) X(r, c++) = m[i];
    X(r, c + static_cast<int>(id[i])) = 1;
    if (t[i] > 0) X(r, c + G + static_cast<int>(t[i]) - 1) = 1;
  }
  if (X_out) *X_out = X;
  const Eigen::VectorXd yv = Eigen::Map<const Eigen::VectorXd>(v.data(), static_cast<Eigen::Index>(n));
  return X.colPivHouseholderQr().solve(yv);
}

TEST(Mediation, DeltaCovarianceAndBootstrapEqualARefitWithDummies) {
  PB_FRESH_RNG(rng);
  const int G = 9, T = 6;
  const DataFrame df = mediation_panel(rng, G, T);
  SampleOptions so;
  so.cluster = {"id"};
  Design da = build_design(df, parse_formula("m ~ x + w | id + t"), so);
  Design db = build_design(df, parse_formula("y ~ x + m + w | id + t"), so);
  FitOptions fo;
  fo.vcov = VcovType::kCluster;
  MediationOptions mo;
  mo.x = "x";
  mo.m = "m";
  mo.n_boot = 40;
  mo.seed = rng();
  const MediationResult r = mediation(da, db, fo, mo, true);
  // a and b: the dummy regressions' coefficients
  Eigen::MatrixXd Xa, Xb;
  const Eigen::VectorXd ba = dummy_ols(df, df.numeric("m").to_vector(), false, G, T, &Xa);
  const Eigen::VectorXd bb = dummy_ols(df, df.numeric("y").to_vector(), true, G, T, &Xb);
  EXPECT_NEAR(r.a, ba(0), 1e-10 * std::fabs(ba(0)) + 1e-12);
  EXPECT_NEAR(r.b, bb(2), 1e-10 * std::fabs(bb(2)) + 1e-12);
  EXPECT_NEAR(r.indirect, ba(0) * bb(2), 1e-9 * std::fabs(ba(0) * bb(2)));
  // the cluster scores of each coefficient from the dummy regressions: e_j' (X'X)^-1 sum_g X_g' u_g
  const std::size_t n = df.n_rows();
  const Eigen::VectorXd ua = Eigen::Map<const Eigen::VectorXd>(df.numeric("m").to_vector().data(), static_cast<Eigen::Index>(n)) - Xa * ba;
  const Eigen::VectorXd ub = Eigen::Map<const Eigen::VectorXd>(df.numeric("y").to_vector().data(), static_cast<Eigen::Index>(n)) - Xb * bb;
  const Eigen::MatrixXd Aa = (Xa.transpose() * Xa).inverse(), Ab = (Xb.transpose() * Xb).inverse();
  std::vector<double> psa(G, 0.0), psb(G, 0.0);
  const auto& id = df.numeric("id").to_vector();
  for (std::size_t i = 0; i < n; ++i) {
    const auto r_ = static_cast<Eigen::Index>(i);
    psa[static_cast<std::size_t>(id[i])] += Aa.row(0).dot(Xa.row(r_)) * ua(r_);
    psb[static_cast<std::size_t>(id[i])] += Ab.row(2).dot(Xb.row(r_)) * ub(r_);
  }
  double saa = 0, sbb = 0, sab = 0;
  for (int g = 0; g < G; ++g) {
    saa += psa[static_cast<std::size_t>(g)] * psa[static_cast<std::size_t>(g)];
    sbb += psb[static_cast<std::size_t>(g)] * psb[static_cast<std::size_t>(g)];
    sab += psa[static_cast<std::size_t>(g)] * psb[static_cast<std::size_t>(g)];
  }
  // each variance is the fit's clustered one (its own factor m = se^2 / sum psi^2), the covariance
  // the cross-product with sqrt(m_a m_b)
  const double ma = r.se_a * r.se_a / saa, mb = r.se_b * r.se_b / sbb;
  const double expect_m = G / (G - 1.0) * (n - 1.0) / (n - (2.0 + T));  // K = 2 + (T - 1) + 1 (id nested)
  EXPECT_NEAR(ma, expect_m, 1e-9 * expect_m);
  EXPECT_NEAR(mb, G / (G - 1.0) * (n - 1.0) / (n - (3.0 + T)), 1e-9 * expect_m);
  EXPECT_NEAR(r.cov_ab, std::sqrt(ma * mb) * sab, 1e-9 * std::fabs(std::sqrt(ma * mb) * sab) + 1e-15);
  const double var = r.b * r.b * r.se_a * r.se_a + r.a * r.a * r.se_b * r.se_b;
  EXPECT_NEAR(r.se_sobel, std::sqrt(var), 1e-12 * std::sqrt(var));
  EXPECT_NEAR(r.se_delta, std::sqrt(var + 2 * r.a * r.b * r.cov_ab), 1e-12 * std::sqrt(var));
  // the bootstrap: both outcomes rebuilt with the same cluster weight, both equations refit with dummies
  ASSERT_EQ(r.boot_draws.size(), 40u);
  const Eigen::VectorXd fa = Xa * ba, fb = Xb * bb;
  for (std::int64_t rep = 0; rep < mo.n_boot; ++rep) {
    std::vector<double> ms(n), ys(n);
    for (std::size_t i = 0; i < n; ++i) {
      const double v = kernels::wild_weight(mo.seed, static_cast<std::uint64_t>(rep), static_cast<std::uint32_t>(id[i]),
                                            mo.weight);
      // the residuals scaled by each equation's small-sample factor
      ms[i] = fa(static_cast<Eigen::Index>(i)) + v * std::sqrt(ma) * ua(static_cast<Eigen::Index>(i));
      ys[i] = fb(static_cast<Eigen::Index>(i)) + v * std::sqrt(mb) * ub(static_cast<Eigen::Index>(i));
    }
    // equation b keeps the observed mediator as its regressor
    const double as = dummy_ols(df, ms, false, G, T)(0), bs = dummy_ols(df, ys, true, G, T)(2);
    EXPECT_NEAR(r.boot_draws[static_cast<std::size_t>(rep)], as * bs, 1e-8 * std::fabs(as * bs) + 1e-14) << "rep " << rep;
  }
  std::vector<double> sorted = r.boot_draws;
  std::sort(sorted.begin(), sorted.end());
  // 40 draws at 95%: the 1st and the 39th order statistics (ceil(40 x 0.025) = 1, ceil(40 x 0.975) = 39)
  EXPECT_EQ(r.ci_boot_low, sorted[0]);
  EXPECT_EQ(r.ci_boot_high, sorted[38]);
}

TEST(Mediation, RefusesEquationsOnDifferentSamples) {
  std::mt19937_64 rng(3);
  DataFrame df = mediation_panel(rng, 6, 5);
  for (Column& c : df.columns)
    if (c.name == "y") c.num[4] = std::nan("");
  SampleOptions so;
  so.cluster = {"id"};
  Design da = build_design(df, parse_formula("m ~ x | id + t"), so);
  Design db = build_design(df, parse_formula("y ~ x + m | id + t"), so);
  FitOptions fo;
  fo.vcov = VcovType::kCluster;
  MediationOptions mo;
  mo.x = "x";
  mo.m = "m";
  try {
    mediation(da, db, fo, mo);
    FAIL() << "no error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("different samples (30 and 29"), std::string::npos) << e.what();
  }
}

TEST(StudyData, MapRenamesAndNamesWhatIsMissing) {
  DataFrame df = embedded_dataset();
  for (Column& c : df.columns)
    if (c.name == "newqua") c.name = "nqp";
  try {
    prepare_study_data(df);
    FAIL() << "no error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("--map newqua="), std::string::npos) << e.what();
  }
  try {
    apply_variable_map(df, parse_variable_map("newqua=nqpf"));
    FAIL() << "no error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'nqp'"), std::string::npos) << e.what();
  }
  apply_variable_map(df, parse_variable_map(" newqua = nqp "));
  const StudyData sd = prepare_study_data(df);
  EXPECT_TRUE(sd.df.find("newqua") && !sd.df.find("nqp"));
  EXPECT_TRUE(sd.df.find("ai_pc1") && sd.df.find("fdi_w"));
  EXPECT_THROW(parse_variable_map("newqua"), InvalidInput);
  EXPECT_THROW(parse_variable_map("newqua=a,newqua=b"), InvalidInput);
}

TEST(StudyData, CsvRoundTripsBitForBit) {
  const StudyData sd = prepare_study_data(embedded_dataset());
  const DataFrame back = read_csv_text(data_frame_csv(sd.df), "roundtrip");
  ASSERT_EQ(back.n_rows(), sd.df.n_rows());
  for (const Column& c : sd.df.columns) {
    const Column& b = back.column(c.name);
    ASSERT_EQ(b.is_string(), c.is_string()) << c.name;
    for (std::size_t r = 0; r < back.n_rows(); ++r) {
      if (c.is_string()) EXPECT_EQ(b.text(r), c.text(r));
      else if (c.num[r] == c.num[r]) EXPECT_EQ(b.num[r], c.num[r]) << c.name << " row " << r;
      else EXPECT_TRUE(b.num[r] != b.num[r]);
    }
  }
}

}  // namespace
