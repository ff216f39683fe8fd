#pragma once
// The wild bootstrap's host side (internal to the engine library): the reduction of a fitted
// model and its residual parts to the cluster-level pieces of a WildProblem (see wild.hpp for
// the algebra), and the p-value rules. Used by `wild` (one problem per test) and `power` (one
// restriction, new residual parts per simulated dataset).
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include "panelboot/backend.hpp"
#include "panelboot/design.hpp"
#include "panelboot/error.hpp"
#include "panelboot/estimate.hpp"
#include "panelboot/wild.hpp"
#include "panelboot/within.hpp"

namespace panelboot::wild_detail {

using Mat = Eigen::MatrixXd;
using Vec = Eigen::VectorXd;

constexpr double kTieTol = 1e-10;
// Bootstrap statistics within this of the observed t count as ties (--ties).
inline double tie_tolerance(double t) { return kTieTol * std::max(std::fabs(t), 1e-300); }

// One clustering of the variance (error clusters c) together with its pairing to the
// bootstrap clusters g: pair_of[i] indexes the (c, g) cell of observation i.
struct Term {
  const Grouping* grouping;
  double weight;
  std::int32_t n_clu;
  std::vector<std::int32_t> pair_of, pair_c, pair_g;  // cells sorted by error cluster c
  std::vector<std::int32_t> row_ptr;                  // [n_clu + 1] the cells of cluster c
};

// Per restriction row j and term S: the u-independent pieces.
struct Geom {
  Mat P;  // C_S x k : sum_{i in c} x_i (x_i' a_j)
  Mat F;  // L x C_S : sum_{i in c} Dt_il (X a_j)_i
};

// Per residual part p: the u-dependent pieces.
struct Part {
  Mat Q;                                    // G x k : (A s_g)'
  Mat GW;                                   // L x G : pinv(Dt'Dt) Dt' (u 1_g)
  std::vector<Vec> C;                       // [j] G-vector a_j's_g
  std::vector<std::vector<Vec>> T1;         // [j][S] values on the (c, g) cells
};

// The replications that count against the null under the p-value type: a joint F counts the
// upper tail; an equal-tailed p-value counts the smaller tail (and doubles it).
inline std::int64_t exceedances(const BootCounts& c, PValueType type, bool joint) {
  if (joint) return c.upper;
  switch (type) {
    case PValueType::kSymmetric: return c.abs;
    case PValueType::kEqualTailed: return std::min(c.upper, c.lower);
    case PValueType::kLower: return c.lower;
    case PValueType::kUpper: return c.upper;
  }
  return 0;
}

// BootCounts as a replication range's counts (ReplicationRunner), and back: abs, upper, lower, finite.
constexpr std::size_t kBootCountFields = 4;
inline std::vector<std::int64_t> counts_of(const BootCounts& c) { return {c.abs, c.upper, c.lower, c.finite}; }
inline BootCounts counts_from(const std::vector<std::int64_t>& v) {
  BootCounts c;
  c.abs = v[0];
  c.upper = v[1];
  c.lower = v[2];
  c.finite = v[3];
  return c;
}

inline double p_from_counts(const BootCounts& c, PValueType type, bool joint) {
  if (c.finite == 0) return std::numeric_limits<double>::quiet_NaN();
  const double B = static_cast<double>(c.finite);
  const double e = static_cast<double>(exceedances(c, type, joint));
  return !joint && type == PValueType::kEqualTailed ? std::min(1.0, 2.0 * e / B) : e / B;
}

// Sorts a term's cells by error cluster (a counting sort, so each cluster's cells keep the order
// they were found in) and fills row_ptr: the CSR order the backends read.
inline void sort_cells_by_cluster(Term& t) {
  const std::size_t n_cells = t.pair_c.size();
  t.row_ptr.assign(static_cast<std::size_t>(t.n_clu) + 1, 0);
  for (std::int32_t c : t.pair_c) ++t.row_ptr[static_cast<std::size_t>(c) + 1];
  for (std::int32_t c = 0; c < t.n_clu; ++c) t.row_ptr[c + 1] += t.row_ptr[c];
  std::vector<std::int32_t> next(t.row_ptr.begin(), t.row_ptr.end() - 1), to(n_cells);
  std::vector<std::int32_t> c_sorted(n_cells), g_sorted(n_cells);
  for (std::size_t e = 0; e < n_cells; ++e) {
    const std::int32_t at = next[static_cast<std::size_t>(t.pair_c[e])]++;
    to[e] = at;
    c_sorted[at] = t.pair_c[e];
    g_sorted[at] = t.pair_g[e];
  }
  for (std::int32_t& e : t.pair_of) e = to[static_cast<std::size_t>(e)];
  t.pair_c = std::move(c_sorted);
  t.pair_g = std::move(g_sorted);
}

// The cells (error cluster c, bootstrap cluster g) of one variance term met in the data, in the
// order found, then sorted by c (sort_cells_by_cluster): the CSR the backends read (the OLS and
// the IV wild bootstrap alike).
inline Term term_cells(const ClusterTerm& ct, const Grouping& boot, std::size_t n) {
  Term t;
  t.grouping = ct.grouping;
  t.weight = ct.weight;
  t.n_clu = ct.grouping->n_levels;
  std::unordered_map<std::int64_t, std::int32_t> cell;
  t.pair_of.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t key = static_cast<std::int64_t>(ct.grouping->code[i]) * boot.n_levels + boot.code[i];
    auto it = cell.find(key);
    if (it == cell.end()) {
      it = cell.emplace(key, static_cast<std::int32_t>(t.pair_c.size())).first;
      t.pair_c.push_back(ct.grouping->code[i]);
      t.pair_g.push_back(boot.code[i]);
    }
    t.pair_of[i] = it->second;
  }
  sort_cells_by_cluster(t);
  return t;
}

