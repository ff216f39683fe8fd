#pragma once
// Long runs split and resumed (the command line's side of panelboot/replications.hpp):
// `--shard i/n`, `--checkpoint FILE` (`--checkpoint-every`, `--resume`) on wild, threshold and
// power, and `panelboot merge`, which runs the recorded command again with its replications taken
// from the shards' parts. A command builds one ScaleRun at its start and hands its runner to the
// engine.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "options.hpp"
#include "panelboot/replications.hpp"

namespace panelboot::cli {

struct ScaleCli {
  std::string shard;  // "i/n"
  std::string checkpoint;
  double checkpoint_every = 2.0;
  bool resume = false;
};

// --shard, --checkpoint, --checkpoint-every, --resume (wild, threshold, power).
void add_scale_options(CLI::App* app, ScaleCli& s);

// The command line's arguments as given (after "panelboot"), recorded in partial files so that
// merge can run the command again.
void set_invocation(const std::vector<std::string>& args);

class ScaleRun {
 public:
  // At the command's start, before its paths are checked: under a merge the command's --format and
  // --output become the merge's, a relative --data is read from the shards' folder and the
  // backend is the CPU's (nothing is computed); a shard or a checkpoint checks its options here.
  // `checkpoint_refusal`: why --checkpoint is refused ("" when it is not).
  ScaleRun(std::string command, const CLI::App* app, const ScaleCli& s, CommonOptions& o, std::string checkpoint_refusal = "");
  ~ScaleRun();
  // The side files a checkpoint adds to check_paths.
  std::vector<NamedPath> paths() const;
  // After the data is read: the run's identity (data, options, seed), a resumed checkpoint (or
  // the note that there is none yet), the runner (null for a plain run).
  ReplicationRunner* start(const DataFrame& df, std::uint64_t seed, const std::string& backend, std::ostream& err);
  // Runs the engine; an interrupted checkpoint becomes the message naming the file and --resume.
  void run(const std::function<void()>& engine);
  bool partial() const { return shard_count_ > 0; }
  // Rank > 0 of an MPI job: it computes ranges for rank 0 and writes nothing.
  bool worker() const;
  std::string partial_text() const;   // a shard's partial result (its --output)
  std::string backend_name(const std::string& here) const;  // a merge reports the shards' backend
  // After the outputs are written: a finished checkpoint is removed.
  void finished(std::ostream& err);

 private:
  std::string make_header() const;
  TaskRecords resume_checkpoint(std::ostream& err) const;
  TaskRecords records() const;  // the tasks computed here (a shard's, a checkpoint's, rank 0's)
  void save_checkpoint(const TaskRecords& records) const;
  std::string command_;
  const CLI::App* app_;
  ScaleCli s_;
  CommonOptions& o_;
  std::uint64_t shard_index_ = 0, shard_count_ = 0;
  // header_: the run's identity (JSON) with fingerprint_, the data's checksum; made by start() only
  // for a merge, MPI ranks, a checkpoint or a shard
  std::string fingerprint_, seed_, backend_, header_;
  std::size_t n_rows_ = 0;
  std::unique_ptr<ReplicationRunner> runner_;
};

// panelboot merge PARTS...
Command register_merge(CLI::App& app);

}  // namespace panelboot::cli
