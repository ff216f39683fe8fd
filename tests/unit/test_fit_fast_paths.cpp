// The fast paths of the sample and the fit on large data (issue 22, item 1) against the slow
// obvious computation: codes against a map in first-appearance order, counts against a loop,
// the balanced within transform against its formula summed one row at a time, the clustered
// scores against a loop over the rows, the clean sample against the same rows reached through
// the missing-value path, and every result the same bits on one thread and on two. The panels
// are large enough (>= 2^16 rows) for the thread teams and the column checks to run.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <string>

#include "estimate/detail.hpp"
#include "helpers.hpp"
#include "panelboot/design.hpp"
#include "panelboot/error.hpp"
#include "panelboot/estimate.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/within.hpp"

using namespace panelboot;

namespace {

Column numeric(const std::string& name, std::vector<double> v) {
  Column c;
  c.name = name;
  c.num = std::move(v);
  return c;
}

DataFrame frame_of(std::vector<Column> cols) {
  DataFrame df;
  df.source = "test";
  const std::size_t n = cols.empty() ? 0 : cols[0].num.size();
  df.columns = std::move(cols);
  df.row_line.resize(n);
  for (std::size_t r = 0; r < n; ++r) df.row_line[r] = static_cast<std::uint32_t>(r + 2);
  return df;
}

// A panel of n_units x n_t rows with k regressors, unit-major (sorted) or in a shuffled order.
DataFrame panel(std::mt19937_64& rng, int n_units, int n_t, int k, bool shuffled) {
  std::normal_distribution<double> nd;
  std::vector<std::size_t> order(static_cast<std::size_t>(n_units) * n_t);
  std::iota(order.begin(), order.end(), 0);
  if (shuffled) std::shuffle(order.begin(), order.end(), rng);
  const std::size_t n = order.size();
  std::vector<double> unit(n), time(n), y(n), cl(n);
  std::vector<std::vector<double>> x(k, std::vector<double>(n));
  for (std::size_t r = 0; r < n; ++r) {
    const std::size_t cell = order[r];
    const int i = static_cast<int>(cell / n_t), t = static_cast<int>(cell % n_t);
    unit[r] = 1000 + 3.0 * i;  // whole numbers off zero: the direct table, not the identity
    time[r] = 2001 + t;
    cl[r] = i % 37;
    double yv = 0.1 * i + 0.05 * t + nd(rng);
    for (int j = 0; j < k; ++j) {
      x[j][r] = nd(rng) + 0.01 * i;
      yv += 0.3 * (j + 1) * x[j][r];
    }
    y[r] = yv;
  }
  std::vector<Column> cols{numeric("unit", unit), numeric("time", time), numeric("cl", cl),
                           numeric("y", y)};
  for (int j = 0; j < k; ++j) cols.push_back(numeric("x" + std::to_string(j + 1), x[j]));
  return frame_of(std::move(cols));
}

FitResult fit_on_threads(const DataFrame& df, const std::string& formula,
                         const std::string& cluster, int threads) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  SampleOptions so;
  so.cluster = {cluster};
  Design d = build_design(df, parse_formula(formula), so);
  FitOptions fo;
  fo.vcov = VcovType::kCluster;
  FitResult r = fit(d, fo);
  omp_set_num_threads(before);
  return r;
}

void expect_same_bits(const FitResult& a, const FitResult& b) {
  ASSERT_EQ(a.coefficients.size(), b.coefficients.size());
  for (std::size_t j = 0; j < a.coefficients.size(); ++j) {
    EXPECT_EQ(a.coefficients[j].estimate, b.coefficients[j].estimate) << a.coefficients[j].name;
    EXPECT_EQ(a.coefficients[j].std_error, b.coefficients[j].std_error) << a.coefficients[j].name;
  }
  EXPECT_EQ(a.rss, b.rss);
  EXPECT_EQ(a.r2, b.r2);
  if (!(std::isnan(a.r2_within) && std::isnan(b.r2_within))) {  // NaN without FE
    EXPECT_EQ(a.r2_within, b.r2_within);
  }
  EXPECT_EQ(a.n_obs, b.n_obs);
}

}  // namespace

