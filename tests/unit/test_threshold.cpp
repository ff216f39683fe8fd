// Hansen (1999) threshold regression: the fast algebra against direct regressions on random
// panels, the options and the errors (his program's published numbers: tests/golden).
#include <Eigen/Dense>
#include <fstream>
#include <functional>
#include <random>

#include "golden/hansen1999.hpp"
#include "helpers.hpp"
#include "panelboot/error.hpp"
#include "panelboot/kernels/wild_weights.hpp"
#include "panelboot/kernels/threshold_boot.hpp"
#include "panelboot/threshold.hpp"

using namespace panelboot;

namespace {
// A random balanced panel and the direct regression of the transformed data.
struct Small {
  DataFrame df;
  int n, T;
};

// het > 0: the error's sd is 1 + het where |x| >= 1 (else 1), heteroskedasticity the robust CI sees
Small small_panel(std::mt19937_64& rng, int n, int T, double het = 0) {
  std::normal_distribution<double> nd;
  Small s{{}, n, T};
  std::vector<double> id, yr, y, z, x, q;
  for (int i = 0; i < n; ++i) {
    const double a = nd(rng);
    for (int t = 0; t < T; ++t) {
      id.push_back(i + 1);
      yr.push_back(2000 + t);
      const double qq = std::round(std::uniform_real_distribution<double>(0, 1)(rng) * 1000) / 1000;
      const double xx = nd(rng), zz = nd(rng);
      q.push_back(qq);
      x.push_back(xx);
      z.push_back(zz);
      y.push_back(a + 0.5 * zz + (qq < 0.4 ? 1.0 : -0.5) * xx + nd(rng) * (1 + (std::fabs(xx) >= 1 ? het : 0.0)));
    }
  }
  auto colm = [](const char* nm, std::vector<double> v) {
    Column c;
    c.name = nm;
    c.num = std::move(v);
    return c;
  };
  s.df.source = "small";
  s.df.columns = {colm("id", id), colm("year", yr), colm("y", y), colm("z", z), colm("x", x), colm("q", q)};
  s.df.row_line.assign(id.size(), 1);
  return s;
}

// Transformed (demeaned by unit, last period deleted) vector of a per-row quantity.
Eigen::VectorXd transform(const std::vector<double>& v, int n, int T) {
  Eigen::VectorXd out(n * (T - 1));
  for (int i = 0; i < n; ++i) {
    double m = 0;
    for (int t = 0; t < T; ++t) m += v[i * T + t];
    m /= T;
    for (int t = 0; t + 1 < T; ++t) out(i * (T - 1) + t) = v[i * T + t] - m;
  }
  return out;
}

// The model y ~ z | id with regime x and threshold variable q on a small_panel.
ThresholdOptions small_options() {
  ThresholdOptions o;
  o.formula = "y ~ z | id";
  o.regime = {"x"};
  o.threshold_var = "q";
  o.sample.panel_id = "id";
  o.sample.panel_time = "year";
  return o;
}

double ssr_direct(const Eigen::VectorXd& y, const Eigen::MatrixXd& X) {
  Eigen::ColPivHouseholderQR<Eigen::MatrixXd> qr(X);
  return (y - X * qr.solve(y)).squaredNorm();
}

// F* of test 1 for the traced draws against direct regressions: y* = the linear fit of ty on XL
// plus the residual blocks (Tk rows per unit, n units) that threshold_draw assigns, S0 its SSR on
// XL, S1 the least SSR over the grid (ssr_at(y*, i): the regression at grid point i of
// r.lr_gamma), F* = (S0 / S1 - 1) n_scale.
void expect_fstar_direct(const ThresholdResult& r, std::uint64_t seed, const Eigen::MatrixXd& XL,
                         const Eigen::VectorXd& ty, int n, int Tk, double n_scale,
                         const std::function<double(const Eigen::VectorXd&, std::size_t)>& ssr_at,
                         const std::string& what = "") {
  const Eigen::VectorXd fitted = XL * XL.colPivHouseholderQr().solve(ty), resid = ty - fitted;
  for (std::size_t b = 0; b < r.fstar[0].size(); ++b) {
    Eigen::VectorXd ys(n * Tk);
    for (int i = 0; i < n; ++i) {
      const std::size_t j = threshold_draw(seed, 1, b, static_cast<std::size_t>(i), static_cast<std::size_t>(n));
      for (int t = 0; t < Tk; ++t) ys(i * Tk + t) = fitted(i * Tk + t) + resid(static_cast<Eigen::Index>(j) * Tk + t);
    }
    double s1 = std::numeric_limits<double>::infinity();
    for (std::size_t g = 0; g < r.lr_gamma.size(); ++g) s1 = std::min(s1, ssr_at(ys, g));
    const double f = (ssr_direct(ys, XL) / s1 - 1) * n_scale;
    EXPECT_NEAR(r.fstar[0][b], f, 1e-7 * std::max(1.0, f)) << what << "replication " << b;
  }
}
}  // namespace

