// Hansen (1999) panel threshold regression (THRESH_P conventions). See threshold.hpp.
#include "panelboot/threshold.hpp"
#include "panelboot/timing.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>

#include "panelboot/backend.hpp"
#include "panelboot/design.hpp"
#include "panelboot/error.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/text.hpp"
#include "panelboot/progress.hpp"
#include "panelboot/kernels/wild_weights.hpp"
#include "estimate/detail.hpp"

namespace panelboot {
namespace {

using Mat = Eigen::MatrixXd;
using Vec = Eigen::VectorXd;
const double kInf = std::numeric_limits<double>::infinity();

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

// The user's formula, parsed once: Hansen's model has exactly one fixed effect, the panel unit.
Formula user_formula(const ThresholdOptions& o) {
  Formula fm = parse_formula(o.formula);
  refuse_iv(fm, "threshold", "Hansen's threshold model has no instrumental-variable form here");
  const std::string& id = o.sample.panel_id;
  if (fm.fe_names.empty())
    throw InvalidInput("threshold formula '" + o.formula + "' has no fixed effect: Hansen's model always has the "
                       "individual effects; write it as '" + trim_ws(o.formula) + " | " + id + "'");
  if (fm.fe_names.size() != 1 || fm.fe_names[0] != id) {
    std::string fe;
    for (const std::string& f : fm.fe_names) fe += (fe.empty() ? "" : " + ") + f;
    throw InvalidInput("threshold: the only fixed effect is the individual's ('| " + id + "'); '" + fe +
                       "' is not supported in Hansen's model");
  }
  return fm;
}

// A regressor given by --regime: one numeric expression, or a product a:b of them, parsed into
// a formula term named as the formula's own terms are (so that a repeat is recognized).
FormulaTerm option_term(const std::string& text, const char* option) {
  const std::string what = std::string(option) + " " + quoted(text);
  FormulaTerm t;
  for (const std::string& piece : split_outside_parentheses(text, ':')) {
    FormulaFactor f;
    f.expr = parse_expression(piece, what);
    const ExprNode& e = *f.expr;
    // a constant, a sum or a formula's a*b (several terms), factor dummies i(f) (several columns)
    const bool several = (e.kind == ExprNode::Kind::kBinary && (e.text == "+" || e.text == "-" || e.text == "*")) ||
                         (e.kind == ExprNode::Kind::kCall && e.text == "i");
    if (e.kind == ExprNode::Kind::kNumber || several) throw InvalidInput(what + " must be one numeric regressor");
    f.name = to_string(e);
    t.name += (t.name.empty() ? "" : ":") + f.name;
    t.factors.push_back(std::move(f));
  }
  return t;
}

// q's term, I(q) (any expression): named apart from a linear or regime term of the same
// variable, so that the design keeps its column.
FormulaTerm threshold_var_term(const std::string& q) {
  auto call = std::make_shared<ExprNode>();
  call->kind = ExprNode::Kind::kCall;
  call->text = "I";
  call->args = {parse_expression(q, "--threshold-var " + quoted(q))};
  FormulaFactor f;
  f.expr = call;
  f.name = to_string(*call);
  return FormulaTerm{{f}, f.name};
}

// The design's formula, built from the parsed pieces: the linear regressors z, then the regime
// regressors x, then q, with no intercept (the unit effects are the transform's; the formula's
// fixed effect stays as the unit's grouping). A regressor listed both as linear and as a regime
// one is, in the linear part, the sum of its regime terms: its linear copy is omitted (named in
// `omitted`), so that the regime columns stay the p after the linear ones.
Formula threshold_formula(Formula fm, const ThresholdOptions& o, std::vector<std::string>& omitted) {
  std::vector<FormulaTerm> x_terms;
  for (const std::string& x : o.regime) x_terms.push_back(option_term(x, "--regime"));
  for (std::size_t i = 0; i < x_terms.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (x_terms[i].name == x_terms[j].name) throw InvalidInput("--regime lists " + quoted(x_terms[i].name) + " twice");
  std::vector<FormulaTerm> kept;
  for (FormulaTerm& t : fm.terms) {
    const bool is_regime = std::any_of(x_terms.begin(), x_terms.end(), [&](const FormulaTerm& x) { return x.name == t.name; });
    if (is_regime) omitted.push_back(t.name + " (linear term; also a regime regressor, whose regime slopes it sums)");
    else kept.push_back(std::move(t));
  }
  fm.terms = std::move(kept);
  fm.terms.insert(fm.terms.end(), x_terms.begin(), x_terms.end());
  fm.terms.push_back(threshold_var_term(o.threshold_var));
  fm.intercept = false;
  fm.text = fm.lhs_name + " ~ ";
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
// conditional means g1 = E[(d'x)^2 | q], g2 = E[(d'x)^2 e^2 | q] are estimated at gamma by a
// quadratic regression on (1, q, q^2) or, as his program does by default, by an Epanechnikov
// kernel whose bandwidth is his plug-in rule. scale = g2 / g1 = sigma^2 eta^2, so
// LR_het = (S(g) - S(g^)) / scale; bandwidth NaN: the quadratic estimate.
struct Eta {
  double g1 = 0, g2 = 0, scale = 0, bandwidth = 0;
};

double quadratic_at(const Vec& m, double g) { return m(0) + m(1) * g + m(2) * g * g; }

// The kernel estimate at gamma: a pilot bandwidth 2.344 sd(q) n^(-1/5) for the density of q and
// its slope, then the plug-in rule on the quadratic fit's residual variance (eps, m1: r1's
// residuals and coefficients of the quadratic fit).
Eta kernel_eta(const Vec& r1, const Vec& r2, const Vec& qt, const Vec& eps, const Vec& m1, double gamma) {
  const Eigen::Index n = qt.size();
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
  Eta out;
  out.g1 = k1 / static_cast<double>(n);
  out.g2 = k2 / static_cast<double>(n);
  out.bandwidth = h;
  return out;
}

// dx2 = (d'x)^2 per transformed row. The kernel estimate falls back to the quadratic one when the
// plug-in rule gives no bandwidth or leaves no observation near gamma.
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
  out.g1 = quadratic_at(m1, gamma);
  out.g2 = quadratic_at(m2, gamma);
  if (kernel) {
    const Eta k = kernel_eta(r1, r2, qt, r1 - Qx * m1, m1, gamma);
    if (std::isfinite(k.bandwidth) && k.bandwidth > 0 && k.g1 > 0 && k.g2 > 0) out = k;
  }
  out.scale = out.g2 / out.g1;
  return out;
}

// ---- the stages of estimate_threshold ----

void check_options(const ThresholdOptions& o) {
  if (o.sample.panel_id.empty() || o.sample.panel_time.empty()) throw InvalidInput("threshold needs --panel id,time");
  if (o.regime.empty()) throw InvalidInput("threshold needs --regime X (the regime-dependent regressors)");
  if (o.threshold_var.empty()) throw InvalidInput("threshold needs --threshold-var Q");
  if (o.n_thresholds < 1) throw InvalidInput("--thresholds must be at least 1");
  if (o.trim.empty()) throw InvalidInput("--trim needs at least one value");
  for (double t : o.trim)
    if (!(t > 0 && t < 0.5)) throw InvalidInput("--trim values must lie in (0, 0.5)");
  if (o.grid != 0 && o.grid < 10) throw InvalidInput("--grid must be at least 10 (or 'all')");
  if (!(o.level > 0 && o.level < 1)) throw InvalidInput("--level must lie strictly between 0 and 1, e.g. 0.95");
  if (!o.sample.weights.empty()) throw InvalidInput("threshold takes no --weights: Hansen's model is unweighted");
  if (o.sample.cluster.size() > 1) {
    std::string names;
    for (const std::string& c : o.sample.cluster) names += (names.empty() ? "" : ",") + c;
    throw InvalidInput("threshold clusters its SEs by one variable (default: the panel unit); --cluster " +
                       quoted(names) + " names " + std::to_string(o.sample.cluster.size()));
  }
  const int p = static_cast<int>(o.regime.size());
  // the search's fixed set (kernels::threshold_stage) holds at most kMaxFixedDim values
  if (p > kernels::kMaxRegime || static_cast<long>(o.n_thresholds - 1) * p > kernels::kMaxFixedDim)
    throw InvalidInput("threshold models take at most " + std::to_string(kernels::kMaxRegime) +
                       " regime regressors and (thresholds - 1) x regime regressors <= " +
                       std::to_string(kernels::kMaxFixedDim) + " (here " + std::to_string(p) + " and " +
                       std::to_string(o.n_thresholds) + " thresholds); use fewer");
}

// The estimation sample: the design (the last p + 1 columns the regime regressors and q, the
// formula's fixed effect the unit), its panel and the F statistics' scale.
struct Sample {
  Design d;
  Panel pn;
  std::size_t kz = 0;  // linear regressors
  int p = 0;           // regime regressors
  std::vector<std::int32_t> cluster;  // the group of se_cluster of each transformed row
  std::int32_t n_clusters = 0;
  double Nd = 0;                      // the F statistics' scale: n(T-1) (Hansen), NT - T (xthreg)
  const double* col(std::size_t j) const { return d.X.data() + j * d.n_obs; }
  const double* q() const { return col(d.n_reg - 1); }
  const Grouping& unit() const { return d.fe[0]; }
};

Design threshold_design(const DataFrame& df, const Formula& fm, const ThresholdOptions& o) {
  SampleOptions so = o.sample;
  so.need_time = true;        // the panel's periods
  so.keep_singletons = true;  // a unit is a unit, however few its rows
  Design d = build_design(df, fm, so);
  // the design drops a column that repeats an earlier one (e.g. one of a linear i(f)'s dummies)
  const std::size_t p = o.regime.size();
  for (std::size_t j = 0; j <= p; ++j)
    if (d.n_reg < p + 1 || d.x_names[d.n_reg - p - 1 + j] != fm.terms[fm.terms.size() - p - 1 + j].name)
      throw InvalidInput("threshold: --regime " + quoted(fm.terms[fm.terms.size() - p - 1 + j].name) +
                         " repeats a column of the linear part; list each regressor once");
  return d;
}

// An unbalanced panel: refused where the procedure needs balance, else a departure.
void check_unbalanced(const DataFrame& df, const Sample& s, const ThresholdOptions& o, ThresholdResult& res) {
  const Panel& pn = s.pn;
  std::string ids;
  for (std::size_t i = 0, shown = 0; i < pn.n && shown < 5; ++i)
    if (pn.rows[i].size() < pn.T) {
      const std::size_t r = pn.rows[i][0];
      ids += (shown++ ? ", " : "") + df.column(o.sample.panel_id).text(s.d.rows.empty() ? r : s.d.rows[r]);
    }
  const std::string what = std::to_string(s.d.n_obs) + " rows for " + std::to_string(pn.n) + " units x " +
                           std::to_string(pn.T) + " periods; incomplete units include " + ids;
  if (o.xthreg) throw InvalidInput("xthreg mode needs a balanced panel, as Stata's xthreg does: " + what);
  if (o.time_effects) throw InvalidInput("--time-effects needs a balanced panel: " + what);
  if (o.bootstrap_wild == false && o.n_boot > 0)
    throw InvalidInput("Hansen's residual-block bootstrap needs a balanced panel (" + what +
                       "); use --bootstrap wild, or --B 0");
  res.departures.push_back("unbalanced panel (" + what + ") is outside Hansen's program");
}

// The panel: each unit's rows in time order, the transform's conventions, and the cluster of
// each transformed row (its unit, or the --cluster variable's group).
void make_panel(const DataFrame& df, Sample& s, const ThresholdOptions& o, ThresholdResult& res) {
  Panel& pn = s.pn;
  const Design& d = s.d;
  pn.n = static_cast<std::size_t>(s.unit().n_levels);
  pn.T = static_cast<std::size_t>(d.time.n_levels);
  if (pn.T < 3) throw InvalidInput("threshold needs at least three periods");
  if (pn.n < 2)
    throw InvalidInput("threshold needs at least two panel units ('" + o.sample.panel_id + "' has " +
                       std::to_string(pn.n) + " in the sample): the bootstrap resamples units and the SEs need more than one");
  pn.rows.assign(pn.n, {});
  pn.period.resize(d.n_obs);
  for (std::size_t r = 0; r < d.n_obs; ++r) {
    pn.rows[s.unit().code[r]].push_back(r);
    pn.period[r] = static_cast<std::size_t>(d.time.code[r]);
  }
  for (auto& rr : pn.rows)
    std::sort(rr.begin(), rr.end(), [&](std::size_t a, std::size_t b) { return pn.period[a] < pn.period[b]; });
  pn.balanced = d.n_obs == pn.n * pn.T;
  if (!pn.balanced) check_unbalanced(df, s, o, res);
  pn.drop_last = !o.xthreg;
  pn.time_effects = o.time_effects;
  pn.finalize();
  const Grouping& g = d.clusters.empty() ? s.unit() : d.clusters[0];
  res.cluster = g.name;
  res.n_clusters = s.n_clusters = g.n_levels;
  s.cluster.resize(pn.N());
  for (std::size_t i = 0; i < pn.n; ++i)
    for (std::size_t t = 0; t < pn.offset[i + 1] - pn.offset[i]; ++t) s.cluster[pn.offset[i] + t] = g.code[pn.rows[i][t]];
  s.Nd = o.xthreg ? static_cast<double>(pn.N()) - static_cast<double>(pn.T) : static_cast<double>(pn.N());
}

Sample make_sample(const DataFrame& df, const ThresholdOptions& o, ThresholdResult& res) {
  const Formula fm = threshold_formula(user_formula(o), o, res.omitted);
  Sample s;
  s.d = threshold_design(df, fm, o);
  s.p = static_cast<int>(o.regime.size());
  s.kz = s.d.n_reg - static_cast<std::size_t>(s.p) - 1;
  make_panel(df, s, o, res);
  res.n_units = s.pn.n;
  res.n_periods = s.pn.T;
  res.n_obs = s.pn.N();
  res.simulated = s.d.simulated;
  res.data_source = df.source;
  return s;
}

// Options outside the chosen program's procedure, named in the report.
void note_departures(const ThresholdOptions& o, ThresholdResult& res) {
  const std::string program = o.xthreg ? "xthreg's" : "Hansen's";
  if (o.bootstrap_wild)
    res.departures.push_back("--bootstrap wild (Rademacher signs on each unit's residual block) is outside Hansen's program");
  if (o.robust_ci)
    res.departures.push_back("--robust-ci (Hansen 2000's heteroskedasticity-robust LR sets, eta^2 by " +
                             std::string(o.robust_kernel ? "his kernel rule" : "a quadratic regression") +
                             ") is outside Hansen's 1999 program");
  if (o.time_effects)
    res.departures.push_back("--time-effects (period effects removed too) is outside " + program + " program");
  if (o.grid == 0) res.departures.push_back("--grid all (every distinct value) is outside " + program + " program");
}

// The candidate thresholds, from the distinct values of q (dd, increasing).
struct Grid {
  std::vector<std::size_t> q_order;  // the design rows sorted by q (ties in row order)
  std::vector<double> dd;            // q's distinct values
  std::vector<double> points;
  int qn = 0;                        // quantile steps: Hansen's qn (the exclusion windows count in them)
};

// --grid all: every distinct value in the trimmed range, which is Hansen's rule with one quantile
// step per distinct value (and xthreg's with N = all remaining values); the exclusion windows
// then count one step per distinct value.
int grid_steps(const ThresholdOptions& o, const std::vector<double>& dd) {
  if (o.grid != 0) return o.grid;
  const double nd = static_cast<double>(dd.size());
  return static_cast<int>(dd.size() - (o.xthreg ? 2 * static_cast<std::size_t>(std::floor(o.trim[0] * nd)) : 0));
}

// Checked before anything of grid size is allocated.
void check_grid_memory(const Grid& g, const Sample& s, const ThresholdOptions& o) {
  const double nd = static_cast<double>(g.dd.size()), trim0 = o.trim[0];
  const double n_grid_est = o.xthreg ? g.qn : o.grid == 0 ? nd : std::floor(g.qn * (1 - 2 * trim0) + 1e-9) + 1;
  check_memory(threshold_memory_bytes(n_grid_est, static_cast<double>(s.pn.N()), s.p, static_cast<int>(s.kz), o),
               o.max_memory, "threshold with a grid of " + std::to_string(static_cast<long long>(n_grid_est)) + " points",
               "lower --grid (Hansen's is 400), --B or --thresholds");
}

// xthreg: drop floor(trim N_u) distinct values at each end, then N points at round(j (N_v-1)/(N-1)).
// Hansen: his quantiles of the distinct values over all n x T observations (1-based); with --grid
// all every distinct value from his first quantile point to his last, 1-based indices
// floor(trim #dd) .. floor((1 - trim) #dd).
std::vector<double> grid_points(const std::vector<double>& dd, int qn, const ThresholdOptions& o) {
  const double nd = static_cast<double>(dd.size()), trim0 = o.trim[0];
  std::vector<double> grid;
  if (o.xthreg) {
    const std::size_t cut = static_cast<std::size_t>(std::floor(trim0 * nd));
    if (2 * cut >= dd.size()) throw InvalidInput("--trim leaves no threshold values");
    const std::vector<double> v(dd.begin() + static_cast<std::ptrdiff_t>(cut), dd.end() - static_cast<std::ptrdiff_t>(cut));
    const std::size_t nv = v.size();
    for (int j = 0; j < qn; ++j)
      grid.push_back(v[static_cast<std::size_t>(std::lround(static_cast<double>(j) * (nv - 1) / (qn - 1)))]);
  } else if (o.grid == 0) {
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
  return grid;
}

Grid make_grid(const Sample& s, const ThresholdOptions& o, ThresholdResult& res) {
  Grid g;
  g.q_order = order_by_value(s.q(), s.d.n_obs);
  g.dd = distinct_values(s.q(), g.q_order);
  g.qn = grid_steps(o, g.dd);
  check_grid_memory(g, s, o);
  g.points = grid_points(g.dd, g.qn, o);
  std::vector<double> gu = g.points;
  gu.erase(std::unique(gu.begin(), gu.end()), gu.end());
  const double trim0 = o.trim[0];
  if (gu.size() < 2 * static_cast<std::size_t>(o.n_thresholds) + 1)
    throw InvalidInput("threshold variable '" + o.threshold_var + "' has " + std::to_string(g.dd.size()) +
                       " distinct values: too few for --grid " + std::to_string(g.qn) + " and --trim " +
                       std::to_string(trim0) + " with " + std::to_string(o.n_thresholds) +
                       " threshold(s); lower --trim or --thresholds");
  res.n_grid = g.points.size();
  res.n_distinct = g.dd.size();
  res.grid_first = g.points.front();
  res.grid_last = g.points.back();
  if (static_cast<double>(o.n_thresholds + 1) * 2 * trim0 >= 1)
    throw InvalidInput("--trim " + std::to_string(trim0) + " leaves no room for " + std::to_string(o.n_thresholds) + " thresholds");
  return g;
}

// The transformed outcome and linear regressors [z x], q on the transformed rows (the robust
// CI's regressions) and an orthonormal basis Q of [z x].
struct Transformed {
  Vec y, qt;
  Mat XL, Q;
};

Transformed transform_sample(const Sample& s) {
  const Panel& pn = s.pn;
  const std::size_t kz = s.kz, p = static_cast<std::size_t>(s.p);
  Transformed t;
  t.y = pn.transform(s.d.y.data());
  t.XL.resize(static_cast<Eigen::Index>(pn.N()), static_cast<Eigen::Index>(kz + p));
  for (std::size_t j = 0; j < kz + p; ++j) pn.transform_into(s.col(j), t.XL.col(static_cast<Eigen::Index>(j)).data());
  for (std::size_t j = 0; j < p; ++j) {
    const auto xt = t.XL.col(static_cast<Eigen::Index>(kz + j));
    if (xt.squaredNorm() <= 1e-20 * (1 + Eigen::Map<const Vec>(s.col(kz + j), static_cast<Eigen::Index>(s.d.n_obs)).squaredNorm()))
      throw InvalidInput("regime variable '" + s.d.x_names[kz + j] +
                         "' does not vary over time within units: the individual effects absorb it, so its "
                         "slope cannot switch at a threshold");
  }
  t.qt.resize(static_cast<Eigen::Index>(pn.N()));
  for (std::size_t i = 0; i < pn.n; ++i)
    for (std::size_t r = 0; r < pn.offset[i + 1] - pn.offset[i]; ++r)
      t.qt(static_cast<Eigen::Index>(pn.offset[i] + r)) = s.q()[pn.rows[i][r]];
  Eigen::HouseholderQR<Mat> qr(t.XL);
  t.Q = qr.householderQ() * Mat::Identity(t.XL.rows(), t.XL.cols());
  return t;
}

// A fitted threshold model with the pieces the robust CI and the next bootstrap need.
struct FitOut {
  ThresholdModel model;
  Vec fitted;  // transformed
  Vec beta, e;
};

// The model at given thresholds by OLS on the transformed data: its coefficients with their
// homoskedastic, White (HC0) and clustered SEs; with keep_regimes, each observation's regime.
class ModelFitter {
 public:
  ModelFitter(const DataFrame& df, const Sample& s, const Transformed& t, const ThresholdOptions& o)
      : df_(df), s_(s), t_(t), o_(o) {}

  FitOut fit(std::vector<double> thv, ThresholdResult& res) const {
    std::sort(thv.begin(), thv.end());
    std::vector<std::string> names;
    Mat X = regime_design(thv, names);
    check_regime_sizes(thv);
    const Mat XtXi = (X.transpose() * X).inverse();
    const Vec beta = XtXi * (X.transpose() * t_.y);
    Vec fitted = X * beta;
    const Vec e = t_.y - fitted;
    ThresholdModel m;
    m.n_thresholds = static_cast<int>(thv.size());
    m.gammas = thv;
    m.ssr = e.squaredNorm();
    add_coefficients(m, X, XtXi, beta, e, names);
    res.regimes.clear();  // each observation's regime: the last model fitted is the one kept
    if (o_.keep_regimes) record_regimes(thv, res);
    return FitOut{m, std::move(fitted), beta, e};
  }

 private:
  // Hansen: lower regime q < gamma; xthreg: q <= gamma
  bool below(double qv, double g) const { return o_.xthreg ? qv <= g : qv < g; }
  // regime reg (0-based) is lo <= q < hi (xthreg: lo < q <= hi), lo = -inf, hi = +inf at the ends
  static std::pair<double, double> regime_bounds(const std::vector<double>& thv, std::size_t reg) {
    return {reg == 0 ? -kInf : thv[reg - 1], reg == thv.size() ? kInf : thv[reg]};
  }
  bool in_regime(double qv, std::pair<double, double> b) const { return !below(qv, b.first) && below(qv, b.second); }

  // [z, x_1 1(regime 1), ..., x_1 1(regime K + 1), x_2 ...] transformed, with the columns' names
  Mat regime_design(const std::vector<double>& thv, std::vector<std::string>& names) const {
    const std::size_t K = thv.size(), kz = s_.kz, n_obs = s_.d.n_obs;
    const std::size_t kt = kz + (K + 1) * static_cast<std::size_t>(s_.p);
    Mat X(static_cast<Eigen::Index>(s_.pn.N()), static_cast<Eigen::Index>(kt));
    for (std::size_t j = 0; j < kz; ++j) X.col(static_cast<Eigen::Index>(j)) = t_.XL.col(static_cast<Eigen::Index>(j));
    std::vector<double> w(n_obs);
    for (std::size_t j = 0; j < kz; ++j) names.push_back(s_.d.x_names[j]);
    const double* q = s_.q();
    for (int j = 0; j < s_.p; ++j) {
      const double* x = s_.col(kz + j);
      for (std::size_t reg = 0; reg <= K; ++reg) {
        const auto b = regime_bounds(thv, reg);
        for (std::size_t rr = 0; rr < n_obs; ++rr) w[rr] = in_regime(q[rr], b) ? x[rr] : 0.0;
        X.col(static_cast<Eigen::Index>(kz + j * (K + 1) + reg)) = s_.pn.transform(w.data());
        char buf[160];
        std::snprintf(buf, sizeof buf, "%s:regime%zu", s_.d.x_names[kz + j].c_str(), reg + 1);
        names.push_back(buf);
      }
    }
    return X;
  }

  void check_regime_sizes(const std::vector<double>& thv) const {
    const std::size_t K = thv.size();
    for (std::size_t reg = 0; reg <= K; ++reg) {
      const auto b = regime_bounds(thv, reg);
      const double* q = s_.q();
      std::size_t cnt = 0;
      for (std::size_t rr = 0; rr < s_.d.n_obs; ++rr) cnt += in_regime(q[rr], b);
      if (cnt <= static_cast<std::size_t>(s_.p))
        throw InvalidInput("regime " + std::to_string(reg + 1) + " of the " + std::to_string(K) +
                           "-threshold model has " + std::to_string(cnt) + " observations, no more than its " +
                           std::to_string(s_.p) + " regressor(s); use fewer thresholds or a larger --trim");
    }
  }

  // Hansen's conventions: sigma^2 = e'e / (N - n [- (T - 1)] - k); White and clustered
  // sandwiches HC0, without a small-sample factor; the clusters' scores summed over each
  // cluster's transformed rows. X becomes X e (one N x k matrix fewer to fault in).
  void add_coefficients(ThresholdModel& m, Mat& X, const Mat& XtXi, const Vec& beta, const Vec& e,
                        const std::vector<std::string>& names) const {
    const Panel& pn = s_.pn;
    const Eigen::Index kt = X.cols();
    const double s2 = m.ssr / (static_cast<double>(pn.N()) - static_cast<double>(pn.n) -
                               (o_.time_effects ? static_cast<double>(pn.T - 1) : 0.0) - static_cast<double>(kt));
    const Mat meat_c = detail::cluster_meat(X.data(), e.data(), pn.N(), static_cast<std::size_t>(kt), s_.cluster.data(),
                                            s_.n_clusters);
    const Mat Vc = XtXi * meat_c * XtXi;
    Mat& Xe = X;
    Xe.array().colwise() *= e.array();
    const Mat meat = Xe.transpose() * Xe;
    const Mat Vw = XtXi * meat * XtXi;
    for (Eigen::Index j = 0; j < kt; ++j)
      m.coefficients.push_back({names[static_cast<std::size_t>(j)], beta(j), std::sqrt(s2 * XtXi(j, j)),
                                std::sqrt(Vw(j, j)), std::sqrt(Vc(j, j))});
  }

  void record_regimes(const std::vector<double>& thv, ThresholdResult& res) const {
    const Column& unit = df_.column(o_.sample.panel_id);
    const DoubleSpan time = df_.numeric(o_.sample.panel_time);
    for (std::size_t rr = 0; rr < s_.d.n_obs; ++rr) {
      int reg = 1;
      for (double g : thv) reg += !below(s_.q()[rr], g);
      const std::size_t row = s_.d.rows.empty() ? rr : s_.d.rows[rr];
      res.regimes.push_back({unit.text(row), time[row], s_.q()[rr], reg});
    }
  }

  const DataFrame& df_;
  const Sample& s_;
  const Transformed& t_;
  const ThresholdOptions& o_;
};

// What the sample's search, the models and the bootstrap read.
struct Context {
  const ThresholdOptions& o;
  const Sample& s;
  const Transformed& t;
  const Grid& g;
  const GridProjector& proj;
  const BackendGram& gram;
  const Searcher& sr;
  const ModelFitter& fitter;
  Vec r;          // W'My
  double S0 = 0;  // |My|^2
};

// Per grid point, what the sample's searches found there: the confidence sets of a threshold
// found at it, and (robust CI) the search that found it.
struct SearchSets {
  std::vector<std::pair<double, double>> ci95, ci99, cil;
  std::vector<Stage> stage;
};

// One search of the sample given the fixed points, its confidence sets recorded.
Stage search_stage(const Context& c, const std::vector<int>& fixed, double trim, SearchSets& sets,
                   const ThresholdResult& res) {
  Stage st = c.sr.search(c.r, c.S0, fixed, trim);
  if (st.best < 0) return st;
  const double s2 = st.ssr_best / c.s.Nd;
  const std::vector<double>& grid = c.g.points;
  sets.ci95[st.best] = conf_set(st, grid, s2, res.c95);
  sets.ci99[st.best] = conf_set(st, grid, s2, res.c99);
  sets.cil[st.best] = conf_set(st, grid, s2, res.c_level);
  if (c.o.robust_ci) sets.stage[st.best] = st;
  return st;
}

// Adds threshold k to `fixed` (the first refined once the second is fixed, in the same window),
// records F_k against S_prev (the (k-1)-threshold model's SSR) and, for k = 1, the LR curve;
// returns the k-threshold model's SSR.
double add_threshold(const Context& c, int k, std::vector<int>& fixed, double S_prev, SearchSets& sets,
                     std::vector<double>& F, ThresholdResult& res) {
  const double tr = trim_at(c.o.trim, static_cast<std::size_t>(k - 1));
  const Stage st = search_stage(c, fixed, tr, sets, res);
  if (st.best < 0) throw InvalidInput("no grid point is left for threshold " + std::to_string(k) + "; lower --trim");
  const double s2 = st.ssr_best / c.s.Nd;
  if (k == 1)
    for (std::size_t g = 0; g < c.g.points.size(); ++g) {
      res.ssr_curve.push_back(st.ssr[g]);
      res.lr_gamma.push_back(c.g.points[g]);
      res.lr_value.push_back((st.ssr[g] - st.ssr_best) / s2);
    }
  F.push_back((S_prev - st.ssr_best) / s2);
  fixed.push_back(st.best);
  if (k != 2) return st.ssr_best;
  const Stage rf = search_stage(c, {fixed[1]}, tr, sets, res);
  fixed[0] = rf.best;
  return rf.ssr_best;
}

// Hansen (2000)'s set for the si-th threshold t (in increasing order) of model m:
// {g : (S(g) - S(g^)) / (sigma^2 eta^2) < c}, eta^2 from this model at g^, d the slope change of
// the regime regressors between the regimes on either side.
void add_robust_sets(const Context& c, const FitOut& f, std::size_t si, int t, std::size_t K, const SearchSets& sets,
                     ThresholdModel& m, ThresholdResult& res) {
  const std::vector<double>& grid = c.g.points;
  const std::size_t kz = c.s.kz;
  Vec dx = Vec::Zero(static_cast<Eigen::Index>(c.s.pn.N()));
  for (int j = 0; j < c.s.p; ++j) {
    const Eigen::Index lo = static_cast<Eigen::Index>(kz + j * (K + 1) + si);
    dx += (f.beta(lo + 1) - f.beta(lo)) * c.t.XL.col(static_cast<Eigen::Index>(kz + j));
  }
  const Eta eta = hansen_eta(dx.cwiseProduct(dx), f.e, c.t.qt, grid[t], c.o.robust_kernel);
  const double eta2 = eta.scale / (f.model.ssr / c.s.Nd);
  if (!(eta.scale > 0) || !std::isfinite(eta.scale))
    throw InvalidInput("--robust-ci: the heteroskedasticity scale eta^2 at threshold " + std::to_string(grid[t]) +
                       " is not positive (" + std::to_string(eta2) +
                       "); try --robust-ci-method quadratic, or the homoskedastic sets");
  const Stage& st = sets.stage[t];
  m.ci95.push_back(conf_set(st, grid, eta.scale, res.c95));
  m.ci99.push_back(conf_set(st, grid, eta.scale, res.c99));
  m.ci.push_back(conf_set(st, grid, eta.scale, res.c_level));
  m.ci95_homo.push_back(sets.ci95[t]);
  m.ci99_homo.push_back(sets.ci99[t]);
  m.eta2.push_back(eta2);
  m.eta_bandwidth.push_back(eta.bandwidth);
  if (m.n_thresholds == 1) res.lr_robust_factor = (st.ssr_best / c.s.Nd) / eta.scale;
}

// The k-threshold model's confidence sets, one per threshold in increasing order.
void add_sets(const Context& c, const FitOut& f, const std::vector<int>& fixed, const SearchSets& sets,
              ThresholdModel& m, ThresholdResult& res) {
  std::vector<int> sorted = fixed;
  std::sort(sorted.begin(), sorted.end(), [&](int a, int b) { return c.g.points[a] < c.g.points[b]; });
  for (std::size_t si = 0; si < sorted.size(); ++si) {
    const int t = sorted[si];
    if (c.o.robust_ci) {
      add_robust_sets(c, f, si, t, sorted.size(), sets, m, res);
    } else {
      m.ci95.push_back(sets.ci95[t]);
      m.ci99.push_back(sets.ci99[t]);
      m.ci.push_back(sets.cil[t]);
    }
  }
}

// The sequential search on the sample: for each k the threshold it adds, F_k, and the model with
// its sets. Returned: each F_k and the fitted values of each model (the bootstrap's null for k + 1).
std::pair<std::vector<double>, std::vector<Vec>> sample_search(const Context& c, ThresholdResult& res) {
  const std::size_t n = c.g.points.size();
  SearchSets sets{std::vector<std::pair<double, double>>(n), std::vector<std::pair<double, double>>(n),
                  std::vector<std::pair<double, double>>(n), std::vector<Stage>(c.o.robust_ci ? n : 0)};
  std::vector<int> fixed;
  std::vector<double> F;
  std::vector<Vec> fitted_of;
  double S_prev = c.S0;
  for (int k = 1; k <= c.o.n_thresholds; ++k) {
    S_prev = add_threshold(c, k, fixed, S_prev, sets, F, res);
    std::vector<double> thv;
    for (int t : fixed) thv.push_back(c.g.points[t]);
    FitOut f = c.fitter.fit(thv, res);  // also records each observation's regime
    fitted_of.push_back(f.fitted);
    ThresholdModel m = f.model;
    add_sets(c, f, fixed, sets, m, res);
    res.models.push_back(m);
  }
  return {F, fitted_of};
}

// Fixed thresholds (--gammas): the model and its F against the linear one, no search and no
// bootstrap.
void given_thresholds(const Context& c, ThresholdResult& res) {
  ThresholdModel m = c.fitter.fit(c.o.gammas, res).model;
  m.notes.push_back("thresholds given (--gammas): no search, no confidence sets, no bootstrap");
  ThresholdTest t;
  t.k = static_cast<int>(c.o.gammas.size());
  t.F = (c.S0 - m.ssr) / (m.ssr / c.s.Nd);
  t.p_value = std::numeric_limits<double>::quiet_NaN();
  res.models.push_back(m);
  res.tests.push_back(t);
}

// The p-value (the share of F* above F) and the critical values at 10%, 5% and 1%.
void summarize_fstar(std::vector<double> fstar, ThresholdTest& t) {
  const std::int64_t B = t.n_boot;
  std::int64_t exceed = 0;
  for (double f : fstar) exceed += f > t.F;
  t.p_value = static_cast<double>(exceed) / static_cast<double>(B);
  std::sort(fstar.begin(), fstar.end());
  for (double qv : {0.90, 0.95, 0.99}) {
    const std::int64_t idx = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::ceil(qv * B)) - 1, 0, B - 1);
    t.crit.push_back(fstar[static_cast<std::size_t>(idx)]);
  }
}

// The bootstrap of test k against k - 1: the (k-1)-threshold model's fitted values plus residual
// blocks of individuals drawn with replacement (or sign-flipped, --bootstrap wild); thresholds
// re-estimated sequentially with the window trim[k-1] at every stage and no refinement.
ThresholdTest bootstrap_test(const Context& c, int k, double F, const Vec& fitted, const Backend& backend,
                             ThresholdResult& res) {
  ThresholdTest t;
  t.k = k;
  t.F = F;
  t.n_boot = c.o.n_boot;
  if (c.o.n_boot == 0) return t;
  const Vec resid = c.t.y - fitted;
  // the backend's per-replication data (kernels/threshold_boot.hpp; the sizes were checked
  // against its limits at the start)
  ThresholdBootSpec sp;
  kernels::ThresholdBootView& v = sp.view;
  v = c.proj.view();
  v.fitted = fitted.data();
  v.resid = resid.data();
  v.qnt = static_cast<int>(std::lround(c.g.qn * trim_at(c.o.trim, static_cast<std::size_t>(k - 1))));
  v.k = k;
  v.n_scale = c.s.Nd;
  v.seed = c.o.seed;
  v.wild = c.o.bootstrap_wild;
  sp.n_boot = c.o.n_boot;
  sp.min_team_work = c.o.min_team_work;
  t.work_per_replication = kernels::threshold_work_per_replication(v);
  const TaskSpec task{"F" + std::to_string(k) + ": " + std::to_string(k) + " against " + std::to_string(k - 1) +
                          " thresholds",
                      static_cast<std::uint64_t>(c.o.n_boot), 1, 0, 1};
  ProgressReporter progress("threshold bootstrap of F" + std::to_string(k), "replications",
                            planned_replications(c.o.runner, task), c.o.progress);
  sp.progress = &progress;
  std::vector<double> fstar;
  if (!c.o.runner) {
    fstar = backend.threshold_fstar(sp, c.gram);
  } else {
    fstar = c.o.runner->run(task, [&](RepRange r) {
      ThresholdBootSpec part = sp;
      part.b0 = static_cast<std::int64_t>(r.begin);
      part.n_boot = static_cast<std::int64_t>(r.size());
      return Segment{r, {}, backend.threshold_fstar(part, c.gram)};
    }, &progress).values;
    if (!c.o.runner->complete()) return t;  // a shard's share: no p-value or critical values
  }
  progress.finish();
  res.fstar.emplace_back(fstar.begin(), fstar.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(c.o.trace, fstar.size())));
  summarize_fstar(std::move(fstar), t);
  return t;
}

void bootstrap_tests(const Context& c, const std::vector<double>& F, const std::vector<Vec>& fitted_of,
                     const Backend& backend, ThresholdResult& res) {
  for (int k = 1; k <= c.o.n_thresholds; ++k) {
    const std::size_t ki = static_cast<std::size_t>(k - 1);
    const Vec fitted = k == 1 ? Vec(c.t.y - c.proj.residual(c.t.y)) : fitted_of[ki - 1];
    res.tests.push_back(bootstrap_test(c, k, F[ki], fitted, backend, res));
  }
}

}  // namespace