TEST(FitFastPaths, GroupCodesFollowFirstAppearanceForEveryKindOfValue) {
  PB_FRESH_RNG(rng);
  // whole numbers in a modest range (the direct table), fractions, huge and mixed-sign values,
  // -0 beside +0, values from 2^52 on, NaN: each against a map in first-appearance order
  const std::vector<std::vector<double>> pools{
      {7, 8, 9, 1000, -3, 0},
      {0.5, 1, 1.5, -2.25},
      {1e300, -1e300, 4, 5},
      {-0.0, 0.0, 1, 2},
      {4503599627370496.0, 4503599627370497.0, 9007199254740992.0, 3},
      {1, 2, std::nan(""), 3},
      {2.0000000000000004, 2, 3}};
  for (const std::vector<double>& pool : pools)
    for (std::size_t n : {5u, 8u, 13u, 70001u}) {
      std::vector<double> v(n);
      for (double& x : v) x = pool[rng() % pool.size()];
      const DataFrame df = frame_of({numeric("g", v)});
      const GroupCodes got = group_codes(df, {"g"});
      std::map<double, std::int32_t> seen;  // -0 == +0 as keys, as in the engine
      std::vector<std::int32_t> want(n);
      for (std::size_t r = 0; r < n; ++r) {
        if (std::isnan(v[r])) {
          want[r] = -1;
          continue;
        }
        want[r] = seen.emplace(v[r], static_cast<std::int32_t>(seen.size())).first->second;
      }
      EXPECT_EQ(got.code, want) << "pool starting " << pool[0] << ", n = " << n;
      EXPECT_EQ(got.n_levels, static_cast<std::int32_t>(seen.size()));
    }
  // one far value among zeros, at each place of an eight-row step and in the tail: the range
  // must see it (a range that missed it would index a table of one entry with 10^9)
  for (const double far : {1e9, -1e9})
    for (std::size_t at : {0u, 1u, 3u, 4u, 5u, 7u, 8u, 12u, 70000u}) {
      std::vector<double> v(70001, 0.0);
      v[at] = far;
      const GroupCodes got = group_codes(frame_of({numeric("g", v)}), {"g"});
      ASSERT_EQ(got.n_levels, 2) << "far value " << far << " at row " << at;
      EXPECT_EQ(got.code[at], at == 0 ? 0 : 1);
      EXPECT_EQ(got.code[at == 0 ? 1 : 0], at == 0 ? 1 : 0);
    }
}

TEST(FitFastPaths, RowsPerLevelCountsEveryRowOnEitherTally) {
  PB_FRESH_RNG(rng);
  // few levels (four interleaved tallies) and many (one), sorted runs and scattered codes
  for (std::int32_t levels : {1, 7, 5000, 60000})
    for (bool sorted : {true, false}) {
      const std::size_t n = 50001;
      std::vector<std::int32_t> code(n);
      for (std::int32_t& c : code)
        c = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(levels));
      if (sorted) std::sort(code.begin(), code.end());
      std::vector<std::uint32_t> want(static_cast<std::size_t>(levels), 0);
      for (std::int32_t c : code) ++want[static_cast<std::size_t>(c)];
      EXPECT_EQ(rows_per_level(code.data(), n, levels), want)
          << levels << " levels, sorted " << sorted;
    }
}

TEST(FitFastPaths, BalancedTwoWayIsItsFormulaSummedRowByRow) {
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  for (bool shuffled : {false, true}) {
    const int n_i = 700, n_t = 110;  // 77,000 rows: the thread team runs
    std::vector<std::size_t> order(static_cast<std::size_t>(n_i) * n_t);
    std::iota(order.begin(), order.end(), 0);
    if (shuffled) std::shuffle(order.begin(), order.end(), rng);
    const std::size_t n = order.size();
    std::vector<std::int32_t> a(n), b(n);
    const int n_cols = 5;
    std::vector<std::vector<double>> x(n_cols, std::vector<double>(n));
    for (std::size_t r = 0; r < n; ++r) {
      a[r] = static_cast<std::int32_t>(order[r] / n_t);
      b[r] = static_cast<std::int32_t>(order[r] % n_t);
      for (int j = 0; j < n_cols;
           ++j)  // odd columns mostly negative: |x| and x have different maxima
        x[j][r] = nd(rng) * 10 + (j % 2 ? -0.1 : 0.1) * a[r];
    }
    std::vector<std::vector<double>> got = x, got_t = x;
    std::vector<double*> cols, cols_t;
    for (auto& c : got) cols.push_back(c.data());
    for (auto& c : got_t) cols_t.push_back(c.data());
    Demeaner dm({{a.data(), n_i}, {b.data(), n_t}}, n, nullptr);
    EXPECT_EQ(dm.demean(cols, {}, std::vector<std::string>(n_cols, "x")).method,
              "balanced two-way");
    // with the totals taken on the way (the first two columns centred): the same values, and each
    // total the row-order loop a separate pass would make
    ASSERT_TRUE(dm.takes_totals());
    std::vector<ColumnTotals> totals;
    dm.demean(cols_t, {}, std::vector<std::string>(n_cols, "x"), &totals, 2);
    // on one thread the first passes take the columns four and one at a time (on two, three and
    // two): the same bits
    std::vector<std::vector<double>> got_1 = x;
    std::vector<double*> cols_1;
    for (auto& c : got_1) cols_1.push_back(c.data());
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dm.demean(cols_1, {}, std::vector<std::string>(n_cols, "x"));
    omp_set_num_threads(threads);
    EXPECT_EQ(got_1, got);
    ASSERT_EQ(totals.size(), static_cast<std::size_t>(n_cols));
    for (int j = 0; j < n_cols; ++j) {
      EXPECT_EQ(got_t[j], got[j]) << "column " << j;
      double sum = 0, ss = 0, mx = 0, centered = 0, after = 0;
      for (std::size_t r = 0; r < n; ++r) {
        sum += x[j][r];
        ss += x[j][r] * x[j][r];
        mx = std::max(mx, std::fabs(x[j][r]));
      }
      const double m = sum / static_cast<double>(n);
      // the sums of squares by chunks of kSumChunk rows, each in row order, chunks in order
      for (std::size_t c0 = 0; c0 < n; c0 += 8192) {
        double cc = 0, ca = 0;
        for (std::size_t r = c0; r < std::min(n, c0 + 8192); ++r) {
          cc += (x[j][r] - m) * (x[j][r] - m);
          ca += got[j][r] * got[j][r];
        }
        centered += cc;
        after += ca;
      }
      const ColumnTotals& t = totals[static_cast<std::size_t>(j)];
      EXPECT_EQ(t.sum, sum) << "column " << j;
      EXPECT_EQ(t.ss, ss) << "column " << j;
      EXPECT_EQ(t.max_abs, mx) << "column " << j;
      EXPECT_EQ(t.centered_ss, j < 2 ? centered : 0.0) << "column " << j;
      EXPECT_EQ(t.ss_after, j < 2 ? after : 0.0) << "column " << j;
    }
    for (int j = 0; j < n_cols; ++j) {
      std::vector<double> sa(n_i, 0.0), sb(n_t, 0.0);
      for (std::size_t r = 0; r < n; ++r) {
        sa[a[r]] += x[j][r];
        sb[b[r]] += x[j][r];
      }
      double tot = 0;
      for (double v : sa) tot += v;
      for (double& v : sa) v *= 1.0 / n_t;
      for (double& v : sb) v *= 1.0 / n_i;
      const double mean = tot / static_cast<double>(n);
      std::size_t differ = 0;
      for (std::size_t r = 0; r < n; ++r)
        differ += got[j][r] != x[j][r] - sa[a[r]] - sb[b[r]] + mean;
      EXPECT_EQ(differ, 0u) << "column " << j << (shuffled ? ", shuffled rows" : ", sorted rows");
    }
  }
}

