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
#include "panelboot/progress.hpp"
#include "panelboot/within.hpp"

namespace panelboot {

WeightType parse_weight_type(const std::string& s) {
  if (s == "rademacher") return WeightType::kRademacher;
  if (s == "mammen") return WeightType::kMammen;
  if (s == "webb") return WeightType::kWebb;
  if (s == "normal") return WeightType::kNormal;
  if (s == "gamma") return WeightType::kGamma;
  throw InvalidInput("--weight-type '" + s + "': choose rademacher, mammen, webb, normal or gamma");
}

const char* weight_type_name(WeightType w) {
  switch (w) {
    case WeightType::kRademacher: return "rademacher";
    case WeightType::kMammen: return "mammen";
    case WeightType::kWebb: return "webb";
    case WeightType::kNormal: return "normal";
    case WeightType::kGamma: return "gamma";
  }
  return "";
}

namespace {

constexpr double kTieTol = 1e-10;
using Mat = Eigen::MatrixXd;
using Vec = Eigen::VectorXd;

// One clustering of the variance (error clusters c) together with its pairing to the
// bootstrap clusters g: pair_of[i] indexes the (c, g) cell of observation i.
struct Term {
  const Grouping* grouping;
  double weight;
  std::int32_t n_clu;
  std::vector<std::int32_t> pair_of, pair_c, pair_g;
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

double p_from_counts(const BootCounts& c, PValueType type, bool joint) {
  if (c.finite == 0) return std::numeric_limits<double>::quiet_NaN();
  const double B = static_cast<double>(c.finite);
  if (joint) return static_cast<double>(c.upper) / B;
  switch (type) {
    case PValueType::kSymmetric: return static_cast<double>(c.abs) / B;
    case PValueType::kEqualTailed: return std::min(1.0, 2.0 * std::min(c.upper, c.lower) / B);
    case PValueType::kLower: return static_cast<double>(c.lower) / B;
    case PValueType::kUpper: return static_cast<double>(c.upper) / B;
  }
  return 0;
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
      terms_.push_back(std::move(t));
    }
    build_fe_projection();
  }

  const std::vector<std::string>& reprojected() const { return reprojected_; }
  std::int64_t max_clusters() const {
    std::int64_t m = G_;
    for (const Term& t : terms_) m = std::max<std::int64_t>(m, t.n_clu);
    return m;
  }

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
    prepare();
  }

