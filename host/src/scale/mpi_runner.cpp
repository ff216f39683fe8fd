// A job's replications over MPI ranks (panelboot/mpi.hpp, MpiRunner): rank 0 hands out ranges
// of each task as ranks ask, computes ranges itself and places every result by its index.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "panelboot/error.hpp"
#include "panelboot/mpi.hpp"
#include "panelboot/progress.hpp"
#include "panelboot/report.hpp"
#include "scale/wire.hpp"

namespace panelboot::mpi {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A worker's request: the task it is in (number and key) and the range it finished, if any,
// with the seconds its computation took (the rest of the round trip is the hand-out's cost).
struct Request {
  std::uint64_t seq = 0;
  std::string key;
  std::optional<Segment> done;
  double seconds = 0;
};

std::string request_body(std::uint64_t seq, const std::string& key, const Segment* done, double seconds = 0) {
  wire::Writer w;
  w.u64(seq).str(key).u64(done ? 1 : 0);
  if (done) w.u64(done->range.begin).u64(done->range.end).i64s(done->counts).f64s(done->values).f64(seconds);
  return w.take();
}

Request request_of(const Message& m) {
  wire::Reader r(m.body);
  Request q;
  q.seq = r.u64();
  q.key = r.str();
  if (r.u64()) {
    Segment s;
    s.range.begin = r.u64();
    s.range.end = r.u64();
    s.counts = r.i64s();
    s.values = r.f64s();
    q.done = std::move(s);
    q.seconds = r.f64();
  }
  return q;
}

std::uint64_t seq_of(const Message& m) { return wire::Reader(m.body).u64(); }

}  // namespace

// One task's hand-out on rank 0: the ranges not yet given, what each rank holds, how fast each
// rank went, and why the task stops early (a signal, a failed rank).
struct MpiRunner::TaskRun {
  TaskRun(const TaskSpec& task_, TaskRecord& record_, ProgressSink* progress_, int n_ranks_, double target_s_)
      : task(task_), record(record_), progress(progress_), n_ranks(n_ranks_), target_s(target_s_) {}
  const TaskSpec& task;
  TaskRecord& record;
  ProgressSink* progress;
  int n_ranks;
  double target_s;  // a range's intended duration
  std::mutex m;
  std::deque<RepRange> gaps;  // not yet handed out, in order
  std::uint64_t total_units = 0, left_units = 0;
  std::vector<double> rate, assigned_at;  // replications per second (0: not yet measured)
  std::vector<bool> released;             // the worker has its last answer for this task
  bool stopping = false;
  int signal = 0;
  std::optional<RankFailed> failed;
  std::exception_ptr error;  // rank 0's own (its range or the coordinator)

  std::uint64_t units(RepRange r) const {
    const std::uint64_t a = std::max<std::uint64_t>(task.align, 1);
    return (r.size() + a - 1) / a;
  }
  bool workers_released() const {
    return std::all_of(released.begin() + 1, released.end(), [](bool b) { return b; });
  }
};

MpiRunner::MpiRunner(Session& s, TaskRecords resumed, double every_s, Save save, std::uint64_t shard_index,
                     std::uint64_t shard_count)
    : s_(s),
      records_(std::move(resumed)),
      every_s_(every_s),
      save_(std::move(save)),
      shard_index_(shard_index),
      shard_count_(shard_count),
      trace_(std::getenv("PANELBOOT_MPI_TRACE") != nullptr) {}

std::uint64_t MpiRunner::planned(const TaskSpec& task) const {
  if (!s_.root()) return 0;  // rank 0 shows the job's progress
  return missing_within(records_, task, target_range(task, shard_index_, shard_count_));
}

void MpiRunner::save_now() {
  if (!save_) return;
  save_(records_);
  last_save_ = now_s();
}

Segment MpiRunner::run(const TaskSpec& task, const Compute& compute, ProgressSink* progress) {
  ++seq_;
  return s_.root() ? run_root(task, compute, progress) : run_worker(task, compute);
}

Segment MpiRunner::run_worker(const TaskSpec& task, const Compute& compute) {
  s_.send(0, Tag::kRequest, request_body(seq_, task.key, nullptr));
  for (;;) {
    const Message m = s_.wait([](const Message& x) { return x.from == 0; });
    if (m.tag == Tag::kTaskDone) return Segment{{0, 0}, std::vector<std::int64_t>(task.n_counts, 0), {}};
    if (m.tag != Tag::kAssign) throw StoppedByRoot();
    wire::Reader r(m.body);
    RepRange range;
    range.begin = r.u64();
    range.end = r.u64();
    const double t0 = now_s();
    Segment seg = compute(range);
    seg.range = range;
    s_.send(0, Tag::kRequest, request_body(seq_, task.key, &seg, now_s() - t0));
  }
}

