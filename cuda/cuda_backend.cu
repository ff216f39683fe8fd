// The CUDA backend (skeleton): device discovery and a context holding the stream and the
// cuBLAS handle. The batched kernels of the bootstrap, threshold and power drivers build on it.
#include <memory>
#include <string>

#include "check.cuh"
#include "panelboot/backend.hpp"

namespace panelboot::cuda {
namespace {

// one thread per element; a self-test that the device runs our code and FP64 arithmetic
__global__ void axpy_kernel(double a, const double* x, double* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] += a * x[i];
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    PB_CUDA_CHECK(cudaSetDevice(0));
    PB_CUDA_CHECK(cudaStreamCreate(&stream_));
    PB_CUBLAS_CHECK(cublasCreate(&handle_));
    PB_CUBLAS_CHECK(cublasSetStream(handle_, stream_));
    cudaDeviceProp prop{};
    PB_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    name_ = prop.name;
    self_test();
  }
  ~CudaBackend() override {
    cublasDestroy(handle_);
    cudaStreamDestroy(stream_);
  }
  Device device() const override { return Device::kCuda; }
  std::string describe() const override { return "backend: cuda (" + name_ + ")"; }

 private:
  void self_test() {
    const int n = 256;
    double *d_x = nullptr, *d_y = nullptr;
    PB_CUDA_CHECK(cudaMalloc(&d_x, n * sizeof(double)));
    PB_CUDA_CHECK(cudaMalloc(&d_y, n * sizeof(double)));
    PB_CUDA_CHECK(cudaMemsetAsync(d_x, 0, n * sizeof(double), stream_));
    PB_CUDA_CHECK(cudaMemsetAsync(d_y, 0, n * sizeof(double), stream_));
    axpy_kernel<<<(n + 127) / 128, 128, 0, stream_>>>(2.0, d_x, d_y, n);
    PB_CUDA_LAUNCH_CHECK();
    PB_CUDA_CHECK(cudaStreamSynchronize(stream_));
    PB_CUDA_CHECK(cudaFree(d_x));
    PB_CUDA_CHECK(cudaFree(d_y));
  }
  cudaStream_t stream_ = nullptr;
  cublasHandle_t handle_ = nullptr;
  std::string name_;
};

}  // namespace

int usable_devices(std::string& why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err == cudaErrorInsufficientDriver) {
    why = "the NVIDIA driver is too old for this CUDA runtime";
    return 0;
  }
  if (err != cudaSuccess || n == 0) {
    why = std::string("no CUDA device is present (") + cudaGetErrorString(err) + ")";
    return 0;
  }
  return n;
}

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace panelboot::cuda
