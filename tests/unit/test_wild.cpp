// The wild bootstrap: the fast algorithm against refitting OLS with explicit dummies for every
// replication, on random small problems (boottest's golden numbers: tests/golden/test_wild_golden.cpp).
#include <Eigen/Dense>
#include <map>
#include <random>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend/cpu/cpu.hpp"
#include "helpers.hpp"
#include "panelboot/design.hpp"
#include "panelboot/error.hpp"
#include "panelboot/wild.hpp"

using namespace panelboot;

namespace {

const Backend& cpu_backend() {
  static const std::unique_ptr<Backend> b = make_backend(Device::kCpu);
  return *b;
}

Column numeric(const std::string& name, const std::vector<double>& v) {
  Column c;
  c.name = name;
  c.num = v;
  return c;
}

struct Problem {
  DataFrame df;
  std::vector<int> unit, time, grp;
  std::vector<double> y, w, x1, x2;
  int n_units, n_t;
};

Problem random_problem(std::mt19937_64& rng, int n_units, int n_t) {
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0.5, 2.0);
  Problem p;
  p.n_units = n_units;
  p.n_t = n_t;
  std::vector<double> ua(n_units), ta(n_t);
  for (auto& a : ua) a = nd(rng);
  for (auto& a : ta) a = nd(rng);
  for (int i = 0; i < n_units; ++i)
    for (int t = 0; t < n_t; ++t) {
      // unbalanced; unit 0 keeps every period, so no period's dummy is empty in the brute force
      if (i > 0 && t > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < 0.15) continue;
      p.unit.push_back(i);
      p.time.push_back(t);
      p.grp.push_back(i % 4);
      const double x1 = nd(rng) + 0.5 * ua[i] + 0.3 * ta[t], x2 = nd(rng) - 0.4 * ta[t];
      p.x1.push_back(x1);
      p.x2.push_back(x2);
      p.y.push_back(ua[i] + ta[t] + 0.3 * x1 - 0.2 * x2 + nd(rng) * (1 + 0.5 * (i % 3)));
      p.w.push_back(ud(rng));
    }
  auto as_d = [](const std::vector<int>& v) { return std::vector<double>(v.begin(), v.end()); };
  p.df.source = "random";
  for (auto* c : {&p.unit, &p.time, &p.grp}) (void)c;
  p.df.columns.push_back(numeric("unit", as_d(p.unit)));
  p.df.columns.push_back(numeric("time", as_d(p.time)));
  p.df.columns.push_back(numeric("grp", as_d(p.grp)));
  p.df.columns.push_back(numeric("y", p.y));
  p.df.columns.push_back(numeric("w", p.w));
  p.df.columns.push_back(numeric("x1", p.x1));
  p.df.columns.push_back(numeric("x2", p.x2));
  p.df.row_line.resize(p.y.size());
  for (std::size_t r = 0; r < p.y.size(); ++r) p.df.row_line[r] = static_cast<std::uint32_t>(r + 2);
  return p;
}

struct Config {
  std::vector<std::string> cluster;  // empty: heteroskedastic
  bool weighted, impose_null;
  WeightType weight;
  std::string test;                  // over x1, x2
  std::string bootcluster;           // "" = default
};

// t for y_star by OLS on [x1 x2, unit dummies, time dummies (first dropped)], rows scaled by
// sqrt(w), with every column counted in K; cluster-robust by inclusion-exclusion with each
// term's own G/(G-1) (two-way) or HC1 (no clusters).
struct Brute {
  Eigen::MatrixXd Z;  // scaled design
  Eigen::VectorXd sw;
  std::vector<std::vector<int>> clusters;  // codes per clustering term (intersections added)
  std::vector<double> term_sign;
  double N, K;
  Eigen::MatrixXd ZtZi;
};

Brute make_brute(const Problem& p, const Config& c) {
  Brute b;
  const int n = static_cast<int>(p.y.size());
  Eigen::MatrixXd Z = Eigen::MatrixXd::Zero(n, 2 + p.n_units + p.n_t - 1);
  b.sw.resize(n);
  for (int i = 0; i < n; ++i) {
    const double s = c.weighted ? std::sqrt(p.w[i]) : 1.0;
    b.sw(i) = s;
    Z(i, 0) = s * p.x1[i];
    Z(i, 1) = s * p.x2[i];
    Z(i, 2 + p.unit[i]) = s;
    if (p.time[i] > 0) Z(i, 2 + p.n_units + p.time[i] - 1) = s;
  }
  b.Z = Z;
  b.ZtZi = (Z.transpose() * Z).inverse();
  b.N = n;
  b.K = static_cast<double>(Z.cols());
  auto codes = [&](const std::string& v) {
    if (v == "unit") return p.unit;
    if (v == "time") return p.time;
    return p.grp;
  };
  if (c.cluster.size() == 1) {
    b.clusters.push_back(codes(c.cluster[0]));
    b.term_sign.push_back(1);
  } else if (c.cluster.size() == 2) {
    auto a = codes(c.cluster[0]), bb = codes(c.cluster[1]);
    std::vector<int> ab(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) ab[i] = a[i] * 1000 + bb[i];
    b.clusters = {a, bb, ab};
    b.term_sign = {1, 1, -1};
  }
  return b;
}

