#pragma once
// Replication ranges: the one unit of work that Slurm shards, checkpoints and (next) MPI ranks
// share. Every draw is keyed by its replication index, so a task's replications may be computed
// in any split of its index range and still give the single run's result, provided the pieces are
// combined exactly: integer counts are added, and per-replication values are placed by index
// (a floating-point aggregate, such as power's mean of the estimates, is formed from them
// afterwards in index order), never summed in the order the pieces arrive.
//
// An engine (wild, threshold, power) hands each task's replications to a ReplicationRunner with
// a function that computes any range of them; the runner decides which ranges run here (all,
// a shard's share, what a checkpoint lacks) and returns the task's whole Segment.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace panelboot {

class ProgressSink;

// Replications begin .. end-1 of a task.
struct RepRange {
  std::uint64_t begin = 0, end = 0;
  std::uint64_t size() const { return end - begin; }
};

// Share i (1-based) of n of a task's [0, n_rep): contiguous, cut at multiples of `align` (a share
// may be empty when n exceeds the units). Shares 1..n tile [0, n_rep).
RepRange share_of(std::uint64_t n_rep, std::uint64_t align, std::uint64_t i, std::uint64_t n);

// One task: replications whose results the engine finishes together (a wild test, a threshold
// test, a power group). Its key is unique within a run and says what the task is.
struct TaskSpec {
  std::string key;
  std::uint64_t n_rep = 0;
  std::uint64_t align = 1;   // range ends are multiples of this, or n_rep
  std::size_t n_counts = 0;  // integer counts of a range (added across ranges)
  std::size_t width = 0;     // doubles per replication (placed by index)
};

// What replications `range` of a task left: counts over the range, `width` values per
// replication (replication-major).
struct Segment {
  RepRange range;
  std::vector<std::int64_t> counts;
  std::vector<double> values;
};

// A task's segments so far: sorted, disjoint, adjacent ones joined.
struct TaskRecord {
  TaskSpec spec;
  std::vector<Segment> segments;
  // Adds a segment; InvalidInput (naming `from`) when it overlaps one already there or does not
  // fit the task's shape.
  void add(Segment s, const std::string& from = "");
  std::uint64_t done() const;
  std::vector<RepRange> missing() const;  // the gaps, in order
  bool complete() const { return done() == spec.n_rep; }
  // The whole task (complete() required): counts added, values in index order.
  Segment whole() const;
};

// The run's tasks, in the order the engine met them.
using TaskRecords = std::vector<TaskRecord>;

// The record of `task` in `records` (appended, empty, when it has none); InvalidInput when the
// record there has another shape (`whose`: "the checkpoint's", written by another run).
TaskRecord& record_of(TaskRecords& records, const TaskSpec& task, const std::string& whose);
// The record's gaps clipped to `target` (the ranges a run that computes `target` still needs), in
// order, none empty.
std::vector<RepRange> gaps_within(const TaskRecord& record, RepRange target);
// How many of the task's replications inside `target` the records lack (all of target when they
// do not hold the task).
std::uint64_t missing_within(const TaskRecords& records, const TaskSpec& task, RepRange target);
// The replications a run computes: the whole task, or share i/n of it (n > 0).
RepRange target_range(const TaskSpec& task, std::uint64_t shard_index, std::uint64_t shard_count);
// What a run that computed `target` of the task returns: the record's whole task, or (a shard)
// its share's segment; an empty share still names its task.
Segment result_of(TaskRecord& record, RepRange target, bool shard);

class ReplicationRunner {
 public:
  virtual ~ReplicationRunner() = default;
  using Compute = std::function<Segment(RepRange)>;
  // The task's replications over [0, n_rep), computed (by `compute`, any number of ranges) or
  // found. A shard returns its share only. `progress`: the task's reporter, advanced by `compute`
  // for the ranges computed here (MPI rank 0 advances it for the other ranks' ranges too).
  virtual Segment run(const TaskSpec& task, const Compute& compute, ProgressSink* progress) = 0;
  // Whether run() gives every replication: false for a shard, whose engine skips what needs the
  // whole task (a CI, critical values) and whose result is not reported (its partial file is
  // written instead).
  virtual bool complete() const { return true; }
  // How many of the task's replications run() will compute here (the progress line's total): all
  // of them, a shard's share, what a checkpoint lacks, none for a merge.
  virtual std::uint64_t planned(const TaskSpec& task) const { return task.n_rep; }
};

