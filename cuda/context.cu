// The CUDA backend's device context (context.cuh) and the device query the loader asks first.
#include <dlfcn.h>

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
  PB_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream, cudaStreamNonBlocking));
  cudaDeviceProp prop{};
  PB_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  name = prop.name;
  sm_count = prop.multiProcessorCount;
  cc_major = prop.major;
  max_block_shared = prop.sharedMemPerBlockOptin;
  // keep freed pool memory for the next call instead of returning it to the driver
  cudaMemPool_t pool;
  PB_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  std::uint64_t keep = UINT64_MAX;
  PB_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
}

Context::~Context() {
  if (blas_.handle) blas_.destroy(blas_.handle);
  if (copy_stream) cudaStreamDestroy(copy_stream);
  if (stream) cudaStreamDestroy(stream);
}

PinnedHostArray::PinnedHostArray(std::size_t n) {
  if (n == 0) return;
  void* p = nullptr;
  if (cudaMallocHost(&p, n * sizeof(double)) != cudaSuccess) {
    cudaGetLastError();  // not sticky; clear it
    throw CudaError("cannot pin " + std::to_string(n * sizeof(double) >> 20) +
                    " MiB of host memory for the GPU's input (cudaMallocHost): free memory or use "
                    "--backend cpu");
  }
  data_ = static_cast<double*>(p);
  size_ = n;
}

PinnedHostArray::~PinnedHostArray() {
  if (data_) cudaFreeHost(data_);
}

bool is_pinned(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeHost;
}

EventList::~EventList() {
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
}

cudaEvent_t EventList::record(cudaStream_t s, bool timing) {
  cudaEvent_t e = nullptr;
  PB_CUDA_CHECK(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming));
  events_.push_back(e);
  PB_CUDA_CHECK(cudaEventRecord(e, s));
  return e;
}

void order_after(cudaStream_t later, cudaStream_t earlier, EventList& events) {
  PB_CUDA_CHECK(cudaStreamWaitEvent(later, events.record(earlier, false), 0));
}

double SpanTimer::seconds() const {
  double s = 0;
  for (std::size_t i = 0; i + 1 < events_.size(); i += 2) {
    float ms = 0;
    PB_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i], events_[i + 1]));
    s += 1e-3 * ms;
  }
  return s;
}

namespace {

// cuBLAS by its soname (the plugin's run path finds it, as it finds the CUDA runtime), else in
// the toolkit's library folder of the build
void* open_cublas() {
  std::string tried;
  for (const std::string& path :
       {std::string(PB_CUBLAS_SONAME), std::string(PB_CUBLAS_DIR "/") + PB_CUBLAS_SONAME}) {
    if (void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
    tried += (tried.empty() ? "" : "; ") + std::string(dlerror());
  }
  throw CudaError("cuBLAS could not be loaded (" + tried + ")");
}

template <class Fn>
Fn symbol_of(void* lib, const char* name) {
  void* f = dlsym(lib, name);
  if (!f)
    throw CudaError(std::string("cuBLAS lacks ") + name +
                    " (a different version than the build's?)");
  return reinterpret_cast<Fn>(f);
}

}  // namespace

const Blas& Context::blas() const {
  std::call_once(blas_once_, [this] {
    void* lib = open_cublas();
    Blas b;
    b.dgemm = symbol_of<decltype(b.dgemm)>(lib, "cublasDgemm_v2");
    b.dgemm_strided_batched =
        symbol_of<decltype(b.dgemm_strided_batched)>(lib, "cublasDgemmStridedBatched");
    b.destroy = symbol_of<decltype(b.destroy)>(lib, "cublasDestroy_v2");
    const auto create = symbol_of<decltype(&cublasCreate_v2)>(lib, "cublasCreate_v2");
    const auto set_stream = symbol_of<decltype(&cublasSetStream_v2)>(lib, "cublasSetStream_v2");
    PB_CUBLAS_CHECK(create(&b.handle));
    if (const cublasStatus_t st = set_stream(b.handle, stream); st != CUBLAS_STATUS_SUCCESS) {
      b.destroy(b.handle);
      PB_CUBLAS_CHECK(st);
    }
    blas_ = b;
  });
  return blas_;
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

namespace {

constexpr std::size_t kLinkProbeBytes = std::size_t{256} << 20;

// Bytes per second from pinned host memory to the device: one copy of kLinkProbeBytes to warm
// the link, then the best of three, timed by events.
double pinned_copy_rate(const Context& ctx) {
  const std::size_t n = kLinkProbeBytes / sizeof(double);
  const PinnedHostArray host(n);
  std::fill(host.data(), host.data() + n, 1.0);
  DeviceBuffer<double> dev(n, ctx.stream);
  const Events ev;
  float best_ms = 0;
  for (int r = 0; r < 4; ++r) {
    PB_CUDA_CHECK(cudaEventRecord(ev.e[0], ctx.stream));
    dev.upload(host.data(), n);
    PB_CUDA_CHECK(cudaEventRecord(ev.e[1], ctx.stream));
    PB_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    float ms = 0;
    PB_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.e[0], ev.e[1]));
    if (r > 0 && (best_ms == 0 || ms < best_ms)) best_ms = ms;
  }
  return best_ms > 0 ? static_cast<double>(kLinkProbeBytes) / (1e-3 * best_ms) : 0;
}

}  // namespace

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
  m.fp64_flops = fp64_model_flops(m);
  // double data rate: 2 transfers per memory clock over the bus
  const double mem_hz = 1e3 * attribute(cudaDevAttrMemoryClockRate);
  const double bus_bytes = attribute(cudaDevAttrGlobalMemoryBusWidth) / 8.0;
  m.bytes_per_s = 2.0 * mem_hz * bus_bytes;
  m.bytes_source = "2 x cudaDevAttrMemoryClockRate x cudaDevAttrGlobalMemoryBusWidth";
  m.host_to_device_bytes_per_s = pinned_copy_rate(ctx);
  m.host_to_device_source =
      "a copy of " + std::to_string(kLinkProbeBytes >> 20) +
      " MiB from pinned host memory to the device, best of 3, measured in this run";
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