double brute_t(const Brute& b, const Eigen::VectorXd& y_scaled, const Eigen::RowVectorXd& R, double r) {
  const Eigen::VectorXd beta = b.ZtZi * (b.Z.transpose() * y_scaled);
  const Eigen::VectorXd u = y_scaled - b.Z * beta;
  Eigen::RowVectorXd Rf = Eigen::RowVectorXd::Zero(b.Z.cols());
  Rf.head(2) = R;
  Eigen::MatrixXd meat = Eigen::MatrixXd::Zero(b.Z.cols(), b.Z.cols());
  if (b.clusters.empty()) {
    for (Eigen::Index i = 0; i < b.Z.rows(); ++i) meat += (b.Z.row(i).transpose() * b.Z.row(i)) * u(i) * u(i);
    meat *= b.N / (b.N - b.K);
  } else {
    for (std::size_t s = 0; s < b.clusters.size(); ++s) {
      std::map<int, Eigen::VectorXd> sc;
      for (Eigen::Index i = 0; i < b.Z.rows(); ++i) {
        auto it = sc.find(b.clusters[s][i]);
        if (it == sc.end()) it = sc.emplace(b.clusters[s][i], Eigen::VectorXd::Zero(b.Z.cols())).first;
        it->second += b.Z.row(i).transpose() * u(i);
      }
      const double G = static_cast<double>(sc.size());
      const double m = (G > 1 ? G / (G - 1) : 1.0) * (b.N - 1) / (b.N - b.K);
      for (auto& kv : sc) meat += b.term_sign[s] * m * kv.second * kv.second.transpose();
    }
  }
  const double var = Rf * b.ZtZi * meat * b.ZtZi * Rf.transpose();
  return ((Rf * beta)(0) - r) / std::sqrt(var);
}

FitOptions fit_opts() {
  FitOptions fo;
  fo.vcov = VcovType::kCluster;
  fo.dof_fe = DofFe::kAll;
  fo.multiway_adj = MultiwayAdj::kEach;
  return fo;
}

// Compares the first `keep` bootstrap statistics of the fast path with brute-force refits.
void check_against_brute_force(const Problem& p, const Config& c, bool enumerate, std::uint64_t seed) {
  SampleOptions so;
  so.cluster = c.cluster;
  so.keep_singletons = true;
  if (c.weighted) so.weights = "w";
  if (!c.bootcluster.empty()) so.extra = {c.bootcluster};
  const Formula fm = parse_formula("y ~ x1 + x2 | unit + time");
  Design probe = build_design(p.df, fm, so);
  // the bootstrap clustering's codes (fewest clusters; observations when none)
  std::vector<std::int32_t> bcode;
  std::int32_t G;
  if (!c.bootcluster.empty()) {
    bcode = probe.extra[0].code;
    G = probe.extra[0].n_levels;
  } else if (probe.clusters.empty()) {
    G = static_cast<std::int32_t>(probe.n_obs);
    for (std::int32_t i = 0; i < G; ++i) bcode.push_back(i);
  } else {
    const Grouping* best = &probe.clusters[0];
    for (const Grouping& g : probe.clusters)
      if (g.n_levels < best->n_levels) best = &g;
    bcode = best->code;
    G = best->n_levels;
  }
  WildOptions wo;
  wo.tests = {c.test};
  wo.impose_null = c.impose_null;
  wo.weight = c.weight;
  wo.seed = seed;
  wo.n_boot = 12;
  wo.ci = false;
  wo.enumerate = enumerate ? Enumerate::kAlways : Enumerate::kNever;
  wo.bootcluster = c.bootcluster;
  WildTrace tr;
  tr.keep = enumerate ? (std::size_t{1} << (G - 1)) : 12;
  Design d = build_design(p.df, fm, so);
  FitOptions fo = fit_opts();
  if (c.cluster.empty()) fo.vcov = VcovType::kHc1;
  // the alternating projections to near machine precision: the comparison below is of the
  // bootstrap's algebra, not of the demeaning's stopping rule (1e-10 moved t by ~1e-9)
  fo.demean.tol = 1e-14;

  const Brute b = make_brute(p, c);
  const std::vector<LinearRestriction> rows = parse_restrictions(c.test, {"x1", "x2"});
  const Eigen::RowVectorXd R = rows[0].R.transpose();
  const double r = rows[0].r;
  const Eigen::VectorXd ys = b.sw.cwiseProduct(Eigen::Map<const Eigen::VectorXd>(p.y.data(), p.y.size()));
  // a two-way variance can be negative: the observed t is then undefined, and wild refuses the
  // test with a clear error rather than bootstrapping a NaN
  const double t_obs = brute_t(b, ys, R, r);
  if (std::isnan(t_obs)) {
    try {
      wild_bootstrap(d, fo, wo, cpu_backend(), &tr);
      ADD_FAILURE() << "a restriction with a negative two-way variance was bootstrapped";
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find("numerically zero"), std::string::npos) << e.what();
    }
    return;
  }
  // the observed t equals the brute-force t
  const WildResult res = wild_bootstrap(d, fo, wo, cpu_backend(), &tr);
  EXPECT_NEAR(res.tests[0].stat, t_obs, 1e-9 * std::fabs(t_obs));
  // restricted (or unrestricted) fit in the scaled dummy regression
  const Eigen::VectorXd beta = b.ZtZi * (b.Z.transpose() * ys);
  Eigen::RowVectorXd Rf = Eigen::RowVectorXd::Zero(b.Z.cols());
  Rf.head(2) = R;
  Eigen::VectorXd bt = beta;
  if (c.impose_null) bt = beta - b.ZtZi * Rf.transpose() * ((Rf * beta)(0) - r) / (Rf * b.ZtZi * Rf.transpose())(0);
  const Eigen::VectorXd fitted = b.Z * bt, resid = ys - fitted;
  const double r_b = c.impose_null ? r : (Rf * beta)(0);
  ASSERT_EQ(tr.stats[0].size(), tr.keep);
  for (std::size_t rep = 0; rep < tr.keep; ++rep) {
    Eigen::VectorXd ystar(ys.size());
    for (Eigen::Index i = 0; i < ys.size(); ++i) {
      const double v = enumerate ? enumerated_weight(rep, bcode[i])
                                 : kernels::wild_weight(seed, rep, static_cast<std::uint32_t>(bcode[i]), c.weight);
      ystar(i) = fitted(i) + v * resid(i);
    }
    const double t_brute = brute_t(b, ystar, R, r_b);
    if (std::isnan(t_brute)) {  // a two-way variance can be negative: both sides must say so
      EXPECT_TRUE(std::isnan(tr.stats[0][rep])) << "replication " << rep;
      continue;
    }
    // relative 1e-8; a huge |t*| means a nearly vanishing denominator, computed by cancellation
    // in both paths, so the tolerance widens with |t*| beyond 10
    const double at = std::max(1.0, std::fabs(t_brute));
    EXPECT_NEAR(tr.stats[0][rep], t_brute, 1e-8 * at * std::max(1.0, at / 10)) << "replication " << rep;
  }
}

}  // namespace

