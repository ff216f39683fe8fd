#pragma once
// What tests/plugin_abi's probe plugin gives its host: the kinds of thing that cross between the
// executable and the CUDA plugin (a C++ object made in the plugin and deleted by the host, strings
// and vectors allocated on one side and freed on the other, panelboot's and the standard library's
// exceptions thrown in the plugin and caught in the host).
#include <string>
#include <vector>

namespace panelboot::test {

struct Probe {
  virtual ~Probe() = default;
  virtual std::string echo(const std::string& s) const = 0;      // s + " (from the plugin)"
  virtual void fill(std::vector<double>& out, int n) const = 0;  // out = 0.5, 1.5, ..., n - 0.5
  // throws: 0 panelboot::InvalidInput, 1 panelboot::CudaError, 2 std::bad_alloc,
  // 3 std::out_of_range (from the library's own code), 4 a std::string by value
  virtual void fail(int kind) const = 0;
};

}  // namespace panelboot::test

extern "C" panelboot::test::Probe* pb_test_probe_make();
