#pragma once
// Wall-clock seconds between two moments of a run: the stages of the reports' `timing`, the
// replication blocks' pacing, and `panelboot bench`'s runs.
#include <chrono>

namespace panelboot {

using Clock = std::chrono::steady_clock;

// Seconds from `from` to `to`.
inline double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}
// Seconds from `from` to now.
inline double seconds_since(Clock::time_point from) { return seconds_between(from, Clock::now()); }

}  // namespace panelboot
