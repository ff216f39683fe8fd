// rows_per_level (declared in within.hpp): the within transform's level weights and the design's
// singleton counts both use it, so it stands apart from within.cpp among the input sources that
// the fuzzers build (PB_INPUT_SOURCES).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "panelboot/within.hpp"

namespace panelboot {

std::vector<std::uint32_t> rows_per_level(const std::int32_t* code, std::size_t n,
                                          std::int32_t n_levels) {
  const std::size_t L = static_cast<std::size_t>(n_levels);
  const std::size_t lanes =
      4 * L <= n + 1024 ? 4 : 1;  // four tallies only where they are small beside the rows
  std::vector<std::uint32_t> tally(lanes * L, 0);
  std::uint32_t* t = tally.data();
  std::size_t i = 0;
  if (lanes == 4)
    for (; i + 4 <= n; i += 4) {
      ++t[static_cast<std::size_t>(code[i])];
      ++t[L + static_cast<std::size_t>(code[i + 1])];
      ++t[2 * L + static_cast<std::size_t>(code[i + 2])];
      ++t[3 * L + static_cast<std::size_t>(code[i + 3])];
    }
  for (; i < n; ++i) ++t[static_cast<std::size_t>(code[i])];
  for (std::size_t lane = 1; lane < lanes; ++lane)
    for (std::size_t g = 0; g < L; ++g) t[g] += t[lane * L + g];
  tally.resize(L);
  return tally;
}

}  // namespace panelboot