// The transform from the columns into other memory (a fit of a design whose y and X are still in
// the frame): the in-place transform's values and totals to the bit on one thread and two, the
// columns read left as they were, and each chunk of kSumChunk rows handed to the visitor once,
// after every column's rows of it are written.
TEST(FitFastPaths, BalancedIntoIsTheInPlaceTransformChunkByChunk) {
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  for (bool shuffled : {false, true}) {
    const int n_i = 731, n_t = 47;  // 34,357 rows: four whole chunks and a short one
    std::vector<std::size_t> order(static_cast<std::size_t>(n_i) * n_t);
    std::iota(order.begin(), order.end(), 0);
    if (shuffled) std::shuffle(order.begin(), order.end(), rng);
    const std::size_t n = order.size();
    std::vector<std::int32_t> a(n), b(n);
    const int n_cols = 6;
    std::vector<std::vector<double>> x(n_cols, std::vector<double>(n));
    for (std::size_t r = 0; r < n; ++r) {
      a[r] = static_cast<std::int32_t>(order[r] / n_t);
      b[r] = static_cast<std::int32_t>(order[r] % n_t);
      for (int j = 0; j < n_cols; ++j) x[j][r] = nd(rng) * (j + 1) + 0.2 * a[r] - 0.1 * b[r];
    }
    const std::vector<std::vector<double>> x0 = x;
    Demeaner dm({{a.data(), n_i}, {b.data(), n_t}}, n, nullptr);
    ASSERT_TRUE(dm.takes_totals());
    std::vector<std::vector<double>> in_place = x;
    std::vector<double*> cols;
    for (auto& c : in_place) cols.push_back(c.data());
    std::vector<ColumnTotals> want;
    dm.demean(cols, {}, std::vector<std::string>(n_cols, "x"), &want, 1);
    std::vector<const double*> from;
    for (const auto& c : x) from.push_back(c.data());
    for (int threads : {1, 2}) {
      SCOPED_TRACE(std::to_string(threads) + " thread(s), " + (shuffled ? "shuffled" : "sorted"));
      std::vector<std::vector<double>> out(n_cols, std::vector<double>(n, -7.0));
      std::vector<double*> to;
      for (auto& c : out) to.push_back(c.data());
      const std::size_t n_chunks = (n + kSumChunk - 1) / kSumChunk;
      std::vector<int> visits(n_chunks, 0);
      std::vector<char> rows_ok(n_chunks, 0);
      std::vector<ColumnTotals> got;
      const int before = omp_get_max_threads();
      omp_set_num_threads(threads);
      const DemeanReport rep = dm.balanced_into(
          from, to, got, 1, [&](std::size_t c, std::size_t begin, std::size_t rows) {
            ++visits[c];
            bool ok = begin == c * kSumChunk && rows == std::min(kSumChunk, n - begin);
            for (int j = 0; j < n_cols && ok; ++j)  // every column's rows of the chunk are written
              ok = std::equal(out[j].begin() + begin, out[j].begin() + begin + rows,
                              in_place[j].begin() + begin);
            rows_ok[c] = ok;
          });
      omp_set_num_threads(before);
      EXPECT_EQ(rep.method, "balanced two-way");
      EXPECT_EQ(visits, std::vector<int>(n_chunks, 1));
      EXPECT_EQ(rows_ok, std::vector<char>(n_chunks, 1));
      EXPECT_EQ(out, in_place);
      EXPECT_EQ(x, x0);
      ASSERT_EQ(got.size(), want.size());
      for (int j = 0; j < n_cols; ++j) {
        EXPECT_EQ(got[j].sum, want[j].sum) << j;
        EXPECT_EQ(got[j].ss, want[j].ss) << j;
        EXPECT_EQ(got[j].max_abs, want[j].max_abs) << j;
        EXPECT_EQ(got[j].centered_ss, want[j].centered_ss) << j;
        EXPECT_EQ(got[j].ss_after, want[j].ss_after) << j;
      }
      EXPECT_GT(got[0].centered_ss, 0.0);
      EXPECT_EQ(got[1].centered_ss, 0.0);
    }
  }
}

