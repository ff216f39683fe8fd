#pragma once
// The CUDA backend's device context and what every algorithm file shares: the stream, the cuBLAS
// handle and the stream-ordered memory pool (made once per backend, so repeated calls pay no
// setup), device buffers, launch sizes, timing events and the kernel choices of the environment.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "check.cuh"

namespace panelboot::cuda {

// One device, one stream, one cuBLAS handle bound to it; the default memory pool keeps freed
// memory for the next call instead of returning it to the driver.
class Context {
 public:
  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  cudaStream_t stream = nullptr;
  cublasHandle_t handle = nullptr;
  std::string name;  // the device's
  int device = 0;    // its index (chosen_device)
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

// A kernel choice from the environment variable `name` (unset or empty: the first of `allowed`),
// so scripts/device-check can time each; any other value is an error, not ignored.
std::string kernel_choice(const char* name, std::initializer_list<const char*> allowed);

}  // namespace panelboot::cuda
