// Batched OLS on the GPU (host/src/backend/cpu/batched_ols.cpp is its twin): one warp per item
// for k + 1 <= 12 columns (the Gram on the FP64 tensor cores and the solve spread over the lanes,
// the item staged into shared memory or read directly; or the sums in each lane's registers, the
// item staged, read directly, or pipelined through two shared buffers per persistent warp),
// strided-batched DGEMM plus one Cholesky per thread beyond;
// PANELBOOT_OLS_KERNEL=mma|mma-direct|staged|direct|pipelined|gemm picks one.
#include <cuda_pipeline.h>

#include <cstdint>
#include <cstdlib>
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

// The warp's sum of M per-lane values acc[0..M) by halves (a reduce-scatter): at each of the five
// steps a lane keeps one half of its values, sends the other to its partner (lane ^ Off) and adds
// what the partner sent, so the values held halve with each step: ceil(M/2) + ceil(M/4) + ...
// shuffles (67 for the 66 entries of k = 10) instead of 5 M for a sum of each value into lane 0.
// Afterwards acc[e] on lane L holds the warp's total of entry scatter_entry(L, e, M).
template <int M, int Off>
__device__ __forceinline__ void reduce_scatter(double* acc, int lane) {
  constexpr int H = (M + 1) / 2;
  const bool upper = (lane & Off) != 0;
#pragma unroll
  for (int e = 0; e < H; ++e) {
    const double lo = acc[e], hi = e + H < M ? acc[e + H] : 0.0;
    acc[e] = (upper ? hi : lo) + __shfl_xor_sync(0xffffffffu, upper ? lo : hi, Off);
  }
  if constexpr (Off > 1) reduce_scatter<H, Off / 2>(acc, lane);
}

// Values each lane holds after reduce_scatter of m values.
__host__ __device__ constexpr int scattered_count(int m) {
  for (int off = 16; off >= 1; off /= 2) m = (m + 1) / 2;
  return m;
}

// The entry whose total lane `lane` holds in slot e after reduce_scatter of m values, or -1 where
// the slot holds padding.
__host__ __device__ constexpr int scatter_entry(int lane, int e, int m) {
  int count[5] = {}, half[5] = {};
  for (int s = 0; s < 5; ++s) {
    count[s] = m;
    half[s] = (m + 1) / 2;
    m = half[s];
  }
  int pos = e;
  for (int s = 4; s >= 0; --s) {  // back from the last step: an upper lane kept the upper half
    if (lane & (16 >> s)) pos += half[s];
    if (pos >= count[s]) return -1;
  }
  return pos;
}
static_assert(scatter_entry(0, 0, 66) == 0 && scatter_entry(31, 2, 66) == -1 &&
              scattered_count(66) == 3);

// The warp's totals of acc[0..M), every lane receiving all of them in tot (one shuffle each).
template <int M>
__device__ __forceinline__ void warp_totals(double* acc, int lane, double* tot) {
  constexpr int S = scattered_count(M);
  reduce_scatter<M, 16>(acc, lane);
#pragma unroll
  for (int src = 0; src < 32; ++src)
#pragma unroll
    for (int e = 0; e < S; ++e) {
      const int entry = scatter_entry(src, e, M);  // the same on every lane: no divergence
      if (entry >= 0) tot[entry] = __shfl_sync(0xffffffffu, acc[e], src);
    }
}

