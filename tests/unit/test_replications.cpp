// Replication ranges (panelboot/replications.hpp, run_file.hpp): shares tile every task on its
// alignment, segments join exactly and refuse overlaps, a run file keeps every bit, a checkpoint
// runner computes only what is missing, and the Gray-code walk counts the same on any split.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstring>
#include <limits>
#include <atomic>
#include <deque>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "helpers.hpp"
#include "panelboot/backend.hpp"
#include "panelboot/error.hpp"
#include "panelboot/mpi.hpp"
#include "panelboot/progress.hpp"
#include "panelboot/replications.hpp"
#include "panelboot/run_file.hpp"

namespace {
using namespace panelboot;

std::uint64_t bits(double d) {
  std::uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
}

double from_bits(std::uint64_t u) {
  double d;
  std::memcpy(&d, &u, sizeof d);
  return d;
}

// A task's "replications": counts (r mod 3 == 0, and r), values r * 0.1 and its square.
Segment fake_compute(RepRange r, int* calls = nullptr) {
  if (calls) ++*calls;
  Segment s{r, {0, 0}, {}};
  for (std::uint64_t b = r.begin; b < r.end; ++b) {
    s.counts[0] += b % 3 == 0;
    s.counts[1] += static_cast<std::int64_t>(b);
    s.values.push_back(static_cast<double>(b) * 0.1);
    s.values.push_back(static_cast<double>(b) * static_cast<double>(b) * 0.1);
  }
  return s;
}

TEST(Replications, SharesTileEveryTaskOnItsAlignment) {
  PB_FRESH_RNG(rng);
  for (int trial = 0; trial < 300; ++trial) {
    const std::uint64_t n_rep = rng() % 5000, align = 1 + rng() % 64, n = 1 + rng() % 40;
    std::uint64_t pos = 0;
    for (std::uint64_t i = 1; i <= n; ++i) {
      const RepRange s = share_of(n_rep, align, i, n);
      EXPECT_EQ(s.begin, pos);
      EXPECT_LE(s.begin, s.end);
      if (s.end != n_rep) {
        EXPECT_EQ(s.end % align, 0u);
      }
      // shares differ by at most one unit of the alignment
      EXPECT_LE(s.size(), (n_rep + align - 1) / align / n * align + align);
      pos = s.end;
    }
    EXPECT_EQ(pos, n_rep);
  }
  EXPECT_THROW(share_of(10, 1, 0, 3), InvalidInput);
  EXPECT_THROW(share_of(10, 1, 4, 3), InvalidInput);
}

TEST(Replications, SegmentsJoinExactlyInAnyOrderAndRefuseOverlaps) {
  PB_FRESH_RNG(rng);
  const TaskSpec spec{"t", 1000, 1, 2, 2};
  const Segment whole = fake_compute({0, 1000});
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<std::uint64_t> cuts = {0, 1000};
    for (int k = 0; k < 6; ++k) cuts.push_back(rng() % 1000);
    std::sort(cuts.begin(), cuts.end());
    std::vector<RepRange> ranges;
    for (std::size_t i = 0; i + 1 < cuts.size(); ++i)
      if (cuts[i] < cuts[i + 1]) ranges.push_back({cuts[i], cuts[i + 1]});
    std::shuffle(ranges.begin(), ranges.end(), rng);
    TaskRecord rec{spec, {}};
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      EXPECT_FALSE(rec.complete());
      rec.add(fake_compute(ranges[i]));
    }
    ASSERT_TRUE(rec.complete());
    ASSERT_EQ(rec.segments.size(), 1u);
    EXPECT_EQ(rec.whole().counts, whole.counts);
    EXPECT_EQ(rec.whole().values, whole.values);
  }
  TaskRecord rec{spec, {}};
  rec.add(fake_compute({100, 200}));
  EXPECT_THROW(rec.add(fake_compute({199, 300})), InvalidInput);
  EXPECT_THROW(rec.add(fake_compute({50, 101})), InvalidInput);
  EXPECT_THROW(rec.add(fake_compute({900, 1001})), InvalidInput);  // beyond the task
  EXPECT_THROW(rec.whole(), InvalidInput);
  ASSERT_EQ(rec.missing().size(), 2u);
  EXPECT_EQ(rec.missing()[1].begin, 200u);
}

