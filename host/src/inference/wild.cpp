// The wild cluster bootstrap: the host reduces the data to cluster-level pieces (WildEngine)
// and a Backend evaluates the replications. See wild.hpp for the algebra.
#include "panelboot/wild.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <cstring>
#include <limits>
#include <unordered_map>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "estimate/detail.hpp"
#include "panelboot/distributions.hpp"
#include "panelboot/error.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/names.hpp"
#include "panelboot/progress.hpp"
#include "panelboot/within.hpp"

namespace panelboot {

std::string weight_type_name(WeightType w) { return name_of(kWeightTypeNames, w); }
std::string pvalue_type_name(PValueType p) { return name_of(kPValueTypeNames, p); }

namespace {

constexpr double kTieTol = 1e-10;
// Bootstrap statistics within this of the observed t count as ties (--ties).
double tie_tolerance(double t) { return kTieTol * std::max(std::fabs(t), 1e-300); }
using Mat = Eigen::MatrixXd;
using Vec = Eigen::VectorXd;

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
std::int64_t exceedances(const BootCounts& c, PValueType type, bool joint) {
  if (joint) return c.upper;
  switch (type) {
    case PValueType::kSymmetric: return c.abs;
    case PValueType::kEqualTailed: return std::min(c.upper, c.lower);
    case PValueType::kLower: return c.lower;
    case PValueType::kUpper: return c.upper;
  }
  return 0;
}

double p_from_counts(const BootCounts& c, PValueType type, bool joint) {
  if (c.finite == 0) return std::numeric_limits<double>::quiet_NaN();
  const double B = static_cast<double>(c.finite);
  const double e = static_cast<double>(exceedances(c, type, joint));
  return !joint && type == PValueType::kEqualTailed ? std::min(1.0, 2.0 * e / B) : e / B;
}

// Sorts a term's cells by error cluster (a counting sort, so each cluster's cells keep the order
// they were found in) and fills row_ptr: the CSR order the backends read.
void sort_cells_by_cluster(Term& t) {
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

class WildEngine {
 public:
  WildEngine(const Design& d, const FitResult& fr, const Grouping& boot, std::vector<ClusterTerm> terms)
      : d_(d), fr_(fr), boot_(boot), cterms_(std::move(terms)) {
    n_ = d.n_obs;
    k_ = static_cast<Eigen::Index>(fr.beta.size());
    G_ = boot.n_levels;
    for (const ClusterTerm& ct : cterms_) {
      Term t;
      t.grouping = ct.grouping;
      t.weight = ct.weight;
      t.n_clu = ct.grouping->n_levels;
      std::unordered_map<std::int64_t, std::int32_t> cell;
      t.pair_of.resize(n_);
      for (std::size_t i = 0; i < n_; ++i) {
        const std::int64_t key = static_cast<std::int64_t>(ct.grouping->code[i]) * G_ + boot.code[i];
        auto it = cell.find(key);
        if (it == cell.end()) {
          it = cell.emplace(key, static_cast<std::int32_t>(t.pair_c.size())).first;
          t.pair_c.push_back(ct.grouping->code[i]);
          t.pair_g.push_back(boot.code[i]);
        }
        t.pair_of[i] = it->second;
      }
      sort_cells_by_cluster(t);
      terms_.push_back(std::move(t));
    }
    build_fe_projection();
    problem_layout();
  }

  const std::vector<std::string>& reprojected() const { return reprojected_; }

  // Sets up one test: rows R (q x k); parts = residual vectors.
  void setup(const Mat& R, const std::vector<const double*>& parts) {
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

  // Dt: the dummies of the FE dimensions not nested in the bootstrap clusters, with the
  // nested dimensions projected out (weighted) and scaled by sqrt(w); Gi = pinv(Dt'Dt).
  void build_fe_projection() {
    std::vector<const Grouping*> nested, other;
    for (const Grouping& g : d_.fe) (nested_in(g, boot_) ? nested : other).push_back(&g);
    L_ = 0;
    for (const Grouping* g : other) {
      L_ += g->n_levels;
      reprojected_.push_back(g->name);
    }
    if (L_ == 0) return;
    if (static_cast<double>(L_) * static_cast<double>(n_) > 2e8 || L_ > 5000)
      throw InvalidInput("the fixed effect(s) not nested in the bootstrap clusters have " +
                         std::to_string(L_) + " levels on " + std::to_string(n_) +
                         " observations, too many to re-project exactly; bootstrap by a coarser "
                         "cluster that nests them (--bootcluster), or absorb fewer levels");
    Dt_ = Mat::Zero(static_cast<Eigen::Index>(n_), L_);
    Eigen::Index col = 0;
    for (const Grouping* g : other)
      for (std::int32_t l = 0; l < g->n_levels; ++l, ++col)
        for (std::size_t i = 0; i < n_; ++i) Dt_(i, col) = g->code[i] == l ? 1.0 : 0.0;
    const double* w = d_.w.empty() ? nullptr : d_.w.data();
    if (!nested.empty()) {
      std::vector<FeView> views;
      for (const Grouping* g : nested) views.push_back({g->code.data(), g->n_levels});
      Demeaner dm(views, n_, w);
      DemeanOptions o;
      o.tol = 1e-13;
      dm.demean(Dt_.data(), static_cast<std::size_t>(L_), n_, o, {});
    }
    if (w)
      for (Eigen::Index l = 0; l < L_; ++l)
        for (std::size_t i = 0; i < n_; ++i) Dt_(i, l) *= std::sqrt(w[i]);
    Eigen::SelfAdjointEigenSolver<Mat> es(Dt_.transpose() * Dt_);
    const Vec ev = es.eigenvalues();
    const double cut = 1e-10 * std::max(ev.maxCoeff(), 0.0);
    Vec inv(ev.size());
    for (Eigen::Index i = 0; i < ev.size(); ++i) inv(i) = ev(i) > cut ? 1.0 / ev(i) : 0.0;
    Gi_ = es.eigenvectors() * inv.asDiagonal() * es.eigenvectors().transpose();
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
  Mat Dt_, Gi_, Xa_;
  std::vector<std::string> reprojected_;
  std::vector<std::vector<Geom>> geom_;
  std::vector<Part> parts_;
  WildProblem problem_;
};

// A restriction whose cluster-robust variance is numerically zero (kZeroSeRel of its scale) has
// no t statistic, so neither the bootstrap nor the CI means anything: an error, never stars.
void refuse_zero_variance(const std::string& text, const Eigen::MatrixXd& R, const FitResult& fr,
                          const Eigen::MatrixXd& RVR) {
  const Eigen::VectorXd Rb = R * fr.beta;
  const Eigen::MatrixXd RAR = R * fr.bread * R.transpose();
  for (Eigen::Index j = 0; j < R.rows(); ++j) {
    const double se = RVR(j, j) > 0 ? std::sqrt(RVR(j, j)) : 0.0;
    const double se_iid = fr.sigma * std::sqrt(std::max(RAR(j, j), 0.0));
    if (!se_is_zero(se, Rb(j), se_iid)) continue;
    char buf[128];
    std::snprintf(buf, sizeof buf, " (%.3g, against %.6g and a homoskedastic SE of %.3g)", se, Rb(j), se_iid);
    const std::int32_t g = fr.min_clusters();
    const std::string kind = g ? "cluster-robust" : "heteroskedasticity-robust";
    throw InvalidInput("--test '" + text + "': the " + kind + " standard error of the restriction is numerically zero" +
                       buf + (g ? " with " + std::to_string(g) + " clusters" : std::string()) +
                       ", so its t statistic and the bootstrap are undefined; use more clusters or fewer fixed effects");
  }
}

// The memory of one test's replications, checked before they start: each thread's batch
// buffers (--chunk replications at a time) and, for the CI, the coefficients of every
// replication (n0, d0, and n1, d1, d2 under WCR).
void check_wild_memory(const WildProblem& pr, const WildRunOptions& o, const std::string& test,
                       std::uint64_t max_memory) {
  const double chunk = static_cast<double>(std::min<std::uint64_t>(o.chunk ? o.chunk : default_wild_chunk(pr), o.n_rep));
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  const double batches = threads * chunk * wild_batch_bytes_per_replication(pr);
  const double kept = o.keep_coefs ? static_cast<double>(o.n_rep) * 8.0 * (pr.n_part == 2 ? 5 : 2) : 0.0;
  std::string what = "the wild bootstrap of '" + test + "' (";
  if (o.keep_coefs) what += std::to_string(o.n_rep) + " replications kept for its confidence interval, ";
  what += "batches of " + std::to_string(static_cast<long long>(chunk)) + " on " + std::to_string(threads) +
          (threads == 1 ? " thread)" : " threads)");
  check_memory(batches + kept, max_memory, what,
               o.keep_coefs ? "lower --B, or add --no-ci: without the interval the counts take constant memory"
                            : "lower --chunk (0 chooses it) or --threads");
}

// Each CI boundary's bisection stops after this many halvings (2^-200 of the bracket is far
// below any tolerance in double precision).
constexpr int kMaxBisections = 200;

// Confidence set {r : p(r) > alpha} by a grid bracket and bisection on r.
void invert(const WildReplicates& reps, double rb, double se, double crit, const WildOptions& wo, WildTest& out) {
  const double alpha = 1.0 - wo.level;
  const bool inclusive = wo.ties == Ties::kInclusive;
  auto p_at = [&](double r) {
    const double delta = rb - r;
    const double t = delta / se;
    return p_from_counts(reps.count(delta, t, tie_tolerance(t), inclusive), wo.pvalue, false);
  };
  double half = std::max(4.0, 2.5 * crit) * se;
  const int n_grid = 24;
  std::vector<double> rs, ps;
  for (int expand = 0; expand < 6; ++expand) {
    rs.clear();
    ps.clear();
    for (int i = 0; i <= n_grid; ++i) {
      const double r = rb - half + 2 * half * i / n_grid;
      rs.push_back(r);
      ps.push_back(p_at(r));
    }
    if (ps.front() <= alpha && ps.back() <= alpha) break;
    half *= 3;
  }
  if (ps.front() > alpha || ps.back() > alpha) {
    out.note = "confidence set unbounded within +-" + std::to_string(half / se) + " standard errors";
  }
  const double tol = 1e-5 * se;
  out.ci_tol = tol;
  // boundaries between accepted (p > alpha) and rejected grid points, refined by bisection
  std::vector<std::pair<double, double>> pieces;
  bool in = ps[0] > alpha;
  double start = rs[0];
  for (int i = 1; i <= n_grid; ++i) {
    const bool now = ps[i] > alpha;
    if (now == in) continue;
    double lo = rs[i - 1], hi = rs[i];  // p(lo) on the `in` side
    // bisection to the tolerance, or until the interval cannot be halved in floating point
    for (int it = 0; it < kMaxBisections && hi - lo > tol; ++it) {
      const double mid = 0.5 * (lo + hi);
      if (mid <= lo || mid >= hi) break;
      ((p_at(mid) > alpha) == in ? lo : hi) = mid;
    }
    const double edge = 0.5 * (lo + hi);
    if (in) pieces.emplace_back(start, edge);
    else start = edge;
    in = now;
  }
  if (in) pieces.emplace_back(start, rs.back());
  out.ci_pieces = pieces;
  out.ci_available = !pieces.empty();
  if (!pieces.empty()) {
    out.ci_low = pieces.front().first;
    out.ci_high = pieces.back().second;
    if (pieces.size() > 1) out.note = "the confidence set is made of " + std::to_string(pieces.size()) + " disjoint pieces";
  } else {
    out.note = "the confidence set is empty at this level";
  }
}

// The stages of wild_bootstrap, in order.

// 1. The options no run can start with.
void check_options(const WildOptions& wo) {
  if (wo.tests.empty()) throw InvalidInput("wild needs at least one --test, e.g. --test 'x = 0'");
  if (wo.n_boot < 1) throw InvalidInput("--B must be a positive number of replications");
  if (wo.enumerate == Enumerate::kAlways && wo.weight != WeightType::kRademacher)
    throw InvalidInput("--enumerate always needs --weight-type rademacher (only sign vectors can be "
                       "enumerated); drop --enumerate or use Rademacher weights");
  if (!(wo.level > 0 && wo.level < 1)) throw InvalidInput("--level must be between 0 and 1");
}

// 2. The bootstrap clusters, chosen before the fit consumes the design.
Grouping bootstrap_clusters(const Design& d, const WildOptions& wo) {
  Grouping boot;
  if (d.clusters.empty()) {  // heteroskedastic wild bootstrap: every observation its own cluster
    boot.name = "(observation)";
    boot.n_levels = static_cast<std::int32_t>(d.n_obs);
    boot.code.resize(d.n_obs);
    for (std::size_t i = 0; i < d.n_obs; ++i) boot.code[i] = static_cast<std::int32_t>(i);
  } else if (wo.bootcluster == "intersection") {
    std::vector<const Grouping*> gs;
    for (const Grouping& g : d.clusters) gs.push_back(&g);
    boot = gs.size() == 1 ? *gs[0] : detail::intersect(gs);
    boot.name = "intersection";
  } else if (!wo.bootcluster.empty()) {
    if (d.extra.empty()) throw InvalidInput("--bootcluster " + wo.bootcluster + " is not in the design");
    boot = d.extra[0];
  } else {
    const Grouping* best = &d.clusters[0];
    for (const Grouping& g : d.clusters)
      if (g.n_levels < best->n_levels) best = &g;
    boot = *best;
  }
  if (boot.n_levels < 2)
    throw InvalidInput("the bootstrap clustering '" + boot.name +
                       "' has a single level in the sample; the wild bootstrap needs at least two");
  return boot;
}

// 3. The fit (consuming the design; the scaled residuals stay in d.y) and the result's header.
WildResult fit_for_wild(Design& d, const FitOptions& fo, const WildOptions& wo, const Grouping& boot,
                        const Backend& backend) {
  WildResult res;
  FitOptions fopts = fo;
  fopts.vcov = d.clusters.empty() ? VcovType::kHc1 : VcovType::kCluster;
  fopts.wald.clear();
  res.fit = fit(d, fopts);
  res.method = wo.impose_null ? "WCR" : "WCU";
  res.weight_type = weight_type_name(wo.weight);
  res.bootcluster = boot.name;
  res.n_bootclusters = boot.n_levels;
  res.seed = wo.seed;
  res.backend = backend.name();
  return res;
}

// 4. The variance terms: the fit's clusterings, or HC1 with each observation its own cluster
// (`obs`, which must outlive the terms).
std::vector<ClusterTerm> variance_terms(const Design& d, const FitOptions& fo, const FitResult& fr,
                                        const Grouping& boot, Grouping& obs) {
  const std::size_t n = d.n_obs;
  if (!d.clusters.empty()) return clustering_terms(d.clusters, fo.multiway_adj, static_cast<double>(n), fr.dof_k);
  obs = boot;
  ClusterTerm t;
  t.grouping = &obs;
  t.weight = static_cast<double>(n) / (static_cast<double>(n) - fr.dof_k);
  return {t};
}

// 5. The tests: the joint one first (--joint), then one per restriction row.
struct TestSpec {
  std::string text;
  Eigen::MatrixXd R;
  Eigen::VectorXd r;
};

std::vector<TestSpec> parse_tests(const WildOptions& wo, const FitResult& fr) {
  std::vector<std::string> names;
  for (const auto& c : fr.coefficients) names.push_back(c.name);
  const Eigen::Index k = static_cast<Eigen::Index>(fr.beta.size());
  std::vector<LinearRestriction> all_rows;
  for (const std::string& t : wo.tests) {
    std::vector<LinearRestriction> rows;
    try {
      rows = parse_restrictions(t, names);
    } catch (const InvalidInput& e) {
      for (const std::string& dname : fr.dropped)
        if (t.find(dname.substr(0, dname.find(' '))) != std::string::npos)
          throw InvalidInput("--test '" + t + "': coefficient " + dname + " was dropped, so it cannot be tested");
      throw;
    }
    for (auto& rrow : rows) all_rows.push_back(rrow);
  }
  std::vector<TestSpec> specs;
  if (wo.joint) {
    TestSpec s;
    s.R.resize(static_cast<Eigen::Index>(all_rows.size()), k);
    s.r.resize(static_cast<Eigen::Index>(all_rows.size()));
    for (std::size_t i = 0; i < all_rows.size(); ++i) {
      s.R.row(static_cast<Eigen::Index>(i)) = all_rows[i].R.transpose();
      s.r(static_cast<Eigen::Index>(i)) = all_rows[i].r;
      s.text += (i ? ", " : "") + all_rows[i].text;
    }
    specs.push_back(s);
  }
  for (const auto& row : all_rows) specs.push_back({row.text, row.R.transpose(), Eigen::VectorXd::Constant(1, row.r)});
  return specs;
}

// 6. Whether the replications enumerate the sign vectors (and the note on a small B).
bool plan_enumeration(const WildOptions& wo, std::int32_t G, WildResult& res) {
  const bool enum_auto = wo.enumerate == Enumerate::kAuto && wo.weight == WeightType::kRademacher &&
                         G < 62 && (std::int64_t{1} << G) <= wo.n_boot;
  const bool enumerate = wo.enumerate == Enumerate::kAlways || enum_auto;
  if (enumerate && G > 40)
    throw InvalidInput("--enumerate always with " + std::to_string(G) +
                       " bootstrap clusters would take 2^" + std::to_string(G) +
                       " sign vectors; use random draws (--enumerate never)");
  if (wo.enumerate == Enumerate::kNever || !enumerate) {
    if (wo.n_boot < 99) res.notes.push_back("B = " + std::to_string(wo.n_boot) + " is below 99: the p-value is coarse");
  }
  return enumerate;
}

// What every test of one call shares.
struct WildContext {
  const FitResult& fr;
  const WildOptions& wo;
  const Backend& backend;
  Eigen::Map<const Eigen::MatrixXd> X;
  const std::vector<double>& uhat;  // the unrestricted residuals (scaled)
  std::int32_t G;
  bool enumerate;
  std::size_t trace_keep;
};

// 7a. The observed statistic (t, or the joint F) and its CRVE p-value; returns R b - r.
Eigen::VectorXd observed_statistic(const TestSpec& sp, const FitResult& fr, WildTest& out, double& se) {
  const Eigen::VectorXd diff = sp.R * fr.beta - sp.r;
  const Eigen::MatrixXd RVR = sp.R * fr.vcov * sp.R.transpose();
  refuse_zero_variance(sp.text, sp.R, fr, RVR);
  se = 0;
  if (out.q > 1) {
    out.stat = wald_f(diff, RVR, "--joint");
    out.crve_p_value = f_upper_p(out.stat, out.q, fr.df_inference);
  } else {
    se = std::sqrt(RVR(0, 0));
    out.stat = diff(0) / se;
    out.crve_p_value = t_two_sided_p(out.stat, fr.df_inference);
  }
  return diff;
}

// 7b. The residual parts: WCR with a CI carries u(delta) = uhat + delta h (two parts); otherwise
// one vector, u_tilde (WCR: uhat moved onto the null; WCU: uhat).
struct Residuals {
  std::vector<double> u_tilde, h;
  std::vector<const double*> parts;
};

void residual_parts(const WildContext& cx, const TestSpec& sp, const Eigen::VectorXd& diff, bool two_parts,
                    Residuals& rs) {
  const FitResult& fr = cx.fr;
  const std::size_t n = cx.uhat.size();
  const Eigen::MatrixXd RAR = sp.R * fr.bread * sp.R.transpose();
  const Eigen::VectorXd h_dir = cx.X * (fr.bread * sp.R.transpose() * RAR.inverse()).eval().col(0);
  rs.u_tilde.resize(n);
  rs.h.resize(n);
  if (cx.wo.impose_null) {
    const Eigen::VectorXd shift = cx.X * (fr.bread * sp.R.transpose() * RAR.inverse() * diff);
    for (std::size_t i = 0; i < n; ++i) rs.u_tilde[i] = cx.uhat[i] + shift(static_cast<Eigen::Index>(i));
  } else {
    rs.u_tilde = cx.uhat;
  }
  for (std::size_t i = 0; i < n; ++i) rs.h[i] = h_dir(static_cast<Eigen::Index>(i));
  if (two_parts) {
    rs.parts = {cx.uhat.data(), rs.h.data()};
  } else {
    rs.parts = {rs.u_tilde.data()};
  }
}

// 7c. Exact enumeration by a Gray-code walk (kernels/gray_walk.hpp) with H = sum_S w_S K_S'K_S
// (G x G): O(G) per sign vector.
BootCounts run_gray_walk(const WildContext& cx, const WildEngine& eng, const TestSpec& sp, WildTest& out) {
  const std::int32_t G = cx.G;
  std::vector<Eigen::MatrixXd> K;
  Eigen::VectorXd Cv;
  eng.dense_maps(K, Cv);
  Eigen::MatrixXd H = Eigen::MatrixXd::Zero(G, G);
  for (std::size_t s = 0; s < K.size(); ++s) H += eng.terms()[s].weight * K[s].transpose() * K[s];
  kernels::GrayProblem gp;
  gp.H = H.data();
  gp.C = Cv.data();
  gp.n_clu = G;
  gp.t = out.stat;
  gp.tol = tie_tolerance(out.stat);
  gp.inclusive = cx.wo.ties == Ties::kInclusive;
  ProgressReporter progress("enumeration of 2^" + std::to_string(G) + " sign vectors for '" + sp.text + "'",
                            "sign-vector pairs", std::uint64_t{1} << (G - 1), cx.wo.progress);
  const BootCounts total = cx.backend.wild_enumerate(gp, &progress);
  out.enumerated = true;
  out.n_boot = static_cast<std::int64_t>(std::uint64_t{1} << G);
  if (cx.wo.ci) out.note = "no CI: with " + std::to_string(G) + " clusters the enumeration is walked, not stored";
  return total;
}

// 7d. The replications on the backend (drawn, or every sign vector stored), counted at the
// observed statistic; with the CI, kept and inverted.
BootCounts run_replications(const WildContext& cx, WildEngine& eng, const TestSpec& sp, double se,
                            double delta0, WildTest& out, std::vector<double>* trace) {
  const WildOptions& wo = cx.wo;
  const bool joint = out.q > 1, want_ci = wo.ci && !joint;
  const WildProblem& pr = eng.problem();
  WildRunOptions o;
  o.seed = wo.seed;
  o.weight = wo.weight;
  o.enumerate = cx.enumerate;
  o.n_rep = cx.enumerate ? (std::uint64_t{1} << (cx.G - 1)) : static_cast<std::uint64_t>(wo.n_boot);
  o.chunk = wo.chunk;
  o.trace_keep = cx.trace_keep;
  o.count_delta = joint ? 0.0 : delta0;
  o.count_t = out.stat;
  o.count_tol = tie_tolerance(out.stat);
  o.inclusive = wo.ties == Ties::kInclusive;
  o.keep_coefs = want_ci;
  o.min_team_work = wo.min_team_work;
  check_wild_memory(pr, o, sp.text, wo.max_memory);
  ProgressReporter progress("wild bootstrap of '" + sp.text + "'", "replications", o.n_rep, wo.progress);
  o.progress = &progress;
  WildRun run = cx.backend.wild_replicates(pr, o);
  progress.finish();
  out.enumerated = cx.enumerate;
  out.n_boot = static_cast<std::int64_t>(cx.enumerate ? 2 * o.n_rep : o.n_rep);
  if (trace) *trace = run.trace;
  if (want_ci) {
    // WCU: n1 = d1 = d2 = 0, so t* does not depend on r; only the observed t(r) moves
    const double crit = t_quantile(1 - (1 - wo.level) / 2, cx.fr.df_inference);
    const double rb = (sp.R * cx.fr.beta)(0);
    invert(*run.reps, rb, se, crit, wo, out);
  }
  return run.counts;
}

// 7. One test, from its restriction to its p-value.
WildTest run_test(const WildContext& cx, WildEngine& eng, const TestSpec& sp, std::vector<double>* trace) {
  WildTest out;
  out.hypothesis = sp.text;
  out.q = static_cast<int>(sp.R.rows());
  const bool joint = out.q > 1;
  double se = 0;
  const Eigen::VectorXd diff = observed_statistic(sp, cx.fr, out, se);
  const bool gray = cx.enumerate && !joint && (cx.wo.force_gray || cx.G > 22);
  if (cx.enumerate && joint && cx.G > 22)
    throw InvalidInput("--joint with enumeration supports at most 22 bootstrap clusters; use --enumerate never");
  Residuals rs;
  residual_parts(cx, sp, diff, cx.wo.impose_null && cx.wo.ci && !joint && !gray, rs);
  eng.setup(sp.R, rs.parts);
  const BootCounts total = gray ? run_gray_walk(cx, eng, sp, out)
                                : run_replications(cx, eng, sp, se, joint ? 0.0 : diff(0), out, trace);
  out.n_finite = total.finite;
  out.n_exceed = exceedances(total, cx.wo.pvalue, joint);
  out.p_value = p_from_counts(total, cx.wo.pvalue, joint);
  return out;
}

// 8. The multiple-testing adjustment over the tests, and the run's notes.
void adjust_and_note(const WildOptions& wo, bool enumerate, std::int32_t G, WildResult& res) {
  const std::size_t m = res.tests.size();
  for (WildTest& t : res.tests) {
    const double p = t.p_value;
    switch (wo.padjust) {
      case PAdjust::kNone: t.p_value_adjusted = p; break;
      case PAdjust::kBonferroni: t.p_value_adjusted = std::min(1.0, p * m); break;
      case PAdjust::kSidak: t.p_value_adjusted = 1.0 - std::pow(1.0 - p, static_cast<double>(m)); break;
    }
  }
  if (enumerate) res.notes.push_back("exact enumeration of all 2^" + std::to_string(G) + " Rademacher sign vectors");
  if (!res.fe_reprojected.empty()) {
    std::string s;
    for (const auto& f : res.fe_reprojected) s += (s.empty() ? "" : ", ") + f;
    res.notes.push_back("fixed effects not nested in the bootstrap clusters, re-projected exactly: " + s);
  }
}

}  // namespace

WildResult wild_bootstrap(Design& d, const FitOptions& fo, const WildOptions& wo, const Backend& backend,
                          WildTrace* trace) {
  check_options(wo);
  const Grouping boot = bootstrap_clusters(d, wo);
  WildResult res = fit_for_wild(d, fo, wo, boot, backend);
  const FitResult& fr = res.fit;
  Grouping obs;
  WildEngine eng(d, fr, boot, variance_terms(d, fo, fr, boot, obs));
  res.fe_reprojected = eng.reprojected();
  const std::vector<double> uhat = d.y;  // the residuals: fit() left the unrestricted ones (scaled) in d.y
  const std::vector<TestSpec> specs = parse_tests(wo, fr);
  const std::int32_t G = boot.n_levels;
  const bool enumerate = plan_enumeration(wo, G, res);
  const WildContext cx{fr, wo, backend,
                       Eigen::Map<const Eigen::MatrixXd>(d.X.data(), static_cast<Eigen::Index>(d.n_obs),
                                                         static_cast<Eigen::Index>(fr.beta.size())),
                       uhat, G, enumerate, trace ? trace->keep : 0};
  if (trace) trace->stats.assign(specs.size(), {});
  for (std::size_t ti = 0; ti < specs.size(); ++ti)
    res.tests.push_back(run_test(cx, eng, specs[ti], trace ? &trace->stats[ti] : nullptr));
  adjust_and_note(wo, enumerate, G, res);
  return res;
}

}  // namespace panelboot
