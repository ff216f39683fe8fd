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