namespace {

// The next range for `rank`, or none (all handed out, or stopping). Guided: half the remaining
// units over the ranks, at least 1/64 of a rank's even share; once the rank's rate is known at
// most target_s of its work, and before that (its first range of the task) the 1/64 share.
std::optional<RepRange> take_range(MpiRunner::TaskRun& t, int rank) {
  std::lock_guard<std::mutex> lock(t.m);
  if (t.stopping || t.gaps.empty()) return std::nullopt;
  const std::uint64_t a = std::max<std::uint64_t>(t.task.align, 1);
  const std::uint64_t ranks = static_cast<std::uint64_t>(t.n_ranks);
  const std::uint64_t floor_units = std::max<std::uint64_t>(1, t.total_units / (64 * ranks));
  std::uint64_t n = std::max((t.left_units + 2 * ranks - 1) / (2 * ranks), floor_units);
  const double r = t.rate[static_cast<std::size_t>(rank)];
  if (r > 0) {
    n = std::min<std::uint64_t>(n, static_cast<std::uint64_t>(std::max(1.0, std::min(r * t.target_s / a, 1e15))));
  } else {
    n = std::min(n, floor_units);
  }
  RepRange& g = t.gaps.front();
  const RepRange range{g.begin, std::min(g.end, g.begin + n * a)};
  g.begin = range.end;
  if (g.begin >= g.end) t.gaps.pop_front();
  t.left_units -= std::min(t.left_units, t.units(range));
  t.assigned_at[static_cast<std::size_t>(rank)] = now_s();
  return range;
}

}  // namespace

