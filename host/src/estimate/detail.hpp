#pragma once
// Internal pieces of the estimator shared by fit() and the variance code.
#include <Eigen/Dense>
#include <string>
#include <vector>

#include "panelboot/design.hpp"
#include "panelboot/estimate.hpp"
#include "panelboot/within.hpp"

namespace panelboot::detail {

// Rows per chunk in reductions: a fixed split, so sums do not depend on the thread count.
constexpr std::size_t kRowChunk = 8192;
// Values (rows x columns) below which a pass over the columns runs on the calling thread.
constexpr double kMinTeamValues = 1 << 18;

// Rows [b, b + m) of a column-major n_obs x n_reg matrix.
using RowChunk = Eigen::Map<const Eigen::MatrixXd, 0, Eigen::OuterStride<>>;
inline RowChunk row_chunk(const double* X, std::size_t n_obs, std::size_t n_reg, std::size_t b,
                          std::size_t m) {
  return RowChunk(X + b, static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(n_reg),
                  Eigen::OuterStride<>(static_cast<Eigen::Index>(n_obs)));
}

// Rows per chunk of the Gram: the within transform's chunk, so the transform can hand the Gram
// each chunk it has written (Demeaner::balanced_into).
static_assert(kRowChunk == kSumChunk, "the Gram's chunks are the transform's");

// The Gram's part of each row chunk, added in chunk order (sized up front: the chunks are
// filled on a thread team's threads, where an allocation failure could not be reported).
struct GramParts {
  GramParts(std::size_t n_chunks, std::size_t n_reg)
      : xx(n_chunks,
           Eigen::MatrixXd(static_cast<Eigen::Index>(n_reg), static_cast<Eigen::Index>(n_reg))),
        xy(n_chunks, Eigen::VectorXd(static_cast<Eigen::Index>(n_reg))) {}
  std::vector<Eigen::MatrixXd> xx;
  std::vector<Eigen::VectorXd> xy;
};
void gram_of_rows(const double* X, const double* y, std::size_t n_obs, std::size_t n_reg,
                  std::size_t b, std::size_t m, GramParts& parts, std::size_t c);
void sum_gram_parts(const GramParts& parts, std::size_t n_reg, Eigen::MatrixXd& xtx,
                    Eigen::VectorXd& xty);
// The sum of v_i^2 as chunked_sum adds it (chunks of kSumChunk rows in row order, the chunks in
// order), the chunks in parallel: the RSS.
double sum_of_squares(const double* v, std::size_t n);
// X'X and X'y over every row (the parts of fixed row chunks in chunk order).
void gram(const double* X, const double* y, std::size_t n_obs, std::size_t n_reg,
          Eigen::MatrixXd& xtx, Eigen::VectorXd& xty);

struct VcovInput {
  const Design& design;
  const double* X;  // n_obs x n_reg demeaned, sqrt(w)-scaled, column-major
  const double* u;  // residuals in the same space
  std::size_t n_obs, n_reg;
  const Eigen::MatrixXd& bread;  // (X'X)^-1
  double N, K, K_all;            // K: with the nesting rule; K_all: every FE level counted
  const FitOptions& opts;
  // sum_g s_g s_g' of design.clusters[0], where the residuals' pass took it (residuals_and_meat)
  const Eigen::MatrixXd* first_meat = nullptr;
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

// Rows [b, b + m) of u (y on entry) less X beta: ((u_i - x_i0 b_0) - x_i1 b_1) - ..., in column
// order (the residuals' one formula, whichever pass computes them), up to four columns a pass
// over the rows.
inline void residuals_of_rows(const double* X, std::size_t n_obs, std::size_t n_reg,
                              const Eigen::VectorXd& beta, std::size_t b, std::size_t m,
                              double* u) {
  double* __restrict uc = u + b;
  std::size_t j = 0;
  for (; j + 4 <= n_reg; j += 4) {
    const double* __restrict x0 = X + j * n_obs + b;
    const double* __restrict x1 = x0 + n_obs;
    const double* __restrict x2 = x1 + n_obs;
    const double* __restrict x3 = x2 + n_obs;
    const double b0 = beta(static_cast<Eigen::Index>(j)),
                 b1 = beta(static_cast<Eigen::Index>(j + 1)),
                 b2 = beta(static_cast<Eigen::Index>(j + 2)),
                 b3 = beta(static_cast<Eigen::Index>(j + 3));
    for (std::size_t i = 0; i < m; ++i)
      uc[i] = (((uc[i] - x0[i] * b0) - x1[i] * b1) - x2[i] * b2) - x3[i] * b3;
  }
  for (; j < n_reg; ++j) {
    const double* __restrict x = X + j * n_obs + b;
    const double bj = beta(static_cast<Eigen::Index>(j));
    for (std::size_t i = 0; i < m; ++i) uc[i] -= x[i] * bj;
  }
}

// Whether each level of g is one run of consecutive rows (a panel sorted by it).
bool contiguous_groups(const Grouping& g);

// For groups that are contiguous runs of rows: the residuals written over y (u holds y) and
// cluster_meat's sum_g s_g s_g' in one pass, the rows split among the threads at runs' starts
// (each cell still its rows in row order: cluster_meat's bits, for any thread count).
Eigen::MatrixXd residuals_and_meat(const double* X, double* u, std::size_t n_obs, std::size_t n_reg,
                                   const Eigen::VectorXd& beta, const Grouping& g);

// fit()'s steps, shared with the IV estimator (ols.cpp).
void check_fit_options(const FitOptions& opts);
FitResult describe_sample(const Design& d, const FitOptions& opts);
// The outcome's TSS about its (weighted) mean and each column's uncentered sum of squares,
// before demeaning; refuses columns whose squares overflow or underflow.
struct RawTotals {
  double tss = 0;
  std::vector<double> column_ss;
};
RawTotals raw_totals(const Design& d);
// The within transform of the design's fixed effects.
Demeaner design_demeaner(const Design& d);
// Within transform of y and every X column in place, rows scaled by sqrt(w); the within TSS.
// raw: where dm.takes_totals(), raw_totals' figures, taken by the transform's own passes.
double demean_and_weight(Design& d, const Demeaner& dm, const FitOptions& opts, FitResult& res,
                         RawTotals* raw);
// Collinearity screen in column order (later columns give way); the kept columns.
std::vector<std::size_t> screen_collinear(const Eigen::MatrixXd& xtx, const std::vector<double>& raw_ss,
                                          const std::vector<std::string>& names, bool has_fe,
                                          std::vector<std::string>& dropped);
// The common start of fit() and fit_iv(): options checked, the sample described, the raw totals,
// the within transform (in place) and the Gram X'X, X'y of every column.
struct Demeaned {
  RawTotals raw;
  double tss_within = 0;
  Eigen::MatrixXd xtx;
  Eigen::VectorXd xty;
};
Demeaned demeaned_gram(Design& d, const FitOptions& opts, FitResult& res);
// K (nesting rule) and K_all (every FE level) for k slopes; refuses N <= K_all.
struct DegreesOfFreedom {
  double K = 0, K_all = 0;
};
DegreesOfFreedom degrees_of_freedom(const Design& d, const FitOptions& opts, std::size_t k, FitResult& res);
// The solve on the unit-diagonal scaled Gram with one refinement step; bread = (X'X)^-1.
struct Solution {
  Eigen::VectorXd beta;
  Eigen::MatrixXd bread;
};
Solution solve_scaled(const Eigen::MatrixXd& xtx, const Eigen::VectorXd& xty);
void take_variance(const VcovOutput& vo, FitResult& res);
// res.coefficients from res.beta, res.vcov, res.sigma and res.bread.
void coefficient_table(const std::vector<std::string>& names, const FitOptions& opts, FitResult& res);
void wald_tests(const std::vector<std::string>& names, const FitOptions& opts, FitResult& res);
std::string joined(const std::vector<std::string>& items);

}  // namespace panelboot::detail
