// power's regressions over one fixed design on the GPU (host/src/backend/cpu/power_batch.cpp is its
// twin): one thread per error column, running the shared kernel's loops (kernels/power_batch.hpp,
// fixed_design_columns) in the same order, so that with the multiply-adds left unfused (nvcc
// --fmad=false, the host built with -ffp-contract=off) every number equals the CPU's bit for bit,
// and the rejections that follow do too. Reads of E and writes of U run across the threads of a
// warp (row-major n x nb), so they coalesce; X, A and the codes are read alike by every thread.
#include <cstdint>
#include <vector>

#include "cuda.cuh"
#include "panelboot/kernels/power_batch.hpp"

namespace panelboot::cuda {
namespace {

struct DeviceDesign {
  std::int64_t n = 0, k = 0, nb = 0;
  int target = 0, n_terms = 0;
  const double* X = nullptr;           // n x k column-major
  const double* A = nullptr;           // k x k column-major
  const double* xa = nullptr;          // n
  const std::int32_t* codes = nullptr; // n_terms x n: each term's cluster of each observation
  const std::int64_t* level_off = nullptr;  // n_terms + 1: where each term's clusters start
  const double* weight = nullptr;      // n_terms
};

struct DeviceScratch {
  double* xte = nullptr;    // k x nb
  double* dv = nullptr;     // k x nb
  double* score = nullptr;  // (sum of the terms' levels) x nb
};

__global__ void fixed_design_kernel(DeviceDesign d, const double* __restrict__ E, double* __restrict__ U, DeviceScratch s,
                                    double* __restrict__ d_target, double* __restrict__ variance) {
  const std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (b >= d.nb) return;
  const std::int64_t n = d.n, k = d.k, nb = d.nb;
  for (std::int64_t kk = 0; kk < k; ++kk) {  // X~'e
    double acc = 0.0;
    for (std::int64_t i = 0; i < n; ++i) acc += d.X[kk * n + i] * E[i * nb + b];
    s.xte[kk * nb + b] = acc;
  }
  for (std::int64_t j = 0; j < k; ++j) {  // d = A X~'e
    double acc = 0.0;
    for (std::int64_t kk = 0; kk < k; ++kk) acc += d.A[kk * k + j] * s.xte[kk * nb + b];
    s.dv[j * nb + b] = acc;
  }
  for (std::int64_t i = 0; i < n; ++i) {  // u = e - X~ d
    double u = E[i * nb + b];
    for (std::int64_t kk = 0; kk < k; ++kk) u -= d.X[kk * n + i] * s.dv[kk * nb + b];
    U[i * nb + b] = u;
  }
  d_target[b] = s.dv[static_cast<std::int64_t>(d.target) * nb + b];
  double v = 0.0;
  for (int t = 0; t < d.n_terms; ++t) {  // the target's cluster scores, squared
    const std::int64_t off = d.level_off[t], C = d.level_off[t + 1] - off;
    double* sc = s.score + off * nb + b;
    for (std::int64_t c = 0; c < C; ++c) sc[c * nb] = 0.0;
    const std::int32_t* code = d.codes + static_cast<std::int64_t>(t) * n;
    for (std::int64_t i = 0; i < n; ++i) sc[static_cast<std::int64_t>(code[i]) * nb] += d.xa[i] * U[i * nb + b];
    double ss = 0.0;
    for (std::int64_t c = 0; c < C; ++c) ss += sc[c * nb] * sc[c * nb];
    v += d.weight[t] * ss;
  }
  variance[b] = v;
}

}  // namespace

FixedDesignResult fixed_design_ols(const Context& ctx, const FixedDesign& fd, const FixedDesignBatch& bt) {
  FixedDesignResult out = kernels::fixed_design_result(fd, bt);
  if (bt.nb == 0 || fd.n == 0) return out;
  const cudaStream_t st = ctx.stream;
  const std::size_t n = static_cast<std::size_t>(fd.n), k = static_cast<std::size_t>(fd.k), nb = static_cast<std::size_t>(bt.nb);
  const std::size_t S = fd.term_code.size();
  std::vector<std::int32_t> codes(S * n);
  std::vector<std::int64_t> level_off(S + 1, 0);
  for (std::size_t t = 0; t < S; ++t) {
    std::copy(fd.term_code[t], fd.term_code[t] + n, codes.begin() + static_cast<std::ptrdiff_t>(t * n));
    level_off[t + 1] = level_off[t] + fd.term_levels[t];
  }
  DeviceBuffer<double> X(n * k, st), A(k * k, st), xa(n, st), E(n * nb, st), U(n * nb, st);
  X.upload(fd.X, n * k);
  A.upload(fd.A, k * k);
  xa.upload(fd.xa, n);
  E.upload(bt.E, n * nb);
  const DeviceBuffer<std::int32_t> d_codes = to_device(codes, st);
  const DeviceBuffer<std::int64_t> d_off = to_device(level_off, st);
  const DeviceBuffer<double> d_weight = to_device(fd.term_weight, st);
  DeviceBuffer<double> xte(k * nb, st), dv(k * nb, st), score(static_cast<std::size_t>(level_off[S]) * nb, st);
  DeviceBuffer<double> dt(nb, st), var(nb, st);
  DeviceDesign d;
  d.n = fd.n;
  d.k = fd.k;
  d.nb = bt.nb;
  d.target = fd.target;
  d.n_terms = static_cast<int>(S);
  d.X = X.get();
  d.A = A.get();
  d.xa = xa.get();
  d.codes = d_codes.get();
  d.level_off = d_off.get();
  d.weight = d_weight.get();
  DeviceScratch s{xte.get(), dv.get(), score.get()};
  constexpr unsigned kThreads = 128;
  fixed_design_kernel<<<blocks_for(nb, kThreads), kThreads, 0, st>>>(d, E.get(), U.get(), s, dt.get(), var.get());
  PB_CUDA_CHECK(cudaGetLastError());
  U.download(out.U.data(), n * nb);
  dt.download(out.d_target.data(), nb);
  var.download(out.variance.data(), nb);
  PB_CUDA_CHECK(cudaStreamSynchronize(st));
  return out;
}

}  // namespace panelboot::cuda
