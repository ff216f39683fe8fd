// The wild bootstrap's replications on the GPU (host/src/backend/cpu/wild.cpp is its twin): the
// same Philox draws (kernels/wild_weights.hpp), FP64 throughout. A prepared problem holds the
// problem's arrays on the device, uploaded once for any number of runs. Per chunk of nb
// replications (row-major G x nb arrays, the replications as every product's long side):
//   V         = weights                         weights_kernel (one thread per replication)
//   R1_p      = M1_p V                          gemm_rows_kernel (rows1 x G) x (G x nb)
//   Z_{p,j,S} = Kd V                            gemm_rows_kernel, dense form
//             = T1 V - PF R1_p[q:]              cells_kernel (CSR over error clusters) +
//             gemm_rows_kernel
//   D_x      += w_S sum_c Za Zb                 denom_kernel (one thread per replication)
//   coefs    <- N, D (F = N'D^-1N/q for q > 1)  joint_kernel
//   counts    = transform_reduce(WildCountOp)   Thrust, on the device
// The dense form with q = 1 and at most kMaxFusedClusters clusters runs as one fused kernel.
#include <thrust/execution_policy.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "cuda.cuh"
#include "thrust_algorithms.hpp"

namespace panelboot::cuda {
namespace {

// one thread per replication; writes the column of V (G x nb, row-major) of replication b0 + b
__global__ void weights_kernel(std::uint64_t seed, kernels::WeightType type, bool enumerate, std::uint64_t b0,
                               std::size_t nb, std::int32_t n_clu, double* V) {
  for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < nb;
       b += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    kernels::wild_weights_column(seed, type, enumerate, b0 + b, static_cast<std::uint32_t>(n_clu), V + b, nb);
  }
}

// one thread per (replication b, error cluster c); loops over the cells of c (CSR, as the
// problem holds them): Z[c, b] = sum_e t1[e] V[g_e, b]
__global__ void cells_kernel(const std::int32_t* row_ptr, const std::int32_t* col_g, const double* t1,
                             std::int32_t n_rows, const double* V, std::size_t nb, double* Z) {
  for (std::int32_t c = blockIdx.y; c < n_rows; c += gridDim.y)
    for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < nb;
         b += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
      double acc = 0;
      for (std::int32_t e = row_ptr[c]; e < row_ptr[c + 1]; ++e) acc += t1[e] * V[static_cast<std::size_t>(col_g[e]) * nb + b];
      Z[static_cast<std::size_t>(c) * nb + b] = acc;
    }
}

// one thread per replication; loops over error clusters: D[b] += w sum_c Za[c, b] Zb[c, b]
__global__ void denom_kernel(const double* Za, const double* Zb, std::int32_t n_rows, std::size_t nb, double w,
                             double* D) {
  for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < nb;
       b += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    double acc = D[b];
    for (std::int32_t c = 0; c < n_rows; ++c) acc += w * (Za[static_cast<std::size_t>(c) * nb + b] * Zb[static_cast<std::size_t>(c) * nb + b]);
    D[b] = acc;
  }
}

constexpr int kMaxJointRows = 16;
constexpr int kMaxFusedClusters = 128;

constexpr int kMaxRegisterClusters = 64;  // beyond: the fused kernel's weights in local memory

// sum_g row[g] v[g] over the G clusters, in order. GMAX > 0: unrolled to GMAX with the clusters
// from G on skipped, so v[] (inlined) is indexed by constants only and stays in registers; 0: a
// loop to G, v[] then in local memory and every multiply-add waiting on a load from there.
template <int GMAX>
__device__ __forceinline__ double dot_clusters(const double* row, const double* v, int G) {
  double acc = 0;
  if constexpr (GMAX == 0) {
    for (int g = 0; g < G; ++g) acc += row[g] * v[g];
  } else {
#pragma unroll
    for (int g = 0; g < GMAX; ++g)
      if (g < G) acc += row[g] * v[g];
  }
  return acc;
}

