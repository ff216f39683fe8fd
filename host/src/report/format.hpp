#pragma once
// Number formatting shared by the renderers.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace panelboot::report {

// printf-formatted number, "NA" for NaN
inline std::string fmt_num(const char* spec, double v) {
  if (v != v) return "NA";
  char b[64];
  std::snprintf(b, sizeof b, spec, v);
  return b;
}

// JSON number, or null when not finite
inline nlohmann::json num_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

}  // namespace panelboot::report