TEST(Replications, RunFilesKeepEveryBit) {
  const double nan_payload = from_bits(0x7ff8000000000123ULL);
  RunFile f{"partial", R"({"command":"wild","seed":"1"})", {}};
  TaskRecord r{TaskSpec{"test 1: x = 0", 7, 1, 2, 1}, {}};
  r.add(Segment{{2, 7},
                {10, 3},
                {-0.0, nan_payload, std::numeric_limits<double>::denorm_min(), -std::numeric_limits<double>::infinity(),
                 0.1 + 0.2}});
  f.tasks.push_back(r);
  const RunFile g = parse_run_file(run_file_text(f), "x.json");
  EXPECT_EQ(g.kind, "partial");
  ASSERT_EQ(g.tasks.size(), 1u);
  EXPECT_EQ(g.tasks[0].spec.key, "test 1: x = 0");
  ASSERT_EQ(g.tasks[0].segments.size(), 1u);
  const Segment& s = g.tasks[0].segments[0];
  EXPECT_EQ(s.counts, r.segments[0].counts);
  ASSERT_EQ(s.values.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i)
    EXPECT_EQ(bits(s.values[i]), bits(r.segments[0].values[i])) << i;
  EXPECT_THROW(parse_run_file("{\"a\": 1}", "x.json"), InvalidInput);
  EXPECT_THROW(parse_run_file("not json", "x.json"), InvalidInput);
  const std::string text = run_file_text(f);
  const auto edited = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    t.replace(t.find(from), from.size(), to);
    return t;
  };
  EXPECT_THROW(parse_run_file(edited("\"end\": 7", "\"end\": 6"), "x.json"), InvalidInput);  // 5 values, 4 replications
  EXPECT_THROW(parse_run_file(edited("\"end\": 7", "\"end\": 8"), "x.json"), InvalidInput);  // beyond n_rep
  EXPECT_THROW(parse_run_file(edited("\"begin\": 2", "\"begin\": 2.5"), "x.json"), InvalidInput);
  // counts below 0, above twice the range's replications, or not whole numbers
  EXPECT_THROW(parse_run_file(edited("10,", "-10,"), "x.json"), InvalidInput);
  EXPECT_THROW(parse_run_file(edited("10,", "11,"), "x.json"), InvalidInput);
  EXPECT_THROW(parse_run_file(edited("10,", "1e300,"), "x.json"), InvalidInput);
  EXPECT_NO_THROW(parse_run_file(edited("10,", "9,"), "x.json"));
}

TEST(Replications, ACheckpointComputesOnlyWhatIsMissing) {
  const TaskSpec spec{"t", 5000, 8, 2, 2};
  int saves = 0;
  TaskRecords last;
  CheckpointRunner first({}, 1e9, [&](const TaskRecords& r) {
    ++saves;
    last = r;
  });
  int calls = 0;
  const Segment a = first.run(spec, [&](RepRange r) {
    EXPECT_TRUE(r.begin % 8 == 0 && (r.end % 8 == 0 || r.end == 5000));
    return fake_compute(r, &calls);
  }, nullptr);
  EXPECT_EQ(saves, 2);  // after the first block, then at the task's end (none between: every_s is long)
  EXPECT_GT(calls, 1);
  EXPECT_EQ(a.values, fake_compute({0, 5000}).values);
  // a resumed run with a hole in the middle computes the hole only
  TaskRecord partial{spec, {}};
  partial.add(fake_compute({0, 1000}));
  partial.add(fake_compute({3000, 5000}));
  CheckpointRunner resumed({partial}, 1e9, [](const TaskRecords&) {});
  std::uint64_t computed = 0;
  const Segment b = resumed.run(spec, [&](RepRange r) {
    EXPECT_GE(r.begin, 1000u);
    EXPECT_LE(r.end, 3000u);
    computed += r.size();
    return fake_compute(r);
  }, nullptr);
  EXPECT_EQ(computed, 2000u);
  EXPECT_EQ(b.counts, fake_compute({0, 5000}).counts);
  // another task shape under the same key: written by another run
  CheckpointRunner other({partial}, 1e9, [](const TaskRecords&) {});
  EXPECT_THROW(other.run(TaskSpec{"t", 4000, 8, 2, 2}, [](RepRange r) { return fake_compute(r); }, nullptr), InvalidInput);
}