// The dense form with q = 1 fused into one kernel, one thread per replication: the weights drawn
// in the thread, N_p = m1_p . v, Z = Kd v row by row and the denominators accumulated as they
// come, summed in the same order as the CPU backend (with unfused multiply-adds: the same bits),
// and no G x B weight matrix or C x B products ever stored. GMAX (16, 32, 48, 64 >= G): the
// weights in registers; 0: in local memory, for any G up to kMaxFusedClusters (the load units,
// not the FP64 units, then bound it).
template <int GMAX>
__global__ void __launch_bounds__(128)
    wild_fused_kernel(std::uint64_t seed, kernels::WeightType type, bool enumerate,
                      std::uint64_t b0, std::size_t nb, int G, int P, int S,
                      const std::int32_t* rows, const double* wts, const double* m1,
                      const double* kd, const std::int64_t* kd_off, double* n0, double* n1,
                      double* d0, double* d1, double* d2) {
  constexpr int kWeights = GMAX > 0 ? GMAX : kMaxFusedClusters;
  for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < nb;
       b += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    double v[kWeights];
    if constexpr (GMAX == 0) {
      kernels::wild_weights_column(seed, type, enumerate, b0 + b, static_cast<std::uint32_t>(G), v,
                                   1);
    } else {
      double drawn[GMAX];  // written at run-time indices (local memory), read once into v
      kernels::wild_weights_column(seed, type, enumerate, b0 + b, static_cast<std::uint32_t>(G),
                                   drawn, 1);
#pragma unroll
      for (int g = 0; g < GMAX; ++g) v[g] = g < G ? drawn[g] : 0.0;
    }
    double num[2] = {0, 0};
    for (int p = 0; p < P; ++p) num[p] = dot_clusters<GMAX>(m1 + p * G, v, G);
    double D00 = 0, D01 = 0, D11 = 0;
    for (int s = 0; s < S; ++s) {
      const double w = wts[s];
      const double* k0 = kd + kd_off[s];
      const double* k1 = P == 2 ? kd + kd_off[S + s] : nullptr;
      for (int c = 0; c < rows[s]; ++c) {
        const double z0 = dot_clusters<GMAX>(k0 + static_cast<std::int64_t>(c) * G, v, G);
        D00 += w * (z0 * z0);
        if (P == 2) {
          const double z1 = dot_clusters<GMAX>(k1 + static_cast<std::int64_t>(c) * G, v, G);
          D01 += w * (z0 * z1);
          D11 += w * (z1 * z1);
        }
      }
    }
    n0[b] = num[0];
    d0[b] = D00;
    if (P == 2) {
      n1[b] = num[1];
      d1[b] = D01;
      d2[b] = D11;
    }
  }
}

// one thread per replication; F = N' D^-1 N / q from N (q x nb) and D (q*q x nb), stored as
// n0 with d0 = 1 (a singular D gives NaN, which the counts skip as the CPU's does)
__global__ void joint_kernel(const double* N, const double* D, int q, std::size_t nb, double* n0, double* d0) {
  for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < nb;
       b += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    double A[kMaxJointRows * kMaxJointRows], x[kMaxJointRows], nv[kMaxJointRows];
    for (int j = 0; j < q; ++j) {
      nv[j] = x[j] = N[static_cast<std::size_t>(j) * nb + b];
      for (int l = 0; l < q; ++l) A[j + l * q] = D[static_cast<std::size_t>(j * q + l) * nb + b];
    }
    kernels::cholesky_solve(q, A, x, 0.0);
    double f = 0;
    for (int j = 0; j < q; ++j) f += nv[j] * x[j];
    n0[b] = f / q;
    d0[b] = 1.0;
  }
}

