#include <algorithm>
#include <random>

#include "helpers.hpp"
#include "panelboot/error.hpp"
#include "panelboot/within.hpp"

using namespace panelboot;

TEST(Within, BalancedShortcutEqualsAlternatingProjections) {
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  const int n_i = 17, n_t = 9;
  std::vector<std::int32_t> a, b;
  std::vector<double> x;
  for (int i = 0; i < n_i; ++i)
    for (int t = 0; t < n_t; ++t) {
      a.push_back(i);
      b.push_back(t);
      x.push_back(nd(rng) + i * 0.3 + t * t * 0.1);
    }
  std::vector<double> x1 = x, x2 = x;
  Demeaner exact({{a.data(), n_i}, {b.data(), n_t}}, x.size(), nullptr);
  EXPECT_EQ(exact.demean(x1.data(), 1, x1.size(), {}, {"x"}).method, "balanced two-way");
  // the same two dimensions plus a redundant third (a copy of the first) forces projections
  Demeaner ap({{a.data(), n_i}, {b.data(), n_t}, {a.data(), n_i}}, x.size(), nullptr);
  DemeanOptions tight;
  tight.tol = 1e-14;
  EXPECT_EQ(ap.demean(x2.data(), 1, x2.size(), tight, {"x"}).method, "alternating projections");
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x1[i], x2[i], 1e-11);
}

TEST(Within, NonConvergenceIsAnError) {
  // an unbalanced two-way design needs several sweeps; allow only one
  std::vector<std::int32_t> a{0, 0, 1, 1, 2, 2, 2}, b{0, 1, 1, 2, 0, 2, 1};
  std::vector<double> x{1, 5, 2, 8, 3, 1, 9};
  Demeaner d({{a.data(), 3}, {b.data(), 3}}, x.size(), nullptr);
  DemeanOptions o;
  o.max_iter = 1;
  EXPECT_THROW(d.demean(x.data(), 1, x.size(), o, {"x"}), NotConverged);
}

// Balanced two-way: every (unit, period) cell once. Rows in cell order are seen at a glance,
// any other order by marking cells; a repeated cell (with as many rows as cells) is not
// balanced, and that design's transform is the projections' (one-way level weights included).
TEST(Within, BalancedMeansEveryCellOnceInAnyRowOrder) {
  PB_FRESH_RNG(rng);
  const int n_i = 300, n_t = 11;  // 3,300 rows: more than one 4096-row block is not needed
  std::vector<std::int32_t> a, b;
  for (int i = 0; i < n_i; ++i)
    for (int t = 0; t < n_t; ++t) {
      a.push_back(i);
      b.push_back(t);
    }
  const auto balanced = [&](const std::vector<std::int32_t>& ua,
                            const std::vector<std::int32_t>& ub) {
    return Demeaner({{ua.data(), n_i}, {ub.data(), n_t}}, ua.size(), nullptr).takes_totals();
  };
  EXPECT_TRUE(balanced(a, b));
  std::vector<std::int32_t> sa = a, sb = b;  // two rows swapped: no longer in cell order
  std::swap(sa[5], sa[2000]);
  std::swap(sb[5], sb[2000]);
  EXPECT_TRUE(balanced(sa, sb));
  std::vector<std::size_t> order(a.size());
  for (std::size_t r = 0; r < order.size(); ++r) order[r] = r;
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<std::int32_t> ra(a.size()), rb(b.size());
  for (std::size_t r = 0; r < order.size(); ++r) {
    ra[r] = a[order[r]];
    rb[r] = b[order[r]];
  }
  EXPECT_TRUE(balanced(ra, rb));
  std::vector<std::int32_t> db = b;  // cell (7, 3) twice, (7, 4) never
  db[7 * n_t + 4] = 3;
  EXPECT_FALSE(balanced(a, db));
  std::vector<std::int32_t> late = b;  // the last row's cell repeated: the glance fails at the end
  late.back() = n_t - 2;
  EXPECT_FALSE(balanced(a, late));
  std::vector<double> x(a.size());
  for (double& v : x) v = std::uniform_real_distribution<double>()(rng);
  Demeaner d({{a.data(), n_i}, {db.data(), n_t}}, x.size(), nullptr);
  DemeanOptions tight;
  tight.tol = 1e-13;
  EXPECT_EQ(d.demean(x.data(), 1, x.size(), tight, {"x"}).method, "alternating projections");
  double unit_sum = 0;  // the within transform leaves every unit's sum zero
  for (int t = 0; t < n_t; ++t) unit_sum += x[static_cast<std::size_t>(7 * n_t + t)];
  EXPECT_NEAR(unit_sum, 0.0, 1e-9);
}
