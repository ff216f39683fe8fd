// tests/plugin_abi's plugin, built as the CUDA plugin is (a module with the shared libstdc++).
#include <new>
#include <stdexcept>

#include "panelboot/error.hpp"
#include "probe.hpp"

namespace {

class PluginProbe : public panelboot::test::Probe {
 public:
  std::string echo(const std::string& s) const override { return s + " (from the plugin)"; }
  void fill(std::vector<double>& out, int n) const override {
    out.clear();
    for (int i = 0; i < n; ++i) out.push_back(i + 0.5);
  }
  void fail(int kind) const override {
    switch (kind) {
      case 0:
        throw panelboot::InvalidInput("--level must be in (0, 100), not 150");
      case 1:
        throw panelboot::CudaError("cudaMalloc failed: out of memory");
      case 2:
        throw std::bad_alloc();
      case 3:
        (void)std::string("abc").at(7);
        break;
      default:
        throw std::string("a string by value");
    }
  }
};

}  // namespace

extern "C" __attribute__((visibility("default"))) panelboot::test::Probe* pb_test_probe_make() {
  return new PluginProbe;
}
