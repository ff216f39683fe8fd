// The command line's shared vocabulary of options and the steps every command shares
// (declared in options.hpp).
#include "options.hpp"

#include "panelboot/mpi.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <utility>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "panelboot/error.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/text.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace panelboot::cli {

// ---- numeric options: every one has a stated range, checked as it is parsed (exit 2) ----

// A whole number from lo to hi, written in full: no sign wrap ("-1" for an unsigned option), no
// trailing text, no overflow, and decimal (a transform: it hands CLI11 the number without
// leading zeros).
CLI::Validator whole_in(long long lo, long long hi) {
  const std::string range = "from " + std::to_string(lo) + " to " + std::to_string(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& s) -> std::string {
        errno = 0;
        char* end = nullptr;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || *end || errno == ERANGE || v < lo || v > hi)
          return quoted(s) + " is not a whole number " + range;
        s = std::to_string(v);  // decimal for CLI11's conversion, which reads 010 as octal
        return "";
      },
      range);
}

// A seed: 0 .. 2^64-1, as Stata's and boottest's seeds are non-negative.
CLI::Validator seed_range() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        errno = 0;
        char* end = nullptr;
        const bool digits = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
        const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
        if (!digits || errno == ERANGE) return quoted(s) + " is not a whole number from 0 to 18446744073709551615";
        s = std::to_string(v);  // decimal for CLI11's conversion, which reads 010 as octal
        return "";
      },
      "from 0 to 2^64-1");
}

// A real number in (lo, hi) or [lo, hi].
CLI::Validator real_in(double lo, double hi, bool open) {
  char buf[96];
  std::snprintf(buf, sizeof buf, open ? "strictly between %g and %g" : "from %g to %g", lo, hi);
  const std::string range = buf;
  return CLI::Validator(
      [lo, hi, open, range](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        const bool inside = open ? (v > lo && v < hi) : (v >= lo && v <= hi);
        if (s.empty() || *end || !inside) return quoted(s) + " is not a number " + range;
        return "";
      },
      range);
}

// A file name: not empty (an empty --output would silently mean standard output).
CLI::Validator file_name() {
  return CLI::Validator([](std::string& s) { return s.empty() ? std::string("give a file name, not an empty one") : std::string(); },
                        "FILE");
}

// --max-memory: a size with its range stated.
CLI::Validator memory_size() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        try {
          parse_memory_size(s);
        } catch (const Error& e) {
          return e.what();
        }
        return "";
      },
      "SIZE from 1M to 1024P");
}

// ---- the declarations ----

void add_data_option(CLI::App* app, CommonOptions& o) {
  app->add_option("--data", o.data,
                  "Data file: CSV (comma, semicolon or tab) or Stata .dta; default: the embedded "
                  "simulated stand-in of the study's panel")
      ->check(file_name());
}

void add_panel_option(CLI::App* app, CommonOptions& o, const std::string& help, bool required) {
  app->add_option("--panel", o.panel, help)->required(required);
}

void add_where_option(CLI::App* app, CommonOptions& o) {
  app->add_option("--where", o.where,
                  "Keep rows where EXPR holds, e.g. 'region == \"East\" and year >= 2015'");
}

void add_sample_options(CLI::App* app, CommonOptions& o) {
  app->add_option("--weights", o.weights, "Regression (analytic) weights, as [aw=] / weights=");
  app->add_flag("--keep-singletons", o.keep_singletons,
                "Keep singleton FE groups (xtreg/areg); by default they are dropped and counted");
  app->add_option("--fe-tol", o.fe_tol, "Relative tolerance of the FE projections")
      ->check(real_in(1e-16, 0.01, false))
      ->capture_default_str();
  app->add_option("--fe-maxiter", o.fe_maxiter, "Most sweeps of the FE projections")
      ->transform(whole_in(1, 10000000))
      ->capture_default_str();
}

void add_formula_option(CLI::App* app, CommonOptions& o, const std::string& help, bool required) {
  app->add_option("--formula,-f", o.formulas, help)->required(required);
}

void add_threads_option(CLI::App* app, CommonOptions& o) {
  app->add_option("--threads", o.threads,
                  "Worker threads (0: all cores, or under MPI the node's cores shared among its ranks; more than "
                  "the cores are reduced to them); results do not depend on it")
      ->transform(whole_in(0, kMaxThreads));
}