class CudaReplicates final : public WildReplicates {
 public:
  CudaReplicates(std::size_t n, bool two_parts, Pairs pairs, cudaStream_t s) : pairs_(pairs), stream_(s) {
    n0_ = DeviceBuffer<double>(n, s);
    d0_ = DeviceBuffer<double>(n, s);
    if (two_parts) {
      n1_ = DeviceBuffer<double>(n, s);
      d1_ = DeviceBuffer<double>(n, s);
      d2_ = DeviceBuffer<double>(n, s);
    }
    n_ = n;
  }
  kernels::WildCoefView view(std::size_t off, std::size_t n) const {
    kernels::WildCoefView v;
    v.n0 = n0_.get() + off;
    v.d0 = d0_.get() + off;
    if (n1_.get()) {
      v.n1 = n1_.get() + off;
      v.d1 = d1_.get() + off;
      v.d2 = d2_.get() + off;
    }
    v.n_rep = static_cast<std::int64_t>(n);
    return v;
  }
  BootCounts count_range(double delta, double t, double tol, bool inclusive, std::size_t off, std::size_t n) const {
    kernels::WildCountOp op;
    op.cf = view(off, n);
    op.delta = delta;
    op.t = t;
    op.tol = tol;
    op.inclusive = inclusive;
    op.pairs = pairs_;
    return thrust_algorithms::count_replicates(thrust::cuda::par.on(stream_), op);
  }
  BootCounts count(double delta, double t, double tol, bool inclusive) const override {
    return count_range(delta, t, tol, inclusive, 0, n_);
  }
  std::uint64_t size() const override { return n_; }
  WildCoefs coefficients() const override {
    WildCoefs c;
    const auto fetch = [&](const DeviceBuffer<double>& d, std::vector<double>& h) {
      if (!d.get()) return;
      h.resize(n_);
      if (n_) PB_CUDA_CHECK(cudaMemcpyAsync(h.data(), d.get(), n_ * sizeof(double), cudaMemcpyDeviceToHost, stream_));
    };
    fetch(n0_, c.n0);
    fetch(n1_, c.n1);
    fetch(d0_, c.d0);
    fetch(d1_, c.d1);
    fetch(d2_, c.d2);
    PB_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return c;
  }
  double* n0() { return n0_.get(); }
  double* d0() { return d0_.get(); }
  double* n1() { return n1_.get(); }
  double* d1() { return d1_.get(); }
  double* d2() { return d2_.get(); }

 private:
  Pairs pairs_;
  cudaStream_t stream_;
  std::size_t n_ = 0;
  DeviceBuffer<double> n0_, n1_, d0_, d1_, d2_;
};

constexpr int kGemmRowsPerPass = 8;  // outputs per thread and pass: each load of B serves eight

// Rows [R r0, R r0 + R) of C (m x nb, row-major) = A (m x d, row-major) B (d x nb, row-major), or
// C -= A B with `subtract`, one thread per replication (column b): each output summed over d in
// order from zero with no fused multiply-add, as the CPU's gemm_rows, so the products have its
// bits; A's entries are the same for every thread of the block (broadcast loads).
__global__ void gemm_rows_kernel(const double* __restrict__ A, std::int64_t m, std::int64_t d,
                                 const double* __restrict__ B, std::size_t nb, double* C,
                                 bool subtract) {
  constexpr int R = kGemmRowsPerPass;
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * R;
  const int rows = static_cast<int>(m - r0 < R ? m - r0 : R);
  for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < nb;
       b += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    double acc[R] = {};
    for (std::int64_t g = 0; g < d; ++g) {
      const double v = B[static_cast<std::size_t>(g) * nb + b];
#pragma unroll
      for (int i = 0; i < R; ++i)
        if (i < rows) acc[i] += A[(r0 + i) * d + g] * v;
    }
#pragma unroll
    for (int i = 0; i < R; ++i)
      if (i < rows) {
        double* c = C + static_cast<std::size_t>(r0 + i) * nb + b;
        *c = subtract ? *c - acc[i] : acc[i];
      }
  }
}

