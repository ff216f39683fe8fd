// Replication ranges and the runners that decide which of a task's ranges run here
// (panelboot/replications.hpp).
#include "panelboot/replications.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "panelboot/error.hpp"
#include "panelboot/report.hpp"
#include "panelboot/timing.hpp"

namespace panelboot {

namespace {

std::string range_text(RepRange r) { return std::to_string(r.begin) + ".." + std::to_string(r.end); }

std::string from_text(const std::string& from) { return from.empty() ? std::string() : " in " + from; }

// x n / d without overflow (x <= d)
std::uint64_t scaled(std::uint64_t x, std::uint64_t n, std::uint64_t d) {
  return static_cast<std::uint64_t>(static_cast<unsigned __int128>(x) * n / d);
}

bool same_shape(const TaskSpec& a, const TaskSpec& b) {
  return a.key == b.key && a.n_rep == b.n_rep && a.align == b.align && a.n_counts == b.n_counts && a.width == b.width;
}

std::string shape_text(const TaskSpec& t) {
  return std::to_string(t.n_rep) + " replications, " + std::to_string(t.n_counts) + " counts, " +
         std::to_string(t.width) + " values each";
}

}  // namespace

RepRange share_of(std::uint64_t n_rep, std::uint64_t align, std::uint64_t i, std::uint64_t n) {
  if (n == 0 || i < 1 || i > n) throw InvalidInput("shard " + std::to_string(i) + "/" + std::to_string(n) + " does not exist");
  align = std::max<std::uint64_t>(align, 1);
  const std::uint64_t units = (n_rep + align - 1) / align;
  const auto edge = [&](std::uint64_t k) { return std::min(n_rep, scaled(k, units, n) * align); };
  return {edge(i - 1), edge(i)};
}

namespace {

void check_segment_shape(const TaskSpec& spec, const Segment& s, const std::string& from) {
  if (s.range.begin > s.range.end || s.range.end > spec.n_rep)
    throw InvalidInput("task '" + spec.key + "'" + from_text(from) + ": range " + range_text(s.range) +
                       " lies outside its " + std::to_string(spec.n_rep) + " replications");
  if (s.counts.size() != spec.n_counts || s.values.size() != s.range.size() * spec.width)
    throw InvalidInput("task '" + spec.key + "'" + from_text(from) + ": range " + range_text(s.range) + " does not hold " +
                       std::to_string(spec.n_counts) + " counts and " + std::to_string(spec.width) +
                       " values per replication");
}

}  // namespace

void check_record_shape(const TaskRecord& r, const std::string& from) {
  for (const Segment& s : r.segments) check_segment_shape(r.spec, s, from);
}

void TaskRecord::add(Segment s, const std::string& from) {
  if (s.range.size() == 0) return;
  check_segment_shape(spec, s, from);
  auto at = std::lower_bound(segments.begin(), segments.end(), s.range.begin,
                             [](const Segment& a, std::uint64_t b) { return a.range.begin < b; });
  const bool overlaps_next = at != segments.end() && at->range.begin < s.range.end;
  const bool overlaps_prev = at != segments.begin() && std::prev(at)->range.end > s.range.begin;
  if (overlaps_next || overlaps_prev) {
    const Segment& o = overlaps_next ? *at : *std::prev(at);
    throw InvalidInput("task '" + spec.key + "'" + from_text(from) + ": replications " + range_text(s.range) +
                       " overlap " + range_text(o.range) + ", which another part already holds");
  }
  at = segments.insert(at, std::move(s));
  // join with the neighbours: counts are integers and values are placed, so joining is exact
  const auto join = [&](std::vector<Segment>::iterator a) {
    auto b = std::next(a);
    if (b == segments.end() || a->range.end != b->range.begin) return false;
    for (std::size_t i = 0; i < a->counts.size(); ++i) a->counts[i] += b->counts[i];
    a->values.insert(a->values.end(), b->values.begin(), b->values.end());
    a->range.end = b->range.end;
    segments.erase(b);
    return true;
  };
  join(at);
  if (at != segments.begin()) join(std::prev(at));
}

std::uint64_t TaskRecord::done() const {
  std::uint64_t n = 0;
  for (const Segment& s : segments) n += s.range.size();
  return n;
}

std::vector<RepRange> TaskRecord::missing() const {
  std::vector<RepRange> gaps;
  std::uint64_t pos = 0;
  for (const Segment& s : segments) {
    if (s.range.begin > pos) gaps.push_back({pos, s.range.begin});
    pos = s.range.end;
  }
  if (pos < spec.n_rep) gaps.push_back({pos, spec.n_rep});
  return gaps;
}

Segment TaskRecord::whole() const {
  if (!complete()) {
    const RepRange gap = missing().front();
    throw InvalidInput("task '" + spec.key + "': replications " + range_text(gap) + " are missing");
  }
  if (spec.n_rep == 0) return Segment{{0, 0}, std::vector<std::int64_t>(spec.n_counts, 0), {}};
  return segments.front();  // complete and joined: one segment
}

TaskRecord& record_of(TaskRecords& records, const TaskSpec& task, const std::string& whose) {
  for (TaskRecord& r : records) {
    if (r.spec.key != task.key) continue;
    if (!same_shape(r.spec, task))
      throw InvalidInput(whose + " task '" + task.key + "' holds " + shape_text(r.spec) + ", this run needs " +
                         shape_text(task) + "; it was written by another run");
    return r;
  }
  records.push_back(TaskRecord{task, {}});
  return records.back();
}

std::vector<RepRange> gaps_within(const TaskRecord& record, RepRange target) {
  std::vector<RepRange> out;
  for (const RepRange gap : record.missing()) {
    const RepRange clipped{std::max(gap.begin, target.begin), std::min(gap.end, target.end)};
    if (clipped.begin < clipped.end) out.push_back(clipped);
  }
  return out;
}

std::uint64_t missing_within(const TaskRecords& records, const TaskSpec& task, RepRange target) {
  for (const TaskRecord& r : records) {
    if (r.spec.key != task.key) continue;
    std::uint64_t n = 0;
    for (const RepRange gap : gaps_within(r, target)) n += gap.size();
    return n;
  }
  return target.size();
}

RepRange target_range(const TaskSpec& task, std::uint64_t shard_index, std::uint64_t shard_count) {
  return shard_count ? share_of(task.n_rep, task.align, shard_index, shard_count) : RepRange{0, task.n_rep};
}

Segment result_of(TaskRecord& record, RepRange target, bool shard) {
  if (!shard) return record.whole();
  std::vector<Segment>& segs = record.segments;
  if (segs.empty()) segs.push_back(Segment{target, std::vector<std::int64_t>(record.spec.n_counts, 0), {}});
  return segs.front();
}

// ---- ShardRunner ----

Segment ShardRunner::run(const TaskSpec& task, const Compute& compute, ProgressSink*) {
  const RepRange share = share_of(task.n_rep, task.align, index_, count_);
  Segment s = share.size() ? compute(share) : Segment{share, std::vector<std::int64_t>(task.n_counts, 0), {}};
  s.range = share;
  TaskRecord rec{task, {}};
  rec.add(s, "shard " + std::to_string(index_) + "/" + std::to_string(count_));
  if (share.size() == 0) rec.segments.push_back(s);  // an empty share still names its task
  records_.push_back(std::move(rec));
  return s;
}

// ---- ReplayRunner ----

Segment ReplayRunner::run(const TaskSpec& task, const Compute&, ProgressSink*) {
  used_.resize(records_.size(), false);
  for (std::size_t i = 0; i < records_.size(); ++i) {
    if (records_[i].spec.key != task.key) continue;
    if (!same_shape(records_[i].spec, task))
      throw InvalidInput("task '" + task.key + "': the parts hold " + shape_text(records_[i].spec) + ", this run needs " +
                         shape_text(task));
    used_[i] = true;
    return records_[i].whole();
  }
  throw InvalidInput("the parts hold no replications of task '" + task.key + "'");
}

std::vector<std::string> ReplayRunner::unused() const {
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < records_.size(); ++i)
    if (i >= used_.size() || !used_[i]) keys.push_back(records_[i].spec.key);
  return keys;
}