void add_backend_options(CLI::App* app, CommonOptions& o) {
  app->add_option("--backend", o.backend,
                  choices(kDeviceNames) + ": where replication-heavy work runs (auto: the GPU when this build has "
                  "CUDA and a device is present); results are the same on either")
      ->check(CLI::IsMember(accepted_names(kDeviceNames)));
  app->add_flag("--verbose", o.verbose, "Say on stderr which backend runs and why");
}

void add_small_option(CLI::App* app, std::string& small) {
  app->add_option("--small", small,
                  "yes (default): small-sample factors and t/F references as fixest, reghdfe and ivreg2's "
                  "'small'; no: ivreg2/ivreghdfe's default large-sample form (no factor, normal reference)")
      ->check(CLI::IsMember({"yes", "no"}));
}

void add_memory_option(CLI::App* app, CommonOptions& o) {
  app->add_option("--max-memory", o.max_memory,
                  "Most memory a run may use, e.g. 4G (default: what the machine or its cgroup has free); "
                  "runs estimated above it are refused before they start")
      ->check(memory_size());
}

void add_level_option(CLI::App* app, CommonOptions& o, const std::string& help) {
  app->add_option("--level", o.level, help)->check(real_in(0, 1, true))->capture_default_str();
}

void add_cluster_option(CLI::App* app, std::string& cluster, const std::string& help) {
  app->add_option("--cluster", cluster, help);
}

void add_cluster_convention_options(CLI::App* app, CommonOptions& o) {
  add_choice_option(app, "--dof-fe", o.dof_fe, kDofFeNames,
                    "nested: FE nested in a cluster not counted in K (xtreg, reghdfe, fixest); "
                    "all: every level counted (areg)");
  add_choice_option(app, "--multiway-adj", o.multiway_adj, kMultiwayAdjNames,
                    "min: one G_min/(G_min-1) (fixest, reghdfe); each: every term its own (sandwich)");
}

CLI::Option* add_vcov_option(CLI::App* app, std::string& vcov, const std::vector<std::string>& names,
                             const std::string& help) {
  return app->add_option("--vcov", vcov, help)->check(CLI::IsMember(names));
}

void add_dk_options(CLI::App* app, CommonOptions& o) {
  app->add_flag("--vcov-psd-fix", o.psd_fix, "Clip negative eigenvalues of a multiway variance");
  app->add_option("--dk-lag", o.dk_lag, "Driscoll-Kraay lag (default floor(T^(1/4)), as plm)")
      ->transform(whole_in(0, 100000));
}

CLI::Option* add_replications_option(CLI::App* app, std::int64_t& B, long long min_B, long long max_B,
                                      const std::string& help) {
  return app->add_option("--B", B, help)->transform(whole_in(min_B, max_B))->capture_default_str();
}

void add_monte_carlo_options(CLI::App* app, std::int64_t& R, std::int64_t& wild_B) {
  app->add_option("--R", R, "Monte Carlo replications per group and effect (power)")
      ->transform(whole_in(1, kMaxPowerR))
      ->capture_default_str();
  app->add_option("--wild-B", wild_B, "Replications of each nested wild bootstrap (power)")
      ->transform(whole_in(9, kMaxPowerWildB))
      ->capture_default_str();
}

void add_seed_option(CLI::App* app, std::uint64_t& seed) {
  app->add_option("--seed", seed, "Seed of the counter-based generator")
      ->transform(seed_range())
      ->capture_default_str();
}

void add_output_options(CLI::App* app, CommonOptions& o, const std::vector<Format>& formats) {
  std::vector<std::string> offered, accepted;
  for (const Format f : formats) offered.push_back(name_of(kFormatNames, f));
  for (const Named<Format>& e : kFormatNames)
    if (std::find(formats.begin(), formats.end(), e.value) != formats.end()) accepted.emplace_back(e.name);
  std::string help;
  for (const std::string& f : offered) help += (help.empty() ? "" : " | ") + f;
  app->add_option("--format", o.format, help)->check(CLI::IsMember(accepted))->capture_default_str();
  app->add_option("--output", o.output,
                  "Write to FILE instead of standard output (atomically; a symlink's target, a device or FIFO "
                  "in place; never over an input file)")
      ->check(file_name());
}

