// The IV wild bootstrap's replications on the CPU (cuda/wre.cu is its twin): per batch the
// weights V (G x nb, the OLS wild bootstrap's Philox draws or sign vectors), the products K V
// (gemm_rows: summed over g in order, no FMA), each replication's moments (kernels::wre_moments_of,
// eight or four replications at once in vector lanes; the last few by kernels::wre_moments)
// and its statistic (kernels::wre_statistic), so every thread count, chunk size and backend gives
// the same bits. Kept moments (the confidence sets) cost O(L^4) per replication and null value.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "backend/cpu/cpu.hpp"
#include "backend/cpu/doubles_of.hpp"
#include "panelboot/error.hpp"

namespace panelboot::cpu {
namespace {

// Statistics of this many stored replications are counted per task.
constexpr std::size_t kCountBlock = 4096;

// Every statistic's moments, one after another (enumerating: vector i, then its negation).
class CpuWreReplicates final : public WreReplicates {
 public:
  CpuWreReplicates(std::size_t n, std::int64_t n_mom, double team_work)
      : mom_(n * static_cast<std::size_t>(n_mom)), n_(n), n_mom_(n_mom), team_work_(team_work) {}
  CpuWreReplicates(std::vector<double> moments, std::int64_t n_mom, double team_work)
      : mom_(std::move(moments)), n_(mom_.size() / static_cast<std::size_t>(n_mom)), n_mom_(n_mom), team_work_(team_work) {}
  BootCounts count(const WreEval& e, double t, double tol, bool inclusive) const override;
  std::vector<double> moments() const override { return mom_; }
  double* at(std::size_t i) { return mom_.data() + i * static_cast<std::size_t>(n_mom_); }

