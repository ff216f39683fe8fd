#include "panelboot/memory.hpp"

#include <sys/mman.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

#include "panelboot/error.hpp"
#include "panelboot/text.hpp"

namespace panelboot {
namespace {

constexpr std::uint64_t kUnlimited = std::numeric_limits<std::uint64_t>::max();

// The bytes of the heap's free top (its last `top` bytes below the break) that no page backs yet
// (mincore): address space the heap grew by ahead of use (advise_huge_pages_for_heap), which
// MemAvailable already counts, so that it is not counted twice as memory kept for reuse.
std::uint64_t untouched_top_bytes(std::size_t top) {
  const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto brk = reinterpret_cast<std::uintptr_t>(::sbrk(0));
  if (top == 0 || top > brk) return 0;
  const std::uintptr_t begin = (brk - top + page - 1) & ~(page - 1), end = brk & ~(page - 1);
  if (end <= begin) return 0;
  std::vector<unsigned char> resident((end - begin) / page);
  if (::mincore(reinterpret_cast<void*>(begin), end - begin, resident.data()) != 0) return 0;
  std::uint64_t untouched = 0;
  for (unsigned char r : resident) untouched += (r & 1) ? 0 : page;
  return untouched;
}

// The heap grows 64 MB at once, this one time, and that stretch is advised for transparent huge
// pages (memory.hpp: keep_freed_memory_for_reuse); needs M_MMAP_MAX 0 (the probe must come from
// the heap).
void advise_huge_pages_for_heap() {
#if defined(__GLIBC__) && defined(MADV_HUGEPAGE)
  constexpr std::size_t kStep = std::size_t{64} << 20, kHuge = std::size_t{2} << 20;
  mallopt(M_TOP_PAD, static_cast<int>(kStep));
  // a block larger than the heap's free top makes it grow now, by the block and kStep beyond it
  void* probe = std::malloc(std::size_t{1} << 20);
  mallopt(M_TOP_PAD, 128 * 1024);  // glibc's default again: a thread's arena, a later growth
  if (!probe) return;
  // Growing for it wrote the top's header just past it (at + 1 MB), before any advice: the 2 MB
  // around that page could no longer become one huge page, so the advised stretch starts above it.
  const auto at = reinterpret_cast<std::uintptr_t>(probe);
  const auto from = (at + (std::size_t{1} << 20) + 16 + kHuge - 1) & ~(kHuge - 1);
  const auto to = reinterpret_cast<std::uintptr_t>(::sbrk(0)) & ~(kHuge - 1);
  std::free(probe);
  if (!(to > from && to - from <= 2 * kStep)) return;  // not the stretch the heap just grew by
  if (::madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE) != 0) return;
  // the heap below `from` keeps 4 kB pages: a block that is never written and never freed takes
  // it, so that the next allocations start at `from` (address space only; no page is touched).
  // Its chunk starts at the probe's (at - 16) and spans the request and 8 bytes, rounded to 16.
  // (Kept in a volatile global: a block never read would be a malloc the compiler may drop.)
  static void* volatile below_advised = nullptr;
  if (!below_advised && from - at > 64) below_advised = std::malloc(from - at + 8);
#endif
}

// MemAvailable from /proc/meminfo (kB there), or kUnlimited if it cannot be read.
std::uint64_t mem_available() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  std::uint64_t kb = 0;
  while (in >> key >> kb) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return kb * 1024;
  }
  return kUnlimited;
}

// A cgroup file holding a number ("max" or unreadable: kUnlimited).
std::uint64_t read_cgroup_value(const char* path) {
  std::ifstream in(path);
  std::string s;
  if (!(in >> s) || s == "max" || s.empty() || !std::isdigit(static_cast<unsigned char>(s[0]))) return kUnlimited;
  return std::strtoull(s.c_str(), nullptr, 10);
}

// The cgroup's headroom: memory.max - memory.current (cgroup v2), or the v1 limit less usage.
std::uint64_t cgroup_headroom() {
  std::uint64_t limit = read_cgroup_value("/sys/fs/cgroup/memory.max");
  std::uint64_t used = read_cgroup_value("/sys/fs/cgroup/memory.current");
  if (limit == kUnlimited) {
    limit = read_cgroup_value("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    used = read_cgroup_value("/sys/fs/cgroup/memory/memory.usage_in_bytes");
  }
  if (limit == kUnlimited || limit >= (std::uint64_t{1} << 60)) return kUnlimited;
  if (used == kUnlimited) used = 0;
  return limit > used ? limit - used : 0;
}

}  // namespace

std::uint64_t parse_memory_size(const std::string& text) {
  const std::string bad = "--max-memory " + quoted(text) +
                          ": give a size such as 512M, 4G or 1.5G (K, M, G, T, P: powers of 1024)";
  std::size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(text, &pos);
  } catch (...) {
    throw InvalidInput(bad);
  }
  std::string unit = text.substr(pos);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  double mult = 1;
  if (unit == "K") mult = 1024.0;
  else if (unit == "M") mult = 1024.0 * 1024;
  else if (unit == "G") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T") mult = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "P") mult = 1024.0 * 1024 * 1024 * 1024 * 1024;
  else if (!unit.empty() && unit != "B") throw InvalidInput(bad);
  const double bytes = v * mult;
  if (!(bytes >= 1024.0 * 1024) || bytes > std::ldexp(1.0, 60))
    throw InvalidInput("--max-memory " + quoted(text) + " is outside its range, 1M to 1024P");
  return static_cast<std::uint64_t>(bytes);
}

std::uint64_t heap_free_for_reuse() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 mi = mallinfo2();
  const std::uint64_t free = mi.fordblks, untouched = untouched_top_bytes(mi.keepcost);
  return free - (untouched < free ? untouched : free);
#else
  return 0;
#endif
}

std::uint64_t system_headroom() {
  const std::uint64_t a = mem_available(), c = cgroup_headroom();
  return a < c ? a : c;
}

std::uint64_t memory_limit(std::uint64_t user_max) {
  if (user_max) return user_max;
  const std::uint64_t headroom = system_headroom();
  if (headroom == kUnlimited) return headroom;
  return headroom + heap_free_for_reuse();
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  int u = 0;
  while (bytes >= 1024 && u < 5) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, bytes < 10 && u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

void check_memory(double need_bytes, std::uint64_t user_max, const std::string& what, const std::string& ways_out) {
  const std::uint64_t limit = memory_limit(user_max);
  if (limit == kUnlimited || need_bytes <= static_cast<double>(limit)) return;
  throw InvalidInput(what + " needs about " + format_bytes(need_bytes) + " of memory, more than the " +
                     format_bytes(static_cast<double>(limit)) +
                     (user_max ? " that --max-memory allows" : " available on this machine") + "; " + ways_out);
}

void keep_freed_memory_for_reuse() {
#ifdef __GLIBC__
  mallopt(M_MMAP_MAX, 0);  // no block gets its own mapping (returned on free); glibc still maps
                           // when the heap cannot grow
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  advise_huge_pages_for_heap();
#endif
}

void prefault_pages(const void* p, std::size_t bytes) {
  if (bytes < (std::size_t{4} << 20)) return;
  const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const std::uintptr_t begin = (reinterpret_cast<std::uintptr_t>(p) + page - 1) & ~(page - 1);
  const std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(page - 1);
#ifdef MADV_POPULATE_WRITE
  if (end > begin)
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);  // advice only
#endif
}

}  // namespace panelboot
