#include "panelboot/backend.hpp"

#include "panelboot/config.hpp"
#include "panelboot/error.hpp"

namespace panelboot {

Device resolve_device(Device d, std::string& why) {
  why.clear();
  if (d == Device::kCpu) {
    why = "requested with --backend cpu";
    return Device::kCpu;
  }
  const int n = cuda::usable_devices(why);
  if (d == Device::kCuda) {
    if (!PANELBOOT_HAVE_CUDA) throw NotCompiled("--backend cuda: " + why);
    if (n == 0) throw CudaError("--backend cuda: " + why);
  }
  return n > 0 ? Device::kCuda : Device::kCpu;
}

std::unique_ptr<Backend> make_backend(Device d) {
  std::string why;
  if (resolve_device(d, why) == Device::kCuda) return cuda::make_cuda_backend();
  return cpu::make_cpu_backend(why);
}

}  // namespace panelboot
