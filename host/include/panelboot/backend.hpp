#pragma once
// The compute backend: one coarse interface called once per batch, with a CPU reference
// implementation and a CUDA one (cuda/). This is the skeleton the bootstrap, threshold and
// power drivers will extend; for now it answers which device runs the work.
#include <memory>
#include <string>

namespace panelboot {

enum class Device { kAuto, kCpu, kCuda };
Device parse_device(const std::string& s);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string describe() const = 0;  // one line: which device and why
};

// kAuto: CUDA when compiled and a device is present, else CPU. kCuda without a usable GPU
// throws NotCompiled (no CUDA in this build) or CudaError (no device, driver too old).
std::unique_ptr<Backend> make_backend(Device d);

namespace cpu {
std::unique_ptr<Backend> make_cpu_backend(const std::string& why);
}

namespace cuda {
// Number of usable CUDA devices; on 0, `why` says why (not compiled, no device, driver).
int usable_devices(std::string& why);
std::unique_ptr<Backend> make_cuda_backend();
}  // namespace cuda

}  // namespace panelboot
