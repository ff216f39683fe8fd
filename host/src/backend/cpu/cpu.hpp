#pragma once
// The CPU reference backend's pieces, one algorithm per file beside its CUDA twin in cuda/:
//   backend.cpp      the Backend class (dispatch)      cuda/backend.cu
//   wild.cpp         wild replications, counts         cuda/wild.cu
//   wre.cpp          IV wild bootstrap (WRE/WUE, AR)    cuda/wre.cu
//   gray_walk.cpp    exact enumeration (Gray code)     cuda/gray_walk.cu
//   threshold.cpp    threshold bootstrap (with threshold_batch.hpp)   cuda/threshold.cu
//   batched_ols.cpp  many small regressions            cuda/batched_ols.cu
//   threads.cpp      plain threads for small jobs (no CUDA twin)
// and what they share: exceptions out of OpenMP regions, count sums, the team rule.
#include <sched.h>

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "panelboot/backend.hpp"

namespace panelboot::cpu {

std::unique_ptr<PreparedWild> prepare_wild(const WildProblem& problem);
WreRun wre_replicates(const WreProblem& problem, const WreEval& e, const WreRunOptions& o);
// C (m x nb) = A (m x d, row-major) B (d x nb, row-major), or C -= A B with `subtract`: each
// output summed over d in order, no fused multiply-add (wild.cpp; the wild and WRE products).
void gemm_rows(const double* A, std::size_t m, std::size_t d, const double* B, std::size_t nb, double* C,
               bool subtract);
// gemm_rows as it runs on a CPU without AVX-512 (the AVX2 clone, or the baseline one; for the
// tests: the same bits)
void gemm_rows_narrow(const double* A, std::size_t m, std::size_t d, const double* B,
                      std::size_t nb, double* C, bool subtract);
// The moments of replications b .. b + W - 1 of a WRE batch at once, one a vector lane (wre.cpp):
// P points at replication b's products (rows x nb, row-major, every product times `sign`);
// lanes (64-byte aligned, kMaxMomentLanes x the moments) gets moment i of replication b + j at
// lanes[i W + j]. W = wre_lane_count(wide): 8 with `wide` (AVX-512; only where has_avx512f), else
// 4; returns W. The bits of kernels::wre_moments for each replication.
constexpr std::size_t kMaxMomentLanes = 8;
constexpr std::size_t wre_lane_count(bool wide) { return wide ? kMaxMomentLanes : 4; }
std::size_t wre_moments_lanes(const double* P, std::size_t nb, double sign,
                              const kernels::WreModelView& mv, double* lanes, bool wide);
// kernels::wild_weights_block's V (G x nb, row-major), the same bits; Rademacher draws eight
// replications at a time in vector code (wild.cpp; the wild and WRE batches, wild_weights).
void wild_weights_block(std::uint64_t seed, kernels::WeightType type, bool enumerate,
                        std::uint64_t b0, std::size_t nb, std::int32_t G, double* V);
BootCounts gray_walk(const kernels::GrayProblem& p, ProgressSink* progress);
// The walk of vectors [lo, hi) (lo on a block) as gray_walk runs it on a CPU without AVX-512 (for
// the tests: the same counts)
BootCounts gray_range_without_avx512(const kernels::GrayProblem& p, std::uint64_t lo,
                                     std::uint64_t hi);
std::vector<double> threshold_fstar(const ThresholdBootSpec& spec, const ThresholdGram& gram);
OlsBatchResult batched_ols(const OlsBatch& batch);
FixedDesignResult fixed_design_ols(const FixedDesign& design, const FixedDesignBatch& batch);

// Whether this CPU runs AVX-512 (avx512f), asked once: the backend's AVX-512 functions take
// eight-double vectors, the AVX2 and baseline clones four (GCC compiles 64-byte vectors without
// AVX-512 through the stack), and each dispatches on this.
inline bool has_avx512f() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
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

// A job too small for the OpenMP team (threads.cpp): `body` on this thread and on n - 1 plain
// threads started for it (fewer where the system refuses one, and no more than the CPUs this
// thread may run on), joined before returning; body takes its share of the work itself (e.g. the
// next index of an atomic counter) and must not throw.
// Each helper starts on one of this thread's other CPUs (helper_start_cpus) and may run on all of
// them once it runs: on the VM of bench/RESULTS.md, Linux put most new threads on their parent's
// CPU, where the helper either waited out the parent's time slice (up to 3.8 ms) or displaced it.
void on_threads(int n, const std::function<void()>& body);
// `allowed` without CPU `here` (sched_getcpu; -1: unknown), or `allowed` where that leaves none.
cpu_set_t helper_start_cpus(const cpu_set_t& allowed, int here);
// The threads a job of `work` multiply-adds takes below the team rule: one for every
// kLightThreadWork (about 1 ms on one thread), at least one, at most max_threads.
constexpr double kLightThreadWork = 4e6;
int light_team_size(double work, int max_threads);
// The threads the process may use (--threads, OMP_NUM_THREADS, the CPUs).
int max_threads();

// Counts summed over threads (integers: the same total in any order).
#pragma omp declare reduction(count_sum : BootCounts : omp_out = omp_out + omp_in) initializer(omp_priv = BootCounts{})

}  // namespace panelboot::cpu
