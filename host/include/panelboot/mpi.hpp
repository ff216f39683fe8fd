#pragma once
// MPI ranks (docs/SCALE.md, "MPI"). `mpirun -np N panelboot wild|threshold|power ...` (or
// `srun --mpi=pmix`) runs one process per rank; each reads the data and runs the same engine, and
// their replications come from one pool of contiguous ranges that rank 0 hands out as ranks ask
// for work (MpiRunner). Rank 0 places every range's result by its index, exactly as a merge does,
// so the output is the single process's bit for bit for any rank count; it alone writes output,
// shows progress and keeps the checkpoint.
//
// OpenMPI lives in a plugin, libpanelboot_mpi.so, loaded only when a launcher started the process
// (launch_of()): a plain run of the same binary neither maps libmpi nor pays MPI_Init's start.
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "panelboot/error.hpp"
#include "panelboot/replications.hpp"

namespace panelboot::mpi {

// Byte messages between the ranks of one job: the plugin's interface (MPI_COMM_WORLD).
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // the rank among this node's ranks (its GPU)
  virtual int local_size() const = 0;  // this node's ranks
  virtual void send(int to, int tag, const std::string& bytes) = 0;
  // A message from any rank when one has arrived; false at once otherwise.
  virtual bool try_receive(int& from, int& tag, std::string& bytes) = 0;
  virtual void finalize() = 0;
};

// How this process was started.
struct Launch {
  bool by_launcher = false;  // mpirun/mpiexec, srun --mpi=pmix, or a Slurm step of 2+ tasks
  bool srun_without_pmi = false;  // srun started several tasks that no PMI joins (MpiDefault=none)
  long tasks = 0;            // the launcher's task count where it says (0: unknown)
  long rank = 0;             // this task's rank where the launcher says
  std::string by;            // the variable that told
};
// From the environment: OMPI_COMM_WORLD_SIZE (mpirun), PMIX_RANK (srun --mpi=pmix, mpirun),
// SLURM_STEP_ID with SLURM_STEP_NUM_TASKS > 1 (srun). A one-task Slurm step is a plain run.
Launch launch_of();

enum class Tag : int {
  kHello = 1,  // worker -> 0: its run's identity (the run header)
  kReady,      // 0 -> worker: same run, go on
  kRequest,    // worker -> 0: the task it is in, and the range it finished (if any)
  kAssign,     // 0 -> worker: a range to compute
  kTaskDone,   // 0 -> worker: no more ranges in this task
  kStop,       // 0 -> worker: stop now (an error elsewhere, or a signal)
  kEnd,        // worker -> 0: its command ended (status, last error line)
  kBye,        // 0 -> worker: every rank has ended; finalize
};

struct Message {
  int from = 0;
  Tag tag = Tag::kHello;
  std::string body;
};

// MPI could not start in this process (its plugin or library did not load, MPI_Init failed): a
// fault of this node, so every rank reports it with its rank.
class StartFailed : public Error {
 public:
  using Error::Error;
};

// What a worker's kEnd carries: its exit status and its last error line.
struct EndReport {
  std::int64_t status = 0;
  std::string text;
};
EndReport end_report(const Message& m);

// A worker stopped by rank 0 (rank 0 reports why): it ends quietly.
class StoppedByRoot : public std::exception {
 public:
  const char* what() const noexcept override { return "stopped by rank 0"; }
};

// A worker's error, reported by rank 0 as the run's: `text` is the line to print.
class RankFailed : public std::exception {
 public:
  RankFailed(int status, std::string text) : status_(status), text_(std::move(text)) {}
  int status() const { return status_; }
  const char* what() const noexcept override { return text_.c_str(); }

 private:
  int status_;
  std::string text_;
};

