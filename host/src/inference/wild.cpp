// The wild cluster bootstrap on the CPU reference backend. See wild.hpp for the algebra.
#include "panelboot/wild.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "estimate/detail.hpp"
#include "panelboot/distributions.hpp"
#include "panelboot/error.hpp"
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

// Exceedance counts at the observed statistic; a statistic within a relative kTieTol of it is
// a tie, counted by --ties inclusive and not by strict.
struct Counts {
  std::int64_t abs = 0, upper = 0, lower = 0, finite = 0;
  void add(double s, double t, double tol, bool inclusive) {
    if (!std::isfinite(s)) return;
    ++finite;
    const double as = std::fabs(s), at = std::fabs(t);
    if (inclusive) {
      abs += as >= at - tol;
      upper += s >= t - tol;
      lower += s <= t + tol;
    } else {
      abs += as > at + tol;
      upper += s > t + tol;
      lower += s < t - tol;
    }
  }
  void merge(const Counts& o) {
    abs += o.abs;
    upper += o.upper;
    lower += o.lower;
    finite += o.finite;
  }
};

double p_from_counts(const Counts& c, PValueType type, bool joint) {
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

// Four doubles (GCC vector extension): AVX in the AVX2 clone, SSE pairs in the baseline one.
typedef double V4 __attribute__((vector_size(32)));
typedef std::int64_t V4i __attribute__((vector_size(32)));
inline V4 load4(const double* p) {
  V4 x;
  std::memcpy(&x, p, sizeof x);
  return x;
}
inline void store4(double* p, V4 x) { std::memcpy(p, &x, sizeof x); }

// C (m x nb) = A (m x d, row-major) B (d x nb, row-major), or C -= A B with `subtract`. Each
// output is summed over d in order, 16 replications at a time in registers; no fused
// multiply-add, so both clones and any chunk size give the same bits.
__attribute__((target_clones("avx2", "default")))
void gemm_rows(const double* A, std::size_t m, std::size_t d, const double* B, std::size_t nb, double* C,
               bool subtract) {
  for (std::size_t i = 0; i < m; ++i) {
    const double* a = A + i * d;
    double* c = C + i * nb;
    std::size_t b0 = 0;
    // 32 replications per block: eight independent accumulators hide the add latency
    for (; b0 + 32 <= nb; b0 += 32) {
      V4 acc[8] = {};
      for (std::size_t g = 0; g < d; ++g) {
        const V4 av = {a[g], a[g], a[g], a[g]};
        const double* bg = B + g * nb + b0;
        for (int r = 0; r < 8; ++r) acc[r] += av * load4(bg + 4 * r);
      }
      for (int r = 0; r < 8; ++r) store4(c + b0 + 4 * r, subtract ? load4(c + b0 + 4 * r) - acc[r] : acc[r]);
    }
    for (; b0 < nb; ++b0) {
      double acc = 0;
      for (std::size_t g = 0; g < d; ++g) acc += a[g] * B[g * nb + b0];
      c[b0] = subtract ? c[b0] - acc : acc;
    }
  }
}

// D[b] += w sum_c Za[c, b] Zb[c, b]
__attribute__((target_clones("avx2", "default")))
void accumulate_products(const double* Za, const double* Zb, std::size_t C, std::size_t nb, double w, double* D) {
  for (std::size_t c = 0; c < C; ++c) {
    const double* a = Za + c * nb;
    const double* b = Zb + c * nb;
    for (std::size_t i = 0; i < nb; ++i) D[i] += w * (a[i] * b[i]);
  }
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

  // For a chunk of nb replications with weights V (G x nb, row-major), the numerators
  // N[p][j] (nb) and the denominator pieces: for q = 1, D[p1 * P + p2] = sum_S w_S sum_c
  // Z^p1 Z^p2; for q > 1 (one part), D[j * q + l].
  // Prepares the per-chunk products: for each part, M1 = [a_j's_g rows; (A s_g)' ; GW] so that
  // M1 V gives the numerators and the shared factors at once; for each (j, S) either a dense
  // K (C_S x G) or the factored [P | F'] (C_S x (k + L)), whichever costs fewer flops.
  void prepare() {
    const std::size_t P = parts_.size();
    const std::size_t kl = static_cast<std::size_t>(k_ + L_);
    double dense = 0, factored = static_cast<double>(kl) * G_;
    for (int j = 0; j < q_; ++j)
      for (std::size_t s = 0; s < terms_.size(); ++s) {
        dense += static_cast<double>(terms_[s].n_clu) * G_;
        factored += static_cast<double>(terms_[s].n_clu) * kl + static_cast<double>(terms_[s].pair_c.size());
      }
    dense_ = dense <= factored;
    m1_.assign(P, {});
    kd_.assign(P, std::vector<std::vector<double>>(static_cast<std::size_t>(q_) * terms_.size()));
    pf_.assign(static_cast<std::size_t>(q_) * terms_.size(), {});
    for (std::size_t p = 0; p < P; ++p) {
      const Part& pt = parts_[p];
      const std::size_t rows = static_cast<std::size_t>(q_) + (dense_ ? 0 : kl);
      std::vector<double>& M = m1_[p];
      M.assign(rows * G_, 0.0);
      for (int j = 0; j < q_; ++j)
        for (std::int32_t g = 0; g < G_; ++g) M[j * G_ + g] = pt.C[j](g);
      if (!dense_) {
        for (Eigen::Index kk = 0; kk < k_; ++kk)
          for (std::int32_t g = 0; g < G_; ++g) M[(q_ + kk) * G_ + g] = pt.Q(g, kk);
        for (Eigen::Index l = 0; l < L_; ++l)
          for (std::int32_t g = 0; g < G_; ++g) M[(q_ + k_ + l) * G_ + g] = pt.GW(l, g);
      }
      for (int j = 0; j < q_; ++j)
        for (std::size_t s = 0; s < terms_.size(); ++s) {
          if (!dense_) continue;
          const Mat K = dense_map(p, j, s);
          std::vector<double>& kd = kd_[p][j * terms_.size() + s];
          kd.resize(static_cast<std::size_t>(K.rows()) * G_);
          for (Eigen::Index c = 0; c < K.rows(); ++c)
            for (std::int32_t g = 0; g < G_; ++g) kd[c * G_ + g] = K(c, g);
        }
    }
    if (!dense_)
      for (int j = 0; j < q_; ++j)
        for (std::size_t s = 0; s < terms_.size(); ++s) {
          const Geom& gm = geom_[j][s];
          std::vector<double>& pf = pf_[j * terms_.size() + s];
          const std::size_t C = static_cast<std::size_t>(terms_[s].n_clu);
          pf.assign(C * kl, 0.0);
          for (std::size_t c = 0; c < C; ++c) {
            for (Eigen::Index kk = 0; kk < k_; ++kk) pf[c * kl + kk] = gm.P(c, kk);
            for (Eigen::Index l = 0; l < L_; ++l) pf[c * kl + k_ + l] = gm.F(l, c);
          }
        }
  }

  // For a chunk of nb replications with weights V (G x nb, row-major), the numerators
  // N[p * q + j] (nb) and the denominator pieces: for q = 1, D[p1 * P + p2] = sum_S w_S
  // sum_c Z^p1 Z^p2; for q > 1 (one part), D[j * q + l].
  void evaluate(const double* V, std::size_t nb, std::vector<std::vector<double>>& N,
                std::vector<std::vector<double>>& D, std::vector<double>& r1, std::vector<double>& scratch) const {
    const std::size_t P = parts_.size();
    const std::size_t kl = static_cast<std::size_t>(k_ + L_);
    N.assign(P * q_, std::vector<double>(nb, 0.0));
    const std::size_t n_d = q_ == 1 ? P * P : static_cast<std::size_t>(q_ * q_);
    D.assign(n_d, std::vector<double>(nb, 0.0));
    const std::size_t rows1 = static_cast<std::size_t>(q_) + (dense_ ? 0 : kl);
    r1.resize(P * rows1 * nb);
    for (std::size_t p = 0; p < P; ++p) {
      double* R1 = r1.data() + p * rows1 * nb;
      gemm_rows(m1_[p].data(), rows1, static_cast<std::size_t>(G_), V, nb, R1, false);
      for (int j = 0; j < q_; ++j) std::copy(R1 + j * nb, R1 + (j + 1) * nb, N[p * q_ + j].begin());
    }
    for (std::size_t s = 0; s < terms_.size(); ++s) {
      const Term& t = terms_[s];
      const std::size_t C = static_cast<std::size_t>(t.n_clu);
      const std::size_t n_z = P * q_;
      scratch.resize(n_z * C * nb);
      for (std::size_t p = 0; p < P; ++p)
        for (int j = 0; j < q_; ++j) {
          double* Z = scratch.data() + (p * q_ + j) * C * nb;
          if (dense_) {
            gemm_rows(kd_[p][j * terms_.size() + s].data(), C, static_cast<std::size_t>(G_), V, nb, Z, false);
            continue;
          }
          // Z = T1 V (sparse cells) - [P | F'] [QV; GWV]
          std::fill(Z, Z + C * nb, 0.0);
          const Vec& t1 = parts_[p].T1[j][s];
          for (std::size_t e = 0; e < t.pair_c.size(); ++e) {
            const double c = t1(static_cast<Eigen::Index>(e));
            double* dst = Z + static_cast<std::size_t>(t.pair_c[e]) * nb;
            const double* vg = V + static_cast<std::size_t>(t.pair_g[e]) * nb;
            for (std::size_t b = 0; b < nb; ++b) dst[b] += c * vg[b];
          }
          const double* R1 = r1.data() + (p * rows1 + static_cast<std::size_t>(q_)) * nb;
          gemm_rows(pf_[j * terms_.size() + s].data(), C, kl, R1, nb, Z, true);
        }
      // accumulate the denominator pieces
      for (std::size_t x = 0; x < n_d; ++x) {
        const std::size_t za = q_ == 1 ? x / P : x / q_, zb = q_ == 1 ? x % P : x % q_;
        if (q_ == 1 && za > zb) {  // symmetric: D[1][0] = D[0][1]
          continue;
        }
        accumulate_products(scratch.data() + za * C * nb, scratch.data() + zb * C * nb, C, nb, t.weight,
                            D[x].data());
      }
    }
    if (q_ == 1 && P == 2) D[2] = D[1];
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
  bool dense_ = false;
  std::vector<std::vector<double>> m1_;               // [p] rows x G
  std::vector<std::vector<std::vector<double>>> kd_;  // [p][j * S + s] dense K, row-major
  std::vector<std::vector<double>> pf_;               // [j * S + s] [P | F'], row-major
};

// Stored per replication for the CI: numerator n0 + delta n1, squared denominator
// d0 + 2 delta d1 + delta^2 d2, with delta = R b - r.
struct Coefs {
  std::vector<double> n0, n1, d0, d1, d2;
  void resize(std::size_t m) {
    n0.resize(m);
    n1.assign(m, 0.0);
    d0.resize(m);
    d1.assign(m, 0.0);
    d2.assign(m, 0.0);
  }
};

// Exceedance counts of replications [b0, b1) at delta: the statistics into a buffer (a loop
// that vectorizes, division and square root included), then the comparisons four at a time.
template <bool Inclusive>
__attribute__((always_inline)) inline Counts count_block(const Coefs& cf, double delta, double t, double tol, bool pairs, std::size_t b0,
                   std::size_t b1, double* s) {
  const std::size_t m = b1 - b0;
  const double* n0 = cf.n0.data() + b0;
  const double* n1 = cf.n1.data() + b0;
  const double* d0 = cf.d0.data() + b0;
  const double* d1 = cf.d1.data() + b0;
  const double* d2 = cf.d2.data() + b0;
  for (std::size_t b = 0; b < m; ++b)
    s[b] = (n0[b] + delta * n1[b]) / std::sqrt(d0[b] + 2 * delta * d1[b] + delta * delta * d2[b]);
  const double big = std::numeric_limits<double>::max();
  const double at = std::fabs(t);
  const double thr_abs = Inclusive ? at - tol : at + tol;
  const double thr_up = Inclusive ? t - tol : t + tol, thr_lo = Inclusive ? t + tol : t - tol;
  const double thr_up2 = -thr_up, thr_lo2 = -thr_lo;  // -s > thr_up  <=>  s < -thr_up
  V4i fin = {0, 0, 0, 0}, ab = fin, up = fin, lo = fin, up2 = fin, lo2 = fin;
  const V4 zero = {0, 0, 0, 0};
  std::size_t b = 0;
  for (; b + 4 <= m; b += 4) {
    const V4 x = load4(s + b);
    const V4 ax = x < zero ? -x : x;
    const V4i f = ax <= big;  // -1 where finite (false for NaN and inf)
    fin -= f;
    if (Inclusive) {
      ab -= f & (ax >= thr_abs);
      up -= f & (x >= thr_up);
      lo -= f & (x <= thr_lo);
      up2 -= f & (x <= thr_up2);
      lo2 -= f & (x >= thr_lo2);
    } else {
      ab -= f & (ax > thr_abs);
      up -= f & (x > thr_up);
      lo -= f & (x < thr_lo);
      up2 -= f & (x < thr_up2);
      lo2 -= f & (x > thr_lo2);
    }
  }
  std::int64_t F = fin[0] + fin[1] + fin[2] + fin[3], AB = ab[0] + ab[1] + ab[2] + ab[3],
               UP = up[0] + up[1] + up[2] + up[3], LO = lo[0] + lo[1] + lo[2] + lo[3],
               UP2 = up2[0] + up2[1] + up2[2] + up2[3], LO2 = lo2[0] + lo2[1] + lo2[2] + lo2[3];
  for (; b < m; ++b) {
    const double x = s[b], ax = std::fabs(x);
    const bool f = ax <= big;
    F += f;
    if (Inclusive) {
      AB += f && ax >= thr_abs;
      UP += f && x >= thr_up;
      LO += f && x <= thr_lo;
      UP2 += f && x <= thr_up2;
      LO2 += f && x >= thr_lo2;
    } else {
      AB += f && ax > thr_abs;
      UP += f && x > thr_up;
      LO += f && x < thr_lo;
      UP2 += f && x < thr_up2;
      LO2 += f && x > thr_lo2;
    }
  }
  Counts c;
  c.finite = F * (pairs ? 2 : 1);
  c.abs = AB * (pairs ? 2 : 1);
  c.upper = UP + (pairs ? UP2 : 0);
  c.lower = LO + (pairs ? LO2 : 0);
  return c;
}

__attribute__((target_clones("avx2", "default")))
Counts count_range(const Coefs& cf, double delta, double t, double tol, bool inclusive, bool pairs,
                   std::size_t b0, std::size_t b1, double* buf) {
  return inclusive ? count_block<true>(cf, delta, t, tol, pairs, b0, b1, buf)
                   : count_block<false>(cf, delta, t, tol, pairs, b0, b1, buf);
}

Counts count_at(const Coefs& cf, double delta, double t_obs, bool inclusive, bool symmetric_pairs) {
  const double tol = kTieTol * std::max(std::fabs(t_obs), 1e-300);
  const std::size_t m = cf.n0.size(), block = 8192;
  const std::size_t n_blocks = (m + block - 1) / block;
  std::int64_t abs = 0, upper = 0, lower = 0, finite = 0;
#pragma omp parallel reduction(+ : abs, upper, lower, finite)
  {
  std::vector<double> buf(block);
#pragma omp for schedule(static)
  for (std::ptrdiff_t bi = 0; bi < static_cast<std::ptrdiff_t>(n_blocks); ++bi) {
    const std::size_t b0 = static_cast<std::size_t>(bi) * block, b1 = std::min(m, b0 + block);
    const Counts c = count_range(cf, delta, t_obs, tol, inclusive, symmetric_pairs, b0, b1, buf.data());
    abs += c.abs;
    upper += c.upper;
    lower += c.lower;
    finite += c.finite;
  }
  }
  Counts c;
  c.abs = abs;
  c.upper = upper;
  c.lower = lower;
  c.finite = finite;
  return c;
}

// Confidence set {r : p(r) > alpha} by a grid bracket and bisection on r.
void invert(const Coefs& cf, double rb, double se, double crit, const WildOptions& wo, bool pairs,
            WildTest& out) {
  const double alpha = 1.0 - wo.level;
  const bool inclusive = wo.ties == Ties::kInclusive;
  auto p_at = [&](double r) {
    const double delta = rb - r;
    return p_from_counts(count_at(cf, delta, delta / se, inclusive, pairs), wo.pvalue, false);
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
    while (hi - lo > tol) {
      const double mid = 0.5 * (lo + hi);
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

// Counts of the pair (s, -s) against t given s^2 = num^2 / den, without a square root: the
// threshold tests are on num^2 versus thr^2 den (den > 0).
struct PairCounter {
  double t2_abs;         // squared threshold for |s|
  double up_thr, lo_thr;  // thresholds for "x > up_thr" (upper) and "-x > lo_thr" (lower)
  bool inclusive;
  PairCounter(double t, double tol, bool incl) : inclusive(incl) {
    const double at = std::fabs(t);
    const double a = incl ? std::max(at - tol, 0.0) : at + tol;
    t2_abs = a * a;
    up_thr = incl ? t - tol : t + tol;
    lo_thr = incl ? -t - tol : -t + tol;
  }
  // #{x in {s, -s} : x > thr} (strict) or >= (inclusive)
  static std::int64_t side(double num2, double den, double thr, bool incl) {
    const double th2den = thr * thr * den;
    if (incl) return thr <= 0 ? 1 + (num2 <= th2den) : (num2 >= th2den);
    return thr >= 0 ? (num2 > th2den) : 1 + (num2 < th2den);
  }
  void add(double num, double den, Counts& c) const {
    if (!(den > 0) || !(den <= std::numeric_limits<double>::max())) return;
    const double num2 = num * num;
    c.finite += 2;
    c.abs += 2 * (inclusive ? num2 >= t2_abs * den : num2 > t2_abs * den);
    c.upper += side(num2, den, up_thr, inclusive);
    c.lower += side(num2, den, lo_thr, inclusive);
  }
};

__attribute__((target_clones("avx2", "default")))
Counts gray_walk(const Eigen::MatrixXd& H, const Eigen::VectorXd& Cv, std::uint64_t lo, std::uint64_t hi,
                 double t, double tol, bool inclusive) {
  const Eigen::Index G = H.rows();
  const PairCounter pcount(t, tol, inclusive);
  std::vector<double> v(G), y(G);
  double num = 0, den = 0;
  auto resync = [&](std::uint64_t m) {
    const std::uint64_t code = m ^ (m >> 1);
    for (Eigen::Index g = 0; g < G; ++g) v[g] = enumerated_weight(code, static_cast<std::uint32_t>(g));
    num = 0;
    for (Eigen::Index g = 0; g < G; ++g) num += Cv(g) * v[g];
    for (Eigen::Index a = 0; a < G; ++a) {
      double acc = 0;
      for (Eigen::Index g = 0; g < G; ++g) acc += H(a, g) * v[g];
      y[a] = acc;
    }
    den = 0;
    for (Eigen::Index g = 0; g < G; ++g) den += v[g] * y[g];
  };
  Counts c;
  resync(lo);
  for (std::uint64_t m = lo;;) {
    pcount.add(num, den, c);
    if (++m == hi) break;
    if ((m & 0xFFFF) == 0) {
      resync(m);
      continue;
    }
    const Eigen::Index g = __builtin_ctzll(m) + 1;  // Gray code m differs from m-1 in this bit
    const double dv = -2.0 * v[g];
    v[g] = -v[g];
    num += dv * Cv(g);
    den += 2 * dv * y[g] + dv * dv * H(g, g);
    const double* hg = H.data() + g * G;
    for (Eigen::Index a = 0; a < G; ++a) y[a] += dv * hg[a];
  }
  return c;
}

}  // namespace

WildResult wild_bootstrap(Design& d, const FitOptions& fo, const WildOptions& wo, WildTrace* trace) {
  if (wo.tests.empty()) throw InvalidInput("wild needs at least one --test, e.g. --test 'x = 0'");
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

    Counts total;
    const double tol = kTieTol * std::max(std::fabs(out.stat), 1e-300);
    Coefs cf;
    if (gray) {
      // Exact enumeration by a Gray-code walk over the signs of clusters 1..G-1 (cluster 0
      // fixed at +1; each vector stands for itself and its negation). With H = sum_S w_S K_S'K_S
      // (G x G) and y = H v, flipping v_g by delta = -2 v_g updates numerator += delta C_g,
      // den += 2 delta y_g + delta^2 H_gg and y += delta H[:, g]: O(G) per vector. The state is
      // recomputed exactly every 2^16 steps so rounding cannot drift.
      std::vector<Eigen::MatrixXd> K;
      Eigen::VectorXd Cv;
      eng.dense_maps(K, Cv);
      Eigen::MatrixXd H = Eigen::MatrixXd::Zero(G, G);
      for (std::size_t s = 0; s < K.size(); ++s) H += eng.terms()[s].weight * K[s].transpose() * K[s];
      const std::uint64_t n_vec = std::uint64_t{1} << (G - 1);
      const int n_part = 256;
      std::vector<Counts> pc(n_part);
#pragma omp parallel for schedule(dynamic, 1)
      for (int part = 0; part < n_part; ++part) {
        const std::uint64_t lo = n_vec * part / n_part, hi = n_vec * (part + 1) / n_part;
        if (lo < hi) pc[part] = gray_walk(H, Cv, lo, hi, out.stat, tol, inclusive);
      }
      for (const Counts& c : pc) total.merge(c);
      out.enumerated = true;
      out.n_boot = static_cast<std::int64_t>(2 * n_vec);
      if (wo.ci) out.note = "no CI: with " + std::to_string(G) + " clusters the enumeration is walked, not stored";
    } else {
      const std::uint64_t n_rep = enumerate ? (std::uint64_t{1} << (G - 1)) : static_cast<std::uint64_t>(wo.n_boot);
      std::size_t chunk = wo.chunk;
      if (chunk == 0) chunk = static_cast<std::size_t>(std::clamp<std::int64_t>((1 << 18) / std::max<std::int64_t>(eng.max_clusters(), 1), 16, 2048));
      const std::size_t n_chunks = (n_rep + chunk - 1) / chunk;
      if (want_ci) cf.resize(n_rep);
      std::vector<Counts> pc(n_chunks);
      std::vector<double> trace_stats(trace ? std::min<std::uint64_t>(trace->keep, n_rep) : 0);
      const int q = out.q;
#pragma omp parallel
      {
        std::vector<double> V, scratch, r1;
        std::vector<std::vector<double>> N, D;
#pragma omp for schedule(dynamic, 1)
        for (std::ptrdiff_t ci = 0; ci < static_cast<std::ptrdiff_t>(n_chunks); ++ci) {
          const std::uint64_t b0 = static_cast<std::uint64_t>(ci) * chunk;
          const std::size_t nb = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, n_rep - b0));
          V.resize(static_cast<std::size_t>(G) * nb);
          for (std::size_t b = 0; b < nb; ++b) {
            if (enumerate) {
              for (std::int32_t g = 0; g < G; ++g)
                V[static_cast<std::size_t>(g) * nb + b] = enumerated_weight(b0 + b, static_cast<std::uint32_t>(g));
            } else {
              kernels::wild_weights_row(wo.seed, b0 + b, static_cast<std::uint32_t>(G), wo.weight, V.data() + b, nb);
            }
          }
          eng.evaluate(V.data(), nb, N, D, r1, scratch);
          Counts cnt;
          Eigen::MatrixXd Dm(q, q);
          Eigen::VectorXd Nv(q);
          for (std::size_t b = 0; b < nb; ++b) {
            double stat;
            if (q == 1) {
              double n0 = N[0][b], d0 = D[0][b], n1 = 0, d1 = 0, d2 = 0;
              if (two_parts) {
                n1 = N[1][b];
                d1 = D[1][b];
                d2 = D[3][b];
              }
              const double num = n0 + delta0 * n1;
              stat = num / std::sqrt(d0 + 2 * delta0 * d1 + delta0 * delta0 * d2);
              if (want_ci) {
                // store with delta measured from the fitted value: numerator n0 + delta n1
                cf.n0[b0 + b] = n0;
                cf.n1[b0 + b] = n1;
                cf.d0[b0 + b] = d0;
                cf.d1[b0 + b] = d1;
                cf.d2[b0 + b] = d2;
              }
            } else {
              for (int j = 0; j < q; ++j) {
                Nv(j) = N[j][b];
                for (int l = 0; l < q; ++l) Dm(j, l) = D[j * q + l][b];
              }
              stat = Nv.dot(Dm.ldlt().solve(Nv)) / q;
            }
            cnt.add(stat, out.stat, tol, inclusive);
            if (enumerate) {
              if (q == 1) cnt.add(-stat, out.stat, tol, inclusive);
              else cnt.add(stat, out.stat, tol, inclusive);
            }
            if (b0 + b < trace_stats.size()) trace_stats[b0 + b] = stat;
          }
          pc[static_cast<std::size_t>(ci)] = cnt;
        }
      }
      for (const Counts& c : pc) total.merge(c);
      out.enumerated = enumerate;
      out.n_boot = enumerate ? static_cast<std::int64_t>(2 * n_rep) : static_cast<std::int64_t>(n_rep);
      if (trace) trace->stats[ti] = trace_stats;
      if (want_ci) {
        // WCU: n1 = d1 = d2 = 0, so t* does not depend on r; only the observed t(r) moves
        const double crit = t_quantile(1 - (1 - wo.level) / 2, fr.df_inference);
        const double rb = (sp.R * fr.beta)(0);
        invert(cf, rb, se, crit, wo, enumerate, out);
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
