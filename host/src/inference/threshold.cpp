// Hansen (1999) panel threshold regression (THRESH_P conventions). See threshold.hpp.
#include "panelboot/threshold.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>

#include "panelboot/backend.hpp"
#include "panelboot/design.hpp"
#include "panelboot/error.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/text.hpp"
#include "panelboot/progress.hpp"
#include "panelboot/kernels/wild_weights.hpp"

namespace panelboot {
namespace {

using Mat = Eigen::MatrixXd;
using Vec = Eigen::VectorXd;
const double kInf = std::numeric_limits<double>::infinity();

// The right-hand side of "y ~ rhs | fe" (outside parentheses), and the left-hand side.
void split_formula(const std::string& f, std::string& lhs, std::string& rhs, std::string& fe) {
  int depth = 0;
  std::size_t tilde = std::string::npos, bar = std::string::npos;
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == '(') ++depth;
    if (f[i] == ')') --depth;
    if (depth == 0 && f[i] == '~' && tilde == std::string::npos) tilde = i;
    if (depth == 0 && f[i] == '|' && bar == std::string::npos) bar = i;
  }
  if (tilde == std::string::npos) throw InvalidInput("formula '" + f + "' needs '~'");
  lhs = f.substr(0, tilde);
  rhs = f.substr(tilde + 1, (bar == std::string::npos ? f.size() : bar) - tilde - 1);
  fe = bar == std::string::npos ? "" : f.substr(bar + 1);
}

// The memory a threshold run may take, estimated before anything of grid size is allocated: the
// grid's Gram diagonal (and the backend's copy), a column block (grid p x p) for every point that
// a search fixes (at most the K(K+1) of the sample's searches and K(K-1)/2 per replication), the
// per-thread search buffers, the transformed data and the F* of each test.
double threshold_memory_bytes(double n_grid, double N, int p, int kz, const ThresholdOptions& o) {
  const double K = o.n_thresholds, B = static_cast<double>(o.gammas.empty() ? o.n_boot : 0);
  const double p2 = static_cast<double>(p) * p;
  const double n_cols = std::min(n_grid, K * (K + 1) + B * K * (K - 1) / 2);
  const double gram = n_grid * p2 * (2 + n_cols) * 8;
  const double search = n_grid * (p + 4) * 8 * 16;  // lr curve, candidate SSRs, thread buffers
  const double data = N * (kz + p + 8) * 8 * 4;
  return gram + search + data + B * K * 8;
}

std::string trim_ws(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

// The design's formula: the linear regressors z, then the regime regressors x, then q, with no
// intercept (the unit effects are the transform's). A regressor listed both as linear and as a
// regime one is, in the linear part, the sum of its regime terms: its linear copy is omitted
// (named in `omitted`), so that the regime columns stay the p after the linear ones.
Formula threshold_formula(const std::string& lhs, const std::string& rhs, const std::vector<std::string>& regime,
                          const std::string& q, std::vector<std::string>& omitted) {
  auto one_term = [&](const std::string& expr, const char* what) {
    Formula f = parse_formula(lhs + " ~ " + expr + " + 0");
    if (f.terms.size() != 1)
      throw InvalidInput(std::string(what) + " " + quoted(expr) + " must be one numeric regressor");
    return f.terms[0];
  };
  Formula fm = parse_formula(lhs + " ~ " + (rhs.empty() ? std::string("0") : rhs + " + 0"));
  std::vector<FormulaTerm> x_terms;
  for (const std::string& x : regime) x_terms.push_back(one_term(x, "--regime"));
  std::vector<FormulaTerm> kept;
  for (FormulaTerm& t : fm.terms) {
    const bool is_regime = std::any_of(x_terms.begin(), x_terms.end(), [&](const FormulaTerm& x) { return x.name == t.name; });
    if (is_regime) omitted.push_back(t.name + " (linear term; also a regime regressor, whose regime slopes it sums)");
    else kept.push_back(std::move(t));
  }
  for (std::size_t i = 0; i < x_terms.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (x_terms[i].name == x_terms[j].name) throw InvalidInput("--regime lists " + quoted(x_terms[i].name) + " twice");
  fm.terms = std::move(kept);
  fm.terms.insert(fm.terms.end(), x_terms.begin(), x_terms.end());
  fm.terms.push_back(one_term("I(" + q + ")", "--threshold-var"));
  fm.text = lhs + " ~ ";
  for (std::size_t i = 0; i < fm.terms.size(); ++i) fm.text += (i ? " + " : "") + fm.terms[i].name;
  return fm;
}

// The transformed sample: demeaned by individual over its periods, then (Hansen) its last
// period deleted. Balanced panels may also remove period effects (two-way).
struct Panel {
  std::size_t n = 0, T = 0;                    // units, distinct periods
  bool drop_last = true;                       // Hansen deletes the last period; xthreg keeps all
  bool time_effects = false;                   // two-way: x_it - xbar_i - xbar_t + xbar (balanced)
  bool balanced = true;
  std::vector<std::vector<std::size_t>> rows;  // per unit: design rows in time order
  std::vector<std::size_t> period;             // per design row: its period code
  std::vector<std::size_t> offset;             // unit i's first transformed row; offset[n] = N
  void finalize() {
    offset.assign(n + 1, 0);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t len = rows[i].size() - (drop_last && !rows[i].empty() ? 1 : 0);
      offset[i + 1] = offset[i] + len;
    }
  }
  std::size_t N() const { return offset[n]; }
  Vec transform(const double* v) const {
    Vec out(static_cast<Eigen::Index>(N()));
    transform_into(v, out.data());
    return out;
  }
  void transform_into(const double* v, double* out) const {
    std::vector<double> tmean(T, 0.0);
    double grand = 0;
    if (time_effects) {
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t r : rows[i]) tmean[period[r]] += v[r];
      for (double& m : tmean) {
        grand += m;
        m /= static_cast<double>(n);
      }
      grand /= static_cast<double>(n * T);
    }
    for (std::size_t i = 0; i < n; ++i) {
      double m = 0;
      for (std::size_t r : rows[i]) m += v[r];
      m /= static_cast<double>(rows[i].size());
      for (std::size_t t = 0; t < offset[i + 1] - offset[i]; ++t) {
        const std::size_t r = rows[i][t];
        out[offset[i] + t] = v[r] - m - (time_effects ? tmean[period[r]] - grand : 0.0);
      }
    }
  }
};

