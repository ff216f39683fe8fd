// The CUDA backend: the same Backend interface as the CPU reference, FP64 throughout. The class
// only dispatches to the algorithm files (cuda.cuh lists them) with its device context.
#include <cstring>
#include <string>

#include "cuda.cuh"

namespace panelboot::cuda {
namespace {

class CudaBackend final : public Backend {
 public:
  Device device() const override { return Device::kCuda; }
  std::string name() const override { return "cuda"; }
  std::string describe() const override { return "backend: cuda (" + ctx_.name + ")"; }
  MachineLimits limits() const override { return device_limits(ctx_); }
  std::unique_ptr<HostArray> host_array(std::size_t n) const override {
    return std::make_unique<PinnedHostArray>(n);
  }

  std::vector<double> wild_weights(std::uint64_t seed, kernels::WeightType type, bool enumerate, std::uint64_t b0,
                                   std::size_t nb, std::int32_t G) const override {
    return cuda::wild_weights(ctx_, seed, type, enumerate, b0, nb, G);
  }
  std::unique_ptr<PreparedWild> prepare_wild(const WildProblem& problem) const override {
    return cuda::prepare_wild(ctx_, problem);
  }
  BootCounts wild_enumerate(const kernels::GrayProblem& p, ProgressSink* progress) const override {
    return gray_walk(ctx_, p, progress);
  }
  std::vector<double> threshold_fstar(const ThresholdBootSpec& sp, const ThresholdGram& gram) const override {
    return cuda::threshold_fstar(ctx_, sp, gram);
  }
  WreRun wre_replicates(const WreProblem& pr, const WreEval& e, const WreRunOptions& o) const override {
    return cuda::wre_replicates(ctx_, pr, e, o);
  }
  OlsBatchResult batched_ols(const OlsBatch& bt) const override { return cuda::batched_ols(ctx_, bt); }
  FixedDesignResult fixed_design_ols(const FixedDesign& d, const FixedDesignBatch& bt) const override {
    return cuda::fixed_design_ols(ctx_, d, bt);
  }

 private:
  Context ctx_;
};

}  // namespace

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
