// Built instead of the CUDA backend when no CUDA toolkit is found (PANELBOOT_CUDA=OFF/AUTO).
#include "panelboot/backend.hpp"
#include "panelboot/error.hpp"

namespace panelboot::cuda {

int usable_devices(std::string& why) {
  why = "this panelboot was built without CUDA (no nvcc at configure time)";
  return 0;
}

std::unique_ptr<Backend> make_cuda_backend() {
  throw NotCompiled("this panelboot was built without CUDA; rebuild with nvcc and PANELBOOT_CUDA=ON");
}

}  // namespace panelboot::cuda
