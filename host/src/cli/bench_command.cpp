// `panelboot bench`: the core workloads at a ladder of sizes on every available backend, timed,
// with the fraction of the machine's limit each reaches (panelboot/bench.hpp).
#include "options.hpp"

#include "panelboot/bench.hpp"
#include <stdexcept>

#include "panelboot/error.hpp"

namespace panelboot::cli {
namespace {

struct BenchFlags {
  bool quick = false;
  std::string backends, problems;
  int repeats = 3;
  CLI::Option* backends_option = nullptr;
  CLI::Option* problems_option = nullptr;
};

// A list option that was given must name something ("--problems ,," is not "every problem").
std::vector<std::string> given_list(const std::string& text, const CLI::Option* opt, const std::string& flag) {
  std::vector<std::string> names = split_list(text);
  if (opt->count() > 0 && names.empty()) throw InvalidInput(flag + ": an empty list; name at least one, or leave " + flag + " out for all");
  return names;
}

int cmd_bench(const CommonOptions& o, const BenchFlags& f, std::ostream& out, std::ostream& err,
              std::ostream& terminal) {
  check_paths(o);
  apply_threads(o.threads, err);
  BenchOptions bo;
  bo.quick = f.quick;
  bo.backends = given_list(f.backends, f.backends_option, "--backends");
  bo.problems = given_list(f.problems, f.problems_option, "--problems");
  bo.repeats = f.repeats;
  bo.threads = threads_in_use();
  bo.max_memory = max_memory_bytes(o);
  bo.progress = &terminal;
  BenchReport rep = run_bench(bo);  // checks the options first
  rep.command_line = "panelboot bench" + std::string(f.quick ? " --quick" : "") +
                     (f.backends.empty() ? "" : " --backends " + f.backends) +
                     (f.problems.empty() ? "" : " --problems " + f.problems) +
                     (f.repeats != 3 ? " --repeats " + std::to_string(f.repeats) : "") +
                     (o.threads ? " --threads " + std::to_string(o.threads) : "") +
                     (o.max_memory.empty() ? "" : " --max-memory " + o.max_memory) +
                     (o.format != "text" ? " --format " + o.format : "") +
                     (o.output.empty() ? "" : " --output " + o.output);
  deliver(render_bench(rep, value_of(kFormatNames, o.format, "--format")), o, out);
  // a GPU that computes other numbers than the CPU is a defect: the report is kept, the run fails
  for (const BenchCase& c : rep.results)
    if (c.check.rfind("DIFFERS", 0) == 0)
      throw std::runtime_error("bench: " + c.problem + " (" + c.size + ") on " + c.backend +
                               " differs from the CPU's results: " + c.check + " (the report was written)");
  return 0;
}

}  // namespace

Command register_bench(CLI::App& app) {
  auto o = std::make_shared<CommonOptions>();
  auto f = std::make_shared<BenchFlags>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Time the core workloads (wild bootstrap drawn and enumerated, threshold bootstrap, batched "
               "OLS, power, IV/WRE, fit) at a ladder of sizes on each backend, against the machine's limits");
  cmd->add_flag("--quick", f->quick, "The short ladders (under 3 minutes on 2 cores)");
  f->backends_option = cmd->add_option("--backends", f->backends, "cpu, cuda or cpu,cuda (default: every available one)");
  std::string names;
  for (const std::string& n : bench_problem_names()) names += (names.empty() ? "" : ",") + n;
  f->problems_option = cmd->add_option("--problems", f->problems, "A list of " + names + " (default: all)");
  cmd->add_option("--repeats", f->repeats, "Warm runs per case after the cold one; the median is reported")
      ->check(whole_in(1, 100))
      ->capture_default_str();
  add_threads_option(cmd, *o);
  add_memory_option(cmd, *o);
  add_output_options(cmd, *o, {Format::kText, Format::kJson});
  cmd->footer(
      "Each case: its median, fastest and slowest warm run, its cold run, replications per second, and the\n"
      "FLOP/s or bytes/s its work model reaches against the CPU's peak (threads x FP64 lanes x 2 x clock)\n"
      "or the STREAM-like copy bandwidth measured in the same run (GPU: its attributes); a GPU run's results\n"
      "are checked against the CPU's. Example: panelboot bench --quick --format json --output bench.json");
  return {cmd, [o, f](const Streams& s) { return cmd_bench(*o, *f, s.out, s.notices, s.terminal); }};
}

}  // namespace panelboot::cli
