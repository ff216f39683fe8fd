#include "helpers.hpp"
#include "panelboot/distributions.hpp"

using namespace panelboot;

// Reference values from R: qt(), pt(), pf().
TEST(Distributions, StudentTQuantilesAndTails) {
  EXPECT_NEAR(t_quantile(0.975, 29), 2.045229642, 1e-8);
  EXPECT_NEAR(t_quantile(0.995, 7), 3.499483297, 1e-8);
  EXPECT_NEAR(t_quantile(0.975, 9), 2.262157163, 1e-8);
  EXPECT_NEAR(t_two_sided_p(2.0, 10), 0.07338803, 1e-8);
  EXPECT_NEAR(t_two_sided_p(-3.85, 29), 0.0006002632311, 1e-12);
  EXPECT_NEAR(t_two_sided_p(1.96, 1e12), 0.0499957903, 1e-9);
}

TEST(Distributions, FUpperTail) {
  EXPECT_NEAR(f_upper_p(4.0781, 1, 7), t_two_sided_p(std::sqrt(4.0781), 7), 1e-12);
  EXPECT_NEAR(f_upper_p(3.0, 2, 20), 0.07253815029, 1e-10);
}
