#pragma once
// Rendering fit results: readable text, JSON (the field names are a contract), Markdown,
// LaTeX and CSV; and atomic file output.
#include <signal.h>
#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "panelboot/estimate.hpp"

namespace panelboot {

enum class Format { kText, kJson, kMarkdown, kLatex, kCsv };

nlohmann::json fit_json(const std::vector<FitResult>& models);
// first_stage: the text also prints each IV model's first-stage regressions (the JSON always has them).
std::string render_fit(const std::vector<FitResult>& models, Format fmt, bool first_stage = false);

struct WildResult;
struct WildOptions;
nlohmann::json wild_json(const WildResult& w, const WildOptions& wo);
std::string render_wild(const WildResult& w, const WildOptions& wo, Format fmt);

// `threshold`'s report (text or JSON), and its side files as CSV: each observation's regime in
// the last model (--save-regimes) and LR(gamma) of the single-threshold search (--lr-curve).
struct ThresholdResult;
struct ThresholdOptions;
std::string render_threshold(const ThresholdResult& r, const ThresholdOptions& o, Format fmt);
std::string threshold_regimes_csv(const ThresholdResult& r, const ThresholdOptions& o);
std::string threshold_lr_curve_csv(const ThresholdResult& r, const ThresholdOptions& o);

// `power`'s report: text, Markdown or JSON.
struct PowerResult;
std::string render_power(const PowerResult& r, Format fmt);

// `bench`'s report: a table (text) or JSON (results[] per problem, size and backend).
struct BenchReport;
nlohmann::json bench_json(const BenchReport& r);
std::string render_bench(const BenchReport& r, Format fmt);

// Output files, written so that nothing is ever destroyed: a regular file through a temporary
// beside it (fsync, rename, fsync of the folder; permissions kept), a symlink's target in its
// place (the link kept; a hard link is replaced like any file, so its other names keep the old
// content), a device or FIFO in place (a FIFO nobody reads is an error), this process's stdout
// or stderr through its descriptor. `add` writes the temporary; `commit` writes the in-place
// ones first (what can fail midway), then renames the temporaries, so a run that fails leaves
// none of its files; temporaries not committed are removed (on destruction, and on
// SIGINT/SIGTERM/SIGHUP).
class PendingOutputs {
 public:
  PendingOutputs() = default;
  PendingOutputs(const PendingOutputs&) = delete;
  PendingOutputs& operator=(const PendingOutputs&) = delete;
  ~PendingOutputs();
  void add(const std::string& path, const std::string& content);
  void commit();

 private:
  struct Item {
    std::string path, target, tmp, folder, content;
    void* slot = nullptr;  // its node in the signal handler's list of temporaries
    int own_fd = -1;  // 1 or 2: the target is this process's stdout or stderr
  };
  std::vector<Item> items_;
};

// A temporary file or folder that a signal (SIGINT, SIGTERM, SIGHUP) ending the run removes, as
// PendingOutputs' temporaries are (files tracked after a folder are removed before it); the slot
// for untrack_temporary once it is renamed or removed.
void* track_temporary(const std::string& path, bool folder);
void untrack_temporary(void* slot);
// A child process (0: none) that the signal handler stops (SIGKILL, waited for) before it removes
// the temporaries: a helper writing into a tracked folder.
void set_helper_process(pid_t pid);
// While one lives, the first SIGINT, SIGTERM or SIGHUP is only recorded, for stop_signal_received
// (a checkpointing run polls it between blocks of replications, writes its checkpoint and
// exits 128 + the signal); a second one ends the run at once. Nests.
class DeferStopSignals {
 public:
  DeferStopSignals();
  ~DeferStopSignals();
  DeferStopSignals(const DeferStopSignals&) = delete;
  DeferStopSignals& operator=(const DeferStopSignals&) = delete;
};
int stop_signal_received();  // the recorded signal, 0 if none
void reset_stop_signal();    // forgets it (a new run in the same process)
// Records `sig` as the stop signal (the first one counts); async-signal-safe, for a host's handler.
void note_stop_signal(int sig);
// A program that embeds the engine (the Python package) keeps its own signal handlers: the library
// never installs its cleanup handlers, and the host's SIGINT handler calls note_stop_signal.
void leave_signals_to_host();

// SIGINT, SIGTERM and SIGHUP held back for the object's life (delivered when it ends): steps that
// must not be cut in the middle (a report folder's renames).
class SignalHold {
 public:
  SignalHold();
  ~SignalHold();
  SignalHold(const SignalHold&) = delete;
  SignalHold& operator=(const SignalHold&) = delete;

