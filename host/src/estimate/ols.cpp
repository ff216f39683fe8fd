// FE OLS: within transform, collinearity screen, a stable solve, then the chosen variance.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "estimate/detail.hpp"
#include "panelboot/distributions.hpp"
#include "panelboot/error.hpp"
#include "panelboot/estimate.hpp"

namespace panelboot {

namespace detail {

namespace {

typedef double V4 __attribute__((vector_size(32)));

// NB dot products of column xa with the columns xb[0 .. NB) over rows [0, m): eight rows a
// step in two four-lane sums (lane l: the rows i with i mod 8 = l), added lane by lane and
// folded (l0 + l1) + (l2 + l3), then the last m mod 8 rows in row order. Plain multiplies and
// adds in GCC's vector types: the same bits from every clone (AVX-512, AVX2, SSE2).
template <int NB>
inline __attribute__((always_inline)) void dot_products(const double* xa, const double* const* xb,
                                                        std::size_t m, double* out) {
  V4 lo[NB], hi[NB];
  for (int t = 0; t < NB; ++t) lo[t] = hi[t] = V4{};
  const std::size_t m8 = m - m % 8;
  for (std::size_t i = 0; i < m8; i += 8) {
    V4 a0, a1;
    std::memcpy(&a0, xa + i, sizeof a0);
    std::memcpy(&a1, xa + i + 4, sizeof a1);
    for (int t = 0; t < NB; ++t) {
      V4 b0, b1;
      std::memcpy(&b0, xb[t] + i, sizeof b0);
      std::memcpy(&b1, xb[t] + i + 4, sizeof b1);
      lo[t] += a0 * b0;
      hi[t] += a1 * b1;
    }
  }
  for (int t = 0; t < NB; ++t) {
    const V4 v = lo[t] + hi[t];
    double s = (v[0] + v[1]) + (v[2] + v[3]);
    for (std::size_t i = m8; i < m; ++i) s += xa[i] * xb[t][i];
    out[t] = s;
  }
}

// The products of column xa with nb (1 .. 4) columns xb.
__attribute__((target_clones("avx512f", "avx2", "default"))) void dot_products_of(
    const double* xa, const double* const* xb, int nb, std::size_t m, double* out) {
  switch (nb) {
    case 1:
      dot_products<1>(xa, xb, m, out);
      break;
    case 2:
      dot_products<2>(xa, xb, m, out);
      break;
    case 3:
      dot_products<3>(xa, xb, m, out);
      break;
    default:
      dot_products<4>(xa, xb, m, out);
      break;
  }
}

}  // namespace

// X'X and X'y of rows [b, b + m): one chunk's part of the Gram. Each product is dot_products'
// sum (so X'X is symmetric to the bit), a column against up to four others in one pass over
// the chunk's rows (in cache when the transform hands the chunk over).
void gram_of_rows(const double* X, const double* y, std::size_t n_obs, std::size_t n_reg,
                  std::size_t b, std::size_t m, GramParts& parts, std::size_t c) {
  const std::size_t k = n_reg;
  // column j of [X y] over the chunk's rows (X'y: the last column); nothing allocated here, on a
  // thread of the team (GramParts holds the parts' storage)
  const auto col = [&](std::size_t j) { return j < k ? X + j * n_obs + b : y + b; };
  Eigen::MatrixXd& xx = parts.xx[c];
  Eigen::VectorXd& xy = parts.xy[c];
  double out[4];
  for (std::size_t a = 0; a < k; ++a)
    for (std::size_t j = a; j <= k; j += 4) {
      const int nb = static_cast<int>(std::min<std::size_t>(4, k + 1 - j));
      const double* others[4];
      for (int t = 0; t < nb; ++t) others[t] = col(j + static_cast<std::size_t>(t));
      dot_products_of(col(a), others, nb, m, out);
      for (int t = 0; t < nb; ++t) {
        const Eigen::Index ia = static_cast<Eigen::Index>(a), jj = static_cast<Eigen::Index>(j) + t;
        if (jj < static_cast<Eigen::Index>(k))
          xx(ia, jj) = xx(jj, ia) = out[t];
        else
          xy(ia) = out[t];
      }
    }
}

// The chunks' parts added in chunk order.
void sum_gram_parts(const GramParts& parts, std::size_t n_reg, Eigen::MatrixXd& xtx,
                    Eigen::VectorXd& xty) {
  const Eigen::Index k = static_cast<Eigen::Index>(n_reg);
  xtx = Eigen::MatrixXd::Zero(k, k);
  xty = Eigen::VectorXd::Zero(k);
  for (std::size_t c = 0; c < parts.xx.size(); ++c) {
    xtx += parts.xx[c];
    xty += parts.xy[c];
  }
}

double sum_of_squares(const double* v, std::size_t n) {
  const std::size_t n_chunks = (n + kSumChunk - 1) / kSumChunk;
  std::vector<double> part(n_chunks);
#pragma omp parallel for schedule(static) if (n_chunks > 8)
  for (std::ptrdiff_t c = 0; c < static_cast<std::ptrdiff_t>(n_chunks); ++c) {
    const std::size_t b = static_cast<std::size_t>(c) * kSumChunk, e = std::min(n, b + kSumChunk);
    double s = 0;
    for (std::size_t i = b; i < e; ++i) s += v[i] * v[i];
    part[static_cast<std::size_t>(c)] = s;
  }
  double total = 0;
  for (double p : part) total += p;
  return total;
}

// X'X and X'y summed over fixed row chunks in chunk order, so the bits do not depend on the
// thread count.
void gram(const double* X, const double* y, std::size_t n_obs, std::size_t n_reg,
          Eigen::MatrixXd& xtx, Eigen::VectorXd& xty) {
  const std::size_t chunk = kRowChunk;
  const std::size_t n_chunks = (n_obs + chunk - 1) / chunk;
  GramParts parts(n_chunks, n_reg);
#pragma omp parallel for schedule(static) if (n_chunks > 1)  // no thread team for one chunk
  for (std::ptrdiff_t c = 0; c < static_cast<std::ptrdiff_t>(n_chunks); ++c) {
    const std::size_t b = static_cast<std::size_t>(c) * chunk;
    gram_of_rows(X, y, n_obs, n_reg, b, std::min(chunk, n_obs - b), parts,
                 static_cast<std::size_t>(c));
  }
  sum_gram_parts(parts, n_reg, xtx, xty);
}

}  // namespace detail

namespace {

// The collinearity screen compares each column's sums of squares: they must neither overflow
// (many values near 1e154) nor underflow to zero for a column that is not zero (values near
// 1e-160), or a regressor would be silently dropped. Rescaling is the user's call.
void refuse_unscaled(const std::string& name, double sum_sq, double max_abs) {
  if (!std::isfinite(sum_sq))
    throw InvalidInput("the sum of squares of '" + name + "' overflows double precision; rescale it (divide it by a power of ten)");
  if (sum_sq == 0 && max_abs > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", max_abs);
    throw InvalidInput("the values of '" + name + "' are so small (largest " + buf +
                       ") that their squares underflow to zero; rescale it (multiply it by a power of ten)");
  }
}

// Why standard errors came out as zero, and what to do: one line for the model. `first` is the
// first such coefficient with its figures; `names` all of them.
std::string zero_se_warning(const std::vector<std::string>& names, const std::string& first, const FitResult& r) {
  std::string list;
  for (std::size_t i = 0; i < names.size() && i < 5; ++i) list += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > 5) list += " and " + std::to_string(names.size() - 5) + " more";
  std::string why = "the " + r.vcov_type + " standard error" + (names.size() > 1 ? "s of " : " of ") + list +
                    (names.size() > 1 ? " are" : " is") + " numerically zero (" + first + ")";
  if (r.vcov_type == "cluster") {
    why += ": with " + std::to_string(r.min_clusters()) + " clusters the cluster-robust variance has no information about " +
           (names.size() > 1 ? "them" : "it");
  } else {
    why += ": the model fits (almost) exactly";
  }
  return why + "; t, p-value and CI not reported (NA)";
}

}  // namespace

