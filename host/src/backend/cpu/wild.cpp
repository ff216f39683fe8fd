// The wild bootstrap's replications on the CPU (cuda/wild.cu is its twin). Batched products are
// summed in a fixed order, one replication a vector lane, in AVX-512, AVX2 and baseline code
// built without FMA, so the bits do not depend on the instruction set, the thread count or the
// chunk size.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backend/cpu/cpu.hpp"
#include "backend/cpu/doubles_of.hpp"
#include "panelboot/error.hpp"

namespace panelboot::cpu {

// Four doubles (doubles_of.hpp): AVX in the AVX2 clone, SSE pairs in the baseline one.
typedef DoublesOf<4>::type V4;
typedef std::int64_t V4i __attribute__((vector_size(32)));
inline V4 load4(const double* p) {
  V4 x;
  std::memcpy(&x, p, sizeof x);
  return x;
}
inline void store4(double* p, V4 x) { std::memcpy(p, &x, sizeof x); }

// Eight doubles: one AVX-512 register, for the avx512f functions only (GCC's code for 64-byte
// vectors without AVX-512 goes through the stack: the AVX2 and baseline code takes V4).
typedef DoublesOf<8>::type V8;

// One row of C over replications [b0, b1) (nb: the row stride of B and C): each output summed
// over d in order.
inline __attribute__((always_inline)) void gemm_row_tail(const double* a, std::size_t d,
                                                         const double* B, std::size_t nb,
                                                         std::size_t b0, std::size_t b1, double* c,
                                                         bool subtract) {
  for (; b0 < b1; ++b0) {
    double acc = 0;
    for (std::size_t g = 0; g < d; ++g) acc += a[g] * B[g * nb + b0];
    c[b0] = subtract ? c[b0] - acc : acc;
  }
}

template <class Vec>
inline __attribute__((always_inline)) Vec load_vec(const double* p) {
  Vec x;
  std::memcpy(&x, p, sizeof x);
  return x;
}
template <class Vec>
inline __attribute__((always_inline)) void store_vec(double* p, Vec x) {
  std::memcpy(p, &x, sizeof x);
}

// Rows i0 .. i0+R-1 of C over replications [b_lo, b_hi) (nb: the row stride of B and C), 32
// replications at a time in registers: R x (32 / lanes) accumulators of Vec (V8: eight zmm
// accumulators in the AVX-512 clone; V4: eight ymm ones in the AVX2 clone, where GCC's code for
// 64-byte vectors goes through the stack). Each lane is one replication, so the vector width
// changes no bit.
template <int R, class Vec>
inline __attribute__((always_inline)) void gemm_row_block(const double* A, std::size_t i0,
                                                          std::size_t d, const double* B,
                                                          std::size_t nb, double* C, bool subtract,
                                                          std::size_t b_lo, std::size_t b_hi) {
  constexpr int W = sizeof(Vec) / sizeof(double), NV = 32 / W;
  std::size_t b0 = b_lo;
  for (; b0 + 32 <= b_hi; b0 += 32) {
    Vec acc[R][NV] = {};
    for (std::size_t g = 0; g < d; ++g) {
      const double* bg = B + g * nb + b0;
      Vec bv[NV];
      for (int r = 0; r < NV; ++r) {
        bv[r] = load_vec<Vec>(bg + W * r);
        // held in a register (the AVX-512 function's): GCC would load it again for each row
        if constexpr (W == 8) asm("" : "+v"(bv[r]));
      }
      for (int i = 0; i < R; ++i) {
        const Vec av = Vec{} + A[(i0 + i) * d + g];
        for (int r = 0; r < NV; ++r) acc[i][r] += av * bv[r];
      }
    }
    for (int i = 0; i < R; ++i) {
      double* c = C + (i0 + i) * nb + b0;
      for (int r = 0; r < NV; ++r)
        store_vec(c + W * r, subtract ? load_vec<Vec>(c + W * r) - acc[i][r] : acc[i][r]);
    }
  }
  for (int i = 0; i < R; ++i)
    gemm_row_tail(A + (i0 + i) * d, d, B, nb, b0, b_hi, C + (i0 + i) * nb, subtract);
}

// AVX2 and the baseline: one row at a time in four-double vectors (eight accumulators; the
// sixteen ymm registers hold no more), every row for one block of 32 replications before the
// next, so that the block of B (d x 32) is read from L1 by all rows but the first.
__attribute__((target_clones("avx2", "default"))) void gemm_rows_narrow(
    const double* A, std::size_t m, std::size_t d, const double* B, std::size_t nb, double* C,
    bool subtract) {
  std::size_t b = 0;
  for (; b + 32 <= nb; b += 32)
    for (std::size_t i = 0; i < m; ++i)
      gemm_row_block<1, V4>(A, i, d, B, nb, C, subtract, b, b + 32);
  for (std::size_t i = 0; i < m; ++i)
    gemm_row_tail(A + i * d, d, B, nb, b, nb, C + i * nb, subtract);
}

// AVX-512: four rows at a time share each load of B (32 zmm registers hold the 16 accumulators,
// the four loads of B and a broadcast), then two, then one. Holding the loads in registers cut
// the dense form's time by a quarter, four rows a block instead of two by a fifth more
// (bench/RESULTS.md).
__attribute__((target("avx512f"))) void gemm_rows_wide(const double* A, std::size_t m,
                                                       std::size_t d, const double* B,
                                                       std::size_t nb, double* C, bool subtract) {
  std::size_t i = 0;
  for (; i + 4 <= m; i += 4) gemm_row_block<4, V8>(A, i, d, B, nb, C, subtract, 0, nb);
  for (; i + 2 <= m; i += 2) gemm_row_block<2, V8>(A, i, d, B, nb, C, subtract, 0, nb);
  for (; i < m; ++i) gemm_row_block<1, V8>(A, i, d, B, nb, C, subtract, 0, nb);
}

// (cpu.hpp) C (m x nb) = A (m x d, row-major) B (d x nb, row-major), or C -= A B with `subtract`.
// Each output is summed over d in order, one replication a vector lane, with no fused
// multiply-add: every instruction set, row blocking and chunk size gives the same bits.
void gemm_rows(const double* A, std::size_t m, std::size_t d, const double* B, std::size_t nb, double* C,
               bool subtract) {
  if (has_avx512f())
    gemm_rows_wide(A, m, d, B, nb, C, subtract);
  else
    gemm_rows_narrow(A, m, d, B, nb, C, subtract);
}

// Philox4x32-10 (Random123's, as kernels::philox_block) for W counters at once (U: W 64-bit
// lanes): lane l holds replication b0 + l, every 32-bit word in a 64-bit lane (the products need
// 64 bits).
typedef std::uint64_t U8 __attribute__((vector_size(64)));
typedef std::uint64_t U4 __attribute__((vector_size(32)));
template <class U>
struct PhiloxWords {
  U v[4];
};

template <class U>
inline __attribute__((always_inline)) PhiloxWords<U> philox_lanes(std::uint64_t seed,
                                                                  std::uint64_t b0,
                                                                  std::uint32_t block,
                                                                  std::uint32_t stream) {
  constexpr int W = sizeof(U) / sizeof(std::uint64_t);
  constexpr std::uint64_t kLow = 0xffffffffu;
  U b;
  for (int l = 0; l < W; ++l) b[l] = b0 + static_cast<std::uint64_t>(l);
  U c0 = b & kLow, c1 = b >> 32, c2 = U{} + block, c3 = U{} + stream;
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const U p0 = c0 * 0xD2511F53u, p1 = c2 * 0xCD9E8D57u;
    const U n0 = (p1 >> 32) ^ c1 ^ k0, n2 = (p0 >> 32) ^ c3 ^ k1;
    c1 = p1 & kLow;
    c3 = p0 & kLow;
    c0 = n0;
    c2 = n2;
  }
  return {{c0, c1, c2, c3}};
}