// The projections MW'u of a transformed vector u onto every grid column without forming the
// N x grid matrix MW: MW'u = W'(Mu), and W'e = sum over the design rows below each threshold of
// x_r (D'e)_r (D' the transform's adjoint): sums over the rows sorted by q between consecutive
// grid points' cuts, then their running sum (kernels::threshold_grid_products, shared with the
// bootstrap). O(N (n_q + 1) +
// grid p) per vector instead of O(N grid p). It holds the sorted rows in the layout of
// kernels::ThresholdBootView, so the bootstrap's view is made from it.
class GridProjector {
 public:
  // order: the design rows sorted by q (ties in row order)
  GridProjector(const Panel& pn, const std::vector<std::int32_t>& unit_code, const std::vector<std::size_t>& order,
                const std::vector<const double*>& x, const double* q, const std::vector<double>& grid, bool below_le,
                const Mat& Q)
      : pn_(pn), n_design_(order.size()), x_(x), p_(static_cast<int>(x.size())), Q_(Q), order_(order) {
    const std::size_t n_design = n_design_;
    std::vector<double> qs(n_design);
    for (std::size_t r = 0; r < n_design; ++r) qs[r] = q[order_[r]];
    for (double g : grid) {  // rows with q < g (Hansen) or q <= g (xthreg)
      cut_.push_back(
          (below_le ? std::upper_bound(qs.begin(), qs.end(), g) : std::lower_bound(qs.begin(), qs.end(), g)) - qs.begin());
      nn_.push_back(static_cast<std::int32_t>(std::lower_bound(grid.begin(), grid.end(), g) - grid.begin()));
    }
    // each design row's transformed row (-1: the deleted period), and each transformed row's period
    std::vector<std::int64_t> trow(n_design, -1);
    t_period_.assign(pn.N(), 0);
    for (std::size_t i = 0; i < pn.n; ++i)
      for (std::size_t t = 0; t < pn.offset[i + 1] - pn.offset[i]; ++t) {
        const std::size_t r = pn.rows[i][t];
        trow[r] = static_cast<std::int64_t>(pn.offset[i] + t);
        t_period_[pn.offset[i] + t] = static_cast<std::int32_t>(pn.period[r]);
      }
    for (std::size_t k = 0; k < n_design; ++k) {
      const std::size_t r = order_[k];
      s_unit_.push_back(unit_code[r]);
      s_row_.push_back(trow[r]);
      s_period_.push_back(static_cast<std::int32_t>(pn.period[r]));
      for (int j = 0; j < p_; ++j) s_x_.push_back(x[static_cast<std::size_t>(j)][r]);
    }
    for (std::size_t i = 0; i <= pn.n; ++i) offset_.push_back(static_cast<std::int64_t>(pn.offset[i]));
    for (std::size_t i = 0; i < pn.n; ++i) inv_len_.push_back(1.0 / static_cast<double>(pn.rows[i].size()));
  }
  // The fields of the bootstrap's view that describe the data (the caller adds the outcome, the
  // draws and the search).
  kernels::ThresholdBootView view() const {
    kernels::ThresholdBootView v;
    v.n_obs = static_cast<std::int64_t>(pn_.N());
    v.n_units = static_cast<std::int64_t>(pn_.n);
    v.n_periods = static_cast<std::int64_t>(pn_.T);
    v.n_design = static_cast<std::int64_t>(n_design_);
    v.n_grid = static_cast<std::int64_t>(cut_.size());
    v.offset = offset_.data();
    v.Q = Q_.data();
    v.n_q = static_cast<int>(Q_.cols());
    v.s_unit = s_unit_.data();
    v.s_row = s_row_.data();
    v.s_period = s_period_.data();
    v.t_period = t_period_.data();
    v.unit_inv_len = inv_len_.data();
    v.time_effects = pn_.time_effects;
    v.p = p_;
    v.s_x = s_x_.data();
    v.cut = cut_.data();
    v.nn = nn_.data();
    return v;
  }
  // W'e (grid p) for a transformed vector e
  Vec raw(const double* e) const {
    const kernels::ThresholdBootView v = view();
    std::vector<double> usum(pn_.n), psum(pn_.T + 1), z(n_design_);
    Vec out(static_cast<Eigen::Index>(cut_.size()) * p_);
    const kernels::ThresholdScratch s{nullptr, nullptr, usum.data(), psum.data(), z.data(), out.data(), nullptr};
    kernels::threshold_grid_products(v, e, s, kernels::SoloTeam{});
    return out;
  }
  Vec residual(const Vec& u) const { return u - Q_ * (Q_.transpose() * u); }  // Mu
  // MW'u = W'(Mu), and S0 = |Mu|^2
  Vec project(const Vec& u, double& s0) const {
    const Vec e = residual(u);
    s0 = e.squaredNorm();
    return raw(e.data());
  }
  // W = M [w_g for g in pts[i0 .. i1)] (N x (i1 - i0) p): the grid columns of a block of points
  // (increasing), projected at once; W, QW and w are the caller's buffers (reused across blocks)
  void grid_columns(const std::vector<std::size_t>& pts, std::size_t i0, std::size_t i1, Mat& W, Mat& QW,
                    std::vector<double>& w) const {
    W.resize(static_cast<Eigen::Index>(pn_.N()), static_cast<Eigen::Index>((i1 - i0) * p_));
    w.resize(n_design_);
    for (int j = 0; j < p_; ++j) {
      std::fill(w.begin(), w.end(), 0.0);
      std::size_t k = 0;
      for (std::size_t i = i0; i < i1; ++i) {
        for (; k < static_cast<std::size_t>(cut_[pts[i]]); ++k) w[order_[k]] = x_[j][order_[k]];  // rows below the point, cumulatively
        pn_.transform_into(w.data(), W.col(static_cast<Eigen::Index>((i - i0) * p_ + j)).data());
      }
    }
    QW.noalias() = Q_.transpose() * W;
    W.noalias() -= Q_ * QW;
  }
  // The diagonal blocks w_g'M w_g = w_g'w_g - (Q'w_g)'(Q'w_g) of every grid point without forming
  // a column (one-way transform only): Q'w_g by the prefix sums of raw(Q_c), and w_g'w_g from
  // per-unit sums kept as rows join in q order (for unit i with T_i rows, len_i of them kept:
  // sum_kept v v' - (C Bk' + Bk C')/T_i + len_i C C'/T_i^2, C = sum of all its rows, Bk = of the
  // kept ones). A point where the subtraction would lose more than six digits (w_g nearly in the
  // span of Q) is left to the explicit computation (done[g] = 0).
  void diag_by_prefix(std::vector<Mat>& diag, std::vector<char>& done) const {
    const std::size_t ng = cut_.size(), nq = static_cast<std::size_t>(Q_.cols());
    Mat WQ(static_cast<Eigen::Index>(ng) * p_, static_cast<Eigen::Index>(nq));
    for (std::size_t c = 0; c < nq; ++c) WQ.col(static_cast<Eigen::Index>(c)) = raw(Q_.col(static_cast<Eigen::Index>(c)).data());
    const std::size_t pp = static_cast<std::size_t>(p_);
    std::vector<double> A(pn_.n * pp * pp, 0.0), Bk(pn_.n * pp, 0.0), C(pn_.n * pp, 0.0);
    // S = sum over units of their current terms, kept up to date: at each point only the units
    // with a row between the previous cut and this one change (O(N p^2) in all, not O(grid n))
    std::vector<double> term(pn_.n * pp * pp, 0.0);
    std::vector<std::size_t> stamp(pn_.n, static_cast<std::size_t>(-1)), dirty;
    std::size_t k = 0;
    Mat S = Mat::Zero(p_, p_);
    for (std::size_t g = 0; g < ng; ++g) {
      dirty.clear();
      for (; k < static_cast<std::size_t>(cut_[g]); ++k) {
        const std::size_t i = static_cast<std::size_t>(s_unit_[k]);
        const bool kept = s_row_[k] >= 0;
        if (stamp[i] != g) {
          stamp[i] = g;
          dirty.push_back(i);
        }
        const double* xk = s_x_.data() + k * pp;
        for (std::size_t j = 0; j < pp; ++j) {
          C[i * pp + j] += xk[j];
          if (!kept) continue;
          Bk[i * pp + j] += xk[j];
          for (std::size_t l = 0; l < pp; ++l) A[(i * pp + j) * pp + l] += xk[j] * xk[l];
        }
      }
      for (std::size_t i : dirty) {
        const double Ti = static_cast<double>(pn_.rows[i].size()),
                     len = static_cast<double>(pn_.offset[i + 1] - pn_.offset[i]);
        for (std::size_t j = 0; j < pp; ++j)
          for (std::size_t l = 0; l < pp; ++l) {
            const double cj = C[i * pp + j], cl = C[i * pp + l];
            const double t = A[(i * pp + j) * pp + l] - (cj * Bk[i * pp + l] + cl * Bk[i * pp + j]) / Ti +
                             len * cj * cl / (Ti * Ti);
            double& old = term[(i * pp + j) * pp + l];
            S(static_cast<Eigen::Index>(j), static_cast<Eigen::Index>(l)) += t - old;
            old = t;
          }
      }
      const auto a = WQ.middleRows(static_cast<Eigen::Index>(g) * p_, p_);
      Mat d = S - a * a.transpose();
      bool ok = true;
      for (int j = 0; j < p_; ++j) ok = ok && d(j, j) > 1e-6 * S(j, j);
      if (ok) {
        diag[g] = d;
        done[g] = 1;
      }
    }
  }
  bool time_effects() const { return pn_.time_effects; }
  int p() const { return p_; }
  std::size_t n_grid() const { return cut_.size(); }