TEST(WildBruteForce, EveryReplicationEqualsARefit) {
  const std::uint64_t seed = pbtest::fresh_seed();
  SCOPED_TRACE("PB_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::vector<std::vector<std::string>> clusterings = {{"unit"}, {"grp"}, {"unit", "time"}, {}};
  const WeightType types[] = {WeightType::kRademacher, WeightType::kMammen, WeightType::kWebb,
                              WeightType::kNormal, WeightType::kGamma};
  int case_no = 0;
  for (const auto& cl : clusterings)
    for (bool weighted : {false, true})
      for (bool wcr : {true, false}) {
        const WeightType wt = types[case_no++ % 5];
        const int n_units = 5 + static_cast<int>(rng() % 6), n_t = 3 + static_cast<int>(rng() % 3);
        Problem p = random_problem(rng, n_units, n_t);
        Config c{cl, weighted, wcr, wt, (case_no % 2) ? "x1 = 0.3" : "x1 - x2 = 0.1", ""};
        SCOPED_TRACE("case " + std::to_string(case_no) + " clusters " + std::to_string(cl.size()) +
                     (weighted ? " weighted" : "") + (wcr ? " WCR " : " WCU ") + weight_type_name(wt));
        check_against_brute_force(p, c, false, seed + case_no);
      }
}

TEST(WildBruteForce, BootstrapClustersOtherThanTheErrorClusters) {
  const std::uint64_t seed = pbtest::fresh_seed();
  SCOPED_TRACE("PB_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  // coarser (grp contains units) and crossing (time cuts across units) bootstrap clusters
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"unit"}, "grp"}, {{"unit"}, "time"}, {{"grp"}, "unit"}, {{"unit", "time"}, "grp"}};
  int i = 0;
  for (const auto& [cl, bc] : cases) {
    Problem p = random_problem(rng, 8, 4);
    SCOPED_TRACE("error clusters " + cl[0] + ", bootstrap clusters " + bc);
    check_against_brute_force(p, Config{cl, (i % 2) == 1, true, WeightType::kWebb, "x1 = 0.1", bc}, false,
                              seed + i);
    ++i;
  }
}