TEST(ThresholdBruteForce, GridSsrAndBootstrapFEqualDirectRegressions) {
  const std::uint64_t seed = pbtest::fresh_seed();
  SCOPED_TRACE("PB_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int rep = 0; rep < 3; ++rep) {
    const int n = 30 + static_cast<int>(rng() % 10), T = 4 + static_cast<int>(rng() % 3);
    Small s = small_panel(rng, n, T);
    ThresholdOptions o = small_options();
    o.grid = 40;
    // at least 120 rows and a trim of 0.2: with 48 rows and 0.05 the lowest grid point left 2 rows
    // below it, and when they were last periods (which the transform deletes) the regime kept 1
    // row, a refusal (PB_SEED=264 of the old test; 1 run in ~1000)
    o.trim = {0.2};
    o.n_boot = 6;
    o.trace = 6;
    o.seed = seed + rep;
    const ThresholdResult r = estimate_threshold(s.df, o, pbtest::cpu_backend());
    const auto& y = s.df.numeric("y").to_vector();
    const auto& z = s.df.numeric("z").to_vector();
    const auto& x = s.df.numeric("x").to_vector();
    const auto& q = s.df.numeric("q").to_vector();
    const Eigen::VectorXd ty = transform(y, n, T);
    Eigen::MatrixXd XL(n * (T - 1), 2);
    XL.col(0) = transform(z, n, T);
    XL.col(1) = transform(x, n, T);
    EXPECT_NEAR(r.ssr_linear, ssr_direct(ty, XL), 1e-9 * r.ssr_linear);
    auto ssr_at = [&](const Eigen::VectorXd& yy, double g) {
      std::vector<double> w(x.size());
      for (std::size_t i = 0; i < w.size(); ++i) w[i] = q[i] < g ? x[i] : 0.0;
      Eigen::MatrixXd X3(n * (T - 1), 3);
      X3 << XL, transform(w, n, T);
      return ssr_direct(yy, X3);
    };
    ASSERT_EQ(r.ssr_curve.size(), r.lr_gamma.size());
    for (std::size_t g = 0; g < r.lr_gamma.size(); ++g)
      EXPECT_NEAR(r.ssr_curve[g], ssr_at(ty, r.lr_gamma[g]), 1e-9 * r.ssr_linear) << "grid point " << g;
    // F* of test 1 for the traced draws: y* = fitted(linear) + drawn residual blocks
    expect_fstar_direct(r, o.seed, XL, ty, n, T - 1, n * (T - 1),
                        [&](const Eigen::VectorXd& ys, std::size_t g) { return ssr_at(ys, r.lr_gamma[g]); });
  }
}