// C (m x nb, row-major) = A (m x d, row-major) B (d x nb, row-major), or C -= A B with
// `subtract`: the wild bootstrap's products by gemm_rows_kernel, not cuBLAS (whose libraries take
// about 75 ms to load in a cold process on the H200, for products of a few dozen columns that
// are memory-bound either way: bench/RESULTS.md).
void gemm_rows(cudaStream_t st, const double* A, std::size_t m, std::size_t d, const double* B,
               std::size_t nb, double* C, bool subtract) {
  if (m == 0 || nb == 0) return;
  const unsigned T = 256,
                 passes = static_cast<unsigned>((m + kGemmRowsPerPass - 1) / kGemmRowsPerPass);
  if (passes > 65535)
    throw InvalidInput(
        "--backend cuda: a product of more than 524280 rows is not supported on the GPU; use "
        "--backend cpu");
  const dim3 grid(std::min(blocks_for(nb, T), 4096u), passes);
  gemm_rows_kernel<<<grid, T, 0, st>>>(A, static_cast<std::int64_t>(m),
                                       static_cast<std::int64_t>(d), B, nb, C, subtract);
  PB_CUDA_LAUNCH_CHECK();
}

// The problem's arrays on the device (pointers into them: the problem's own offsets).
struct DeviceProblem {
  DeviceBuffer<double> m1, kd, pf, t1, w;
  DeviceBuffer<std::int32_t> row_ptr, cell_g, rows;
  DeviceBuffer<std::int64_t> kd_off;  // the fused kernel's: kd_at(p, 0, s) at [p * S + s]
};

class CudaPreparedWild final : public PreparedWild {
 public:
  CudaPreparedWild(const Context& ctx, const WildProblem& pr);
  WildRun run(const WildRunOptions& o) const override;

 private:
  WildRun run_general(const WildRunOptions& o) const;
  WildRun run_fused(const WildRunOptions& o, bool registers) const;
  template <class Fill>
  WildRun run_chunks(const WildRunOptions& o, std::size_t chunk, Fill&& fill) const;
  void append_trace(const CudaReplicates& reps, const WildRunOptions& o, std::uint64_t r0, std::size_t off,
                    std::size_t nb, std::vector<double>& h_trace) const;
  const Context& ctx_;
  const WildProblem& pr_;
  DeviceProblem d_;
};

CudaPreparedWild::CudaPreparedWild(const Context& ctx, const WildProblem& pr) : ctx_(ctx), pr_(pr) {
  cudaStream_t st = ctx.stream;
  d_.m1 = to_device(pr.m1, st);
  d_.kd = to_device(pr.kd, st);
  d_.pf = to_device(pr.pf, st);
  d_.t1 = to_device(pr.t1, st);
  d_.w = to_device(pr.term_weight, st);
  d_.row_ptr = to_device(pr.row_ptr, st);
  d_.cell_g = to_device(pr.cell_g, st);
  d_.rows = to_device(pr.n_rows, st);
  if (pr.dense && pr.q == 1) {
    std::vector<std::int64_t> off;
    for (std::size_t p = 0; p < static_cast<std::size_t>(pr.n_part); ++p)
      for (std::size_t s = 0; s < pr.n_terms(); ++s) off.push_back(pr.kd_at(p, 0, s));
    d_.kd_off = to_device(off, st);
  }
}

WildRun CudaPreparedWild::run(const WildRunOptions& o) const {
  if (pr_.q > kMaxJointRows)
    throw InvalidInput("--backend cuda: a joint test of more than " + std::to_string(kMaxJointRows) +
                       " restrictions is not supported on the GPU; use --backend cpu");
  // the dense form with q = 1 and few clusters: the fused kernel with its weights in registers
  // (up to 64 clusters; on the H200 at 6c0f63e, G = 30, B = 10^7: 4.24 ms against 5.55 ms with
  // them in local memory and 4.98 ms by the general path's products, then cuBLAS), unless
  // PANELBOOT_WILD_KERNEL says fused (local memory, any G up to kMaxFusedClusters) or gemm (the
  // general path: gemm_rows_kernel products); scripts/device-check times each
  const bool fused_ok = pr_.dense && pr_.q == 1 && pr_.n_clu <= kMaxFusedClusters;
  const std::string choice =
      kernel_choice("PANELBOOT_WILD_KERNEL", {"fused-registers", "fused", "gemm"});
  if (fused_ok && choice != "gemm")
    return run_fused(o, choice == "fused-registers" && pr_.n_clu <= kMaxRegisterClusters);
  return run_general(o);
}

