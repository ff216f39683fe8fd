// The CUDA backend: the same Backend interface as the CPU reference, the same Philox draws
// (kernels/wild_weights.hpp), FP64 throughout. A context holds the stream, the cuBLAS handle and
// a stream-ordered memory pool, made once, so repeated calls pay no setup.
//
// Wild bootstrap, per chunk of nb replications (row-major G x nb arrays, i.e. column-major
// nb x G for cuBLAS, so every product is one DGEMM with the replications as its long side):
//   V         = weights                         weights_kernel (one thread per replication)
//   R1_p      = M1_p V                          DGEMM (rows1 x G) x (G x nb)
//   Z_{p,j,S} = Kd V                            DGEMM, dense form
//             = T1 V - PF R1_p[q:]              cells_kernel (CSR over error clusters) + DGEMM
//   D_x      += w_S sum_c Za Zb                 denom_kernel (one thread per replication)
//   coefs    <- N, D (F = N'D^-1N/q for q > 1)  coef_kernel
//   counts    = transform_reduce(WildCountOp)   Thrust, on the device
#include <cuda_pipeline.h>
#include <thrust/execution_policy.h>

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "check.cuh"
#include "panelboot/backend.hpp"
#include "thrust_algorithms.hpp"

namespace panelboot::cuda {
namespace {

// Device memory from the stream-ordered pool, freed on the same stream.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(std::size_t n, cudaStream_t s) : n_(n), stream_(s) {
    if (n) PB_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&p_), n * sizeof(T), s));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~DeviceBuffer() {
    if (p_) cudaFreeAsync(p_, stream_);
  }
  T* get() const { return p_; }
  std::size_t size() const { return n_; }
  void upload(const T* h, std::size_t n) {
    if (n) PB_CUDA_CHECK(cudaMemcpyAsync(p_, h, n * sizeof(T), cudaMemcpyHostToDevice, stream_));
  }
  void download(T* h, std::size_t n) const {
    if (n) PB_CUDA_CHECK(cudaMemcpyAsync(h, p_, n * sizeof(T), cudaMemcpyDeviceToHost, stream_));
  }

 private:
  void swap(DeviceBuffer& o) {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    std::swap(stream_, o.stream_);
  }
  T* p_ = nullptr;
  std::size_t n_ = 0;
  cudaStream_t stream_ = nullptr;
};

template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& h, cudaStream_t s) {
  DeviceBuffer<T> d(h.size(), s);
  d.upload(h.data(), h.size());
  return d;
}

unsigned blocks_for(std::size_t n, unsigned threads) {
  const std::size_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::min<std::size_t>(std::max<std::size_t>(b, 1), 1u << 30));
}

// one thread per replication; writes the column of V (G x nb, row-major) of replication b0 + b
__global__ void weights_kernel(std::uint64_t seed, kernels::WeightType type, bool enumerate, std::uint64_t b0,
                               std::size_t nb, std::int32_t n_clu, double* V) {
  for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < nb;
       b += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    if (enumerate) {
      for (std::int32_t g = 0; g < n_clu; ++g)
        V[static_cast<std::size_t>(g) * nb + b] = kernels::enumerated_weight(b0 + b, static_cast<std::uint32_t>(g));
    } else {
      kernels::wild_weights_row(seed, b0 + b, static_cast<std::uint32_t>(n_clu), type, V + b, nb);
    }
  }
}

// one thread per (replication b, error cluster c); loops over the cells of c (CSR):
// Z[c, b] = sum_e t1[e] V[g_e, b]
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