// ---- CheckpointRunner ----

CheckpointRunner::CheckpointRunner(TaskRecords resumed, double every_s, Save save, std::uint64_t shard_index,
                                   std::uint64_t shard_count)
    : records_(std::move(resumed)),
      every_s_(every_s),
      save_(std::move(save)),
      shard_index_(shard_index),
      shard_count_(shard_count),
      last_save_(Clock::now()) {}

// A block's intended duration: a quarter of the save interval, at most half a second (a stop
// signal waits for the block to end).
double CheckpointRunner::block_seconds() const { return std::min(0.5, every_s_ / 4); }

RepRange next_block(const TaskSpec& task, RepRange gap, std::uint64_t pos, double rate, double seconds) {
  const double want = rate > 0 ? rate * seconds : 1.0;
  std::uint64_t n = static_cast<std::uint64_t>(std::min(want, 1e15));
  const std::uint64_t a = std::max<std::uint64_t>(task.align, 1);
  n = std::max<std::uint64_t>((n + a - 1) / a * a, a);
  std::uint64_t end = pos + n;
  if (end % a) end -= end % a;
  if (end <= pos) end = pos + a;
  return {pos, std::min(end, gap.end)};
}

Segment BlockRunner::run(const TaskSpec& task, const Compute& compute, ProgressSink*) {
  Segment all{{0, task.n_rep}, std::vector<std::int64_t>(task.n_counts, 0), {}};
  all.values.reserve(static_cast<std::size_t>(task.n_rep) * task.width);
  double rate = 0;  // the first block is one unit: the rate of this task's replications is unknown
  for (std::uint64_t pos = 0; pos < task.n_rep;) {
    if (const int sig = stop_signal_received()) throw Interrupted(sig, "");
    const RepRange block = next_block(task, {pos, task.n_rep}, pos, rate, 0.5);
    const auto t0 = Clock::now();
    const Segment s = compute(block);
    const double dt = seconds_since(t0);
    rate = static_cast<double>(block.size()) / std::max(dt, 1e-6);
    if (s.counts.size() != task.n_counts || s.values.size() != block.size() * task.width)
      throw std::logic_error("task '" + task.key + "': a block's result does not fit the task's shape");
    for (std::size_t i = 0; i < s.counts.size(); ++i) all.counts[i] += s.counts[i];
    all.values.insert(all.values.end(), s.values.begin(), s.values.end());
    pos = block.end;
  }
  return all;
}