// Rademacher weights of replications b0 .. b0+nbw-1 (nbw a multiple of W) into V (G x nb,
// row-major): each Philox block gives 128 clusters' signs for W replications, stored as W
// consecutive doubles of a row. U and Vec: W lanes of 64-bit integers and doubles.
template <class U, class Vec>
inline __attribute__((always_inline)) void rademacher_rows(std::uint64_t seed, std::uint64_t b0,
                                                           std::size_t nbw, std::uint32_t G,
                                                           double* V, std::size_t nb) {
  constexpr int W = sizeof(U) / sizeof(std::uint64_t);
  const Vec plus = Vec{} + 1.0, minus = -plus;
  for (std::size_t b = 0; b < nbw; b += W)
    for (std::uint32_t g0 = 0; g0 < G; g0 += 128) {
      const PhiloxWords<U> r = philox_lanes<U>(seed, b0 + b, g0 >> 7, 0);
      const std::uint32_t end = G - g0 < 128 ? G - g0 : 128;
      for (std::uint32_t j = 0; j < end; ++j) {
        const U bit = (r.v[j >> 5] >> (j & 31)) & 1u;
        store_vec(V + static_cast<std::size_t>(g0 + j) * nb + b, bit != 0 ? plus : minus);
      }
    }
}

// Eight replications at a time in AVX-512; four in AVX2 and the baseline (64-byte vectors
// would go through the stack there).
__attribute__((target("avx512f"))) void rademacher_rows_wide(std::uint64_t seed, std::uint64_t b0,
                                                             std::size_t nb8, std::uint32_t G,
                                                             double* V, std::size_t nb) {
  rademacher_rows<U8, V8>(seed, b0, nb8, G, V, nb);
}