void add_model_options(CLI::App* app, CommonOptions& o, const std::string& formula_help) {
  add_data_option(app, o);
  add_panel_option(app, o, "Panel structure 'id,time' (needed by lags, leads and dk)", false);
  add_where_option(app, o);
  add_sample_options(app, o);
  add_threads_option(app, o);
  add_backend_options(app, o);
  add_formula_option(app, o, formula_help, false);
  add_cluster_option(app, o.cluster, "Cluster variable(s): 'a' or 'a,b' (two-way)");
  add_cluster_convention_options(app, o);
  add_level_option(app, o, "Confidence level");
}

// ---- the steps the commands share ----

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// The thread count: 0 means every core; more than the cores are reduced to them (compute-bound
// work gains nothing from more, and a typo such as --threads 1000 must not start 1000 threads).
void apply_threads(int threads, std::ostream& err) {
#ifdef _OPENMP
  const int cores = std::max(1, omp_get_num_procs());
  if (threads > cores) {
    err << "panelboot: warning: --threads " << threads << " is more than this machine's " << cores
        << " cores; using " << cores << "\n";
    threads = cores;
  }
  // MPI ranks on one node share its cores: by default each takes its part of them (at least one)
  const mpi::Session* ranks = mpi::session();
  if (threads == 0 && ranks) threads = std::max(1, cores / std::max(1, ranks->local_size()));
  if (threads > 0) omp_set_num_threads(threads);
#else
  (void)threads;
  (void)err;
#endif
}

int threads_in_use() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

std::uint64_t max_memory_bytes(const CommonOptions& o) {
  return o.max_memory.empty() ? 0 : parse_memory_size(o.max_memory);
}

namespace {

// --cluster names a variable ("none": the heteroskedastic case, no clusters).
bool has_cluster(const CommonOptions& o) { return !o.cluster.empty() && o.cluster != "none"; }

}  // namespace

// --backend as the engine's device (not given: auto).
Device requested_device(const CommonOptions& o) {
  return value_of(kDeviceNames, o.backend.empty() ? "auto" : o.backend, "--backend");
}

SampleOptions sample_options(const CommonOptions& o, bool need_time) {
  SampleOptions s;
  s.where = o.where;
  s.weights = o.weights;
  if (has_cluster(o)) s.cluster = split_list(o.cluster);
  if (!o.panel.empty()) {
    const auto p = split_list(o.panel);
    if (p.size() != 2)
      throw InvalidInput("--panel '" + o.panel + "': give the unit and time variables as 'id,time'");
    s.panel_id = p[0];
    s.panel_time = p[1];
  }
  s.keep_singletons = o.keep_singletons;
  s.need_time = need_time;
  return s;
}

FitOptions fit_options(const CommonOptions& o) {
  FitOptions f;
  std::string v = o.vcov;
  const bool have_cluster = has_cluster(o);
  if (v.empty()) v = have_cluster ? "cluster" : "iid";
  if (v == "cluster" && !have_cluster)
    throw InvalidInput("--vcov cluster needs --cluster VAR (or VAR1,VAR2)");
  if (v != "cluster" && have_cluster)
    throw InvalidInput("--cluster " + o.cluster + " was given with --vcov " + v +
                       "; drop one of them (with --cluster the default is --vcov cluster)");
  f.vcov = value_of(kVcovNames, v, "--vcov");
  f.dof_fe = value_of(kDofFeNames, o.dof_fe, "--dof-fe");
  f.multiway_adj = value_of(kMultiwayAdjNames, o.multiway_adj, "--multiway-adj");
  f.dk_lag = o.dk_lag;
  f.psd_fix = o.psd_fix;
  f.level = o.level;
  f.demean.tol = o.fe_tol;
  f.demean.max_iter = o.fe_maxiter;
  return f;
}

std::unique_ptr<Backend> open_backend(const CommonOptions& o, std::ostream& err) {
  std::unique_ptr<Backend> b = make_backend(requested_device(o));
  const bool no_gpu_for_auto = o.backend == "auto" && b->device() == Device::kCpu;
  if (o.verbose || no_gpu_for_auto) err << "panelboot: " << b->describe() << "\n";
  return b;
}

void note_host_only(const CommonOptions& o, std::ostream& err, const std::string& why_cpu) {
  std::string why;
  const Device d = resolve_device(requested_device(o), why);
  const bool no_gpu_for_auto = o.backend == "auto" && d == Device::kCpu;
  const bool gpu_unused = o.backend == "cuda";
  if (o.verbose || no_gpu_for_auto || gpu_unused)
    err << "panelboot: backend: cpu (" << (why.empty() ? "a GPU is present but not used" : why) << "); " << why_cpu
        << "\n";
}