// A design whose y and X stay in the frame (SampleOptions::defer_columns, as the fit command
// builds it) fits to the bits of one whose columns were copied, and leaves the same demeaned
// columns and residuals in the design: balanced (the transform reads the frame), with an
// evaluated column (held by the design) and an IV model; unbalanced, weighted and one-way (the
// columns copied in first).
TEST(FitFastPaths, ADeferredDesignFitsAsACopiedOne) {
  PB_FRESH_RNG(rng);
  const DataFrame df = panel(rng, 1500, 24, 4, true);  // 36,000 rows
  std::vector<double> w(df.n_rows());
  for (double& v : w) v = 0.5 + std::uniform_real_distribution<double>()(rng);
  DataFrame dfw = df;
  dfw.columns.push_back(numeric("w", w));
  struct Case {
    std::string formula, weights, where;
    bool balanced;
  };
  const std::vector<Case> cases{
      {"y ~ x1 + exp(x2 / 4) + x3 | unit + time", "", "", true},
      {"y ~ x1 + x4 + cl | unit + time", "", "", true},
      {"y ~ x1 + x3 | unit + time | x2 ~ x4", "", "", true},
      {"y ~ x1 + x2 | unit + time", "w", "", false},
      {"y ~ x1 + x2 | unit + time", "", "unit != 1003 | time != 2005", false},
      {"y ~ x1 + x2 | unit", "", "", false},
      {"y ~ x1 + x2", "", "", false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.formula + (c.weights.empty() ? "" : ", weights") +
                 (c.where.empty() ? "" : ", --where"));
    SampleOptions so;
    so.cluster = {"unit"};
    so.weights = c.weights;
    so.where = c.where;
    Design copied = build_design(dfw, parse_formula(c.formula), so);
    so.defer_columns = true;
    Design deferred = build_design(dfw, parse_formula(c.formula), so);
    EXPECT_FALSE(copied.columns_pending());
    EXPECT_EQ(deferred.columns_pending(), c.weights.empty() && c.where.empty());
    if (deferred.columns_pending()) {
      EXPECT_TRUE(deferred.y.empty());
      EXPECT_TRUE(deferred.X.empty());
    }
    FitOptions fo;
    fo.vcov = VcovType::kCluster;
    const FitResult want = fit(copied, fo), got = fit(deferred, fo);
    EXPECT_EQ(got.demean_method, want.demean_method);
    EXPECT_EQ(got.demean_method == "balanced two-way", c.balanced);
    expect_same_bits(want, got);
    EXPECT_FALSE(deferred.columns_pending());
    EXPECT_TRUE(deferred.y == copied.y);
    EXPECT_TRUE(deferred.X == copied.X);
  }
  // values the deferred build did not check: a missing y or x (the row dropped, with its
  // singletons: the design rebuilt) and an out-of-range one (refused), as a copied design has it
  for (const char* bad_case : {"nan y", "nan x2", "nan y and a singleton", "inf x1", "big x3"}) {
    const std::string bad = bad_case;
    SCOPED_TRACE(bad);
    DataFrame dfb = df;
    const auto set = [&](const std::string& var, std::size_t r, double v) {
      for (Column& c : dfb.columns)
        if (c.name == var) c.num[r] = v;
    };
    if (bad == "nan y") set("y", 77, NAN);
    if (bad == "nan x2") set("x2", 1000, NAN);
    if (bad == "nan y and a singleton") {  // a unit of one row: rows dropped before the check
      set("unit", 50, 99999);
      set("y", 77, NAN);
    }
    if (bad == "inf x1") set("x1", 5, INFINITY);
    if (bad == "big x3") set("x3", 9, 3e160);
    for (const std::string& f :
         {std::string("y ~ x1 + x2 + x3 | unit + time"), std::string("y ~ x1 + x2 + x3 | unit")}) {
      SampleOptions so;
      so.cluster = {"unit"};
      FitOptions fo;
      fo.vcov = VcovType::kCluster;
      std::string want_error, got_error;
      FitResult want, got;
      try {
        Design copied = build_design(dfb, parse_formula(f), so);
        want = fit(copied, fo);
      } catch (const InvalidInput& e) {
        want_error = e.what();
      }
      so.defer_columns = true;
      try {
        Design deferred = build_design(dfb, parse_formula(f), so);
        got = fit(deferred, fo);
      } catch (const InvalidInput& e) {
        got_error = e.what();
      }
      EXPECT_EQ(got_error, want_error) << f;
      EXPECT_EQ(want_error.empty(), bad.rfind("nan", 0) == 0) << f << ": " << want_error;
      if (want_error.empty()) {
        expect_same_bits(want, got);
        EXPECT_EQ(got.n_dropped_missing, want.n_dropped_missing);
        EXPECT_EQ(got.n_singletons, want.n_singletons);
        EXPECT_GT(got.n_dropped_missing, 0u);
        if (bad == "nan y and a singleton") {
          EXPECT_EQ(got.n_singletons, 1u);
        }
      }
    }
    SampleOptions so;
    so.defer_columns = true;
    Design d = build_design(dfb, parse_formula("y ~ x1 + x2 + x3 | unit + time"), so);
    if (bad == "nan y and a singleton") {
      EXPECT_FALSE(d.columns_pending());  // rows dropped: built again, columns copied
      continue;
    }
    ASSERT_TRUE(d.columns_pending());
    if (bad.rfind("nan", 0) == 0) {
      take_columns(d);  // rebuilt: the row dropped, nothing pending
      EXPECT_FALSE(d.columns_pending());
      EXPECT_EQ(d.n_obs, df.n_rows() - 1);
      EXPECT_EQ(d.n_dropped_missing, 1u);
    } else {
      EXPECT_THROW(take_columns(d), InvalidInput);
    }
  }
  // every row a singleton, and a missing or infinite value: the error a copied design gives
  // (singletons counted after the missing row is dropped; the infinite value refused first)
  for (double bad : {static_cast<double>(NAN), static_cast<double>(INFINITY)}) {
    std::vector<double> id(40), yv(40), xv(40);
    for (std::size_t r = 0; r < id.size(); ++r) {
      id[r] = static_cast<double>(r);
      yv[r] = std::sin(static_cast<double>(r));
      xv[r] = std::cos(static_cast<double>(r));
    }
    yv[3] = bad;
    const DataFrame lone = frame_of({numeric("id", id), numeric("y", yv), numeric("x1", xv)});
    std::string errors[2];
    for (int deferred = 0; deferred < 2; ++deferred) {
      SampleOptions so;
      so.defer_columns = deferred == 1;
      try {
        Design dd = build_design(lone, parse_formula("y ~ x1 | id"), so);
        fit(dd, FitOptions());
      } catch (const InvalidInput& e) {
        errors[deferred] = e.what();
      }
    }
    EXPECT_FALSE(errors[0].empty());
    EXPECT_EQ(errors[1], errors[0]);
    EXPECT_NE(errors[0].find(std::isnan(bad) ? "39 singletons" : "infinite"), std::string::npos)
        << errors[0];
  }
  // take_columns: the frame's values, then nothing pending
  SampleOptions so;
  so.defer_columns = true;
  Design d = build_design(df, parse_formula("y ~ x1 + x2 | unit + time"), so);
  ASSERT_TRUE(d.columns_pending());
  take_columns(d);
  EXPECT_FALSE(d.columns_pending());
  const DoubleSpan y = df.numeric("y"), x2 = df.numeric("x2");
  EXPECT_TRUE(std::equal(d.y.begin(), d.y.end(), y.begin()));
  EXPECT_TRUE(
      std::equal(d.X.begin() + static_cast<std::ptrdiff_t>(d.n_obs), d.X.end(), x2.begin()));
}