std::size_t threshold_draw(std::uint64_t seed, int k, std::uint64_t b, std::size_t i, std::size_t n) {
  return static_cast<std::size_t>(kernels::threshold_draw_unit(seed, k, b, i, n));
}

// The stages: the sample (formula, design, panel), the grid, the transformed data and the grid's
// projections, then either the given thresholds' model or the search with its models and sets,
// then the bootstrap tests.
ThresholdResult estimate_threshold(const DataFrame& df, const ThresholdOptions& o, const Backend& backend) {
  const auto t_start = Clock::now();
  check_options(o);
  ThresholdResult res;
  res.backend = backend.name();
  const Sample s = make_sample(df, o, res);
  note_departures(o, res);
  const Grid g = make_grid(s, o, res);
  const Transformed t = transform_sample(s);
  std::vector<const double*> xs;
  for (int j = 0; j < s.p; ++j) xs.push_back(s.col(s.kz + j));
  const GridProjector proj(s.pn, s.unit().code, g.q_order, xs, s.q(), g.points, o.xthreg, t.Q);
  const GridGram G(proj);
  const BackendGram bgram(G, g.points.size(), s.p);
  const Searcher sr(proj.view(), bgram, g.qn);
  const ModelFitter fitter(df, s, t, o);
  Context c{o, s, t, g, proj, bgram, sr, fitter, Vec(), 0};
  c.r = proj.project(t.y, c.S0);
  res.ssr_linear = c.S0;
  res.c95 = -2.0 * std::log(1.0 - std::sqrt(0.95));
  res.c99 = -2.0 * std::log(1.0 - std::sqrt(0.99));
  res.c_level = -2.0 * std::log(1.0 - std::sqrt(o.level));
  if (!o.gammas.empty()) {
    given_thresholds(c, res);
    return res;
  }
  const auto t_setup = Clock::now();
  const auto [F, fitted_of] = sample_search(c, res);
  const auto t_search = Clock::now();
  bootstrap_tests(c, F, fitted_of, backend, res);
  const auto t_end = Clock::now();
  res.timing = {{"setup_s", seconds_between(t_start, t_setup)}, {"search_s", seconds_between(t_setup, t_search)},
                {"bootstrap_s", seconds_between(t_search, t_end)}};
  return res;
}

}  // namespace panelboot
