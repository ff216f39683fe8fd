#pragma once
// PB_HD marks math shared by host and device: compiled by g++ and by nvcc.
#if defined(__CUDACC__)
#define PB_HD __host__ __device__
#else
#define PB_HD
#endif

// Forces inlining, so a host caller built for AVX2 (target_clones) compiles the body for AVX2.
#if defined(__CUDACC__)
#define PB_INLINE __forceinline__
#elif defined(__GNUC__)
#define PB_INLINE inline __attribute__((always_inline))
#else
#define PB_INLINE inline
#endif

// Unrolls a loop on the device when its trip count is a compile-time constant (so small arrays
// it indexes stay in registers); nothing on the host.
#if defined(__CUDACC__)
#define PB_UNROLL _Pragma("unroll")
#else
#define PB_UNROLL
#endif
