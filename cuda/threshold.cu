// The threshold bootstrap on the GPU (host/src/backend/cpu/threshold.cpp is its twin): one warp
// per replication running the shared replication of kernels/threshold_boot.hpp, every reduction
// over the same 32 lanes as the CPU's SoloTeam, so the same bits. The first launch draws y*,
// projects it and runs stage 1; each later stage is its own launch, after the host has uploaded
// the Gram columns of the points some replication fixed.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "cuda.cuh"

namespace panelboot::cuda {
namespace {

// A warp as the threshold bootstrap's team (kernels/threshold_boot.hpp): lane l is reduction
// lane l; argmin combines the lanes' (value, first index) pairs.
struct WarpTeam {
  static constexpr int kSize = 32;
  int lane = 0;
  PB_HD int rank() const { return lane; }
  PB_HD void sync() const {
#ifdef __CUDA_ARCH__
    __syncwarp();
#endif
  }
  PB_HD void argmin(double& best, std::int64_t& g) const {
#ifdef __CUDA_ARCH__
    for (int off = 16; off > 0; off >>= 1) {
      const double ob = __shfl_xor_sync(0xffffffffu, best, off);
      const long long og = __shfl_xor_sync(0xffffffffu, static_cast<long long>(g), off);
      if (og >= 0 && (g < 0 || ob < best || (ob == best && og < g))) {
        best = ob;
        g = og;
      }
    }
#endif
  }
};
static_assert(WarpTeam::kSize == kernels::kLanes, "a warp is the reductions' lanes");

// One warp per replication (the same PB_HD functions as the CPU backend), replication b's scratch
// the b-th slice of `scratch` and its search state states[b]. Stage 1: y*, its projections and
// the first stage of the search; later stages each in their own launch, after the host has put
// the Gram columns of the points fixed so far into the table. The launch that ends the search
// writes F*.
__global__ void __launch_bounds__(128) threshold_first_kernel(kernels::ThresholdBootView v, kernels::GramTable gram,
                                                              std::uint64_t b0, std::int64_t nb, double* scratch,
                                                              kernels::ThresholdSearchState* states, double* fstar) {
  const std::int64_t b = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32;
  if (b >= nb) return;  // whole warps leave together
  const WarpTeam tm{static_cast<int>(threadIdx.x & 31)};
  const kernels::ThresholdScratch s =
      kernels::threshold_scratch_at(v, scratch + b * kernels::threshold_scratch_size(v));
  kernels::ThresholdSearchState ss;
  kernels::threshold_search_start(ss, kernels::threshold_project(v, b0 + static_cast<std::uint64_t>(b), s, tm));
  kernels::threshold_stage(v, gram, s.r, 1, ss, tm);
  if (tm.lane == 0) {
    states[b] = ss;
    if (v.k == 1) fstar[b] = kernels::threshold_search_fstar(v, ss);
  }
}

__global__ void __launch_bounds__(128) threshold_stage_kernel(kernels::ThresholdBootView v, kernels::GramTable gram,
                                                              int stage, std::int64_t nb, double* scratch,
                                                              kernels::ThresholdSearchState* states, double* fstar) {
  const std::int64_t b = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32;
  if (b >= nb) return;
  const WarpTeam tm{static_cast<int>(threadIdx.x & 31)};
  const kernels::ThresholdScratch s =
      kernels::threshold_scratch_at(v, scratch + b * kernels::threshold_scratch_size(v));
  kernels::ThresholdSearchState ss = states[b];
  if (!ss.failed) kernels::threshold_stage(v, gram, s.r, stage, ss, tm);
  __syncwarp();  // every lane has read states[b]
  if (tm.lane == 0) {
    states[b] = ss;
    if (stage == v.k) fstar[b] = kernels::threshold_search_fstar(v, ss);
  }
}

// The column blocks of the points fixed at stage - 1 that the table lacks, copied from the
// host's on-demand columns (the numbers the CPU backend reads) into the next free slots.
void upload_fixed_columns(const std::vector<kernels::ThresholdSearchState>& states, std::int64_t nb, int stage,
                          const ThresholdGram& gram, std::size_t col_len, std::vector<std::int32_t>& slot,
                          std::int32_t& n_slots, DeviceBuffer<double>& d_cols, DeviceBuffer<std::int32_t>& d_slot,
                          cudaStream_t st) {
  const std::size_t ng = slot.size();
  std::vector<std::int64_t> fresh;
  for (std::int64_t b = 0; b < nb; ++b) {
    const kernels::ThresholdSearchState& ss = states[static_cast<std::size_t>(b)];
    const std::int64_t f = ss.fixed[stage - 2];
    if (!ss.failed && slot[static_cast<std::size_t>(f)] < 0) {
      slot[static_cast<std::size_t>(f)] = n_slots++;
      fresh.push_back(f);
    }
  }
  if (!fresh.empty()) {
    std::vector<double> cols(fresh.size() * col_len);
#pragma omp parallel for schedule(dynamic, 4)
    for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(fresh.size()); ++i) {
      const double* c = gram.column(fresh[static_cast<std::size_t>(i)]);
      std::copy(c, c + col_len, cols.begin() + i * static_cast<std::ptrdiff_t>(col_len));
    }
    const std::size_t first = static_cast<std::size_t>(slot[static_cast<std::size_t>(fresh[0])]);
    PB_CUDA_CHECK(cudaMemcpyAsync(d_cols.get() + first * col_len, cols.data(), cols.size() * sizeof(double),
                                  cudaMemcpyHostToDevice, st));
    d_slot.upload(slot.data(), ng);
    PB_CUDA_CHECK(cudaStreamSynchronize(st));  // cols leaves scope
  }
}

}  // namespace

