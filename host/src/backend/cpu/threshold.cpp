// The threshold bootstrap on the CPU (cuda/threshold.cu is its twin): the shared replication of
// kernels/threshold_boot.hpp, eight or four replications at a time (threshold_batch.hpp), each
// one's search with one regime regressor as vector loops over the grid points.
#include <algorithm>
#include <atomic>
#include <memory>

#include "backend/cpu/cpu.hpp"
#include "backend/cpu/threshold_batch.hpp"

namespace panelboot::cpu {
namespace {

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

// A batch's y* .. r at once (threshold_batch.hpp): eight replications in the AVX-512 function,
// four in the AVX2 and baseline clones; built without FMA contraction (-ffp-contract=off), so
// every clone and width gives the same bits.
using WideBatch = ThresholdBatchOf<8>;
using NarrowBatch = ThresholdBatchOf<4>;
__attribute__((target("avx512f"))) void threshold_project_batch(WideBatch& tb,
                                                                const kernels::ThresholdBootView& v,
                                                                const double* QL, std::uint64_t b0,
                                                                int nb, double* s0) {
  tb.project(v, QL, b0, nb, s0);
}
__attribute__((target_clones("avx2", "default"))) void threshold_project_batch(
    NarrowBatch& tb, const kernels::ThresholdBootView& v, const double* QL, std::uint64_t b0,
    int nb, double* s0) {
  tb.project(v, QL, b0, nb, s0);
}

// One thread's buffers for batched_fstar: the batch, one replication's r and its points' S.
template <class Batch>
struct BatchWorkspace {
  Batch tb;
  std::vector<double> r, sbuf;
  explicit BatchWorkspace(const kernels::ThresholdBootView& v)
      : tb(v),
        r(static_cast<std::size_t>(v.n_grid * v.p)),
        sbuf(static_cast<std::size_t>(v.n_grid)) {}
};

// F* of every replication, Batch::W at a time: y* .. r together, then each one's search. Each
// thread takes the next batch until none is left, so every replication gets the same bits on any
// number of threads. A job above sp.min_team_work runs on the OpenMP team; a smaller one on
// light_team_size threads of its own (threads.cpp): libgomp's idle threads spin before they
// sleep, and on a virtual machine a spinning vCPU can lose its time slice, so there a team's
// start and join can cost about 4 ms each against a plain thread's 0.1 ms (bench/RESULTS.md).
// The light threads' buffers are made here, before they start: from this thread's heap, whose
// pages are often touched already (memory.hpp), not from the fresh arena glibc gives a new
// thread's first allocation, page by page.
template <class Batch>
std::vector<double> batched_fstar(const ThresholdBootSpec& sp, const HostGramAccess& hg) {
  using Workspace = BatchWorkspace<Batch>;
  constexpr int W = Batch::W;
  const kernels::ThresholdBootView& v = sp.view;
  std::vector<double> fstar(static_cast<std::size_t>(sp.n_boot));
  RegionErrors errors;
  const std::int64_t n_batch = (sp.n_boot + W - 1) / W;
  const std::vector<double> QL = Batch::lane_major(v);
  const double work = static_cast<double>(sp.n_boot) * kernels::threshold_work_per_replication(v);
  const bool on_team = work > sp.min_team_work;
  const int light_team = on_team ? 0 : light_team_size(work, max_threads());
  std::vector<std::unique_ptr<Workspace>> made(static_cast<std::size_t>(light_team));
  for (auto& ws : made) ws = std::make_unique<Workspace>(v);
  std::atomic<int> next_made{0};
  std::atomic<std::int64_t> next{0};
  auto take_batches = [&] {
    std::unique_ptr<Workspace> own;  // a team thread's, made at its first batch
    Workspace* ws = nullptr;
    double s0[W];
    for (std::int64_t bb = next++; bb < n_batch; bb = next++)
      errors.guard([&] {
        if (!ws) {
          const int k = next_made++;
          ws = k < light_team ? made[static_cast<std::size_t>(k)].get()
                              : (own = std::make_unique<Workspace>(v)).get();
        }
        const std::int64_t b0 = bb * W;
        const int nb = static_cast<int>(std::min<std::int64_t>(W, sp.n_boot - b0));
        threshold_project_batch(ws->tb, v, QL.data(), static_cast<std::uint64_t>(sp.b0 + b0), nb,
                                s0);
        for (int i = 0; i < nb; ++i) {
          ws->tb.extract(v, i, ws->r.data());
          fstar[static_cast<std::size_t>(b0 + i)] =
              threshold_search_one(v, hg, ws->r.data(), s0[i], ws->sbuf.data());
        }
        if (sp.progress) sp.progress->advance(static_cast<std::uint64_t>(nb));
      });
  };
  if (on_team) {
#pragma omp parallel
    take_batches();
  } else {
    on_threads(light_team, take_batches);
  }
  errors.rethrow();
  return fstar;
}

}  // namespace

std::vector<double> threshold_fstar(const ThresholdBootSpec& sp, const ThresholdGram& gram) {
  const kernels::ThresholdBootView& v = sp.view;
  const HostGramAccess hg{gram.diag(), &gram};
  std::vector<double> fstar(static_cast<std::size_t>(sp.n_boot));
  RegionErrors errors;
  if (v.n_q > kernels::kMaxQ) {  // one replication at a time (Q'y* column by column)
#pragma omp parallel
    {
      std::vector<double> buf;
#pragma omp for schedule(dynamic, 8)
      for (std::int64_t b = 0; b < sp.n_boot; ++b)
        errors.guard([&] {
          if (buf.empty()) buf.resize(static_cast<std::size_t>(kernels::threshold_scratch_size(v)));
          const kernels::ThresholdScratch s = kernels::threshold_scratch_at(v, buf.data());
          fstar[static_cast<std::size_t>(b)] =
              threshold_replicate(v, hg, static_cast<std::uint64_t>(sp.b0 + b), s);
          if (sp.progress) sp.progress->advance(1);
        });
    }
    errors.rethrow();
    return fstar;
  }
  return has_avx512f() ? batched_fstar<WideBatch>(sp, hg) : batched_fstar<NarrowBatch>(sp, hg);
}

}  // namespace panelboot::cpu
