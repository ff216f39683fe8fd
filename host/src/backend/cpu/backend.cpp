// The CPU reference backend: every other backend is tested against it. The Backend class only
// dispatches; each algorithm lives in its own file beside its CUDA twin (cpu.hpp lists them).
#include "backend/cpu/cpu.hpp"

namespace panelboot::cpu {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(std::string why) : why_(std::move(why)) {}
  Device device() const override { return Device::kCpu; }
  std::string name() const override { return "cpu"; }
  std::string describe() const override { return "backend: cpu (" + why_ + ")"; }

  std::vector<double> wild_weights(std::uint64_t seed, kernels::WeightType type, bool enumerate, std::uint64_t b0,
                                   std::size_t nb, std::int32_t G) const override {
    std::vector<double> V(static_cast<std::size_t>(G) * nb);
    cpu::wild_weights_block(seed, type, enumerate, b0, nb, G, V.data());
    return V;
  }
  std::unique_ptr<PreparedWild> prepare_wild(const WildProblem& problem) const override {
    return cpu::prepare_wild(problem);
  }
  BootCounts wild_enumerate(const kernels::GrayProblem& p, ProgressSink* progress) const override {
    return gray_walk(p, progress);
  }
  std::vector<double> threshold_fstar(const ThresholdBootSpec& sp, const ThresholdGram& gram) const override {
    return cpu::threshold_fstar(sp, gram);
  }
  WreRun wre_replicates(const WreProblem& pr, const WreEval& e, const WreRunOptions& o) const override {
    return cpu::wre_replicates(pr, e, o);
  }
  OlsBatchResult batched_ols(const OlsBatch& bt) const override { return cpu::batched_ols(bt); }
  FixedDesignResult fixed_design_ols(const FixedDesign& d, const FixedDesignBatch& bt) const override {
    return cpu::fixed_design_ols(d, bt);
  }

 private:
  std::string why_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const std::string& why) {
  return std::make_unique<CpuBackend>(why);
}

}  // namespace panelboot::cpu
