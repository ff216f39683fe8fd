#pragma once
// Memory estimated before it is allocated: a run whose estimate exceeds what the machine (or
// its cgroup, or --max-memory) can give is refused up front with the estimate and the ways out.
#include <cstdint>
#include <string>

namespace panelboot {

// "512M", "4G", "1.5G", "2T", "1000000" (bytes; K/M/G/T are powers of 1024, an optional B or
// iB after them). Throws InvalidInput naming --max-memory on anything else.
std::uint64_t parse_memory_size(const std::string& text);

// What this process may still allocate: min(MemAvailable, the cgroup's memory.max less its
// memory.current), or `user_max` when given (non-zero).
std::uint64_t memory_limit(std::uint64_t user_max);

// "1.5 GB", "640 MB", "12 KB"
std::string format_bytes(double bytes);

// Throws InvalidInput "<what> needs about X of memory, more than the Y available[ (--max-memory)];
// <ways_out>" when need > memory_limit(user_max).
void check_memory(double need_bytes, std::uint64_t user_max, const std::string& what,
                  const std::string& ways_out);

}  // namespace panelboot