// The item's last steps, every lane holding the solution b and the solve's status st: a second
// pass over the rows sums the squared residuals; beta, the SSR (NaN unless solved) and the status
// are stored.
template <int K>
__device__ __forceinline__ void store_item(const double* xs, const double* ys, std::int64_t n,
                                           const double* b, int st, int lane, std::int64_t item,
                                           double* beta, double* ssr, int* status) {
  double s = 0;
  if (st == 0) {
#pragma unroll 2
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

// One warp solves item `item` of the batch, reading its columns xs (n x K, column-major) and
// ys: lane l takes rows l, l + 32, ..., accumulates the packed upper triangle of [X y]'[X y] in
// registers, the warp sums it (warp_totals), lane 0 solves (the shared Cholesky, unrolled for
// this k, in registers); a second pass over the rows sums the squared residuals.
template <int K1>
__device__ __forceinline__ void ols_item(const double* xs, const double* ys, std::int64_t n,
                                         double rel_tol, int lane, std::int64_t item, double* beta,
                                         double* ssr, int* status) {
  constexpr int K = K1 - 1, NE = K1 * (K1 + 1) / 2;
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
  double tot[NE];
  warp_totals<NE>(acc, lane, tot);
  double b[K > 0 ? K : 1] = {};
  int st = 0;
  if (lane == 0) {
    double A[K * K > 0 ? K * K : 1];
#pragma unroll
    for (int l = 0; l < K; ++l) {
#pragma unroll
      for (int j = 0; j <= l; ++j) A[l + j * K] = tot[l * (l + 1) / 2 + j];
      b[l] = tot[K * (K + 1) / 2 + l];
    }
    st = static_cast<int>(kernels::cholesky_solve<K>(K, A, b, rel_tol));
  }
  st = __shfl_sync(0xffffffffu, st, 0);
#pragma unroll
  for (int j = 0; j < K; ++j) b[j] = __shfl_sync(0xffffffffu, b[j], 0);
  store_item<K>(xs, ys, n, b, st, lane, item, beta, ssr, status);
}

// The warp's asynchronous copies of len values from src to dst in shared memory: 16 bytes a copy
// where both are 16-byte aligned, else 8.
__device__ __forceinline__ void fetch_values(const double* src, std::int64_t len, int lane,
                                             double* dst) {
  if (((reinterpret_cast<std::uintptr_t>(src) | reinterpret_cast<std::uintptr_t>(dst)) & 15) == 0) {
    for (std::int64_t i = 2 * lane; i + 1 < len; i += 64)
      __pipeline_memcpy_async(dst + i, src + i, 2 * sizeof(double));
    if (len % 2 == 1 && lane == 0)
      __pipeline_memcpy_async(dst + len - 1, src + len - 1, sizeof(double));
  } else {
    for (std::int64_t i = lane; i < len; i += 32)
      __pipeline_memcpy_async(dst + i, src + i, sizeof(double));
  }
}

// The warp's asynchronous copies of one item's X and y into shared memory w (n K values, then
// n), committed as one batch.
__device__ __forceinline__ void fetch_item(const double* xs, const double* ys, std::int64_t nk,
                                           std::int64_t n, int lane, double* w) {
  fetch_values(xs, nk, lane, w);
  fetch_values(ys, n, lane, w + nk);
  __pipeline_commit();
}

// ---- The tensor-core form ("mma"): the Gram by FP64 matrix multiply-accumulate, the solve
// spread over the lanes. An item's [X y] (k + 1 <= 12 columns, padded to 16) is split into the
// column blocks P = 0..7 and Q = 8..15; per 4 rows lane l (groupID g = l / 4, t = l % 4) loads
// row t's entries of columns g and 8 + g, which are both its A (X' rows) and its B (X columns)
// fragment, and three 8 x 8 x 4 products add X_P'X_P, X_P'X_Q and X_Q'X_Q. The 66 sums of k = 10
// thus take 6 registers a lane instead of 66, and no warp reduction.

// C (8 x 8; row g, columns 2t and 2t + 1 on lane (g, t)) += A B for A (8 x 4; A[g][t] on lane
// (g, t)) and B (4 x 8; B[t][g] on lane (g, t)).
// FP64 tensor cores exist from compute capability 8.0 on; ols_kernel_choice never picks this form
// below it.
__device__ __forceinline__ void mma_8x8x4(double a, double b, double& c0, double& c1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0,%1}, {%2}, {%3}, {%0,%1};\n"
               : "+d"(c0), "+d"(c1)
               : "d"(a), "d"(b));
#else
  __trap();
#endif
}

// Column c of the item's [X y], or null for a padding column (c >= k + 1).
template <int K1>
__device__ __forceinline__ const double* item_column(const double* xs, const double* ys,
                                                     std::int64_t n, int c) {
  return c < K1 - 1 ? xs + c * n : c == K1 - 1 ? ys : nullptr;
}