bool se_is_zero(double se, double estimate, double se_iid) {
  return se <= kZeroSeRel * std::max(std::fabs(estimate), se_iid);
}

// The pieces below are shared with the IV estimator (iv.cpp), declared in detail.hpp.
namespace detail {

// The options' values, checked where the engine takes them (the CLI's parsers check them too).
void check_fit_options(const FitOptions& opts) {
  if (!(opts.level > 0 && opts.level < 1))
    throw InvalidInput("confidence level " + std::to_string(opts.level) + ": give a number strictly between 0 and 1, e.g. 0.95");
  if (!(opts.demean.tol > 0)) throw InvalidInput("FE projection tolerance: must be positive");
}

// The sample's description, copied from the design.
FitResult describe_sample(const Design& d, const FitOptions& opts) {
  FitResult res;
  res.formula = d.formula;
  res.y_name = d.y_name;
  res.data_source = d.data_source;
  res.simulated = d.simulated;
  res.n_obs = d.n_obs;
  res.n_input = d.n_input;
  res.n_dropped_where = d.n_dropped_where;
  res.n_dropped_missing = d.n_dropped_missing;
  res.n_singletons = d.n_singletons;
  res.missing_by_variable = d.missing_by_variable;
  res.level = opts.level;
  res.small = opts.small;
  for (const Grouping& g : d.fe) {
    res.fe_names.push_back(g.name);
    res.fe_levels.push_back(g.n_levels);
  }
  return res;
}

// Totals before demeaning: the outcome's TSS about its (weighted) mean, and each column's
// uncentered sum of squares (a column the FE absorb loses all of it).
RawTotals raw_totals(const Design& d) {
  const std::size_t n = d.n_obs, k = d.n_reg;
  const double* w = d.w.empty() ? nullptr : d.w.data();
  RawTotals t;
  t.column_ss.assign(k, 0.0);
  std::vector<double> max_abs(k, 0.0);
  // the outcome and each column a task; each sums its rows in order (bits as on one thread)
  const bool team = static_cast<double>(n) * static_cast<double>(k + 1) >= kMinTeamValues;
#pragma omp parallel for schedule(dynamic, 1) if (team)
  for (std::ptrdiff_t task = 0; task <= static_cast<std::ptrdiff_t>(k); ++task) {
    if (task == static_cast<std::ptrdiff_t>(k)) {
      double wsum = 0, ymean = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const double wi = w ? w[i] : 1.0;
        wsum += wi;
        ymean += wi * d.y[i];
      }
      ymean /= wsum;
      t.tss = chunked_sum(n, [&](std::size_t i) {
        const double wi = w ? w[i] : 1.0;
        return wi * (d.y[i] - ymean) * (d.y[i] - ymean);
      });
      continue;
    }
    const std::size_t j = static_cast<std::size_t>(task);
    const double* x = d.X.data() + j * n;
    double ss = 0, mx = 0;
    for (std::size_t i = 0; i < n; ++i) {
      ss += (w ? w[i] : 1.0) * x[i] * x[i];
      mx = std::max(mx, std::fabs(x[i]));
    }
    t.column_ss[j] = ss;
    max_abs[j] = mx;
  }
  for (std::size_t j = 0; j < k; ++j) refuse_unscaled(d.x_names[j], t.column_ss[j], max_abs[j]);
  refuse_unscaled(d.y_name, t.tss, t.tss > 0 ? 1.0 : 0.0);
  return t;
}