 private:
  const Panel& pn_;
  std::size_t n_design_;
  std::vector<const double*> x_;
  int p_;
  const Mat& Q_;
  std::vector<std::size_t> order_;  // design rows sorted by q
  // the sorted rows in kernels::ThresholdBootView's layout (see view())
  std::vector<std::int64_t> cut_, offset_, s_row_;
  std::vector<std::int32_t> nn_, s_unit_, s_period_, t_period_;
  std::vector<double> s_x_, inv_len_;
};

// One sequential stage: the SSR of every grid candidate given the fixed thresholds F, from
// r = W'My, S0 = |My|^2 and the Gram G = W'MW (p columns per grid point).
struct Stage {
  int best = -1;
  double ssr_best = kInf;
  std::vector<double> ssr;  // +inf where excluded
};

// The grid's Gram matrix W'MW on demand: the diagonal p x p blocks up front (each from the
// column M w_g, made and dropped), and the column block of a grid point the first time a stage
// fixes it (once, thread-safe): W'(M w_f) by the projector's segment sums. A stage reads only
// G(g, g) and G(g, fixed), so neither the full matrix nor MW (N x grid) is ever formed.
class GridGram {
 public:
  explicit GridGram(const GridProjector& pj)
      : pj_(pj), p_(pj.p()), n_(pj.n_grid()), diag_(n_), cols_(n_), once_(new std::once_flag[n_]) {
    std::vector<char> done(n_, 0);
    if (!pj_.time_effects()) pj_.diag_by_prefix(diag_, done);
    // the rest (all of them with time effects): the grid points' transformed columns side by side
    // in blocks, projected by one product with Q, then each point's p x p block
    std::vector<std::size_t> todo;
    for (std::size_t g = 0; g < n_; ++g)
      if (!done[g]) todo.push_back(g);
    const std::size_t blk = 32;
    const std::ptrdiff_t n_blk = static_cast<std::ptrdiff_t>((todo.size() + blk - 1) / blk);
#pragma omp parallel if (n_blk > 1)  // (no thread team for nothing)
    {
    Mat MW, QW;
    std::vector<double> w;
#pragma omp for schedule(dynamic, 1)
    for (std::ptrdiff_t bi = 0; bi < n_blk; ++bi) {
      const std::size_t i0 = static_cast<std::size_t>(bi) * blk, i1 = std::min(todo.size(), i0 + blk);
      pj_.grid_columns(todo, i0, i1, MW, QW, w);
      for (std::size_t i = i0; i < i1; ++i) {
        const auto c = MW.middleCols(static_cast<Eigen::Index>((i - i0) * p_), p_);
        diag_[todo[i]] = c.transpose() * c;
      }
    }
    }
  }
  const Mat& diag(std::size_t g) const { return diag_[g]; }
  // (grid p) x p: G(:, f)
  const Mat& column(std::size_t f) const {
    std::call_once(once_[f], [&] {
      auto m = std::make_unique<Mat>(static_cast<Eigen::Index>(n_) * p_, p_);
      Mat MW, QW;
      std::vector<double> w;
      pj_.grid_columns({f}, 0, 1, MW, QW, w);
      for (int j = 0; j < p_; ++j) m->col(j) = pj_.raw(MW.col(j).data());
      cols_[f] = std::move(m);
    });
    return *cols_[f];
  }

 private:
  const GridProjector& pj_;
  int p_;
  std::size_t n_;
  std::vector<Mat> diag_;
  mutable std::vector<std::unique_ptr<Mat>> cols_;
  std::unique_ptr<std::once_flag[]> once_;
};

// The Backend's view of the Gram: the diagonal blocks flattened once, columns on demand.
class BackendGram final : public ThresholdGram {
 public:
  explicit BackendGram(const GridGram& g, std::size_t n_grid, int p) : g_(g) {
    flat_.resize(n_grid * static_cast<std::size_t>(p * p));
    for (std::size_t i = 0; i < n_grid; ++i)
      std::copy(g.diag(i).data(), g.diag(i).data() + p * p, flat_.begin() + static_cast<std::ptrdiff_t>(i * p * p));
  }
  const double* diag() const override { return flat_.data(); }
  const double* column(std::int64_t f) const override { return g_.column(static_cast<std::size_t>(f)).data(); }

