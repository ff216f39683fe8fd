#pragma once
// The CUDA backend's algorithms, one per file beside its CPU twin in host/src/backend/cpu/:
//   backend.cu      the Backend class (dispatch) and the plugin's entry points   cpu/backend.cpp
//   context.cu(h)   the device context (stream, cuBLAS, memory pool), buffers,   -
//                   the device's limits (panelboot bench)
//   wild.cu         wild replications, counts                                   cpu/wild.cpp
//   wre.cu          IV wild bootstrap (WRE/WUE, AR)                             cpu/wre.cpp
//   gray_walk.cu    exact enumeration (Gray code)                               cpu/gray_walk.cpp
//   threshold.cu    threshold bootstrap (one warp per replication)              cpu/threshold.cpp
//   batched_ols.cu  many small regressions                                      cpu/batched_ols.cpp
//   power_batch.cu  power's regressions over one fixed design                   cpu/power_batch.cpp
// Kernels stay inside their file; only these host functions cross files (no relocatable device
// code: the plugin is one .so).
#include <memory>
#include <vector>

#include "context.cuh"
#include "panelboot/backend.hpp"

namespace panelboot::cuda {

std::vector<double> wild_weights(const Context& ctx, std::uint64_t seed, kernels::WeightType type, bool enumerate,
                                 std::uint64_t b0, std::size_t nb, std::int32_t G);
std::unique_ptr<PreparedWild> prepare_wild(const Context& ctx, const WildProblem& problem);
WreRun wre_replicates(const Context& ctx, const WreProblem& problem, const WreEval& e, const WreRunOptions& o);
BootCounts gray_walk(const Context& ctx, const kernels::GrayProblem& p, ProgressSink* progress);
std::vector<double> threshold_fstar(const Context& ctx, const ThresholdBootSpec& spec, const ThresholdGram& gram);
OlsBatchResult batched_ols(const Context& ctx, const OlsBatch& batch);
FixedDesignResult fixed_design_ols(const Context& ctx, const FixedDesign& design, const FixedDesignBatch& batch);
// The device's peak FP64 rate and memory bandwidth from its attributes (context.cu).
MachineLimits device_limits(const Context& ctx);

}  // namespace panelboot::cuda