// The Gram matrix G = [X y]'[X y] of one item into the warp's shared tile S (16 x 16, row-major):
// S[r][c] for r <= c holds G's entry (both triangles of the P and Q diagonal blocks, the P x Q
// block above them; the Q x P block is left unwritten).
template <int K1>
__device__ __forceinline__ void gram_by_mma(const double* xs, const double* ys, std::int64_t n,
                                            int lane, double* S) {
  constexpr bool kQ = K1 > 8;  // a second column block
  constexpr int U = 8;         // 4-row steps whose loads go out together
  const int g = lane >> 2, t = lane & 3;
  const double* cp = item_column<K1>(xs, ys, n, g);
  const double* cq = kQ ? item_column<K1>(xs, ys, n, 8 + g) : nullptr;
  double pp0 = 0, pp1 = 0, pq0 = 0, pq1 = 0, qq0 = 0, qq1 = 0;
  std::int64_t r0 = 0;
  for (; r0 + 4 * U <= n; r0 += 4 * U) {  // whole blocks of 4 U rows: no row checks
    double p[U], q[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      p[u] = cp ? cp[r0 + 4 * u + t] : 0.0;
      q[u] = cq ? cq[r0 + 4 * u + t] : 0.0;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      mma_8x8x4(p[u], p[u], pp0, pp1);
      if constexpr (kQ) {
        mma_8x8x4(p[u], q[u], pq0, pq1);
        mma_8x8x4(q[u], q[u], qq0, qq1);
      }
    }
  }
  for (; r0 < n; r0 += 4) {  // the last rows, zero beyond n
    const std::int64_t r = r0 + t;
    const double p = cp && r < n ? cp[r] : 0.0, q = cq && r < n ? cq[r] : 0.0;
    mma_8x8x4(p, p, pp0, pp1);
    if constexpr (kQ) {
      mma_8x8x4(p, q, pq0, pq1);
      mma_8x8x4(q, q, qq0, qq1);
    }
  }
  S[g * 16 + 2 * t] = pp0;
  S[g * 16 + 2 * t + 1] = pp1;
  if constexpr (kQ) {
    S[g * 16 + 8 + 2 * t] = pq0;
    S[g * 16 + 8 + 2 * t + 1] = pq1;
    S[(8 + g) * 16 + 8 + 2 * t] = qq0;
    S[(8 + g) * 16 + 8 + 2 * t + 1] = qq1;
  }
  __syncwarp();
}

// Solves the normal equations in S (X'X in its first K rows and columns, X'y in column K) by
// Cholesky, spread over the lanes so that each step's dependent chain is a shuffle and a few
// multiply-adds: lane i holds row i of the matrix, then of the factor L, computed one column a
// step (the pivot's reciprocal square root, the column scaled by it, the trailing update, each
// lane its own row); the forward solve a column a step; L moved to columns through S (lane i then
// holding column i) for the back solve, again a column a step. Multiplying by the pivots'
// reciprocals instead of dividing (the shared Cholesky's CPU form divides) costs an ulp or so and
// takes the divisions out of the chains. The pivot test has the shared Cholesky's form: NaN or
// infinite diagonal entries are kNotFinite, a pivot not above rel_tol times the largest diagonal
// entry kSingular; but the pivots come from sums in another order and updates in another
// sequence, so an item whose smallest pivot is within rounding of that floor can get another
// status than on the CPU. Every lane ends with the solution in x (NaN unless solved); returns
// the status.
template <int K>
__device__ __forceinline__ int solve_by_lanes(double* S, int lane, double rel_tol, double* x) {
  constexpr unsigned kAll = 0xffffffffu;
  const int i = lane < K ? lane : K - 1;  // lanes beyond K shadow row K - 1 (results unused)
  double a[K], rinv[K];
#pragma unroll
  for (int c = 0; c < K; ++c) a[c] = S[min(i, c) * 16 + max(i, c)];
  double bi = S[i * 16 + K];
  const double d = S[i * 16 + i];
  const bool finite = d == d && d <= 1.7976931348623157e308 && d >= -1.7976931348623157e308;
  int st = 0;
  if (!__all_sync(kAll, finite)) {
    st = static_cast<int>(kernels::SolveStatus::kNotFinite);
  } else {
    double dmax = d > 0 ? d : 0;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) dmax = fmax(dmax, __shfl_xor_sync(kAll, dmax, off));
    const double pivot_floor = rel_tol * dmax;
    if (!(dmax > 0)) st = static_cast<int>(kernels::SolveStatus::kSingular);
#pragma unroll
    for (int p = 0; p < K; ++p) {  // column p of the factor
      if (st != 0) break;
      const double dp = __shfl_sync(kAll, a[p], p);
      if (!(dp > pivot_floor)) {
        st = static_cast<int>(kernels::SolveStatus::kSingular);
        break;
      }
      rinv[p] = rsqrt(dp);  // 1 / L[p][p]
      a[p] = lane == p ? dp * rinv[p] : a[p] * rinv[p];
#pragma unroll
      for (int c = p + 1; c < K; ++c) {
        const double lc = __shfl_sync(kAll, a[p], c);
        if (lane >= c) a[c] -= a[p] * lc;
      }
    }
  }
  if (st != 0) {
#pragma unroll
    for (int c = 0; c < K; ++c) x[c] = ::nan("");
    return st;
  }
