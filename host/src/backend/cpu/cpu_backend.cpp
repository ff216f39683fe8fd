// The CPU reference backend: every other backend is tested against it. Batched products are
// summed in a fixed order with AVX2 clones built without FMA, so the bits do not depend on the
// instruction set, the thread count or the chunk size.
#include <Eigen/Dense>
#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <cmath>
#include <cstring>
#include <limits>

#include "panelboot/backend.hpp"
#include "threshold_batch.hpp"

namespace panelboot::cpu {
namespace {

using kernels::WildCoefView;

// Four doubles (GCC vector extension): AVX in the AVX2 clone, SSE pairs in the baseline one.
typedef double V4 __attribute__((vector_size(32)));
typedef std::int64_t V4i __attribute__((vector_size(32)));
inline V4 load4(const double* p) {
  V4 x;
  std::memcpy(&x, p, sizeof x);
  return x;
}
inline void store4(double* p, V4 x) { std::memcpy(p, &x, sizeof x); }

// One replication of a threshold test by the shared PB_HD functions as they are (forced inline
// into AVX2/default clones; no FMA either way): the path for views with more than kernels::kMaxQ
// linear regressors, which the batches below do not take.
__attribute__((target_clones("avx2", "default")))
double threshold_replicate(const kernels::ThresholdBootView& v, const HostGramAccess& hg, std::uint64_t b,
                           const kernels::ThresholdScratch& s) {
  const kernels::SoloTeam solo;
  const double s0 = kernels::threshold_project(v, b, s, solo);
  return kernels::threshold_search(v, hg, s.r, s0, solo);
}

// Stage `stage` of one replication with one regime regressor, every point at once: the
// operations threshold_stage does for p = 1 (w = L^-1 G_Fg by forward_solve's steps, a, d, S),
// ordered so that the loops over points are the inner ones (vector code), in blocks of
// kPointBlock points; excluded points (Hansen's windows, the fixed points) are never chosen.
constexpr std::int64_t kPointBlock = 256;
PB_INLINE void threshold_stage_p1(const kernels::ThresholdBootView& v, const HostGramAccess& hg, const double* r,
                                  int stage, kernels::ThresholdSearchState& ss, double* sbuf) {
  kernels::ThresholdStageFixed fx;
  if (!kernels::threshold_stage_fixed(v, hg, r, stage, ss, fx)) return;
  const int m = fx.m, f = fx.f;
  const double* dg = hg.diag;
  double W[kernels::kMaxFixedDim * kPointBlock], A[kPointBlock], D[kPointBlock];
  double best = 1.7976931348623157e308;  // as threshold_stage: non-finite values are never chosen
  std::int64_t best_g = -1;
  for (std::int64_t g0 = 0; g0 < v.n_grid; g0 += kPointBlock) {
    const std::int64_t n = std::min(kPointBlock, v.n_grid - g0);
    for (int c = 0; c < f; ++c)
      for (std::int64_t t = 0; t < n; ++t) W[c * kPointBlock + t] = fx.cols[c][g0 + t];
    for (int i = 0; i < f; ++i) {  // forward_solve: w_i = (w_i - sum_k<i L_ik w_k) / L_ii
      double* wi = W + i * kPointBlock;
      for (int k = 0; k < i; ++k) {
        const double lik = fx.L[i + k * f];
        const double* wk = W + k * kPointBlock;
        for (std::int64_t t = 0; t < n; ++t) wi[t] -= lik * wk[t];
      }
      const double lii = fx.L[i + i * f];
      for (std::int64_t t = 0; t < n; ++t) wi[t] /= lii;
    }
    for (std::int64_t t = 0; t < n; ++t) A[t] = r[g0 + t];
    for (int c = 0; c < f; ++c) {
      const double zc = fx.zr[c];
      const double* wc = W + c * kPointBlock;
      for (std::int64_t t = 0; t < n; ++t) A[t] -= wc[t] * zc;
    }
    for (std::int64_t t = 0; t < n; ++t) D[t] = dg[g0 + t];
    for (int c = 0; c < f; ++c) {
      const double* wc = W + c * kPointBlock;
      for (std::int64_t t = 0; t < n; ++t) D[t] -= wc[t] * wc[t];
    }
    double* S = sbuf + g0;
    for (std::int64_t t = 0; t < n; ++t) S[t] = kernels::threshold_ssr_one(fx.SF, A[t], D[t], dg[g0 + t]);
    for (std::int64_t t = 0; t < n; ++t)
      if (S[t] < best && !(m > 0 && kernels::threshold_excluded(v, ss, m, g0 + t))) {
        best = S[t];
        best_g = g0 + t;
      }
  }
  kernels::threshold_stage_close(ss, m, best, best_g);
}

// The sequential search of one replication given its r and S0 (threshold_search); with one
// regime regressor every stage runs as threshold_stage_p1 (sbuf: n_grid doubles).
__attribute__((target_clones("avx512f", "avx2", "default")))
double threshold_search_one(const kernels::ThresholdBootView& v, const HostGramAccess& hg, const double* r, double s0,
                            double* sbuf) {
  const kernels::SoloTeam solo;
  kernels::ThresholdSearchState ss;
  kernels::threshold_search_start(ss, s0);
  for (int stage = 1; stage <= v.k && !ss.failed; ++stage) {
    if (v.p == 1 && stage - 1 <= kernels::kMaxFixedDim)
      threshold_stage_p1(v, hg, r, stage, ss, sbuf);
    else
      kernels::threshold_stage(v, hg, r, stage, ss, solo);
  }
  return kernels::threshold_search_fstar(v, ss);
}

// kThresholdBatch replications' y* .. r at once (threshold_batch.hpp); the AVX-512 clone is
// built without FMA contraction (-ffp-contract=off), so every clone gives the same bits.
constexpr int kThresholdBatch = ThresholdBatch::W;
__attribute__((target_clones("avx512f", "avx2", "default")))
void threshold_project_batch(ThresholdBatch& tb, const kernels::ThresholdBootView& v, const double* QL,
                             std::uint64_t b0, int nb, double* s0) {
  tb.project(v, QL, b0, nb, s0);
}

// C (m x nb) = A (m x d, row-major) B (d x nb, row-major), or C -= A B with `subtract`. Each
// output is summed over d in order, 32 replications at a time in registers; no fused
// multiply-add, so both clones and any chunk size give the same bits.
__attribute__((target_clones("avx2", "default")))
void gemm_rows(const double* A, std::size_t m, std::size_t d, const double* B, std::size_t nb, double* C,
               bool subtract) {
  for (std::size_t i = 0; i < m; ++i) {
    const double* a = A + i * d;
    double* c = C + i * nb;
    std::size_t b0 = 0;
    // eight independent accumulators hide the add latency
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

// For a chunk of nb replications with weights V (G x nb, row-major): the numerators
// N[p * q + j] and the denominator pieces D (q = 1: [p1 * P + p2]; q > 1: [j * q + l]).
void evaluate(const WildSpec& sp, const double* V, std::size_t nb, std::vector<std::vector<double>>& N,
              std::vector<std::vector<double>>& D, std::vector<double>& r1, std::vector<double>& scratch) {
  const std::size_t P = static_cast<std::size_t>(sp.n_part), S = sp.n_terms();
  const std::size_t q = static_cast<std::size_t>(sp.q), G = static_cast<std::size_t>(sp.n_clu);
  const std::size_t kl = static_cast<std::size_t>(sp.kl);
  N.assign(P * q, std::vector<double>(nb, 0.0));
  const std::size_t n_d = q == 1 ? P * P : q * q;
  D.assign(n_d, std::vector<double>(nb, 0.0));
  const std::size_t rows1 = sp.rows1();
  r1.resize(P * rows1 * nb);
  for (std::size_t p = 0; p < P; ++p) {
    double* R1 = r1.data() + p * rows1 * nb;
    // R1_p = M1_p V: the numerators and the shared factors at once
    gemm_rows(sp.m1[p].data(), rows1, G, V, nb, R1, false);
    for (std::size_t j = 0; j < q; ++j) std::copy(R1 + j * nb, R1 + (j + 1) * nb, N[p * q + j].begin());
  }
  for (std::size_t s = 0; s < S; ++s) {
    const std::size_t C = static_cast<std::size_t>(sp.n_rows[s]);
    const std::size_t n_z = P * q;
    scratch.resize(n_z * C * nb);
    for (std::size_t p = 0; p < P; ++p)
      for (std::size_t j = 0; j < q; ++j) {
        double* Z = scratch.data() + (p * q + j) * C * nb;
        const std::size_t idx = (p * q + j) * S + s;
        if (sp.dense) {
          gemm_rows(sp.kd[idx].data(), C, G, V, nb, Z, false);
          continue;
        }
        // Z = T1 V (sparse cells) - [P | F'] [QV; GWV]
        std::fill(Z, Z + C * nb, 0.0);
        const std::vector<double>& t1 = sp.t1[idx];
        for (std::size_t e = 0; e < t1.size(); ++e) {
          const double c = t1[e];
          double* dst = Z + static_cast<std::size_t>(sp.cell_c[s][e]) * nb;
          const double* vg = V + static_cast<std::size_t>(sp.cell_g[s][e]) * nb;
          for (std::size_t b = 0; b < nb; ++b) dst[b] += c * vg[b];
        }
        const double* R1 = r1.data() + (p * rows1 + q) * nb;
        gemm_rows(sp.pf[j * S + s].data(), C, kl, R1, nb, Z, true);
      }
    // D_x += w_S sum_c Za Zb
    for (std::size_t x = 0; x < n_d; ++x) {
      const std::size_t za = q == 1 ? x / P : x / q, zb = q == 1 ? x % P : x % q;
      if (q == 1 && za > zb) continue;  // symmetric: D[1][0] = D[0][1]
      accumulate_products(scratch.data() + za * C * nb, scratch.data() + zb * C * nb, C, nb, sp.term_weight[s],
                          D[x].data());
    }
  }
  if (q == 1 && P == 2) D[2] = D[1];
}

// Exceedance counts of replications [b0, b1): the statistics into a buffer (a loop that
// vectorizes, division and square root included), then the comparisons four at a time. The
// same rule as kernels::count_stat, which the device and the tests use.
template <bool Inclusive>
__attribute__((always_inline)) inline BootCounts count_block(const WildCoefView& cf, double delta, double t,
                                                             double tol, Pairs pairs, std::size_t b0,
                                                             std::size_t b1, double* s) {
  const std::size_t m = b1 - b0;
  const double* n0 = cf.n0 + b0;
  const double* d0 = cf.d0 + b0;
  if (cf.n1) {
    const double* n1 = cf.n1 + b0;
    const double* d1 = cf.d1 + b0;
    const double* d2 = cf.d2 + b0;
    for (std::size_t b = 0; b < m; ++b)
      s[b] = (n0[b] + delta * n1[b]) / std::sqrt(d0[b] + 2 * delta * d1[b] + delta * delta * d2[b]);
  } else {
    const double z = 0.0;  // the same expression with n1 = d1 = d2 = 0, so the bits agree
    for (std::size_t b = 0; b < m; ++b)
      s[b] = (n0[b] + delta * z) / std::sqrt(d0[b] + 2 * delta * z + delta * delta * z);
  }
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
  BootCounts c;
  const std::int64_t mult = pairs == Pairs::kSingle ? 1 : 2;
  c.finite = F * mult;
  c.abs = AB * mult;
  c.upper = pairs == Pairs::kNegated ? UP + UP2 : UP * mult;
  c.lower = pairs == Pairs::kNegated ? LO + LO2 : LO * mult;
  return c;
}

__attribute__((target_clones("avx2", "default")))
BootCounts count_range(const WildCoefView& cf, double delta, double t, double tol, bool inclusive, Pairs pairs,
                       std::size_t b0, std::size_t b1, double* buf) {
  return inclusive ? count_block<true>(cf, delta, t, tol, pairs, b0, b1, buf)
                   : count_block<false>(cf, delta, t, tol, pairs, b0, b1, buf);
}

// An exception must not leave an OpenMP region (std::terminate would end the process, a signal
// where the CLI promises exit 2 or 3): each iteration runs in `guard`, which keeps the first
// exception and makes the remaining iterations no-ops; `rethrow` raises it after the region.
// Per-thread buffers are therefore made inside the first guarded iteration, not before the loop.
class RegionErrors {
 public:
  template <class F>
  void guard(F&& f) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(m_);
      if (!first_) first_ = std::current_exception();
      failed_.store(true);
    }
  }
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex m_;
  std::exception_ptr first_;
};

// Counts summed over threads (integers: the same total in any order).
#pragma omp declare reduction(count_sum : BootCounts : omp_out = omp_out + omp_in) initializer(omp_priv = BootCounts{})

BootCounts count_all(const WildCoefView& cf, double delta, double t, double tol, bool inclusive, Pairs pairs) {
  const std::size_t m = static_cast<std::size_t>(cf.n_rep), block = 8192;
  const std::size_t n_blocks = (m + block - 1) / block;
  BootCounts total;
  RegionErrors errors;
#pragma omp parallel reduction(count_sum : total)
  {
    std::vector<double> buf;
#pragma omp for schedule(static)
    for (std::ptrdiff_t bi = 0; bi < static_cast<std::ptrdiff_t>(n_blocks); ++bi)
      errors.guard([&] {
        buf.resize(block);
        const std::size_t b0 = static_cast<std::size_t>(bi) * block, b1 = std::min(m, b0 + block);
        total = total + count_range(cf, delta, t, tol, inclusive, pairs, b0, b1, buf.data());
      });
  }
  errors.rethrow();
  return total;
}

class CpuReplicates final : public WildReplicates {
 public:
  CpuReplicates(std::size_t n, bool two_parts, Pairs pairs) : pairs_(pairs) {
    n0_.resize(n);
    d0_.resize(n);
    if (two_parts) {
      n1_.resize(n);
      d1_.resize(n);
      d2_.resize(n);
    }
  }
  WildCoefView view() const {
    WildCoefView v;
    v.n0 = n0_.data();
    v.d0 = d0_.data();
    if (!n1_.empty()) {
      v.n1 = n1_.data();
      v.d1 = d1_.data();
      v.d2 = d2_.data();
    }
    v.n_rep = static_cast<std::int64_t>(n0_.size());
    return v;
  }
  BootCounts count(double delta, double t, double tol, bool inclusive) const override {
    return count_all(view(), delta, t, tol, inclusive, pairs_);
  }
  std::uint64_t size() const override { return n0_.size(); }
  std::vector<double> n0_, n1_, d0_, d1_, d2_;

