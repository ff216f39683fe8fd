#pragma once
// PB_HD marks math shared by host and device: compiled by g++ and by nvcc.
#if defined(__CUDACC__)
#define PB_HD __host__ __device__
#else
#define PB_HD
#endif