__attribute__((target_clones("avx2", "default"))) void rademacher_rows_narrow(
    std::uint64_t seed, std::uint64_t b0, std::size_t nb8, std::uint32_t G, double* V,
    std::size_t nb) {
  rademacher_rows<U4, V4>(seed, b0, nb8, G, V, nb);
}

void rademacher_weight_rows(std::uint64_t seed, std::uint64_t b0, std::size_t nb8, std::uint32_t G,
                            double* V, std::size_t nb) {
  if (has_avx512f())
    rademacher_rows_wide(seed, b0, nb8, G, V, nb);
  else
    rademacher_rows_narrow(seed, b0, nb8, G, V, nb);
}

// (cpu.hpp) kernels::wild_weights_block's V, the same bits: Rademacher draws eight replications at
// a time, the rest (other weights, enumeration, the last nb % 8) through the shared kernel.
void wild_weights_block(std::uint64_t seed, kernels::WeightType type, bool enumerate,
                        std::uint64_t b0, std::size_t nb, std::int32_t G, double* V) {
  const std::uint32_t g = static_cast<std::uint32_t>(G);
  std::size_t done = 0;
  if (type == kernels::WeightType::kRademacher && !enumerate) {
    done = nb - nb % 8;
    rademacher_weight_rows(seed, b0, done, g, V, nb);
  }
  for (std::size_t b = done; b < nb; ++b)
    kernels::wild_weights_column(seed, type, enumerate, b0 + b, g, V + b, nb);
}