  // The backend's view of this test: for each part, M1 = [a_j's_g rows; (A s_g)' ; GW] so that
  // M1 V gives the numerators and the shared factors at once; for each (j, S) either a dense
  // K (C_S x G) or the factored [P | F'] (C_S x (k + L)), whichever costs fewer flops.
  void prepare() {
    const std::size_t P = parts_.size(), S = terms_.size();
    const std::size_t kl = static_cast<std::size_t>(k_ + L_);
    double dense = 0, factored = static_cast<double>(kl) * G_;
    for (int j = 0; j < q_; ++j)
      for (std::size_t s = 0; s < S; ++s) {
        dense += static_cast<double>(terms_[s].n_clu) * G_;
        factored += static_cast<double>(terms_[s].n_clu) * kl + static_cast<double>(terms_[s].pair_c.size());
      }
    WildSpec& sp = spec_;
    sp = WildSpec{};
    sp.n_clu = G_;
    sp.q = q_;
    sp.n_part = static_cast<int>(P);
    sp.dense = dense <= factored;
    sp.kl = static_cast<int>(kl);
    for (const Term& t : terms_) {
      sp.n_rows.push_back(t.n_clu);
      sp.term_weight.push_back(t.weight);
      sp.cell_c.push_back(sp.dense ? std::vector<std::int32_t>{} : t.pair_c);
      sp.cell_g.push_back(sp.dense ? std::vector<std::int32_t>{} : t.pair_g);
    }
    sp.m1.assign(P, {});
    sp.kd.assign(sp.dense ? P * q_ * S : 0, {});
    sp.t1.assign(sp.dense ? 0 : P * q_ * S, {});
    sp.pf.assign(sp.dense ? 0 : q_ * S, {});
    for (std::size_t p = 0; p < P; ++p) {
      const Part& pt = parts_[p];
      const std::size_t rows = sp.rows1();
      std::vector<double>& M = sp.m1[p];
      M.assign(rows * G_, 0.0);
      for (int j = 0; j < q_; ++j)
        for (std::int32_t g = 0; g < G_; ++g) M[j * G_ + g] = pt.C[j](g);
      if (!sp.dense) {
        for (Eigen::Index kk = 0; kk < k_; ++kk)
          for (std::int32_t g = 0; g < G_; ++g) M[(q_ + kk) * G_ + g] = pt.Q(g, kk);
        for (Eigen::Index l = 0; l < L_; ++l)
          for (std::int32_t g = 0; g < G_; ++g) M[(q_ + k_ + l) * G_ + g] = pt.GW(l, g);
      }
      for (int j = 0; j < q_; ++j)
        for (std::size_t s = 0; s < S; ++s) {
          const std::size_t idx = (p * q_ + j) * S + s;
          if (!sp.dense) {
            const Vec& t1 = pt.T1[j][s];
            sp.t1[idx].assign(t1.data(), t1.data() + t1.size());
            continue;
          }
          const Mat K = dense_map(p, j, s);
          std::vector<double>& kd = sp.kd[idx];
          kd.resize(static_cast<std::size_t>(K.rows()) * G_);
          for (Eigen::Index c = 0; c < K.rows(); ++c)
            for (std::int32_t g = 0; g < G_; ++g) kd[c * G_ + g] = K(c, g);
        }
    }
    if (!sp.dense)
      for (int j = 0; j < q_; ++j)
        for (std::size_t s = 0; s < S; ++s) {
          const Geom& gm = geom_[j][s];
          std::vector<double>& pf = sp.pf[j * S + s];
          const std::size_t C = static_cast<std::size_t>(terms_[s].n_clu);
          pf.assign(C * kl, 0.0);
          for (std::size_t c = 0; c < C; ++c) {
            for (Eigen::Index kk = 0; kk < k_; ++kk) pf[c * kl + kk] = gm.P(c, kk);
            for (Eigen::Index l = 0; l < L_; ++l) pf[c * kl + k_ + l] = gm.F(l, c);
          }
        }
  }
  const WildSpec& spec() const { return spec_; }

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
  WildSpec spec_;
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
void check_wild_memory(const WildSpec& sp, const std::string& test, std::uint64_t max_memory) {
  const double chunk = static_cast<double>(std::min<std::uint64_t>(sp.chunk ? sp.chunk : default_wild_chunk(sp), sp.n_rep));
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  const double batches = threads * chunk * wild_batch_bytes_per_replication(sp);
  const double kept = sp.keep_coefs ? static_cast<double>(sp.n_rep) * 8.0 * (sp.n_part == 2 ? 5 : 2) : 0.0;
  std::string what = "the wild bootstrap of '" + test + "' (";
  if (sp.keep_coefs) what += std::to_string(sp.n_rep) + " replications kept for its confidence interval, ";
  what += "batches of " + std::to_string(static_cast<long long>(chunk)) + " on " + std::to_string(threads) +
          (threads == 1 ? " thread)" : " threads)");
  check_memory(batches + kept, max_memory, what,
               sp.keep_coefs ? "lower --B, or add --no-ci: without the interval the counts take constant memory"
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
    return p_from_counts(reps.count(delta, t, kTieTol * std::max(std::fabs(t), 1e-300), inclusive), wo.pvalue, false);
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

}  // namespace

WildResult wild_bootstrap(Design& d, const FitOptions& fo, const WildOptions& wo, WildTrace* trace,
                          const Backend* backend_in) {
  if (wo.tests.empty()) throw InvalidInput("wild needs at least one --test, e.g. --test 'x = 0'");
  std::unique_ptr<Backend> own;
  if (!backend_in) own = make_backend(Device::kCpu);
  const Backend& backend = backend_in ? *backend_in : *own;
  if (wo.n_boot < 1) throw InvalidInput("--B must be a positive number of replications");
  if (wo.enumerate == Enumerate::kAlways && wo.weight != WeightType::kRademacher)
    throw InvalidInput("--enumerate always needs --weight-type rademacher (only sign vectors can be "
                       "enumerated); drop --enumerate or use Rademacher weights");
  if (!(wo.level > 0 && wo.level < 1)) throw InvalidInput("--level must be between 0 and 1");

  // Bootstrap clusters: chosen before the fit consumes the design.
  Grouping boot;
  std::string boot_name;
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

  WildResult res;
  FitOptions fopts = fo;
  fopts.vcov = d.clusters.empty() ? VcovType::kHc1 : VcovType::kCluster;
  fopts.wald.clear();
  res.fit = fit(d, fopts);
  const FitResult& fr = res.fit;
  const std::size_t n = d.n_obs;
  const Eigen::Index k = static_cast<Eigen::Index>(fr.beta.size());
  res.method = wo.impose_null ? "WCR" : "WCU";
  res.weight_type = weight_type_name(wo.weight);
  res.bootcluster = boot.name;
  res.n_bootclusters = boot.n_levels;
  res.seed = wo.seed;
  res.backend = backend.name();

  // Variance terms: the fit's clusterings, or HC1 with each observation its own cluster.
  std::vector<ClusterTerm> terms;
  Grouping obs;
  if (d.clusters.empty()) {
    obs = boot;
    ClusterTerm t;
    t.grouping = &obs;
    t.weight = static_cast<double>(n) / (static_cast<double>(n) - fr.dof_k);
    terms.push_back(t);
  } else {
    terms = clustering_terms(d.clusters, fo.multiway_adj, static_cast<double>(n), fr.dof_k);
  }
  WildEngine eng(d, fr, boot, std::move(terms));
  res.fe_reprojected = eng.reprojected();

  // The residuals: fit() left the unrestricted ones (scaled) in d.y.
  const std::vector<double> uhat = d.y;
  Eigen::Map<const Eigen::MatrixXd> X(d.X.data(), static_cast<Eigen::Index>(n), k);

  std::vector<std::string> names;
  for (const auto& c : fr.coefficients) names.push_back(c.name);
  struct Spec {
    std::string text;
    Eigen::MatrixXd R;
    Eigen::VectorXd r;
  };
  std::vector<Spec> specs;
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
  if (wo.joint) {
    Spec s;
    s.R.resize(static_cast<Eigen::Index>(all_rows.size()), k);
    s.r.resize(static_cast<Eigen::Index>(all_rows.size()));
    for (std::size_t i = 0; i < all_rows.size(); ++i) {
      s.R.row(static_cast<Eigen::Index>(i)) = all_rows[i].R.transpose();
      s.r(static_cast<Eigen::Index>(i)) = all_rows[i].r;
      s.text += (i ? ", " : "") + all_rows[i].text;
    }
    specs.push_back(s);
  }
  for (const auto& row : all_rows) {
    Spec s;
    s.text = row.text;
    s.R = row.R.transpose();
    s.r = Eigen::VectorXd::Constant(1, row.r);
    specs.push_back(s);
  }

  const std::int32_t G = boot.n_levels;
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
  const bool inclusive = wo.ties == Ties::kInclusive;
  if (trace) trace->stats.assign(specs.size(), {});

  for (std::size_t ti = 0; ti < specs.size(); ++ti) {
    const Spec& sp = specs[ti];
    WildTest out;
    out.hypothesis = sp.text;
    out.q = static_cast<int>(sp.R.rows());
    const bool joint = out.q > 1;
    const Eigen::VectorXd diff = sp.R * fr.beta - sp.r;
    const Eigen::MatrixXd RVR = sp.R * fr.vcov * sp.R.transpose();
    refuse_zero_variance(sp.text, sp.R, fr, RVR);
    double se = 0;
    if (joint) {
      Eigen::FullPivLU<Eigen::MatrixXd> lu(RVR);
      if (lu.rank() < out.q) throw InvalidInput("--joint: the restrictions are linearly dependent");
      out.stat = diff.dot(lu.solve(diff)) / out.q;
      out.crve_p_value = f_upper_p(out.stat, out.q, fr.df_inference);
    } else {
      se = std::sqrt(RVR(0, 0));
      out.stat = diff(0) / se;
      out.crve_p_value = t_two_sided_p(out.stat, fr.df_inference);
    }
    // residual parts: WCR with a CI carries u(delta) = uhat + delta h; otherwise one vector
    const Eigen::MatrixXd RAR = sp.R * fr.bread * sp.R.transpose();
    const Eigen::VectorXd h_dir = X * (fr.bread * sp.R.transpose() * RAR.inverse()).eval().col(0);
    std::vector<double> u_tilde(n), h(n);
    const bool want_ci = wo.ci && !joint;
    bool two_parts = wo.impose_null && want_ci;
    if (wo.impose_null) {
      const Eigen::VectorXd shift = X * (fr.bread * sp.R.transpose() * RAR.inverse() * diff);
      for (std::size_t i = 0; i < n; ++i) u_tilde[i] = uhat[i] + shift(static_cast<Eigen::Index>(i));
    } else {
      u_tilde = uhat;
    }
    for (std::size_t i = 0; i < n; ++i) h[i] = h_dir(static_cast<Eigen::Index>(i));
    const double delta0 = joint ? 0.0 : diff(0);

    const bool gray = enumerate && !joint && (wo.force_gray || G > 22);
    if (enumerate && joint && G > 22)
      throw InvalidInput("--joint with enumeration supports at most 22 bootstrap clusters; use --enumerate never");
    if (gray) two_parts = false;
    std::vector<const double*> parts;
    if (two_parts) {
      parts = {uhat.data(), h.data()};
    } else {
      parts = {u_tilde.data()};
    }
    eng.setup(sp.R, parts);

    WildSpec sp_run = eng.spec();
    sp_run.seed = wo.seed;
    sp_run.weight = wo.weight;
    sp_run.count_t = out.stat;
    sp_run.count_tol = kTieTol * std::max(std::fabs(out.stat), 1e-300);
    sp_run.inclusive = inclusive;
    BootCounts total;
    if (gray) {
      // Exact enumeration by a Gray-code walk (kernels/gray_walk.hpp) with
      // H = sum_S w_S K_S'K_S (G x G): O(G) per sign vector.
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
      gp.tol = sp_run.count_tol;
      gp.inclusive = inclusive;
      ProgressReporter progress("enumeration of 2^" + std::to_string(G) + " sign vectors for '" + sp.text + "'",
                                "sign-vector pairs", std::uint64_t{1} << (G - 1), wo.progress);
      total = backend.wild_enumerate(gp, &progress);
      out.enumerated = true;
      out.n_boot = static_cast<std::int64_t>(std::uint64_t{1} << G);
      if (wo.ci) out.note = "no CI: with " + std::to_string(G) + " clusters the enumeration is walked, not stored";
    } else {
      sp_run.enumerate = enumerate;
      sp_run.n_rep = enumerate ? (std::uint64_t{1} << (G - 1)) : static_cast<std::uint64_t>(wo.n_boot);
      sp_run.chunk = wo.chunk;
      sp_run.trace_keep = trace ? trace->keep : 0;
      sp_run.count_delta = joint ? 0.0 : delta0;
      sp_run.keep_coefs = want_ci;
      check_wild_memory(sp_run, sp.text, wo.max_memory);
      ProgressReporter progress("wild bootstrap of '" + sp.text + "'", "replications", sp_run.n_rep, wo.progress);
      sp_run.progress = &progress;
      WildRun run = backend.wild_replicates(sp_run);
      progress.finish();
      total = run.counts;
      out.enumerated = enumerate;
      out.n_boot = static_cast<std::int64_t>(enumerate ? 2 * sp_run.n_rep : sp_run.n_rep);
      if (trace) trace->stats[ti] = run.trace;
      if (want_ci) {
        // WCU: n1 = d1 = d2 = 0, so t* does not depend on r; only the observed t(r) moves
        const double crit = t_quantile(1 - (1 - wo.level) / 2, fr.df_inference);
        const double rb = (sp.R * fr.beta)(0);
        invert(*run.reps, rb, se, crit, wo, out);
      }
    }
    out.n_finite = total.finite;
    out.n_exceed = joint ? total.upper : (wo.pvalue == PValueType::kSymmetric ? total.abs
                                          : wo.pvalue == PValueType::kUpper ? total.upper
                                          : wo.pvalue == PValueType::kLower ? total.lower
                                                                            : std::min(total.upper, total.lower));
    out.p_value = p_from_counts(total, wo.pvalue, joint);
    res.tests.push_back(out);
  }
  // multiple-testing adjustment over the individual tests
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
  return res;
}

}  // namespace panelboot
