#include "panelboot/within.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

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
// same additions as one at a time), so the bits do not depend on the vector width. Totals: the
// column's ColumnTotals on the way (Centered: with the centred ones), each an independent chain
// of additions in row order beside the level sums.
template <bool Totals, bool Centered>
inline __attribute__((always_inline)) void balanced_two_way_passes(
    double* __restrict x, std::size_t n, const FeView& a, const FeView& b, double* __restrict sa,
    double* __restrict sb, ColumnTotals* t) {
  const std::int32_t* __restrict ac = a.code;
  const std::int32_t* __restrict bc = b.code;
  std::fill(sa, sa + a.n_levels, 0.0);
  std::fill(sb, sb + b.n_levels, 0.0);
  std::int32_t level = ac[0];
  double run = 0.0, sum = 0.0, ss = 0.0, mx = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    if (ac[i] != level) {
      sa[level] = run;
      level = ac[i];
      run = sa[level];
    }
    const double xi = x[i];
    run += xi;
    sb[bc[i]] += xi;
    if (Totals) {
      sum += xi;
      ss += xi * xi;
      mx = std::max(mx, std::fabs(xi));
    }
  }
  sa[level] = run;
  double tot = 0;
  for (std::int32_t g = 0; g < a.n_levels; ++g) tot += sa[g];
  const double ia = 1.0 / b.n_levels, ib = 1.0 / a.n_levels;
  for (std::int32_t g = 0; g < a.n_levels; ++g) sa[g] *= ia;
  for (std::int32_t g = 0; g < b.n_levels; ++g) sb[g] *= ib;
  const double mean = tot / static_cast<double>(n);
  if (!Centered) {
    for (std::size_t i = 0; i < n; ++i) x[i] = x[i] - sa[ac[i]] - sb[bc[i]] + mean;
  } else {
    const double m = sum / static_cast<double>(n);
    double centered = 0.0, after = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      const double old = x[i], now = old - sa[ac[i]] - sb[bc[i]] + mean;
      x[i] = now;
      centered += (old - m) * (old - m);
      after += now * now;
    }
    t->centered_ss = centered;
    t->ss_after = after;
  }
  if (Totals) {
    t->sum = sum;
    t->ss = ss;
    t->max_abs = mx;
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void balanced_two_way(
    double* x, std::size_t n, const FeView& a, const FeView& b, double* sa, double* sb,
    ColumnTotals* t, bool centered) {
  if (!t)
    balanced_two_way_passes<false, false>(x, n, a, b, sa, sb, t);
  else if (centered)
    balanced_two_way_passes<true, true>(x, n, a, b, sa, sb, t);
  else
    balanced_two_way_passes<true, false>(x, n, a, b, sa, sb, t);
}

}  // namespace

Demeaner::Demeaner(std::vector<FeView> fe, std::size_t n_obs, const double* weights)
    : fe_(std::move(fe)), n_obs_(n_obs), w_(weights), inv_weight_(fe_.size()) {
  const bool team =
      fe_.size() > 1 &&
      static_cast<double>(n_obs_) * static_cast<double>(fe_.size()) >= kMinTeamElements;
#pragma omp parallel for schedule(dynamic, 1) if (team)
  for (std::ptrdiff_t d = 0; d < static_cast<std::ptrdiff_t>(fe_.size()); ++d) {
    std::vector<double> tot = level_totals(fe_[static_cast<std::size_t>(d)], n_obs_, w_);
    for (double& t : tot) t = t > 0 ? 1.0 / t : 0.0;
    inv_weight_[static_cast<std::size_t>(d)] = std::move(tot);
  }
  if (fe_.size() == 2 && !w_ &&
      static_cast<std::size_t>(fe_[0].n_levels) * static_cast<std::size_t>(fe_[1].n_levels) == n_obs_) {
    // balanced iff every (a, b) pair occurs once
    std::vector<std::uint8_t> seen(n_obs_, 0);  // one byte per cell
    const std::int32_t *a = fe_[0].code, *b = fe_[1].code;
    const std::size_t n_b = static_cast<std::size_t>(fe_[1].n_levels);
    std::uint8_t repeated = 0;
    for (std::size_t i = 0; i < n_obs_; ++i) {
      std::uint8_t& cell =
          seen[static_cast<std::size_t>(a[i]) * n_b + static_cast<std::size_t>(b[i])];
      repeated |= cell;
      cell = 1;
    }
    balanced_two_way_ = repeated == 0;
  }
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
  int worst = 0;
  std::string failed;
  // A thread team only for work worth it: starting one costs more than a small panel's whole
  // projection (and a simulation calls this thousands of times). The columns are independent,
  // so the results do not depend on it.
  const double sweeps = fe_.size() == 1 || balanced_two_way_ ? 1.0 : 10.0;
  const bool team = n_cols > 1 && sweeps * static_cast<double>(n_cols) * static_cast<double>(n_obs_) >= kMinTeamElements;
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
    if (balanced_two_way_) {
      std::vector<double> sb(fe_[1].n_levels);
      if (n_obs_ > 0)
        balanced_two_way(x, n_obs_, fe_[0], fe_[1], sums.data(), sb.data(),
                         totals ? &(*totals)[j] : nullptr, j < n_centered);
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
