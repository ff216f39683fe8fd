#pragma once
// Internal pieces of the estimator shared by fit() and the variance code.
#include <Eigen/Dense>
#include <string>
#include <vector>

#include "panelboot/design.hpp"
#include "panelboot/estimate.hpp"

namespace panelboot::detail {

// Rows per chunk in reductions: a fixed split, so sums do not depend on the thread count.
constexpr std::size_t kRowChunk = 8192;

void gram(const double* X, const double* y, std::size_t n_obs, std::size_t n_reg,
          Eigen::MatrixXd& xtx, Eigen::VectorXd& xty);

struct VcovInput {
  const Design& design;
  const std::vector<std::string>& names;
  const double* X;  // n_obs x n_reg demeaned, sqrt(w)-scaled, column-major
  const double* u;  // residuals in the same space
  std::size_t n_obs, n_reg;
  const Eigen::MatrixXd& bread;  // (X'X)^-1
  double N, K, K_all;            // K: with the nesting rule; K_all: every FE level counted
  const FitOptions& opts;
};

struct VcovOutput {
  Eigen::MatrixXd V;
  std::string type, label, reference;
  double df = 0;
  std::vector<std::string> cluster_names;
  std::vector<std::int32_t> n_clusters;
  int dk_lag = -1;
  std::vector<std::string> warnings;
};

VcovOutput compute_vcov(const VcovInput& in);

// Intersection of several groupings, densified.
Grouping intersect(const std::vector<const Grouping*>& gs);

// sum_g s_g s_g' with s_g = sum_{i in g} x_i u_i, for codes in [0, n_groups).
Eigen::MatrixXd cluster_meat(const double* X, const double* u, std::size_t n_obs, std::size_t n_reg,
                             const std::int32_t* code, std::int32_t n_groups);

// The joint Wald statistic of q restrictions, F = d' (R V R')^-1 d / q with d = R b - r (`diff`)
// and `RVR` = R V R'; false (f untouched) when R V R' has rank below q. Used by fit's --wald and
// wild's --joint.
bool wald_f(const Eigen::VectorXd& diff, const Eigen::MatrixXd& RVR, double& f);

}  // namespace panelboot::detail
