#include "panelboot/progress.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace panelboot {
namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// 12345678 -> "12.3M"
std::string short_count(std::uint64_t n) {
  char buf[32];
  const double v = static_cast<double>(n);
  if (v >= 1e12) std::snprintf(buf, sizeof buf, "%.3gT", v / 1e12);
  else if (v >= 1e9) std::snprintf(buf, sizeof buf, "%.3gG", v / 1e9);
  else if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.3gM", v / 1e6);
  else if (v >= 1e4) std::snprintf(buf, sizeof buf, "%.3gk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(n));
  return buf;
}

}  // namespace

std::string format_duration(double s) {
  char buf[48];
  if (!(s < 1e12)) return "a very long time";
  if (s < 60) std::snprintf(buf, sizeof buf, "%.1f s", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%d min %02d s", static_cast<int>(s / 60), static_cast<int>(s) % 60);
  else if (s < 86400 * 2) std::snprintf(buf, sizeof buf, "%d h %02d min", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%.1f days", s / 86400);
  return buf;
}

ProgressReporter::Mode ProgressReporter::mode_from_env() {
  const char* e = std::getenv("PANELBOOT_PROGRESS");
  if (e && std::strcmp(e, "always") == 0) return Mode::kAlways;
  if (e && std::strcmp(e, "never") == 0) return Mode::kNever;
  return Mode::kAuto;
}

ProgressReporter::ProgressReporter(std::string label, std::string unit, std::uint64_t total, std::ostream* err,
                                   Mode mode, Clock clock)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), err_(err), clock_(std::move(clock)) {
  if (!clock_.now) clock_.now = steady_seconds;
  t0_ = clock_.now();
  if (mode == Mode::kAuto) mode = err_ == &std::cerr && ::isatty(STDERR_FILENO) ? Mode::kTerminal : Mode::kAuto;
  live_ = err_ && (mode == Mode::kTerminal || mode == Mode::kAlways);
  any_length_ = mode == Mode::kAlways;
  announce_ = err_ && mode != Mode::kNever;
}

ProgressReporter::~ProgressReporter() { finish(); }

void ProgressReporter::advance(std::uint64_t units) {
  const std::uint64_t done = done_.fetch_add(units) + units;
  if (!announce_ || finished_) return;
  std::unique_lock<std::mutex> lock(draw_, std::try_to_lock);  // one thread draws; the others go on
  if (!lock.owns_lock()) return;
  report(clock_.now() - t0_, done);
}

std::string ProgressReporter::line(double t, std::uint64_t done) const {
  const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  char pct[16];
  std::snprintf(pct, sizeof pct, "%.0f%%", 100 * frac);
  const double left = frac > 0 ? t * (1 - frac) / frac : INFINITY;
  return "panelboot: " + label_ + ": " + pct + " (" + short_count(done) + " of " + short_count(total_) + " " + unit_ +
         "), about " + format_duration(left) + " left";
}

void ProgressReporter::report(double t, std::uint64_t done) {
  if ((t < kShowAfterS && !any_length_) || done == 0 || done >= total_) return;
  const double predicted = t * static_cast<double>(total_) / static_cast<double>(done);
  if (announce_ && !announced_ && predicted >= kAnnounceIfLongerS && t >= 1.0) {
    announced_ = true;
    if (drawn_) *err_ << "\r\x1b[K";
    *err_ << "panelboot: " << label_ << " will take about " << format_duration(predicted) << " in all (" << total_
          << " " << unit_ << "; estimated from the first " << format_duration(t) << ")\n";
    drawn_ = false;
  }
  if (!live_ || (predicted < kShowIfLongerS && !any_length_) || (last_draw_ >= 0 && t - last_draw_ < 0.25)) return;
  last_draw_ = t;
  *err_ << "\r" << line(t, done) << "\x1b[K" << std::flush;
  drawn_ = true;
}

void ProgressReporter::finish() {
  std::lock_guard<std::mutex> lock(draw_);
  if (finished_.exchange(true)) return;
  if (drawn_) *err_ << "\r\x1b[K" << std::flush;
}

}  // namespace panelboot
