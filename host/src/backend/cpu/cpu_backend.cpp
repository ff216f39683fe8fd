#include "panelboot/backend.hpp"

namespace panelboot::cpu {
namespace {
class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(std::string why) : why_(std::move(why)) {}
  Device device() const override { return Device::kCpu; }
  std::string describe() const override { return "backend: cpu (" + why_ + ")"; }

 private:
  std::string why_;
};
}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const std::string& why) {
  return std::make_unique<CpuBackend>(why);
}

}  // namespace panelboot::cpu