// The Gram: each product the sum of its chunks' (kRowChunk rows) in chunk order, a chunk's sum
// in eight lanes (row mod 8; lanes l and l + 4 added, then (0 + 1) + (2 + 3)) and its last
// rows (m mod 8) in row order. Written out one multiply and add at a time here: the same bits,
// for a k that leaves blocks of four, three and fewer columns and a tail chunk of odd length,
// on one thread and two; X'X exactly symmetric and near the long-double sums.
TEST(FitFastPaths, GramIsItsLaneSumsChunkByChunk) {
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  const std::size_t n = 3 * detail::kRowChunk + 13, k = 6;
  std::vector<double> X(n * k), y(n);
  for (double& v : X) v = nd(rng) * 3 + 1;
  for (double& v : y) v = nd(rng);
  const auto column = [&](std::size_t j) { return j < k ? X.data() + j * n : y.data(); };
  const auto lane_sum = [](const double* a, const double* b, std::size_t m) {
    double lo[4] = {0, 0, 0, 0}, hi[4] = {0, 0, 0, 0};
    const std::size_t m8 = m - m % 8;
    for (std::size_t i = 0; i < m8; i += 8)
      for (int l = 0; l < 4; ++l) {
        lo[l] += a[i + l] * b[i + l];
        hi[l] += a[i + 4 + l] * b[i + 4 + l];
      }
    double v[4];
    for (int l = 0; l < 4; ++l) v[l] = lo[l] + hi[l];
    double s = (v[0] + v[1]) + (v[2] + v[3]);
    for (std::size_t i = m8; i < m; ++i) s += a[i] * b[i];
    return s;
  };
  Eigen::MatrixXd want(k, k + 1);
  for (std::size_t a = 0; a < k; ++a)
    for (std::size_t j = 0; j <= k; ++j) {
      double total = 0;
      for (std::size_t b = 0; b < n; b += detail::kRowChunk) {
        const std::size_t m = std::min(detail::kRowChunk, n - b);
        total += lane_sum(column(a) + b, column(j) + b, m);
      }
      want(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(j)) = total;
    }
  for (int threads : {1, 2}) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    Eigen::MatrixXd xtx;
    Eigen::VectorXd xty;
    detail::gram(X.data(), y.data(), n, k, xtx, xty);
    omp_set_num_threads(before);
    SCOPED_TRACE(std::to_string(threads) + " thread(s)");
    for (std::size_t a = 0; a < k; ++a) {
      const Eigen::Index ia = static_cast<Eigen::Index>(a);
      for (std::size_t j = 0; j < k; ++j) {
        const Eigen::Index ij = static_cast<Eigen::Index>(j);
        EXPECT_EQ(xtx(ia, ij), want(std::min(ia, ij), std::max(ia, ij))) << a << "," << j;
        long double ref = 0;
        for (std::size_t i = 0; i < n; ++i)
          ref += static_cast<long double>(column(a)[i]) * column(j)[i];
        EXPECT_NEAR(xtx(ia, ij), static_cast<double>(ref),
                    1e-12 * std::fabs(static_cast<double>(ref)) + 1e-9);
      }
      EXPECT_EQ(xty(ia), want(ia, static_cast<Eigen::Index>(k))) << a;
    }
  }
}

