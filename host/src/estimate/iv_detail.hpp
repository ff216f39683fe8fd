#pragma once
// Internal pieces of the IV estimator: iv.cpp (2SLS) and iv_diagnostics.cpp (first stages,
// Kleibergen-Paap, effective F, Hansen J, Stock-Yogo).
#include <Eigen/Dense>
#include <vector>

#include "estimate/detail.hpp"
#include "panelboot/design.hpp"
#include "panelboot/estimate.hpp"

namespace panelboot::detail {

// Column indices into the design's X: the kept exogenous regressors, the endogenous ones and
// the excluded instruments.
struct IvColumns {
  std::vector<std::size_t> exo, endo, inst;
};

// The demeaned, sqrt(w)-scaled problem after 2SLS.
struct IvProblem {
  const Design& d;
  const FitOptions& opts;
  const IvColumns& c;
  const Eigen::MatrixXd& W;   // [Z X]
  const Eigen::MatrixXd& R;   // [Y2 X]
  const Eigen::VectorXd& y;   // outcome
  const Eigen::VectorXd& u;   // structural residuals
  const Eigen::MatrixXd& Pi;  // first-stage coefficients on W, one column per endogenous regressor
  const DegreesOfFreedom& dof;
};

// A (symmetric positive definite) \ B on the unit-diagonal scaled matrix, one refinement step.
Eigen::MatrixXd solve_spd(const Eigen::MatrixXd& A, const Eigen::MatrixXd& B);
Eigen::MatrixXd gather(const Eigen::MatrixXd& M, const std::vector<std::size_t>& rows,
                       const std::vector<std::size_t>& cols);
// The design's columns idx as an n_obs x |idx| matrix.
Eigen::MatrixXd columns(const Design& d, const std::vector<std::size_t>& idx);

// The problem's pieces with X partialled out.
struct Partialled {
  Eigen::MatrixXd Z, Y;     // N x L, N x p
  Eigen::MatrixXd ZZinv;    // (Zt'Zt)^-1
  Eigen::MatrixXd Pi;       // L x p: the first stages' coefficients on the excluded instruments
  Eigen::MatrixXd V;        // N x p: first-stage residuals
  double N = 0;
  double K_first = 0, K_first_all = 0;  // the first stage's K (nesting rule) and K_all
};

Eigen::MatrixXd partial_out(const Eigen::MatrixXd& A, const Eigen::MatrixXd& X);
Partialled partialled(const IvProblem& prob);

std::vector<FirstStage> first_stages(const IvProblem& prob, const Partialled& pt);
IvDiagnostics iv_diagnostics(const IvProblem& prob, const Partialled& pt);
// One warning per statistic not reported (NaN), saying why.
std::vector<std::string> missing_statistics(const IvProblem& prob, const IvInfo& info);

}  // namespace panelboot::detail