 private:
  sigset_t old_;
};

// A report folder (replicate --out DIR), written so that nothing is ever destroyed: its files are
// made in a hidden staging folder beside DIR (inside it when DIR is a mount point) and moved into
// DIR, each by an atomic rename, only by commit(). DIR may hold other files: a name this run
// writes that exists in DIR is replaced only when DIR/.panelboot-report (the list of the files
// panelboot wrote there, with their size and time as written) names it, it is a regular file and
// it has not changed since; otherwise the constructor refuses before any work. An interrupted run
// leaves DIR as it was: the staging folder is removed on destruction and on SIGINT/SIGTERM/SIGHUP,
// and the commit holds those signals across its renames.
class ReportFolder {
 public:
  static constexpr const char* kManifest = ".panelboot-report";
  // `names`: every file the run may write. InvalidInput when DIR is not a folder (a regular file,
  // a dangling link), its parent is missing or not writable, or a name would replace a file
  // panelboot did not write.
  ReportFolder(const std::string& dir, const std::vector<std::string>& names);
  ReportFolder(const ReportFolder&) = delete;
  ReportFolder& operator=(const ReportFolder&) = delete;
  ~ReportFolder();
  const std::string& staging() const { return staging_; }
  void add(const std::string& name, const std::string& content);  // a file of the report
  void adopt(const std::string& name);  // a file another program wrote into staging()
  // DIR made (one level) when missing; the list first, then the files moved in; the figures of an
  // earlier run that this one did not draw removed
  void commit();

 private:
  void check_name(const std::string& name) const;
  void remove_staging();
  std::string shown_, dir_, staging_;
  std::vector<std::string> allowed_, written_;
  std::vector<void*> slots_;
};

// fsync of a folder, so that the renames in it are durable (best effort: some file systems refuse).
void fsync_folder(const std::string& folder);

// Writes all of data to fd (retrying short writes and EINTR); false with errno set on failure.
bool write_fully(int fd, const char* data, std::size_t size);

// Checks up front that `path` can be written: not a directory or socket, its folder exists
// and is writable (an InvalidInput naming the path otherwise).
void check_output_target(const std::string& path);

// Checks up front, before any work, that no output (option name, path) is the same file as an
// input (option name, path) or as another output (symlinks followed; devices and FIFOs exempt).
using NamedPath = std::pair<std::string, std::string>;
void check_output_paths(const std::vector<NamedPath>& outputs, const std::vector<NamedPath>& inputs);

extern const char* const kSimulatedNote;

// Text made safe for each output format (user text: names, levels, formulas, hypotheses).
std::string dump_json(const nlohmann::json& j);    // indent 2 and a newline; bytes that are not
                                                   // UTF-8 become U+FFFD, never an exception
std::string csv_quote(const std::string& s);       // "..." with "" inside
std::string csv_field(const std::string& s);       // as is, or csv_quote'd when it holds , " or a line break
std::string md_cell(const std::string& s);         // | escaped, line breaks as spaces
std::string latex_escape(const std::string& s);    // _ & % # $ { } ^ ~ \ escaped, line breaks as spaces

// `panelboot describe`: each variable's type, count, mean, SD, min and max over the rows with
// keep[r] != 0, in every format.
class DataFrame;
std::string render_describe(const DataFrame& df, const std::vector<char>& keep, Format fmt);

}  // namespace panelboot
