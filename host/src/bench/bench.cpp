// `panelboot bench`'s runs (panelboot/bench.hpp): each workload prepared once, then on each
// backend one cold run and `repeats` warm ones; the median's rate against the limit of the bound
// that applies (roofline: the larger of FLOPs / peak and bytes / bandwidth), and each GPU run's
// results checked against the CPU's.
#include "panelboot/bench.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <ostream>

#include "panelboot/error.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/text.hpp"
#include "panelboot/timing.hpp"
#include "workloads.hpp"

namespace panelboot {
namespace {

constexpr std::size_t kCopyBytes = std::size_t{256} << 20;  // each of the copy's two arrays
constexpr std::size_t kMinCopyBytes = std::size_t{16} << 20;  // still past most last-level caches per core

double seconds_of(const std::function<void()>& f) {
  const auto t0 = Clock::now();
  f();
  return seconds_since(t0);
}

std::string seconds_text(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g s", s);
  return b;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

// The median, fastest and slowest of the warm runs.
double median_of(std::vector<double> t) {
  std::sort(t.begin(), t.end());
  const std::size_t m = t.size();
  return m % 2 ? t[m / 2] : 0.5 * (t[m / 2 - 1] + t[m / 2]);
}

void summarize_runs(BenchCase& c) {
  c.seconds = median_of(c.runs);
  c.seconds_min = *std::min_element(c.runs.begin(), c.runs.end());
  c.seconds_max = *std::max_element(c.runs.begin(), c.runs.end());
}

// Roofline: the bound is the resource whose limit the work needs longer on; the achieved rate is
// that resource's, at the median time.
void place_on_roofline(BenchCase& c, const MachineLimits& m) {
  const double t_compute = m.fp64_flops > 0 ? c.flops / m.fp64_flops : 0;
  const double t_memory = m.bytes_per_s > 0 ? c.bytes / m.bytes_per_s : 0;
  const bool memory = t_memory > t_compute;
  c.bound = memory ? "memory" : "compute";
  c.unit = memory ? "B/s" : "FLOP/s";
  c.limit = memory ? m.bytes_per_s : m.fp64_flops;
  c.achieved = c.seconds > 0 ? (memory ? c.bytes : c.flops) / c.seconds : 0;
  c.fraction_of_limit = c.limit > 0 ? c.achieved / c.limit : 0;
}

// This backend's results against the CPU's: bit for bit, or within the workload's tolerance.
// (Also two runs on one backend, `cpu` the first.)
std::string agreement(const std::vector<double>& cpu, const std::vector<double>& other, double tol) {
  if (cpu.size() != other.size()) return "DIFFERS from cpu (" + std::to_string(other.size()) + " results, cpu " +
                                         std::to_string(cpu.size()) + ")";
  double worst = 0;
  bool identical = true;
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    const bool same = cpu[i] == other[i] || (std::isnan(cpu[i]) && std::isnan(other[i]));
    identical = identical && same;
    if (!same) worst = std::max(worst, std::fabs(cpu[i] - other[i]) / std::max(1.0, std::fabs(cpu[i])));
  }
  if (identical) return "identical to cpu";
  char b[96];
  std::snprintf(b, sizeof b, "%.1e of cpu", worst);
  if (tol > 0 && worst <= tol) return std::string("within ") + b;
  return std::string("DIFFERS: ") + b;
}

struct OpenBackend {
  std::string name;
  std::unique_ptr<Backend> backend;
  MachineLimits limits;
};

std::vector<OpenBackend> open_backends(const BenchOptions& o, BenchReport& rep, std::ostream* progress) {
  // the CPU first, so that every GPU row is checked against it
  const bool all = o.backends.empty();
  std::vector<std::string> want;
  for (const char* name : {"cpu", "cuda"})
    if (all || std::find(o.backends.begin(), o.backends.end(), name) != o.backends.end()) want.push_back(name);
  std::vector<OpenBackend> out;
  for (const std::string& name : want) {
    OpenBackend b;
    b.name = name;
    if (name == "cpu") {
      b.backend = make_backend(Device::kCpu);
      b.limits = rep.cpu;
    } else {
      std::string why;
      if (cuda::usable_devices(why) == 0) {
        rep.notes.push_back("cuda: not run: " + why);
        if (!all) throw InvalidInput("--backends cuda: " + why);
        continue;
      }
      const double s = seconds_of([&] { b.backend = make_backend(Device::kCuda); });
      b.limits = b.backend->limits();
      rep.gpus.push_back(b.limits);
      rep.notes.push_back("cuda: " + b.backend->describe() + ", made in " + seconds_text(s));
    }
    if (progress) *progress << "bench: on " << (name == "cpu" ? "the CPU" : b.backend->describe()) << "\n";
    rep.backends.push_back(name);
    out.push_back(std::move(b));
  }
  return out;
}

void run_case(const bench::Workload& w, OpenBackend& be, int repeats, BenchCase& c) {
  c.problem = w.problem;
  c.backend = be.name;
  c.ladder = w.ladder;
  c.ladder_value = w.ladder_value;
  c.size = w.size;
  c.replications = w.replications;
  c.replication_unit = w.replication_unit;
  c.model = w.model;
  c.tolerance = w.tolerance;
  bench::RunOutcome first;
  c.cold_seconds = seconds_of([&] { first = w.run(*be.backend); });
  std::vector<double> device_runs;
  for (int r = 0; r < repeats; ++r) {
    bench::RunOutcome again;
    c.runs.push_back(seconds_of([&] { again = w.run(*be.backend); }));
    device_runs.push_back(again.device_s);
    const std::string same = agreement(first.signature, again.signature, w.tolerance);
    if (same.rfind("DIFFERS", 0) == 0)
      throw std::runtime_error("bench: " + w.problem + " (" + w.size + ") on " + be.name +
                               " gave different results in two runs of one process (" + same + ")");
  }
  summarize_runs(c);
  c.signature = first.signature;
  c.flops = first.flops;
  c.bytes = first.bytes;
  if (first.ladder_value > 0) c.ladder_value = first.ladder_value;
  c.reps_per_s = c.seconds > 0 ? c.replications / c.seconds : 0;
  place_on_roofline(c, be.limits);
  if (!device_runs.empty() && first.device_s > 0) {
    c.device_seconds = median_of(device_runs);
    if (be.limits.bytes_per_s > 0) c.device_floor_seconds = c.bytes / be.limits.bytes_per_s;
  }
  if (first.host_bytes > 0 && be.limits.host_to_device_bytes_per_s > 0)
    c.transfer_floor_seconds = first.host_bytes / be.limits.host_to_device_bytes_per_s;
}

}  // namespace

const std::vector<std::string>& bench_problem_names() {
  static const std::vector<std::string> names = {"wild",  "wild-enum", "threshold", "ols-batch",
                                                 "power", "iv-wre",    "fit",       "csv"};
  return names;
}

void check_bench_options(const BenchOptions& o) {
  const auto& names = bench_problem_names();
  for (const auto* list : {&o.problems, &o.backends}) {
    const std::string flag = list == &o.problems ? "--problems" : "--backends";
    for (std::size_t i = 0; i < list->size(); ++i) {
      if ((*list)[i].empty()) throw InvalidInput(flag + ": an empty name in the list");
      if (std::find(list->begin(), list->begin() + static_cast<std::ptrdiff_t>(i), (*list)[i]) != list->begin() + static_cast<std::ptrdiff_t>(i))
        throw InvalidInput(flag + ": " + quoted((*list)[i]) + " is named twice");
    }
  }
  for (const std::string& p : o.problems)
    if (std::find(names.begin(), names.end(), p) == names.end()) {
      std::string list;
      for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
      const std::string near = nearest_name(p, names);
      throw InvalidInput("--problems: unknown problem " + quoted(p) + (near.empty() ? "" : "; did you mean '" + near + "'?") +
                         " (choose from " + list + ")");
    }
  for (const std::string& b : o.backends)
    if (b != "cpu" && b != "cuda")
      throw InvalidInput("--backends: unknown backend " + quoted(b) + " (choose from cpu, cuda)");
  const bool cpu = o.backends.empty() || std::find(o.backends.begin(), o.backends.end(), "cpu") != o.backends.end();
  for (const std::string& p : o.problems)
    if (!cpu && !bench::workloads_of(p, true, 0).front().gpu_capable)
      throw InvalidInput("--problems " + p + " runs on the CPU only; add cpu to --backends");
}

BenchReport run_bench(const BenchOptions& o) {
  check_bench_options(o);
  const auto t0 = Clock::now();
  BenchReport rep;
  rep.date = utc_now();
  rep.quick = o.quick;
  rep.repeats = o.repeats;
  rep.threads = o.threads;
  rep.problems = o.problems.empty() ? bench_problem_names() : o.problems;
  // the copy's arrays: 256 MB each, less under a smaller --max-memory (a quarter of it each)
  const std::size_t copy = o.max_memory ? std::clamp<std::size_t>(o.max_memory / 4, kMinCopyBytes, kCopyBytes) : kCopyBytes;
  check_memory(2.0 * static_cast<double>(copy), o.max_memory, "the bench's memory-bandwidth copy",
               "free memory, or give a larger --max-memory");
  rep.cpu = cpu_limits(o.threads, copy);
  std::vector<OpenBackend> backends = open_backends(o, rep, o.progress);
  for (const std::string& problem : rep.problems) {
    for (const bench::Workload& w : bench::workloads_of(problem, o.quick, o.max_memory)) {
      check_memory(w.memory_bytes, o.max_memory, "bench problem " + w.problem + " (" + w.size + ")",
                   "leave the problem out with --problems, use --quick, or free memory");
      w.prepare(*backends.back().backend);  // the GPU's memory when one runs
      const BenchCase* cpu_case = nullptr;
      for (OpenBackend& be : backends) {
        if (be.name != "cpu" && !w.gpu_capable) continue;
        BenchCase c;
        run_case(w, be, o.repeats, c);
        if (be.name == "cpu") {
          rep.results.push_back(c);
          cpu_case = &rep.results.back();
        } else {
          if (cpu_case) {
            c.check = agreement(cpu_case->signature, c.signature, c.tolerance);
            c.cpu_over_this = c.seconds > 0 ? cpu_case->seconds / c.seconds : 0;
          }
          rep.results.push_back(c);
          cpu_case = nullptr;  // the vector may have moved; one GPU backend at most
        }
        const BenchCase& done = rep.results.back();
        if (o.progress)
          *o.progress << "bench: " << done.problem << " " << done.size << " on " << done.backend << ": "
                      << seconds_text(done.seconds) << " (cold " << seconds_text(done.cold_seconds) << ")"
                      << (done.check.empty() ? "" : ", " + done.check) << "\n";
      }
      w.release();
    }
  }
  rep.total_seconds = seconds_since(t0);
  return rep;
}

}  // namespace panelboot
