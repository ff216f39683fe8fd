#include "helpers.hpp"
#include "panelboot/backend.hpp"
#include "panelboot/config.hpp"
#include "panelboot/error.hpp"

using namespace panelboot;

TEST(Backend, CpuAlwaysAvailableAndAutoFallsBack) {
  EXPECT_EQ(make_backend(Device::kCpu)->device(), Device::kCpu);
  std::string why;
  if (cuda::usable_devices(why) == 0) {
    const auto b = make_backend(Device::kAuto);
    EXPECT_EQ(b->device(), Device::kCpu);
    EXPECT_NE(b->describe().find(why), std::string::npos);
  }
}

TEST(Backend, CudaWithoutUsableGpuSaysWhy) {
  std::string why;
  if (cuda::usable_devices(why) > 0) GTEST_SKIP() << "a GPU is present";
  if (PANELBOOT_HAVE_CUDA) {
    EXPECT_THROW(make_backend(Device::kCuda), CudaError);
  } else {
    EXPECT_THROW(make_backend(Device::kCuda), NotCompiled);
  }
}
