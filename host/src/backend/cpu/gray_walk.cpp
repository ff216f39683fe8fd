// Exact enumeration on the CPU by the shared Gray-code walk (kernels/gray_walk.hpp; its twin,
// cuda/gray_walk.cu, runs the same function one GPU thread per range).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/cpu.hpp"

namespace panelboot::cpu {
namespace {

// Whole blocks walked by the arithmetic of kernels::gray_walk_range (so the same counts), eight
// states at a time. In a block the flips run 1 2 1 3 1 2 1 x (x = ctz of the group's start + 1,
// at least 4), so each group of eight states is seven flips of columns 1, 2 and 3 of H, held in
// registers with y, then one flip of any column. Every update is gray_walk_range's, rewritten
// exactly: with dv = -2 v_g = +-2, dv H_ag = +-(2 H_ag), dv C_g = +-(2 C_g), 2 dv y_g = +-4 y_g
// and dv dv H_gg = 4 H_gg are exact, so y +- 2H_g, num +- 2C_g and den + (+-4 y_g + 4H_gg) round
// as y + dv H_g, num + dv C_g and den + (2 dv y_g + dv dv H_gg) do. The pair counts of the eight
// states are PairCounter::add's comparisons as AVX-512 mask compares (PairCounter512). y's rows
// are padded to whole vectors of eight (kPad); the padding rows are never read. CPUs without
// AVX-512 walk one state at a time (gray_block_one_at_a_time).
constexpr int kPad = 8;
constexpr int kPadded = (kernels::kMaxGrayClusters + kPad - 1) / kPad * kPad;
typedef double V8 __attribute__((vector_size(sizeof(double) * kPad)));

// PairCounter::add for eight states with AVX-512F: each comparison a mask, counted by popcount.
// The predicates are the scalar operators' (ordered, false on NaN). (GCC's vector-extension
// compares go lane by lane here: AVX-512F alone cannot turn a mask into a vector.)
#define PB_AVX512 __attribute__((target("avx512f"))) inline
struct PairCounter512 {
  const kernels::PairCounter& pc;
  double up2, lo2;
  std::int64_t finite = 0, abs = 0, upper = 0, lower = 0;
  explicit PairCounter512(const kernels::PairCounter& c)
      : pc(c), up2(c.up_thr * c.up_thr), lo2(c.lo_thr * c.lo_thr) {}
  PB_AVX512 static int count(__mmask8 m) { return __builtin_popcount(static_cast<unsigned>(m)); }
  PB_AVX512 __mmask8 side(__m512d num2, __m512d th2den, double thr) const {
    if (pc.inclusive)
      return thr <= 0 ? _mm512_cmp_pd_mask(num2, th2den, _CMP_LE_OQ)
                      : _mm512_cmp_pd_mask(num2, th2den, _CMP_GE_OQ);
    return thr >= 0 ? _mm512_cmp_pd_mask(num2, th2den, _CMP_GT_OQ)
                    : _mm512_cmp_pd_mask(num2, th2den, _CMP_LT_OQ);
  }
  std::int64_t side_base(double thr) const { return pc.inclusive ? thr <= 0 : thr < 0; }
  PB_AVX512 void add(const V8& num_v, const V8& den_v) {
    const __m512d num = (__m512d)num_v, den = (__m512d)den_v;
    const __mmask8 ok = _mm512_cmp_pd_mask(den, _mm512_setzero_pd(), _CMP_GT_OQ) &
                        _mm512_cmp_pd_mask(den, _mm512_set1_pd(1.7976931348623157e308), _CMP_LE_OQ);
    const __m512d num2 = _mm512_mul_pd(num, num),
                  t2den = _mm512_mul_pd(_mm512_set1_pd(pc.t2_abs), den);
    finite += count(ok);
    abs += count(ok & (pc.inclusive ? _mm512_cmp_pd_mask(num2, t2den, _CMP_GE_OQ)
                                    : _mm512_cmp_pd_mask(num2, t2den, _CMP_GT_OQ)));
    upper += count(ok & side(num2, _mm512_mul_pd(_mm512_set1_pd(up2), den), pc.up_thr));
    lower += count(ok & side(num2, _mm512_mul_pd(_mm512_set1_pd(lo2), den), pc.lo_thr));
  }
  BootCounts counts() const {
    BootCounts c;
    c.finite = 2 * finite;
    c.abs = 2 * abs;
    c.upper = upper + side_base(pc.up_thr) * finite;
    c.lower = lower + side_base(pc.lo_thr) * finite;
    return c;
  }
};
#undef PB_AVX512

// H's columns doubled, C doubled and H's diagonal times four, padded (gray_padded_block's inputs)
struct PaddedGray {
  int Gp = 0;
  double H2[kPadded * kernels::kMaxGrayClusters] = {};
  double C2[kernels::kMaxGrayClusters] = {}, H4d[kernels::kMaxGrayClusters] = {};
  explicit PaddedGray(const kernels::GrayProblem& p) : Gp((p.n_clu + kPad - 1) / kPad * kPad) {
    const int G = p.n_clu;
    for (int g = 0; g < G; ++g) {
      for (int a = 0; a < G; ++a)
        H2[static_cast<std::size_t>(g) * Gp + a] = 2.0 * p.H[static_cast<std::size_t>(g) * G + a];
      C2[g] = 2.0 * p.C[g];
      H4d[g] = 4.0 * p.H[static_cast<std::size_t>(g) * G + g];  // dv dv H_gg with dv dv = 4
    }
  }
};

// One flip as a signed step: y + dy, num + dn and den + (f y_g + h4), where dy = dv H_g (as 2H_g
// signed), dn = dv C_g, f = 2 dv and h4 = dv dv H_gg; Neg: the opposite flip (dv -> -dv: y - dy,
// num - dn, -f), which is exact
struct SignedFlip {
  double dn = 0, f = 0, h4 = 0;
};

template <int NV, bool Neg>
PB_INLINE void step(const SignedFlip& sf, const V8* dy, double yg, V8* y, double& num,
                    double& den) {
  num = Neg ? num - sf.dn : num + sf.dn;
  den += (Neg ? -sf.f : sf.f) * yg + sf.h4;
  for (int k = 0; k < NV; ++k) y[k] = Neg ? y[k] - dy[k] : y[k] + dy[k];
}

// The signed step of flipping sign g from v_g: column g of 2H into dy (NV vectors), negated when
// dv = -2 v_g is negative
template <int NV>
PB_INLINE SignedFlip signed_flip(const PaddedGray& pg, int g, double vg, V8* dy) {
  const bool down = vg > 0;
  for (int k = 0; k < NV; ++k) {
    std::memcpy(&dy[k], pg.H2 + static_cast<std::size_t>(g) * pg.Gp + k * kPad, sizeof(V8));
    if (down) dy[k] = -dy[k];
  }
  SignedFlip sf;
  sf.dn = down ? -pg.C2[g] : pg.C2[g];
  sf.f = down ? -4.0 : 4.0;
  sf.h4 = pg.H4d[g];
  return sf;
}

// Lane g of y (g any row)
template <int NV>
PB_INLINE double lane(const V8* y, int g) {
  double buf[NV * kPad];
  std::memcpy(buf, y, sizeof buf);
  return buf[g];
}

// The sign flipped into state i of a group of eight (i > 0), and whether it is that sign's
// second or fourth flip in the group (the other way)
constexpr int kGroupFlip[kPad] = {0, 1, 2, 1, 3, 1, 2, 1};
constexpr bool kGroupFlipBack[kPad] = {false, false, false, true, false, false, true, true};

// One whole block from state m0. Signs 1 and 2 flip 4 and 2 times in a group of eight states, so
// each group starts with the block's first v_1 and v_2 and their flips alternate +, -, +, - and
// +, -; sign 3 flips once a group, alternately; the group's first flip (sign x >= 4) is made
// from v as it stands.
template <int NV>
PB_INLINE BootCounts gray_padded_block(const kernels::GrayProblem& p, const PaddedGray& pg,
                                       std::uint64_t m0) {
  constexpr std::uint64_t K = kernels::kGrayBlock;
  static_assert(K % kPad == 0, "a block is whole groups of eight states");
  const kernels::PairCounter pc(p.t, p.tol, p.inclusive);
  PairCounter512 pc8(pc);
  double v[kPadded], yb[kPadded] = {};
  double num, den;
  kernels::gray_state(p, m0, v, yb, num, den);
  V8 y[NV], d1[NV], d2[NV], d3[NV], dx[NV];
  for (int k = 0; k < NV; ++k) std::memcpy(&y[k], yb + k * kPad, sizeof(V8));
  const SignedFlip f1 = signed_flip<NV>(pg, 1, v[1], d1), f2 = signed_flip<NV>(pg, 2, v[2], d2);
  SignedFlip f3 = signed_flip<NV>(pg, 3, v[3], d3);
  alignas(64) double nb[kPad], db[kPad];
  for (std::uint64_t s = 0; s < K; s += kPad) {
    if (s > 0) {  // the group's first flip: sign ctz(s) + 1 >= 4
      const int g = kernels::lowest_bit(s) + 1;
      const SignedFlip fx = signed_flip<NV>(pg, g, v[g], dx);
      v[g] = -v[g];
      step<NV, false>(fx, dx, lane<NV>(y, g), y, num, den);
    }
    nb[0] = num, db[0] = den;
#pragma GCC unroll 8
    for (int i = 1; i < kPad; ++i) {  // unrolled: g, its column and its direction are constants
      const int g = kGroupFlip[i];
      const V8* d = g == 1 ? d1 : g == 2 ? d2 : d3;
      const SignedFlip& f = g == 1 ? f1 : g == 2 ? f2 : f3;
      if (kGroupFlipBack[i])
        step<NV, true>(f, d, y[0][g], y, num, den);
      else
        step<NV, false>(f, d, y[0][g], y, num, den);
      nb[i] = num, db[i] = den;
    }
    for (int k = 0; k < NV; ++k) d3[k] = -d3[k];  // sign 3's next flip is the other way
    f3.dn = -f3.dn;
    f3.f = -f3.f;
    V8 nv, dv;
    std::memcpy(&nv, nb, sizeof nv);
    std::memcpy(&dv, db, sizeof dv);
    pc8.add(nv, dv);
  }
  return pc8.counts();
}

// Vectors [lo, hi) (lo on a block): whole blocks by the AVX-512 walk, a short last block by the
// shared PB_HD walk.
__attribute__((target("avx512f"), flatten)) BootCounts gray_range_avx512(
    const kernels::GrayProblem& p, std::uint64_t lo, std::uint64_t hi) {
  BootCounts total;
  if (lo + kernels::kGrayBlock <= hi) {  // (whole blocks: G >= 12, two or more vectors)
    const PaddedGray pg(p);
    for (; lo + kernels::kGrayBlock <= hi; lo += kernels::kGrayBlock) switch (pg.Gp / kPad) {
        case 2:
          total = total + gray_padded_block<2>(p, pg, lo);
          break;
        case 3:
          total = total + gray_padded_block<3>(p, pg, lo);
          break;
        case 4:
          total = total + gray_padded_block<4>(p, pg, lo);
          break;
        default:
          total = total + gray_padded_block<kPadded / kPad>(p, pg, lo);
          break;
      }
  }
  return total + kernels::gray_walk_range(p, lo, hi);
}

// Whole blocks walked without AVX-512 (the walk above holds 16 vectors of y and H's columns in
// registers: with AVX2's 16 registers of half the width it spilled and took three times as
// long): gray_walk_range's arithmetic one state at a time, with H's columns padded to whole
// vectors of eight rows so that the update of y has no scalar tail (the padding rows of y are
// never read).
inline __attribute__((always_inline)) BootCounts gray_block_one_at_a_time(
    const kernels::GrayProblem& p, const double* Hp, int Gp, std::uint64_t m0) {
  constexpr std::uint64_t K = kernels::kGrayBlock;
  const kernels::PairCounter pc(p.t, p.tol, p.inclusive);
  double v[kPadded], y[kPadded] = {};
  double num, den;
  kernels::gray_state(p, m0, v, y, num, den);
  BootCounts c;
  for (std::uint64_t s = 1;; ++s) {
    pc.add(num, den, c);
    if (s == K) break;
    const int g = kernels::lowest_bit(s) + 1;
    const double* hg = Hp + static_cast<std::size_t>(g) * Gp;
    const double dv = -2.0 * v[g];
    v[g] = -v[g];
    num += dv * p.C[g];
    den += 2 * dv * y[g] + dv * dv * hg[g];
    for (int a = 0; a < Gp; ++a) y[a] += dv * hg[a];
  }
  return c;
}

// A walk of fewer steps x clusters than this runs on the calling thread (about 5 ms).
constexpr double kMinTeamWork = 1e7;

}  // namespace

__attribute__((target_clones("avx2", "default"))) BootCounts gray_range_without_avx512(
    const kernels::GrayProblem& p, std::uint64_t lo, std::uint64_t hi) {
  BootCounts total;
  if (lo + kernels::kGrayBlock <= hi) {
    const int G = p.n_clu, Gp = (G + kPad - 1) / kPad * kPad;
    double Hp[kPadded * kernels::kMaxGrayClusters] = {};
    for (int g = 0; g < G; ++g)
      for (int a = 0; a < G; ++a)
        Hp[static_cast<std::size_t>(g) * Gp + a] = p.H[static_cast<std::size_t>(g) * G + a];
    for (; lo + kernels::kGrayBlock <= hi; lo += kernels::kGrayBlock)
      total = total + gray_block_one_at_a_time(p, Hp, Gp, lo);
  }
  return total + kernels::gray_walk_range(p, lo, hi);
}

BootCounts gray_walk(const kernels::GrayProblem& p, ProgressSink* progress) {
  // parts of whole blocks (kernels::kGrayBlock vectors), at most 2^20 vectors (under a second)
  // each, at least 256 of them when there are that many blocks; integer counts, and every block's
  // walk starts exactly, so the sum does not depend on the split or the order
  const std::uint64_t end = kernels::gray_end(p), blocks = kernels::gray_blocks(p);
  const std::uint64_t per_part = std::clamp<std::uint64_t>(blocks / 256, 1, (std::uint64_t{1} << 20) / kernels::kGrayBlock);
  const std::int64_t n_part = static_cast<std::int64_t>((blocks + per_part - 1) / per_part);
  const bool team = static_cast<double>(end - p.lo) * p.n_clu > kMinTeamWork;
  BootCounts total;
#pragma omp parallel for if (team) schedule(dynamic, 1) reduction(count_sum : total)
  for (std::int64_t part = 0; part < n_part; ++part) {
    const std::uint64_t lo = p.lo + static_cast<std::uint64_t>(part) * per_part * kernels::kGrayBlock;
    const std::uint64_t hi = std::min(end, lo + per_part * kernels::kGrayBlock);
    total = total +
            (has_avx512f() ? gray_range_avx512(p, lo, hi) : gray_range_without_avx512(p, lo, hi));
    if (progress) progress->advance(hi - lo);
  }
  return total;
}

}  // namespace panelboot::cpu
