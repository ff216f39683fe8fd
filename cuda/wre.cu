// The IV wild bootstrap's replications on the GPU (host/src/backend/cpu/wre.cpp is its twin): the
// same Philox draws, the products K V summed over g in order without fused multiply-adds
// (--fmad=false, as the CPU's gemm_rows) and the same statistic (kernels/wre.hpp), so the same
// bits. Per chunk of nb replications:
//   V = weights                       wre_weights_kernel  (one thread per replication)
//   P = K V                           wre_products_kernel (one thread per (row, replication)); the
//                                     factored form: wre_a_rows_kernel, R1 = F1 V, wre_cells_kernel
//   moments, statistics               wre_moments_kernel  (one thread per replication; v and -v
//                                                          when enumerating)
// The statistics come back to the host and are counted there (kernels::count_one). With `keep`
// every statistic's moments stay on the device for the inversion sets (wre_stat_kernel).
#include <algorithm>
#include <memory>
#include <vector>

#include "cuda.cuh"

namespace panelboot::cuda {
namespace {

__global__ void wre_weights_kernel(std::uint64_t seed, kernels::WeightType type, bool enumerate, std::uint64_t b0,
                                   std::size_t nb, std::int32_t n_clu, double* V) {
  for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < nb;
       b += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    kernels::wild_weights_column(seed, type, enumerate, b0 + b, static_cast<std::uint32_t>(n_clu), V + b, nb);
}

// P[r * ldp + off + b] = sum_g K[r * G + g] V[g * nb + b], summed in g order. The same sums as
// wild.cu's gemm_rows_kernel, kept apart on purpose: one thread per (row, replication) suits WRE's
// few rows, where gemm_rows' one thread per replication left the H200 short of threads (iv-wre at
// B = 10^5 took 18.7 ms through it against 15.2 ms here: bench/RESULTS.md, Run 5).
__global__ void wre_products_kernel(const double* K, std::int64_t rows, int G, const double* V,
                                    std::size_t nb, double* P, std::size_t ldp, std::size_t off) {
  for (std::int64_t r = blockIdx.y; r < rows; r += gridDim.y)
    for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < nb;
         b += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
      const double* k = K + r * G;
      double acc = 0;
      for (int g = 0; g < G; ++g) acc += k[g] * V[static_cast<std::size_t>(g) * nb + b];
      P[static_cast<std::size_t>(r) * ldp + off + b] = acc;
    }
}

// The factored form's A rows: P[wre_row(j, 0, l) * nb + b] = sum_g K[(j L + l) * G + g] V[g * nb + b]
__global__ void wre_a_rows_kernel(const double* K, int J, int L, std::int64_t C, int G, const double* V, std::size_t nb,
                                  double* P) {
  for (std::int64_t r = blockIdx.y; r < static_cast<std::int64_t>(J) * L; r += gridDim.y)
    for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < nb;
         b += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
      const double* k = K + r * G;
      double acc = 0;
      for (int g = 0; g < G; ++g) acc += k[g] * V[static_cast<std::size_t>(g) * nb + b];
      const int j = static_cast<int>(r / L), l = static_cast<int>(r % L);
      P[static_cast<std::size_t>(kernels::wre_row(L, C, j, 0, l)) * nb + b] = acc;
    }
}

// The factored form's cluster rows, one thread per ((j, c, l), replication): the cells' sum in
// CSR order minus pf . R1_j, in the CPU's order (backend.hpp)
__global__ void wre_cells_kernel(const double* t1, const std::int32_t* row_ptr, const std::int32_t* cell_g,
                                 const double* pf, const double* R1, int J, int L, std::int64_t C, std::int64_t cells,
                                 int kl, const double* V, std::size_t nb, double* P) {
  const std::int64_t n_rows = static_cast<std::int64_t>(J) * C * L;
  for (std::int64_t q = blockIdx.y; q < n_rows; q += gridDim.y)
    for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < nb;
         b += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
      const int j = static_cast<int>(q / (C * L));
      const std::int64_t c = (q / L) % C;
      const int l = static_cast<int>(q % L);
      double acc = 0;
      for (std::int32_t e = row_ptr[c]; e < row_ptr[c + 1]; ++e)
        acc += t1[(j * cells + e) * L + l] * V[static_cast<std::size_t>(cell_g[e]) * nb + b];
      double low = 0;
      const double* p = pf + (c * L + l) * kl;
      for (int k = 0; k < kl; ++k) low += p[k] * R1[static_cast<std::size_t>(j * kl + k) * nb + b];
      P[static_cast<std::size_t>(kernels::wre_row(L, C, j, 1 + c, l)) * nb + b] = acc - low;
    }
}