// The fixed effects not nested in the bootstrap clusters, which the bootstrap residuals must be
// re-projected on (a nested FE is constant within a bootstrap cluster, so v_g u stays demeaned):
// Dt, their dummies with the nested dimensions projected out (weighted) and scaled by sqrt(w);
// Gi = pinv(Dt'Dt); L their levels (0: nothing to re-project).
struct FeReprojection {
  Mat Dt, Gi;
  Eigen::Index L = 0;
  std::vector<std::string> names;
};

inline FeReprojection fe_reprojection(const Design& d, const Grouping& boot) {
  FeReprojection out;
  const std::size_t n = d.n_obs;
  std::vector<const Grouping*> nested, other;
  for (const Grouping& g : d.fe) (nested_in(g, boot) ? nested : other).push_back(&g);
  for (const Grouping* g : other) {
    out.L += g->n_levels;
    out.names.push_back(g->name);
  }
  const Eigen::Index L = out.L;
  if (L == 0) return out;
  if (static_cast<double>(L) * static_cast<double>(n) > 2e8 || L > 5000)
    throw InvalidInput("the fixed effect(s) not nested in the bootstrap clusters have " + std::to_string(L) +
                       " levels on " + std::to_string(n) +
                       " observations, too many to re-project exactly; bootstrap by a coarser "
                       "cluster that nests them (--bootcluster), or absorb fewer levels");
  Mat& Dt = out.Dt;
  Dt = Mat::Zero(static_cast<Eigen::Index>(n), L);
  Eigen::Index col = 0;
  for (const Grouping* g : other)
    for (std::int32_t l = 0; l < g->n_levels; ++l, ++col)
      for (std::size_t i = 0; i < n; ++i) Dt(i, col) = g->code[i] == l ? 1.0 : 0.0;
  const double* w = d.w.empty() ? nullptr : d.w.data();
  if (!nested.empty()) {
    std::vector<FeView> views;
    for (const Grouping* g : nested) views.push_back({g->code.data(), g->n_levels});
    Demeaner dm(views, n, w);
    DemeanOptions o;
    o.tol = 1e-13;
    dm.demean(Dt.data(), static_cast<std::size_t>(L), n, o, {});
  }
  if (w)
    for (Eigen::Index l = 0; l < L; ++l)
      for (std::size_t i = 0; i < n; ++i) Dt(i, l) *= std::sqrt(w[i]);
  Eigen::SelfAdjointEigenSolver<Mat> es(Dt.transpose() * Dt);
  const Vec ev = es.eigenvalues();
  const double cut = 1e-10 * std::max(ev.maxCoeff(), 0.0);
  Vec inv(ev.size());
  for (Eigen::Index i = 0; i < ev.size(); ++i) inv(i) = ev(i) > cut ? 1.0 / ev(i) : 0.0;
  out.Gi = es.eigenvectors() * inv.asDiagonal() * es.eigenvectors().transpose();
  return out;
}