 private:
  const GridGram& g_;
  std::vector<double> flat_;
};

// The sequential search on the sample: one stage given the fixed points, by the bootstrap's own
// stage (kernels::threshold_stage, one thread) on the same Gram, so the sample's F and the
// bootstrap's F* come from the same algebra; it also keeps every candidate's SSR (the LR curve
// and the confidence sets). Candidates in exactly one exclusion window (nn - qnt < i <= nn + qnt,
// 1-based, nn = grid points below the fixed threshold, qnt = round(qn trim)) are excluded, as are
// the fixed points themselves.
class Searcher {
 public:
  Searcher(const kernels::ThresholdBootView& view, const ThresholdGram& gram, int qn)
      : v_(view), hg_{gram.diag(), &gram}, qn_(qn) {}

  Stage search(const Vec& r, double S0, const std::vector<int>& fixed, double trim) const {
    Stage st;
    st.ssr.assign(static_cast<std::size_t>(v_.n_grid), kInf);
    kernels::ThresholdBootView v = v_;
    v.qnt = static_cast<int>(std::lround(qn_ * trim));
    kernels::ThresholdSearchState ss;
    kernels::threshold_search_start(ss, S0);
    for (std::size_t a = 0; a < fixed.size(); ++a) ss.fixed[a] = fixed[a];
    kernels::threshold_stage(v, hg_, r.data(), static_cast<int>(fixed.size()) + 1, ss, kernels::SoloTeam{},
                             st.ssr.data());
    if (!ss.failed) {
      st.best = static_cast<int>(ss.fixed[fixed.size()]);
      st.ssr_best = ss.s_k;
    }
    return st;
  }

 private:
  kernels::ThresholdBootView v_;
  HostGramAccess hg_;
  int qn_;
};

double trim_at(const std::vector<double>& trim, std::size_t stage) {
  return trim[std::min(stage, trim.size() - 1)];
}

std::pair<double, double> conf_set(const Stage& st, const std::vector<double>& grid, double sigma2, double c) {
  double lo = kInf, hi = -kInf;
  for (std::size_t g = 0; g < grid.size(); ++g) {
    if (!std::isfinite(st.ssr[g])) continue;
    if ((st.ssr[g] - st.ssr_best) / sigma2 < c) {
      lo = std::min(lo, grid[g]);
      hi = std::max(hi, grid[g]);
    }
  }
  return {lo, hi};
}

// Hansen (2000)'s scale of the LR statistic under heteroskedasticity at a threshold gamma:
// eta^2 = E[(d'x)^2 e^2 | q = gamma] / (sigma^2 E[(d'x)^2 | q = gamma]), d the change of the
// regime slopes at gamma, x the (transformed) regime regressors, e the model's residuals. The
// conditional means are estimated at gamma by a quadratic regression on (1, q, q^2) or, as his
// program does by default, by an Epanechnikov kernel whose bandwidth is his plug-in rule (a
// pilot 2.344 sd(q) n^(-1/5) for the density of q and its slope, then the rule on the quadratic
// fit's residual variance). Returned: g2 / g1 = sigma^2 eta^2, so LR_het = (S(g) - S(g^)) / (g2/g1).
// A fitted threshold model with the pieces the robust CI needs.
struct FitOut {
  ThresholdModel first;
  Vec second;  // fitted values (transformed)
  Vec beta, e;
};

struct Eta {
  double g1 = 0, g2 = 0, scale = 0, bandwidth = 0;
};

Eta hansen_eta(const Vec& dx2, const Vec& e, const Vec& qt, double gamma, bool kernel) {
  const Eigen::Index n = dx2.size();
  const Vec r1 = dx2;
  const Vec r2 = dx2.cwiseProduct(e.cwiseProduct(e));
  Mat Qx(n, 3);
  Qx.col(0).setOnes();
  Qx.col(1) = qt;
  Qx.col(2) = qt.cwiseProduct(qt);
  const Eigen::ColPivHouseholderQR<Mat> qr(Qx);
  const Vec m1 = qr.solve(r1), m2 = qr.solve(r2);
  Eta out;
  out.bandwidth = std::numeric_limits<double>::quiet_NaN();
  out.g1 = m1(0) + m1(1) * gamma + m1(2) * gamma * gamma;
  out.g2 = m2(0) + m2(1) * gamma + m2(2) * gamma * gamma;
  if (kernel) {
    // (if the plug-in rule fails or leaves no observation near gamma, the quadratic fit is kept)
    const double mean_q = qt.mean();
    const double sig_q = std::sqrt((qt.array() - mean_q).square().mean());
    double h = 2.344 * sig_q / std::pow(static_cast<double>(n), 0.2);
    double f = 0, df = 0;
    for (Eigen::Index i = 0; i < n; ++i) {
      const double u = (gamma - qt(i)) / h, u2 = u * u;
      if (u2 <= 1) {
        f += 1 - u2;
        df += u;
      }
    }
    f *= 0.75 / h / static_cast<double>(n);
    df *= 1.5 / (h * h) / static_cast<double>(n);
    const Vec eps = r1 - Qx * m1;
    const double sige = eps.squaredNorm() / (static_cast<double>(n) - 3);
    const double slope = m1(2) + (m1(1) + 2 * m1(2) * gamma) * df / f;
    h = sige / (4 * f * slope * slope);
    double k1 = 0, k2 = 0;
    for (Eigen::Index i = 0; i < n; ++i) {
      const double u = (gamma - qt(i)) / h, u2 = u * u;
      if (u2 <= 1) {
        const double kh = (1 - u2) * 0.75 / h;
        k1 += kh * r1(i);
        k2 += kh * r2(i);
      }
    }
    out.g1 = k1 / static_cast<double>(n);
    out.g2 = k2 / static_cast<double>(n);
    out.bandwidth = h;
    // no plug-in bandwidth, or no observation within it: keep the quadratic estimate
    if (!(std::isfinite(h) && h > 0) || !(out.g1 > 0) || !(out.g2 > 0)) {
      out.g1 = m1(0) + m1(1) * gamma + m1(2) * gamma * gamma;
      out.g2 = m2(0) + m2(1) * gamma + m2(2) * gamma * gamma;
      out.bandwidth = std::numeric_limits<double>::quiet_NaN();
    }
  }
  out.scale = out.g2 / out.g1;
  return out;
}

}  // namespace

std::size_t threshold_draw(std::uint64_t seed, int k, std::uint64_t b, std::size_t i, std::size_t n) {
  return static_cast<std::size_t>(kernels::threshold_draw_unit(seed, k, b, i, n));
}

