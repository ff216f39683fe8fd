#pragma once
// The command line's one vocabulary of options: each option is declared here once (name,
// range, default, help) and added by every command that takes it; the enumerated ones take
// their choices from the name tables (panelboot/names.hpp). Also the steps every command shares
// (threads, the backend line, reading the data, delivering the outputs). Only the executable
// links this (CLI11 is not a dependency of the engine library).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "panelboot/backend.hpp"
#include "panelboot/cli.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/design.hpp"
#include "panelboot/estimate.hpp"
#include "panelboot/names.hpp"
#include "panelboot/report.hpp"
#include "panelboot/timing.hpp"

namespace panelboot::cli {

// ---- validators: every numeric option has a stated range, checked as it is parsed (exit 2) ----
CLI::Validator whole_in(long long lo, long long hi);
CLI::Validator seed_range();
CLI::Validator real_in(double lo, double hi, bool open);
CLI::Validator file_name();
CLI::Validator memory_size();

constexpr long long kMaxThreads = 1024;
constexpr long long kMaxWildB = 1000000000000LL;    // 10^12
constexpr long long kMaxThresholdB = 1000000000LL;  // 10^9
constexpr long long kMaxChunk = 1LL << 24;
constexpr long long kMaxGrid = 10000000;            // 10^7 (memory is checked as well)
constexpr std::uint64_t kDefaultSeed = 20250101;
constexpr long long kMaxPowerR = 100000000LL;     // 10^8 Monte Carlo replications per group
constexpr long long kMaxPowerWildB = 999999LL;    // each nested wild bootstrap

// The options shared by the commands, as parsed.
struct CommonOptions {
  std::string data;
  std::vector<std::string> formulas;
  std::string panel, where, weights, cluster, vcov;
  int dk_lag = -1;
  std::string dof_fe = "nested", multiway_adj = "min";
  bool keep_singletons = false, psd_fix = false;
  double fe_tol = 1e-10;
  int fe_maxiter = 10000;
  double level = 0.95;
  std::string format = "text", output;
  int threads = 0;
  std::string backend;  // "" (not given: auto), auto, cpu or cuda
  bool verbose = false;
  std::string max_memory;  // "" : what the machine has
};

// ---- the declarations ----
void add_data_option(CLI::App* app, CommonOptions& o);
void add_panel_option(CLI::App* app, CommonOptions& o, const std::string& help, bool required);
void add_where_option(CLI::App* app, CommonOptions& o);
// --weights, --keep-singletons, --fe-tol, --fe-maxiter: the sample and the FE projections
void add_sample_options(CLI::App* app, CommonOptions& o);
void add_formula_option(CLI::App* app, CommonOptions& o, const std::string& help, bool required);
void add_threads_option(CLI::App* app, CommonOptions& o);
void add_backend_options(CLI::App* app, CommonOptions& o);  // --backend, --verbose
void add_memory_option(CLI::App* app, CommonOptions& o);
// --small yes|no (fit, wild): the small-sample factors or ivreg2's large-sample form.
void add_small_option(CLI::App* app, std::string& small);
void add_level_option(CLI::App* app, CommonOptions& o, const std::string& help);
void add_cluster_option(CLI::App* app, std::string& cluster, const std::string& help);
// --dof-fe, --multiway-adj: the conventions of a cluster-robust variance's small-sample factor
void add_cluster_convention_options(CLI::App* app, CommonOptions& o);
// --vcov with the command's choices (names), --vcov-psd-fix and --dk-lag only with dk
CLI::Option* add_vcov_option(CLI::App* app, std::string& vcov, const std::vector<std::string>& names,
                             const std::string& help);
void add_dk_options(CLI::App* app, CommonOptions& o);
CLI::Option* add_replications_option(CLI::App* app, std::int64_t& B, long long min_B, long long max_B,
                                      const std::string& help);
void add_seed_option(CLI::App* app, std::uint64_t& seed);
// --R and --wild-B (power, replicate): Monte Carlo replications and each nested bootstrap's
void add_monte_carlo_options(CLI::App* app, std::int64_t& R, std::int64_t& wild_B);
// The options of a command that fits one model per formula (fit, wild): data, sample, threads,
// backend, formula, clusters and their conventions, level.
void add_model_options(CLI::App* app, CommonOptions& o, const std::string& formula_help);
// --format with exactly the formats the command writes (and their aliases), and --output
void add_output_options(CLI::App* app, CommonOptions& o, const std::vector<Format>& formats);
// An enumerated option whose choices come from a name table.
template <class E, std::size_t N>
CLI::Option* add_choice_option(CLI::App* app, const std::string& flag, std::string& value,
                               const NameTable<E, N>& table, const std::string& help) {
  return app->add_option(flag, value, help)->check(CLI::IsMember(accepted_names(table)))->capture_default_str();
}

// ---- a run inside another program (run_cli_in_process, panelboot/cli.hpp) ----
// Makes `run` the current in-process run for the scope's life.
class InProcessScope {
 public:
  explicit InProcessScope(InProcessRun& run);
  ~InProcessScope();
  InProcessScope(const InProcessScope&) = delete;
  InProcessScope& operator=(const InProcessScope&) = delete;

