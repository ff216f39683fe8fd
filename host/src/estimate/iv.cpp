// 2SLS with absorbed fixed effects: the FE are projected out of every column (outcome,
// exogenous and endogenous regressors, excluded instruments) as for OLS, then
//   first stage   Y2 = W Pi + V,  W = [Z X]          (Z excluded instruments, X exogenous)
//   second stage  b = (Xh'Xh)^-1 Xh'y,  Xh = [W Pi, X] (fitted endogenous, exogenous)
//   residuals     u = y - [Y2 X] b                    (actual, not fitted, regressors)
// and the variance is fit()'s sandwich on Xh and u with K = p + k_exo (+ the FE as --dof-fe).
// Diagnostics (iv_diagnostics.cpp) work on the columns with X partialled out.
#include <algorithm>
#include <cmath>
#include <limits>

#include "estimate/detail.hpp"
#include "estimate/iv_detail.hpp"
#include "panelboot/distributions.hpp"
#include "panelboot/error.hpp"
#include "panelboot/estimate.hpp"
#include "panelboot/memory.hpp"

namespace panelboot {
namespace detail {

Eigen::MatrixXd solve_spd(const Eigen::MatrixXd& A, const Eigen::MatrixXd& B) {
  const Eigen::VectorXd s = A.diagonal().cwiseSqrt().cwiseInverse();
  Eigen::LDLT<Eigen::MatrixXd> ldlt(s.asDiagonal() * A * s.asDiagonal());
  Eigen::MatrixXd X = s.asDiagonal() * ldlt.solve(s.asDiagonal() * B);
  X += s.asDiagonal() * ldlt.solve(s.asDiagonal() * (B - A * X));  // one refinement step
  return X;
}

Eigen::MatrixXd gather(const Eigen::MatrixXd& M, const std::vector<std::size_t>& rows,
                       const std::vector<std::size_t>& cols) {
  Eigen::MatrixXd out(rows.size(), cols.size());
  for (std::size_t a = 0; a < rows.size(); ++a)
    for (std::size_t b = 0; b < cols.size(); ++b) out(a, b) = M(rows[a], cols[b]);
  return out;
}

Eigen::MatrixXd columns(const Design& d, const std::vector<std::size_t>& idx) {
  const auto n = static_cast<Eigen::Index>(d.n_obs);
  Eigen::MatrixXd out(n, static_cast<Eigen::Index>(idx.size()));
  for (std::size_t a = 0; a < idx.size(); ++a)
    out.col(a) = Eigen::Map<const Eigen::VectorXd>(d.X.data() + idx[a] * d.n_obs, n);
  return out;
}

}  // namespace detail

namespace {

using detail::IvColumns;

std::vector<std::size_t> range(std::size_t b, std::size_t e) {
  std::vector<std::size_t> v;
  for (std::size_t i = b; i < e; ++i) v.push_back(i);
  return v;
}

// "name (collinear with ...)" -> "collinear with ..."
std::string reason_of(const std::string& dropped) {
  const std::size_t p = dropped.rfind(" (");
  return p == std::string::npos ? dropped : dropped.substr(p + 2, dropped.size() - p - 3);
}

std::string name_of(const std::string& dropped) {
  const std::size_t p = dropped.rfind(" (");
  return p == std::string::npos ? dropped : dropped.substr(0, p);
}

// Screens `cand` after the kept exogenous columns; any candidate dropped is an error naming it:
// an endogenous regressor or an instrument the FE absorb or the exogenous regressors span.
void refuse_collinear(const Design& d, const Eigen::MatrixXd& gram, const std::vector<double>& raw_ss,
                      const std::vector<std::size_t>& exo, const std::vector<std::size_t>& cand,
                      const std::string& role, const std::string& others) {
  std::vector<std::size_t> idx = exo;
  idx.insert(idx.end(), cand.begin(), cand.end());
  std::vector<std::string> names;
  std::vector<double> ss;
  for (std::size_t j : idx) {
    names.push_back(d.x_names[j]);
    ss.push_back(raw_ss[j]);
  }
  std::vector<std::string> dropped;
  detail::screen_collinear(detail::gather(gram, idx, idx), ss, names, !d.fe.empty(), dropped);
  if (dropped.empty()) return;
  std::string reason = reason_of(dropped[0]);
  if (reason == "collinear with other regressors") reason = "collinear with " + others;
  else if (reason == "constant zero") reason = "zero in every observation of the sample";
  throw InvalidInput("formula '" + d.formula + "': " + role + " '" + name_of(dropped[0]) + "' is " + reason +
                     "; 2SLS needs it to vary apart from them" +
                     (dropped.size() > 1 ? " (" + std::to_string(dropped.size() - 1) + " more such)" : ""));
}

// The exogenous columns kept by fit()'s screen (collinear ones dropped with a note), then the
// endogenous regressors and the instruments checked against them.
IvColumns screen_iv_columns(const Design& d, const Eigen::MatrixXd& gram, const std::vector<double>& raw_ss,
                            FitResult& res) {
  IvColumns c;
  const std::size_t kx_all = d.n_reg - d.n_endo - d.n_inst;
  const std::vector<std::size_t> exo_all = range(0, kx_all);
  if (kx_all > 0) {
    std::vector<std::string> names(d.x_names.begin(), d.x_names.begin() + static_cast<std::ptrdiff_t>(kx_all));
    const std::vector<double> ss(raw_ss.begin(), raw_ss.begin() + static_cast<std::ptrdiff_t>(kx_all));
    for (std::size_t j : detail::screen_collinear(detail::gather(gram, exo_all, exo_all), ss, names, !d.fe.empty(),
                                                  res.dropped))
      c.exo.push_back(j);
  }
  c.endo = range(kx_all, kx_all + d.n_endo);
  c.inst = range(kx_all + d.n_endo, d.n_reg);
  if (c.inst.size() < c.endo.size())  // e.g. an endogenous i(f) of many levels
    throw InvalidInput("formula '" + d.formula + "': " + std::to_string(c.endo.size()) +
                       " endogenous columns but only " + std::to_string(c.inst.size()) +
                       " instrument columns; 2SLS needs at least as many excluded instruments as endogenous regressors");
  const std::string fe = d.fe.empty() ? "" : "the fixed effects, ";
  refuse_collinear(d, gram, raw_ss, c.exo, c.endo, "endogenous regressor",
                   fe + "the exogenous regressors or the other endogenous ones");
  refuse_collinear(d, gram, raw_ss, c.exo, c.inst, "instrument", fe + "the exogenous regressors or the other instruments");
  return c;
}

// W = [Z X] and the second-stage regressors R = [Y2 X], as column indices into the design.
std::vector<std::size_t> instrument_columns(const IvColumns& c) {
  std::vector<std::size_t> w = c.inst;
  w.insert(w.end(), c.exo.begin(), c.exo.end());
  return w;
}

std::vector<std::size_t> regressor_columns(const IvColumns& c) {
  std::vector<std::size_t> r = c.endo;
  r.insert(r.end(), c.exo.begin(), c.exo.end());
  return r;
}

std::vector<std::string> names_of(const Design& d, const std::vector<std::size_t>& idx) {
  std::vector<std::string> out;
  for (std::size_t j : idx) out.push_back(d.x_names[j]);
  return out;
}

// The first stages' coefficients Pi = (W'W)^-1 W'Y2.
Eigen::MatrixXd first_stage_coefficients(const Eigen::MatrixXd& gram, const IvColumns& c) {
  const std::vector<std::size_t> w = instrument_columns(c);
  return detail::solve_spd(detail::gather(gram, w, w), detail::gather(gram, w, c.endo));
}

// Refuses a model whose fitted regressors Xh = [W Pi, X] are (numerically) collinear: the
// excluded instruments do not move an endogenous regressor apart from the others.
void refuse_unidentified(const Design& d, const Eigen::MatrixXd& gram, const std::vector<std::size_t>& r_idx,
                         const Eigen::MatrixXd& xhxh, const std::vector<std::string>& names) {
  std::vector<std::string> dropped;
  std::vector<double> ss(r_idx.size());
  for (std::size_t a = 0; a < r_idx.size(); ++a) ss[a] = gram(r_idx[a], r_idx[a]);
  if (detail::screen_collinear(xhxh, ss, names, false, dropped).size() < r_idx.size())
    throw InvalidInput("formula '" + d.formula + "': the model is not identified: the instruments' fitted values of '" +
                       name_of(dropped[0]) +
                       "' are collinear with the other regressors (the excluded instruments do not move it apart "
                       "from the exogenous regressors)");
}

// The first stages need residual degrees of freedom: N above their parameters (the instruments,
// the exogenous regressors and every FE level).
void refuse_no_first_stage_df(const Design& d, const detail::DegreesOfFreedom& dof, std::size_t p, std::size_t kx,
                              std::size_t L) {
  const double k_first = dof.K_all - static_cast<double>(p + kx) + static_cast<double>(L + kx);
  if (static_cast<double>(d.n_obs) <= k_first)
    throw InvalidInput("formula '" + d.formula + "': " + std::to_string(d.n_obs) + " observations but " +
                       std::to_string(static_cast<long long>(k_first)) +
                       " parameters in each first stage (instruments, exogenous regressors and fixed-effect levels); "
                       "2SLS needs more observations than that");
}

// The N-row matrices 2SLS and its diagnostics hold at once, estimated before they are allocated:
// W, R, Xh and the residuals; the partialled Z, Y2 and first-stage residuals; the diagnostics'
// score matrices (p L, 2 L) and the meat's per-observation scratch.
void check_iv_memory(std::size_t n, std::size_t p, std::size_t kx, std::size_t L) {
  const double cols = 2.0 * static_cast<double>(L + kx) + 2.0 * static_cast<double>(p + kx) + 3.0 * static_cast<double>(L) +
                      3.0 * static_cast<double>(p) + 2.0 * static_cast<double>(p * L) + 4.0 * static_cast<double>(L) + 4.0;
  check_memory(8.0 * static_cast<double>(n) * cols, 0,
               "2SLS with its diagnostics on " + std::to_string(n) + " rows",
               "fit a subsample with --where, or use a machine with more memory");
}

}  // namespace

FitResult fit_iv(Design& d, const FitOptions& opts) {
  using namespace detail;
  FitResult res;
  const Demeaned m = demeaned_gram(d, opts, res);
  const RawTotals& raw = m.raw;
  const double tss_within = m.tss_within;
  const Eigen::MatrixXd& gram = m.xtx;
  const Eigen::VectorXd& gram_y = m.xty;
  const IvColumns c = screen_iv_columns(d, gram, raw.column_ss, res);
  const std::size_t p = c.endo.size(), kx = c.exo.size(), k = p + kx;
  const std::vector<std::size_t> w_idx = instrument_columns(c), r_idx = regressor_columns(c);
  const Eigen::MatrixXd Pi = first_stage_coefficients(gram, c);
  // Xh'Xh and Xh'y from the Gram: Xh = [W Pi, X]
  const Eigen::MatrixXd WW = gather(gram, w_idx, w_idx);
  Eigen::MatrixXd H(static_cast<Eigen::Index>(w_idx.size()), static_cast<Eigen::Index>(k));  // Xh = W H
  H.setZero();
  H.leftCols(static_cast<Eigen::Index>(p)) = Pi;
  for (std::size_t a = 0; a < kx; ++a) H(static_cast<Eigen::Index>(c.inst.size() + a), static_cast<Eigen::Index>(p + a)) = 1.0;
  Eigen::VectorXd Wy(static_cast<Eigen::Index>(w_idx.size()));
  for (std::size_t a = 0; a < w_idx.size(); ++a) Wy(a) = gram_y(w_idx[a]);
  const Eigen::MatrixXd xhxh = H.transpose() * WW * H;
  const Eigen::VectorXd xhy = H.transpose() * Wy;
  const std::vector<std::string> fitted_names = names_of(d, r_idx);
  refuse_unidentified(d, gram, r_idx, xhxh, fitted_names);
  const DegreesOfFreedom dof = degrees_of_freedom(d, opts, k, res);
  refuse_no_first_stage_df(d, dof, p, kx, c.inst.size());
  check_iv_memory(d.n_obs, p, kx, c.inst.size());
  const Solution sol = solve_scaled(xhxh, xhy);
  // the fitted regressors, explicitly (the variance sums over rows), and the structural residuals
  const Eigen::MatrixXd W = columns(d, w_idx);
  const Eigen::MatrixXd Xh = W * H;
  Eigen::Map<Eigen::VectorXd> yv(d.y.data(), static_cast<Eigen::Index>(d.n_obs));
  const Eigen::MatrixXd R = columns(d, r_idx);
  const Eigen::VectorXd y_demeaned = yv;
  Eigen::VectorXd u = yv - R * sol.beta;
  res.rss = u.squaredNorm();
  res.r2 = 1.0 - res.rss / raw.tss;
  res.r2_within = d.fe.empty() ? std::numeric_limits<double>::quiet_NaN() : 1.0 - res.rss / tss_within;
  res.sigma = std::sqrt(res.rss / (static_cast<double>(d.n_obs) - (opts.small ? dof.K_all : 0.0)));
  res.beta = sol.beta;
  res.bread = sol.bread;
  const VcovInput in{d, Xh.data(), u.data(), d.n_obs, k, sol.bread, static_cast<double>(d.n_obs), dof.K, dof.K_all, opts};
  take_variance(compute_vcov(in), res);
  coefficient_table(fitted_names, opts, res);
  wald_tests(fitted_names, opts, res);
  auto info = std::make_shared<IvInfo>();
  info->endogenous = names_of(d, c.endo);
  info->instruments = names_of(d, c.inst);
  info->exogenous = names_of(d, c.exo);
  const IvProblem prob{d, opts, c, W, R, y_demeaned, u, Pi, dof};
  const Partialled pt = partialled(prob);
  info->first_stages = first_stages(prob, pt);
  info->diagnostics = iv_diagnostics(prob, pt);
  res.warnings.insert(res.warnings.end(), info->diagnostics.warnings.begin(), info->diagnostics.warnings.end());
  for (const std::string& w : missing_statistics(prob, *info)) res.warnings.push_back(w);
  res.iv = info;
  std::copy(u.data(), u.data() + u.size(), d.y.begin());  // as fit(): y becomes the residuals
  return res;
}

}  // namespace panelboot