// The dense form with q = 1 fused into one kernel, one thread per replication: the weights drawn
// in the thread, N_p = m1_p . v, Z = Kd v row by row and the denominators accumulated as they
// come, summed in the same order as the CPU backend (with unfused multiply-adds: the same bits),
// and no G x B weight matrix or C x B products ever stored.
__global__ void wild_fused_kernel(std::uint64_t seed, kernels::WeightType type, bool enumerate, std::uint64_t b0,
                                  std::size_t nb, int G, int P, int S, const std::int32_t* rows, const double* wts,
                                  const double* m1, const double* kd, const std::int64_t* kd_off, double* n0, double* n1,
                                  double* d0, double* d1, double* d2) {
  for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < nb;
       b += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    double v[kMaxFusedClusters];
    if (enumerate) {
      for (int g = 0; g < G; ++g) v[g] = kernels::enumerated_weight(b0 + b, static_cast<std::uint32_t>(g));
    } else {
      kernels::wild_weights_row(seed, b0 + b, static_cast<std::uint32_t>(G), type, v, 1);
    }
    double num[2] = {0, 0};
    for (int p = 0; p < P; ++p) {
      double acc = 0;
      for (int g = 0; g < G; ++g) acc += m1[p * G + g] * v[g];
      num[p] = acc;
    }
    double D00 = 0, D01 = 0, D11 = 0;
    for (int s = 0; s < S; ++s) {
      const double w = wts[s];
      const double* k0 = kd + kd_off[s];
      const double* k1 = P == 2 ? kd + kd_off[S + s] : nullptr;
      for (int c = 0; c < rows[s]; ++c) {
        double z0 = 0, z1 = 0;
        for (int g = 0; g < G; ++g) z0 += k0[static_cast<std::int64_t>(c) * G + g] * v[g];
        D00 += w * (z0 * z0);
        if (P == 2) {
          for (int g = 0; g < G; ++g) z1 += k1[static_cast<std::int64_t>(c) * G + g] * v[g];
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

// one thread per item; solves the normal equations of item b in place
__global__ void solve_kernel(int k, std::int64_t n_batch, double* A, double* xty, double rel_tol, int* status) {
  for (std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; b < n_batch;
       b += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    status[b] = static_cast<int>(kernels::cholesky_solve(k, A + b * k * k, xty + b * k, rel_tol));
}

// one warp per item; SSR of the residuals E (n x n_batch, column-major)
__global__ void ssr_kernel(const double* E, std::int64_t n, std::int64_t n_batch, double* ssr) {
  const std::int64_t warp = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= n_batch) return;
  double acc = 0;
  for (std::int64_t i = lane; i < n; i += 32) {
    const double e = E[warp * n + i];
    acc += e * e;
  }
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
  if (lane == 0) ssr[warp] = acc;
}

// One warp per item for k + 1 <= 12 columns of [X y]. Staged: the warp first copies its item
// into shared memory with asynchronous copies (every load in flight at once, one wait), then
// reads it from there; direct: it reads device memory as it goes. Lane l takes rows l, l + 32,
// ..., accumulates the packed upper triangle of [X y]'[X y] in registers, the warp sums it into
// lane 0, which solves (the shared Cholesky, unrolled for this k, in registers); a second pass
// over the rows sums the squared residuals. X is read once from device memory: the kernel's
// floor is the bytes of X and y.
template <int K1, bool Staged>
__global__ void __launch_bounds__(128, 3) ols_warp_kernel(const double* __restrict__ X, const double* __restrict__ y,
                                                       std::int64_t n, std::int64_t sx, std::int64_t sy,
                                                       std::int64_t n_batch, double rel_tol, double* beta,
                                                       double* ssr, int* status) {
  constexpr int K = K1 - 1, NE = K1 * (K1 + 1) / 2;
  extern __shared__ double ols_smem[];
  const std::int64_t item = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (item >= n_batch) return;  // whole warps leave together
  const double* xs = X + item * sx;
  const double* ys = y + item * sy;
  if constexpr (Staged) {
    double* w = ols_smem + static_cast<std::int64_t>(threadIdx.x / 32) * n * K1;
    for (std::int64_t i = lane; i < n * K; i += 32) __pipeline_memcpy_async(w + i, xs + i, sizeof(double));
    for (std::int64_t i = lane; i < n; i += 32) __pipeline_memcpy_async(w + n * K + i, ys + i, sizeof(double));
    __pipeline_commit();
    __pipeline_wait_prior(0);
    __syncwarp();
    xs = w;
    ys = w + n * K;
  }
  double acc[NE];
#pragma unroll
  for (int e = 0; e < NE; ++e) acc[e] = 0;
  for (std::int64_t i = lane; i < n; i += 32) {
    double v[K1];
#pragma unroll
    for (int j = 0; j < K; ++j) v[j] = xs[i + j * n];
    v[K] = ys[i];
#pragma unroll
    for (int l = 0; l < K1; ++l)
#pragma unroll
      for (int j = 0; j <= l; ++j) acc[l * (l + 1) / 2 + j] = fma(v[j], v[l], acc[l * (l + 1) / 2 + j]);
  }
#pragma unroll
  for (int e = 0; e < NE; ++e)
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[e] += __shfl_down_sync(0xffffffffu, acc[e], off);
  double b[K > 0 ? K : 1] = {};
  int st = 0;
  if (lane == 0) {
    double A[K * K > 0 ? K * K : 1];
#pragma unroll
    for (int l = 0; l < K; ++l) {
#pragma unroll
      for (int j = 0; j <= l; ++j) A[l + j * K] = acc[l * (l + 1) / 2 + j];
      b[l] = acc[K * (K + 1) / 2 + l];
    }
    st = static_cast<int>(kernels::cholesky_solve<K>(K, A, b, rel_tol));
  }
  st = __shfl_sync(0xffffffffu, st, 0);
#pragma unroll
  for (int j = 0; j < K; ++j) b[j] = __shfl_sync(0xffffffffu, b[j], 0);
  double s = 0;
  if (st == 0) {
    for (std::int64_t i = lane; i < n; i += 32) {
      double e = ys[i];
#pragma unroll
      for (int j = 0; j < K; ++j) e = fma(-xs[i + j * n], b[j], e);
      s = fma(e, e, s);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
  }
#pragma unroll
  for (int j = 0; j < K; ++j)
    if (lane == j) beta[item * K + j] = b[j];
  if (lane == 0) {
    ssr[item] = st == 0 ? s : ::nan("");
    status[item] = st;
  }
}

constexpr int kOlsWarpMaxCols = 12;  // k + 1 up to this: ols_warp_kernel; beyond, DGEMM + solve_kernel
constexpr std::size_t kOlsStagedMaxBytes = 96 * 1024;  // a block's 4 staged items, at most

// A kernel choice from the environment variable `name` (unset or empty: the first of `allowed`),
// so scripts/device-check can time each; any other value is an error, not ignored.
std::string kernel_choice(const char* name, std::initializer_list<const char*> allowed) {
  const char* e = std::getenv(name);
  const std::string c = e && *e ? e : *allowed.begin();
  std::string list;
  for (const char* a : allowed) {
    if (c == a) return c;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  throw InvalidInput(std::string(name) + " must be one of " + list + ", not '" + c + "'");
}

// The batched OLS kernel in use: "staged" (the default), "direct", or "gemm" (the DGEMM path for
// every k), from PANELBOOT_OLS_KERNEL.
std::string ols_kernel_choice() { return kernel_choice("PANELBOOT_OLS_KERNEL", {"staged", "direct", "gemm"}); }

// Launches ols_warp_kernel<k1>; false when the item does not fit the staged form's shared memory.
template <int K1>
bool launch_ols_warp(int k1, bool staged, const double* X, const double* y, const OlsBatch& bt, double* beta,
                     double* ssr, int* status, cudaStream_t st) {
  if constexpr (K1 > 1) {
    if (k1 != K1) return launch_ols_warp<K1 - 1>(k1, staged, X, y, bt, beta, ssr, status, st);
    const unsigned blocks = blocks_for(static_cast<std::size_t>(bt.n_batch) * 32, 128);
    if (staged) {
      const std::size_t smem = 4 * static_cast<std::size_t>(bt.n_obs) * K1 * sizeof(double);
      if (smem > kOlsStagedMaxBytes) return false;
      PB_CUDA_CHECK(cudaFuncSetAttribute(ols_warp_kernel<K1, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem)));
      ols_warp_kernel<K1, true><<<blocks, 128, smem, st>>>(X, y, bt.n_obs, bt.stride_x, bt.stride_y, bt.n_batch,
                                                          bt.rel_tol, beta, ssr, status);
    } else {
      ols_warp_kernel<K1, false><<<blocks, 128, 0, st>>>(X, y, bt.n_obs, bt.stride_x, bt.stride_y, bt.n_batch,
                                                        bt.rel_tol, beta, ssr, status);
    }
    PB_CUDA_LAUNCH_CHECK();
    return true;
  }
  return false;
}

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

// Two timing events, destroyed on every path out.
struct Events {
  cudaEvent_t e[2] = {nullptr, nullptr};
  Events() {
    for (auto& x : e) PB_CUDA_CHECK(cudaEventCreate(&x));
  }
  ~Events() {
    for (auto& x : e)
      if (x) cudaEventDestroy(x);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
};

struct Context {
  cudaStream_t stream = nullptr;
  cublasHandle_t handle = nullptr;
  std::string name;
  std::size_t free_mem = 0;
};

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

// C (m x nb, row-major) = alpha A (m x d, row-major) B (d x nb, row-major) + beta C
void gemm_rows(cublasHandle_t h, const double* A, std::size_t m, std::size_t d, const double* B, std::size_t nb,
               double* C, double alpha, double beta) {
  if (m == 0 || nb == 0) return;
  PB_CUBLAS_CHECK(cublasDgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(nb), static_cast<int>(m),
                              static_cast<int>(d), &alpha, B, static_cast<int>(nb), A, static_cast<int>(d), &beta, C,
                              static_cast<int>(nb)));
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    PB_CUDA_CHECK(cudaSetDevice(0));
    PB_CUDA_CHECK(cudaStreamCreate(&ctx_.stream));
    PB_CUBLAS_CHECK(cublasCreate(&ctx_.handle));
    PB_CUBLAS_CHECK(cublasSetStream(ctx_.handle, ctx_.stream));
    cudaDeviceProp prop{};
    PB_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    ctx_.name = prop.name;
    // keep freed pool memory for the next call instead of returning it to the driver
    cudaMemPool_t pool;
    PB_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, 0));
    std::uint64_t keep = UINT64_MAX;
    PB_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    std::size_t total = 0;
    PB_CUDA_CHECK(cudaMemGetInfo(&ctx_.free_mem, &total));
  }
  ~CudaBackend() override {
    cublasDestroy(ctx_.handle);
    cudaStreamDestroy(ctx_.stream);
  }
  Device device() const override { return Device::kCuda; }
  std::string name() const override { return "cuda"; }
  std::string describe() const override { return "backend: cuda (" + ctx_.name + ")"; }

  std::vector<double> wild_weights(std::uint64_t seed, kernels::WeightType type, bool enumerate, std::uint64_t b0,
                                   std::size_t nb, std::int32_t G) const override {
    DeviceBuffer<double> d_V(static_cast<std::size_t>(G) * nb, ctx_.stream);
    weights_kernel<<<blocks_for(nb, 256), 256, 0, ctx_.stream>>>(seed, type, enumerate, b0, nb, G, d_V.get());
    PB_CUDA_LAUNCH_CHECK();
    std::vector<double> V(d_V.size());
    d_V.download(V.data(), V.size());
    PB_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    return V;
  }

  WildRun wild_replicates(const WildSpec& sp) const override {
    cudaStream_t st = ctx_.stream;
    const std::size_t P = static_cast<std::size_t>(sp.n_part), S = sp.n_terms();
    const std::size_t q = static_cast<std::size_t>(sp.q), G = static_cast<std::size_t>(sp.n_clu);
    const std::size_t rows1 = sp.rows1(), kl = static_cast<std::size_t>(sp.kl);
    if (sp.q > kMaxJointRows)
      throw InvalidInput("--backend cuda: a joint test of more than " + std::to_string(kMaxJointRows) +
                         " restrictions is not supported on the GPU; use --backend cpu");
    // the dense form with q = 1 and few clusters: the fused kernel, unless PANELBOOT_WILD_KERNEL=gemm
    // (scripts/device-check times both; the choice is kept where it measures faster)
    const bool fused_ok = sp.dense && sp.q == 1 && sp.n_clu <= kMaxFusedClusters;
    if (fused_ok && kernel_choice("PANELBOOT_WILD_KERNEL", {"fused", "gemm"}) == "fused") return wild_fused(sp);
    // upload the spec; cells sorted by error cluster (CSR) for the factored form
    std::vector<DeviceBuffer<double>> d_m1, d_kd, d_pf, d_t1;
    std::vector<DeviceBuffer<std::int32_t>> d_rowptr, d_colg;
    for (const auto& m : sp.m1) d_m1.push_back(to_device(m, st));
    for (const auto& m : sp.kd) d_kd.push_back(to_device(m, st));
    for (const auto& m : sp.pf) d_pf.push_back(to_device(m, st));
    std::vector<std::vector<std::size_t>> order(S);
    if (!sp.dense) {
      for (std::size_t s = 0; s < S; ++s) {
        const std::size_t n_cells = sp.cell_c[s].size();
        std::vector<std::size_t>& ord = order[s];
        ord.resize(n_cells);
        for (std::size_t e = 0; e < n_cells; ++e) ord[e] = e;
        std::stable_sort(ord.begin(), ord.end(), [&](std::size_t a, std::size_t b) { return sp.cell_c[s][a] < sp.cell_c[s][b]; });
        std::vector<std::int32_t> rp(static_cast<std::size_t>(sp.n_rows[s]) + 1, 0), cg(n_cells);
        for (std::size_t e = 0; e < n_cells; ++e) {
          ++rp[static_cast<std::size_t>(sp.cell_c[s][ord[e]]) + 1];
          cg[e] = sp.cell_g[s][ord[e]];
        }
        for (std::size_t c = 0; c < static_cast<std::size_t>(sp.n_rows[s]); ++c) rp[c + 1] += rp[c];
        d_rowptr.push_back(to_device(rp, st));
        d_colg.push_back(to_device(cg, st));
      }
      for (std::size_t idx = 0; idx < sp.t1.size(); ++idx) {
        const std::size_t s = idx % S;
        std::vector<double> v(sp.t1[idx].size());
        for (std::size_t e = 0; e < v.size(); ++e) v[e] = sp.t1[idx][order[s][e]];
        d_t1.push_back(to_device(v, st));
      }
    }
    std::size_t max_rows = 0;
    for (std::int32_t c : sp.n_rows) max_rows = std::max<std::size_t>(max_rows, static_cast<std::size_t>(c));
    const std::size_t n_d = q == 1 ? P * P : q * q;
    // replications per chunk: the scratch (V, R1, Z, D) within about 1 GiB
    const std::size_t per_rep = 8 * (G + P * rows1 + P * q * max_rows + n_d + 5);
    std::size_t chunk = sp.chunk ? sp.chunk : std::max<std::size_t>(1024, (std::size_t{1} << 30) / per_rep);
    chunk = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, std::max<std::uint64_t>(sp.n_rep, 1)));
    DeviceBuffer<double> d_V(G * chunk, st), d_R1(P * rows1 * chunk, st), d_Z(P * q * max_rows * chunk, st),
        d_D(n_d * chunk, st);
    const bool two = q == 1 && P == 2;
    const unsigned T = 256;
    return run_chunks(sp, chunk, [&](CudaReplicates& reps, std::uint64_t b0, std::size_t nb, std::size_t off) {
      weights_kernel<<<blocks_for(nb, T), T, 0, st>>>(sp.seed, sp.weight, sp.enumerate, b0, nb, sp.n_clu, d_V.get());
      PB_CUDA_LAUNCH_CHECK();
      // R1_p = M1_p V
      for (std::size_t p = 0; p < P; ++p)
        gemm_rows(ctx_.handle, d_m1[p].get(), rows1, G, d_V.get(), nb, d_R1.get() + p * rows1 * nb, 1.0, 0.0);
      PB_CUDA_CHECK(cudaMemsetAsync(d_D.get(), 0, n_d * nb * sizeof(double), st));
      for (std::size_t s = 0; s < S; ++s) {
        const std::size_t C = static_cast<std::size_t>(sp.n_rows[s]);
        for (std::size_t p = 0; p < P; ++p)
          for (std::size_t j = 0; j < q; ++j) {
            double* Z = d_Z.get() + (p * q + j) * C * nb;
            const std::size_t idx = (p * q + j) * S + s;
            if (sp.dense) {
              gemm_rows(ctx_.handle, d_kd[idx].get(), C, G, d_V.get(), nb, Z, 1.0, 0.0);
              continue;
            }
            // Z = T1 V - PF R1_p[q:]
            const dim3 grid(blocks_for(nb, T) > 4096 ? 4096 : blocks_for(nb, T), static_cast<unsigned>(std::min<std::size_t>(C, 65535)));
            cells_kernel<<<grid, T, 0, st>>>(d_rowptr[s].get(), d_colg[s].get(), d_t1[idx].get(), sp.n_rows[s],
                                             d_V.get(), nb, Z);
            PB_CUDA_LAUNCH_CHECK();
            gemm_rows(ctx_.handle, d_pf[j * S + s].get(), C, kl, d_R1.get() + (p * rows1 + q) * nb, nb, Z, -1.0, 1.0);
          }
        // D_x += w_S sum_c Za Zb
        for (std::size_t x = 0; x < n_d; ++x) {
          const std::size_t za = q == 1 ? x / P : x / q, zb = q == 1 ? x % P : x % q;
          if (q == 1 && za > zb) continue;
          denom_kernel<<<blocks_for(nb, T), T, 0, st>>>(d_Z.get() + za * C * nb, d_Z.get() + zb * C * nb,
                                                        sp.n_rows[s], nb, sp.term_weight[s], d_D.get() + x * nb);
          PB_CUDA_LAUNCH_CHECK();
        }
      }
      // the coefficients of this chunk
      if (q == 1) {
        auto copy = [&](double* dst, const double* src) {
          PB_CUDA_CHECK(cudaMemcpyAsync(dst + off, src, nb * sizeof(double), cudaMemcpyDeviceToDevice, st));
        };
        copy(reps.n0(), d_R1.get());
        copy(reps.d0(), d_D.get());
        if (two) {
          copy(reps.n1(), d_R1.get() + rows1 * nb);
          copy(reps.d1(), d_D.get() + nb);
          copy(reps.d2(), d_D.get() + 3 * nb);
        }
      } else {
        // N_j = row j of R1_0
        joint_kernel<<<blocks_for(nb, T), T, 0, st>>>(d_R1.get(), d_D.get(), sp.q, nb, reps.n0() + off,
                                                      reps.d0() + off);
        PB_CUDA_LAUNCH_CHECK();
      }
    });
  }

  // The chunk loop both wild paths share: the coefficients of every replication (all kept with
  // keep_coefs, else one chunk's at a time), counted and traced chunk by chunk. fill(reps, b0, nb,
  // off) writes those of replications b0 .. b0+nb-1 at offset off of reps.
  template <class Fill>
  WildRun run_chunks(const WildSpec& sp, std::size_t chunk, Fill&& fill) const {
    cudaStream_t st = ctx_.stream;
    const bool two = sp.q == 1 && sp.n_part == 2;
    auto reps = std::make_unique<CudaReplicates>(sp.keep_coefs ? sp.n_rep : chunk, two, wild_pairs(sp), st);
    WildRun run;
    std::vector<double> h_trace;
    for (std::uint64_t b0 = 0; b0 < sp.n_rep; b0 += chunk) {
      const std::size_t nb = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, sp.n_rep - b0));
      const std::size_t off = sp.keep_coefs ? static_cast<std::size_t>(b0) : 0;
      fill(*reps, b0, nb, off);
      run.counts = run.counts + reps->count_range(sp.count_delta, sp.count_t, sp.count_tol, sp.inclusive, off, nb);
      append_trace(*reps, sp, b0, off, nb, h_trace);
      if (sp.progress) sp.progress->advance(nb);
    }
    PB_CUDA_CHECK(cudaStreamSynchronize(st));
    run.trace = std::move(h_trace);
    if (sp.keep_coefs) run.reps = std::move(reps);
    return run;
  }

  // the statistics (at count_delta) of the replications of this chunk below trace_keep
  void append_trace(const CudaReplicates& reps, const WildSpec& sp, std::uint64_t b0, std::size_t off,
                    std::size_t nb, std::vector<double>& h_trace) const {
    if (b0 >= sp.trace_keep) return;
    cudaStream_t st = ctx_.stream;
    const std::size_t m = static_cast<std::size_t>(std::min<std::uint64_t>(nb, sp.trace_keep - b0));
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
    for (std::size_t b = 0; b < m; ++b) h_trace.push_back(kernels::wild_t(h0[b], h1[b], e0[b], e1[b], e2[b], sp.count_delta));
  }

  WildRun wild_fused(const WildSpec& sp) const {
    cudaStream_t st = ctx_.stream;
    const int P = sp.n_part, S = static_cast<int>(sp.n_terms()), G = sp.n_clu;
    std::vector<double> m1, kd;
    std::vector<std::int64_t> off;
    for (int p = 0; p < P; ++p) m1.insert(m1.end(), sp.m1[p].begin(), sp.m1[p].begin() + G);  // row 0: a_j's_g
    for (int p = 0; p < P; ++p)
      for (int s2 = 0; s2 < S; ++s2) {
        off.push_back(static_cast<std::int64_t>(kd.size()));
        const auto& k = sp.kd[static_cast<std::size_t>(p * S + s2)];
        kd.insert(kd.end(), k.begin(), k.end());
      }
    auto d_m1 = to_device(m1, st);
    auto d_kd = to_device(kd, st);
    auto d_off = to_device(off, st);
    auto d_rows = to_device(sp.n_rows, st);
    auto d_w = to_device(sp.term_weight, st);
    const bool two = P == 2;
    const std::size_t chunk = static_cast<std::size_t>(
        sp.keep_coefs ? std::max<std::uint64_t>(sp.n_rep, 1) : std::min<std::uint64_t>(std::max<std::uint64_t>(sp.n_rep, 1), 1u << 24));
    return run_chunks(sp, chunk, [&](CudaReplicates& reps, std::uint64_t b0, std::size_t nb, std::size_t o) {
      wild_fused_kernel<<<blocks_for(nb, 128), 128, 0, st>>>(
          sp.seed, sp.weight, sp.enumerate, b0, nb, G, P, S, d_rows.get(), d_w.get(), d_m1.get(), d_kd.get(),
          d_off.get(), reps.n0() + o, two ? reps.n1() + o : nullptr, reps.d0() + o, two ? reps.d1() + o : nullptr,
          two ? reps.d2() + o : nullptr);
      PB_CUDA_LAUNCH_CHECK();
    });
  }

  // one Thrust call: progress is reported once, at the end
  BootCounts wild_enumerate(const kernels::GrayProblem& p, ProgressSink* progress) const override {
    if (p.n_clu < 2 || p.n_clu > kernels::kMaxGrayClusters)
      throw InvalidInput("enumeration on the GPU needs 2 to " + std::to_string(kernels::kMaxGrayClusters) + " clusters");
    cudaStream_t st = ctx_.stream;
    const std::size_t G = static_cast<std::size_t>(p.n_clu);
    DeviceBuffer<double> d_H(G * G, st), d_C(G, st);
    d_H.upload(p.H, G * G);
    d_C.upload(p.C, G);
    kernels::GrayRangeOp op;
    op.p = p;
    op.p.H = d_H.get();
    op.p.C = d_C.get();
    op.n_vec = std::uint64_t{1} << (p.n_clu - 1);
    op.n_ranges = thrust_algorithms::gray_ranges(op.n_vec, std::uint64_t{1} << 20);
    const BootCounts c = thrust_algorithms::gray_enumerate(thrust::cuda::par.on(st), op);
    PB_CUDA_CHECK(cudaStreamSynchronize(st));
    if (progress) progress->advance(op.n_vec);
    return c;
  }

  std::vector<double> threshold_fstar(const ThresholdBootSpec& sp, const ThresholdGram& gram) const override {
    cudaStream_t st = ctx_.stream;
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
      threshold_first_kernel<<<blocks, 128, 0, st>>>(v, tab, static_cast<std::uint64_t>(b0), nb, d_s.get(),
                                                     d_state.get(), d_f.get() + b0);
      PB_CUDA_LAUNCH_CHECK();
      for (int stage = 2; stage <= h.k; ++stage) {
        // the points fixed at the last stage whose columns are not in the table yet
        d_state.download(states.data(), static_cast<std::size_t>(nb));
        PB_CUDA_CHECK(cudaStreamSynchronize(st));
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
        threshold_stage_kernel<<<blocks, 128, 0, st>>>(v, tab, stage, nb, d_s.get(), d_state.get(), d_f.get() + b0);
        PB_CUDA_LAUNCH_CHECK();
      }
    }
    std::vector<double> fstar(static_cast<std::size_t>(sp.n_boot));
    d_f.download(fstar.data(), fstar.size());
    PB_CUDA_CHECK(cudaStreamSynchronize(st));
    return fstar;
  }

  OlsBatchResult batched_ols(const OlsBatch& bt) const override {
    cudaStream_t st = ctx_.stream;
    const std::int64_t n = bt.n_obs, k = bt.n_reg, nbat = bt.n_batch;
    OlsBatchResult r;
    r.beta.assign(static_cast<std::size_t>(k * nbat), 0.0);
    r.ssr.assign(static_cast<std::size_t>(nbat), 0.0);
    r.status.assign(static_cast<std::size_t>(nbat), 0);
    if (nbat == 0) return r;
    const std::size_t nx = static_cast<std::size_t>(bt.stride_x * (nbat - 1) + n * k);
    const std::size_t ny = static_cast<std::size_t>(bt.stride_y * (nbat - 1) + n);
    DeviceBuffer<double> d_X(nx, st), d_y(ny, st), d_b(static_cast<std::size_t>(k * nbat), st),
        d_ssr(static_cast<std::size_t>(nbat), st);
    DeviceBuffer<int> d_status(static_cast<std::size_t>(nbat), st);
    d_X.upload(bt.X, nx);
    d_y.upload(bt.y, ny);
    // the device's own time (events around the kernels, transfers excluded)
    const Events ev;
    PB_CUDA_CHECK(cudaEventRecord(ev.e[0], st));
    const std::string choice = ols_kernel_choice();
    const bool warp = choice != "gemm" && k >= 1 && k + 1 <= kOlsWarpMaxCols;
    bool done = false;  // the staged kernel declines items whose 4-item block exceeds its shared memory
    if (warp && choice == "staged")
      done = launch_ols_warp<kOlsWarpMaxCols>(static_cast<int>(k + 1), true, d_X.get(), d_y.get(), bt, d_b.get(),
                                              d_ssr.get(), d_status.get(), st);
    if (warp && !done)
      done = launch_ols_warp<kOlsWarpMaxCols>(static_cast<int>(k + 1), false, d_X.get(), d_y.get(), bt, d_b.get(),
                                              d_ssr.get(), d_status.get(), st);
    if (!done) {
      DeviceBuffer<double> d_A(static_cast<std::size_t>(k * k * nbat), st), d_E(static_cast<std::size_t>(n * nbat), st);
      const double one = 1.0, zero = 0.0, minus = -1.0;
      const int in = static_cast<int>(n), ik = static_cast<int>(k), ib = static_cast<int>(nbat);
      // A_b = X_b'X_b, b_b = X_b'y_b (strided-batched DGEMM)
      PB_CUBLAS_CHECK(cublasDgemmStridedBatched(ctx_.handle, CUBLAS_OP_T, CUBLAS_OP_N, ik, ik, in, &one, d_X.get(), in,
                                                bt.stride_x, d_X.get(), in, bt.stride_x, &zero, d_A.get(), ik, k * k, ib));
      PB_CUBLAS_CHECK(cublasDgemmStridedBatched(ctx_.handle, CUBLAS_OP_T, CUBLAS_OP_N, ik, 1, in, &one, d_X.get(), in,
                                                bt.stride_x, d_y.get(), in, bt.stride_y, &zero, d_b.get(), ik, k, ib));
      solve_kernel<<<blocks_for(static_cast<std::size_t>(nbat), 128), 128, 0, st>>>(ik, nbat, d_A.get(), d_b.get(),
                                                                                    bt.rel_tol, d_status.get());
      PB_CUDA_LAUNCH_CHECK();
      // E_b = y_b - X_b beta_b
      PB_CUDA_CHECK(cudaMemcpy2DAsync(d_E.get(), n * sizeof(double), d_y.get(), bt.stride_y * sizeof(double),
                                      n * sizeof(double), static_cast<std::size_t>(nbat), cudaMemcpyDeviceToDevice, st));
      PB_CUBLAS_CHECK(cublasDgemmStridedBatched(ctx_.handle, CUBLAS_OP_N, CUBLAS_OP_N, in, 1, ik, &minus, d_X.get(), in,
                                                bt.stride_x, d_b.get(), ik, k, &one, d_E.get(), in, n, ib));
      ssr_kernel<<<blocks_for(static_cast<std::size_t>(nbat) * 32, 256), 256, 0, st>>>(d_E.get(), n, nbat, d_ssr.get());
      PB_CUDA_LAUNCH_CHECK();
    }
    PB_CUDA_CHECK(cudaEventRecord(ev.e[1], st));
    d_b.download(r.beta.data(), r.beta.size());
    d_ssr.download(r.ssr.data(), r.ssr.size());
    d_status.download(r.status.data(), r.status.size());
    PB_CUDA_CHECK(cudaStreamSynchronize(st));
    float ms = 0;
    PB_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.e[0], ev.e[1]));
    r.device_s = 1e-3 * ms;
    return r;
  }

 private:
  Context ctx_;
};

}  // namespace