std::vector<double> threshold_fstar(const Context& ctx, const ThresholdBootSpec& sp, const ThresholdGram& gram) {
  cudaStream_t st = ctx.stream;
  const kernels::ThresholdBootView& h = sp.view;
  const std::size_t N = static_cast<std::size_t>(h.n_obs), nu = static_cast<std::size_t>(h.n_units),
                    nd = static_cast<std::size_t>(h.n_design), ng = static_cast<std::size_t>(h.n_grid),
                    p = static_cast<std::size_t>(h.p), ld = ng * p;
  auto up = [&](const auto* ptr, std::size_t n) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(ptr)>>;
    DeviceBuffer<T> d(n, st);
    d.upload(ptr, n);
    return d;
  };
  auto d_diag = up(gram.diag(), ng * p * p);
  // the view's arrays on the device: each field now points to its copy (the buffers live until
  // the call returns)
  kernels::ThresholdBootView v = h;
  auto mirror = [&](auto& field, std::size_t n) {
    auto d = up(field, n);
    field = d.get();
    return d;
  };
  const auto d_offset = mirror(v.offset, nu + 1);
  const auto d_fitted = mirror(v.fitted, N), d_resid = mirror(v.resid, N);
  const auto d_Q = mirror(v.Q, N * static_cast<std::size_t>(h.n_q));
  const auto d_sunit = mirror(v.s_unit, nd), d_speriod = mirror(v.s_period, nd), d_tperiod = mirror(v.t_period, N);
  const auto d_srow = mirror(v.s_row, nd);
  const auto d_invlen = mirror(v.unit_inv_len, nu);
  const auto d_sx = mirror(v.s_x, nd * p);
  const auto d_cut = mirror(v.cut, ng);
  const auto d_nn = mirror(v.nn, ng);
  // The Gram's diagonal blocks, and a table of the column blocks of the points that some
  // replication has fixed, filled between stages from the host's on-demand columns (the same
  // numbers the CPU backend reads): at most min(grid, B (k - 1)) of them, usually far fewer.
  const std::size_t col_len = ld * p;
  const std::size_t cap =
      h.k > 1 ? std::min<std::size_t>(ng, static_cast<std::size_t>(sp.n_boot) * static_cast<std::size_t>(h.k - 1)) : 0;
  DeviceBuffer<double> d_cols(cap * col_len, st);
  std::vector<std::int32_t> slot(ng, -1);
  DeviceBuffer<std::int32_t> d_slot(ng, st);
  d_slot.upload(slot.data(), ng);
  std::int32_t n_slots = 0;
  kernels::GramTable tab;
  tab.diag = d_diag.get();
  tab.G = d_cols.get();
  tab.slot = d_slot.get();
  tab.ld = static_cast<std::int64_t>(ld);
  tab.p = h.p;
  // replications per launch: their scratch within about 1 GiB
  const std::size_t per_rep = static_cast<std::size_t>(kernels::threshold_scratch_size(v));
  const std::int64_t chunk = std::max<std::int64_t>(
      1, std::min<std::int64_t>(sp.n_boot, static_cast<std::int64_t>((std::size_t{1} << 27) / per_rep)));
  DeviceBuffer<double> d_s(per_rep * static_cast<std::size_t>(chunk), st), d_f(static_cast<std::size_t>(sp.n_boot), st);
  DeviceBuffer<kernels::ThresholdSearchState> d_state(static_cast<std::size_t>(chunk), st);
  std::vector<kernels::ThresholdSearchState> states(static_cast<std::size_t>(chunk));
  for (std::int64_t b0 = 0; b0 < sp.n_boot; b0 += chunk) {
    const std::int64_t nb = std::min(chunk, sp.n_boot - b0);
    const unsigned blocks = blocks_for(static_cast<std::size_t>(nb) * 32, 128);
    threshold_first_kernel<<<blocks, 128, 0, st>>>(v, tab, static_cast<std::uint64_t>(sp.b0 + b0), nb, d_s.get(),
                                                   d_state.get(), d_f.get() + b0);
    PB_CUDA_LAUNCH_CHECK();
    for (int stage = 2; stage <= h.k; ++stage) {
      // the points fixed at the last stage whose columns are not in the table yet
      d_state.download(states.data(), static_cast<std::size_t>(nb));
      PB_CUDA_CHECK(cudaStreamSynchronize(st));
      upload_fixed_columns(states, nb, stage, gram, col_len, slot, n_slots, d_cols, d_slot, st);
      threshold_stage_kernel<<<blocks, 128, 0, st>>>(v, tab, stage, nb, d_s.get(), d_state.get(), d_f.get() + b0);
      PB_CUDA_LAUNCH_CHECK();
    }
  }
  std::vector<double> fstar(static_cast<std::size_t>(sp.n_boot));
  d_f.download(fstar.data(), fstar.size());
  PB_CUDA_CHECK(cudaStreamSynchronize(st));
  return fstar;
}

}  // namespace panelboot::cuda