 private:
  Pairs pairs_;
};

// One Gray-code range, the shared PB_HD walk compiled with and without AVX2.
__attribute__((target_clones("avx2", "default")))
BootCounts gray_range(const kernels::GrayProblem& p, std::uint64_t lo, std::uint64_t hi) {
  return kernels::gray_walk_range(p, lo, hi);
}

// V (G x nb, row-major): the weights of replications b0 .. b0+nb-1
void fill_weights(std::uint64_t seed, kernels::WeightType type, bool enumerate, std::uint64_t b0, std::size_t nb,
                  std::int32_t G, double* V) {
  for (std::size_t b = 0; b < nb; ++b) {
    if (enumerate) {
      for (std::int32_t g = 0; g < G; ++g)
        V[static_cast<std::size_t>(g) * nb + b] = kernels::enumerated_weight(b0 + b, static_cast<std::uint32_t>(g));
    } else {
      kernels::wild_weights_row(seed, b0 + b, static_cast<std::uint32_t>(G), type, V + b, nb);
    }
  }
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(std::string why) : why_(std::move(why)) {}
  Device device() const override { return Device::kCpu; }
  std::string name() const override { return "cpu"; }
  std::string describe() const override { return "backend: cpu (" + why_ + ")"; }

  std::vector<double> wild_weights(std::uint64_t seed, kernels::WeightType type, bool enumerate, std::uint64_t b0,
                                   std::size_t nb, std::int32_t G) const override {
    std::vector<double> V(static_cast<std::size_t>(G) * nb);
    fill_weights(seed, type, enumerate, b0, nb, G, V.data());
    return V;
  }

  WildRun wild_replicates(const WildSpec& sp) const override {
    const std::uint64_t n_rep = sp.n_rep;
    const std::int32_t G = sp.n_clu;
    const int q = sp.q;
    const Pairs pairs = wild_pairs(sp);
    std::size_t chunk = sp.chunk;
    if (chunk == 0) chunk = default_wild_chunk(sp);
    const std::size_t n_chunks = static_cast<std::size_t>((n_rep + chunk - 1) / chunk);
    // coefficients of every replication (for the CI); without keep_coefs only chunk-sized ones
    auto reps = std::make_unique<CpuReplicates>(sp.keep_coefs ? n_rep : 0, q == 1 && sp.n_part == 2, pairs);
    // counts are integers, so summing them per thread and then across threads gives the same
    // total in any order: memory stays constant in n_rep without keep_coefs
    BootCounts total;
    WildRun run;
    run.trace.assign(static_cast<std::size_t>(std::min<std::uint64_t>(sp.trace_keep, n_rep)), 0.0);
    RegionErrors errors;
#pragma omp parallel reduction(count_sum : total)
    {
      std::vector<double> V, scratch, r1, buf;
      std::vector<std::vector<double>> N, D;
      std::unique_ptr<CpuReplicates> local;
#pragma omp for schedule(dynamic, 1)
      for (std::ptrdiff_t ci = 0; ci < static_cast<std::ptrdiff_t>(n_chunks); ++ci) errors.guard([&] {
        if (!local) local = std::make_unique<CpuReplicates>(sp.keep_coefs ? 0 : chunk, q == 1 && sp.n_part == 2, pairs);
        const std::uint64_t b0 = static_cast<std::uint64_t>(ci) * chunk;
        const std::size_t nb = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, n_rep - b0));
        V.resize(static_cast<std::size_t>(G) * nb);
        fill_weights(sp.seed, sp.weight, sp.enumerate, b0, nb, G, V.data());
        evaluate(sp, V.data(), nb, N, D, r1, scratch);
        CpuReplicates& dst = sp.keep_coefs ? *reps : *local;
        const std::size_t off = sp.keep_coefs ? static_cast<std::size_t>(b0) : 0;
        if (q == 1) {
          std::copy(N[0].begin(), N[0].begin() + nb, dst.n0_.begin() + off);
          std::copy(D[0].begin(), D[0].begin() + nb, dst.d0_.begin() + off);
          if (sp.n_part == 2) {
            std::copy(N[1].begin(), N[1].begin() + nb, dst.n1_.begin() + off);
            std::copy(D[1].begin(), D[1].begin() + nb, dst.d1_.begin() + off);
            std::copy(D[3].begin(), D[3].begin() + nb, dst.d2_.begin() + off);
          }
        } else {
          // F = N' D^-1 N / q, stored with d0 = 1
          Eigen::MatrixXd Dm(q, q);
          Eigen::VectorXd Nv(q);
          for (std::size_t b = 0; b < nb; ++b) {
            for (int j = 0; j < q; ++j) {
              Nv(j) = N[j][b];
              for (int l = 0; l < q; ++l) Dm(j, l) = D[j * q + l][b];
            }
            dst.n0_[off + b] = Nv.dot(Dm.ldlt().solve(Nv)) / q;
            dst.d0_[off + b] = 1.0;
          }
        }
        WildCoefView v = dst.view();
        v.n0 += off;
        v.d0 += off;
        if (v.n1) {
          v.n1 += off;
          v.d1 += off;
          v.d2 += off;
        }
        v.n_rep = static_cast<std::int64_t>(nb);
        buf.resize(nb);
        total = total + count_range(v, sp.count_delta, sp.count_t, sp.count_tol, sp.inclusive, pairs, 0, nb, buf.data());
        if (sp.progress) sp.progress->advance(nb);
        for (std::size_t b = 0; b < nb && b0 + b < run.trace.size(); ++b)
          run.trace[b0 + b] = kernels::wild_t(v.n0[b], v.n1 ? v.n1[b] : 0.0, v.d0[b], v.d1 ? v.d1[b] : 0.0,
                                              v.d2 ? v.d2[b] : 0.0, sp.count_delta);
      });
    }
    errors.rethrow();
    run.counts = total;
    if (sp.keep_coefs) run.reps = std::move(reps);
    return run;
  }