// The moments of replication b of the chunk (and of its negation when per = 2) at
// mom + ((off + b) * per + h) * n_mom, and their statistics at stats[b * per + h]
__global__ void wre_moments_kernel(const double* P, std::size_t nb, int per, kernels::WreModelView mv,
                                   kernels::WreEvalView ev, double* mom, std::int64_t n_mom, bool keep,
                                   std::size_t off, double* stats) {
  for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < nb;
       b += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    for (int h = 0; h < per; ++h) {
      const std::size_t i = b * per + h;
      double* m = mom + static_cast<std::size_t>(n_mom) * (keep ? (off * per + i) : i);
      kernels::wre_moments(P + b, static_cast<std::int64_t>(nb), h ? -1.0 : 1.0, mv, m);
      stats[i] = kernels::wre_statistic(m, ev);
    }
}

// stats[i] = the statistic of stored moments i
__global__ void wre_stat_kernel(const double* mom, std::int64_t n_mom, std::size_t n, kernels::WreEvalView ev,
                                double* stats) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    stats[i] = kernels::wre_statistic(mom + static_cast<std::size_t>(n_mom) * i, ev);
}

// An evaluation's arrays on the device, and the view the kernels read.
struct DeviceEval {
  DeviceEval(const WreEval& e, cudaStream_t s) : ptilde(to_device(e.ptilde, s)), zzp(to_device(e.zzp, s)), Q(to_device(e.Q, s)) {
    view = e.view();
    view.ptilde = ptilde.get();
    view.zzp = zzp.get();
    view.Q = Q.get();
  }
  DeviceBuffer<double> ptilde, zzp, Q;
  kernels::WreEvalView view;
};

// The model's constants on the device.
struct DeviceModel {
  DeviceModel(const WreProblem& pr, cudaStream_t s)
      : pihat(to_device(pr.pihat, s)), zz(to_device(pr.zz, s)), zzq(to_device(pr.zzq, s)), row_w(to_device(pr.row_w, s)) {
    view = pr.view();
    view.pihat = pihat.get();
    view.zz = zz.get();
    view.zzq = zzq.get();
    view.row_w = row_w.get();
  }
  DeviceBuffer<double> pihat, zz, zzq, row_w;
  kernels::WreModelView view;
};

std::vector<double> download_now(const Context& ctx, const DeviceBuffer<double>& d) {
  std::vector<double> h(d.size());
  d.download(h.data(), h.size());
  PB_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  return h;
}

class CudaWreReplicates final : public WreReplicates {
 public:
  CudaWreReplicates(const Context& ctx, std::size_t n, std::int64_t n_mom)
      : ctx_(ctx), mom(n * static_cast<std::size_t>(n_mom), ctx.stream), n_(n), n_mom_(n_mom) {}
  BootCounts count(const WreEval& e, double t, double tol, bool inclusive) const override {
    const DeviceEval de(e, ctx_.stream);
    DeviceBuffer<double> d_s(n_, ctx_.stream);
    wre_stat_kernel<<<blocks_for(n_, 128), 128, 0, ctx_.stream>>>(mom.get(), n_mom_, n_, de.view, d_s.get());
    PB_CUDA_LAUNCH_CHECK();
    BootCounts c;
    for (double s : download_now(ctx_, d_s)) kernels::count_one(s, t, tol, inclusive, c);
    return c;
  }
  std::vector<double> moments() const override { return download_now(ctx_, mom); }
  const Context& ctx_;
  DeviceBuffer<double> mom;  // n x n_mom
  std::size_t n_;
  std::int64_t n_mom_;
};

}  // namespace

