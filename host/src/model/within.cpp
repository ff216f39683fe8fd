#include "panelboot/within.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "panelboot/error.hpp"

namespace panelboot {

namespace {
// Values (columns x rows x sweeps) below which the projection runs on the calling thread.
constexpr double kMinTeamElements = 1 << 18;

// The (weighted) number of rows of each level: counted (exact), or the weights of a run of one
// level summed in a register (sorted panels: the same additions, in the same order, as one row
// at a time).
std::vector<double> level_totals(const FeView& f, std::size_t n, const double* w) {
  std::vector<double> tot(static_cast<std::size_t>(f.n_levels), 0.0);
  if (n == 0) return tot;
  if (!w) {  // counts: whole numbers, exact in any order
    const std::vector<std::uint32_t> rows = rows_per_level(f.code, n, f.n_levels);
    std::copy(rows.begin(), rows.end(), tot.begin());
    return tot;
  }
  std::int32_t level = f.code[0];
  double run = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    if (f.code[i] != level) {
      tot[static_cast<std::size_t>(level)] = run;
      level = f.code[i];
      run = tot[static_cast<std::size_t>(level)];
    }
    run += w[i];
  }
  tot[static_cast<std::size_t>(level)] = run;
  return tot;
}

// x_it - xbar_i - xbar_t + xbar for a balanced panel, in one pass of sums and one of updates.
// The sums of a level add its rows in row order (a run of one level held in a register: the
// same additions as one at a time), so the bits do not depend on the vector width. The first
// pass takes NC columns at once: each column's sums are its own chains of additions (NC times
// the independent work for the one chain a row that bounds a single column). Totals: each
// column's ColumnTotals on the way, more chains of their own in row order.
constexpr int kMaxBalancedGroup = 4;

struct BalancedColumn {
  const double* src;     // the values read (x itself in place)
  double* x;             // where the transform is written
  double *sa, *sb;       // its level sums (n_levels of each dimension), then means
  ColumnTotals* totals;  // or nullptr
  bool centered;
};

// The level sums a column holds in `sums`: column j's n_levels of the first dimension, then of
// the second.
std::size_t level_sums_per_column(const FeView& a, const FeView& b) {
  return static_cast<std::size_t>(a.n_levels) + static_cast<std::size_t>(b.n_levels);
}

// Column j of the balanced columns whose level sums are in `sums`.
BalancedColumn balanced_column_of(std::vector<double>& sums, std::size_t j, const FeView& a,
                                  const FeView& b, const double* src, double* x,
                                  ColumnTotals* totals, bool centered) {
  double* sa = sums.data() + j * level_sums_per_column(a, b);
  return {src, x, sa, sa + a.n_levels, totals, centered};
}

template <int NC, bool Totals>
inline __attribute__((always_inline)) void balanced_sums(BalancedColumn* cols, std::size_t n,
                                                         const FeView& a, const FeView& b) {
  const std::int32_t* __restrict ac = a.code;
  const std::int32_t* __restrict bc = b.code;
  const double* x[NC];
  double *sa[NC], *sb[NC];
  double run[NC], sum[NC], ss[NC], mx[NC];
  for (int c = 0; c < NC; ++c) {
    x[c] = cols[c].src;
    sa[c] = cols[c].sa;
    sb[c] = cols[c].sb;
    std::fill(sa[c], sa[c] + a.n_levels, 0.0);
    std::fill(sb[c], sb[c] + b.n_levels, 0.0);
    run[c] = sum[c] = ss[c] = mx[c] = 0.0;
  }
  std::int32_t level = ac[0];
  for (std::size_t i = 0; i < n; ++i) {
    if (ac[i] != level) {
      for (int c = 0; c < NC; ++c) sa[c][level] = run[c];
      level = ac[i];
      for (int c = 0; c < NC; ++c) run[c] = sa[c][level];
    }
    const std::int32_t period = bc[i];
    for (int c = 0; c < NC; ++c) {
      const double xi = x[c][i];
      run[c] += xi;
      sb[c][period] += xi;
      if (Totals) {
        sum[c] += xi;
        ss[c] += xi * xi;
        mx[c] = std::max(mx[c], std::fabs(xi));
      }
    }
  }
  for (int c = 0; c < NC; ++c) {
    sa[c][level] = run[c];
    if (Totals) {
      cols[c].totals->sum = sum[c];
      cols[c].totals->ss = ss[c];
      cols[c].totals->max_abs = mx[c];
    }
  }
}

// The first pass of nc (1 .. kMaxBalancedGroup) columns of a balanced panel (n > 0), all with
// totals or none.
template <bool Totals>
inline __attribute__((always_inline)) void balanced_sums_of(BalancedColumn* cols, int nc,
                                                            std::size_t n, const FeView& a,
                                                            const FeView& b) {
  switch (nc) {
    case 1:
      balanced_sums<1, Totals>(cols, n, a, b);
      break;
    case 2:
      balanced_sums<2, Totals>(cols, n, a, b);
      break;
    case 3:
      balanced_sums<3, Totals>(cols, n, a, b);
      break;
    default:
      balanced_sums<kMaxBalancedGroup, Totals>(cols, n, a, b);
      break;
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void balanced_group_sums(
    BalancedColumn* cols, int nc, std::size_t n, const FeView& a, const FeView& b) {
  if (cols[0].totals)
    balanced_sums_of<true>(cols, nc, n, a, b);
  else
    balanced_sums_of<false>(cols, nc, n, a, b);
}

// A column's level sums made means; returns its grand mean.
double balanced_means(const BalancedColumn& col, std::size_t n, const FeView& a, const FeView& b) {
  double tot = 0;
  for (std::int32_t g = 0; g < a.n_levels; ++g) tot += col.sa[g];
  const double ia = 1.0 / b.n_levels, ib = 1.0 / a.n_levels;
  for (std::int32_t g = 0; g < a.n_levels; ++g) col.sa[g] *= ia;
  for (std::int32_t g = 0; g < b.n_levels; ++g) col.sb[g] *= ib;
  return tot / static_cast<double>(n);
}

// Rows [b, e) of one column's second pass, src to x (the same memory in place); a centred
// column (mean m: its sum over n) adds these rows' squares about m before and its squares
// after, each in row order, to centered and after.
template <bool Centered>
inline __attribute__((always_inline)) void balanced_rows(const BalancedColumn& col, double mean,
                                                         double m, std::size_t b, std::size_t e,
                                                         const FeView& fa, const FeView& fb,
                                                         double& centered, double& after) {
  const std::int32_t* __restrict ac = fa.code;
  const std::int32_t* __restrict bc = fb.code;
  const double* src = col.src;
  double* x = col.x;
  const double* __restrict sa = col.sa;
  const double* __restrict sb = col.sb;
  if (!Centered) {
    for (std::size_t i = b; i < e; ++i) x[i] = src[i] - sa[ac[i]] - sb[bc[i]] + mean;
    return;
  }
  double c = 0.0, s = 0.0;
  for (std::size_t i = b; i < e; ++i) {
    const double old = src[i], now = old - sa[ac[i]] - sb[bc[i]] + mean;
    x[i] = now;
    c += (old - m) * (old - m);
    s += now * now;
  }
  centered = c;
  after = s;
}

// Rows [b, e) of every column's second pass; the centred ones' (the first n_centered) sums of
// these rows in centered[j], after[j].
__attribute__((target_clones("avx512f", "avx2", "default"))) void balanced_chunk(
    const BalancedColumn* cols, const double* means, std::size_t n_cols, std::size_t n_centered,
    std::size_t n, std::size_t b, std::size_t e, const FeView& fa, const FeView& fb,
    double* centered, double* after) {
  for (std::size_t j = 0; j < n_cols; ++j) {
    if (j < n_centered)
      balanced_rows<true>(cols[j], means[j], cols[j].totals->sum / static_cast<double>(n), b, e, fa,
                          fb, centered[j], after[j]);
    else
      balanced_rows<false>(cols[j], means[j], 0.0, b, e, fa, fb, centered[0], after[0]);
  }
}

// One column's whole second pass (in place or not), a centred one's totals summed by chunks
// of kSumChunk rows in chunk order (the bits of balanced_chunk's parts added in order).
__attribute__((target_clones("avx512f", "avx2", "default"))) void balanced_column(
    const BalancedColumn& col, double mean, std::size_t n, const FeView& fa, const FeView& fb) {
  if (!col.centered) {
    double unused = 0;
    balanced_rows<false>(col, mean, 0.0, 0, n, fa, fb, unused, unused);
    return;
  }
  const double m = col.totals->sum / static_cast<double>(n);
  double centered = 0.0, after = 0.0;
  for (std::size_t b = 0; b < n; b += kSumChunk) {
    double c = 0.0, s = 0.0;
    balanced_rows<true>(col, mean, m, b, std::min(n, b + kSumChunk), fa, fb, c, s);
    centered += c;
    after += s;
  }
  col.totals->centered_ss = centered;
  col.totals->ss_after = after;
}

// Whether row i is cell i: (a, b) = (i / n_b, i % n_b), as the codes of a panel sorted by unit
// and period are (first-appearance codes); then every cell occurs once. A vectorised pass.
__attribute__((target_clones("avx512f", "avx2", "default"))) bool rows_in_cell_order(
    const FeView& fa, const FeView& fb, std::size_t n) {
  const std::int32_t* __restrict a = fa.code;
  const std::int32_t* __restrict b = fb.code;
  const std::int64_t n_b = fb.n_levels;
  constexpr std::size_t kBlock = 4096;
  for (std::size_t s = 0; s < n; s += kBlock) {
    std::int64_t off = 0;
    for (std::size_t i = s, e = std::min(n, s + kBlock); i < e; ++i)
      off |= static_cast<std::int64_t>(a[i]) * n_b + b[i] - static_cast<std::int64_t>(i);
    if (off != 0) return false;
  }
  return true;
}

// Whether every (a, b) cell occurs at most once (with n = n_a n_b rows: exactly once).
bool each_cell_once(const FeView& fa, const FeView& fb, std::size_t n) {
  std::vector<std::uint8_t> seen(n, 0);  // one byte per cell
  const std::size_t n_b = static_cast<std::size_t>(fb.n_levels);
  std::uint8_t repeated = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint8_t& cell =
        seen[static_cast<std::size_t>(fa.code[i]) * n_b + static_cast<std::size_t>(fb.code[i])];
    repeated |= cell;
    cell = 1;
  }
  return repeated == 0;
}

}  // namespace

Demeaner::Demeaner(std::vector<FeView> fe, std::size_t n_obs, const double* weights)
    : fe_(std::move(fe)), n_obs_(n_obs), w_(weights), inv_weight_(fe_.size()) {
  if (fe_.size() == 2 && !w_ &&
      static_cast<std::size_t>(fe_[0].n_levels) * static_cast<std::size_t>(fe_[1].n_levels) ==
          n_obs_) {
    // balanced iff every (a, b) pair occurs once
    balanced_two_way_ =
        rows_in_cell_order(fe_[0], fe_[1], n_obs_) || each_cell_once(fe_[0], fe_[1], n_obs_);
  }
  if (balanced_two_way_) return;  // its transform needs no level weights (project_out's)
  const bool team =
      fe_.size() > 1 &&
      static_cast<double>(n_obs_) * static_cast<double>(fe_.size()) >= kMinTeamElements;
#pragma omp parallel for schedule(dynamic, 1) if (team)
  for (std::ptrdiff_t d = 0; d < static_cast<std::ptrdiff_t>(fe_.size()); ++d) {
    std::vector<double> tot = level_totals(fe_[static_cast<std::size_t>(d)], n_obs_, w_);
    for (double& t : tot) t = t > 0 ? 1.0 / t : 0.0;
    inv_weight_[static_cast<std::size_t>(d)] = std::move(tot);
  }
}

// The first pass of every balanced column: its level sums (per column: n_levels of the first
// dimension, then of the second), and its totals where wanted, in groups of up to
// kMaxBalancedGroup columns taken together, as many groups as threads where there are columns
// enough.
std::vector<double> Demeaner::balanced_level_sums(const std::vector<const double*>& cols,
                                                  std::vector<ColumnTotals>* totals,
                                                  bool team) const {
  const std::size_t n_cols = cols.size();
  std::vector<double> sums(n_cols * level_sums_per_column(fe_[0], fe_[1]));
  const std::size_t threads =
      team ? static_cast<std::size_t>(std::max(1, omp_get_max_threads())) : 1;
  const std::size_t per =
      std::min<std::size_t>((n_cols + threads - 1) / threads, kMaxBalancedGroup);
  const std::ptrdiff_t n_groups = static_cast<std::ptrdiff_t>((n_cols + per - 1) / per);
#pragma omp parallel for schedule(dynamic, 1) if (team && n_groups > 1)
  for (std::ptrdiff_t g = 0; g < n_groups; ++g) {
    const std::size_t j0 = static_cast<std::size_t>(g) * per, j1 = std::min(n_cols, j0 + per);
    BalancedColumn group[kMaxBalancedGroup];
    for (std::size_t j = j0; j < j1; ++j) {
      group[j - j0] = balanced_column_of(sums, j, fe_[0], fe_[1], cols[j], nullptr,
                                         totals ? &(*totals)[j] : nullptr, false);
    }
    balanced_group_sums(group, static_cast<int>(j1 - j0), n_obs_, fe_[0], fe_[1]);
  }
  return sums;
}

// The balanced two-way transform of every column in place: the first passes, then each
// column's second pass, the columns in parallel.
void Demeaner::balanced_columns(const std::vector<double*>& cols, std::vector<ColumnTotals>* totals,
                                std::size_t n_centered, bool team) const {
  const std::size_t n_cols = cols.size();
  if (n_obs_ == 0 || n_cols == 0) return;
  std::vector<double> sums =
      balanced_level_sums(std::vector<const double*>(cols.begin(), cols.end()), totals, team);
#pragma omp parallel for schedule(dynamic, 1) if (team)
  for (std::ptrdiff_t jj = 0; jj < static_cast<std::ptrdiff_t>(n_cols); ++jj) {
    const std::size_t j = static_cast<std::size_t>(jj);
    const BalancedColumn c =
        balanced_column_of(sums, j, fe_[0], fe_[1], cols[j], cols[j],
                           totals ? &(*totals)[j] : nullptr, totals && j < n_centered);
    balanced_column(c, balanced_means(c, n_obs_, fe_[0], fe_[1]), n_obs_, fe_[0], fe_[1]);
  }
}

DemeanReport Demeaner::balanced_into(const std::vector<const double*>& from,
                                     const std::vector<double*>& to,
                                     std::vector<ColumnTotals>& totals, std::size_t n_centered,
                                     const ChunkVisitor& visit) const {
  if (!takes_totals())
    throw std::logic_error("Demeaner::balanced_into: not a balanced two-way transform");
  const std::size_t n_cols = from.size(), n = n_obs_;
  DemeanReport rep;
  rep.method = "balanced two-way";
  rep.max_iterations = n_cols > 0 ? 1 : 0;
  totals.assign(n_cols, ColumnTotals{});
  const bool team = static_cast<double>(n_cols) * static_cast<double>(n) >= kMinTeamElements;
  std::vector<double> sums = balanced_level_sums(from, &totals, team);
  std::vector<BalancedColumn> cols(n_cols);
  std::vector<double> means(n_cols);
  for (std::size_t j = 0; j < n_cols; ++j) {
    cols[j] =
        balanced_column_of(sums, j, fe_[0], fe_[1], from[j], to[j], &totals[j], j < n_centered);
    means[j] = balanced_means(cols[j], n, fe_[0], fe_[1]);
  }
  const std::size_t n_chunks = (n + kSumChunk - 1) / kSumChunk;
  const std::size_t n_parts = std::max<std::size_t>(n_centered, 1);
  std::vector<double> centered(n_chunks * n_parts), after(n_chunks * n_parts);
#pragma omp parallel for schedule(static) if (team && n_chunks > 1)
  for (std::ptrdiff_t cc = 0; cc < static_cast<std::ptrdiff_t>(n_chunks); ++cc) {
    const std::size_t c = static_cast<std::size_t>(cc), b = c * kSumChunk;
    const std::size_t e = std::min(n, b + kSumChunk);
    balanced_chunk(cols.data(), means.data(), n_cols, n_centered, n, b, e, fe_[0], fe_[1],
                   centered.data() + c * n_parts, after.data() + c * n_parts);
    if (visit) visit(c, b, e - b);
  }
  for (std::size_t j = 0; j < n_centered && j < n_cols; ++j) {
    double cs = 0.0, as = 0.0;
    for (std::size_t c = 0; c < n_chunks; ++c) {
      cs += centered[c * n_parts + j];
      as += after[c * n_parts + j];
    }
    totals[j].centered_ss = cs;
    totals[j].ss_after = as;
  }
  return rep;
}

// x <- x - (weighted) mean of x within the groups of dimension d
void Demeaner::project_out(std::size_t d, double* x, std::vector<double>& sums) const {
  const FeView& f = fe_[d];
  std::fill(sums.begin(), sums.begin() + f.n_levels, 0.0);
  if (w_) {
    for (std::size_t i = 0; i < n_obs_; ++i) sums[f.code[i]] += w_[i] * x[i];
  } else {
    for (std::size_t i = 0; i < n_obs_; ++i) sums[f.code[i]] += x[i];
  }
  const std::vector<double>& inv = inv_weight_[d];
  for (std::int32_t g = 0; g < f.n_levels; ++g) sums[g] *= inv[g];
  for (std::size_t i = 0; i < n_obs_; ++i) x[i] -= sums[f.code[i]];
}

DemeanReport Demeaner::demean(double* cols, std::size_t n_cols, std::size_t ld,
                              const DemeanOptions& opts,
                              const std::vector<std::string>& names) const {
  std::vector<double*> each(n_cols);
  for (std::size_t j = 0; j < n_cols; ++j) each[j] = cols + j * ld;
  return demean(each, opts, names);
}

DemeanReport Demeaner::demean(const std::vector<double*>& cols, const DemeanOptions& opts,
                              const std::vector<std::string>& names,
                              std::vector<ColumnTotals>* totals, std::size_t n_centered) const {
  const std::size_t n_cols = cols.size();
  DemeanReport rep;
  if (fe_.empty()) {
    rep.method = "none";
    return rep;
  }
  std::int32_t max_levels = 0;
  for (const FeView& f : fe_) max_levels = std::max(max_levels, f.n_levels);
  if (fe_.size() == 1) rep.method = "one-way";
  else if (balanced_two_way_) rep.method = "balanced two-way";
  else rep.method = "alternating projections";

  if (totals) totals->assign(takes_totals() ? n_cols : 0, ColumnTotals{});
  // A thread team only for work worth it: starting one costs more than a small panel's whole
  // projection (and a simulation calls this thousands of times). The columns are independent,
  // so the results do not depend on it.
  const double sweeps = fe_.size() == 1 || balanced_two_way_ ? 1.0 : 10.0;
  const bool team = n_cols > 1 && sweeps * static_cast<double>(n_cols) * static_cast<double>(n_obs_) >= kMinTeamElements;
  if (balanced_two_way_) {
    balanced_columns(cols, totals, n_centered, team);
    rep.max_iterations = n_cols > 0 ? 1 : 0;
    return rep;
  }
  int worst = 0;
  std::string failed;
#pragma omp parallel for schedule(dynamic, 1) reduction(max : worst) if (team)
  for (std::ptrdiff_t jj = 0; jj < static_cast<std::ptrdiff_t>(n_cols); ++jj) {
    const std::size_t j = static_cast<std::size_t>(jj);
    double* x = cols[j];
    std::vector<double> sums(max_levels);
    if (fe_.size() == 1) {
      project_out(0, x, sums);
      worst = std::max(worst, 1);
      continue;
    }
    // Scale: the column's largest deviation from its mean.
    double mean = 0;
    for (std::size_t i = 0; i < n_obs_; ++i) mean += x[i];
    mean /= static_cast<double>(n_obs_);
    double scale = 0;
    for (std::size_t i = 0; i < n_obs_; ++i) scale = std::max(scale, std::fabs(x[i] - mean));
    if (scale == 0) {  // constant: every FE absorbs it
      std::fill(x, x + n_obs_, 0.0);
      continue;
    }
    std::vector<double> gx(x, x + n_obs_), ggx(n_obs_);
    auto sweep = [&](double* v) {
      for (std::size_t d = 0; d < fe_.size(); ++d) project_out(d, v, sums);
    };
    bool converged = false;
    int iter = 0;
    sweep(x);  // x = T(x0)
    ++iter;
    while (iter < opts.max_iter) {
      // gx = T(x), ggx = T(gx)
      std::copy(x, x + n_obs_, gx.begin());
      sweep(gx.data());
      std::copy(gx.begin(), gx.end(), ggx.begin());
      sweep(ggx.data());
      iter += 2;
      double change = 0, num = 0, den = 0;
      for (std::size_t i = 0; i < n_obs_; ++i) {
        const double d1 = ggx[i] - gx[i];
        const double d2 = d1 - (gx[i] - x[i]);
        change = std::max(change, std::fabs(d1));
        num += d1 * d2;
        den += d2 * d2;
      }
      if (change <= opts.tol * scale) {
        std::copy(ggx.begin(), ggx.end(), x);
        converged = true;
        break;
      }
      // Irons-Tuck: x <- ggx - (d1.d2 / d2.d2) d1; stays in x0 + span(FE) since weights sum to 1
      const double c = den > 0 ? num / den : 0.0;
      for (std::size_t i = 0; i < n_obs_; ++i) x[i] = ggx[i] - c * (ggx[i] - gx[i]);
    }
    worst = std::max(worst, iter);
    if (!converged) {
#pragma omp critical
      failed = names.empty() ? "column " + std::to_string(j + 1) : names[j];
    }
  }
  rep.max_iterations = worst;
  if (!failed.empty())
    throw NotConverged("the fixed effects did not converge for '" + failed + "' within " +
                       std::to_string(opts.max_iter) + " sweeps (tolerance " +
                       [&] { char b[32]; std::snprintf(b, sizeof b, "%g", opts.tol); return std::string(b); }() +
                       "); raise --fe-maxiter or --fe-tol, or check for weakly connected fixed "
                       "effects");
  return rep;
}

}  // namespace panelboot
