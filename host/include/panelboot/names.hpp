#pragma once
// One name <-> value table per enumerated option. The CLI checks and converts with it and lists
// the choices in --help from it; reports print the same names; the engine's boundary validates a
// name once (value_of), with a message naming the quantity (the CLI adds the flag's spelling).
// In a table the first entry of a value is its name; later entries of the same value are
// accepted aliases (md for markdown).
#include <array>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "panelboot/backend.hpp"
#include "panelboot/error.hpp"
#include "panelboot/estimate.hpp"
#include "panelboot/report.hpp"
#include "panelboot/wild.hpp"

namespace panelboot {

template <class E>
struct Named {
  E value;
  std::string_view name;
};

template <class E, std::size_t N>
using NameTable = std::array<Named<E>, N>;

// The name of v (its first entry).
template <class E, std::size_t N>
std::string name_of(const NameTable<E, N>& table, E v) {
  for (const Named<E>& e : table)
    if (e.value == v) return std::string(e.name);
  throw std::logic_error("a value without a name in its table");
}

// The names, aliases included (what is accepted).
template <class E, std::size_t N>
std::vector<std::string> accepted_names(const NameTable<E, N>& table) {
  std::vector<std::string> out;
  for (const Named<E>& e : table) out.emplace_back(e.name);
  return out;
}

// The names without aliases, in table order (what is offered).
template <class E, std::size_t N>
std::vector<std::string> names_of(const NameTable<E, N>& table) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < N; ++i) {
    bool alias = false;
    for (std::size_t j = 0; j < i; ++j) alias = alias || table[j].value == table[i].value;
    if (!alias) out.emplace_back(table[i].name);
  }
  return out;
}

// "a | b | c", the choices as --help lists them
template <class E, std::size_t N>
std::string choices(const NameTable<E, N>& table) {
  std::string out;
  for (const std::string& n : names_of(table)) out += (out.empty() ? "" : " | ") + n;
  return out;
}

// "a, b or c"
inline std::string choice_list(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return out;
}

// The value named `name`; InvalidInput "<quantity> 'x': choose a, b or c" when none is.
template <class E, std::size_t N>
E value_of(const NameTable<E, N>& table, std::string_view name, std::string_view quantity) {
  for (const Named<E>& e : table)
    if (e.name == name) return e.value;
  throw InvalidInput(std::string(quantity) + " '" + std::string(name) + "': choose " + choice_list(names_of(table)));
}

inline constexpr NameTable<Format, 7> kFormatNames{{{Format::kText, "text"},
                                                    {Format::kJson, "json"},
                                                    {Format::kMarkdown, "markdown"},
                                                    {Format::kLatex, "latex"},
                                                    {Format::kCsv, "csv"},
                                                    {Format::kMarkdown, "md"},
                                                    {Format::kLatex, "tex"}}};
inline constexpr NameTable<Device, 3> kDeviceNames{{{Device::kAuto, "auto"}, {Device::kCpu, "cpu"}, {Device::kCuda, "cuda"}}};
inline constexpr NameTable<WeightType, 5> kWeightTypeNames{{{WeightType::kRademacher, "rademacher"},
                                                            {WeightType::kMammen, "mammen"},
                                                            {WeightType::kWebb, "webb"},
                                                            {WeightType::kNormal, "normal"},
                                                            {WeightType::kGamma, "gamma"}}};
inline constexpr NameTable<PValueType, 4> kPValueTypeNames{{{PValueType::kSymmetric, "symmetric"},
                                                            {PValueType::kEqualTailed, "equal-tailed"},
                                                            {PValueType::kLower, "lower"},
                                                            {PValueType::kUpper, "upper"}}};
inline constexpr NameTable<Enumerate, 3> kEnumerateNames{
    {{Enumerate::kAuto, "auto"}, {Enumerate::kAlways, "always"}, {Enumerate::kNever, "never"}}};
inline constexpr NameTable<Ties, 2> kTiesNames{{{Ties::kStrict, "strict"}, {Ties::kInclusive, "inclusive"}}};
inline constexpr NameTable<PAdjust, 3> kPAdjustNames{
    {{PAdjust::kNone, "none"}, {PAdjust::kBonferroni, "bonferroni"}, {PAdjust::kSidak, "sidak"}}};
inline constexpr NameTable<VcovType, 4> kVcovNames{
    {{VcovType::kIid, "iid"}, {VcovType::kHc1, "hc1"}, {VcovType::kCluster, "cluster"}, {VcovType::kDk, "dk"}}};
inline constexpr NameTable<DofFe, 2> kDofFeNames{{{DofFe::kNested, "nested"}, {DofFe::kAll, "all"}}};
inline constexpr NameTable<MultiwayAdj, 2> kMultiwayAdjNames{{{MultiwayAdj::kMin, "min"}, {MultiwayAdj::kEach, "each"}}};

}  // namespace panelboot