// A balanced two-way fit takes raw_totals' figures from the transform's passes: R^2 is 1 - RSS /
// TSS with the TSS summed row by row about the mean, R^2 within uses the sum of the demeaned
// outcome's squares, and a regressor the FE absorb (cl, constant within a unit) is dropped.
TEST(FitFastPaths, BalancedFitTakesItsTotalsFromTheTransform) {
  PB_FRESH_RNG(rng);
  const DataFrame df = panel(rng, 300, 12, 3, false);
  SampleOptions so;
  so.cluster = {"unit"};
  Design d = build_design(df, parse_formula("y ~ x1 + cl + x2 + x3 | unit + time"), so);
  const std::vector<double> y(d.y.begin(), d.y.end());
  std::vector<double> y_dm = y;
  Demeaner dm({{d.fe[0].code.data(), d.fe[0].n_levels}, {d.fe[1].code.data(), d.fe[1].n_levels}},
              y.size(), nullptr);
  ASSERT_TRUE(dm.takes_totals());
  dm.demean(y_dm.data(), 1, y_dm.size(), {}, {"y"});
  double sum = 0, tss = 0, tss_within = 0;
  for (double v : y) sum += v;
  const double mean = sum / static_cast<double>(y.size());
  for (double v : y) tss += (v - mean) * (v - mean);
  for (double v : y_dm) tss_within += v * v;
  FitOptions fo;
  fo.vcov = VcovType::kCluster;
  const FitResult r = fit(d, fo);
  EXPECT_EQ(r.demean_method, "balanced two-way");
  EXPECT_EQ(r.r2, 1.0 - r.rss / tss);
  EXPECT_EQ(r.r2_within, 1.0 - r.rss / tss_within);
  ASSERT_EQ(r.dropped.size(), 1u);
  EXPECT_EQ(r.dropped[0], "cl (collinear with the fixed effects)");
  ASSERT_EQ(r.coefficients.size(), 3u);
  EXPECT_EQ(r.coefficients[1].name, "x2");
  // the figures themselves: those of raw_totals' own passes over the design before the transform
  Design d2 = build_design(df, parse_formula("y ~ x1 + cl + x2 + x3 | unit + time"), so);
  const detail::RawTotals want = detail::raw_totals(d2);
  detail::RawTotals got;
  FitResult res;
  detail::demean_and_weight(d2, detail::design_demeaner(d2), fo, res, &got);
  EXPECT_EQ(got.tss, want.tss);
  EXPECT_EQ(got.column_ss, want.column_ss);
}

TEST(FitFastPaths, SameBitsOnOneThreadAndTwoSortedOrShuffled) {
  PB_FRESH_RNG(rng);
  for (bool shuffled : {false, true}) {
    const DataFrame df = panel(rng, 3000, 25, 4, shuffled);  // 75,000 rows
    const std::string f = "y ~ x1 + x2 + x3 + x4 | unit + time";
    const FitResult one = fit_on_threads(df, f, "unit", 1), two = fit_on_threads(df, f, "unit", 2);
    SCOPED_TRACE(shuffled ? "shuffled rows" : "sorted rows");
    EXPECT_EQ(one.demean_method, "balanced two-way");
    expect_same_bits(one, two);
    const FitResult cl1 = fit_on_threads(df, f, "cl", 1), cl2 = fit_on_threads(df, f, "cl", 2);
    expect_same_bits(cl1, cl2);
  }
}