// One chunk of the general path: its scratch on the device (V, R1, Z, D) and the products.
struct GeneralChunk {
  const Context& ctx;
  const WildProblem& pr;
  const DeviceProblem& d;
  DeviceBuffer<double> V, R1, Z, D;
  // Z_{p,j,S} and D_x += w_S sum_c Za Zb for term s (nb replications)
  void term(std::size_t s, std::size_t nb) {
    cudaStream_t st = ctx.stream;
    const std::size_t P = static_cast<std::size_t>(pr.n_part), q = static_cast<std::size_t>(pr.q);
    const std::size_t G = static_cast<std::size_t>(pr.n_clu), rows1 = pr.rows1(), kl = static_cast<std::size_t>(pr.kl);
    const std::size_t C = static_cast<std::size_t>(pr.n_rows[s]), n_d = q == 1 ? P * P : q * q;
    const unsigned T = 256;
    for (std::size_t p = 0; p < P; ++p)
      for (std::size_t j = 0; j < q; ++j) {
        double* z = Z.get() + (p * q + j) * C * nb;
        if (pr.dense) {
          gemm_rows(st, d.kd.get() + pr.kd_at(p, j, s), C, G, V.get(), nb, z, false);
          continue;
        }
        // Z = T1 V - PF R1_p[q:]
        const dim3 grid(blocks_for(nb, T) > 4096 ? 4096 : blocks_for(nb, T), static_cast<unsigned>(std::min<std::size_t>(C, 65535)));
        cells_kernel<<<grid, T, 0, st>>>(d.row_ptr.get() + pr.row_ptr_off(s), d.cell_g.get() + pr.cell_off[s],
                                         d.t1.get() + pr.t1_at(p, j, s), pr.n_rows[s], V.get(), nb, z);
        PB_CUDA_LAUNCH_CHECK();
        gemm_rows(st, d.pf.get() + pr.pf_at(j, s), C, kl, R1.get() + (p * rows1 + q) * nb, nb, z,
                  true);
      }
    for (std::size_t x = 0; x < n_d; ++x) {
      const std::size_t za = q == 1 ? x / P : x / q, zb = q == 1 ? x % P : x % q;
      if (q == 1 && za > zb) continue;
      denom_kernel<<<blocks_for(nb, T), T, 0, st>>>(Z.get() + za * C * nb, Z.get() + zb * C * nb, pr.n_rows[s], nb,
                                                    pr.term_weight[s], D.get() + x * nb);
      PB_CUDA_LAUNCH_CHECK();
    }
  }
  // the coefficients of this chunk into reps at off
  void coefs(CudaReplicates& reps, std::size_t nb, std::size_t off) {
    cudaStream_t st = ctx.stream;
    const std::size_t rows1 = pr.rows1();
    if (pr.q == 1) {
      auto copy = [&](double* dst, const double* src) {
        PB_CUDA_CHECK(cudaMemcpyAsync(dst + off, src, nb * sizeof(double), cudaMemcpyDeviceToDevice, st));
      };
      copy(reps.n0(), R1.get());
      copy(reps.d0(), D.get());
      if (pr.n_part == 2) {
        copy(reps.n1(), R1.get() + rows1 * nb);
        copy(reps.d1(), D.get() + nb);
        copy(reps.d2(), D.get() + 3 * nb);
      }
      return;
    }
    // N_j = row j of R1_0
    joint_kernel<<<blocks_for(nb, 256), 256, 0, st>>>(R1.get(), D.get(), pr.q, nb, reps.n0() + off, reps.d0() + off);
    PB_CUDA_LAUNCH_CHECK();
  }
};