// raw_totals' figures from the totals the balanced transform took (y's first, then X's).
RawTotals raw_from_totals(const Design& d, const std::vector<ColumnTotals>& totals) {
  RawTotals raw;
  raw.column_ss.resize(d.n_reg);
  for (std::size_t j = 0; j < d.n_reg; ++j) {
    raw.column_ss[j] = totals[1 + j].ss;
    refuse_unscaled(d.x_names[j], raw.column_ss[j], totals[1 + j].max_abs);
  }
  raw.tss = totals[0].centered_ss;
  refuse_unscaled(d.y_name, raw.tss, raw.tss > 0 ? 1.0 : 0.0);
  return raw;
}

// The within transform of the design's fixed effects.
Demeaner design_demeaner(const Design& d) {
  std::vector<FeView> views;
  for (const Grouping& g : d.fe) views.push_back({g.code.data(), g.n_levels});
  return Demeaner(views, d.n_obs, d.w.empty() ? nullptr : d.w.data());
}

// Within transform of y and X (in place), then rows scaled by sqrt(w); returns the within TSS.
// raw: where the transform takes the totals on its way (Demeaner::takes_totals), raw_totals'
// figures from them (the same sums in the same order), and no pass of its own.
double demean_and_weight(Design& d, const Demeaner& dm, const FitOptions& opts, FitResult& res,
                         RawTotals* raw) {
  const std::size_t n = d.n_obs;
  const double* w = d.w.empty() ? nullptr : d.w.data();
  std::vector<double*> cols{d.y.data()};  // y with X: one thread team for every column
  std::vector<std::string> names{d.y_name};
  for (std::size_t j = 0; j < d.n_reg; ++j) {
    cols.push_back(d.X.data() + j * n);
    names.push_back(d.x_names[j]);
  }
  std::vector<ColumnTotals> totals;
  const DemeanReport rep = dm.demean(cols, opts.demean, names, raw ? &totals : nullptr, 1);
  res.demean_method = rep.method;
  res.demean_iterations = rep.max_iterations;
  if (raw) {  // takes_totals: no weights, so none of the scaling below
    *raw = raw_from_totals(d, totals);
    return totals[0].ss_after;
  }
  if (w) {
    std::vector<double> sw(n);
    for (std::size_t i = 0; i < n; ++i) sw[i] = std::sqrt(w[i]);
    for (std::size_t i = 0; i < n; ++i) d.y[i] *= sw[i];
    for (std::size_t j = 0; j < d.n_reg; ++j) {
      double* x = d.X.data() + j * n;
      for (std::size_t i = 0; i < n; ++i) x[i] *= sw[i];
    }
  }
  return chunked_sum(n, [&](std::size_t i) { return d.y[i] * d.y[i]; });
}

