// Batched OLS on the GPU (host/src/backend/cpu/batched_ols.cpp is its twin): one warp per item
// for k + 1 <= 12 columns (staged into shared memory or read directly), strided-batched DGEMM
// plus one Cholesky per thread beyond; PANELBOOT_OLS_KERNEL=staged|direct|gemm picks one.
#include <cuda_pipeline.h>

#include <string>

#include "cuda.cuh"

namespace panelboot::cuda {
namespace {

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

}  // namespace

OlsBatchResult batched_ols(const Context& ctx, const OlsBatch& bt) {
  cudaStream_t st = ctx.stream;
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
    PB_CUBLAS_CHECK(cublasDgemmStridedBatched(ctx.handle, CUBLAS_OP_T, CUBLAS_OP_N, ik, ik, in, &one, d_X.get(), in,
                                              bt.stride_x, d_X.get(), in, bt.stride_x, &zero, d_A.get(), ik, k * k, ib));
    PB_CUBLAS_CHECK(cublasDgemmStridedBatched(ctx.handle, CUBLAS_OP_T, CUBLAS_OP_N, ik, 1, in, &one, d_X.get(), in,
                                              bt.stride_x, d_y.get(), in, bt.stride_y, &zero, d_b.get(), ik, k, ib));
    solve_kernel<<<blocks_for(static_cast<std::size_t>(nbat), 128), 128, 0, st>>>(ik, nbat, d_A.get(), d_b.get(),
                                                                                  bt.rel_tol, d_status.get());
    PB_CUDA_LAUNCH_CHECK();
    // E_b = y_b - X_b beta_b
    PB_CUDA_CHECK(cudaMemcpy2DAsync(d_E.get(), n * sizeof(double), d_y.get(), bt.stride_y * sizeof(double),
                                    n * sizeof(double), static_cast<std::size_t>(nbat), cudaMemcpyDeviceToDevice, st));
    PB_CUBLAS_CHECK(cublasDgemmStridedBatched(ctx.handle, CUBLAS_OP_N, CUBLAS_OP_N, in, 1, ik, &minus, d_X.get(), in,
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

}  // namespace panelboot::cuda