class WildEngine {
 public:
  WildEngine(const Design& d, const FitResult& fr, const Grouping& boot, std::vector<ClusterTerm> terms)
      : d_(d), fr_(fr), boot_(boot), cterms_(std::move(terms)) {
    n_ = d.n_obs;
    k_ = static_cast<Eigen::Index>(fr.beta.size());
    G_ = boot.n_levels;
    for (const ClusterTerm& ct : cterms_) terms_.push_back(term_cells(ct, boot, n_));
    FeReprojection fe = fe_reprojection(d, boot);
    L_ = fe.L;
    Dt_ = std::move(fe.Dt);
    Gi_ = std::move(fe.Gi);
    reprojected_ = std::move(fe.names);
    problem_layout();
  }

  const std::vector<std::string>& reprojected() const { return reprojected_; }

  // Sets up one test: rows R (q x k); parts = residual vectors.
  void setup(const Mat& R, const std::vector<const double*>& parts) {
    set_restriction(R);
    set_parts(parts);
  }

  // The u-independent pieces of a test with rows R (q x k): a = A R', X a, and per row and term
  // P and F. Kept for any number of set_parts calls (power: one per simulated dataset).
  void set_restriction(const Mat& R) {
    q_ = static_cast<int>(R.rows());
    const Mat a = fr_.bread * R.transpose();  // k x q
    Eigen::Map<const Mat> X(d_.X.data(), static_cast<Eigen::Index>(n_), k_);
    Xa_ = X * a;  // n x q
    geom_.assign(q_, std::vector<Geom>(terms_.size()));
    for (int j = 0; j < q_; ++j)
      for (std::size_t s = 0; s < terms_.size(); ++s) {
        const Term& t = terms_[s];
        Geom& g = geom_[j][s];
        g.P = Mat::Zero(t.n_clu, k_);
        for (Eigen::Index kk = 0; kk < k_; ++kk) {
          const double* x = d_.X.data() + kk * n_;
          double* p = g.P.data() + kk * t.n_clu;
          for (std::size_t i = 0; i < n_; ++i) p[t.grouping->code[i]] += x[i] * Xa_(i, j);
        }
        g.F = Mat::Zero(L_, t.n_clu);
        for (Eigen::Index l = 0; l < L_; ++l)
          for (std::size_t i = 0; i < n_; ++i) g.F(l, t.grouping->code[i]) += Dt_(i, l) * Xa_(i, j);
      }
    a_ = a;
  }

  // The u-dependent pieces of the residual parts (n_obs each), for the restriction set last.
  void set_parts(const std::vector<const double*>& parts) {
    const Mat& a = a_;
    parts_.clear();
    for (const double* u : parts) {
      Part p;
      Mat s = Mat::Zero(G_, k_);
      for (Eigen::Index kk = 0; kk < k_; ++kk) {
        const double* x = d_.X.data() + kk * n_;
        for (std::size_t i = 0; i < n_; ++i) s(boot_.code[i], kk) += x[i] * u[i];
      }
      p.Q = s * fr_.bread;
      Mat W = Mat::Zero(L_, G_);
      for (Eigen::Index l = 0; l < L_; ++l)
        for (std::size_t i = 0; i < n_; ++i) W(l, boot_.code[i]) += Dt_(i, l) * u[i];
      p.GW = L_ ? Mat(Gi_ * W) : Mat(0, G_);
      for (int j = 0; j < q_; ++j) {
        p.C.push_back(s * a.col(j));
        std::vector<Vec> t1;
        for (const Term& t : terms_) {
          Vec v = Vec::Zero(static_cast<Eigen::Index>(t.pair_c.size()));
          for (std::size_t i = 0; i < n_; ++i) v(t.pair_of[i]) += Xa_(i, j) * u[i];
          t1.push_back(std::move(v));
        }
        p.T1.push_back(std::move(t1));
      }
      parts_.push_back(std::move(p));
    }
  }