// Collinearity screen in formula order (later columns give way): sequential Cholesky on the
// unit-diagonal scaled Gram; a column whose squared distance to the span of the kept columns is
// below 1e-9 of its length is dropped, as is one the FE absorb. Returns the kept columns.
std::vector<std::size_t> screen_collinear(const Eigen::MatrixXd& xtx, const std::vector<double>& raw_ss,
                                          const std::vector<std::string>& names, bool has_fe,
                                          std::vector<std::string>& dropped) {
  const std::size_t k_all = names.size();
  std::vector<std::size_t> keep;
  Eigen::MatrixXd L = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(k_all), static_cast<Eigen::Index>(k_all));
  std::vector<double> scale(k_all);
  for (std::size_t j = 0; j < k_all; ++j) scale[j] = xtx(j, j) > 0 ? 1.0 / std::sqrt(xtx(j, j)) : 0.0;
  for (std::size_t j = 0; j < k_all; ++j) {
    if (!(xtx(j, j) > 1e-10 * raw_ss[j]) || raw_ss[j] == 0) {
      dropped.push_back(names[j] + (has_fe ? " (collinear with the fixed effects)" : " (constant zero)"));
      continue;
    }
    double diag = 1.0;  // row j of L over the kept columns
    std::vector<double> row(keep.size());
    for (std::size_t a = 0; a < keep.size(); ++a) {
      const std::size_t ka = keep[a];
      double v = xtx(j, ka) * scale[j] * scale[ka];
      for (std::size_t b = 0; b < a; ++b) v -= row[b] * L(a, b);
      v /= L(a, a);
      row[a] = v;
      diag -= v * v;
    }
    if (diag < 1e-9) {
      dropped.push_back(names[j] + " (collinear with other regressors)");
      continue;
    }
    const std::size_t a = keep.size();
    for (std::size_t b = 0; b < a; ++b) L(a, b) = row[b];
    L(a, a) = std::sqrt(diag);
    keep.push_back(j);
  }
  return keep;
}

// X, the names and the Gram reduced to the kept columns.
void keep_columns(Design& d, const std::vector<std::size_t>& keep, std::vector<std::string>& names,
                  Eigen::MatrixXd& xtx, Eigen::VectorXd& xty) {
  const std::size_t n = d.n_obs, k = keep.size();
  if (k == names.size()) return;
  for (std::size_t a = 0; a < k; ++a)
    if (keep[a] != a) std::copy(d.X.begin() + keep[a] * n, d.X.begin() + (keep[a] + 1) * n, d.X.begin() + a * n);
  d.X.resize(n * k);
  std::vector<std::string> kept_names;
  for (std::size_t j : keep) kept_names.push_back(names[j]);
  names = kept_names;
  Eigen::MatrixXd xx(k, k);
  Eigen::VectorXd xy(k);
  for (std::size_t a = 0; a < k; ++a) {
    xy(a) = xty(keep[a]);
    for (std::size_t b = 0; b < k; ++b) xx(a, b) = xtx(keep[a], keep[b]);
  }
  xtx = xx;
  xty = xy;
}

