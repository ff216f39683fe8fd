#pragma once
// W doubles as one vector (GCC vector extension) for the CPU backend's code that runs the shared
// kernels with one replication a lane (threshold_batch.hpp, wre.cpp): W = 8 in the AVX-512
// functions, 4 in the AVX2 and baseline ones (GCC's code for 64-byte vectors without AVX-512 goes
// through the stack). Each element is one replication, so W changes no bit.
namespace panelboot::cpu {

template <int W>
struct DoublesOf;  // GCC ignores vector_size with a template's size
template <>
struct DoublesOf<4> {
  typedef double type __attribute__((vector_size(32)));
};
template <>
struct DoublesOf<8> {
  typedef double type __attribute__((vector_size(64)));
};

}  // namespace panelboot::cpu