  // The backend's view of the test set up last: for each part, M1 = [a_j's_g rows; (A s_g)' ;
  // GW] so that M1 V gives the numerators and the shared factors at once; for each (j, S) either
  // a dense K (C_S x G) or the factored [P | F'] (C_S x (k + L)), whichever costs fewer flops.
  const WildProblem& problem() {
    WildProblem& pr = problem_;
    const std::size_t P = parts_.size(), S = terms_.size();
    double dense = 0, factored = static_cast<double>(pr.kl) * G_;
    for (int j = 0; j < q_; ++j)
      for (std::size_t s = 0; s < S; ++s) {
        dense += static_cast<double>(terms_[s].n_clu) * G_;
        factored += static_cast<double>(terms_[s].n_clu) * pr.kl + static_cast<double>(terms_[s].pair_c.size());
      }
    pr.q = q_;
    pr.n_part = static_cast<int>(P);
    pr.dense = dense <= factored;
    const std::size_t C = static_cast<std::size_t>(pr.row_off.back()), zs = P * static_cast<std::size_t>(q_);
    pr.m1.assign(P * pr.rows1() * static_cast<std::size_t>(G_), 0.0);
    pr.kd.assign(pr.dense ? zs * C * static_cast<std::size_t>(G_) : 0, 0.0);
    pr.t1.assign(pr.dense ? 0 : zs * static_cast<std::size_t>(pr.n_cells()), 0.0);
    pr.pf.assign(pr.dense ? 0 : static_cast<std::size_t>(q_) * C * static_cast<std::size_t>(pr.kl), 0.0);
    for (std::size_t p = 0; p < P; ++p) fill_m1(p);
    for (std::size_t p = 0; p < P; ++p)
      for (int j = 0; j < q_; ++j)
        for (std::size_t s = 0; s < S; ++s) {
          if (!pr.dense) {
            const Vec& t1 = parts_[p].T1[j][s];
            std::copy(t1.data(), t1.data() + t1.size(), pr.t1.data() + pr.t1_at(p, j, s));
            continue;
          }
          const Mat K = dense_map(p, j, s);
          double* kd = pr.kd.data() + pr.kd_at(p, j, s);
          for (Eigen::Index c = 0; c < K.rows(); ++c)
            for (std::int32_t g = 0; g < G_; ++g) kd[c * G_ + g] = K(c, g);
        }
    if (!pr.dense)
      for (int j = 0; j < q_; ++j)
        for (std::size_t s = 0; s < S; ++s) fill_pf(j, s);
    return pr;
  }

  // K (C_S x G) of part p, row j, term s: Z = K v.
  Mat dense_map(std::size_t p, int j, std::size_t s) const {
    const Term& t = terms_[s];
    Mat Ks = Mat::Zero(t.n_clu, G_);
    for (std::size_t e = 0; e < t.pair_c.size(); ++e)
      Ks(t.pair_c[e], t.pair_g[e]) += parts_[p].T1[j][s](static_cast<Eigen::Index>(e));
    Ks -= geom_[j][s].P * parts_[p].Q.transpose();
    if (L_) Ks -= geom_[j][s].F.transpose() * parts_[p].GW;
    return Ks;
  }

  // Dense K_S (C_S x G) and the numerator vector for q = 1 and one part: the Gray-code walk.
  void dense_maps(std::vector<Mat>& K, Vec& Cvec) const {
    K.clear();
    Cvec = parts_[0].C[0];
    for (std::size_t s = 0; s < terms_.size(); ++s) K.push_back(dense_map(0, 0, s));
  }
  const std::vector<Term>& terms() const { return terms_; }

 private:
  // The parts of the problem that every test shares: the terms, their cells (CSR), the offsets.
  void problem_layout() {
    WildProblem& pr = problem_;
    pr.n_clu = G_;
    pr.kl = static_cast<int>(k_ + L_);
    pr.row_off.assign(1, 0);
    pr.cell_off.assign(1, 0);
    for (const Term& t : terms_) {
      pr.n_rows.push_back(t.n_clu);
      pr.term_weight.push_back(t.weight);
      pr.row_off.push_back(pr.row_off.back() + t.n_clu);
      pr.cell_off.push_back(pr.cell_off.back() + static_cast<std::int64_t>(t.pair_c.size()));
      pr.row_ptr.insert(pr.row_ptr.end(), t.row_ptr.begin(), t.row_ptr.end());
      pr.cell_g.insert(pr.cell_g.end(), t.pair_g.begin(), t.pair_g.end());
    }
  }

