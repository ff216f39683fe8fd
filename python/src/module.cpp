// panelboot._core: the engine for Python. One entry, run(), runs a `panelboot` command in this
// process (run_cli_in_process, panelboot/cli.hpp) on columns handed over from Python: float64 and
// int64 numpy buffers are borrowed in place (never copied), text columns arrive factorized. The
// GIL is released while the command runs; SIGINT (Ctrl-C, a notebook's interrupt) is recorded and
// stops the replications at the next block. The Python side (panelboot/_api.py) builds the
// arguments and reads the JSON report.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <csignal>
#include <cstdint>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "panelboot/cli.hpp"
#include "panelboot/config.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/report.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using Array = nb::ndarray<nb::numpy, nb::ro, nb::ndim<1>, nb::device::cpu>;  // read-only views accepted
// (name, kind, values, levels): kind "f64" (float64, NaN missing), "i64" (int64, no missing) or
// "codes" (int32 codes into levels, -1 missing).
using ColumnIn = std::tuple<std::string, std::string, Array, std::vector<std::string>>;

template <class T>
const T* contiguous_data(const Array& a, const std::string& name, const char* what) {
  if (a.dtype() != nb::dtype<T>())
    throw std::invalid_argument("column '" + name + "': expected " + what + " values");
  if (a.shape(0) > 1 && a.stride(0) != 1)
    throw std::invalid_argument("column '" + name + "': its buffer is not contiguous");
  return static_cast<const T*>(a.data());
}

// The first non-finite value (inf, -inf) of a float column, kept as a CSV reader keeps it: raised
// only when the column is used. Blocks of 4096 values are tested without branches (the loop
// vectorizes: a memory-bound pass), the row found only in a block that has one.
bool is_infinite(double v) {
  std::uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return (b & 0x7fffffffffffffffULL) == 0x7ff0000000000000ULL;
}

void note_nonfinite(panelboot::Column& c, const std::string& source) {
  constexpr std::size_t kBlock = 4096;
  for (std::size_t lo = 0; lo < c.borrowed_rows; lo += kBlock) {
    const std::size_t hi = std::min(c.borrowed_rows, lo + kBlock);
    bool any = false;
    for (std::size_t r = lo; r < hi; ++r) any |= is_infinite(c.borrowed[r]);
    if (!any) continue;
    for (std::size_t r = lo; r < hi; ++r)
      if (is_infinite(c.borrowed[r])) {
        c.first_nonfinite_where = source + ", row " + std::to_string(r) + " (" + c.name + ")";
        c.first_nonfinite_value = c.borrowed[r] > 0 ? "inf" : "-inf";
        return;
      }
  }
}

panelboot::DataFrame frame_of(const std::vector<ColumnIn>& columns, const std::vector<std::string>& other_names,
                              const std::string& source, std::size_t n_rows) {
  panelboot::DataFrame df;
  df.source = source;
  df.names_not_loaded = other_names;
  df.row_unit = "row";
  df.rows_in_memory = n_rows;
  df.columns.reserve(columns.size());
  for (const auto& [name, kind, values, levels] : columns) {
    if (values.shape(0) != n_rows)
      throw std::invalid_argument("column '" + name + "' has " + std::to_string(values.shape(0)) + " rows, not " +
                                  std::to_string(n_rows));
    panelboot::Column c;
    c.name = name;
    if (kind == "f64") {
      c.borrowed = contiguous_data<double>(values, name, "float64");
      c.borrowed_rows = n_rows;
      note_nonfinite(c, source);
    } else if (kind == "i64") {
      c.borrowed_int = contiguous_data<std::int64_t>(values, name, "int64");
      c.borrowed_rows = n_rows;
    } else if (kind == "codes") {
      const std::int32_t* codes = contiguous_data<std::int32_t>(values, name, "int32 code");
      c.type = panelboot::Column::Type::kString;
      c.codes.assign(codes, codes + n_rows);
      c.levels = levels;
      for (std::int32_t k : c.codes)
        if (k < -1 || k >= static_cast<std::int64_t>(levels.size()))
          throw std::invalid_argument("column '" + name + "': a code outside its levels");
      c.n_text_fields = n_rows;
      for (std::size_t r = 0; r < n_rows; ++r)  // the example a "holds text" error shows
        if (c.codes[r] >= 0) {
          c.first_text_value = levels[static_cast<std::size_t>(c.codes[r])];
          c.first_text_where = source + ", row " + std::to_string(r) + " (" + name + ")";
          break;
        }
    } else {
      throw std::invalid_argument("column '" + name + "': unknown kind '" + kind + "'");
    }
    df.columns.push_back(std::move(c));
  }
  return df;
}

// Where a run's first byte of each borrowed column lives (the tests check that nothing was copied).
nb::dict borrowed_addresses(const panelboot::DataFrame& df) {
  nb::dict out;
  for (const panelboot::Column& c : df.columns) {
    const void* p = c.borrowed ? static_cast<const void*>(c.borrowed) : static_cast<const void*>(c.borrowed_int);
    if (p) out[c.name.c_str()] = reinterpret_cast<std::uintptr_t>(p);
  }
  return out;
}

std::mutex g_one_run;  // one command at a time: the in-process run and the thread settings are global

extern "C" void record_sigint(int sig) { panelboot::note_stop_signal(sig); }

// While it lives, SIGINT is only recorded (the run stops at its next check); the previous handler
// (Python's) comes back afterwards.
class CatchSigint {
 public:
  explicit CatchSigint(bool on) : on_(on) {
    if (!on_) return;
    struct sigaction sa {};
    sa.sa_handler = record_sigint;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_);
  }
  ~CatchSigint() {
    if (on_) ::sigaction(SIGINT, &old_, nullptr);
  }

 private:
  bool on_;
  struct sigaction old_ {};
};

// Runs `panelboot ARGS` on the columns (with_frame false: --data or the embedded data, as the
// arguments say); other_names: the data's columns not handed over (for "did you mean").
// Returns (exit status, report, text report, notices, borrowed addresses, interrupted).
std::tuple<int, std::string, std::string, std::string, nb::dict, bool> run(
    const std::vector<std::string>& args, const std::vector<ColumnIn>& columns,
    const std::vector<std::string>& other_names, const std::string& source, std::size_t n_rows, bool with_frame,
    bool text_too, bool catch_sigint) {
  panelboot::DataFrame df;
  nb::dict addresses;
  if (with_frame) {
    df = frame_of(columns, other_names, source, n_rows);
    addresses = borrowed_addresses(df);
  }
  panelboot::InProcessRun in;
  in.data = with_frame ? &df : nullptr;
  in.text_too = text_too;
  std::ostringstream out, err;
  int status = 0;
  bool interrupted = false;
  {
    nb::gil_scoped_release no_gil;
    const std::lock_guard<std::mutex> one(g_one_run);
    panelboot::reset_stop_signal();
    {
      CatchSigint sigint(catch_sigint);
      status = panelboot::run_cli_in_process(args, in, out, err);
    }
    interrupted = panelboot::stop_signal_received() == SIGINT;
    panelboot::reset_stop_signal();
  }
  return {status, out.str(), in.text, err.str(), addresses, interrupted};
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "panelboot's engine (the same code as the command line); use the panelboot package";
  panelboot::leave_signals_to_host();
  m.attr("__version__") = PANELBOOT_VERSION;
  m.attr("cuda_compiled") = static_cast<bool>(PANELBOOT_HAVE_CUDA);
  m.def("run", &run, "args"_a, "columns"_a, "other_names"_a, "source"_a, "n_rows"_a, "with_frame"_a, "text_too"_a,
        "catch_sigint"_a);
}
