#pragma once
// Memory estimated before it is allocated: a run whose estimate exceeds what the machine (or
// its cgroup, or --max-memory) can give is refused up front with the estimate and the ways out.
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace panelboot {

// "512M", "4G", "1.5G", "2T", "1000000" (bytes; K/M/G/T are powers of 1024, an optional B or
// iB after them). Throws InvalidInput naming --max-memory on anything else.
std::uint64_t parse_memory_size(const std::string& text);

// What this process may still allocate: min(MemAvailable, the cgroup's memory.max less its
// memory.current) plus the freed memory its heap keeps for reuse, or `user_max` when given
// (non-zero).
std::uint64_t memory_limit(std::uint64_t user_max);

// "1.5 GB", "640 MB", "12 KB"
std::string format_bytes(double bytes);

// Throws InvalidInput "<what> needs about X of memory, more than the Y available[ (--max-memory)];
// <ways_out>" when need > memory_limit(user_max).
void check_memory(double need_bytes, std::uint64_t user_max, const std::string& what,
                  const std::string& ways_out);

// The allocator set for a process that allocates and frees large columns repeatedly (glibc;
// a no-op elsewhere): freed blocks of any size stay in the heap for reuse, up to 1 GB of free
// top returned to the kernel. A fresh page costs a fault and the kernel's zeroing (about 0.6 ms
// per MB on the project's VM); a second fit of 10^7 rows then reuses the first one's pages.
// It also grows the heap by 64 MB at once, this one time, and advises that stretch for
// transparent huge pages (where the kernel offers them, as in its "madvise" mode; advice only):
// a run's first MBs then cost a few 2 MB faults instead of about a thousand 4 kB ones at about
// 2 us each on the project's VM (a threshold run of 15-20 ms: 1297 -> ~330 faults). A kernel
// whose THP "defrag" setting compacts on a fault may stall such a fault on a fragmented node.
void keep_freed_memory_for_reuse();

// min(MemAvailable, the cgroup's memory.max less its memory.current): what the kernel would
// still give this process (-1 as unsigned where neither can be read).
std::uint64_t system_headroom();

// Freed memory this process keeps in its heap for reuse (glibc's free bytes less the free top's
// pages never touched, which MemAvailable counts already; 0 elsewhere): counted as used by the
// kernel, available to the next allocation, so memory_limit adds it.
std::uint64_t heap_free_for_reuse();

// Maps [p, p + bytes) in one call where it is not yet touched (Linux 5.14's
// MADV_POPULATE_WRITE; a no-op elsewhere or under 4 MB): a fresh column of 10^7 values then
// costs no page fault per 4 KB when it is first written.
void prefault_pages(const void* p, std::size_t bytes);

// v emptied and given room for n values, none written yet, its pages mapped: fill it with
// push_back or insert (one write per value, where resize would zero it first).
template <class T, class A>
void reserve_unwritten(std::vector<T, A>& v, std::size_t n) {
  std::vector<T, A>().swap(v);
  v.reserve(n);
  prefault_pages(v.data(), n * sizeof(T));
}

// std::allocator, except that a value made without arguments is default-initialised: resize()
// of a vector of doubles then leaves the new values unwritten, for a pass that writes each of
// them (no zero-fill pass over the memory first).
template <class T>
struct UnwrittenAllocator : std::allocator<T> {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = UnwrittenAllocator<U>;
  };
  UnwrittenAllocator() noexcept = default;
  template <class U>
  UnwrittenAllocator(const UnwrittenAllocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible<U>::value) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
template <class T, class U>
bool operator==(const UnwrittenAllocator<T>&, const UnwrittenAllocator<U>&) noexcept {
  return true;
}
template <class T, class U>
bool operator!=(const UnwrittenAllocator<T>&, const UnwrittenAllocator<U>&) noexcept {
  return false;
}

// A column of doubles whose resize() does not write the new values (UnwrittenAllocator).
using Values = std::vector<double, UnwrittenAllocator<double>>;

}  // namespace panelboot
