// `panelboot bench`'s report: a table (text) or JSON. The JSON's results[] fields problem,
// backend, seconds, reps_per_s, achieved, limit, fraction_of_limit and bound are a contract
// (scripts/bench-results reads them).
#include <cmath>
#include <map>
#include <sstream>

#include "format.hpp"
#include "panelboot/bench.hpp"
#include "panelboot/report.hpp"

namespace panelboot {
namespace {

using nlohmann::json;
using report::fmt_num;
using report::num_or_null;

json limits_json(const MachineLimits& m) {
  return {{"device", m.device},
          {"name", m.name},
          {"units", m.units},
          {"fp64_lanes", m.fp64_lanes},
          {"clock_hz", m.clock_hz},
          {"clock_source", m.clock_source},
          {"fp64_flops", m.fp64_flops},
          {"fp64_flops_measured", m.fp64_flops_measured > 0 ? json(m.fp64_flops_measured) : json()},
          {"fp64_source",
           m.fp64_source.empty() ? "the model: units x lanes x 2 x clock" : m.fp64_source},
          {"bytes_per_s", m.bytes_per_s},
          {"bytes_source", m.bytes_source},
          {"host_to_device_bytes_per_s",
           m.host_to_device_bytes_per_s > 0 ? json(m.host_to_device_bytes_per_s) : json()},
          {"host_to_device_source", m.host_to_device_source}};
}

// "1.23 GFLOP/s", "4.8 TB/s"
std::string rate_text(double v, const std::string& unit) {
  static const char* const prefix[] = {"", "K", "M", "G", "T", "P"};
  int p = 0;
  while (std::fabs(v) >= 1000 && p < 5) {
    v /= 1000;
    ++p;
  }
  return fmt_num("%.3g", v) + " " + prefix[p] + (unit == "B/s" ? "B/s" : "FLOP/s");
}

// A GPU case's kernels against the device's floor and the whole call against the transfer
// floor, where the workload reports them ("" otherwise).
std::string floors_text(const BenchCase& c) {
  std::string t;
  if (c.device_seconds > 0 && c.device_floor_seconds > 0)
    t += "; kernels " + fmt_num("%.3g", c.device_seconds) +
         " s = " + fmt_num("%.2f", c.device_seconds / c.device_floor_seconds) +
         "x the device floor " + fmt_num("%.3g", c.device_floor_seconds) + " s";
  if (c.transfer_floor_seconds > 0)
    t += "; the whole call " + fmt_num("%.2f", c.seconds / c.transfer_floor_seconds) +
         "x the transfer floor " + fmt_num("%.3g", c.transfer_floor_seconds) +
         " s (pinned host to device)";
  return t;
}

std::string verdict(const BenchCase& c, const std::string& device) {
  const std::string what = c.bound == "memory" ? (device == "cpu" ? "the measured copy bandwidth" : "the memory bandwidth")
                                               : "the FP64 peak";
  return c.bound + "-bound: " + fmt_num("%.1f", 100 * c.fraction_of_limit) + "% of " + what + " (" +
         rate_text(c.achieved, c.unit) + " of " + rate_text(c.limit, c.unit) + ")" + floors_text(c);
}

json case_json(const BenchCase& c) {
  json runs = json::array();
  for (double s : c.runs) runs.push_back(s);
  json values = json::array();  // what the run computed (counts, p-values, sums), compared across backends
  for (double v : c.signature) values.push_back(num_or_null(v));
  return {
      {"problem", c.problem},
      {"backend", c.backend},
      {"size", c.size},
      {"ladder", c.ladder},
      {"ladder_value", c.ladder_value},
      {"replications", c.replications},
      {"replication_unit", c.replication_unit},
      {"seconds", c.seconds},
      {"seconds_min", c.seconds_min},
      {"seconds_max", c.seconds_max},
      {"cold_seconds", c.cold_seconds},
      {"runs", runs},
      {"reps_per_s", c.reps_per_s},
      {"flops", c.flops},
      {"bytes", c.bytes},
      {"model", c.model},
      {"bound", c.bound},
      {"achieved", c.achieved},
      {"limit", c.limit},
      {"unit", c.unit},
      {"fraction_of_limit", c.fraction_of_limit},
      {"verdict", verdict(c, c.backend)},
      {"values", values},
      {"check", c.check.empty() ? json() : json(c.check)},
      {"cpu_over_this", c.cpu_over_this > 0 ? json(c.cpu_over_this) : json()},
      {"device_seconds", c.device_seconds > 0 ? json(c.device_seconds) : json()},
      {"device_floor_seconds", c.device_floor_seconds > 0 ? json(c.device_floor_seconds) : json()},
      {"transfer_floor_seconds",
       c.transfer_floor_seconds > 0 ? json(c.transfer_floor_seconds) : json()}};
}

std::string machine_line(const MachineLimits& m) {
  std::ostringstream s;
  s << m.name << ": " << m.units << (m.device == "cpu" ? " cores" : " SMs") << " x " << m.fp64_lanes
    << " FP64 " << (m.device == "cpu" ? "lanes" : "units") << " x 2 x "
    << fmt_num("%.3g", m.clock_hz / 1e9) << " GHz (" << m.clock_source
    << ") = " << rate_text(fp64_model_flops(m), "FLOP/s");
  if (m.fp64_flops_measured > 0) s << ", measured " << rate_text(m.fp64_flops_measured, "FLOP/s");
  s << ": " << rate_text(m.fp64_flops, "FLOP/s") << " peak; memory "
    << rate_text(m.bytes_per_s, "B/s") << " (" << m.bytes_source << ")";
  if (m.host_to_device_bytes_per_s > 0)
    s << "; host to device " << rate_text(m.host_to_device_bytes_per_s, "B/s") << " ("
      << m.host_to_device_source << ")";
  return s.str();
}

std::string pad(const std::string& s, std::size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }
std::string lpad(const std::string& s, std::size_t w) { return s.size() >= w ? s : std::string(w - s.size(), ' ') + s; }

std::string render_text(const BenchReport& r) {
  std::ostringstream o;
  o << "panelboot bench" << (r.quick ? " --quick" : "") << "  (" << r.date << "; warm: "
    << (r.repeats > 1 ? "the median of " + std::to_string(r.repeats) + " runs" : std::string("one run"))
    << " after a cold one; " << fmt_num("%.0f", r.total_seconds) << " s in all)\n";
  o << "CPU  " << machine_line(r.cpu) << "\n";
  for (const MachineLimits& g : r.gpus) o << "GPU  " << machine_line(g) << "\n";
  for (const std::string& n : r.notes) o << "note: " << n << "\n";
  o << "\n"
    << pad("problem", 10) << pad("size", 52) << pad("backend", 8) << lpad("median s", 11) << lpad("min-max s", 22)
    << lpad("cold s", 11) << lpad("per s", 10) << lpad("% limit", 8) << "  " << pad("bound", 8) << "check\n";
  for (const BenchCase& c : r.results) {
    o << pad(c.problem, 10) << pad(c.size, 52) << pad(c.backend, 8) << lpad(fmt_num("%.4g", c.seconds), 11)
      << lpad(fmt_num("%.4g", c.seconds_min) + "-" + fmt_num("%.4g", c.seconds_max), 22)
      << lpad(fmt_num("%.4g", c.cold_seconds), 11) << lpad(fmt_num("%.3g", c.reps_per_s), 10)
      << lpad(fmt_num("%.1f", 100 * c.fraction_of_limit), 8) << "  " << pad(c.bound, 8)
      << (c.check.empty() ? "" : c.check)
      << (c.cpu_over_this > 0 ? "; cpu/" + c.backend + " " + fmt_num("%.1f", c.cpu_over_this) + "x" : "") << "\n";
  }
  o << "\nverdicts (the largest size of each problem and backend):\n";
  std::map<std::pair<std::string, std::string>, const BenchCase*> last;
  std::vector<std::pair<std::string, std::string>> order;
  for (const BenchCase& c : r.results) {
    const auto key = std::make_pair(c.problem, c.backend);
    if (!last.count(key)) order.push_back(key);
    last[key] = &c;
  }
  for (const auto& key : order) {
    const BenchCase& c = *last[key];
    o << "  " << pad(c.problem + " on " + c.backend, 22) << verdict(c, c.backend) << "\n";
  }
  return o.str();
}

}  // namespace

nlohmann::json bench_json(const BenchReport& r) {
  json results = json::array();
  for (const BenchCase& c : r.results) results.push_back(case_json(c));
  json gpus = json::array();
  for (const MachineLimits& g : r.gpus) gpus.push_back(limits_json(g));
  return {{"command", "bench"},
          {"date", r.date},
          {"command_line", r.command_line},
          {"quick", r.quick},
          {"repeats", r.repeats},
          {"threads", r.threads},
          {"total_s", r.total_seconds},
          {"machine", {{"cpu", limits_json(r.cpu)}, {"gpus", gpus}}},
          {"backends", r.backends},
          {"problems", r.problems},
          {"notes", r.notes},
          {"results", results}};
}

std::string render_bench(const BenchReport& r, Format fmt) {
  if (fmt == Format::kJson) return bench_json(r).dump(2) + "\n";
  return render_text(r);
}

}  // namespace panelboot