void check_paths(const CommonOptions& o, std::vector<NamedPath> side_files) {
  side_files.insert(side_files.begin(), {"--output", o.output});
  check_output_paths(side_files, {{"--data", o.data}});
}

void deliver(PendingOutputs& files, const std::string& report, const CommonOptions& o, std::ostream& out) {
  if (o.output.empty()) {
    out << report;
    out.flush();
    if (!out) throw InvalidInput("cannot write to standard output");
  } else {
    files.add(o.output, report);
  }
  files.commit();
}

void deliver(const std::string& report, const CommonOptions& o, std::ostream& out) {
  PendingOutputs none;
  deliver(none, report, o, out);
}

void warn_serious(const FitResult& r, std::ostream& err) {
  for (const std::string& w : r.serious_warnings) err << "panelboot: warning: " << w << "\n";
}

namespace {
InProcessRun* g_in_process = nullptr;
}  // namespace

// The thread count is the process's (OpenMP's): a run's --threads must not outlive it in the host.
InProcessScope::InProcessScope(InProcessRun& run) : threads_(threads_in_use()) { g_in_process = &run; }
InProcessScope::~InProcessScope() {
  g_in_process = nullptr;
#ifdef _OPENMP
  omp_set_num_threads(threads_);
#endif
}
InProcessRun* in_process_run() { return g_in_process; }

void keep_text_report(const std::function<std::string()>& render) {
  if (g_in_process && g_in_process->text_too) g_in_process->text = render();
}

// The frame an in-process run handed over (once: a command reads its data once), else --data.
DataFrame read_input(const CommonOptions& o, std::ostream& err) {
  const bool handed_over = g_in_process && g_in_process->data && o.data.empty();
  DataFrame df = handed_over ? std::move(*std::exchange(g_in_process->data, nullptr)) : read_data(o.data);
  if (!handed_over && o.data.empty()) err << "panelboot: no --data given; using the embedded simulated dataset\n";
  for (const std::string& w : df.warnings) err << "panelboot: warning: " << printable(w, 1000) << "\n";
  return df;
}

// The backend of power's replication batches: CUDA only when --backend cuda names it (its GPU path,
// fixed_design_ols on the device, has not been verified on a GPU yet: `auto` keeps the CPU).
std::unique_ptr<Backend> power_backend(const CommonOptions& o, std::ostream& err) {
  if (requested_device(o) == Device::kCuda) return open_backend(o, err);
  std::unique_ptr<Backend> b =
      cpu::make_cpu_backend("power uses the GPU only with --backend cuda in this version (its GPU path is unverified)");
  if (o.verbose) err << "panelboot: " << b->describe() << "\n";
  return b;
}

std::string slurp_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool ScriptRun::ok() const { return spawn_error == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0; }

std::string ScriptRun::last_line() const {
  std::istringstream lines(output);
  std::string line, last;
  while (std::getline(lines, line))
    if (!line.empty()) last = line;
  return last;
}

std::string temp_file(const std::string& stem, const std::string& suffix, const std::string& what) {
  const char* dir = std::getenv("TMPDIR");
  std::string t = std::string(dir && *dir ? dir : "/tmp") + "/panelboot-" + stem + "-XXXXXX" + suffix;
  std::vector<char> buf(t.begin(), t.end());
  buf.push_back('\0');
  const int fd = ::mkstemps(buf.data(), static_cast<int>(suffix.size()));
  if (fd < 0) throw InvalidInput(what + "cannot make a temporary file in " + t + ": " + std::strerror(errno));
  ::close(fd);
  return buf.data();
}

ScriptRun run_script(const std::string& script, std::vector<std::string> args) {
  ScriptRun run;
  const std::string log = temp_file("script", "", "");
  void* slot = track_temporary(log, false);
  args.insert(args.begin(), script);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = 0;
  {
    const SignalHold hold;  // the handler knows the child before a signal can end the run
    run.spawn_error = ::posix_spawn(&pid, script.c_str(), &fa, nullptr, argv.data(), environ);
    if (run.spawn_error == 0) set_helper_process(pid);
  }
  posix_spawn_file_actions_destroy(&fa);
  if (run.spawn_error == 0)
    while (::waitpid(pid, &run.status, 0) < 0 && errno == EINTR) {
    }
  set_helper_process(0);
  run.output = slurp_file(log);
  ::unlink(log.c_str());
  untrack_temporary(slot);
  return run;
}

}  // namespace panelboot::cli