#pragma unroll
  for (int p = 0; p < K; ++p) {  // z = L^-1 b, lane i holding z_i
    const double zp = __shfl_sync(kAll, bi * rinv[p], p);
    if (lane == p) bi = zp;
    if (lane > p) bi -= a[p] * zp;
  }
  __syncwarp();  // every lane has read S
#pragma unroll
  for (int c = 0; c < K; ++c)
    if (lane < K) S[i * 16 + c] = a[c];  // row i of L
  __syncwarp();
#pragma unroll
  for (int c = 0; c < K; ++c) a[c] = S[c * 16 + i];  // column i of L: a[c] = L[c][i]
#pragma unroll
  for (int c = K - 1; c >= 0; --c) {  // L' x = z, lane i holding what is left of z_i
    x[c] = __shfl_sync(kAll, bi * rinv[c], c);
    if (lane < c) bi -= a[c] * x[c];
  }
  return 0;
}

constexpr int kOlsMmaWarps = 4;  // warps per block of the tensor-core form read directly

// One warp per item for k + 1 <= 12 columns of [X y]. Staged: the warp first copies its item
// into shared memory with asynchronous copies (every load in flight at once, one wait), then
// solves it from there; direct: it reads device memory as it goes. Mma: the Gram on the tensor
// cores, the solve spread over the lanes (gram_by_mma, solve_by_lanes; a block of one warp when
// staged, 16 x 16 doubles of shared memory a warp for the Gram); else the sums in each lane's
// registers, solved by lane 0 (ols_item; 4 warps a block). The staged forms read X and y once
// from device memory, the kernel's floor; the direct ones read them again for the residuals, in
// part from DRAM (Nsight Compute, 20000 items of 200 x 10: the direct mma form 542-550 MB against
// 352 MB staged). Staged mma blocks hold one item: the 12 blocks of the bounds fit an SM's shared
// memory only while an item is under about 17 KB.
template <int K1, bool Staged, bool Mma>
__global__ void __launch_bounds__(Mma&& Staged ? 32 : 128, Mma ? (Staged ? 12 : 5) : 3)
    ols_warp_kernel(const double* __restrict__ X, const double* __restrict__ y, std::int64_t n,
                    std::int64_t sx, std::int64_t sy, std::int64_t n_batch, double rel_tol,
                    double* beta, double* ssr, int* status) {
  constexpr int K = K1 - 1;
  __shared__ double gram[Mma ? (Staged ? 1 : kOlsMmaWarps) : 1][Mma ? 256 : 2];
  extern __shared__ __align__(16) double ols_smem[];  // 16-byte copies need 16-byte alignment
  const std::int64_t item = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (item >= n_batch) return;  // whole warps leave together
  const double* xs = X + item * sx;
  const double* ys = y + item * sy;
  if constexpr (Staged) {
    double* w = ols_smem + static_cast<std::int64_t>(threadIdx.x / 32) * n * K1;
    fetch_item(xs, ys, n * K, n, lane, w);
    __pipeline_wait_prior(0);
    __syncwarp();
    xs = w;
    ys = w + n * K;
  }
  if constexpr (Mma) {
    double* S = gram[threadIdx.x / 32];
    gram_by_mma<K1>(xs, ys, n, lane, S);
    double b[K];
    const int st = solve_by_lanes<K>(S, lane, rel_tol, b);
    store_item<K>(xs, ys, n, b, st, lane, item, beta, ssr, status);
  } else {
    ols_item<K1>(xs, ys, n, rel_tol, lane, item, beta, ssr, status);
  }
}