TEST(Replications, AShardRunnerComputesAndKeepsItsShareOnly) {
  const TaskSpec spec{"t", 100, 1, 2, 2};
  ShardRunner shard(2, 3);
  const Segment s = shard.run(spec, [](RepRange r) { return fake_compute(r); }, nullptr);
  EXPECT_FALSE(shard.complete());
  ASSERT_EQ(shard.records().size(), 1u);
  EXPECT_EQ(shard.records()[0].segments[0].range.begin, 33u);
  EXPECT_EQ(shard.records()[0].segments[0].range.end, 66u);
  EXPECT_EQ(s.range.begin, 33u);
  ASSERT_EQ(s.values.size(), 66u);
  EXPECT_EQ(s.values[2 * 7], 4.0);  // replication 40
  EXPECT_EQ(s.counts, fake_compute({33, 66}).counts);
}

TEST(Replications, TheGrayWalkCountsTheSameOnAnySplitOfItsBlocks) {
  PB_FRESH_RNG(rng);
  const int G = 17;
  const pbtest::RandomGray rg = pbtest::random_gray(rng, G, 25);
  kernels::GrayProblem p = rg.problem();
  p.t = 0.7;
  p.tol = 1e-10;
  const Backend& be = pbtest::cpu_backend();
  const BootCounts whole = be.wild_enumerate(p, nullptr);
  EXPECT_EQ(whole.finite, std::int64_t{1} << G);
  const std::uint64_t n_vec = std::uint64_t{1} << (G - 1);
  for (std::uint64_t n : {2u, 3u, 7u, 32u}) {
    BootCounts sum;
    for (std::uint64_t i = 1; i <= n; ++i) {
      const RepRange r = share_of(n_vec, kernels::kGrayBlock, i, n);
      kernels::GrayProblem part = p;
      part.lo = r.begin;
      part.hi = r.end;
      if (r.size()) sum = sum + be.wild_enumerate(part, nullptr);
    }
    EXPECT_EQ(sum.abs, whole.abs) << n;
    EXPECT_EQ(sum.upper, whole.upper) << n;
    EXPECT_EQ(sum.lower, whole.lower) << n;
    EXPECT_EQ(sum.finite, whole.finite) << n;
  }
}

// ---- MPI ranks without MPI: ranks as threads, messages through in-process mailboxes ----

class Mailboxes {
 public:
  explicit Mailboxes(int n) : boxes_(static_cast<std::size_t>(n)) {}
  void put(int to, int from, int tag, const std::string& bytes) {
    std::lock_guard<std::mutex> lock(m_);
    boxes_[static_cast<std::size_t>(to)].push_back({from, static_cast<mpi::Tag>(tag), bytes});
  }
  bool take(int rank, mpi::Message& out) {
    std::lock_guard<std::mutex> lock(m_);
    auto& box = boxes_[static_cast<std::size_t>(rank)];
    if (box.empty()) return false;
    out = std::move(box.front());
    box.pop_front();
    return true;
  }

 private:
  std::mutex m_;
  std::vector<std::deque<mpi::Message>> boxes_;
};

class ThreadRank final : public mpi::Communicator {
 public:
  ThreadRank(Mailboxes& boxes, int rank, int size) : boxes_(boxes), rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return rank_; }
  int local_size() const override { return size_; }
  void send(int to, int tag, const std::string& bytes) override { boxes_.put(to, rank_, tag, bytes); }
  bool try_receive(int& from, int& tag, std::string& bytes) override {
    mpi::Message m;
    if (!boxes_.take(rank_, m)) return false;
    from = m.from;
    tag = static_cast<int>(m.tag);
    bytes = std::move(m.body);
    return true;
  }
  void finalize() override {}

 private:
  Mailboxes& boxes_;
  int rank_, size_;
};

struct CountingSink final : ProgressSink {
  std::atomic<std::uint64_t> units{0};
  void advance(std::uint64_t n) override { units += n; }
};

// Runs `body(session, rank)` on n ranks (threads) and ends each as main() does: a worker's error
// line goes to rank 0, which returns the job's status.
int run_ranks(int n, const std::function<int(mpi::Session&, int)>& body, std::string* root_err = nullptr) {
  Mailboxes boxes(n);
  std::vector<std::thread> threads;
  int status = -1;
  std::mutex out;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      mpi::Session s(std::make_unique<ThreadRank>(boxes, r, n));
      int st = 0;
      std::string text;
      try {
        st = body(s, r);
      } catch (const mpi::StoppedByRoot&) {
        st = 0;
      } catch (const mpi::RankFailed& e) {
        st = e.status();
        text = e.what();
      } catch (const std::exception& e) {
        st = 2;
        text = std::string("panelboot: error: ") + e.what() + "\n";
      }
      std::ostringstream err;
      st = s.end(st, text, err);
      if (r == 0) {
        std::lock_guard<std::mutex> lock(out);
        status = st;
        if (root_err) *root_err = text + err.str();
      }
    });
  for (std::thread& t : threads) t.join();
  return status;
}

