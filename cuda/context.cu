// The CUDA backend's device context (context.cuh) and the device query the loader asks first.
#include <cstdlib>

#include "cuda.cuh"

namespace panelboot::cuda {

// The device this process uses: PANELBOOT_CUDA_DEVICE (an MPI rank's local rank, set at its
// start) modulo the visible devices; 0 by default.
int chosen_device() {
  int n = 0;
  PB_CUDA_CHECK(cudaGetDeviceCount(&n));
  const char* e = std::getenv("PANELBOOT_CUDA_DEVICE");
  const int want = e && *e ? std::atoi(e) : 0;
  return n > 0 && want > 0 ? want % n : 0;
}

Context::Context() {
  device = chosen_device();
  PB_CUDA_CHECK(cudaSetDevice(device));
  PB_CUDA_CHECK(cudaStreamCreate(&stream));
  PB_CUBLAS_CHECK(cublasCreate(&handle));
  PB_CUBLAS_CHECK(cublasSetStream(handle, stream));
  cudaDeviceProp prop{};
  PB_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  name = prop.name;
  // keep freed pool memory for the next call instead of returning it to the driver
  cudaMemPool_t pool;
  PB_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  std::uint64_t keep = UINT64_MAX;
  PB_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
}

Context::~Context() {
  if (handle) cublasDestroy(handle);
  if (stream) cudaStreamDestroy(stream);
}

std::string kernel_choice(const char* name, std::initializer_list<const char*> allowed) {
  const char* e = std::getenv(name);
  const std::string c = e && *e ? e : *allowed.begin();
  std::string list;
  for (const char* a : allowed) {
    if (c == a) return c;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  throw InvalidInput(std::string(name) + " must be one of " + list + ", not '" + c + "'");
}

// FP64 units per multiprocessor by compute capability: the data-centre parts (6.0, 7.0, 8.0,
// 9.0, 10.0) run FP64 at half the FP32 rate; the others at 1/32 or 1/64 of it: 2 units per
// multiprocessor from Turing (7.2, 7.5) on, 4 on the 128-lane Maxwell and Pascal ones.
int fp64_units_per_sm(int major, int minor) {
  if (major == 9 && minor == 0) return 64;   // H100, H200
  if (major == 10 && minor == 0) return 64;  // B200
  if (major == 8 && minor == 0) return 32;   // A100
  if (major == 7 && minor == 0) return 32;   // V100
  if (major == 6 && minor == 0) return 32;   // P100
  return major >= 7 ? 2 : 4;
}

// CUDA 13 dropped clockRate and memoryClockRate from cudaDeviceProp; the attributes remain.
MachineLimits device_limits(const Context& ctx) {
  auto attribute = [&](cudaDeviceAttr a) {
    int v = 0;
    PB_CUDA_CHECK(cudaDeviceGetAttribute(&v, a, ctx.device));
    return v;
  };
  MachineLimits m;
  m.device = "cuda";
  m.name = ctx.name;
  m.units = attribute(cudaDevAttrMultiProcessorCount);
  m.fp64_lanes = fp64_units_per_sm(attribute(cudaDevAttrComputeCapabilityMajor),
                                   attribute(cudaDevAttrComputeCapabilityMinor));
  m.clock_hz = 1e3 * attribute(cudaDevAttrClockRate);  // kHz: the boost clock
  m.clock_source = "cudaDevAttrClockRate (boost clock)";
  m.fp64_flops = m.units * static_cast<double>(m.fp64_lanes) * 2.0 * m.clock_hz;
  // double data rate: 2 transfers per memory clock over the bus
  const double mem_hz = 1e3 * attribute(cudaDevAttrMemoryClockRate);
  const double bus_bytes = attribute(cudaDevAttrGlobalMemoryBusWidth) / 8.0;
  m.bytes_per_s = 2.0 * mem_hz * bus_bytes;
  m.bytes_source = "2 x cudaDevAttrMemoryClockRate x cudaDevAttrGlobalMemoryBusWidth";
  return m;
}

int usable_devices(std::string& why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err == cudaErrorInsufficientDriver) {
    int driver = 0;
    cudaDriverGetVersion(&driver);  // 0 when no driver is installed at all
    if (driver == 0) {
      why = "no NVIDIA driver is installed (no GPU on this machine)";
    } else {
      why = "the NVIDIA driver is too old: it supports CUDA " + std::to_string(driver / 1000) + "." +
            std::to_string(driver % 1000 / 10) + ", this build needs " + std::to_string(CUDART_VERSION / 1000) +
            "." + std::to_string(CUDART_VERSION % 1000 / 10);
    }
    return 0;
  }
  if (err != cudaSuccess || n == 0) {
    why = std::string("no CUDA device is present (") + cudaGetErrorString(err) + ")";
    return 0;
  }
  return n;
}

}  // namespace panelboot::cuda