// More linear regressors than the bootstrap projects in one pass (kernels::kMaxQ): Q'y* column
// by column. F* of the traced draws against direct regressions.
TEST(ThresholdBruteForce, BootstrapFWithManyLinearRegressorsEqualsDirectRegressions) {
  const std::uint64_t seed = pbtest::fresh_seed();
  SCOPED_TRACE("PB_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  const int n = 30, T = 6, nz = kernels::kMaxQ + 2;
  Small s = small_panel(rng, n, T);
  std::string rhs;
  std::vector<std::vector<double>> zs(nz);
  for (int c = 0; c < nz; ++c) {
    for (int r = 0; r < n * T; ++r) zs[c].push_back(nd(rng));
    Column col;
    col.name = "w" + std::to_string(c);
    col.num = zs[c];
    s.df.columns.push_back(col);
    rhs += (c ? " + " : "") + col.name;
  }
  ThresholdOptions o = small_options();
  o.formula = "y ~ " + rhs + " | id";
  o.grid = 20;
  o.trim = {0.1};
  o.n_boot = 4;
  o.trace = 4;
  o.seed = seed;
  const ThresholdResult r = estimate_threshold(s.df, o, pbtest::cpu_backend());
  const auto& y = s.df.numeric("y").to_vector();
  const auto& x = s.df.numeric("x").to_vector();
  const auto& q = s.df.numeric("q").to_vector();
  const Eigen::VectorXd ty = transform(y, n, T);
  Eigen::MatrixXd XL(n * (T - 1), nz + 1);
  for (int c = 0; c < nz; ++c) XL.col(c) = transform(zs[c], n, T);
  XL.col(nz) = transform(x, n, T);
  EXPECT_NEAR(r.ssr_linear, ssr_direct(ty, XL), 1e-9 * r.ssr_linear);
  auto ssr_at = [&](const Eigen::VectorXd& yy, double g) {
    std::vector<double> w(x.size());
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = q[i] < g ? x[i] : 0.0;
    Eigen::MatrixXd X3(n * (T - 1), nz + 2);
    X3 << XL, transform(w, n, T);
    return ssr_direct(yy, X3);
  };
  ASSERT_EQ(r.fstar[0].size(), 4u);
  expect_fstar_direct(r, o.seed, XL, ty, n, T - 1, n * (T - 1),
                      [&](const Eigen::VectorXd& ys, std::size_t g) { return ssr_at(ys, r.lr_gamma[g]); });
}

TEST(ThresholdErrors, UnbalancedPanelAndBadOptions) {
  const DataFrame df = read_data(pbtest::data_path("hansen1999_invest.csv"));
  ThresholdOptions o = hansen_options(1, 0);
  o.sample.where = "not (id == 3 and year == 1980)";
  o.xthreg = true;
  try {
    estimate_threshold(df, o, pbtest::cpu_backend());
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("xthreg mode needs a balanced panel"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("include 3"), std::string::npos) << e.what();
  }
  o.xthreg = false;
  o.n_boot = 10;
  try {
    estimate_threshold(df, o, pbtest::cpu_backend());
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("use --bootstrap wild"), std::string::npos) << e.what();
  }
  o.bootstrap_wild = true;
  o.trace = 10;  // every F*
  const ThresholdResult ru = estimate_threshold(df, o, pbtest::cpu_backend());  // unbalanced, wild bootstrap: named departures
  EXPECT_EQ(ru.n_obs, 7345u - 1u);
  EXPECT_EQ(ru.departures.size(), 2u);
  // the p-value is the share of the 10 F* above F
  ASSERT_EQ(ru.fstar[0].size(), 10u);
  const double above = static_cast<double>(std::count_if(ru.fstar[0].begin(), ru.fstar[0].end(),
                                                          [&](double f) { return f > ru.tests[0].F; }));
  EXPECT_EQ(ru.tests[0].p_value, above / 10);
  EXPECT_GT(ru.tests[0].F, 0.0);
  o = hansen_options(1, 0);
  o.trim = {0.3};
  EXPECT_THROW(estimate_threshold(df, o, pbtest::cpu_backend()), InvalidInput);
  auto message = [&](ThresholdOptions opt) {
    try {
      estimate_threshold(df, opt, pbtest::cpu_backend());
    } catch (const InvalidInput& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  o = hansen_options(1, 0);
  o.threshold_var = "I(l(debta,1) > 0.5)";  // two distinct values
  EXPECT_NE(message(o).find("distinct values: too few"), std::string::npos) << message(o);
  o = hansen_options(1, 0);
  o.regime = {"I(id * 1.0)"};  // constant within each unit
  EXPECT_NE(message(o).find("does not vary over time within units"), std::string::npos) << message(o);
  o = hansen_options(1, 0);
  o.regime.clear();
  for (int j = 1; j <= 9; ++j) o.regime.push_back("I(l(cfa,1)^" + std::to_string(j) + ")");
  EXPECT_NE(message(o).find("at most 8 regime regressors"), std::string::npos) << message(o);
  o = hansen_options(26, 0);  // 25 x 1 fixed values in the last stage's set
  EXPECT_NE(message(o).find("(here 1 and 26 thresholds)"), std::string::npos) << message(o);
  const auto r = pbtest::run({"threshold", "--data", pbtest::data_path("hansen1999_invest.csv"), "--panel", "id,year",
                              "-f", "inva ~ l(vala,1) | id", "--regime", "l(cfa,1)", "--threshold-var", "l(debta,1)",
                              "--B", "0", "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"ssr_linear", "models", "tests", "level", "cluster", "n_clusters"}) EXPECT_TRUE(j.contains(k)) << k;
  for (const char* k : {"n_thresholds", "gammas", "ci95", "ci99", "ci", "ci_method", "ssr", "coefficients"})
    EXPECT_TRUE(j["models"][0].contains(k)) << k;
  for (const char* k : {"k", "F", "p_value", "crit", "n_boot"}) EXPECT_TRUE(j["tests"][0].contains(k)) << k;
}


TEST(ThresholdOptions, GivenThresholdsAndSavedRegimes) {
  const std::string out = pbtest::temp_path(".csv");
  const auto r = pbtest::run({"threshold", "--data", pbtest::data_path("hansen1999_invest.csv"), "--panel", "id,year",
                              "-f", "inva ~ l(vala,1) + I(l(vala,1)^2) + I(l(vala,1)^3) + l(debta,1) + I(l(vala,1)*l(debta,1)) | id",
                              "--regime", "l(cfa,1)", "--threshold-var", "l(debta,1)", "--gammas", "0.0157,0.53616",
                              "--save-regimes", out, "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const nlohmann::json e = expected();
  // the given thresholds reproduce the double-threshold model
  EXPECT_NEAR(j["models"][0]["ssr"].get<double>(), e["double"]["SSR"].get<double>(), 1e-10);
  std::ifstream in(out);
  std::string line;
  int rows = 0, reg3 = 0;
  std::getline(in, line);
  EXPECT_EQ(line, "id,year,q,regime,simulated_data");
  while (std::getline(in, line)) {
    ++rows;
    reg3 += line.size() > 3 && line.compare(line.size() - 4, 4, ",3,0") == 0;  // regime 3, not simulated
  }
  EXPECT_EQ(rows, 565 * 14);
  EXPECT_GT(reg3, 0);
  std::remove(out.c_str());
  const auto bad = pbtest::run({"threshold", "--data", pbtest::data_path("hansen1999_invest.csv"), "--panel", "id,year",
                                "-f", "inva ~ l(vala,1) | id", "--regime", "l(cfa,1)", "--threshold-var", "l(debta,1)",
                                "--gammas", "0.1", "--B", "100"});
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("drop --B"), std::string::npos);
}

TEST(ThresholdBruteForce, TimeEffectsEqualRegressionWithUnitAndPeriodDummies) {
  // xthreg mode keeps all nT rows: two-way demeaning of a balanced panel is then exactly the
  // regression with unit and period dummies, at every grid point
  PB_FRESH_RNG(rng);
  const int n = 15, T = 5;
  Small s = small_panel(rng, n, T);
  ThresholdOptions o = small_options();
  o.grid = 30;
  o.trim = {0.05};
  o.n_boot = 0;
  o.xthreg = true;
  o.time_effects = true;
  const ThresholdResult r = estimate_threshold(s.df, o, pbtest::cpu_backend());
  ASSERT_EQ(r.departures.size(), 1u);
  const auto& y = s.df.numeric("y").to_vector();
  const auto& z = s.df.numeric("z").to_vector();
  const auto& x = s.df.numeric("x").to_vector();
  const auto& q = s.df.numeric("q").to_vector();
  for (std::size_t g = 0; g < r.lr_gamma.size(); g += 5) {
    Eigen::MatrixXd X = Eigen::MatrixXd::Zero(n * T, 3 + n + T - 1);
    Eigen::VectorXd yy(n * T);
    for (int i = 0; i < n * T; ++i) {
      yy(i) = y[i];
      X(i, 0) = z[i];
      X(i, 1) = x[i];
      X(i, 2) = q[i] <= r.lr_gamma[g] ? x[i] : 0.0;
      X(i, 3 + i / T) = 1;
      if (i % T) X(i, 3 + n + i % T - 1) = 1;
    }
    EXPECT_NEAR(r.ssr_curve[g], ssr_direct(yy, X), 1e-9 * r.ssr_linear) << g;
  }
}

TEST(ThresholdBruteForce, GridAllIsEveryDistinctValueInTheTrimmedRange) {
  PB_FRESH_RNG(rng);
  Small s = small_panel(rng, 12, 5);
  ThresholdOptions o = small_options();
  o.trim = {0.05};
  o.n_boot = 0;
  o.grid = 0;
  const ThresholdResult all = estimate_threshold(s.df, o, pbtest::cpu_backend());
  std::vector<double> q = s.df.numeric("q").to_vector();
  std::sort(q.begin(), q.end());
  q.erase(std::unique(q.begin(), q.end()), q.end());
  const std::size_t lo = static_cast<std::size_t>(std::floor(0.05 * q.size()));  // 1-based first index
  // every distinct value from index floor(trim nd) to floor((1 - trim) nd), 1-based
  const std::size_t last = static_cast<std::size_t>(std::floor(0.95 * q.size()));
  ASSERT_EQ(all.n_grid, last - lo + 1);
  EXPECT_EQ(all.lr_gamma.back(), q[last - 1]);
  for (std::size_t g = 0; g + 1 < all.lr_gamma.size(); ++g) EXPECT_LT(all.lr_gamma[g], all.lr_gamma[g + 1]);  // distinct
  EXPECT_EQ(all.lr_gamma.front(), q[lo - 1]);
  ASSERT_EQ(all.departures.size(), 1u);
  // the quantile grid is a subset of it, with the same SSR at shared points
  o.grid = 40;
  const ThresholdResult some = estimate_threshold(s.df, o, pbtest::cpu_backend());
  for (std::size_t g = 0; g < some.lr_gamma.size(); ++g) {
    const auto it = std::find(all.lr_gamma.begin(), all.lr_gamma.end(), some.lr_gamma[g]);
    ASSERT_NE(it, all.lr_gamma.end());
    EXPECT_NEAR(some.ssr_curve[g], all.ssr_curve[static_cast<std::size_t>(it - all.lr_gamma.begin())], 1e-12 * some.ssr_linear);
  }
}

TEST(ThresholdBruteForce, UnbalancedPanelGridSsrEqualsDirectRegressions) {
  PB_FRESH_RNG(rng);
  const int n = 14, T = 5;
  Small s = small_panel(rng, n, T);
  // drop a few rows (never a unit's only rows)
  DataFrame& df = s.df;
  ThresholdOptions o = small_options();
  o.grid = 30;
  o.trim = {0.05};
  o.n_boot = 4;
  o.trace = 4;
  o.bootstrap_wild = true;
  o.sample.where = "not (year == 2001 and id <= 4) and not (year == 2004 and id == 9)";
  const ThresholdResult r = estimate_threshold(df, o, pbtest::cpu_backend());
  // the transformed sample by hand: demean each unit over its rows, drop its last row
  const auto& id = df.numeric("id").to_vector();
  const auto& yr = df.numeric("year").to_vector();
  std::vector<int> keep;
  for (std::size_t i = 0; i < id.size(); ++i)
    if (!((yr[i] == 2001 && id[i] <= 4) || (yr[i] == 2004 && id[i] == 9))) keep.push_back(static_cast<int>(i));
  auto tr = [&](const std::vector<double>& v) {
    std::vector<double> out;
    for (int u = 1; u <= n; ++u) {
      std::vector<int> rows;
      for (int k : keep)
        if (id[k] == u) rows.push_back(k);
      double m = 0;
      for (int k : rows) m += v[k];
      m /= rows.size();
      for (std::size_t t = 0; t + 1 < rows.size(); ++t) out.push_back(v[rows[t]] - m);
    }
    return Eigen::Map<Eigen::VectorXd>(out.data(), out.size()).eval();
  };
  const auto& x = df.numeric("x").to_vector();
  const auto& q = df.numeric("q").to_vector();
  const Eigen::VectorXd ty = tr(df.numeric("y").to_vector());
  ASSERT_EQ(static_cast<std::size_t>(ty.size()), r.n_obs);
  for (std::size_t g = 0; g < r.lr_gamma.size(); g += 3) {
    std::vector<double> w(x.size());
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = q[i] < r.lr_gamma[g] ? x[i] : 0.0;
    Eigen::MatrixXd X(ty.size(), 3);
    X << tr(df.numeric("z").to_vector()), tr(x), tr(w);
    EXPECT_NEAR(r.ssr_curve[g], ssr_direct(ty, X), 1e-9 * r.ssr_linear) << g;
  }
  // bootstrap F* (wild: each unit's residual block times a Rademacher sign) by direct regressions
  Eigen::MatrixXd XL(ty.size(), 2);
  XL << tr(df.numeric("z").to_vector()), tr(x);
  const Eigen::VectorXd fitted = XL * XL.colPivHouseholderQr().solve(ty), resid = ty - fitted;
  ASSERT_EQ(r.fstar[0].size(), 4u);
  std::vector<int> len(n, 0);
  for (int k : keep) ++len[static_cast<int>(id[k]) - 1];
  for (std::size_t b = 0; b < 4; ++b) {
    Eigen::VectorXd ys(ty.size());
    Eigen::Index row = 0;
    for (int u = 0; u < n; ++u) {
      const double v = kernels::wild_weight(o.seed, (b << 6) | 1u, static_cast<std::uint32_t>(u), kernels::WeightType::kRademacher);
      for (int t = 0; t + 1 < len[u]; ++t, ++row) ys(row) = fitted(row) + v * resid(row);
    }
    double s1 = std::numeric_limits<double>::infinity();
    for (double g : r.lr_gamma) {
      std::vector<double> w(x.size());
      for (std::size_t i = 0; i < w.size(); ++i) w[i] = q[i] < g ? x[i] : 0.0;
      Eigen::MatrixXd X(ty.size(), 3);
      X << XL, tr(w);
      s1 = std::min(s1, ssr_direct(ys, X));
    }
    const double f = (ssr_direct(ys, XL) / s1 - 1) * static_cast<double>(ty.size());
    EXPECT_NEAR(r.fstar[0][b], f, 1e-7 * std::max(1.0, f)) << "replication " << b;
  }
}

namespace {
// Two-way demeaning of a balanced panel (rows i * T + t): v - unit mean - period mean + grand
// mean, the last period of each unit deleted when drop_last (Hansen) and kept otherwise (xthreg).
Eigen::VectorXd transform2(const std::vector<double>& v, int n, int T, bool drop_last) {
  std::vector<double> um(n, 0.0), tm(T, 0.0);
  double grand = 0;
  for (int i = 0; i < n; ++i)
    for (int t = 0; t < T; ++t) {
      um[i] += v[i * T + t] / T;
      tm[t] += v[i * T + t] / n;
      grand += v[i * T + t] / (n * T);
    }
  const int Tk = drop_last ? T - 1 : T;
  Eigen::VectorXd out(n * Tk);
  for (int i = 0; i < n; ++i)
    for (int t = 0; t < Tk; ++t) out(i * Tk + t) = v[i * T + t] - um[i] - tm[t] + grand;
  return out;
}
}  // namespace

// Bootstrap F* with period effects removed, in Hansen's and xthreg's conventions (blocks of
// residuals drawn by threshold_draw), against direct regressions of each y*.
TEST(ThresholdBruteForce, BootstrapFWithTimeEffectsEqualsDirectRegressions) {
  const std::uint64_t seed = pbtest::fresh_seed();
  SCOPED_TRACE("PB_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (bool xthreg : {false, true}) {
    const int n = 13, T = 5, Tk = xthreg ? T : T - 1;
    Small s = small_panel(rng, n, T);
    ThresholdOptions o = small_options();
    o.grid = 25;
    o.trim = {0.05};
    o.n_boot = 5;
    o.trace = 5;
    o.seed = seed;
    o.xthreg = xthreg;
    o.time_effects = true;
    const ThresholdResult r = estimate_threshold(s.df, o, pbtest::cpu_backend());
    const auto& x = s.df.numeric("x").to_vector();
    const auto& q = s.df.numeric("q").to_vector();
    const Eigen::VectorXd ty = transform2(s.df.numeric("y").to_vector(), n, T, !xthreg);
    Eigen::MatrixXd XL(n * Tk, 2);
    XL << transform2(s.df.numeric("z").to_vector(), n, T, !xthreg), transform2(x, n, T, !xthreg);
    std::vector<Eigen::MatrixXd> Xg;
    for (double g : r.lr_gamma) {
      std::vector<double> w(x.size());
      for (std::size_t i = 0; i < w.size(); ++i) w[i] = (xthreg ? q[i] <= g : q[i] < g) ? x[i] : 0.0;
      Eigen::MatrixXd X(n * Tk, 3);
      X << XL, transform2(w, n, T, !xthreg);
      Xg.push_back(X);
    }
    ASSERT_EQ(r.fstar[0].size(), 5u);
    expect_fstar_direct(r, o.seed, XL, ty, n, Tk, xthreg ? n * T - T : n * Tk,
                        [&](const Eigen::VectorXd& ys, std::size_t g) { return ssr_direct(ys, Xg[g]); },
                        xthreg ? "xthreg " : "hansen ");
  }
}

namespace {
// eta^2 of Hansen (2000) computed the slow, obvious way from the model at gamma: OLS on the
// transformed data, then the quadratic regression or the Epanechnikov kernel with the plug-in
// bandwidth, written out loop by loop.
double eta2_direct(const Small& s, double gamma, bool kernel) {
  const int n = s.n, T = s.T, N = n * (T - 1);
  const auto& x = s.df.numeric("x").to_vector();
  const auto& q = s.df.numeric("q").to_vector();
  std::vector<double> w1(x.size()), w2(x.size()), qrow;
  for (std::size_t i = 0; i < x.size(); ++i) {
    w1[i] = q[i] < gamma ? x[i] : 0.0;
    w2[i] = q[i] < gamma ? 0.0 : x[i];
  }
  for (int i = 0; i < n; ++i)
    for (int t = 0; t + 1 < T; ++t) qrow.push_back(q[static_cast<std::size_t>(i * T + t)]);
  Eigen::MatrixXd X(N, 3);
  X << transform(s.df.numeric("z").to_vector(), n, T), transform(w1, n, T), transform(w2, n, T);
  const Eigen::VectorXd ty = transform(s.df.numeric("y").to_vector(), n, T), tx = transform(x, n, T);
  const Eigen::VectorXd b = X.colPivHouseholderQr().solve(ty);
  const Eigen::VectorXd e = ty - X * b;
  const double sigma2 = e.squaredNorm() / N;
  std::vector<double> r1(N), r2(N);
  for (int i = 0; i < N; ++i) {
    const double dx = (b(2) - b(1)) * tx(i);
    r1[i] = dx * dx;
    r2[i] = dx * dx * e(i) * e(i);
  }
  // quadratic regressions of r1, r2 on (1, q, q^2) by the normal equations
  Eigen::Matrix3d A = Eigen::Matrix3d::Zero();
  Eigen::Vector3d c1 = Eigen::Vector3d::Zero(), c2 = Eigen::Vector3d::Zero();
  for (int i = 0; i < N; ++i) {
    const Eigen::Vector3d v(1, qrow[i], qrow[i] * qrow[i]);
    A += v * v.transpose();
    c1 += v * r1[i];
    c2 += v * r2[i];
  }
  const Eigen::Vector3d m1 = A.ldlt().solve(c1), m2 = A.ldlt().solve(c2);
  const Eigen::Vector3d at(1, gamma, gamma * gamma);
  double g1 = at.dot(m1), g2 = at.dot(m2);
  if (kernel) {
    double mq = 0, vq = 0;
    for (double v : qrow) mq += v / N;
    for (double v : qrow) vq += (v - mq) * (v - mq) / N;
    const double h0 = 2.344 * std::sqrt(vq) / std::pow(N, 0.2);
    double f = 0, df = 0, ss = 0;
    for (int i = 0; i < N; ++i) {
      const double u = (gamma - qrow[i]) / h0;
      if (u * u <= 1) {
        f += 0.75 * (1 - u * u) / h0 / N;
        df += 1.5 * u / (h0 * h0) / N;
      }
      const double res = r1[i] - (m1(0) + m1(1) * qrow[i] + m1(2) * qrow[i] * qrow[i]);
      ss += res * res;
    }
    const double slope = m1(2) + (m1(1) + 2 * m1(2) * gamma) * df / f;
    const double h = ss / (N - 3) / (4 * f * slope * slope);
    double k1 = 0, k2 = 0;
    for (int i = 0; i < N; ++i) {
      const double u = (gamma - qrow[i]) / h;
      if (u * u <= 1) {
        k1 += 0.75 * (1 - u * u) / h * r1[i] / N;
        k2 += 0.75 * (1 - u * u) / h * r2[i] / N;
      }
    }
    if (h > 0 && std::isfinite(h) && k1 > 0 && k2 > 0) {  // else the quadratic estimate stands
      g1 = k1;
      g2 = k2;
    }
  }
  return g2 / (g1 * sigma2);
}
}  // namespace

// --robust-ci: eta^2 equals the direct computation, and the robust sets are the grid points
// where LR(gamma) / eta^2 stays below the critical value.
TEST(ThresholdRobustCi, EtaAndSetsEqualTheDirectComputation) {
  const std::uint64_t seed = pbtest::fresh_seed();
  SCOPED_TRACE("PB_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (bool kernel : {false, true}) {
    const int n = 60, T = 5;
    const Small s = small_panel(rng, n, T, 2.0);
    ThresholdOptions o = small_options();
    o.grid = 100;
    o.trim = {0.05};
    o.n_boot = 0;
    o.robust_ci = true;
    o.robust_kernel = kernel;
    const ThresholdResult r = estimate_threshold(s.df, o, pbtest::cpu_backend());
    ASSERT_EQ(r.models.size(), 1u);
    const ThresholdModel& m = r.models[0];
    ASSERT_EQ(m.eta2.size(), 1u);
    const double e2 = eta2_direct(s, m.gammas[0], kernel);
    EXPECT_NEAR(m.eta2[0], e2, 1e-8 * e2) << (kernel ? "kernel" : "quadratic");
    if (!kernel) {
      EXPECT_TRUE(std::isnan(m.eta_bandwidth[0]));  // (NaN with the kernel too when its rule fails)
    }
    // the sets from the LR curve: LR * factor < c, factor = 1 / eta^2
    EXPECT_NEAR(r.lr_robust_factor, 1.0 / m.eta2[0], 1e-6 / m.eta2[0]);
    double lo = 1e300, hi = -1e300, lo_h = 1e300, hi_h = -1e300;
    for (std::size_t g = 0; g < r.lr_gamma.size(); ++g) {
      if (r.lr_value[g] / m.eta2[0] < r.c95) {
        lo = std::min(lo, r.lr_gamma[g]);
        hi = std::max(hi, r.lr_gamma[g]);
      }
      if (r.lr_value[g] < r.c95) {
        lo_h = std::min(lo_h, r.lr_gamma[g]);
        hi_h = std::max(hi_h, r.lr_gamma[g]);
      }
    }
    EXPECT_EQ(m.ci95[0].first, lo);
    EXPECT_EQ(m.ci95[0].second, hi);
    EXPECT_EQ(m.ci95_homo[0].first, lo_h);
    EXPECT_EQ(m.ci95_homo[0].second, hi_h);
    // the homoskedastic sets are those of a run without --robust-ci
    o.robust_ci = false;
    const ThresholdResult h = estimate_threshold(s.df, o, pbtest::cpu_backend());
    EXPECT_EQ(h.models[0].ci95[0], m.ci95_homo[0]);
    EXPECT_EQ(h.models[0].ci99[0], m.ci99_homo[0]);
    EXPECT_TRUE(h.models[0].eta2.empty());
  }
}

// eta^2 = E[x^2 s^2] / (E[s^2] E[x^2]) is 1 under homoskedastic errors and 2.10 for normal x with
// error sd s = 3 where |x| >= 1, else 1 (quadratic estimator, large panel; the demeaned x is
// nearly normal). Over 400 seeds the estimates were 1.07 (SD 0.044, a tail to 1.26) and 1.78 (SD
// 0.070, 1.60 to 1.97): the bounds sit 7 and 4.7 SDs out (at +-0.25 around 1, 1 seed in 1500
// failed) and still separate the two.
TEST(ThresholdRobustCi, EtaSeesHeteroskedasticity) {
  PB_FRESH_RNG(rng);
  ThresholdOptions o = small_options();
  o.grid = 50;
  o.trim = {0.05};
  o.n_boot = 0;
  o.robust_ci = true;
  o.robust_kernel = false;
  const Small homo = small_panel(rng, 2000, 6, 0.0);
  const double e_homo = estimate_threshold(homo.df, o, pbtest::cpu_backend()).models[0].eta2[0];
  EXPECT_NEAR(e_homo, 1.0, 0.4) << "homoskedastic eta^2";
  const Small het = small_panel(rng, 2000, 6, 2.0);
  const double e_het = estimate_threshold(het.df, o, pbtest::cpu_backend()).models[0].eta2[0];
  EXPECT_GT(e_het, 1.45) << "heteroskedastic eta^2";
  EXPECT_LT(e_het, 3.2) << "heteroskedastic eta^2";
}

// --cluster VAR: the clustered SEs against a sandwich computed directly on the transformed data
// (HC0, groups coarser than the units); --level: the set at that level from the LR curve.
TEST(ThresholdOptions, ClusterVariableAndLevel) {
  const std::uint64_t seed = pbtest::fresh_seed();
  SCOPED_TRACE("PB_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const int n = 30, T = 5;
  Small s = small_panel(rng, n, T);
  std::vector<double> grp;
  for (double id : s.df.numeric("id").to_vector()) grp.push_back(static_cast<double>(static_cast<int>(id) % 7));
  Column gc;
  gc.name = "grp";
  gc.num = grp;
  s.df.columns.push_back(gc);
  ThresholdOptions o = small_options();
  o.grid = 50;
  o.trim = {0.05};
  o.n_boot = 0;
  o.sample.cluster = {"grp"};
  o.level = 0.9;
  const ThresholdResult r = estimate_threshold(s.df, o, pbtest::cpu_backend());
  EXPECT_EQ(r.n_clusters, 7);
  const ThresholdModel& m = r.models[0];
  const double g = m.gammas[0];
  const auto& x = s.df.numeric("x").to_vector();
  const auto& q = s.df.numeric("q").to_vector();
  std::vector<double> w1(x.size()), w2(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    w1[i] = q[i] < g ? x[i] : 0.0;
    w2[i] = q[i] < g ? 0.0 : x[i];
  }
  Eigen::MatrixXd X(n * (T - 1), 3);
  X << transform(s.df.numeric("z").to_vector(), n, T), transform(w1, n, T), transform(w2, n, T);
  const Eigen::VectorXd ty = transform(s.df.numeric("y").to_vector(), n, T);
  const Eigen::MatrixXd Bi = (X.transpose() * X).inverse();
  const Eigen::VectorXd e = ty - X * (Bi * (X.transpose() * ty));
  Eigen::MatrixXd meat = Eigen::MatrixXd::Zero(3, 3);
  for (int c = 0; c < 7; ++c) {
    Eigen::VectorXd sc = Eigen::VectorXd::Zero(3);
    for (int i = 0; i < n; ++i)
      if ((i + 1) % 7 == c)
        for (int t = 0; t + 1 < T; ++t) sc += X.row(i * (T - 1) + t).transpose() * e(i * (T - 1) + t);
    meat += sc * sc.transpose();
  }
  const Eigen::MatrixXd V = Bi * meat * Bi;
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(m.coefficients[j].se_cluster, std::sqrt(V(j, j)), 1e-10 * std::sqrt(V(j, j))) << j;
  // the 90% set: the grid points with LR below -2 ln(1 - sqrt(0.9)), inside the 95% set
  const double c90 = -2.0 * std::log(1.0 - std::sqrt(0.9));
  EXPECT_NEAR(r.c_level, c90, 1e-12);
  double lo = 1e300, hi = -1e300;
  for (std::size_t k = 0; k < r.lr_gamma.size(); ++k)
    if (r.lr_value[k] < c90) {
      lo = std::min(lo, r.lr_gamma[k]);
      hi = std::max(hi, r.lr_gamma[k]);
    }
  EXPECT_EQ(m.ci[0].first, lo);
  EXPECT_EQ(m.ci[0].second, hi);
  EXPECT_GE(m.ci[0].first, m.ci95[0].first);
  EXPECT_LE(m.ci[0].second, m.ci95[0].second);
  // clustering by the unit is the default
  o.sample.cluster = {"id"};
  const ThresholdResult by_id = estimate_threshold(s.df, o, pbtest::cpu_backend());
  o.sample.cluster.clear();
  const ThresholdResult dflt = estimate_threshold(s.df, o, pbtest::cpu_backend());
  for (std::size_t j = 0; j < 3; ++j)
    EXPECT_EQ(by_id.models[0].coefficients[j].se_cluster, dflt.models[0].coefficients[j].se_cluster);
  o.level = 1.5;
  EXPECT_THROW(estimate_threshold(s.df, o, pbtest::cpu_backend()), InvalidInput);
}