TEST(WildPValues, EveryTypeCountsTheTracedStatistics) {
  PB_FRESH_RNG(rng);
  Problem p = random_problem(rng, 9, 4);
  SampleOptions so;
  so.cluster = {"unit"};
  const PValueType types[] = {PValueType::kSymmetric, PValueType::kEqualTailed, PValueType::kLower,
                              PValueType::kUpper};
  for (PValueType pt : types) {
    WildOptions wo;
    wo.tests = {"x1 = 0.25"};
    wo.n_boot = 399;
    wo.pvalue = pt;
    wo.enumerate = Enumerate::kNever;
    wo.ci = false;
    WildTrace tr;
    tr.keep = 399;
    Design d = build_design(p.df, parse_formula("y ~ x1 + x2 | unit + time"), so);
    const WildResult r = wild_bootstrap(d, fit_opts(), wo, cpu_backend(), &tr);
    const double t = r.tests[0].stat;
    // strict ties: with 9 clusters Rademacher draws repeat sign vectors, and the all-plus and
    // all-minus vectors reproduce +-t up to rounding; those are not counted
    const double tol = 1e-10 * std::fabs(t);
    int abs = 0, up = 0, lo = 0;
    for (double s : tr.stats[0]) {
      abs += std::fabs(s) > std::fabs(t) + tol;
      up += s > t + tol;
      lo += s < t - tol;
    }
    const double expect = pt == PValueType::kSymmetric     ? abs / 399.0
                          : pt == PValueType::kEqualTailed ? std::min(1.0, 2.0 * std::min(up, lo) / 399.0)
                          : pt == PValueType::kLower       ? lo / 399.0
                                                           : up / 399.0;
    EXPECT_DOUBLE_EQ(r.tests[0].p_value, expect) << "type " << static_cast<int>(pt) << " abs " << abs << " up " << up << " lo " << lo << " n_exceed " << r.tests[0].n_exceed << " finite " << r.tests[0].n_finite << " t " << t;
  }
}