constexpr int kOlsPipeWarps = 2;  // warps per block of the pipelined kernel

// Pipelined: persistent warps (as many as fit on the device), each with two item buffers in
// shared memory. While a warp solves one of its items from one buffer, its next item streams into
// the other, so every warp's loads overlap its own arithmetic (a staged warp waits for each of
// its loads, a direct one for each row's).
template <int K1>
__global__ void __launch_bounds__(32 * kOlsPipeWarps)
    ols_pipelined_kernel(const double* __restrict__ X, const double* __restrict__ y, std::int64_t n,
                         std::int64_t sx, std::int64_t sy, std::int64_t n_batch, double rel_tol,
                         double* beta, double* ssr, int* status) {
  constexpr int K = K1 - 1;
  extern __shared__ __align__(16) double ols_smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
  const std::int64_t len = n * K1, n_warps = static_cast<std::int64_t>(gridDim.x) * kOlsPipeWarps;
  double* buf[2] = {ols_smem + (2 * warp) * len, ols_smem + (2 * warp + 1) * len};
  std::int64_t item = static_cast<std::int64_t>(blockIdx.x) * kOlsPipeWarps + warp;
  if (item < n_batch) fetch_item(X + item * sx, y + item * sy, n * K, n, lane, buf[0]);
  for (int cur = 0; item < n_batch; item += n_warps, cur ^= 1) {
    const std::int64_t next = item + n_warps;
    if (next < n_batch)
      fetch_item(X + next * sx, y + next * sy, n * K, n, lane, buf[cur ^ 1]);
    else
      __pipeline_commit();     // an empty batch: the wait below counts the same either way
    __pipeline_wait_prior(1);  // every batch but the newest: this item's copies have landed
    __syncwarp();
    ols_item<K1>(buf[cur], buf[cur] + n * K, n, rel_tol, lane, item, beta, ssr, status);
    __syncwarp();  // every lane is done with buf[cur] before the next fetch refills it
  }
}

constexpr int kOlsWarpMaxCols = 12;  // k + 1 up to this: ols_warp_kernel; beyond, DGEMM + solve_kernel
constexpr std::size_t kOlsStagedMaxBytes = 96 * 1024;  // a block's 4 staged items, at most

// The batched OLS kernel in use: "mma" (the default; the tensor-core form, staged where the item
// fits), "mma-direct", "staged", "direct", "pipelined", or "gemm" (the DGEMM path for every k),
// from PANELBOOT_OLS_KERNEL. Below compute capability 8.0 (no FP64 tensor cores) the default is
// "staged" and the mma forms are an error.
std::string ols_kernel_choice(const Context& ctx) {
  if (ctx.cc_major >= 8)
    return kernel_choice("PANELBOOT_OLS_KERNEL",
                         {"mma", "mma-direct", "staged", "direct", "pipelined", "gemm"});
  return kernel_choice("PANELBOOT_OLS_KERNEL", {"staged", "direct", "pipelined", "gemm"});
}

constexpr std::size_t kOlsMmaStagedMaxBytes = 48 * 1024;  // an item staged by the mma form, at most

// Launches the mma form of ols_warp_kernel<k1> (2 <= k1 <= K1), staged when asked and the item fits
// kOlsMmaStagedMaxBytes, else direct.
template <int K1>
void launch_ols_mma(int k1, bool staged, const double* X, const double* y, const OlsBatch& bt,
                    double* beta, double* ssr, int* status, cudaStream_t st) {
  if constexpr (K1 > 1) {
    if (k1 != K1) return launch_ols_mma<K1 - 1>(k1, staged, X, y, bt, beta, ssr, status, st);
    const std::size_t smem = static_cast<std::size_t>(bt.n_obs) * K1 * sizeof(double);
    if (staged && smem <= kOlsMmaStagedMaxBytes && bt.n_batch <= 0x7fffffff) {  // a block an item
      PB_CUDA_CHECK(cudaFuncSetAttribute(ols_warp_kernel<K1, true, true>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem)));
      ols_warp_kernel<K1, true, true><<<static_cast<unsigned>(bt.n_batch), 32, smem, st>>>(
          X, y, bt.n_obs, bt.stride_x, bt.stride_y, bt.n_batch, bt.rel_tol, beta, ssr, status);
    } else {
      ols_warp_kernel<K1, false, true>
          <<<blocks_for(static_cast<std::size_t>(bt.n_batch) * 32, 32 * kOlsMmaWarps),
             32 * kOlsMmaWarps, 0, st>>>(X, y, bt.n_obs, bt.stride_x, bt.stride_y, bt.n_batch,
                                         bt.rel_tol, beta, ssr, status);
    }
    PB_CUDA_LAUNCH_CHECK();
  }
}