ThresholdResult estimate_threshold(const DataFrame& df, const ThresholdOptions& o, const Backend* backend_in) {
  const auto t_start = std::chrono::steady_clock::now();
  if (o.panel_id.empty()) throw InvalidInput("threshold needs --panel id,time");
  if (o.regime.empty()) throw InvalidInput("threshold needs --regime X (the regime-dependent regressors)");
  if (o.threshold_var.empty()) throw InvalidInput("threshold needs --threshold-var Q");
  if (o.n_thresholds < 1) throw InvalidInput("--thresholds must be at least 1");
  if (o.trim.empty()) throw InvalidInput("--trim needs at least one value");
  for (double t : o.trim)
    if (!(t > 0 && t < 0.5)) throw InvalidInput("--trim values must lie in (0, 0.5)");
  if (o.grid != 0 && o.grid < 10) throw InvalidInput("--grid must be at least 10 (or 'all')");
  std::string lhs, rhs, fe;
  split_formula(o.formula, lhs, rhs, fe);
  fe = trim_ws(fe);
  if (fe.empty())
    throw InvalidInput("threshold formula '" + o.formula + "' has no fixed effect: Hansen's model always has the "
                       "individual effects; write it as '" + trim_ws(lhs) + " ~ " + trim_ws(rhs) + " | " + o.panel_id + "'");
  if (fe != o.panel_id)
    throw InvalidInput("threshold: the only fixed effect is the individual's ('| " + o.panel_id +
                       "'); '" + fe + "' is not supported in Hansen's model");
  const int p = static_cast<int>(o.regime.size());
  // the search's fixed set (kernels::threshold_stage) holds at most kMaxFixedDim values
  if (p > kernels::kMaxRegime || static_cast<long>(o.n_thresholds - 1) * p > kernels::kMaxFixedDim)
    throw InvalidInput("threshold models take at most " + std::to_string(kernels::kMaxRegime) +
                       " regime regressors and (thresholds - 1) x regime regressors <= " +
                       std::to_string(kernels::kMaxFixedDim) + " (here " + std::to_string(p) + " and " +
                       std::to_string(o.n_thresholds) + " thresholds); use fewer");
  ThresholdResult res;
  const Formula fm = threshold_formula(trim_ws(lhs), trim_ws(rhs), o.regime, o.threshold_var, res.omitted);
  SampleOptions so;
  so.where = o.where;
  so.panel_id = o.panel_id;
  so.panel_time = o.panel_time;
  so.need_time = true;
  so.extra = {o.panel_id};
  if (!o.cluster.empty()) so.extra.push_back(o.cluster);
  if (!(o.level > 0 && o.level < 1)) throw InvalidInput("--level must lie strictly between 0 and 1, e.g. 0.95");
  so.keep_singletons = true;
  Design d = build_design(df, fm, so);
  const std::size_t kz = d.n_reg - static_cast<std::size_t>(p) - 1;
  // the last p + 1 design columns are the regime regressors and q (the design drops a column
  // that repeats an earlier one, e.g. one of a linear i(f)'s dummies)
  for (int j = 0; j <= p; ++j)
    if (d.n_reg < static_cast<std::size_t>(p) + 1 ||
        d.x_names[d.n_reg - p - 1 + j] != fm.terms[fm.terms.size() - p - 1 + j].name)
      throw InvalidInput("threshold: --regime " + quoted(fm.terms[fm.terms.size() - p - 1 + j].name) +
                         " repeats a column of the linear part; list each regressor once");

  // balanced panel, rows by (id, time)
  Panel pn;
  pn.n = static_cast<std::size_t>(d.extra[0].n_levels);
  pn.T = static_cast<std::size_t>(d.time.n_levels);
  if (pn.T < 3) throw InvalidInput("threshold needs at least three periods");
  if (pn.n < 2)
    throw InvalidInput("threshold needs at least two panel units ('" + o.panel_id + "' has " + std::to_string(pn.n) +
                       " in the sample): the bootstrap resamples units and the SEs need more than one");
  pn.rows.assign(pn.n, {});
  pn.period.resize(d.n_obs);
  for (std::size_t r = 0; r < d.n_obs; ++r) {
    pn.rows[d.extra[0].code[r]].push_back(r);
    pn.period[r] = static_cast<std::size_t>(d.time.code[r]);
  }
  for (auto& rr : pn.rows)
    std::sort(rr.begin(), rr.end(), [&](std::size_t a, std::size_t b) { return pn.period[a] < pn.period[b]; });
  pn.balanced = d.n_obs == pn.n * pn.T;
  if (!pn.balanced) {
    std::vector<std::string> bad;
    for (std::size_t i = 0; i < pn.n && bad.size() < 5; ++i)
      if (pn.rows[i].size() < pn.T) {
        const std::size_t r = pn.rows[i][0];
        bad.push_back(df.column(o.panel_id).text(d.rows.empty() ? r : d.rows[r]));
      }
    std::string ids;
    for (const auto& b : bad) ids += (ids.empty() ? "" : ", ") + b;
    const std::string what = std::to_string(d.n_obs) + " rows for " + std::to_string(pn.n) + " units x " +
                             std::to_string(pn.T) + " periods; incomplete units include " + ids;
    if (o.xthreg) throw InvalidInput("xthreg mode needs a balanced panel, as Stata's xthreg does: " + what);
    if (o.time_effects) throw InvalidInput("--time-effects needs a balanced panel: " + what);
    if (o.bootstrap_wild == false && o.n_boot > 0)
      throw InvalidInput("Hansen's residual-block bootstrap needs a balanced panel (" + what +
                         "); use --bootstrap wild, or --B 0");
    res.departures.push_back("unbalanced panel (" + what + ") is outside Hansen's program");
  }
  pn.drop_last = !o.xthreg;
  pn.time_effects = o.time_effects;
  pn.finalize();
  const std::size_t N = pn.N();
  // the cluster of each transformed row: its unit, or the --cluster variable's group
  std::vector<Eigen::Index> tcluster(N);
  res.n_clusters = o.cluster.empty() ? static_cast<std::int32_t>(pn.n) : d.extra[1].n_levels;
  for (std::size_t i = 0; i < pn.n; ++i)
    for (std::size_t t = 0; t < pn.offset[i + 1] - pn.offset[i]; ++t)
      tcluster[pn.offset[i] + t] = o.cluster.empty() ? static_cast<Eigen::Index>(i) : d.extra[1].code[pn.rows[i][t]];
  // Hansen: lower regime q < gamma; xthreg: q <= gamma
  auto below = [&](double qv, double g) { return o.xthreg ? qv <= g : qv < g; };
  res.n_units = pn.n;
  res.n_periods = pn.T;
  res.n_obs = N;
  res.simulated = d.simulated;
  res.data_source = df.source;
  if (o.bootstrap_wild)
    res.departures.push_back("--bootstrap wild (Rademacher signs on each unit's residual block) is outside Hansen's program");
  if (o.robust_ci)
    res.departures.push_back("--robust-ci (Hansen 2000's heteroskedasticity-robust LR sets, eta^2 by " +
                             std::string(o.robust_kernel ? "his kernel rule" : "a quadratic regression") +
                             ") is outside Hansen's 1999 program");
  if (o.time_effects)
    res.departures.push_back(std::string("--time-effects (period effects removed too) is outside ") +
                             (o.xthreg ? "xthreg's" : "Hansen's") + " program");

  const double* q = d.X.data() + (d.n_reg - 1) * d.n_obs;
  auto col = [&](std::size_t j) { return d.X.data() + j * d.n_obs; };
  // grid: Hansen's quantiles of the distinct values over all n x T observations (1-based)
  // the design rows sorted by q (ties in row order), and the distinct values
  const std::vector<std::size_t> q_order = order_by_value(q, d.n_obs);
  const std::vector<double> dd = distinct_values(q, q_order);
  const double nd = static_cast<double>(dd.size());
  // --grid all: every distinct value in the trimmed range, which is Hansen's rule with one
  // quantile step per distinct value (and xthreg's with N = all remaining values)
  const bool grid_all = o.grid == 0;
  // (the exclusion windows then count one step per distinct value)
  const int qn = grid_all ? static_cast<int>(dd.size() - (o.xthreg ? 2 * static_cast<std::size_t>(std::floor(o.trim[0] * nd)) : 0))
                          : o.grid;
  if (grid_all) res.departures.push_back("--grid all (every distinct value) is outside " +
                                         std::string(o.xthreg ? "xthreg's" : "Hansen's") + " program");
  const double trim0 = o.trim[0];
  const double n_grid_est = o.xthreg ? qn : grid_all ? nd : std::floor(qn * (1 - 2 * trim0) + 1e-9) + 1;
  check_memory(threshold_memory_bytes(n_grid_est, static_cast<double>(N), p, static_cast<int>(kz), o),
               o.max_memory, "threshold with a grid of " + std::to_string(static_cast<long long>(n_grid_est)) + " points",
               "lower --grid (Hansen's is 400), --B or --thresholds");
  std::vector<double> grid;
  if (o.xthreg) {
    // drop floor(trim N_u) distinct values at each end, then N points at round(j (N_v-1)/(N-1))
    const std::size_t cut = static_cast<std::size_t>(std::floor(trim0 * nd));
    if (2 * cut >= dd.size()) throw InvalidInput("--trim leaves no threshold values");
    const std::vector<double> v(dd.begin() + static_cast<std::ptrdiff_t>(cut), dd.end() - static_cast<std::ptrdiff_t>(cut));
    const std::size_t nv = v.size();
    for (int j = 0; j < qn; ++j)
      grid.push_back(v[static_cast<std::size_t>(std::lround(static_cast<double>(j) * (nv - 1) / (qn - 1)))]);
  } else if (grid_all) {
    // every distinct value from Hansen's first quantile point to his last, 1-based indices
    // floor(trim #dd) .. floor((1 - trim) #dd)
    const long first = std::max<long>(1, static_cast<long>(std::floor(trim0 * nd)));
    const long last = std::min<long>(static_cast<long>(dd.size()), static_cast<long>(std::floor((1 - trim0) * nd)));
    for (long i = first; i <= last; ++i) grid.push_back(dd[static_cast<std::size_t>(i - 1)]);
  } else {
    const int n_pts = static_cast<int>(std::floor(qn * (1 - 2 * trim0) + 1e-9)) + 1;
    for (int j = 0; j < n_pts; ++j) {
      const long idx = static_cast<long>(std::floor((trim0 + static_cast<double>(j) / qn) * nd));  // 1-based
      grid.push_back(dd[static_cast<std::size_t>(std::clamp<long>(idx, 1, static_cast<long>(dd.size())) - 1)]);
    }
  }
  {
    std::vector<double> gu = grid;
    gu.erase(std::unique(gu.begin(), gu.end()), gu.end());
    if (gu.size() < 2 * static_cast<std::size_t>(o.n_thresholds) + 1)
      throw InvalidInput("threshold variable '" + o.threshold_var + "' has " + std::to_string(dd.size()) +
                         " distinct values: too few for --grid " + std::to_string(qn) + " and --trim " +
                         std::to_string(trim0) + " with " + std::to_string(o.n_thresholds) +
                         " threshold(s); lower --trim or --thresholds");
  }
  res.n_grid = grid.size();
  res.n_distinct = dd.size();
  res.grid_first = grid.front();
  res.grid_last = grid.back();
  if (static_cast<double>(o.n_thresholds + 1) * 2 * trim0 >= 1)
    throw InvalidInput("--trim " + std::to_string(trim0) + " leaves no room for " + std::to_string(o.n_thresholds) + " thresholds");

  // transformed outcome and linear regressors [z x]
  const Vec y = pn.transform(d.y.data());
  Mat XL(static_cast<Eigen::Index>(N), static_cast<Eigen::Index>(kz + p));
  for (std::size_t j = 0; j < kz + static_cast<std::size_t>(p); ++j) pn.transform_into(col(j), XL.col(static_cast<Eigen::Index>(j)).data());
  for (int j = 0; j < p; ++j) {
    const auto xt = XL.col(static_cast<Eigen::Index>(kz + j));
    if (xt.squaredNorm() <= 1e-20 * (1 + Eigen::Map<const Vec>(col(kz + j), static_cast<Eigen::Index>(d.n_obs)).squaredNorm()))
      throw InvalidInput("regime variable '" + d.x_names[kz + j] +
                         "' does not vary over time within units: the individual effects absorb it, so its "
                         "slope cannot switch at a threshold");
  }
  // the threshold variable on the transformed rows (the robust CI's regressions)
  Vec qt(static_cast<Eigen::Index>(N));
  for (std::size_t i = 0; i < pn.n; ++i)
    for (std::size_t t = 0; t < pn.offset[i + 1] - pn.offset[i]; ++t)
      qt(static_cast<Eigen::Index>(pn.offset[i] + t)) = q[pn.rows[i][t]];
  Eigen::HouseholderQR<Mat> qr(XL);
  const Mat Q = qr.householderQ() * Mat::Identity(XL.rows(), XL.cols());
  std::vector<const double*> xs;
  for (int j = 0; j < p; ++j) xs.push_back(col(kz + j));
  const GridProjector proj(pn, d.extra[0].code, q_order, xs, q, grid, o.xthreg, Q);
  const GridGram G(proj);
  double S0 = 0;
  const Vec r = proj.project(y, S0);  // W'My
  const Vec e0 = proj.residual(y);
  res.ssr_linear = S0;
  res.c95 = -2.0 * std::log(1.0 - std::sqrt(0.95));
  res.c99 = -2.0 * std::log(1.0 - std::sqrt(0.99));
  res.c_level = -2.0 * std::log(1.0 - std::sqrt(o.level));
  const BackendGram bgram(G, grid.size(), p);
  const Searcher sr(proj.view(), bgram, qn);
  // the F statistics' scale: n(T-1) (Hansen), NT - T (xthreg)
  const double Nd = o.xthreg ? static_cast<double>(N) - static_cast<double>(pn.T) : static_cast<double>(N);

  // coefficients of a model with the given thresholds (grid indices)
  auto fit_values = [&](std::vector<double> thv) {
    std::sort(thv.begin(), thv.end());
    const std::size_t K = thv.size();
    const std::size_t kt = kz + (K + 1) * p;
    Mat X(static_cast<Eigen::Index>(N), static_cast<Eigen::Index>(kt));
    for (std::size_t j = 0; j < kz; ++j) X.col(static_cast<Eigen::Index>(j)) = XL.col(static_cast<Eigen::Index>(j));
    std::vector<double> w(d.n_obs);
    std::vector<std::string> names;
    for (std::size_t j = 0; j < kz; ++j) names.push_back(d.x_names[j]);
    for (int j = 0; j < p; ++j) {
      const double* x = col(kz + j);
      for (std::size_t reg = 0; reg <= K; ++reg) {
        const double lo = reg == 0 ? -kInf : thv[reg - 1], hi = reg == K ? kInf : thv[reg];
        for (std::size_t rr = 0; rr < d.n_obs; ++rr)
          w[rr] = !below(q[rr], lo) && below(q[rr], hi) ? x[rr] : 0.0;  // lo = -inf, hi = +inf at the ends
        X.col(static_cast<Eigen::Index>(kz + j * (K + 1) + reg)) = pn.transform(w.data());
        char buf[160];
        std::snprintf(buf, sizeof buf, "%s:regime%zu", d.x_names[kz + j].c_str(), reg + 1);
        names.push_back(buf);
      }
    }
    for (std::size_t reg = 0; reg <= K; ++reg) {
      const double lo = reg == 0 ? -kInf : thv[reg - 1], hi = reg == K ? kInf : thv[reg];
      std::size_t cnt = 0;
      for (std::size_t rr = 0; rr < d.n_obs; ++rr) cnt += !below(q[rr], lo) && below(q[rr], hi);
      if (cnt <= static_cast<std::size_t>(p))
        throw InvalidInput("regime " + std::to_string(reg + 1) + " of the " + std::to_string(K) +
                           "-threshold model has " + std::to_string(cnt) + " observations, no more than its " +
                           std::to_string(p) + " regressor(s); use fewer thresholds or a larger --trim");
    }
    const Mat XtXi = (X.transpose() * X).inverse();
    const Vec beta = XtXi * (X.transpose() * y);
    Vec fitted = X * beta;
    const Vec e = y - fitted;
    const double sse = e.squaredNorm();
    const double s2 = sse / (static_cast<double>(N) - static_cast<double>(pn.n) -
                             (o.time_effects ? static_cast<double>(pn.T - 1) : 0.0) - static_cast<double>(kt));
    // White: sum over rows of (x e)(x e)'; clustered (HC0): the scores x e summed over each
    // cluster's transformed rows (the unit's, or --cluster), column by column (X becomes X e:
    // one N x k matrix fewer to fault in)
    Mat& Xe = X;
    Xe.array().colwise() *= e.array();
    const Mat meat = Xe.transpose() * Xe;
    const Mat Vw = XtXi * meat * XtXi;
    Mat scores = Mat::Zero(static_cast<Eigen::Index>(res.n_clusters), static_cast<Eigen::Index>(kt));
    for (Eigen::Index j = 0; j < static_cast<Eigen::Index>(kt); ++j)
      for (std::size_t row = 0; row < N; ++row) scores(tcluster[row], j) += Xe(static_cast<Eigen::Index>(row), j);
    const Mat meat_c = scores.transpose() * scores;
    const Mat Vc = XtXi * meat_c * XtXi;
    ThresholdModel m;
    m.n_thresholds = static_cast<int>(K);
    m.gammas = thv;
    m.ssr = sse;
    for (std::size_t j = 0; j < kt; ++j)
      m.coefficients.push_back({names[j], beta(static_cast<Eigen::Index>(j)),
                                std::sqrt(s2 * XtXi(static_cast<Eigen::Index>(j), static_cast<Eigen::Index>(j))),
                                std::sqrt(Vw(static_cast<Eigen::Index>(j), static_cast<Eigen::Index>(j))),
                                std::sqrt(Vc(static_cast<Eigen::Index>(j), static_cast<Eigen::Index>(j)))});
    // each observation's regime (the last model fitted is the one kept)
    res.regimes.clear();
    if (!o.keep_regimes) return FitOut{m, std::move(fitted), beta, e};
    for (std::size_t rr = 0; rr < d.n_obs; ++rr) {
      int reg = 1;
      for (double g : thv) reg += !below(q[rr], g);
      const std::size_t row = d.rows.empty() ? rr : d.rows[rr];
      res.regimes.push_back({df.column(o.panel_id).text(row), df.numeric(o.panel_time)[row], q[rr], reg});
    }
    return FitOut{m, std::move(fitted), beta, e};
  };
  auto fit_model = [&](const std::vector<int>& th) {
    std::vector<double> thv;
    for (int t : th) thv.push_back(grid[t]);
    return fit_values(thv);
  };
  if (!o.gammas.empty()) {
    // fixed thresholds: the model and its F against the linear one, no search and no bootstrap
    auto fm_g = fit_values(o.gammas);
    ThresholdModel m = fm_g.first;
    m.notes.push_back("thresholds given (--gammas): no search, no confidence sets, no bootstrap");
    ThresholdTest t;
    t.k = static_cast<int>(o.gammas.size());
    t.F = (S0 - m.ssr) / (m.ssr / Nd);
    t.p_value = std::numeric_limits<double>::quiet_NaN();
    res.models.push_back(m);
    res.tests.push_back(t);
    return res;
  }

  const auto t_setup = std::chrono::steady_clock::now();
  // The sequential search on the sample.
  std::vector<int> fixed;
  std::vector<std::pair<double, double>> ci95_of(grid.size()), ci99_of(grid.size()), cil_of(grid.size());
  std::vector<Stage> stage_of(o.robust_ci ? grid.size() : 0);  // the search that found each threshold
  std::vector<double> ssr_after;  // SSR of the k-threshold model (after refinement)
  std::vector<double> F;
  std::vector<Vec> fitted_of;  // fitted values of the k-threshold model: the bootstrap's null for k + 1
  double S_prev = S0;
  for (int k = 1; k <= o.n_thresholds; ++k) {
    const double tr = trim_at(o.trim, static_cast<std::size_t>(k - 1));
    Stage st = sr.search(r, S0, fixed, tr);
    if (st.best < 0) throw InvalidInput("no grid point is left for threshold " + std::to_string(k) + "; lower --trim");
    const double s2 = st.ssr_best / Nd;
    ci95_of[st.best] = conf_set(st, grid, s2, res.c95);
    ci99_of[st.best] = conf_set(st, grid, s2, res.c99);
    cil_of[st.best] = conf_set(st, grid, s2, res.c_level);
    if (o.robust_ci) stage_of[st.best] = st;
    if (k == 1)
      for (std::size_t g = 0; g < grid.size(); ++g) {
        res.ssr_curve.push_back(st.ssr[g]);
        res.lr_gamma.push_back(grid[g]);
        res.lr_value.push_back((st.ssr[g] - st.ssr_best) / s2);
      }
    F.push_back((S_prev - st.ssr_best) / s2);
    fixed.push_back(st.best);
    double S_k = st.ssr_best;
    if (k == 2) {
      // refine the first threshold with the second fixed (same window)
      const std::vector<int> other{fixed[1]};
      Stage rf = sr.search(r, S0, other, tr);
      const double s2r = rf.ssr_best / Nd;
      ci95_of[rf.best] = conf_set(rf, grid, s2r, res.c95);
      ci99_of[rf.best] = conf_set(rf, grid, s2r, res.c99);
      cil_of[rf.best] = conf_set(rf, grid, s2r, res.c_level);
      if (o.robust_ci) stage_of[rf.best] = rf;
      fixed[0] = rf.best;
      S_k = rf.ssr_best;
    }
    ssr_after.push_back(S_k);
    S_prev = S_k;
    auto fm_k = fit_model(fixed);  // also records each observation's regime
    fitted_of.push_back(fm_k.second);
    ThresholdModel m = fm_k.first;
    std::vector<int> sorted = fixed;
    std::sort(sorted.begin(), sorted.end(), [&](int a, int b) { return grid[a] < grid[b]; });
    for (std::size_t si = 0; si < sorted.size(); ++si) {
      const int t = sorted[si];
      if (!o.robust_ci) {
        m.ci95.push_back(ci95_of[t]);
        m.ci99.push_back(ci99_of[t]);
        m.ci.push_back(cil_of[t]);
        continue;
      }
      // Hansen (2000): {g : (S(g) - S(g^)) / (sigma^2 eta^2) < c}, eta^2 from this model at g^,
      // d the slope change of the regime regressors between the regimes on either side
      const std::size_t K = sorted.size();
      Vec dx = Vec::Zero(static_cast<Eigen::Index>(N));
      for (int j = 0; j < p; ++j) {
        const Eigen::Index lo = static_cast<Eigen::Index>(kz + j * (K + 1) + si);
        dx += (fm_k.beta(lo + 1) - fm_k.beta(lo)) * XL.col(static_cast<Eigen::Index>(kz + j));
      }
      const Eta eta = hansen_eta(dx.cwiseProduct(dx), fm_k.e, qt, grid[t], o.robust_kernel);
      const double eta2 = eta.scale / (fm_k.first.ssr / Nd);
      if (!(eta.scale > 0) || !std::isfinite(eta.scale))
        throw InvalidInput("--robust-ci: the heteroskedasticity scale eta^2 at threshold " + std::to_string(grid[t]) +
                           " is not positive (" + std::to_string(eta2) +
                           "); try --robust-ci-method quadratic, or the homoskedastic sets");
      m.ci95.push_back(conf_set(stage_of[t], grid, eta.scale, res.c95));
      m.ci99.push_back(conf_set(stage_of[t], grid, eta.scale, res.c99));
      m.ci.push_back(conf_set(stage_of[t], grid, eta.scale, res.c_level));
      m.ci95_homo.push_back(ci95_of[t]);
      m.ci99_homo.push_back(ci99_of[t]);
      m.eta2.push_back(eta2);
      m.eta_bandwidth.push_back(eta.bandwidth);
      if (k == 1) res.lr_robust_factor = (stage_of[t].ssr_best / Nd) / eta.scale;
    }
    res.models.push_back(m);
  }

  const auto t_search = std::chrono::steady_clock::now();
  // Bootstrap of each test k vs k - 1: the (k-1)-threshold model's fitted values plus residual
  // blocks of individuals drawn with replacement; thresholds re-estimated sequentially with the
  // window trim[k-1] at every stage and no refinement.
  std::unique_ptr<Backend> own_backend;
  if (!backend_in) own_backend = make_backend(Device::kCpu);
  const Backend& backend = backend_in ? *backend_in : *own_backend;
  for (int k = 1; k <= o.n_thresholds; ++k) {
    ThresholdTest t;
    t.k = k;
    t.F = F[static_cast<std::size_t>(k - 1)];
    t.n_boot = o.n_boot;
    if (o.n_boot > 0) {
      Vec fitted;
      if (k == 1) fitted = y - e0;
      else fitted = fitted_of[static_cast<std::size_t>(k - 2)];
      const Vec resid = y - fitted;
      const double tr = trim_at(o.trim, static_cast<std::size_t>(k - 1));
      const std::int64_t B = o.n_boot;
      // the backend's per-replication data (kernels/threshold_boot.hpp; the sizes were checked
      // against its limits at the start)
      ThresholdBootSpec sp;
      kernels::ThresholdBootView& v = sp.view;
      v = proj.view();
      v.fitted = fitted.data();
      v.resid = resid.data();
      v.qnt = static_cast<int>(std::lround(qn * tr));
      v.k = k;
      v.n_scale = Nd;
      v.seed = o.seed;
      v.wild = o.bootstrap_wild;
      sp.n_boot = B;
      sp.min_team_work = o.min_team_work;
      ProgressReporter progress("threshold bootstrap of F" + std::to_string(k), "replications",
                                static_cast<std::uint64_t>(B), o.progress);
      sp.progress = &progress;
      std::vector<double> fstar = backend.threshold_fstar(sp, bgram);
      progress.finish();
      res.fstar.emplace_back(fstar.begin(), fstar.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(o.trace, fstar.size())));
      std::int64_t exceed = 0;
      for (double f : fstar) exceed += f > t.F;
      t.p_value = static_cast<double>(exceed) / static_cast<double>(B);
      std::sort(fstar.begin(), fstar.end());
      for (double qv : {0.90, 0.95, 0.99}) {
        const std::int64_t idx = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::ceil(qv * B)) - 1, 0, B - 1);
        t.crit.push_back(fstar[static_cast<std::size_t>(idx)]);
      }
    }
    res.tests.push_back(t);
  }
  const auto t_end = std::chrono::steady_clock::now();
  auto sec = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  res.timing = {{"setup_s", sec(t_start, t_setup)}, {"search_s", sec(t_setup, t_search)},
                {"bootstrap_s", sec(t_search, t_end)}};
  return res;
}

}  // namespace panelboot