// Degrees of freedom: K with the nesting rule (FE nested in a cluster not counted), and K_all
// with every FE level counted.
DegreesOfFreedom degrees_of_freedom(const Design& d, const FitOptions& opts, std::size_t k, FitResult& res) {
  double fe_dof = 0;
  if (!d.fe.empty()) {
    for (const Grouping& g : d.fe) fe_dof += g.n_levels;
    fe_dof -= static_cast<double>(d.fe.size() - 1);
  }
  double nested_dof = 0;
  if (opts.vcov == VcovType::kCluster && opts.dof_fe == DofFe::kNested) {
    for (const Grouping& g : d.fe)
      for (const Grouping& c : d.clusters)
        if (nested_in(g, c)) {
          nested_dof += g.n_levels - 1;
          res.nested_fe.push_back(g.name);
          break;
        }
  }
  if (opts.vcov == VcovType::kCluster)
    for (const Grouping& c : d.clusters)
      if (c.n_levels < 2)
        throw InvalidInput("cluster variable '" + c.name + "' has a single level in the estimation "
                           "sample; cluster-robust inference needs at least two clusters (use "
                           "--vcov hc1, or another cluster variable)");
  DegreesOfFreedom dof{static_cast<double>(k) + fe_dof - nested_dof, static_cast<double>(k) + fe_dof};
  res.dof_k = dof.K;
  if (static_cast<double>(d.n_obs) <= dof.K_all)
    throw InvalidInput("formula '" + d.formula + "': " + std::to_string(d.n_obs) + " observations but " +
                       std::to_string(static_cast<long long>(dof.K_all)) +
                       " parameters (regressors plus fixed-effect levels); the model needs more "
                       "observations than parameters");
  return dof;
}

// Solves on the scaled Gram (unit diagonal) with one step of iterative refinement; the bread
// (X'X)^-1 symmetrised.
Solution solve_scaled(const Eigen::MatrixXd& xtx, const Eigen::VectorXd& xty) {
  const Eigen::Index k = xtx.rows();
  Eigen::VectorXd s = xtx.diagonal().cwiseSqrt().cwiseInverse();
  const Eigen::MatrixXd A = s.asDiagonal() * xtx * s.asDiagonal();
  Eigen::LDLT<Eigen::MatrixXd> ldlt(A);
  Solution sol;
  sol.beta = s.asDiagonal() * ldlt.solve(s.asDiagonal() * xty);
  sol.bread = s.asDiagonal() * ldlt.solve(Eigen::MatrixXd::Identity(k, k)) * s.asDiagonal();
  sol.bread = 0.5 * (sol.bread + sol.bread.transpose());
  const Eigen::VectorXd corr = xty - xtx * sol.beta;
  sol.beta += s.asDiagonal() * ldlt.solve(s.asDiagonal() * corr);
  return sol;
}

// Residuals (in the sqrt(w)-scaled space) written over the demeaned outcome; RSS, R2, sigma.
// With `runs` (one-way clustering by groups that are contiguous runs of rows), the groups'
// scores on the same pass: *meat = their sum_g s_g s_g' (cluster_meat's bits).
void residuals_and_fit(Design& d, const Eigen::VectorXd& beta, double tss, double tss_within,
                       double K_all, FitResult& res, const Grouping* runs = nullptr,
                       Eigen::MatrixXd* meat = nullptr) {
  const std::size_t n = d.n_obs;
  const std::size_t k = static_cast<std::size_t>(beta.size());
  double* u = d.y.data();
  if (runs) {
    *meat = residuals_and_meat(d.X.data(), u, n, k, beta, *runs);
  } else {
    // by fixed row chunks in parallel: each row's residual is the same for any split
    const std::size_t n_chunks = (n + kRowChunk - 1) / kRowChunk;
#pragma omp parallel for schedule(static) if (n_chunks > 8)
    for (std::ptrdiff_t c = 0; c < static_cast<std::ptrdiff_t>(n_chunks); ++c) {
      const std::size_t b = static_cast<std::size_t>(c) * kRowChunk;
      residuals_of_rows(d.X.data(), n, k, beta, b, std::min(kRowChunk, n - b), u);
    }
  }
  const double rss = sum_of_squares(u, n);
  res.rss = rss;
  res.r2 = 1.0 - rss / tss;
  res.r2_within = d.fe.empty() ? std::numeric_limits<double>::quiet_NaN() : 1.0 - rss / tss_within;
  res.sigma = std::sqrt(rss / (static_cast<double>(n) - K_all));
}