void MpiRunner::coordinate(TaskRun& t, const Compute& compute) {
  const std::uint64_t seq = seq_;
  // the saving policy of a checkpoint: every 80% of the interval, and at once on a signal
  const auto record_done = [&](int from, Segment seg, double compute_s) {
    std::lock_guard<std::mutex> lock(t.m);
    const std::uint64_t n = seg.range.size();
    const RepRange range = seg.range;
    t.record.add(std::move(seg), "rank " + std::to_string(from));
    const double dt = now_s() - t.assigned_at[static_cast<std::size_t>(from)];
    if (trace_)
      std::fprintf(stderr, "panelboot: mpi: task %llu rank %d range %llu..%llu round trip %.6f s compute %.6f s\n",
                   static_cast<unsigned long long>(seq), from, static_cast<unsigned long long>(range.begin),
                   static_cast<unsigned long long>(range.end), dt, from == 0 ? dt : compute_s);
    t.rate[static_cast<std::size_t>(from)] = static_cast<double>(n) / std::max(dt, 1e-6);
    if (t.progress && from != 0) t.progress->advance(n);
    if (checkpointing() && (last_save_ < 0 || now_s() - last_save_ >= 0.8 * every_s_)) save_now();
  };
  const auto watch_signal = [&] {
    if (!checkpointing()) return;
    if (const int sig = stop_signal_received()) {
      std::lock_guard<std::mutex> lock(t.m);
      if (t.stopping) return;
      t.stopping = true;
      t.signal = sig;
      save_now();  // what is done, at once: the launcher may kill the job soon
    }
  };
  // one worker message answered: a failed or vanished worker stops the task; a request gets
  // its next range, or its last answer for the task
  const auto answer = [&](const Message& m) {
    const std::size_t w = static_cast<std::size_t>(m.from);
    if (m.tag == Tag::kEnd) {
      std::lock_guard<std::mutex> lock(t.m);
      s_.note_ended(m.from);
      t.released[w] = true;
      t.stopping = true;
      if (t.failed) return;
      const EndReport e = end_report(m);
      if (e.status != 0)
        t.failed.emplace(static_cast<int>(e.status), Session::worker_error_line(m.from, e.text));
      else
        t.failed.emplace(2, "panelboot: error: rank " + std::to_string(m.from) + " ended before task '" +
                                t.task.key + "': the ranks ran different tasks (every rank must run the same build)");
      return;
    }
    Request q = request_of(m);
    if (q.key != t.task.key) {
      std::lock_guard<std::mutex> lock(t.m);
      t.stopping = true;
      if (!t.failed)
        t.failed.emplace(2, "panelboot: error: rank " + std::to_string(m.from) + " runs task '" + q.key +
                                "' where rank 0 runs '" + t.task.key + "': every rank must run the same build");
    }
    if (q.done && !t.failed) record_done(m.from, std::move(*q.done), q.seconds);
    const std::optional<RepRange> r = take_range(t, m.from);
    if (r) {
      s_.send(m.from, Tag::kAssign, wire::Writer().u64(r->begin).u64(r->end).take());
      return;
    }
    std::lock_guard<std::mutex> lock(t.m);
    t.released[w] = true;
    s_.send(m.from, t.stopping ? Tag::kStop : Tag::kTaskDone, "");
  };
  // a worker message for this task: a request of it, a failed worker's end, or the end of a
  // worker not yet released from it (the ranks ran different tasks); later ones wait
  const auto for_this_task = [&](const Message& x) {
    if (x.from == 0) return false;
    if (x.tag == Tag::kRequest) return seq_of(x) == seq;
    return x.tag == Tag::kEnd && (end_report(x).status != 0 || !t.released[static_cast<std::size_t>(x.from)]);
  };
  // rank 0's half: answer the workers until each has its last answer for this task; whatever
  // goes wrong with a message, its sender is answered (kStop), so no rank is left waiting
  std::optional<std::thread> coordinator;
  if (t.n_ranks > 1)
    coordinator.emplace([&] {
      double idle_since = now_s();
      for (;;) {
        {
          std::lock_guard<std::mutex> lock(t.m);
          if (t.workers_released()) break;
        }
        std::optional<Message> m;
        try {
          watch_signal();
          m = s_.next(for_this_task);
        } catch (...) {  // the checkpoint's save, or MPI itself: nothing more can be handed out
          std::lock_guard<std::mutex> lock(t.m);
          t.stopping = true;
          if (!t.error) t.error = std::current_exception();
        }
        if (!m) {
          std::this_thread::sleep_for(std::chrono::microseconds(now_s() - idle_since > 0.02 ? 500 : 50));
          continue;
        }
        idle_since = now_s();
        try {
          answer(*m);
        } catch (...) {
          std::lock_guard<std::mutex> lock(t.m);
          t.stopping = true;
          if (!t.error) t.error = std::current_exception();
          const std::size_t w = static_cast<std::size_t>(m->from);
          if (m->tag == Tag::kRequest && !t.released[w]) {
            t.released[w] = true;
            s_.send(m->from, Tag::kStop, "");
          }
        }
      }
    });
  // rank 0's other half: compute ranges like any rank
  try {
    while (const std::optional<RepRange> r = take_range(t, 0)) {
      Segment seg = compute(*r);
      seg.range = *r;
      record_done(0, std::move(seg), 0);
      watch_signal();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(t.m);
    t.stopping = true;
    if (!t.error) t.error = std::current_exception();
  }
  if (coordinator) coordinator->join();
}

Segment MpiRunner::run_root(const TaskSpec& task, const Compute& compute, ProgressSink* progress) {
  TaskRecord& record = record_of(records_, task, "the checkpoint's");
  const RepRange target = target_range(task, shard_index_, shard_count_);
  TaskRun t{task, record, progress, s_.size(), checkpointing() ? std::min(0.5, every_s_ / 4) : 0.5};
  for (const RepRange gap : gaps_within(record, target)) {
    t.gaps.push_back(gap);
    t.left_units += t.units(gap);
  }
  t.total_units = t.left_units;
  t.rate.assign(static_cast<std::size_t>(t.n_ranks), 0.0);
  t.assigned_at.assign(static_cast<std::size_t>(t.n_ranks), 0.0);
  t.released.assign(static_cast<std::size_t>(t.n_ranks), false);
  if (checkpointing() && stop_signal_received()) {  // stopped between tasks: nothing more begins
    t.stopping = true;
    t.signal = stop_signal_received();
  }
  const bool computes = !t.gaps.empty();
  coordinate(t, compute);
  if (t.error) std::rethrow_exception(t.error);
  if (t.failed) throw *t.failed;
  if (t.signal) {
    save_now();
    throw Interrupted(t.signal, "");
  }
  if (checkpointing() && computes) save_now();  // the task's end
  return result_of(record, target, shard_count_ > 0);
}

}  // namespace panelboot::mpi