// Launches the register-sums form of ols_warp_kernel<k1>; false when the item does not fit the
// staged form's shared memory.
template <int K1>
bool launch_ols_warp(int k1, bool staged, const double* X, const double* y, const OlsBatch& bt, double* beta,
                     double* ssr, int* status, cudaStream_t st) {
  if constexpr (K1 > 1) {
    if (k1 != K1) return launch_ols_warp<K1 - 1>(k1, staged, X, y, bt, beta, ssr, status, st);
    const unsigned blocks = blocks_for(static_cast<std::size_t>(bt.n_batch) * 32, 128);
    if (staged) {
      const std::size_t smem = 4 * static_cast<std::size_t>(bt.n_obs) * K1 * sizeof(double);
      if (smem > kOlsStagedMaxBytes) return false;
      PB_CUDA_CHECK(cudaFuncSetAttribute(ols_warp_kernel<K1, true, false>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem)));
      ols_warp_kernel<K1, true, false><<<blocks, 128, smem, st>>>(
          X, y, bt.n_obs, bt.stride_x, bt.stride_y, bt.n_batch, bt.rel_tol, beta, ssr, status);
    } else {
      ols_warp_kernel<K1, false, false><<<blocks, 128, 0, st>>>(
          X, y, bt.n_obs, bt.stride_x, bt.stride_y, bt.n_batch, bt.rel_tol, beta, ssr, status);
    }
    PB_CUDA_LAUNCH_CHECK();
    return true;
  }
  return false;
}

// Launches ols_pipelined_kernel<k1> with as many blocks as stay resident on the device (at most
// one warp per item); false when two items per warp do not fit a block's shared memory.
template <int K1>
bool launch_ols_pipelined(const Context& ctx, int k1, const double* X, const double* y,
                          const OlsBatch& bt, double* beta, double* ssr, int* status,
                          cudaStream_t st) {
  if constexpr (K1 > 1) {
    if (k1 != K1) return launch_ols_pipelined<K1 - 1>(ctx, k1, X, y, bt, beta, ssr, status, st);
    const std::size_t smem =
        2 * kOlsPipeWarps * static_cast<std::size_t>(bt.n_obs) * K1 * sizeof(double);
    if (smem > ctx.max_block_shared) return false;
    PB_CUDA_CHECK(cudaFuncSetAttribute(ols_pipelined_kernel<K1>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
    int per_sm = 0;
    PB_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, ols_pipelined_kernel<K1>,
                                                                32 * kOlsPipeWarps, smem));
    const std::int64_t needed = (bt.n_batch + kOlsPipeWarps - 1) / kOlsPipeWarps;
    const unsigned blocks = static_cast<unsigned>(std::max<std::int64_t>(
        1, std::min<std::int64_t>(needed, std::int64_t{per_sm} * ctx.sm_count)));
    ols_pipelined_kernel<K1><<<blocks, 32 * kOlsPipeWarps, smem, st>>>(
        X, y, bt.n_obs, bt.stride_x, bt.stride_y, bt.n_batch, bt.rel_tol, beta, ssr, status);
    PB_CUDA_LAUNCH_CHECK();
    return true;
  }
  return false;
}

