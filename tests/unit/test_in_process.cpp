// A run inside another program (run_cli_in_process, the Python package's path): a frame of
// borrowed columns gives the owned frame's result bit for bit, text and JSON reports together, a
// stop signal between replication blocks, and --save-draws.
#include <gtest/gtest.h>

#include <csignal>
#include <chrono>
#include <random>
#include <thread>

#include "helpers.hpp"
#include "panelboot/cli.hpp"
#include "panelboot/report.hpp"

using namespace panelboot;

namespace {

// A random panel: ids (whole numbers, 0..59 scrambled), periods, x1, x2, y.
struct Panel {
  std::vector<std::int64_t> id, period;
  std::vector<double> x1, x2, y;
};

Panel random_panel(std::uint64_t seed, std::size_t n_units = 60, std::size_t n_periods = 6) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z;
  Panel p;
  for (std::size_t i = 0; i < n_units; ++i)
    for (std::size_t t = 0; t < n_periods; ++t) {
      p.id.push_back(static_cast<std::int64_t>((i * 37) % n_units));
      p.period.push_back(static_cast<std::int64_t>(2000 + t));
      const double a = z(rng), b = z(rng);
      p.x1.push_back(a);
      p.x2.push_back(b);
      p.y.push_back(0.5 * a - b + 0.1 * static_cast<double>(i % 7) + z(rng));
    }
  return p;
}

DataFrame owned_frame(const Panel& p) {
  DataFrame df;
  df.source = "test";
  auto as_double = [](const std::vector<std::int64_t>& v) { return std::vector<double>(v.begin(), v.end()); };
  df.columns = {pbtest::numeric_column("id", as_double(p.id)), pbtest::numeric_column("period", as_double(p.period)),
                pbtest::numeric_column("x1", p.x1), pbtest::numeric_column("x2", p.x2),
                pbtest::numeric_column("y", p.y)};
  for (std::size_t r = 0; r < p.y.size(); ++r) df.row_line.push_back(static_cast<std::uint32_t>(r + 2));
  return df;
}

Column borrowed(const std::string& name, const std::vector<double>& v) {
  Column c;
  c.name = name;
  c.borrowed = v.data();
  c.borrowed_rows = v.size();
  return c;
}

Column borrowed_int(const std::string& name, const std::vector<std::int64_t>& v) {
  Column c;
  c.name = name;
  c.borrowed_int = v.data();
  c.borrowed_rows = v.size();
  return c;
}

DataFrame borrowed_frame(const Panel& p) {
  DataFrame df;
  df.source = "pandas DataFrame";
  df.row_unit = "row";
  df.rows_in_memory = p.y.size();
  df.columns = {borrowed_int("id", p.id), borrowed_int("period", p.period), borrowed("x1", p.x1), borrowed("x2", p.x2),
                borrowed("y", p.y)};
  df.names_not_loaded = {"weight_col"};
  return df;
}

struct InProcess {
  int status;
  std::string out, err, text;
};

InProcess run_in_process(const std::vector<std::string>& args, DataFrame df, bool text_too = false) {
  InProcessRun in;
  in.data = &df;
  in.text_too = text_too;
  std::ostringstream out, err;
  const int st = run_cli_in_process(args, in, out, err);
  return {st, out.str(), err.str(), in.text};
}

// The report without the fields that name the data or time the run.
nlohmann::json numbers_of(const std::string& report) {
  nlohmann::json j = nlohmann::json::parse(report);
  std::function<void(nlohmann::json&)> strip = [&](nlohmann::json& x) {
    if (x.is_object()) {
      x.erase("timing");
      x.erase("data");
      for (auto& [k, v] : x.items()) strip(v);
    } else if (x.is_array()) {
      for (auto& v : x) strip(v);
    }
  };
  strip(j);
  return j;
}

}  // namespace

TEST(InProcess, BorrowedColumnsGiveTheOwnedFramesResultBitForBit) {
  for (std::uint64_t seed : {pbtest::fresh_seed(), pbtest::fresh_seed()}) {
    const Panel p = random_panel(seed);
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"fit", "-f", "y ~ x1 + x2 | id + period", "--cluster", "id,period", "--format", "json"},
             {"wild", "-f", "y ~ x1 + x2 | id + period", "--cluster", "id", "--test", "x1 = 0.5", "--B", "499",
              "--format", "json"}}) {
      const InProcess a = run_in_process(args, owned_frame(p));
      const InProcess b = run_in_process(args, borrowed_frame(p));
      ASSERT_EQ(a.status, 0) << a.err;
      ASSERT_EQ(b.status, 0) << b.err;
      EXPECT_EQ(numbers_of(a.out), numbers_of(b.out)) << "seed " << seed << " " << args[0];
    }
  }
}