  // M1 of part p: the numerator rows a_j's_g, then (factored form) (A s_g)' and GW.
  void fill_m1(std::size_t p) {
    const Part& pt = parts_[p];
    double* M = problem_.m1.data() + problem_.m1_at(p);
    for (int j = 0; j < q_; ++j)
      for (std::int32_t g = 0; g < G_; ++g) M[j * G_ + g] = pt.C[j](g);
    if (problem_.dense) return;
    for (Eigen::Index kk = 0; kk < k_; ++kk)
      for (std::int32_t g = 0; g < G_; ++g) M[(q_ + kk) * G_ + g] = pt.Q(g, kk);
    for (Eigen::Index l = 0; l < L_; ++l)
      for (std::int32_t g = 0; g < G_; ++g) M[(q_ + k_ + l) * G_ + g] = pt.GW(l, g);
  }

  // PF of row j, term s: [P | F'] (C_S x (k + L), row-major).
  void fill_pf(int j, std::size_t s) {
    const Geom& gm = geom_[j][s];
    double* pf = problem_.pf.data() + problem_.pf_at(static_cast<std::size_t>(j), s);
    const std::size_t kl = static_cast<std::size_t>(problem_.kl);
    for (std::size_t c = 0; c < static_cast<std::size_t>(terms_[s].n_clu); ++c) {
      for (Eigen::Index kk = 0; kk < k_; ++kk) pf[c * kl + kk] = gm.P(c, kk);
      for (Eigen::Index l = 0; l < L_; ++l) pf[c * kl + k_ + l] = gm.F(l, c);
    }
  }

  const Design& d_;
  const FitResult& fr_;
  const Grouping& boot_;
  std::vector<ClusterTerm> cterms_;
  std::size_t n_ = 0;
  Eigen::Index k_ = 0, L_ = 0;
  std::int32_t G_ = 0;
  int q_ = 1;
  std::vector<Term> terms_;
  Mat Dt_, Gi_, Xa_, a_;
  std::vector<std::string> reprojected_;
  std::vector<std::vector<Geom>> geom_;
  std::vector<Part> parts_;
  WildProblem problem_;
};

// Whether a run enumerates the sign vectors: always, or (auto) Rademacher weights with 2^G <= B.
inline bool enumerates(Enumerate e, WeightType w, std::int32_t G, std::int64_t n_boot) {
  const bool enum_auto = e == Enumerate::kAuto && w == WeightType::kRademacher && G < 62 && (std::int64_t{1} << G) <= n_boot;
  return e == Enumerate::kAlways || enum_auto;
}

// The stages wild.cpp runs and the IV bootstrap (wre.cpp) shares.
void check_options(const WildOptions& wo);
Grouping bootstrap_clusters(const Design& d, const WildOptions& wo);
WildResult fit_for_wild(Design& d, const FitOptions& fo, const WildOptions& wo, const Grouping& boot,
                        const Backend& backend);
std::vector<ClusterTerm> variance_terms(const Design& d, const FitOptions& fo, const FitResult& fr,
                                        const Grouping& boot, Grouping& obs);
struct TestSpec {
  std::string text;
  Mat R;
  Vec r;
};
std::vector<TestSpec> parse_tests(const WildOptions& wo, const FitResult& fr);
void refuse_zero_variance(const std::string& text, const Mat& R, const FitResult& fr, const Mat& RVR);
// The confidence set {r : p_at(r) > alpha}: a grid of 25 points around rb (half-width
// max(4, 2.5 crit) se, widened 3x up to 5 times until both ends reject), each boundary bisected to
// 1e-5 se; fills ci_low, ci_high, ci_pieces, ci_tol, ci_bounded and the note of `out`.
void invert_set(const std::function<double(double)>& p_at, double rb, double se, double crit, double alpha,
                WildTest& out);
void adjust_and_note(const WildOptions& wo, bool enumerate, std::int32_t G, WildResult& res);
// The IV wild bootstrap (wre.cpp): WRE/WUE and --ar, for a design with one endogenous regressor.
WildResult wre_bootstrap(Design& d, const FitOptions& fo, const WildOptions& wo, const Backend& backend,
                         WildTrace* trace);

}  // namespace panelboot::wild_detail