// A joint test under enumeration: each stored sign vector stands for itself and its mirror,
// which has the same Wald statistic, so every count is twice the traced one.
TEST(WildPValues, EnumeratedJointTestCountsEachVectorTwice) {
  const std::uint64_t seed = pbtest::fresh_seed();
  SCOPED_TRACE("PB_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Problem p = random_problem(rng, 8, 4);
  SampleOptions so;
  so.cluster = {"unit"};
  WildOptions wo;
  wo.tests = {"x1 = 0.2", "x2 = 0"};
  wo.joint = true;
  wo.enumerate = Enumerate::kAlways;
  wo.ci = false;
  WildTrace tr;
  tr.keep = 128;
  Design d = build_design(p.df, parse_formula("y ~ x1 + x2 | unit + time"), so);
  const WildResult r = wild_bootstrap(d, fit_opts(), wo, cpu_backend(), &tr);
  const WildTest& j = r.tests[0];
  ASSERT_EQ(j.q, 2);
  // 8 clusters, or 7 when the random panel left a unit with one row (a singleton, dropped)
  const std::int32_t G = r.n_bootclusters;
  ASSERT_TRUE(G == 8 || G == 7) << G;
  const std::int64_t pairs = std::int64_t{1} << (G - 1);
  ASSERT_EQ(static_cast<std::int64_t>(tr.stats[0].size()), pairs);
  int up = 0;
  for (double s : tr.stats[0]) up += s > j.stat + 1e-10 * j.stat;
  EXPECT_EQ(j.n_boot, 2 * pairs);
  EXPECT_EQ(j.n_finite, 2 * pairs);
  EXPECT_EQ(j.n_exceed, 2 * up);
  EXPECT_DOUBLE_EQ(j.p_value, up / static_cast<double>(pairs));
}

TEST(WildPValues, MultipleTestingAdjustment) {
  const std::string d = pbtest::data_path("boottest_collapsed.csv");
  for (const char* adj : {"bonferroni", "sidak"}) {
    const auto r = pbtest::run({"wild", "--data", d, "-f", "hasinsurance ~ selfemployed + post + post_self",
                                "--cluster", "year", "--test", "post_self = 0.04", "--test", "selfemployed = -0.15",
                                "--padjust", adj, "--format", "json"});
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    for (const auto& t : j["tests"]) {
      const double p = t["p_value"];
      const double want = std::string(adj) == "bonferroni" ? std::min(1.0, 2 * p) : 1 - (1 - p) * (1 - p);
      EXPECT_NEAR(t["p_value_adjusted"].get<double>(), want, 1e-15) << adj;
    }
  }
}

TEST(WildBruteForce, EnumerationEqualsBruteForceEnumeration) {
  PB_FRESH_RNG(rng);
  for (bool wcr : {true, false}) {
    Problem p = random_problem(rng, 6, 4);
    check_against_brute_force(p, Config{{"unit"}, false, wcr, WeightType::kRademacher, "x1 = 0", ""}, true, 1);
  }
}

TEST(WildFixedEffects, AbsorbedEqualsExplicitDummies) {
  // Year FE are not nested in unit clusters: the absorbed path must re-project them.
  PB_FRESH_RNG(rng);
  Problem p = random_problem(rng, 9, 5);
  SampleOptions so;
  so.cluster = {"unit"};
  so.keep_singletons = true;
  WildOptions wo;
  wo.tests = {"x1 = 0.2"};
  wo.n_boot = 499;
  wo.enumerate = Enumerate::kNever;
  WildTrace ta, tb;
  ta.keep = tb.keep = 20;
  for (DofFe dof : {DofFe::kAll, DofFe::kNested}) {
    FitOptions fo;
    fo.vcov = VcovType::kCluster;
    fo.dof_fe = dof;
    Design a = build_design(p.df, parse_formula("y ~ x1 + x2 | unit + time"), so);
    Design b = build_design(p.df, parse_formula("y ~ x1 + x2 + i(time) | unit"), so);
    const WildResult ra = wild_bootstrap(a, fo, wo, cpu_backend(), &ta);
    const WildResult rb = wild_bootstrap(b, fo, wo, cpu_backend(), &tb);
    ASSERT_EQ(ra.fe_reprojected, std::vector<std::string>{"time"});
    EXPECT_TRUE(rb.fe_reprojected.empty());
    if (dof == DofFe::kAll) {
      EXPECT_NEAR(ra.tests[0].stat, rb.tests[0].stat, 1e-9 * std::fabs(rb.tests[0].stat));
      for (std::size_t i = 0; i < ta.keep; ++i) EXPECT_NEAR(ta.stats[0][i], tb.stats[0][i], 1e-8);
    }
    // one-way clustering: the small-sample factor cancels in the p-value under any convention
    EXPECT_EQ(ra.tests[0].n_exceed, rb.tests[0].n_exceed);
    EXPECT_EQ(ra.tests[0].p_value, rb.tests[0].p_value);
  }
}

TEST(WildReproducible, SameCountsForAnyThreadsAndChunk) {
  PB_FRESH_RNG(rng);
  Problem p = random_problem(rng, 10, 4);
  SampleOptions so;
  so.cluster = {"unit"};
  std::vector<std::int64_t> counts;
  std::vector<double> lows;
  for (int variant = 0; variant < 4; ++variant) {
#ifdef _OPENMP
    omp_set_num_threads(variant % 2 ? 2 : 1);
#endif
    WildOptions wo;
    wo.tests = {"x1 = 0.3"};
    wo.n_boot = 2000;
    wo.weight = WeightType::kWebb;
    wo.chunk = variant < 2 ? 64 : 333;
    wo.min_team_work = 0;  // a thread team even for this small problem
    Design d = build_design(p.df, parse_formula("y ~ x1 + x2 | unit + time"), so);
    const WildResult r = wild_bootstrap(d, fit_opts(), wo, cpu_backend());
    counts.push_back(r.tests[0].n_exceed);
    lows.push_back(r.tests[0].ci_low);
  }
#ifdef _OPENMP
  omp_set_num_threads(2);
#endif
  for (std::size_t i = 1; i < counts.size(); ++i) {
    EXPECT_EQ(counts[i], counts[0]);
    EXPECT_EQ(lows[i], lows[0]);
  }
}

TEST(WildInversion, ConfidenceBoundsAreWhereThePValueCrossesAlpha) {
  PB_FRESH_RNG(rng);
  Problem p = random_problem(rng, 10, 5);
  SampleOptions so;
  so.cluster = {"unit"};
  for (bool wcr : {true, false}) {
    WildOptions wo;
    wo.tests = {"x1 = 0"};
    wo.n_boot = 999;
    wo.impose_null = wcr;
    wo.enumerate = Enumerate::kNever;
    Design d = build_design(p.df, parse_formula("y ~ x1 + x2 | unit + time"), so);
    const WildResult r = wild_bootstrap(d, fit_opts(), wo, cpu_backend());
    ASSERT_TRUE(r.tests[0].ci_available);
    const double lo = r.tests[0].ci_low, hi = r.tests[0].ci_high, eps = 1e-4 * (hi - lo);
    auto p_at = [&](double r0) {
      WildOptions w2 = wo;
      char buf[64];
      std::snprintf(buf, sizeof buf, "x1 = %.17g", r0);
      w2.tests = {buf};
      w2.ci = false;
      Design d2 = build_design(p.df, parse_formula("y ~ x1 + x2 | unit + time"), so);
      return wild_bootstrap(d2, fit_opts(), w2, cpu_backend()).tests[0].p_value;
    };
    EXPECT_LE(p_at(lo - eps), 0.05);
    EXPECT_GT(p_at(lo + eps), 0.05);
    EXPECT_GT(p_at(hi - eps), 0.05);
    EXPECT_LE(p_at(hi + eps), 0.05);
  }
}

TEST(WildJoint, WaldStatisticOfTwoRowsMatchesTheFit) {
  const std::string d = pbtest::data_path("boottest_collapsed.csv");
  const auto r = pbtest::run({"wild", "--data", d, "-f", "hasinsurance ~ selfemployed + post + post_self",
                              "--cluster", "year", "--test", "post_self = 0.04", "--test", "post = 0",
                              "--joint", "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["tests"].size(), 3u);
  EXPECT_EQ(j["tests"][0]["q"], 2);
  const auto f = pbtest::fit_json({"--data", d, "-f", "hasinsurance ~ selfemployed + post + post_self", "--cluster",
                                   "year", "--wald", "post_self = 0.04, post = 0"});
  EXPECT_NEAR(j["tests"][0]["f_stat"].get<double>(), f["models"][0]["wald"][0]["f_stat"].get<double>(), 1e-9);
  // the joint test's p-value is the upper tail of F*: exceedances over finite replications
  const double p = j["tests"][0]["p_value"];
  EXPECT_EQ(p, j["tests"][0]["n_exceed"].get<double>() / j["tests"][0]["n_finite"].get<double>());
  EXPECT_GT(j["tests"][0]["n_finite"].get<int>(), 0);
  // each vector and its negation give the same Wald statistic: counts are even
  EXPECT_EQ(j["tests"][0]["n_exceed"].get<int>() % 2, 0);
}

TEST(WildErrors, ClearMessages) {
  const std::string d = pbtest::data_path("boottest_collapsed.csv");
  const std::vector<std::string> base{"wild", "--data", d, "-f", "hasinsurance ~ selfemployed + post + post_self"};
  auto err_of = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    const auto r = pbtest::run(a);
    EXPECT_NE(r.status, 0);
    return r.err;
  };
  EXPECT_NE(err_of({"--test", "post = 0"}).find("wild needs --cluster"), std::string::npos);
  EXPECT_NE(err_of({"--cluster", "year", "--test", "psot = 0"}).find("did you mean 'post'"), std::string::npos);
  EXPECT_NE(err_of({"--cluster", "year", "--test", "post = 0", "--B", "lots"}).find("--B: 'lots' is not a whole number"), std::string::npos);
  EXPECT_NE(err_of({"--cluster", "year", "--test", "post = 0", "--where", "year == 1983"}).find("single level"),
            std::string::npos);
  EXPECT_NE(err_of({"--cluster", "year", "--test", "post = 0", "--enumerate", "always", "--weight-type", "webb"})
                .find("needs --weight-type rademacher"),
            std::string::npos);
  EXPECT_NE(err_of({"--cluster", "year", "--test", "post = 0", "--bootcluster", "yeer"}).find("did you mean 'year'"),
            std::string::npos);
  EXPECT_NE(err_of({"--cluster", "year", "--test", "post = 0", "--bootcluster", "post_self", "--where",
                    "post_self == 0"})
                .find("single level"),
            std::string::npos);
  {
    const auto r = pbtest::run({"wild", "--data", d, "-f", "hasinsurance ~ selfemployed + post + post_self + I(2*post)",
                                "--cluster", "year", "--test", "I(2*post) = 0"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("coefficient I(2*post) (collinear with other regressors) was dropped"), std::string::npos)
        << r.err;
  }
  const auto r = pbtest::run({"wild", "--data", d, "-f", "hasinsurance ~ selfemployed + post + post_self",
                              "--cluster", "year", "--test", "post = 0", "--B", "50", "--enumerate", "never"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.err.find("below 99"), std::string::npos);
}

TEST(WildWeights, RowGeneratorEqualsTheScalarOneAndMomentsHold) {
  for (WeightType t : {WeightType::kRademacher, WeightType::kMammen, WeightType::kWebb, WeightType::kNormal,
                       WeightType::kGamma}) {
    const std::uint32_t G = 300;
    double s1 = 0, s2 = 0;
    long cnt = 0;
    for (std::uint64_t b = 0; b < 400; ++b) {
      std::vector<double> row(G);
      kernels::wild_weights_row(77, b, G, t, row.data(), 1);
      for (std::uint32_t g = 0; g < G; ++g) {
        ASSERT_EQ(row[g], kernels::wild_weight(77, b, g, t)) << weight_type_name(t);
        s1 += row[g];
        s2 += row[g] * row[g];
        ++cnt;
      }
    }
    // mean 0, variance 1 (120,000 draws: standard error of the mean about 0.003)
    EXPECT_NEAR(s1 / cnt, 0.0, 0.015) << weight_type_name(t);
    EXPECT_NEAR(s2 / cnt, 1.0, 0.03) << weight_type_name(t);
  }
}

// The batched product of the wild and WRE replications against the sum over d in order, one
// output at a time: row counts that leave every block size (AVX-512 takes rows four, then two,
// then one at a time), replications beyond the last block of 32, C = A B and C -= A B. The same
// bits from the clone this CPU dispatches to and from the one a CPU without AVX-512 runs.
TEST(CpuKernels, GemmRowsIsTheOrderedSumOfEveryOutput) {
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  for (std::size_t m : {1u, 2u, 4u, 5u, 7u, 11u})
    for (std::size_t d : {1u, 7u, 30u})
      for (std::size_t nb : {31u, 32u, 77u})
        for (bool subtract : {false, true}) {
          std::vector<double> A(m * d), B(d * nb), C(m * nb);
          for (double& v : A) v = nd(rng);
          for (double& v : B) v = nd(rng);
          for (double& v : C) v = nd(rng);
          std::vector<double> want = C;
          for (std::size_t i = 0; i < m; ++i)
            for (std::size_t b = 0; b < nb; ++b) {
              double acc = 0;
              for (std::size_t g = 0; g < d; ++g) acc += A[i * d + g] * B[g * nb + b];
              want[i * nb + b] = subtract ? want[i * nb + b] - acc : acc;
            }
          std::vector<double> narrow = C;
          cpu::gemm_rows(A.data(), m, d, B.data(), nb, C.data(), subtract);
          cpu::gemm_rows_narrow(A.data(), m, d, B.data(), nb, narrow.data(), subtract);
          EXPECT_EQ(C, want) << "m " << m << " d " << d << " nb " << nb << " subtract " << subtract;
          EXPECT_EQ(narrow, want) << "without AVX-512: m " << m << " d " << d << " nb " << nb
                                  << " subtract " << subtract;
        }
}

// The default batch sizes (cache_friendly_batch): 16 to 2016 replications, and from 32 on an odd
// number of whole 32-replication blocks, so no row stride of a G x batch array is a multiple of
// 4 KB.
TEST(CpuKernels, DefaultBatchesAreOddCountsOfWholeBlocks) {
  EXPECT_EQ(cache_friendly_batch(0), 16u);
  EXPECT_EQ(cache_friendly_batch(16), 16u);
  EXPECT_EQ(cache_friendly_batch(31), 31u);
  EXPECT_EQ(cache_friendly_batch(32), 32u);
  EXPECT_EQ(cache_friendly_batch(95), 32u);
  EXPECT_EQ(cache_friendly_batch(96), 96u);
  EXPECT_EQ(cache_friendly_batch(1024), 992u);
  EXPECT_EQ(cache_friendly_batch(2048), 2016u);
  EXPECT_EQ(cache_friendly_batch(std::int64_t{1} << 40), 2016u);
  for (std::int64_t t = 1; t < 5000; ++t) {
    const std::size_t c = cache_friendly_batch(t);
    ASSERT_GE(c, 16u) << t;
    ASSERT_LE(c, 2016u) << t;
    if (c >= 32) {
      ASSERT_EQ(c % 64, 32u) << t;
      ASSERT_LE(c, static_cast<std::size_t>(std::max<std::int64_t>(t, 32))) << t;
      ASSERT_EQ((c * sizeof(double)) % 4096 == 0, false) << t;
    }
  }
  // the study's wild problem (30 clusters, no larger term): 2^18 / 30 -> 2016, not 2048
  WildProblem p;
  p.n_clu = 30;
  EXPECT_EQ(default_wild_chunk(p), 2016u);
}

// The WRE moments of eight (AVX-512) or four replications at once, one a vector lane, against
// the shared scalar kernel one replication at a time: the same bits, for one to three
// instruments, one to 31 error clusters, either sign, replications at any offset of the batch.
TEST(CpuKernels, WreMomentsInLanesAreTheScalarKernels) {
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0.2, 3.0);
  for (int L : {1, 2, 3})
    for (std::int64_t C : {1, 4, 31}) {
      WreProblem pr;  // only the arrays the moments read
      pr.L = L;
      pr.C = C;
      pr.pihat.resize(L);
      pr.zz.resize(C * L * L);
      pr.zzq.resize(C * L * L);
      pr.row_w.resize(C);
      for (std::vector<double>* a : {&pr.pihat, &pr.zz, &pr.zzq})
        for (double& v : *a) v = nd(rng);
      for (double& v : pr.row_w) v = ud(rng);
      const kernels::WreModelView mv = pr.view();
      const std::size_t nb = 21, rows = static_cast<std::size_t>(kernels::wre_rows(L, C));
      std::vector<double> P(rows * nb);
      for (double& v : P) v = nd(rng);
      const std::size_t n_mom = static_cast<std::size_t>(kernels::WreMomentLayout{L}.size());
      std::vector<double> store(n_mom * cpu::kMaxMomentLanes + 8), one(n_mom);
      double* lanes =
          store.data() + ((64 - reinterpret_cast<std::uintptr_t>(store.data()) % 64) % 64) / 8;
      for (bool wide : {false, true}) {
        if (wide && !cpu::has_avx512f()) continue;
        for (double sign : {1.0, -1.0})
          for (std::size_t b : {std::size_t{0}, std::size_t{5}, std::size_t{13}}) {
            const std::size_t W = cpu::wre_moments_lanes(P.data() + b, nb, sign, mv, lanes, wide);
            ASSERT_EQ(W, wide ? 8u : 4u);
            for (std::size_t j = 0; j < W; ++j) {
              kernels::wre_moments(P.data() + b + j, static_cast<std::int64_t>(nb), sign, mv,
                                   one.data());
              for (std::size_t i = 0; i < n_mom; ++i)
                ASSERT_EQ(lanes[i * W + j], one[i])
                    << "L " << L << " C " << C << " wide " << wide << " sign " << sign
                    << " replication " << b + j << " moment " << i;
            }
          }
      }
    }
}

// The CPU's Gray walk (whole blocks with H padded to whole vectors) against the shared PB_HD walk
// over the same vectors: the same counts, exactly, for ties on either rule and a short last block.
TEST(CpuKernels, GrayWalkCountsAreTheSharedWalks) {
  PB_FRESH_RNG(rng);
  for (int G : {3, 9, 14, 17}) {
    const pbtest::RandomGray rg = pbtest::random_gray(rng, G, G + 2);
    kernels::GrayProblem p = rg.problem();
    const Eigen::MatrixXd& H = rg.H;
    const Eigen::VectorXd& C = rg.C;
    const std::uint64_t end = std::uint64_t{1} << (G - 1);
    for (std::uint64_t hi : {std::uint64_t{0}, end > 5 ? end - 5 : end})
      for (double t : {0.0, 0.7, -1.3, C(0) / std::sqrt(H(0, 0))})
        for (bool incl : {false, true}) {
          p.t = t;
          p.inclusive = incl;
          p.hi = hi;
          const BootCounts got = cpu::gray_walk(p, nullptr),
                           want = kernels::gray_walk_range(p, 0, kernels::gray_end(p));
          EXPECT_EQ(got.abs, want.abs)
              << "G " << G << " t " << t << " inclusive " << incl << " hi " << hi;
          EXPECT_EQ(got.upper, want.upper);
          EXPECT_EQ(got.lower, want.lower);
          EXPECT_EQ(got.finite, want.finite);
          const BootCounts plain = cpu::gray_range_without_avx512(p, 0, kernels::gray_end(p));
          EXPECT_EQ(plain.abs, want.abs);
          EXPECT_EQ(plain.upper, want.upper);
          EXPECT_EQ(plain.lower, want.lower);
          EXPECT_EQ(plain.finite, want.finite);
        }
  }
  // windows of six whole blocks and a short one, y of two to five vectors of eight: the walk
  // gray_walk takes (AVX-512 where the CPU has it) and the one without AVX-512, against the
  // shared walk; H positive definite, then indefinite like a two-way variance (den <= 0: skipped),
  // then with C in integers, so that num = 0 ties with t = 0
  for (int G : {13, 20, 28, 33, 40}) {
    pbtest::RandomGray rg = pbtest::random_gray(rng, G, G + 2);
    for (int variant : {0, 1, 2}) {
      const bool indefinite = variant == 1;
      if (indefinite)
        rg.H.diagonal().array() -= rg.H.diagonal().mean();  // trace 0: den < 0 for about half
      // C_g = 1 for an even number of the lowest signs (which take every combination in the
      // window), else 0: num = 0 for the vectors with half of them negative, a tie with t = 0
      const int n_ones = std::min(G, 14) / 2 * 2;
      if (variant == 2) rg.C = (Eigen::ArrayXd::LinSpaced(G, 0, G - 1) < n_ones).cast<double>();
      kernels::GrayProblem p = rg.problem();
      const std::uint64_t end = std::uint64_t{1} << (G - 1), blocks = end / kernels::kGrayBlock;
      auto draw_window = [&] {  // G = 13 has two blocks: the whole walk
        p.lo = blocks > 7 ? rng() % (blocks - 7) * kernels::kGrayBlock : 0;
        p.hi = std::min(p.lo + 6 * kernels::kGrayBlock + 5, end);
      };
      draw_window();
      // with H indefinite (variants 1 and 2), a window where some den <= 0 and some are not:
      // about 1 window in 500 had all of one sign
      for (int tries = 0; variant > 0 && tries < 100; ++tries) {
        p.t = 0;
        const std::int64_t finite = kernels::gray_walk_range(p, p.lo, p.hi).finite;
        if (finite > 0 && finite < static_cast<std::int64_t>(2 * (p.hi - p.lo))) break;
        draw_window();
      }
      const double sd =
          std::sqrt(rg.C.squaredNorm() / rg.K.squaredNorm());  // about the statistics' spread
      for (double t : {0.0, 0.9 * sd, -1.1 * sd})
        for (bool incl : {false, true}) {
          p.t = t;
          p.inclusive = incl;
          const BootCounts want = kernels::gray_walk_range(p, p.lo, p.hi),
                           got = cpu::gray_walk(p, nullptr),
                           plain = cpu::gray_range_without_avx512(p, p.lo, p.hi);
          for (const BootCounts& c : {got, plain}) {
            EXPECT_EQ(c.abs, want.abs)
                << "G " << G << " t " << t << " inclusive " << incl << " indefinite " << indefinite;
            EXPECT_EQ(c.upper, want.upper);
            EXPECT_EQ(c.lower, want.lower);
            EXPECT_EQ(c.finite, want.finite);
          }
          EXPECT_GT(want.abs, 0);
          if (indefinite) {
            EXPECT_LT(want.finite, static_cast<std::int64_t>(2 * (p.hi - p.lo))) << "some den <= 0";
          }
          if (variant == 2 && t == 0.0) {
            EXPECT_LT(incl ? 0 : want.abs, want.finite)
                << "ties: num = 0 is not beyond t = 0 (strict)";
          }
        }
    }
  }
}