TEST(InProcess, KeepsTheTextReportBesideTheJsonOneAndTimesTheFit) {
  const Panel p = random_panel(3);
  const InProcess r = run_in_process({"fit", "-f", "y ~ x1 | id", "--cluster", "id", "--format", "json"},
                                     borrowed_frame(p), true);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.text.find("Model: y ~ x1 | id"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("Data: pandas DataFrame"), std::string::npos);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["models"][0]["timing"]["fit_s"].get<double>(), 0.0);
  EXPECT_GE(j["models"][0]["timing"]["design_s"].get<double>(), 0.0);
}

TEST(InProcess, NamesRowsByPositionAndOffersColumnsNotHandedOver) {
  const Panel p = random_panel(4);
  std::vector<double> x = p.x1;
  x[7] = -INFINITY;
  DataFrame df = borrowed_frame(p);
  df.columns[2] = borrowed("x1", x);
  df.columns[2].first_nonfinite_where = "pandas DataFrame, row 7 (x1)";
  df.columns[2].first_nonfinite_value = "-inf";
  InProcess r = run_in_process({"fit", "-f", "y ~ x1 | id"}, df);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("non-finite value '-inf' at pandas DataFrame, row 7 (x1)"), std::string::npos) << r.err;
  r = run_in_process({"fit", "-f", "y ~ x2", "--weights", "weight_cl"}, borrowed_frame(p));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unknown variable 'weight_cl' in pandas DataFrame; did you mean 'weight_col'?"), std::string::npos)
      << r.err;
  // a duplicate (id, period) pair is named by both rows' positions
  Panel d = p;
  d.period[1] = d.period[0];
  r = run_in_process({"fit", "-f", "y ~ l(x1, 1) | id", "--panel", "id,period"}, borrowed_frame(d));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("at pandas DataFrame, row 0 and row 1"), std::string::npos) << r.err;
}

TEST(InProcess, AStopSignalEndsTheReplicationsBetweenBlocks) {
  const Panel p = random_panel(5, 200, 10);
  std::thread stopper([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    note_stop_signal(SIGINT);
  });
  const auto t0 = std::chrono::steady_clock::now();
  const InProcess r = run_in_process({"wild", "-f", "y ~ x1 + x2 | id", "--cluster", "id", "--test", "x1 = 0.5",
                                      "--B", "1000000000", "--no-ci", "--threads", "1"},
                                     borrowed_frame(p));
  stopper.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  reset_stop_signal();
  EXPECT_EQ(r.status, 130) << r.err;
  EXPECT_NE(r.err.find("panelboot: interrupted by SIGINT"), std::string::npos) << r.err;
  EXPECT_LT(s, 5.0);
}

TEST(InProcess, SaveDrawsIsRefusedWhereTheDrawsAreNotAllHere) {
  const Panel p = random_panel(6);
  const std::string f = pbtest::temp_path(".csv");
  const std::vector<std::string> base = {"wild", "-f", "y ~ x1 + x2 | id", "--cluster", "id", "--test", "x1 = 0.5",
                                         "--save-draws", f};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return run_in_process(a, borrowed_frame(p));
  };
  InProcess r = with({"--shard", "1/2"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--save-draws needs every replication computed in one run"), std::string::npos) << r.err;
  r = with({"--enumerate", "always", "--no-ci"});  // 60 clusters: beyond the walk's 40 as well
  EXPECT_EQ(r.status, 2) << r.err;
  const Panel small = random_panel(7, 30);
  std::vector<std::string> a = {"wild", "-f", "y ~ x1 + x2 | id", "--cluster", "id", "--test", "x1 = 0.5",
                                "--save-draws", f, "--enumerate", "always", "--no-ci"};
  r = run_in_process(a, borrowed_frame(small));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--save-draws: with 30 clusters the 2^30 sign vectors are walked, not stored"), std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(f));
}