TEST(MpiRunner, RanksOfAnySpeedGiveTheWholeTaskAndTheSlowRankDoesLess) {
  PB_FRESH_RNG(rng);
  for (int trial = 0; trial < 6; ++trial) {
    const int n = 2 + static_cast<int>(rng() % 3);
    const TaskSpec a{"a", 2000 + rng() % 20000, 1 + rng() % 64, 2, 2}, empty{"empty", 0, 1, 2, 2};
    std::vector<std::uint64_t> done(static_cast<std::size_t>(n), 0);
    std::vector<CountingSink> progress(static_cast<std::size_t>(n));
    std::vector<Segment> got;
    const int status = run_ranks(n, [&](mpi::Session& s, int rank) {
      mpi::MpiRunner runner(s, {}, 0, nullptr);
      CountingSink& sink = progress[static_cast<std::size_t>(rank)];
      EXPECT_EQ(runner.planned(a), rank == 0 ? a.n_rep : 0u);  // rank 0 shows the job's progress
      const auto compute = [&, rank](RepRange r) {
        EXPECT_TRUE(r.begin % a.align == 0 && (r.end % a.align == 0 || r.end == a.n_rep)) << r.begin << ".." << r.end;
        done[static_cast<std::size_t>(rank)] += r.size();  // each rank writes its own slot
        sink.advance(r.size());                            // as an engine's compute does
        if (rank == n - 1) std::this_thread::sleep_for(std::chrono::microseconds(20 * r.size()));  // a slow rank
        return fake_compute(r);
      };
      const Segment whole = runner.run(a, compute, &sink);
      const Segment none = runner.run(empty, compute, &sink);
      if (rank == 0) got = {whole, none};
      EXPECT_EQ(runner.complete(), rank == 0);
      return 0;
    });
    ASSERT_EQ(status, 0);
    ASSERT_EQ(got.size(), 2u);
    const Segment want = fake_compute({0, a.n_rep});
    EXPECT_EQ(got[0].counts, want.counts);
    EXPECT_EQ(got[0].values, want.values);
    EXPECT_EQ(got[1].range.size(), 0u);
    std::uint64_t total = 0;
    for (std::uint64_t d : done) total += d;
    EXPECT_EQ(total, a.n_rep);  // every replication once
    // rank 0's progress counts every rank's ranges, a worker's its own
    EXPECT_EQ(progress[0].units.load(), a.n_rep);
    for (int r = 1; r < n; ++r) EXPECT_EQ(progress[static_cast<std::size_t>(r)].units.load(), done[static_cast<std::size_t>(r)]);
    // the slow rank (20 us per replication) did less than the fastest
    EXPECT_LT(done.back(), *std::max_element(done.begin(), done.end() - 1)) << "n " << n << ", reps " << a.n_rep;
  }
}

TEST(MpiRunner, AWorkersErrorStopsTheJobOnceAndNoRankWaits) {
  std::string err;
  const TaskSpec a{"a", 50000, 1, 2, 2};
  const int status = run_ranks(3, [&](mpi::Session& s, int rank) {
    mpi::MpiRunner runner(s, {}, 0, nullptr);
    runner.run(a, [&](RepRange r) {
      if (rank == 1 && r.begin > 0) throw InvalidInput("rank one broke");
      std::this_thread::sleep_for(std::chrono::microseconds(r.size()));
      return fake_compute(r);
    }, nullptr);
    return 0;
  }, &err);
  EXPECT_EQ(status, 2);
  EXPECT_NE(err.find("panelboot: rank 1: error: rank one broke"), std::string::npos) << err;
  EXPECT_EQ(err.find("rank 2"), std::string::npos) << err;  // the stopped rank says nothing
}

TEST(MpiRunner, RanksThatRunOtherJobsAreRefusedBeforeAnyReplication) {
  std::string err;
  const int status = run_ranks(3, [&](mpi::Session& s, int rank) {
    s.agree_on_run(rank == 2 ? "B 999" : "B 9999",
                   [](const std::string& x, const std::string& y) { return x == y ? "" : "option --B"; });
    ADD_FAILURE() << "rank " << rank << " went on";
    return 0;
  }, &err);
  EXPECT_EQ(status, 2);
  EXPECT_NE(err.find("rank 2 runs another job than rank 0: it differs in option --B"), std::string::npos) << err;
}

}  // namespace