namespace {

using kernels::WildCoefView;


// D[b] += w sum_c Za[c, b] Zb[c, b]
__attribute__((target_clones("avx2", "default")))
void accumulate_products(const double* Za, const double* Zb, std::size_t C, std::size_t nb, double w, double* D) {
  for (std::size_t c = 0; c < C; ++c) {
    const double* a = Za + c * nb;
    const double* b = Zb + c * nb;
    for (std::size_t i = 0; i < nb; ++i) D[i] += w * (a[i] * b[i]);
  }
}

// Z (C x nb, row-major) = T1 V on the cells of one term (CSR by error cluster): each row the
// sum over its cells in order.
void cells_product(const std::int32_t* row_ptr, const std::int32_t* cell_g, const double* t1, std::size_t C,
                   const double* V, std::size_t nb, double* Z) {
  std::fill(Z, Z + C * nb, 0.0);
  for (std::size_t c = 0; c < C; ++c) {
    double* dst = Z + c * nb;
    for (std::int32_t e = row_ptr[c]; e < row_ptr[c + 1]; ++e) {
      const double t = t1[e];
      const double* vg = V + static_cast<std::size_t>(cell_g[e]) * nb;
      for (std::size_t b = 0; b < nb; ++b) dst[b] += t * vg[b];
    }
  }
}

// One thread's buffers for a batch of nb replications: the weights V (G x nb, row-major), the
// numerators N[p * q + j] and the denominator pieces D (q = 1: [p1 * P + p2]; q > 1: [j * q + l]).
struct WildBatch {
  std::vector<double> V, r1, scratch, buf;
  std::vector<std::vector<double>> N, D;
};

// N and D of a batch from its weights.
void evaluate(const WildProblem& pr, std::size_t nb, WildBatch& w) {
  const std::size_t P = static_cast<std::size_t>(pr.n_part), S = pr.n_terms();
  const std::size_t q = static_cast<std::size_t>(pr.q), G = static_cast<std::size_t>(pr.n_clu);
  const std::size_t kl = static_cast<std::size_t>(pr.kl), rows1 = pr.rows1();
  const double* V = w.V.data();
  w.N.assign(P * q, std::vector<double>(nb, 0.0));
  const std::size_t n_d = q == 1 ? P * P : q * q;
  w.D.assign(n_d, std::vector<double>(nb, 0.0));
  w.r1.resize(P * rows1 * nb);
  for (std::size_t p = 0; p < P; ++p) {
    double* R1 = w.r1.data() + p * rows1 * nb;
    // R1_p = M1_p V: the numerators and the shared factors at once
    gemm_rows(pr.m1_of(p), rows1, G, V, nb, R1, false);
    for (std::size_t j = 0; j < q; ++j) std::copy(R1 + j * nb, R1 + (j + 1) * nb, w.N[p * q + j].begin());
  }
  for (std::size_t s = 0; s < S; ++s) {
    const std::size_t C = static_cast<std::size_t>(pr.n_rows[s]);
    w.scratch.resize(P * q * C * nb);
    for (std::size_t p = 0; p < P; ++p)
      for (std::size_t j = 0; j < q; ++j) {
        double* Z = w.scratch.data() + (p * q + j) * C * nb;
        if (pr.dense) {
          gemm_rows(pr.kd_of(p, j, s), C, G, V, nb, Z, false);
          continue;
        }
        // Z = T1 V (sparse cells) - [P | F'] [QV; GWV]
        cells_product(pr.row_ptr_of(s), pr.cell_g_of(s), pr.t1_of(p, j, s), C, V, nb, Z);
        gemm_rows(pr.pf_of(j, s), C, kl, w.r1.data() + (p * rows1 + q) * nb, nb, Z, true);
      }
    // D_x += w_S sum_c Za Zb
    for (std::size_t x = 0; x < n_d; ++x) {
      const std::size_t za = q == 1 ? x / P : x / q, zb = q == 1 ? x % P : x % q;
      if (q == 1 && za > zb) continue;  // symmetric: D[1][0] = D[0][1]
      accumulate_products(w.scratch.data() + za * C * nb, w.scratch.data() + zb * C * nb, C, nb, pr.term_weight[s],
                          w.D[x].data());
    }
  }
  if (q == 1 && P == 2) w.D[2] = w.D[1];
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

// A count of one replication, in the multiply-adds of wild_work_per_replication.
constexpr double kCountWork = 16;

BootCounts count_all(const WildCoefView& cf, double delta, double t, double tol, bool inclusive, Pairs pairs,
                     double min_team_work) {
  const std::size_t m = static_cast<std::size_t>(cf.n_rep), block = 8192;
  const std::size_t n_blocks = (m + block - 1) / block;
  const bool team = n_blocks > 1 && static_cast<double>(m) * kCountWork > min_team_work;
  BootCounts total;
  RegionErrors errors;
#pragma omp parallel if (team) reduction(count_sum : total)
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
  CpuReplicates(std::size_t n, bool two_parts, Pairs pairs, double min_team_work)
      : pairs_(pairs), min_team_work_(min_team_work) {
    n0_.resize(n);
    d0_.resize(n);
    if (two_parts) {
      n1_.resize(n);
      d1_.resize(n);
      d2_.resize(n);
    }
  }
  // the coefficients of replications off .. off+n-1
  WildCoefView view(std::size_t off, std::size_t n) const {
    WildCoefView v;
    v.n0 = n0_.data() + off;
    v.d0 = d0_.data() + off;
    if (!n1_.empty()) {
      v.n1 = n1_.data() + off;
      v.d1 = d1_.data() + off;
      v.d2 = d2_.data() + off;
    }
    v.n_rep = static_cast<std::int64_t>(n);
    return v;
  }
  BootCounts count(double delta, double t, double tol, bool inclusive) const override {
    return count_all(view(0, n0_.size()), delta, t, tol, inclusive, pairs_, min_team_work_);
  }
  std::uint64_t size() const override { return n0_.size(); }
  WildCoefs coefficients() const override { return {n0_, n1_, d0_, d1_, d2_}; }
  std::vector<double> n0_, n1_, d0_, d1_, d2_;

 private:
  Pairs pairs_;
  double min_team_work_;
};

// The coefficients of a batch's nb replications into dst at off: q = 1 n0 = N_0, d0 = D_00
// (and n1, d1, d2 with two parts); q > 1 F = N' D^-1 N / q, stored with d0 = 1.
void store_coefs(const WildBatch& w, int q, int n_part, std::size_t nb, CpuReplicates& dst, std::size_t off) {
  if (q == 1) {
    std::copy(w.N[0].begin(), w.N[0].begin() + nb, dst.n0_.begin() + off);
    std::copy(w.D[0].begin(), w.D[0].begin() + nb, dst.d0_.begin() + off);
    if (n_part == 2) {
      std::copy(w.N[1].begin(), w.N[1].begin() + nb, dst.n1_.begin() + off);
      std::copy(w.D[1].begin(), w.D[1].begin() + nb, dst.d1_.begin() + off);
      std::copy(w.D[3].begin(), w.D[3].begin() + nb, dst.d2_.begin() + off);
    }
    return;
  }
  Eigen::MatrixXd Dm(q, q);
  Eigen::VectorXd Nv(q);
  for (std::size_t b = 0; b < nb; ++b) {
    for (int j = 0; j < q; ++j) {
      Nv(j) = w.N[j][b];
      for (int l = 0; l < q; ++l) Dm(j, l) = w.D[j * q + l][b];
    }
    dst.n0_[off + b] = Nv.dot(Dm.ldlt().solve(Nv)) / q;
    dst.d0_[off + b] = 1.0;
  }
}

// V (G x nb) of replications b0 .. b0+nb-1: the shared fill, compiled on its own (inlined into
// the batch below, its loop is compiled less tightly).
__attribute__((noinline)) void draw_weights(const WildRunOptions& o, std::uint64_t b0, std::size_t nb,
                                            std::int32_t G, double* V) {
  wild_weights_block(o.seed, o.weight, o.enumerate, b0, nb, G, V);
}

// Replications r0 .. r0+nb-1 of a run (r0 counted from o.b0): drawn, evaluated, stored in dst at
// off, traced below o.trace_keep, counted.
BootCounts run_batch(const WildProblem& pr, const WildRunOptions& o, Pairs pairs, std::uint64_t r0, std::size_t nb,
                     WildBatch& w, CpuReplicates& dst, std::size_t off, std::vector<double>& trace) {
  w.V.resize(static_cast<std::size_t>(pr.n_clu) * nb);
  draw_weights(o, o.b0 + r0, nb, pr.n_clu, w.V.data());
  evaluate(pr, nb, w);
  store_coefs(w, pr.q, pr.n_part, nb, dst, off);
  const WildCoefView v = dst.view(off, nb);
  w.buf.resize(nb);
  const BootCounts c = count_range(v, o.count_delta, o.count_t, o.count_tol, o.inclusive, pairs, 0, nb, w.buf.data());
  if (o.progress) o.progress->advance(nb);
  for (std::size_t b = 0; b < nb && r0 + b < trace.size(); ++b)
    trace[r0 + b] = kernels::wild_t(v.n0[b], v.n1 ? v.n1[b] : 0.0, v.d0[b], v.d1 ? v.d1[b] : 0.0,
                                    v.d2 ? v.d2[b] : 0.0, o.count_delta);
  return c;
}

// On the CPU a prepared problem is the problem itself: the batches read its arrays in place.
class CpuPreparedWild final : public PreparedWild {
 public:
  explicit CpuPreparedWild(const WildProblem& p) : pr_(p) {}
  WildRun run(const WildRunOptions& o) const override;

 private:
  const WildProblem& pr_;
};

WildRun CpuPreparedWild::run(const WildRunOptions& o) const {
  const Pairs pairs = wild_pairs(pr_, o);
  const bool two = pr_.q == 1 && pr_.n_part == 2;
  const std::size_t chunk = o.chunk ? o.chunk : default_wild_chunk(pr_);
  const std::size_t n_chunks = static_cast<std::size_t>((o.n_rep + chunk - 1) / chunk);
  // coefficients of every replication (for the CI); without keep_coefs only chunk-sized ones
  auto reps = std::make_unique<CpuReplicates>(o.keep_coefs ? o.n_rep : 0, two, pairs, o.min_team_work);
  // counts are integers, so summing them per thread and then across threads gives the same
  // total in any order: memory stays constant in n_rep without keep_coefs
  BootCounts total;
  WildRun run;
  run.trace.assign(static_cast<std::size_t>(std::min<std::uint64_t>(o.trace_keep, o.n_rep)), 0.0);
  // a small job runs on the calling thread: starting a thread team can cost more than it
  const bool team = n_chunks > 1 && static_cast<double>(o.n_rep) * wild_work_per_replication(pr_) > o.min_team_work;
  RegionErrors errors;
#pragma omp parallel if (team) reduction(count_sum : total)
  {
    WildBatch w;
    std::unique_ptr<CpuReplicates> local;
#pragma omp for schedule(dynamic, 1)
    for (std::ptrdiff_t ci = 0; ci < static_cast<std::ptrdiff_t>(n_chunks); ++ci) errors.guard([&] {
      if (!local) local = std::make_unique<CpuReplicates>(o.keep_coefs ? 0 : chunk, two, pairs, o.min_team_work);
      const std::uint64_t r0 = static_cast<std::uint64_t>(ci) * chunk;
      const std::size_t nb = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, o.n_rep - r0));
      CpuReplicates& dst = o.keep_coefs ? *reps : *local;
      total = total + run_batch(pr_, o, pairs, r0, nb, w, dst, o.keep_coefs ? static_cast<std::size_t>(r0) : 0, run.trace);
    });
  }
  errors.rethrow();
  run.counts = total;
  if (o.keep_coefs) run.reps = std::move(reps);
  return run;
}

}  // namespace

std::unique_ptr<PreparedWild> prepare_wild(const WildProblem& problem) {
  return std::make_unique<CpuPreparedWild>(problem);
}

std::unique_ptr<WildReplicates> host_wild_replicates(WildCoefs coefs, Pairs pairs, double min_team_work) {
  const std::size_t n = coefs.n0.size();
  if (coefs.d0.size() != n || (!coefs.n1.empty() && (coefs.n1.size() != n || coefs.d1.size() != n || coefs.d2.size() != n)))
    throw Error("host_wild_replicates: coefficient columns of unequal length");
  auto reps = std::make_unique<CpuReplicates>(0, false, pairs, min_team_work);
  reps->n0_ = std::move(coefs.n0);
  reps->n1_ = std::move(coefs.n1);
  reps->d0_ = std::move(coefs.d0);
  reps->d1_ = std::move(coefs.d1);
  reps->d2_ = std::move(coefs.d2);
  return reps;
}

}  // namespace panelboot::cpu
