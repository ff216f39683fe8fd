#pragma once
// Progress of long runs. Backends call ProgressSink::advance between batches (from any thread);
// the one reporter (ProgressReporter) decides what the user sees: on a terminal, a run predicted
// to take over ~2 s shows a line with the share done and the time left; a run predicted over
// ~1 minute also states its estimate once, on its own line, terminal or not (a job log).
// PANELBOOT_PROGRESS=always draws the line from the first batch on, terminal or not (logs,
// tests); =never shows nothing. `power`, `replicate` and MPI rank 0 reuse this reporter.
#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <mutex>
#include <string>

namespace panelboot {

class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  virtual void advance(std::uint64_t units) = 0;  // thread-safe
};

class ProgressReporter final : public ProgressSink {
 public:
  // kAuto: as kTerminal when `err` is std::cerr on a terminal, else only the estimate line;
  // kTerminal: the live line for runs predicted over kShowIfLongerS, from kShowAfterS on;
  // kAlways: the live line from the first batch on, whatever the run's length (logs, tests);
  // kNever: nothing.
  enum class Mode { kAuto, kTerminal, kAlways, kNever };
  struct Clock {
    std::function<double()> now;  // seconds; tests pass a fake one
  };
  // `label`: "wild bootstrap of 'x = 0'"; `unit`: "replications". Mode kAuto shows the live
  // line only when `err` is a terminal (stderr), kAlways always, kNever nothing at all.
  ProgressReporter(std::string label, std::string unit, std::uint64_t total, std::ostream* err,
                   Mode mode = mode_from_env(), Clock clock = {});
  ~ProgressReporter() override;
  void advance(std::uint64_t units) override;
  void finish();  // clears the live line; called by the destructor
  static Mode mode_from_env();

  static constexpr double kShowAfterS = 0.5;      // first live line no earlier than this
  static constexpr double kShowIfLongerS = 2.0;   // ... and only for runs predicted longer
  static constexpr double kAnnounceIfLongerS = 60.0;

 private:
  void report(double t, std::uint64_t done);
  std::string line(double t, std::uint64_t done) const;
  std::string label_, unit_;
  std::uint64_t total_;
  std::ostream* err_;
  bool live_, announce_, any_length_;
  Clock clock_;
  double t0_, last_draw_ = -1;
  bool drawn_ = false, announced_ = false;
  std::atomic<bool> finished_{false};
  std::atomic<std::uint64_t> done_{0};
  std::mutex draw_;
};

// "3.2 s", "4 min 10 s", "2 h 05 min", "3.1 days"
std::string format_duration(double seconds);

}  // namespace panelboot