WildRun CudaPreparedWild::run_general(const WildRunOptions& o) const {
  cudaStream_t st = ctx_.stream;
  const std::size_t P = static_cast<std::size_t>(pr_.n_part), S = pr_.n_terms();
  const std::size_t q = static_cast<std::size_t>(pr_.q), G = static_cast<std::size_t>(pr_.n_clu);
  const std::size_t rows1 = pr_.rows1();
  std::size_t max_rows = 0;
  for (std::int32_t c : pr_.n_rows) max_rows = std::max<std::size_t>(max_rows, static_cast<std::size_t>(c));
  const std::size_t n_d = q == 1 ? P * P : q * q;
  // replications per chunk: the scratch (V, R1, Z, D) within about 1 GiB
  const std::size_t per_rep = 8 * (G + P * rows1 + P * q * max_rows + n_d + 5);
  std::size_t chunk = o.chunk ? o.chunk : std::max<std::size_t>(1024, (std::size_t{1} << 30) / per_rep);
  chunk = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, std::max<std::uint64_t>(o.n_rep, 1)));
  GeneralChunk gc{ctx_, pr_, d_, DeviceBuffer<double>(G * chunk, st), DeviceBuffer<double>(P * rows1 * chunk, st),
                  DeviceBuffer<double>(P * q * max_rows * chunk, st), DeviceBuffer<double>(n_d * chunk, st)};
  const unsigned T = 256;
  return run_chunks(o, chunk, [&](CudaReplicates& reps, std::uint64_t b0, std::size_t nb, std::size_t off) {
    weights_kernel<<<blocks_for(nb, T), T, 0, st>>>(o.seed, o.weight, o.enumerate, b0, nb, pr_.n_clu, gc.V.get());
    PB_CUDA_LAUNCH_CHECK();
    // R1_p = M1_p V
    for (std::size_t p = 0; p < P; ++p)
      gemm_rows(st, d_.m1.get() + pr_.m1_at(p), rows1, G, gc.V.get(), nb,
                gc.R1.get() + p * rows1 * nb, false);
    PB_CUDA_CHECK(cudaMemsetAsync(gc.D.get(), 0, n_d * nb * sizeof(double), st));
    for (std::size_t s = 0; s < S; ++s) gc.term(s, nb);
    gc.coefs(reps, nb, off);
  });
}

// The chunk loop both paths share: the coefficients of every replication (all kept with
// keep_coefs, else one chunk's at a time), counted and traced chunk by chunk. fill(reps, b0, nb,
// off) writes those of replications b0 .. b0+nb-1 (counted from 0, not o.b0) at offset off of reps.
template <class Fill>
WildRun CudaPreparedWild::run_chunks(const WildRunOptions& o, std::size_t chunk, Fill&& fill) const {
  cudaStream_t st = ctx_.stream;
  const bool two = pr_.q == 1 && pr_.n_part == 2;
  auto reps = std::make_unique<CudaReplicates>(o.keep_coefs ? o.n_rep : chunk, two, wild_pairs(pr_, o), st);
  WildRun run;
  std::vector<double> h_trace;
  for (std::uint64_t r0 = 0; r0 < o.n_rep; r0 += chunk) {
    const std::size_t nb = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, o.n_rep - r0));
    const std::size_t off = o.keep_coefs ? static_cast<std::size_t>(r0) : 0;
    fill(*reps, o.b0 + r0, nb, off);
    run.counts = run.counts + reps->count_range(o.count_delta, o.count_t, o.count_tol, o.inclusive, off, nb);
    append_trace(*reps, o, r0, off, nb, h_trace);
    if (o.progress) o.progress->advance(nb);
  }
  PB_CUDA_CHECK(cudaStreamSynchronize(st));
  run.trace = std::move(h_trace);
  if (o.keep_coefs) run.reps = std::move(reps);
  return run;
}

