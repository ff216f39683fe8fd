#pragma once
// The bodies of the fuzz targets, shared by the libFuzzer drivers (fuzz/fuzz_*.cpp) and the
// regression test (tests/unit/test_fuzz_regressions.cpp), so that a saved input replays through
// exactly the code that found it. Each feeds one input to a reader or parser and then uses what
// came back. A panelboot::Error is a correct outcome and propagates to the caller; a result that
// breaks an invariant (a column shorter than the frame, a level code out of range, a design whose
// sizes disagree) throws Finding, which is not a panelboot::Error.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace panelboot::fuzz {

struct Finding : std::logic_error {
  using std::logic_error::logic_error;
};

// CSV text through read_csv_text (delimiter detected), once with the fast path for plain numeric
// records, once with them read ahead in three stretches cut at newlines, and once with every
// record through the tokenizer: the same frame or the same error; then
// its first two columns as a grouping (group_codes) and as the panel index (--panel id,time, lags
// and leads).
void csv(const std::uint8_t* data, std::size_t size);
// One reading of CSV text as a string that two readings share exactly when they give the same frame
// (every field readers fill, values bit for bit, NaN as one) or the same error ("error: ..."; a
// text column's type shows as "\x1fs"): with the fast path for plain numeric records, or without;
// the plain records read ahead in `stretches` stretches cut at newlines, however short.
std::string csv_reading(const std::string& text, bool plain_records, std::size_t stretches = 1);
// A .dta file through read_dta: the bytes are written to a memfd and read through its
// /proc/self/fd/N path, so the reader runs unchanged (it takes a path).
void dta(const std::uint8_t* data, std::size_t size);
// Throws panelboot::Error where read_dta cannot run at all (a build without ReadStat, or the
// library not loadable): every input would then end in that one error and fuzz nothing.
void require_dta_reader();
// A formula through parse_formula, then build_design on a small built-in panel (--panel id,year,
// --cluster id, the time dimension), so lags, i(), interactions and FE run too.
void formula(const std::uint8_t* data, std::size_t size);
// A --where expression through parse_expression, then evaluate on the small panel (without and
// with the panel index, as describe and fit do), on a frame with no rows, and as build_design's
// --where with a fixed formula.
void where(const std::uint8_t* data, std::size_t size);

using Entry = void (*)(const std::uint8_t*, std::size_t);
// The entry of a target by name (csv, dta, formula, where); nullptr if unknown.
Entry entry(const std::string& target);

}  // namespace panelboot::fuzz
