#pragma once
// Input text that is not UTF-8. Windows and Stata <= 13 exports write Windows-1252 (Latin-1 with
// the C1 range's printable characters); such bytes would break JSON output, so a file whose text
// is not valid UTF-8 is read as Windows-1252, all of it, and the user is told once.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "panelboot/text.hpp"

namespace panelboot {

// valid_utf8 over a whole file, fast on the ASCII that makes up nearly all of a CSV: ASCII is
// skipped 8 bytes at a time, and each run of non-ASCII bytes (whole sequences, in UTF-8) checked.
inline bool is_utf8_text(std::string_view text) {
  const std::size_t n = text.size();
  const auto high = [&](std::size_t i) { return (static_cast<unsigned char>(text[i]) & 0x80) != 0; };
  for (std::size_t i = 0; i < n;) {
    for (std::uint64_t w; i + 8 <= n; i += 8) {
      std::memcpy(&w, text.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
    }
    while (i < n && !high(i)) ++i;
    const std::size_t run = i;
    while (i < n && high(i)) ++i;
    if (i > run && !valid_utf8(text.substr(run, i - run))) return false;
  }
  return true;
}

inline std::string read_as_windows1252_warning(const std::string& source) {
  return "file '" + source + "' is not UTF-8; its text was read as Windows-1252 (Latin-1)";
}

}  // namespace panelboot