int usable_devices(std::string& why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err == cudaErrorInsufficientDriver) {
    int driver = 0;
    cudaDriverGetVersion(&driver);  // 0 when no driver is installed at all
    if (driver == 0) {
      why = "no NVIDIA driver is installed (no GPU on this machine)";
    } else {
      why = "the NVIDIA driver is too old: it supports CUDA " + std::to_string(driver / 1000) + "." +
            std::to_string(driver % 1000 / 10) + ", this build needs " + std::to_string(CUDART_VERSION / 1000) +
            "." + std::to_string(CUDART_VERSION % 1000 / 10);
    }
    return 0;
  }
  if (err != cudaSuccess || n == 0) {
    why = std::string("no CUDA device is present (") + cudaGetErrorString(err) + ")";
    return 0;
  }
  return n;
}

void copy_message(const std::string& m, char* buf, int len) {
  if (len <= 0) return;
  const std::size_t n = std::min<std::size_t>(m.size(), static_cast<std::size_t>(len - 1));
  std::memcpy(buf, m.data(), n);
  buf[n] = 0;
}

}  // namespace panelboot::cuda

// The plugin's entry points (libpanelboot_cuda.so, loaded by host/src/backend/cuda_loader.cpp):
// C names, no exception crosses them.
extern "C" __attribute__((visibility("default"))) int pb_cuda_plugin_devices(char* why, int len) {
  try {
    std::string w;
    const int n = panelboot::cuda::usable_devices(w);
    panelboot::cuda::copy_message(w, why, len);
    return n;
  } catch (const std::exception& e) {
    panelboot::cuda::copy_message(e.what(), why, len);
    return 0;
  }
}

extern "C" __attribute__((visibility("default"))) panelboot::Backend* pb_cuda_plugin_make(char* err, int len) {
  try {
    return new panelboot::cuda::CudaBackend();
  } catch (const std::exception& e) {
    panelboot::cuda::copy_message(e.what(), err, len);
    return nullptr;
  }
}
