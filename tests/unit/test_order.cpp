// order_by_value (the radix sort behind the threshold model's q order and the time codes)
// against std::stable_sort, on random values with planted ties, signs, -0, extremes.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>

#include "helpers.hpp"
#include "panelboot/design.hpp"

using namespace panelboot;

namespace {

std::vector<std::size_t> reference(const std::vector<double>& v) {
  std::vector<std::size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  return idx;
}

TEST(OrderByValue, EqualsAStableSortOnRandomValuesWithPlantedCases) {
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  for (int rep = 0; rep < 200; ++rep) {
    const std::size_t n = std::uniform_int_distribution<std::size_t>(0, 3000)(rng);
    std::vector<double> v(n);
    const int kind = rep % 4;
    for (double& x : v) {
      if (kind == 0) x = nd(rng);                                   // continuous
      else if (kind == 1) x = std::round(nd(rng) * 3);              // few values, many ties, signs
      else if (kind == 2) x = 2000 + std::floor(nd(rng) * 4 + 8);  // years
      else x = std::ldexp(nd(rng), std::uniform_int_distribution<int>(-1000, 1000)(rng));  // magnitudes
    }
    const double planted[] = {0.0, -0.0, std::numeric_limits<double>::max(), -std::numeric_limits<double>::max(),
                              std::numeric_limits<double>::denorm_min(), -std::numeric_limits<double>::denorm_min(),
                              std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
    for (std::size_t k = 0; k < n && k < 16; ++k)
      v[std::uniform_int_distribution<std::size_t>(0, n - 1)(rng)] = planted[k % 8];
    ASSERT_EQ(order_by_value(v.data(), n), reference(v)) << "rep " << rep << " n " << n << " kind " << kind;
  }
}

TEST(OrderByValue, MinusZeroTiesWithZeroInIndexOrder) {
  const std::vector<double> v = {0.0, -0.0, -1.0, 0.0, -0.0};
  EXPECT_EQ(order_by_value(v.data(), v.size()), (std::vector<std::size_t>{2, 0, 1, 3, 4}));
}

}  // namespace