 private:
  int threads_;  // the host's thread count, given back at the end
};
InProcessRun* in_process_run();  // null when the command line runs as a program
// Keeps the text report of an in-process run that asks for it (render is called only then).
void keep_text_report(const std::function<std::string()>& render);

// ---- the steps the commands share ----
// (Clock, seconds_between and seconds_since, for the stages in a report's `timing`: panelboot/timing.hpp.)
std::vector<std::string> split_list(const std::string& s);
// Applies --threads (0: every core; more than the cores are reduced to them, with a warning).
void apply_threads(int threads, std::ostream& err);
int threads_in_use();  // after apply_threads, reported in the JSON
// --backend as the engine's device (not given: auto).
Device requested_device(const CommonOptions& o);
std::uint64_t max_memory_bytes(const CommonOptions& o);
SampleOptions sample_options(const CommonOptions& o, bool need_time);
FitOptions fit_options(const CommonOptions& o);
// The backend of a command with replication work, named on stderr with --verbose or when
// --backend auto found no GPU.
std::unique_ptr<Backend> open_backend(const CommonOptions& o, std::ostream& err);
// The backend of power's replication batches: CUDA only when --backend cuda names it.
std::unique_ptr<Backend> power_backend(const CommonOptions& o, std::ostream& err);
// A command (or run) without replication work constructs no backend (a requested GPU is only
// checked for); with --verbose, when --backend auto found no GPU, or when a GPU was asked for,
// it says that it runs on the CPU and why.
void note_host_only(const CommonOptions& o, std::ostream& err, const std::string& why);
// Before any work: no output may overwrite --data or another output, and each must be writable.
void check_paths(const CommonOptions& o, std::vector<NamedPath> side_files = {});
// The run's outputs, written at its end and only if it succeeded: the report to --output with
// the side files already in `files` (committed together), or to `out` first (whose failure
// throws), then the side files.
void deliver(PendingOutputs& files, const std::string& report, const CommonOptions& o, std::ostream& out);
void deliver(const std::string& report, const CommonOptions& o, std::ostream& out);
// The fit's warnings that put its numbers in doubt, also on stderr.
void warn_serious(const FitResult& r, std::ostream& err);
// The data of --data (or the embedded dataset, said on stderr), with the readers' warnings.
DataFrame read_input(const CommonOptions& o, std::ostream& err);

// A helper script (scripts/plot-power, scripts/plot-report) run through its #! line with stdout and
// stderr captured together. spawn_error: posix_spawn's error (0: it ran); status: the wait status.
struct ScriptRun {
  int spawn_error = 0;
  int status = 0;
  std::string output;
  bool ok() const;                 // ran and exited 0
  std::string last_line() const;   // the output's last non-empty line
};
ScriptRun run_script(const std::string& script, std::vector<std::string> args);
// A new empty file $TMPDIR/panelboot-STEM-XXXXXX<suffix> (the caller removes it); InvalidInput
// starting with `what` when none can be made.
std::string temp_file(const std::string& stem, const std::string& suffix, const std::string& what);
std::string slurp_file(const std::string& path);

// ---- the commands: each registers its options and returns how to run it ----
struct Streams {
  std::ostream& out;       // the report
  std::ostream& notices;   // warnings and notes (stderr, the later ones held back on failure)
  std::ostream& terminal;  // stderr itself, for progress lines
};
struct Command {
  CLI::App* app = nullptr;
  std::function<int(const Streams&)> run;
};
Command register_fit(CLI::App& app);
Command register_wild(CLI::App& app);
Command register_threshold(CLI::App& app);
Command register_describe(CLI::App& app);
Command register_power(CLI::App& app);
Command register_replicate(CLI::App& app);
Command register_bench(CLI::App& app);

}  // namespace panelboot::cli
