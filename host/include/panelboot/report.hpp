#pragma once
// Rendering fit results: readable text, JSON (the field names are a contract), Markdown,
// LaTeX and CSV; and atomic file output.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "panelboot/estimate.hpp"

namespace panelboot {

enum class Format { kText, kJson, kMarkdown, kLatex, kCsv };
Format parse_format(const std::string& s);

nlohmann::json fit_json(const std::vector<FitResult>& models);
std::string render_fit(const std::vector<FitResult>& models, Format fmt);

struct WildResult;
struct WildOptions;
nlohmann::json wild_json(const WildResult& w, const WildOptions& wo);
std::string render_wild(const WildResult& w, const WildOptions& wo, Format fmt);

// Writes `content` to `path` through a temporary file in the same folder and a rename, so a
// failed run never leaves a partial file.
void write_file_atomic(const std::string& path, const std::string& content);

extern const char* const kSimulatedNote;

}  // namespace panelboot
