#pragma once
// Thrust algorithms over the PB_HD functors of kernels/: compiled by nvcc for the GPU
// (wild.cu and gray_walk.cu, policy thrust::cuda::par.on(stream)) and by g++ for the host with
// THRUST_DEVICE_SYSTEM=CPP (tests/thrust), so CI runs the very code path the GPU runs.
// Never included by the CPU reference backend.
#include <thrust/execution_policy.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/transform_reduce.h>

#include <cstdint>

#include "panelboot/kernels/boot_counts.hpp"
#include "panelboot/kernels/gray_walk.hpp"

namespace panelboot::thrust_algorithms {

// Exceedance counts of replications 0 .. op.cf.n_rep-1 (one element per replication).
template <class Policy>
kernels::BootCounts count_replicates(const Policy& policy, const kernels::WildCountOp& op) {
  return thrust::transform_reduce(policy, thrust::counting_iterator<std::int64_t>(0),
                                  thrust::counting_iterator<std::int64_t>(op.cf.n_rep), op,
                                  kernels::BootCounts{}, kernels::BootCountsPlus{});
}

// Exact enumeration: one element (one GPU thread) per contiguous range of Gray codes.
template <class Policy>
kernels::BootCounts gray_enumerate(const Policy& policy, const kernels::GrayRangeOp& op) {
  return thrust::transform_reduce(policy, thrust::counting_iterator<std::int64_t>(0),
                                  thrust::counting_iterator<std::int64_t>(static_cast<std::int64_t>(op.n_ranges)),
                                  op, kernels::BootCounts{}, kernels::BootCountsPlus{});
}

// The number of ranges the walk is split into: one block (kernels::kGrayBlock vectors) per GPU
// thread, at most max_ranges.
inline std::uint64_t gray_ranges(const kernels::GrayProblem& p, std::uint64_t max_ranges) {
  const std::uint64_t r = kernels::gray_blocks(p);
  return r > max_ranges ? max_ranges : r < 1 ? 1 : r;
}

}  // namespace panelboot::thrust_algorithms