// the statistics (at count_delta) of the replications of this chunk below trace_keep
void CudaPreparedWild::append_trace(const CudaReplicates& reps, const WildRunOptions& o, std::uint64_t r0,
                                    std::size_t off, std::size_t nb, std::vector<double>& h_trace) const {
  if (r0 >= o.trace_keep) return;
  cudaStream_t st = ctx_.stream;
  const std::size_t m = static_cast<std::size_t>(std::min<std::uint64_t>(nb, o.trace_keep - r0));
  const kernels::WildCoefView v = reps.view(off, m);
  std::vector<double> h0(m), h1(m, 0.0), e0(m), e1(m, 0.0), e2(m, 0.0);
  PB_CUDA_CHECK(cudaMemcpyAsync(h0.data(), v.n0, m * sizeof(double), cudaMemcpyDeviceToHost, st));
  PB_CUDA_CHECK(cudaMemcpyAsync(e0.data(), v.d0, m * sizeof(double), cudaMemcpyDeviceToHost, st));
  if (v.n1) {
    PB_CUDA_CHECK(cudaMemcpyAsync(h1.data(), v.n1, m * sizeof(double), cudaMemcpyDeviceToHost, st));
    PB_CUDA_CHECK(cudaMemcpyAsync(e1.data(), v.d1, m * sizeof(double), cudaMemcpyDeviceToHost, st));
    PB_CUDA_CHECK(cudaMemcpyAsync(e2.data(), v.d2, m * sizeof(double), cudaMemcpyDeviceToHost, st));
  }
  PB_CUDA_CHECK(cudaStreamSynchronize(st));
  for (std::size_t b = 0; b < m; ++b) h_trace.push_back(kernels::wild_t(h0[b], h1[b], e0[b], e1[b], e2[b], o.count_delta));
}

// The fused kernel reads the problem as the device holds it: M1 (one row per part, q = 1 and
// dense), Kd at kd_off, the terms' sizes and weights.
WildRun CudaPreparedWild::run_fused(const WildRunOptions& o, bool registers) const {
  cudaStream_t st = ctx_.stream;
  const int P = pr_.n_part, S = static_cast<int>(pr_.n_terms()), G = pr_.n_clu;
  const bool two = P == 2;
  const std::size_t chunk = static_cast<std::size_t>(
      o.keep_coefs ? std::max<std::uint64_t>(o.n_rep, 1) : std::min<std::uint64_t>(std::max<std::uint64_t>(o.n_rep, 1), 1u << 24));
  // the kernel for G: registers for GMAX = 16, 32, 48 or 64 at least G, else the generic one
  auto kernel = wild_fused_kernel<0>;
  if (registers)
    kernel = G <= 16   ? wild_fused_kernel<16>
             : G <= 32 ? wild_fused_kernel<32>
             : G <= 48 ? wild_fused_kernel<48>
                       : wild_fused_kernel<kMaxRegisterClusters>;
  return run_chunks(
      o, chunk, [&](CudaReplicates& reps, std::uint64_t b0, std::size_t nb, std::size_t off) {
        kernel<<<blocks_for(nb, 128), 128, 0, st>>>(
            o.seed, o.weight, o.enumerate, b0, nb, G, P, S, d_.rows.get(), d_.w.get(), d_.m1.get(),
            d_.kd.get(), d_.kd_off.get(), reps.n0() + off, two ? reps.n1() + off : nullptr,
            reps.d0() + off, two ? reps.d1() + off : nullptr, two ? reps.d2() + off : nullptr);
        PB_CUDA_LAUNCH_CHECK();
      });
}

}  // namespace

std::vector<double> wild_weights(const Context& ctx, std::uint64_t seed, kernels::WeightType type, bool enumerate,
                                 std::uint64_t b0, std::size_t nb, std::int32_t G) {
  DeviceBuffer<double> d_V(static_cast<std::size_t>(G) * nb, ctx.stream);
  weights_kernel<<<blocks_for(nb, 256), 256, 0, ctx.stream>>>(seed, type, enumerate, b0, nb, G, d_V.get());
  PB_CUDA_LAUNCH_CHECK();
  std::vector<double> V(d_V.size());
  d_V.download(V.data(), V.size());
  PB_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  return V;
}

std::unique_ptr<PreparedWild> prepare_wild(const Context& ctx, const WildProblem& problem) {
  return std::make_unique<CudaPreparedWild>(ctx, problem);
}

}  // namespace panelboot::cuda