 private:
  std::vector<double> mom_;
  std::size_t n_;
  std::int64_t n_mom_;
  double team_work_;  // the statistics' work above which a thread team counts
};

BootCounts CpuWreReplicates::count(const WreEval& e, double t, double tol, bool inclusive) const {
  const kernels::WreEvalView v = e.view();
  const std::size_t n_blocks = (n_ + kCountBlock - 1) / kCountBlock;
  const bool team = n_blocks > 1 && static_cast<double>(n_) * static_cast<double>(n_mom_) > team_work_;
  BootCounts total;
  RegionErrors errors;
#pragma omp parallel for if (team) schedule(static) reduction(count_sum : total)
  for (std::ptrdiff_t bi = 0; bi < static_cast<std::ptrdiff_t>(n_blocks); ++bi)
    errors.guard([&] {
      const std::size_t b0 = static_cast<std::size_t>(bi) * kCountBlock, b1 = std::min(n_, b0 + kCountBlock);
      for (std::size_t b = b0; b < b1; ++b)
        kernels::count_one(kernels::wre_statistic(mom_.data() + b * static_cast<std::size_t>(n_mom_), v), t, tol,
                           inclusive, total);
    });
  errors.rethrow();
  return total;
}

// The moments of W replications of a batch at once, one a vector lane: kernels::wre_moments_of
// with a vector element type, so each replication gets the scalar kernel's bits. P: the first
// replication's products (rows x nb, row-major); v: lay.size() vectors.
template <int W>
inline __attribute__((always_inline)) void moments_in_lanes(const double* P, std::size_t nb,
                                                            double sign,
                                                            const kernels::WreModelView& mv,
                                                            typename DoublesOf<W>::type* v) {
  typedef typename DoublesOf<W>::type V;
  const int L = mv.L;
  const std::int64_t C = mv.C;
  const auto products = [&](int j, std::int64_t c1, int l) {
    V x;
    std::memcpy(&x, P + static_cast<std::size_t>(kernels::wre_row(L, C, j, c1, l)) * nb, sizeof x);
    return sign * x;
  };
  kernels::wre_moments_of<V>(products, mv, v);
}

__attribute__((target("avx512f"), flatten)) void moments_in_lanes_wide(
    const double* P, std::size_t nb, double sign, const kernels::WreModelView& mv, double* lanes) {
  moments_in_lanes<8>(P, nb, sign, mv, reinterpret_cast<DoublesOf<8>::type*>(lanes));
}

__attribute__((target_clones("avx2", "default"), flatten)) void moments_in_lanes_narrow(
    const double* P, std::size_t nb, double sign, const kernels::WreModelView& mv, double* lanes) {
  moments_in_lanes<4>(P, nb, sign, mv, reinterpret_cast<DoublesOf<4>::type*>(lanes));
}

}  // namespace

// (cpu.hpp)
std::size_t wre_moments_lanes(const double* P, std::size_t nb, double sign,
                              const kernels::WreModelView& mv, double* lanes, bool wide) {
  if (wide)
    moments_in_lanes_wide(P, nb, sign, mv, lanes);
  else
    moments_in_lanes_narrow(P, nb, sign, mv, lanes);
  return wre_lane_count(wide);
}

namespace {

// One thread's buffers for a batch of nb replications; `lanes`: the moments of eight
// replications (wre_moments_lanes), 64-byte aligned inside it.
struct WreBatch {
  std::vector<double> V, P, R1, mom, lanes;
  double* aligned_lanes(std::size_t n_mom) {
    lanes.resize(n_mom * kMaxMomentLanes + 8);
    const auto at = reinterpret_cast<std::uintptr_t>(lanes.data());
    return lanes.data() + ((64 - at % 64) % 64) / sizeof(double);
  }
};

// The factored form's products of a batch (backend.hpp): the A rows, R1 = F1 V, then per
// (j, c, l) the cells' sum in CSR order minus pf . R1_j (gemm_rows, subtracting).
void factored_products(const WreProblem& pr, std::size_t nb, WreBatch& w) {
  const std::size_t G = static_cast<std::size_t>(pr.n_clu), L = static_cast<std::size_t>(pr.L);
  const std::size_t J = static_cast<std::size_t>(pr.J()), kl = static_cast<std::size_t>(pr.kl);
  const std::size_t cells = static_cast<std::size_t>(pr.n_cells());
  const std::int64_t C = pr.C;
  double* P = w.P.data();
  for (std::size_t j = 0; j < J; ++j)
    for (std::size_t l = 0; l < L; ++l)
      gemm_rows(pr.k.data() + (j * L + l) * G, 1, G, w.V.data(), nb,
                P + kernels::wre_row(pr.L, C, static_cast<int>(j), 0, static_cast<int>(l)) * nb, false);
  w.R1.resize(J * kl * nb);
  gemm_rows(pr.f1.data(), J * kl, G, w.V.data(), nb, w.R1.data(), false);
  for (std::size_t j = 0; j < J; ++j)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::size_t l = 0; l < L; ++l) {
        double* row = P + kernels::wre_row(pr.L, C, static_cast<int>(j), 1 + c, static_cast<int>(l)) * nb;
        std::fill(row, row + nb, 0.0);
        for (std::int32_t e = pr.row_ptr[c]; e < pr.row_ptr[c + 1]; ++e) {
          const double t = pr.t1[(j * cells + static_cast<std::size_t>(e)) * L + l];
          const double* vg = w.V.data() + static_cast<std::size_t>(pr.cell_g[e]) * nb;
          for (std::size_t b = 0; b < nb; ++b) row[b] += t * vg[b];
        }
        gemm_rows(pr.pf.data() + (static_cast<std::size_t>(c) * L + l) * kl, 1, kl, w.R1.data() + j * kl * nb, nb, row,
                  true);
      }
}

// Replications r0 .. r0+nb-1: drawn, multiplied, reduced to moments, evaluated, counted, traced,
// kept.
BootCounts run_batch(const WreProblem& pr, const kernels::WreEvalView& ev, const WreRunOptions& o, std::uint64_t r0,
                     std::size_t nb, WreBatch& w, CpuWreReplicates* keep, std::vector<double>& trace) {
  const std::size_t G = static_cast<std::size_t>(pr.n_clu), rows = static_cast<std::size_t>(pr.rows());
  const kernels::WreModelView mv = pr.view();
  w.V.resize(G * nb);
  w.P.resize(rows * nb);
  w.mom.resize(static_cast<std::size_t>(pr.n_moments()));
  wild_weights_block(o.seed, o.weight, o.enumerate, o.b0 + r0, nb, static_cast<std::int32_t>(G),
                     w.V.data());
  if (pr.dense) gemm_rows(pr.k.data(), rows, G, w.V.data(), nb, w.P.data(), false);
  else factored_products(pr, nb, w);
  BootCounts c;
  const std::size_t per = o.enumerate ? 2 : 1;
  const std::size_t n_mom = static_cast<std::size_t>(pr.n_moments());
  // the statistic of replication b (sign h) from its moments
  const auto finish = [&](std::size_t b, std::size_t h, double* mom) {
    const std::size_t at = (static_cast<std::size_t>(r0) + b) * per + h;
    const double s = kernels::wre_statistic(mom, ev);
    kernels::count_one(s, o.count_t, o.count_tol, o.inclusive, c);
    if (at < trace.size()) trace[at] = s;
  };
  const auto dest = [&](std::size_t b, std::size_t h) {
    return keep ? keep->at((static_cast<std::size_t>(r0) + b) * per + h) : w.mom.data();
  };
  // the replications a vector's lanes hold at a time, then one at a time for the rest
  const bool wide = has_avx512f();
  const std::size_t W = wre_lane_count(wide);
  double* lanes = w.aligned_lanes(n_mom);
  std::size_t b = 0;
  for (; b + W <= nb; b += W)
    for (std::size_t h = 0; h < per; ++h) {
      wre_moments_lanes(w.P.data() + b, nb, h ? -1.0 : 1.0, mv, lanes, wide);
      for (std::size_t j = 0; j < W; ++j) {
        double* mom = dest(b + j, h);
        for (std::size_t i = 0; i < n_mom; ++i) mom[i] = lanes[i * W + j];
        finish(b + j, h, mom);
      }
    }
  for (; b < nb; ++b)
    for (std::size_t h = 0; h < per; ++h) {
      double* mom = dest(b, h);
      kernels::wre_moments(w.P.data() + b, static_cast<std::int64_t>(nb), h ? -1.0 : 1.0, mv, mom);
      finish(b, h, mom);
    }
  if (o.progress) o.progress->advance(nb);
  return c;
}

}  // namespace