TEST(FitFastPaths, ClusteredVarianceIsTheSandwichOfScoresSummedRowByRow) {
  PB_FRESH_RNG(rng);
  for (bool shuffled : {false, true}) {
    const DataFrame df = panel(rng, 2500, 30, 3, shuffled);
    SampleOptions so;
    so.cluster = {"unit"};
    Design d = build_design(df, parse_formula("y ~ x1 + x2 + x3 | unit + time"), so);
    FitOptions fo;
    fo.vcov = VcovType::kCluster;
    const FitResult r = fit(d, fo);  // d now holds the demeaned X and the residuals in y
    const std::size_t n = d.n_obs, k = d.n_reg;
    const Grouping& g = d.clusters[0];
    Eigen::MatrixXd S = Eigen::MatrixXd::Zero(g.n_levels, static_cast<Eigen::Index>(k));
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < k; ++j)
        S(g.code[i], static_cast<Eigen::Index>(j)) += d.X[j * n + i] * d.y[i];
    const double G = g.n_levels, N = static_cast<double>(n);
    const Eigen::MatrixXd V =
        (G / (G - 1)) * ((N - 1) / (N - r.dof_k)) * r.bread * (S.transpose() * S) * r.bread;
    SCOPED_TRACE(shuffled ? "shuffled rows" : "sorted rows");
    for (std::size_t j = 0; j < k; ++j)
      EXPECT_NEAR(r.coefficients[j].std_error,
                  std::sqrt(V(static_cast<Eigen::Index>(j), static_cast<Eigen::Index>(j))),
                  1e-12 * r.coefficients[j].std_error);
  }
}

// The residuals' pass that takes the scores of contiguous groups (a sorted panel's units): the
// residuals and cluster_meat's sum_g s_g s_g' to the bit, on one thread, two and three (the
// rows split at groups' starts), with groups of one row, groups longer than the 1024-row blocks,
// and one, four, five and eleven columns; contiguous_groups tells runs from revisited groups.
TEST(FitFastPaths, ResidualsAndMeatOfContiguousGroupsAreTheTwoPassesBits) {
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  std::uniform_int_distribution<int> len(1, 40);
  for (std::size_t k : {1u, 4u, 5u, 11u}) {
    Grouping g;
    while (g.code.size() < 90000) {
      const int l = g.n_levels % 97 == 5 ? 3000 : len(rng);  // now and then a long run
      g.code.insert(g.code.end(), static_cast<std::size_t>(l), g.n_levels++);
    }
    const std::size_t n = g.code.size();
    ASSERT_TRUE(detail::contiguous_groups(g));
    std::vector<double> X(n * k), y(n);
    for (double& v : X) v = nd(rng);
    for (double& v : y) v = nd(rng) * 2;
    Eigen::VectorXd beta(static_cast<Eigen::Index>(k));
    for (Eigen::Index j = 0; j < beta.size(); ++j) beta(j) = nd(rng);
    std::vector<double> u_want = y;
    detail::residuals_of_rows(X.data(), n, k, beta, 0, n, u_want.data());
    const Eigen::MatrixXd want =
        detail::cluster_meat(X.data(), u_want.data(), n, k, g.code.data(), g.n_levels);
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE("k = " + std::to_string(k) + ", " + std::to_string(threads) + " thread(s)");
      std::vector<double> u = y;
      const int before = omp_get_max_threads();
      omp_set_num_threads(threads);
      const Eigen::MatrixXd got = detail::residuals_and_meat(X.data(), u.data(), n, k, beta, g);
      omp_set_num_threads(before);
      EXPECT_EQ(u, u_want);
      EXPECT_TRUE(got == want);
    }
    EXPECT_EQ(detail::sum_of_squares(u_want.data(), n),
              chunked_sum(n, [&](std::size_t i) { return u_want[i] * u_want[i]; }));
    std::swap(g.code[10], g.code[n - 10]);  // two groups revisited
    EXPECT_FALSE(detail::contiguous_groups(g));
  }
  {
    Grouping g;  // as many runs as levels, but level 2 unused and level 0 in two runs
    g.code = {0, 0, 1, 1, 0, 0};
    g.n_levels = 3;
    EXPECT_FALSE(detail::contiguous_groups(g));
    g.code = {2, 2, 0, 1, 1};
    EXPECT_TRUE(detail::contiguous_groups(g));
  }
}