// The DGEMM path over the whole batch: A_b = X_b'X_b and X_b'y_b by strided-batched DGEMM, one
// Cholesky per thread, then the residuals by DGEMM and their squares summed by a warp per item.
void ols_by_gemm(const Context& ctx, const OlsBatch& bt, const double* X, const double* y,
                 double* beta, double* ssr, int* status) {
  cudaStream_t st = ctx.stream;
  const std::int64_t n = bt.n_obs, k = bt.n_reg, nbat = bt.n_batch;
  const Blas& blas = ctx.blas();
  DeviceBuffer<double> d_A(static_cast<std::size_t>(k * k * nbat), st),
      d_E(static_cast<std::size_t>(n * nbat), st);
  const double one = 1.0, zero = 0.0, minus = -1.0;
  const int in = static_cast<int>(n), ik = static_cast<int>(k), ib = static_cast<int>(nbat);
  PB_CUBLAS_CHECK(blas.dgemm_strided_batched(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, ik, ik, in,
                                             &one, X, in, bt.stride_x, X, in, bt.stride_x, &zero,
                                             d_A.get(), ik, k * k, ib));
  PB_CUBLAS_CHECK(blas.dgemm_strided_batched(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, ik, 1, in, &one,
                                             X, in, bt.stride_x, y, in, bt.stride_y, &zero, beta,
                                             ik, k, ib));
  solve_kernel<<<blocks_for(static_cast<std::size_t>(nbat), 128), 128, 0, st>>>(
      ik, nbat, d_A.get(), beta, bt.rel_tol, status);
  PB_CUDA_LAUNCH_CHECK();
  // E_b = y_b - X_b beta_b
  PB_CUDA_CHECK(cudaMemcpy2DAsync(d_E.get(), n * sizeof(double), y, bt.stride_y * sizeof(double),
                                  n * sizeof(double), static_cast<std::size_t>(nbat),
                                  cudaMemcpyDeviceToDevice, st));
  PB_CUBLAS_CHECK(blas.dgemm_strided_batched(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, in, 1, ik,
                                             &minus, X, in, bt.stride_x, beta, ik, k, &one,
                                             d_E.get(), in, n, ib));
  ssr_kernel<<<blocks_for(static_cast<std::size_t>(nbat) * 32, 256), 256, 0, st>>>(d_E.get(), n,
                                                                                   nbat, ssr);
  PB_CUDA_LAUNCH_CHECK();
}

// The one-warp-per-item kernel for items [b0, b1) (the pointers: the whole batch's, on the
// device); false when the choice or k leaves it to the DGEMM path.
bool ols_by_warps(const Context& ctx, const std::string& choice, const OlsBatch& bt,
                  std::int64_t b0, std::int64_t b1, const double* X, const double* y, double* beta,
                  double* ssr, int* status, cudaStream_t st) {
  const std::int64_t k = bt.n_reg;
  if (choice == "gemm" || k < 1 || k + 1 > kOlsWarpMaxCols) return false;
  OlsBatch part = bt;
  part.n_batch = b1 - b0;
  const int k1 = static_cast<int>(k + 1);
  X += b0 * bt.stride_x;
  y += b0 * bt.stride_y;
  beta += b0 * k;
  ssr += b0;
  status += b0;
  if (choice == "mma" || choice == "mma-direct") {
    launch_ols_mma<kOlsWarpMaxCols>(k1, choice == "mma", X, y, part, beta, ssr, status, st);
    return true;
  }
  // the staged and pipelined kernels decline items too large for their shared memory
  return (choice == "staged" &&
          launch_ols_warp<kOlsWarpMaxCols>(k1, true, X, y, part, beta, ssr, status, st)) ||
         (choice == "pipelined" &&
          launch_ols_pipelined<kOlsWarpMaxCols>(ctx, k1, X, y, part, beta, ssr, status, st)) ||
         launch_ols_warp<kOlsWarpMaxCols>(k1, false, X, y, part, beta, ssr, status, st);
}

// The values a strided array's items [b0, b1) span, each item `len` values long.
std::size_t span_of(std::int64_t b0, std::int64_t b1, std::int64_t stride, std::int64_t len) {
  return b1 > b0 ? static_cast<std::size_t>(stride * (b1 - 1 - b0) + len) : 0;
}

// The chunks a pinned batch goes up in (the copy of one overlapping the kernel of the one before):
// PANELBOOT_OLS_CHUNKS, 1 to 64, default 2. The kernels are ~50x shorter than the copies, so more
// chunks hide little more, while each launch pays its own ramp and tail (on the H200, 20000 items
// of 200 x 10: the kernels 135 us in 1 chunk, 161 in 2, 202 in 4, 260 in 8; the whole call
// 1.13-1.17x the copy alone in each).
std::int64_t ols_copy_chunks() {
  const char* e = std::getenv("PANELBOOT_OLS_CHUNKS");
  if (!e || !*e) return 2;
  char* end = nullptr;
  const long v = std::strtol(e, &end, 10);
  if (*end != '\0' || v < 1 || v > 64)
    throw InvalidInput(
        std::string("PANELBOOT_OLS_CHUNKS must be a whole number from 1 to 64, not '") + e + "'");
  return v;
}

}  // namespace