void take_variance(const detail::VcovOutput& vo, FitResult& res) {
  res.vcov = vo.V;
  res.vcov_type = vo.type;
  res.vcov_label = vo.label;
  res.df_inference = vo.df;
  res.reference = vo.reference;
  res.cluster_names = vo.cluster_names;
  res.n_clusters = vo.n_clusters;
  res.dk_lag = vo.dk_lag;
  res.warnings = vo.warnings;
  if (res.n_singletons)
    res.warnings.push_back(std::to_string(res.n_singletons) + " singleton observation(s) dropped");
}

// The coefficient table; a numerically zero SE gives NA t, p and CI and a serious warning.
void coefficient_table(const std::vector<std::string>& names, const FitOptions& opts, FitResult& res) {
  const double alpha = 1.0 - opts.level;
  const double crit = t_quantile(1 - alpha / 2, res.df_inference);
  std::vector<std::string> zero_se;
  std::string zero_se_first;
  for (std::size_t a = 0; a < names.size(); ++a) {
    Coefficient c;
    c.name = names[a];
    c.estimate = res.beta(a);
    const double var = res.vcov(a, a);
    c.std_error = var >= 0 ? std::sqrt(var) : std::numeric_limits<double>::quiet_NaN();
    c.t_stat = c.estimate / c.std_error;
    c.p_value = t_two_sided_p(c.t_stat, res.df_inference);
    c.ci_low = c.estimate - crit * c.std_error;
    c.ci_high = c.estimate + crit * c.std_error;
    const double se_iid = res.sigma * std::sqrt(res.bread(a, a));
    if (se_is_zero(c.std_error, c.estimate, se_iid)) {
      if (zero_se.empty()) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "%.3g, against an estimate of %.6g and a homoskedastic SE of %.3g",
                      c.std_error, c.estimate, se_iid);
        zero_se_first = buf;
      }
      zero_se.push_back(c.name);
      c.t_stat = c.p_value = c.ci_low = c.ci_high = std::numeric_limits<double>::quiet_NaN();
    }
    res.coefficients.push_back(c);
  }
  if (!zero_se.empty()) {
    res.serious_warnings.push_back(zero_se_warning(zero_se, zero_se_first, res));
    res.warnings.push_back(res.serious_warnings.back());
  }
}

// The joint Wald tests of --wald: F = W / q on (q, df).
void wald_tests(const std::vector<std::string>& names, const FitOptions& opts, FitResult& res) {
  for (const std::string& h : opts.wald) {
    const std::vector<LinearRestriction> rows = parse_restrictions(h, names);
    WaldTest t;
    t.hypothesis = h;
    t.q = static_cast<int>(rows.size());
    const Eigen::Index q = static_cast<Eigen::Index>(rows.size());
    Eigen::MatrixXd R(q, res.beta.size());
    Eigen::VectorXd r(q);
    for (Eigen::Index i = 0; i < q; ++i) {
      R.row(i) = rows[i].R.transpose();
      r(i) = rows[i].r;
    }
    t.f_stat = wald_f(R * res.beta - r, R * res.vcov * R.transpose(), "--wald '" + h + "'");
    t.df1 = static_cast<double>(t.q);
    t.df2 = res.df_inference;
    t.p_value = f_upper_p(t.f_stat, t.df1, t.df2);
    res.wald.push_back(t);
  }
}

std::string joined(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& x : items) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace detail

