// The progress reporter's rules on a fake clock: when the live line appears, what it says, the
// one-time estimate of long runs, and silence for short ones.
#include <gtest/gtest.h>

#include <sstream>

#include "panelboot/progress.hpp"

using panelboot::ProgressReporter;

namespace {

struct FakeClock {
  double t = 0;
  ProgressReporter::Clock clock() {
    return {[this] { return t; }};
  }
};

}  // namespace

TEST(Progress, ATerminalSeesNothingForARunPredictedUnderTwoSeconds) {
  FakeClock c;
  std::ostringstream err;
  {
    ProgressReporter p("wild bootstrap of 'x = 0'", "replications", 1000, &err, ProgressReporter::Mode::kTerminal,
                       c.clock());
    c.t = 0.6;
    p.advance(500);  // 1.2 s predicted
    c.t = 1.1;
    p.advance(499);
  }
  EXPECT_EQ(err.str(), "");
}

TEST(Progress, ATerminalSeesShareCountAndTimeLeftForALongRunThenAClearedLine) {
  FakeClock c;
  std::ostringstream err;
  ProgressReporter p("wild bootstrap of 'x = 0'", "replications", 10000000, &err, ProgressReporter::Mode::kTerminal,
                     c.clock());
  c.t = 0.4;
  p.advance(1000000);  // before 0.5 s: nothing
  EXPECT_EQ(err.str(), "");
  c.t = 1.0;
  p.advance(1000000);  // 2M of 10M after 1 s: 4 s left
  EXPECT_EQ(err.str(), "\rpanelboot: wild bootstrap of 'x = 0': 20% (2M of 10M replications), about 4.0 s left\x1b[K");
  c.t = 1.1;
  p.advance(100000);  // within 0.25 s of the last draw: not redrawn
  EXPECT_EQ(err.str().find("21%"), std::string::npos);
  p.finish();
  EXPECT_EQ(err.str().substr(err.str().size() - 4), "\r\x1b[K");
}

TEST(Progress, ARunPredictedOverAMinuteStatesItsEstimateOnceEvenWithoutATerminal) {
  FakeClock c;
  std::ostringstream err;
  ProgressReporter p("enumeration of 2^40 sign vectors for 'x = 0'", "sign-vector pairs", 1000000, &err,
                     ProgressReporter::Mode::kAuto, c.clock());  // not std::cerr: no live line
  c.t = 1.5;
  p.advance(10000);  // 1% after 1.5 s: 150 s in all
  c.t = 3.0;
  p.advance(10000);
  EXPECT_EQ(err.str(),
            "panelboot: enumeration of 2^40 sign vectors for 'x = 0' will take about 2 min 30 s in all (1000000 "
            "sign-vector pairs; estimated from the first 1.5 s)\n");
}

TEST(Progress, NeverMeansNothingAndNullMeansNothing) {
  FakeClock c;
  std::ostringstream err;
  ProgressReporter p("x", "replications", 100, &err, ProgressReporter::Mode::kNever, c.clock());
  c.t = 100;
  p.advance(1);
  EXPECT_EQ(err.str(), "");
  ProgressReporter q("x", "replications", 100, nullptr, ProgressReporter::Mode::kAlways, c.clock());
  q.advance(1);  // no stream: no crash, no output
}

TEST(Progress, DurationsReadAsPeopleSayThem) {
  EXPECT_EQ(panelboot::format_duration(3.21), "3.2 s");
  EXPECT_EQ(panelboot::format_duration(250), "4 min 10 s");
  EXPECT_EQ(panelboot::format_duration(7500), "2 h 05 min");
  EXPECT_EQ(panelboot::format_duration(3 * 86400), "3.0 days");
}
