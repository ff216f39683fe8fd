#pragma once
// The CUDA backend's device context and what every algorithm file shares: the stream, cuBLAS
// (loaded when a path first needs it) and the stream-ordered memory pool (made once per backend,
// so repeated calls pay no setup), device buffers, launch sizes, timing events and the kernel
// choices of the environment.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <initializer_list>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "check.cuh"
#include "panelboot/backend.hpp"

namespace panelboot::cuda {

// cuBLAS's functions the backend calls and a handle bound to the context's stream. The library
// is opened (dlopen) and the handle made the first time a path needs them (the general wild
// path, the DGEMM choices): the fused wild kernel, the Gray walk, the threshold bootstrap, WRE,
// power and the warp OLS kernels never do, and a process that runs only those skips loading
// cuBLAS, about 50 ms of a cold start on the H200 (bench/RESULTS.md).
struct Blas {
  cublasHandle_t handle = nullptr;
  decltype(&cublasDgemm_v2) dgemm = nullptr;
  decltype(&cublasDgemmStridedBatched) dgemm_strided_batched = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
};

// One device, one stream; the default memory pool keeps freed memory for the next call instead
// of returning it to the driver.
class Context {
 public:
  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  // cuBLAS, loaded on the first call (an error names the library when it cannot be opened)
  const Blas& blas() const;
  cudaStream_t stream = nullptr;
  cudaStream_t copy_stream = nullptr;  // copies that overlap the kernels on `stream`
  std::string name;  // the device's
  int device = 0;    // its index (chosen_device)
  int sm_count = 0;  // its multiprocessors
  int cc_major = 0;  // its compute capability's major number (8: Ampere, 9: Hopper)
  std::size_t max_block_shared = 0;  // the most shared memory a block may opt in to

 private:
  mutable std::once_flag blas_once_;
  mutable Blas blas_;
};

// Device memory from the stream-ordered pool, freed on the same stream.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(std::size_t n, cudaStream_t s) : n_(n), stream_(s) {
    if (n) PB_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&p_), n * sizeof(T), s));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~DeviceBuffer() {
    if (p_) cudaFreeAsync(p_, stream_);
  }
  T* get() const { return p_; }
  std::size_t size() const { return n_; }
  void upload(const T* h, std::size_t n) {
    if (n) PB_CUDA_CHECK(cudaMemcpyAsync(p_, h, n * sizeof(T), cudaMemcpyHostToDevice, stream_));
  }
  void download(T* h, std::size_t n) const {
    if (n) PB_CUDA_CHECK(cudaMemcpyAsync(h, p_, n * sizeof(T), cudaMemcpyDeviceToHost, stream_));
  }

 private:
  void swap(DeviceBuffer& o) {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    std::swap(stream_, o.stream_);
  }
  T* p_ = nullptr;
  std::size_t n_ = 0;
  cudaStream_t stream_ = nullptr;
};

template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& h, cudaStream_t s) {
  DeviceBuffer<T> d(h.size(), s);
  d.upload(h.data(), h.size());
  return d;
}

inline unsigned blocks_for(std::size_t n, unsigned threads) {
  const std::size_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::min<std::size_t>(std::max<std::size_t>(b, 1), 1u << 30));
}

// Two timing events, destroyed on every path out.
struct Events {
  cudaEvent_t e[2] = {nullptr, nullptr};
  Events() {
    for (auto& x : e) PB_CUDA_CHECK(cudaEventCreate(&x));
  }
  ~Events() {
    for (auto& x : e)
      if (x) cudaEventDestroy(x);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
};

// Host memory the device reads directly (cudaMallocHost): its copies run at the link's rate and
// asynchronously, so they overlap kernels (Backend::host_array on the CUDA backend).
class PinnedHostArray final : public HostArray {
 public:
  explicit PinnedHostArray(std::size_t n);
  ~PinnedHostArray() override;
};

// Whether p lies in pinned host memory (PinnedHostArray or cudaHostRegister'ed).
bool is_pinned(const void* p);

// Events recorded on streams, destroyed together on every path out.
class EventList {
 public:
  EventList() = default;
  ~EventList();
  EventList(const EventList&) = delete;
  EventList& operator=(const EventList&) = delete;
  cudaEvent_t record(cudaStream_t s, bool timing);

 protected:
  std::vector<cudaEvent_t> events_;
};

// Work queued on `later` from now on waits for what is queued on `earlier` so far.
void order_after(cudaStream_t later, cudaStream_t earlier, EventList& events);

// Spans of work on one stream, an event before and after each, their times summed: the kernels'
// own time when copies on another stream interleave with them.
class SpanTimer : EventList {
 public:
  explicit SpanTimer(cudaStream_t s) : stream_(s) {}
  void begin() { record(stream_, true); }
  void end() { record(stream_, true); }
  double seconds() const;  // once the stream has finished the spans

 private:
  cudaStream_t stream_;
};

// A kernel choice from the environment variable `name` (unset or empty: the first of `allowed`),
// so scripts/device-check can time each; any other value is an error, not ignored.
std::string kernel_choice(const char* name, std::initializer_list<const char*> allowed);

}  // namespace panelboot::cuda
