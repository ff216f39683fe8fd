#pragma once
// Error checks around every CUDA runtime and cuBLAS call, and after every kernel launch.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "panelboot/error.hpp"

#define PB_CUDA_CHECK(call)                                                             \
  do {                                                                                  \
    const cudaError_t pb_err_ = (call);                                                 \
    if (pb_err_ != cudaSuccess)                                                         \
      throw ::panelboot::CudaError(std::string(#call) + " failed: " +                   \
                                   cudaGetErrorString(pb_err_) + " (" __FILE__ ":" +    \
                                   std::to_string(__LINE__) + ")");                     \
  } while (0)

#define PB_CUBLAS_CHECK(call)                                                           \
  do {                                                                                  \
    const cublasStatus_t pb_st_ = (call);                                               \
    if (pb_st_ != CUBLAS_STATUS_SUCCESS)                                                \
      throw ::panelboot::CudaError(std::string(#call) + " failed with cuBLAS status " + \
                                   std::to_string(static_cast<int>(pb_st_)));           \
  } while (0)

#define PB_CUDA_LAUNCH_CHECK() PB_CUDA_CHECK(cudaGetLastError())