// The replications a task computes under `runner` (null: all of them).
inline std::uint64_t planned_replications(const ReplicationRunner* runner, const TaskSpec& task) {
  return runner ? runner->planned(task) : task.n_rep;
}

// Computes the share i/n of every task and keeps it for the partial file.
class ShardRunner final : public ReplicationRunner {
 public:
  ShardRunner(std::uint64_t index, std::uint64_t count) : index_(index), count_(count) {}
  Segment run(const TaskSpec& task, const Compute& compute, ProgressSink* progress) override;
  bool complete() const override { return false; }
  std::uint64_t planned(const TaskSpec& task) const override { return share_of(task.n_rep, task.align, index_, count_).size(); }
  const TaskRecords& records() const { return records_; }

 private:
  std::uint64_t index_, count_;
  TaskRecords records_;
};

// Gives back the tasks the merge assembled from the parts; computes nothing.
class ReplayRunner final : public ReplicationRunner {
 public:
  explicit ReplayRunner(TaskRecords records) : records_(std::move(records)) {}
  Segment run(const TaskSpec& task, const Compute& compute, ProgressSink* progress) override;
  std::uint64_t planned(const TaskSpec&) const override { return 0; }
  // Tasks the parts hold that this run never asked for (a mismatch the merge reports).
  std::vector<std::string> unused() const;

 private:
  TaskRecords records_;
  std::vector<bool> used_;
};

// A block of about `seconds` of a task's replications from pos inside gap at `rate` replications
// per second (rate 0, a task's first block: one unit of its alignment), on the task's alignment.
RepRange next_block(const TaskSpec& task, RepRange gap, std::uint64_t pos, double rate, double seconds);

// Computes every replication here, in blocks of about 0.5 s (next_block), and stops between two
// blocks when a stop signal was recorded (Interrupted; panelboot/report.hpp's note_stop_signal):
// a plain run that can be interrupted, without a checkpoint file and without keeping records (the
// Python package's). The task's Segment is assembled as the blocks come: counts added, values
// appended in index order, as one range would give them.
class BlockRunner final : public ReplicationRunner {
 public:
  Segment run(const TaskSpec& task, const Compute& compute, ProgressSink* progress) override;
};

// A checkpoint's replications are computed in blocks of about min(every_s / 4, 0.5 s) (a task's
// first: one unit); at a task's start and after each block the run stops if SIGINT, SIGTERM or
// SIGHUP came (checkpoint first: Interrupted); the checkpoint is written after the first block,
// whenever the next block could take the wait past 80% of `every_s`, and at a task's end. The
// file itself is the caller's: `save` writes the records it is given, atomically.
class CheckpointRunner final : public ReplicationRunner {
 public:
  using Save = std::function<void(const TaskRecords&)>;
  // With shard_count > 0 the checkpoint covers that shard's share only (a shard that may be
  // preempted); its records are then the shard's partial result.
  CheckpointRunner(TaskRecords resumed, double every_s, Save save, std::uint64_t shard_index = 0,
                   std::uint64_t shard_count = 0);
  Segment run(const TaskSpec& task, const Compute& compute, ProgressSink* progress) override;
  bool complete() const override { return shard_count_ == 0; }
  std::uint64_t planned(const TaskSpec& task) const override;
  const TaskRecords& records() const { return records_; }
  void save_now();

 private:
  double block_seconds() const;
  void stop_if_signalled();
  TaskRecords records_;
  double every_s_;
  Save save_;
  std::uint64_t shard_index_, shard_count_;
  bool saved_once_ = false;
  std::chrono::steady_clock::time_point last_save_;
  double rate_ = 0;  // replications per second of the last block (sizes the next one)
};

// A run stopped by SIGINT or SIGTERM after its checkpoint was written: the CLI exits 128 + signal.
class Interrupted : public std::exception {
 public:
  Interrupted(int signal, std::string what) : signal_(signal), what_(std::move(what)) {}
  int signal() const { return signal_; }
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  int signal_;
  std::string what_;
};

// The checks every partial or checkpoint record list passes before it is used: each task's
// segments fit its shape (counts, values per replication, ranges inside [0, n_rep)).
void check_record_shape(const TaskRecord& r, const std::string& from);

}  // namespace panelboot