namespace detail {

namespace {

// Where the design's y and X are still in the frame (Design::source) and the transform is the
// balanced two-way one: y and X demeaned from there into the design in one pass of sums and
// one of updates, the Gram's part of each row chunk taken as the transform writes it, and the
// totals on the way (the same bits as demean_and_weight, raw_totals and gram). The first pass's
// totals check the values, unchecked until now: false (and the design's columns left pending)
// where one is missing or out of range.
bool demean_from_source(Design& d, const Demeaner& dm, FitResult& res, Demeaned& m) {
  const std::size_t n = d.n_obs, k = d.n_reg;
  d.y.resize(n);  // unwritten: the transform writes every value
  d.X.resize(n * k);
  std::vector<double*> to{d.y.data()};
  for (std::size_t j = 0; j < k; ++j) to.push_back(d.X.data() + j * n);
  GramParts parts((n + kRowChunk - 1) / kRowChunk, k);
  std::vector<ColumnTotals> totals;
  const DemeanReport rep = dm.balanced_into(
      d.source->cols, to, totals, 1, [&](std::size_t c, std::size_t b, std::size_t rows) {
        gram_of_rows(d.X.data(), d.y.data(), n, k, b, rows, parts, c);
      });
  for (const ColumnTotals& t : totals)  // a NaN makes the sum NaN, an infinity |x| infinite
    if (!(std::isfinite(t.sum) && t.max_abs <= kMaxModelValue)) {
      Values().swap(d.y);  // released before take_columns rebuilds the design
      Values().swap(d.X);
      return false;
    }
  d.source.reset();
  res.demean_method = rep.method;
  res.demean_iterations = rep.max_iterations;
  m.raw = raw_from_totals(d, totals);
  m.tss_within = totals[0].ss_after;
  sum_gram_parts(parts, k, m.xtx, m.xty);
  return true;
}

}  // namespace

Demeaned demeaned_gram(Design& d, const FitOptions& opts, FitResult& res) {
  check_fit_options(opts);
  if (d.columns_pending()) {
    res = describe_sample(d, opts);
    Demeaned m;
    const Demeaner dm = design_demeaner(d);
    if (dm.takes_totals() && demean_from_source(d, dm, res, m)) return m;
    take_columns(d);  // other transforms, or values to drop or refuse (the design rebuilt)
  }
  res = describe_sample(d, opts);
  Demeaned m;
  const Demeaner dm = design_demeaner(d);
  if (dm.takes_totals()) {
    m.tss_within = demean_and_weight(d, dm, opts, res, &m.raw);
  } else {
    m.raw = raw_totals(d);
    m.tss_within = demean_and_weight(d, dm, opts, res, nullptr);
  }
  gram(d.X.data(), d.y.data(), d.n_obs, d.n_reg, m.xtx, m.xty);
  return m;
}

}  // namespace detail

FitResult fit(Design& d, const FitOptions& opts) {
  using namespace detail;
  if (d.n_endo > 0) return fit_iv(d, opts);
  FitResult res;
  Demeaned m = demeaned_gram(d, opts, res);
  const RawTotals& raw = m.raw;
  const double tss_within = m.tss_within;
  Eigen::MatrixXd& xtx = m.xtx;
  Eigen::VectorXd& xty = m.xty;
  std::vector<std::string> names = d.x_names;
  const std::vector<std::size_t> keep = screen_collinear(xtx, raw.column_ss, names, !d.fe.empty(), res.dropped);
  if (keep.empty())
    throw InvalidInput("formula '" + d.formula + "': every regressor was dropped as collinear (" + joined(res.dropped) + ")");
  keep_columns(d, keep, names, xtx, xty);
  const std::size_t k = keep.size();
  const DegreesOfFreedom dof = degrees_of_freedom(d, opts, k, res);
  const Solution sol = solve_scaled(xtx, xty);
  // one-way clustering by a sorted panel's units: the scores on the residuals' pass
  const bool runs =
      opts.vcov == VcovType::kCluster && d.clusters.size() == 1 && contiguous_groups(d.clusters[0]);
  Eigen::MatrixXd meat;
  residuals_and_fit(d, sol.beta, raw.tss, tss_within, dof.K_all, res,
                    runs ? &d.clusters[0] : nullptr, &meat);
  if (!opts.small) res.sigma = std::sqrt(res.rss / static_cast<double>(d.n_obs));  // ivreg2's rmse without small
  res.beta = sol.beta;
  res.bread = sol.bread;
  const detail::VcovInput in{d,
                             d.X.data(),
                             d.y.data(),
                             d.n_obs,
                             k,
                             sol.bread,
                             static_cast<double>(d.n_obs),
                             dof.K,
                             dof.K_all,
                             opts,
                             runs ? &meat : nullptr};
  take_variance(detail::compute_vcov(in), res);
  coefficient_table(names, opts, res);
  wald_tests(names, opts, res);
  return res;
}

}  // namespace panelboot