void CheckpointRunner::save_now() {
  save_(records_);
  saved_once_ = true;
  last_save_ = Clock::now();
}

std::uint64_t CheckpointRunner::planned(const TaskSpec& task) const {
  return missing_within(records_, task, target_range(task, shard_index_, shard_count_));
}

void CheckpointRunner::stop_if_signalled() {
  if (const int sig = stop_signal_received()) {
    save_now();
    throw Interrupted(sig, "");
  }
}

Segment CheckpointRunner::run(const TaskSpec& task, const Compute& compute, ProgressSink*) {
  const std::size_t index = static_cast<std::size_t>(&record_of(records_, task, "the checkpoint's") - records_.data());
  const RepRange target = target_range(task, shard_index_, shard_count_);
  DeferStopSignals defer;
  stop_if_signalled();
  rate_ = 0;  // another task's replications may cost more: its first block is one unit
  bool computed = false;
  for (const RepRange gap : gaps_within(records_[index], target)) {
    for (std::uint64_t pos = gap.begin; pos < gap.end;) {
      const RepRange block = next_block(task, gap, pos, rate_, block_seconds());
      const auto t0 = Clock::now();
      Segment s = compute(block);
      s.range = block;
      const double dt = seconds_since(t0);
      rate_ = static_cast<double>(block.size()) / std::max(dt, 1e-6);
      records_[index].add(std::move(s), "the checkpoint");
      pos = block.end;
      computed = true;
      stop_if_signalled();
      // saved when the next block could take the wait past 80% of every_s (the save's own time
      // and the blocks' jitter stay inside the interval)
      const double waited = seconds_since(last_save_);
      if (!saved_once_ || waited + block_seconds() >= 0.8 * every_s_) save_now();
    }
  }
  if (computed) save_now();  // the task's last blocks
  return result_of(records_[index], target, shard_count_ > 0);
}

}  // namespace panelboot
