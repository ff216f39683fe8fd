// Exact enumeration on the GPU (host/src/backend/cpu/gray_walk.cpp is its twin): the shared
// Gray-code walk (kernels/gray_walk.hpp), one thread per contiguous range, summed by one Thrust
// transform-reduce; progress is reported once, at the end.
#include <thrust/execution_policy.h>

#include <string>

#include "cuda.cuh"
#include "thrust_algorithms.hpp"

namespace panelboot::cuda {

BootCounts gray_walk(const Context& ctx, const kernels::GrayProblem& p, ProgressSink* progress) {
  if (p.n_clu < 2 || p.n_clu > kernels::kMaxGrayClusters)
    throw InvalidInput("enumeration on the GPU needs 2 to " + std::to_string(kernels::kMaxGrayClusters) + " clusters");
  cudaStream_t st = ctx.stream;
  const std::size_t G = static_cast<std::size_t>(p.n_clu);
  DeviceBuffer<double> d_H(G * G, st), d_C(G, st);
  d_H.upload(p.H, G * G);
  d_C.upload(p.C, G);
  kernels::GrayRangeOp op;
  op.p = p;
  op.p.H = d_H.get();
  op.p.C = d_C.get();
  op.n_ranges = thrust_algorithms::gray_ranges(p, std::uint64_t{1} << 20);
  const BootCounts c = thrust_algorithms::gray_enumerate(thrust::cuda::par.on(st), op);
  PB_CUDA_CHECK(cudaStreamSynchronize(st));
  if (progress) progress->advance(kernels::gray_end(p) - p.lo);
  return c;
}

}  // namespace panelboot::cuda
