#pragma once
// The within transform: project the fixed effects out of columns, in place.
//  - one FE dimension: subtract (weighted) group means, exact;
//  - two dimensions forming a balanced panel without weights: x - xbar_i - xbar_t + xbar, exact;
//  - otherwise: alternating projections x <- (I - P_D)...(I - P_1) x with Irons-Tuck
//    extrapolation every second sweep, until one sweep moves no value by more than
//    tol x (the column's scale). Non-convergence throws NotConverged.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace panelboot {

// The rows of each level of codes in [0, n_levels): four interleaved tallies (a sorted panel's
// run of one level then adds to four counters, not one in a chain of dependent increments).
// Defined in model/level_counts.cpp: the design's singleton counts use it too.
std::vector<std::uint32_t> rows_per_level(const std::int32_t* code, std::size_t n,
                                          std::int32_t n_levels);

struct FeView {
  const std::int32_t* code;  // n_obs codes in [0, n_levels)
  std::int32_t n_levels;
};

struct DemeanOptions {
  double tol = 1e-10;      // relative to each column's scale (its largest |x - mean|)
  int max_iter = 10000;    // sweeps per column
};

struct DemeanReport {
  std::string method;      // "none", "one-way", "balanced two-way", "alternating projections"
  int max_iterations = 0;  // the most sweeps any column needed
};

// Totals of a column that the balanced two-way transform takes in its own passes, each summed in
// row order (the bits of a separate pass over the column): before the transform the sum, the sum
// of squares and the largest |value|; for a centred column also the sum of squares about the
// mean (sum / n) before and the sum of squares after.
struct ColumnTotals {
  double sum = 0, ss = 0, max_abs = 0, centered_ss = 0, ss_after = 0;
};

// Rows per chunk of a sum of squares over a column (the centred totals, the TSS): each chunk's
// terms added in row order, the chunks' sums in chunk order, so a pass split by chunks over
// threads gives the bits of one thread's.
constexpr std::size_t kSumChunk = 8192;
template <class Term>
double chunked_sum(std::size_t n, Term term) {
  double total = 0;
  for (std::size_t b = 0; b < n; b += kSumChunk) {
    const std::size_t e = b + kSumChunk < n ? b + kSumChunk : n;
    double part = 0;
    for (std::size_t i = b; i < e; ++i) part += term(i);
    total += part;
  }
  return total;
}

// Called for chunk c, rows [begin, begin + rows), of a transform's second pass (see
// Demeaner::balanced_into).
using ChunkVisitor = std::function<void(std::size_t c, std::size_t begin, std::size_t rows)>;

class Demeaner {
 public:
  // weights: n_obs regression weights or nullptr.
  Demeaner(std::vector<FeView> fe, std::size_t n_obs, const double* weights);
  // Demeans n_cols columns of length n_obs stored at cols + j * ld. Columns run in parallel;
  // each column's arithmetic is the same for any thread count.
  DemeanReport demean(double* cols, std::size_t n_cols, std::size_t ld,
                      const DemeanOptions& opts, const std::vector<std::string>& names) const;
  // The same for columns stored apart (an outcome and a regressor matrix, demeaned together).
  // Where takes_totals(), `totals` (when given) gets each column's ColumnTotals, the first
  // n_centered of them with the centred ones.
  DemeanReport demean(const std::vector<double*>& cols, const DemeanOptions& opts,
                      const std::vector<std::string>& names,
                      std::vector<ColumnTotals>* totals = nullptr,
                      std::size_t n_centered = 0) const;
  // Whether demean fills ColumnTotals: the balanced two-way transform (no weights), n_obs > 0.
  bool takes_totals() const { return balanced_two_way_ && n_obs_ > 0; }
  // Where takes_totals(): the transform of the columns `from` written to `to` (other memory,
  // n_obs each), with every column's ColumnTotals, the first n_centered centred, all as demean
  // gives them. The first pass as demean's; the second by chunks of kSumChunk rows, in
  // parallel, every column's rows of a chunk together, then visit(c, begin, rows) for the
  // chunk on the thread that wrote it, while its rows are in that core's cache.
  DemeanReport balanced_into(const std::vector<const double*>& from, const std::vector<double*>& to,
                             std::vector<ColumnTotals>& totals, std::size_t n_centered,
                             const ChunkVisitor& visit) const;

 private:
  void project_out(std::size_t d, double* x, std::vector<double>& sums) const;
  void balanced_columns(const std::vector<double*>& cols, std::vector<ColumnTotals>* totals,
                        std::size_t n_centered, bool team) const;
  std::vector<double> balanced_level_sums(const std::vector<const double*>& cols,
                                          std::vector<ColumnTotals>* totals, bool team) const;
  std::vector<FeView> fe_;
  std::size_t n_obs_;
  const double* w_;
  // per dimension: 1 / (sum of weights) per level (empty for the balanced two-way transform)
  std::vector<std::vector<double>> inv_weight_;
  bool balanced_two_way_ = false;
};

}  // namespace panelboot