WreRun wre_replicates(const WreProblem& pr, const WreEval& e, const WreRunOptions& o) {
  const kernels::WreEvalView ev = e.view();
  const std::size_t chunk = o.chunk ? o.chunk : default_wre_chunk(pr);
  const std::size_t n_chunks = static_cast<std::size_t>((o.n_rep + chunk - 1) / chunk);
  WreRun run;
  std::unique_ptr<CpuWreReplicates> keep;
  const std::uint64_t n_stats = o.n_rep * (o.enumerate ? 2 : 1);
  if (o.keep) keep = std::make_unique<CpuWreReplicates>(n_stats, pr.n_moments(), o.min_team_work);
  run.trace.assign(static_cast<std::size_t>(std::min<std::uint64_t>(o.trace_keep, n_stats)), 0.0);
  const bool team = n_chunks > 1 && static_cast<double>(o.n_rep) * wre_work_per_replication(pr) > o.min_team_work;
  BootCounts total;
  RegionErrors errors;
#pragma omp parallel if (team) reduction(count_sum : total)
  {
    WreBatch w;
#pragma omp for schedule(dynamic, 1)
    for (std::ptrdiff_t ci = 0; ci < static_cast<std::ptrdiff_t>(n_chunks); ++ci) errors.guard([&] {
      const std::uint64_t r0 = static_cast<std::uint64_t>(ci) * chunk;
      const std::size_t nb = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, o.n_rep - r0));
      total = total + run_batch(pr, ev, o, r0, nb, w, keep.get(), run.trace);
    });
  }
  errors.rethrow();
  run.counts = total;
  run.reps = std::move(keep);
  return run;
}

std::unique_ptr<WreReplicates> host_wre_replicates(std::vector<double> moments, std::int64_t n_mom, double min_team_work) {
  if (n_mom < 1 || moments.size() % static_cast<std::size_t>(n_mom))
    throw Error("host_wre_replicates: the moments are not whole statistics");
  return std::make_unique<CpuWreReplicates>(std::move(moments), n_mom, min_team_work);
}

}  // namespace panelboot::cpu