TEST(FitFastPaths, CleanSampleEqualsTheSameRowsReachedThroughMissingValues) {
  PB_FRESH_RNG(rng);
  // the frame with three rows' x2 missing goes the row-by-row way; the frame without those rows
  // goes the column checks and the whole copy: the same sample, the same bits
  DataFrame full = panel(rng, 3000, 25, 3, true);
  const std::size_t n = full.n_rows();
  std::vector<std::size_t> gone{17, n / 2, n - 1};
  DataFrame with_missing = full;
  for (std::size_t r : gone) with_missing.columns[5].num[r] = std::nan("");
  std::vector<Column> kept_cols;
  for (const Column& c : full.columns) {
    Column k = c;
    k.num.clear();
    for (std::size_t r = 0; r < n; ++r)
      if (std::find(gone.begin(), gone.end(), r) == gone.end()) k.num.push_back(c.num[r]);
    kept_cols.push_back(k);
  }
  const DataFrame without = frame_of(kept_cols);
  const std::string f = "y ~ x1 + x2 + x3 | unit + time";
  const FitResult a = fit_on_threads(with_missing, f, "unit", 2),
                  b = fit_on_threads(without, f, "unit", 2);
  EXPECT_EQ(a.n_dropped_missing, 3u);
  EXPECT_EQ(b.n_dropped_missing, 0u);
  expect_same_bits(a, b);
}

TEST(FitFastPaths, SingletonsDropInTurnAcrossDimensionsOnLargeData) {
  PB_FRESH_RNG(rng);
  // a large panel plus a chain: unit 123456 has rows in two periods, one of them (1999) with only
  // that row: dropping it (a period singleton) leaves unit 123456 a singleton in turn
  DataFrame df = panel(rng, 3000, 25, 2, true);
  for (Column& c : df.columns) {
    const double extra[2] = {c.name == "unit"   ? 123456.0
                             : c.name == "time" ? 2001.0
                             : c.name == "cl"   ? 1.0
                                                : 0.5,
                             c.name == "unit"   ? 123456.0
                             : c.name == "time" ? 1999.0
                             : c.name == "cl"   ? 1.0
                                                : 0.25};
    c.num.insert(c.num.end(), extra, extra + 2);
  }
  df.row_line.resize(df.columns[0].num.size(), 0);
  SampleOptions so;
  so.cluster = {"unit"};
  const Design d = build_design(df, parse_formula("y ~ x1 + x2 | unit + time"), so);
  EXPECT_EQ(d.n_singletons, 2u);
  EXPECT_EQ(d.n_obs, 75000u);
  EXPECT_FALSE(d.rows.empty());  // two rows out: the sample's rows are listed
}

// The VmFlags line of the mapping that holds p (/proc/self/smaps), "" if none does.
std::string mapping_flags_of(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find('-') < line.find(' '))
      inside = at >= lo && at < hi;
    else if (inside && line.rfind("VmFlags:", 0) == 0)
      return line;
  }
  return "";
}

// main() has the heap's next 64 MB advised for transparent huge pages (memory.hpp): a block
// allocated after it lies in a mapping the kernel marks "hg", where the kernel offers THP at all.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PB_OWN_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define PB_OWN_ALLOCATOR 1
#endif
#endif
TEST(FitFastPaths, TheHeapIsAdvisedForHugePages) {
#ifdef PB_OWN_ALLOCATOR
  GTEST_SKIP() << "the sanitizer's allocator replaces glibc's heap";
#endif
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode;
  if (!std::getline(thp, mode) || mode.find("[never]") != std::string::npos)
    GTEST_SKIP() << "the kernel offers no transparent huge pages";
  keep_freed_memory_for_reuse();  // as main() does, in this test's own process (a small heap)
  // the 64 MB the heap grew by ahead of use are not memory kept for reuse: MemAvailable has them
  EXPECT_LT(heap_free_for_reuse(), std::uint64_t{32} << 20);
  std::vector<double> block(std::size_t{1} << 20);  // 8 MB
  EXPECT_NE(mapping_flags_of(block.data()).find(" hg"), std::string::npos)
      << mapping_flags_of(block.data());
  EXPECT_EQ(mapping_flags_of(&mode).find(" hg"), std::string::npos) << "the stack is not advised";
}

// The allocator keeps freed memory for reuse (panelboot's main() sets it): the memory estimates
// must count it as available, or a second large step in one process would be refused.
TEST(FitFastPaths, FreedHeapMemoryCountsAsAvailable) {
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP()
      << "AddressSanitizer's allocator replaces glibc's, whose mallinfo2 then reports nothing";
#endif
  keep_freed_memory_for_reuse();
  const std::size_t bytes = std::size_t{256} << 20;
  {
    std::vector<char> big(bytes, 1);  // written: its pages are the process's
    ASSERT_EQ(big[bytes - 1], 1);
  }
  const std::uint64_t kept = heap_free_for_reuse();
  EXPECT_GE(kept, bytes);
  const std::uint64_t system = system_headroom();
  if (system != std::numeric_limits<std::uint64_t>::max()) {
    // the kernel's figure moves a little between the two reads; the heap's 256 MB must show
    const double limit = static_cast<double>(memory_limit(0)),
                 expected = static_cast<double>(system + kept);
    EXPECT_NEAR(limit, expected, 64.0 * (1 << 20));
  }
  EXPECT_EQ(memory_limit(12345), 12345u);  // --max-memory is taken as given
}