  BootCounts wild_enumerate(const kernels::GrayProblem& p, ProgressSink* progress) const override {
    // ranges of at most 2^20 sign vectors (under a second each), at least 256 of them; integer
    // counts, so the sum does not depend on the split or the order
    const std::uint64_t n_vec = std::uint64_t{1} << (p.n_clu - 1);
    const std::int64_t n_part = static_cast<std::int64_t>(std::max<std::uint64_t>(256, n_vec >> 20));
    BootCounts total;
#pragma omp parallel for schedule(dynamic, 1) reduction(count_sum : total)
    for (std::int64_t part = 0; part < n_part; ++part) {
      const std::uint64_t lo = static_cast<std::uint64_t>(static_cast<unsigned __int128>(n_vec) * part / n_part);
      const std::uint64_t hi = static_cast<std::uint64_t>(static_cast<unsigned __int128>(n_vec) * (part + 1) / n_part);
      total = total + gray_range(p, lo, hi);
      if (progress) progress->advance(hi - lo);
    }
    return total;
  }

  std::vector<double> threshold_fstar(const ThresholdBootSpec& sp, const ThresholdGram& gram) const override {
    const kernels::ThresholdBootView& v = sp.view;
    const HostGramAccess hg{gram.diag(), &gram};
    std::vector<double> fstar(static_cast<std::size_t>(sp.n_boot));
    RegionErrors errors;
    if (v.n_q > kernels::kMaxQ) {  // one replication at a time (Q'y* column by column)
#pragma omp parallel
      {
        std::vector<double> buf;
#pragma omp for schedule(dynamic, 8)
        for (std::int64_t b = 0; b < sp.n_boot; ++b) errors.guard([&] {
          if (buf.empty()) buf.resize(static_cast<std::size_t>(kernels::threshold_scratch_size(v)));
          const kernels::ThresholdScratch s = kernels::threshold_scratch_at(v, buf.data());
          fstar[static_cast<std::size_t>(b)] = threshold_replicate(v, hg, static_cast<std::uint64_t>(b), s);
          if (sp.progress) sp.progress->advance(1);
        });
      }
      errors.rethrow();
      return fstar;
    }
    // batches of kThresholdBatch replications: y* .. r together, then each one's search. A job
    // of under about 10 ms on one thread runs on one: starting a process's thread team costs
    // 0.1 ms on most machines but 1-7 ms on small VMs (this project's 2-vCPU one: the xthreg
    // example's 300 replications took 4.4 ms on one thread, a median 5.2 ms on two).
    const std::int64_t n_batch = (sp.n_boot + kThresholdBatch - 1) / kThresholdBatch;
    const std::vector<double> QL = ThresholdBatch::lane_major(v);
    const double work = static_cast<double>(sp.n_boot) *
                        (static_cast<double>(v.n_obs) * (v.n_q + 2) + static_cast<double>(v.n_grid) * v.p * v.k);
    const bool team = work > sp.min_team_work;
#pragma omp parallel if (team)
    {
      std::unique_ptr<ThresholdBatch> tb;
      std::vector<double> r, sbuf;
      double s0[kThresholdBatch];
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t bb = 0; bb < n_batch; ++bb) errors.guard([&] {
        if (!tb) {
          tb = std::make_unique<ThresholdBatch>(v);
          r.resize(static_cast<std::size_t>(v.n_grid * v.p));
          sbuf.resize(static_cast<std::size_t>(v.n_grid));
        }
        const std::int64_t b0 = bb * kThresholdBatch;
        const int nb = static_cast<int>(std::min<std::int64_t>(kThresholdBatch, sp.n_boot - b0));
        threshold_project_batch(*tb, v, QL.data(), static_cast<std::uint64_t>(b0), nb, s0);
        for (int i = 0; i < nb; ++i) {
          tb->extract(v, i, r.data());
          fstar[static_cast<std::size_t>(b0 + i)] = threshold_search_one(v, hg, r.data(), s0[i], sbuf.data());
        }
        if (sp.progress) sp.progress->advance(static_cast<std::uint64_t>(nb));
      });
    }
    errors.rethrow();
    return fstar;
  }

  OlsBatchResult batched_ols(const OlsBatch& bt) const override {
    const std::int64_t n = bt.n_obs, k = bt.n_reg;
    OlsBatchResult r;
    r.beta.assign(static_cast<std::size_t>(k * bt.n_batch), 0.0);
    r.ssr.assign(static_cast<std::size_t>(bt.n_batch), 0.0);
    r.status.assign(static_cast<std::size_t>(bt.n_batch), 0);
#pragma omp parallel
    {
      std::vector<double> A(static_cast<std::size_t>(k * k));
#pragma omp for schedule(static)
      for (std::int64_t b = 0; b < bt.n_batch; ++b) {
        const double* X = bt.X + b * bt.stride_x;
        const double* y = bt.y + b * bt.stride_y;
        double* beta = r.beta.data() + b * k;
        // X'X (lower triangle) and X'y, each a dot product summed in observation order
        for (std::int64_t j = 0; j < k; ++j) {
          for (std::int64_t l = j; l < k; ++l) {
            double s = 0;
            for (std::int64_t i = 0; i < n; ++i) s += X[i + l * n] * X[i + j * n];
            A[static_cast<std::size_t>(l + j * k)] = s;
          }
          double s = 0;
          for (std::int64_t i = 0; i < n; ++i) s += X[i + j * n] * y[i];
          beta[j] = s;
        }
        const auto st = kernels::cholesky_solve(static_cast<int>(k), A.data(), beta, bt.rel_tol);
        r.status[static_cast<std::size_t>(b)] = static_cast<int>(st);
        double ssr = 0;
        if (st == kernels::SolveStatus::kOk) {
          for (std::int64_t i = 0; i < n; ++i) {
            double e = y[i];
            for (std::int64_t j = 0; j < k; ++j) e -= X[i + j * n] * beta[j];
            ssr += e * e;
          }
        } else {
          ssr = std::numeric_limits<double>::quiet_NaN();
        }
        r.ssr[static_cast<std::size_t>(b)] = ssr;
      }
    }
    return r;
  }

 private:
  std::string why_;
};
}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const std::string& why) {
  return std::make_unique<CpuBackend>(why);
}

}  // namespace panelboot::cpu