WreRun wre_replicates(const Context& ctx, const WreProblem& pr, const WreEval& e, const WreRunOptions& o) {
  const cudaStream_t st = ctx.stream;
  const std::size_t chunk = o.chunk ? o.chunk : std::max<std::size_t>(default_wre_chunk(pr), 4096);
  const std::int64_t rows = pr.rows(), n_mom = pr.n_moments();
  const int per = o.enumerate ? 2 : 1;
  const std::uint64_t n_stats = o.n_rep * static_cast<std::uint64_t>(per);
  const DeviceBuffer<double> K = to_device(pr.k, st), F1 = to_device(pr.f1, st), T1 = to_device(pr.t1, st),
                             PF = to_device(pr.pf, st);
  const DeviceBuffer<std::int32_t> row_ptr = to_device(pr.row_ptr, st), cell_g = to_device(pr.cell_g, st);
  const int J = pr.J(), kl = pr.kl;
  DeviceBuffer<double> R1(pr.dense ? 0 : static_cast<std::size_t>(J) * kl * chunk, st);
  const DeviceModel dm(pr, st);
  const DeviceEval de(e, st);
  std::unique_ptr<CudaWreReplicates> keep;
  if (o.keep) keep = std::make_unique<CudaWreReplicates>(ctx, static_cast<std::size_t>(n_stats), n_mom);
  DeviceBuffer<double> V(static_cast<std::size_t>(pr.n_clu) * chunk, st);
  DeviceBuffer<double> P(static_cast<std::size_t>(rows) * chunk, st);
  DeviceBuffer<double> mom(o.keep ? 0 : chunk * per * static_cast<std::size_t>(n_mom), st);
  WreRun run;
  run.trace.assign(static_cast<std::size_t>(std::min<std::uint64_t>(o.trace_keep, n_stats)), 0.0);
  BootCounts total;
  for (std::uint64_t r0 = 0; r0 < o.n_rep; r0 += chunk) {
    const std::size_t nb = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, o.n_rep - r0));
    wre_weights_kernel<<<blocks_for(nb, 256), 256, 0, st>>>(o.seed, o.weight, o.enumerate, o.b0 + r0, nb, pr.n_clu,
                                                             V.get());
    PB_CUDA_LAUNCH_CHECK();
    if (pr.dense) {
      const dim3 grid(blocks_for(nb, 128),
                      static_cast<unsigned>(std::min<std::int64_t>(rows, 65535)));
      wre_products_kernel<<<grid, 128, 0, st>>>(K.get(), rows, pr.n_clu, V.get(), nb, P.get(), nb,
                                                0);
      PB_CUDA_LAUNCH_CHECK();
    } else {
      const std::int64_t a_rows = static_cast<std::int64_t>(J) * pr.L, c_rows = a_rows * pr.C;
      const dim3 ga(blocks_for(nb, 128), static_cast<unsigned>(std::min<std::int64_t>(a_rows, 65535)));
      wre_a_rows_kernel<<<ga, 128, 0, st>>>(K.get(), J, pr.L, pr.C, pr.n_clu, V.get(), nb, P.get());
      PB_CUDA_LAUNCH_CHECK();
      if (kl > 0) {
        const dim3 gf(blocks_for(nb, 128), static_cast<unsigned>(std::min<std::int64_t>(
                                               static_cast<std::int64_t>(J) * kl, 65535)));
        wre_products_kernel<<<gf, 128, 0, st>>>(F1.get(), static_cast<std::int64_t>(J) * kl,
                                                pr.n_clu, V.get(), nb, R1.get(), nb, 0);
        PB_CUDA_LAUNCH_CHECK();
      }
      const dim3 gc(blocks_for(nb, 128), static_cast<unsigned>(std::min<std::int64_t>(c_rows, 65535)));
      wre_cells_kernel<<<gc, 128, 0, st>>>(T1.get(), row_ptr.get(), cell_g.get(), PF.get(), R1.get(), J, pr.L, pr.C,
                                           pr.n_cells(), kl, V.get(), nb, P.get());
      PB_CUDA_LAUNCH_CHECK();
    }
    DeviceBuffer<double> d_s(nb * per, st);
    wre_moments_kernel<<<blocks_for(nb, 128), 128, 0, st>>>(P.get(), nb, per, dm.view, de.view,
                                                            o.keep ? keep->mom.get() : mom.get(), n_mom, o.keep,
                                                            static_cast<std::size_t>(r0), d_s.get());
    PB_CUDA_LAUNCH_CHECK();
    const std::vector<double> s = download_now(ctx, d_s);
    for (std::size_t i = 0; i < s.size(); ++i) {
      kernels::count_one(s[i], o.count_t, o.count_tol, o.inclusive, total);
      const std::size_t at = static_cast<std::size_t>(r0) * per + i;
      if (at < run.trace.size()) run.trace[at] = s[i];
    }
    if (o.progress) o.progress->advance(nb);
  }
  run.counts = total;
  run.reps = std::move(keep);
  return run;
}

}  // namespace panelboot::cuda
