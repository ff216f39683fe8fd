// A host linked as the panelboot executable is (pb_link_cxx_runtime: its own libstdc++ where
// PB_STATIC_LIBSTDCXX) loads a plugin linked as the CUDA plugin is (the shared libstdc++), so the
// process holds two copies of the library when the executable's is static; every kind of thing
// the CUDA backend passes to the executable crosses between them here.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <link.h>

#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "panelboot/error.hpp"
#include "plugin_abi/probe.hpp"

namespace {

bool shared_libstdcxx_loaded() {
  bool found = false;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        if (info->dlpi_name && std::strstr(info->dlpi_name, "libstdc++.so"))
          *static_cast<bool*>(data) = true;
        return 0;
      },
      &found);
  return found;
}

panelboot::test::Probe* load_probe() {
  void* h = dlopen(PB_PROBE_PLUGIN, RTLD_NOW | RTLD_LOCAL);  // as cuda_loader.cpp opens its plugin
  if (!h) return nullptr;
  auto make = reinterpret_cast<panelboot::test::Probe* (*)()>(dlsym(h, "pb_test_probe_make"));
  return make ? make() : nullptr;
}

TEST(PluginAbi, TheHostAndAPluginWithItsOwnLibstdcxxShareObjectsAndExceptions) {
  EXPECT_EQ(shared_libstdcxx_loaded(), !PB_STATIC_LIBSTDCXX)
      << "the host is not linked as the executable";
  std::unique_ptr<panelboot::test::Probe> probe(load_probe());
  ASSERT_TRUE(probe) << dlerror();
  EXPECT_TRUE(shared_libstdcxx_loaded()) << "the plugin did not bring the shared libstdc++";

  // strings and vectors made on one side, grown and freed on the other
  std::string long_text(300, 'x');
  EXPECT_EQ(probe->echo(long_text), long_text + " (from the plugin)");
  std::vector<double> v(1000, -1.0);
  probe->fill(v, 3);
  EXPECT_EQ(v, (std::vector<double>{0.5, 1.5, 2.5}));
  probe->fill(v, 5000);
  ASSERT_EQ(v.size(), 5000u);
  EXPECT_EQ(v.back(), 4999.5);
  v.push_back(1.0);  // the plugin's block grown here
  v.clear();
  v.shrink_to_fit();

  // exceptions thrown by the plugin's copy, caught (and freed) by the host's, as the CLI catches
  try {
    probe->fail(0);
    ADD_FAILURE() << "no exception";
  } catch (const panelboot::InvalidInput& e) {
    EXPECT_STREQ(e.what(), "--level must be in (0, 100), not 150");
  }
  try {
    probe->fail(1);
    ADD_FAILURE() << "no exception";
  } catch (const panelboot::Error& e) {
    EXPECT_NE(dynamic_cast<const panelboot::CudaError*>(&e), nullptr);
    EXPECT_STREQ(e.what(), "cudaMalloc failed: out of memory");
  }
  EXPECT_THROW(probe->fail(2), std::bad_alloc);
  try {
    probe->fail(3);
    ADD_FAILURE() << "no exception";
  } catch (const std::exception& e) {
    EXPECT_NE(dynamic_cast<const std::out_of_range*>(&e), nullptr) << e.what();
  }
  try {
    probe->fail(4);
    ADD_FAILURE() << "no exception";
  } catch (const std::string& s) {
    EXPECT_EQ(s, "a string by value");
  }
  // rethrown by the host after the plugin's throw: an exception_ptr across the copies
  std::exception_ptr held;
  try {
    probe->fail(0);
  } catch (...) {
    held = std::current_exception();
  }
  EXPECT_THROW(std::rethrow_exception(held), panelboot::InvalidInput);
}

}  // namespace