// One process's place in the job, from MPI_Init to MPI_Finalize. Rank 0 reads messages into an
// inbox and takes those each phase expects (a faster rank's messages for the next task wait
// there); every worker message is answered, so no rank waits for one that has ended.
class Session {
 public:
  explicit Session(std::unique_ptr<Communicator> comm);
  ~Session();
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }
  int local_size() const { return comm_->local_size(); }

  void send(int to, Tag tag, const std::string& body);
  // The first message (inbox first, then arrivals) that `wanted` accepts; none when none waits.
  std::optional<Message> next(const std::function<bool(const Message&)>& wanted);
  // ... waiting for one (polling; a waiting rank sleeps, it does not spin a core).
  Message wait(const std::function<bool(const Message&)>& wanted);

  // At a run's start, once its identity (the run header, JSON) is known. Rank 0: every worker's
  // header compared with its own (`difference` names what differs, "" when nothing); InvalidInput
  // naming the rank and the difference. A worker: sends its header, waits for rank 0's word.
  void agree_on_run(const std::string& header,
                    const std::function<std::string(const std::string&, const std::string&)>& difference);

  // Rank 0: a worker that ended with an error during a phase (RankFailed is thrown from it).
  void note_ended(int rank) { ended_.at(static_cast<std::size_t>(rank)) = true; }
  // The job's end (every rank, once): a worker reports its status and last error line and waits
  // for rank 0's goodbye; rank 0 stops any worker still running, collects every end, and returns
  // the job's status (its own, or the first failed worker's, whose line it prints to `err`).
  int end(int status, const std::string& error_text, std::ostream& err);

  void finalize() { comm_->finalize(); }  // MPI_Finalize

  // Rank 0: the line a failed worker's error is reported as.
  static std::string worker_error_line(int rank, const std::string& text);

 private:
  std::unique_ptr<Communicator> comm_;
  int rank_, size_;
  std::vector<Message> inbox_;
  std::vector<bool> ended_;
};

// This process's session: null for a plain run or a job of one rank.
Session* session();
namespace detail {
void set_session(Session* s);  // start_if_launched's
}
// main()'s first step: when a launcher started the process, loads the MPI plugin (MPI_Init) and
// sets PANELBOOT_CUDA_DEVICE to the local rank (one GPU per rank) unless it is set. InvalidInput
// when the launch cannot work (srun without PMI; a build without MPI started with 2+ ranks).
void start_if_launched(int* argc, char*** argv);
// main()'s last step (MPI_Finalize).
void close_session();

// A job's replications (ReplicationRunner): rank 0 hands out ranges of each task's missing
// replications as ranks ask (rank 0 computes too); a range's size halves the remaining share
// (guided), at most ~0.5 s of the asking rank's measured rate, so a slow rank holds no one up
// and a stop comes within a range. Rank 0 places the results by index; a worker returns nothing
// of the task (complete() is false there, so its engine skips the whole-task steps).
class MpiRunner final : public ReplicationRunner {
 public:
  using Save = std::function<void(const TaskRecords&)>;
  // `resumed`: a checkpoint's tasks (rank 0); `every_s` > 0: save every so often (and on
  // SIGINT/SIGTERM/SIGHUP, then Interrupted); with shard_count > 0 the job computes that shard.
  MpiRunner(Session& s, TaskRecords resumed, double every_s, Save save, std::uint64_t shard_index = 0,
            std::uint64_t shard_count = 0);
  Segment run(const TaskSpec& task, const Compute& compute, ProgressSink* progress) override;
  bool complete() const override { return s_.root() && shard_count_ == 0; }
  std::uint64_t planned(const TaskSpec& task) const override;
  const TaskRecords& records() const { return records_; }
  bool checkpointing() const { return every_s_ > 0; }
  void save_now();
  struct TaskRun;  // one task's hand-out on rank 0

 private:
  RepRange target_of(const TaskSpec& task) const;
  TaskRecord& record_for(const TaskSpec& task);
  Segment run_worker(const TaskSpec& task, const Compute& compute);
  Segment run_root(const TaskSpec& task, const Compute& compute, ProgressSink* progress);
  void coordinate(TaskRun& t, const Compute& compute);
  Session& s_;
  TaskRecords records_;
  double every_s_;
  Save save_;
  std::uint64_t shard_index_, shard_count_;
  std::uint64_t seq_ = 0;  // the task's number in the run (the same on every rank)
  double last_save_ = -1;
  bool trace_;  // PANELBOOT_MPI_TRACE: rank 0 lists each range, its rank and its time on stderr
};

}  // namespace panelboot::mpi
