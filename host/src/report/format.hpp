#pragma once
// Number formatting shared by the renderers.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

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

// A run's seconds per stage as a JSON object {"stage": seconds, ...} (the reports' `timing`)
inline nlohmann::json timing_json(const std::vector<std::pair<std::string, double>>& stages) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [stage, seconds] : stages) j[stage] = seconds;
  return j;
}

}  // namespace panelboot::report
