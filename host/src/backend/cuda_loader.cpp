// The CUDA backend lives in a plugin, libpanelboot_cuda.so, loaded only when a command asks for
// it: the CPU path never maps the CUDA runtime and cuBLAS (their cost: bench/RESULTS.md),
// and a binary built with CUDA still runs where the CUDA libraries are absent. The driver is
// probed first (libcuda.so.1), so machines without a GPU do not load the plugin either.
#include <dlfcn.h>

#include <mutex>
#include <string>

#include "panelboot/backend.hpp"
#include "panelboot/config.hpp"
#include "panelboot/error.hpp"
#include "util/plugin.hpp"

namespace panelboot::cuda {
namespace {

using DevicesFn = int (*)(char*, int);
using MakeFn = Backend* (*)(char*, int);

struct Plugin {
  DevicesFn devices = nullptr;
  MakeFn make = nullptr;
  std::string why;  // why it is not usable
};

const Plugin& plugin() {
  static Plugin pl;
  static std::once_flag once;
  std::call_once(once, [] {
    if (!PANELBOOT_HAVE_CUDA) {
      pl.why = "this panelboot was built without CUDA (no nvcc at configure time); rebuild with nvcc and "
               "PANELBOOT_CUDA=ON";
      return;
    }
    if (!dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL)) {
      pl.why = "no NVIDIA driver is installed (libcuda.so.1 not found: no GPU on this machine)";
      return;
    }
    std::string tried;
    void* h = open_plugin("libpanelboot_cuda.so", "PANELBOOT_CUDA_PLUGIN", RTLD_NOW | RTLD_LOCAL, tried);
    if (!h) {
      pl.why = "the CUDA backend library could not be loaded (" + tried + ")";
      return;
    }
    pl.devices = reinterpret_cast<DevicesFn>(dlsym(h, "pb_cuda_plugin_devices"));
    pl.make = reinterpret_cast<MakeFn>(dlsym(h, "pb_cuda_plugin_make"));
    if (!pl.devices || !pl.make) pl.why = "libpanelboot_cuda.so lacks its entry points (a stale build?)";
  });
  return pl;
}

}  // namespace

int usable_devices(std::string& why) {
  const Plugin& pl = plugin();
  if (!pl.devices) {
    why = pl.why;
    return 0;
  }
  char buf[512] = {0};
  const int n = pl.devices(buf, sizeof buf);
  if (n == 0) why = buf;
  return n;
}

std::unique_ptr<Backend> make_cuda_backend() {
  const Plugin& pl = plugin();
  if (!PANELBOOT_HAVE_CUDA) throw NotCompiled(pl.why);
  if (!pl.make) throw CudaError(pl.why);
  char buf[512] = {0};
  Backend* b = pl.make(buf, sizeof buf);
  if (!b) throw CudaError(std::string("the CUDA backend failed to start: ") + buf);
  return std::unique_ptr<Backend>(b);
}

}  // namespace panelboot::cuda