// From pinned host memory (Backend::host_array) with the warp kernels, the batch goes up in
// ols_copy_chunks() chunks on the copy stream while the kernel stream solves the chunks already
// there: the call then takes about the copy's time. From pageable memory (a copy through the
// driver's staging buffers, which cannot overlap) and on the DGEMM path it goes up whole first.
OlsBatchResult batched_ols(const Context& ctx, const OlsBatch& bt) {
  cudaStream_t st = ctx.stream;
  const std::int64_t n = bt.n_obs, k = bt.n_reg, nbat = bt.n_batch;
  OlsBatchResult r;
  r.beta.assign(static_cast<std::size_t>(k * nbat), 0.0);
  r.ssr.assign(static_cast<std::size_t>(nbat), 0.0);
  r.status.assign(static_cast<std::size_t>(nbat), 0);
  if (nbat == 0) return r;
  const std::string choice = ols_kernel_choice(ctx);
  const std::int64_t copy_chunks = ols_copy_chunks();  // read, and checked, on every path
  const bool warps = choice != "gemm" && k >= 1 && k + 1 <= kOlsWarpMaxCols;
  if (warps && nbat > (std::int64_t{1} << 32))  // the warp kernels' grid: 2^30 blocks of 4 items
    throw InvalidInput(
        "--backend cuda: batched OLS of more than 2^32 regressions at once is not "
        "supported on the GPU; split the batch or use --backend cpu");
  const std::size_t nx = span_of(0, nbat, bt.stride_x, n * k),
                    ny = span_of(0, nbat, bt.stride_y, n);
  DeviceBuffer<double> d_X(nx, st), d_y(ny, st), d_b(static_cast<std::size_t>(k * nbat), st),
      d_ssr(static_cast<std::size_t>(nbat), st);
  DeviceBuffer<int> d_status(static_cast<std::size_t>(nbat), st);
  SpanTimer kernels(st);  // the device's own time: the kernels, copies excluded
  EventList order;
  if (warps && is_pinned(bt.X) && is_pinned(bt.y)) {
    order_after(ctx.copy_stream, st, order);  // the buffers were allocated on st
    const std::int64_t chunks = std::min(nbat, copy_chunks);
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t b0 = nbat * c / chunks, b1 = nbat * (c + 1) / chunks;
      const std::size_t x0 = static_cast<std::size_t>(b0 * bt.stride_x),
                        y0 = static_cast<std::size_t>(b0 * bt.stride_y);
      PB_CUDA_CHECK(cudaMemcpyAsync(d_X.get() + x0, bt.X + x0,
                                    span_of(b0, b1, bt.stride_x, n * k) * sizeof(double),
                                    cudaMemcpyHostToDevice, ctx.copy_stream));
      PB_CUDA_CHECK(cudaMemcpyAsync(d_y.get() + y0, bt.y + y0,
                                    span_of(b0, b1, bt.stride_y, n) * sizeof(double),
                                    cudaMemcpyHostToDevice, ctx.copy_stream));
      order_after(st, ctx.copy_stream, order);
      kernels.begin();
      ols_by_warps(ctx, choice, bt, b0, b1, d_X.get(), d_y.get(), d_b.get(), d_ssr.get(),
                   d_status.get(), st);
      kernels.end();
    }
  } else {
    d_X.upload(bt.X, nx);
    d_y.upload(bt.y, ny);
    kernels.begin();
    if (!ols_by_warps(ctx, choice, bt, 0, nbat, d_X.get(), d_y.get(), d_b.get(), d_ssr.get(),
                      d_status.get(), st))
      ols_by_gemm(ctx, bt, d_X.get(), d_y.get(), d_b.get(), d_ssr.get(), d_status.get());
    kernels.end();
  }
  d_b.download(r.beta.data(), r.beta.size());
  d_ssr.download(r.ssr.data(), r.ssr.size());
  d_status.download(r.status.data(), r.status.size());
  PB_CUDA_CHECK(cudaStreamSynchronize(st));
  r.device_s = kernels.seconds();
  return r;
}

}  // namespace panelboot::cuda
