#pragma once
// Test helpers: run the CLI in-process, parse its JSON, compare with published digits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "panelboot/backend.hpp"
#include "panelboot/cli.hpp"
#include "panelboot/data_frame.hpp"

namespace pbtest {

inline std::string data_path(const std::string& name) { return std::string(PB_TEST_DATA_DIR) + "/" + name; }

// A numeric data-frame column.
inline panelboot::Column numeric_column(const std::string& name, const std::vector<double>& v) {
  panelboot::Column c;
  c.name = name;
  c.num = v;
  return c;
}

struct CliRun {
  int status;
  std::string out, err;
};

// The CPU reference backend, for engine calls that take a backend.
inline const panelboot::Backend& cpu_backend() {
  static const std::unique_ptr<panelboot::Backend> cpu = panelboot::make_backend(panelboot::Device::kCpu);
  return *cpu;
}

// A random enumeration problem: H = K'K of a normal rows x G matrix K, and a normal C (drawn
// after K); problem() points a GrayProblem at them, its t, tol, ties and range left to the caller.
struct RandomGray {
  Eigen::MatrixXd K, H;
  Eigen::VectorXd C;
  panelboot::kernels::GrayProblem problem() const {
    panelboot::kernels::GrayProblem p;
    p.H = H.data();
    p.C = C.data();
    p.n_clu = static_cast<int>(C.size());
    return p;
  }
};

inline RandomGray random_gray(std::mt19937_64& rng, int G, int rows) {
  std::normal_distribution<double> nd;
  RandomGray r;
  r.K.resize(rows, G);
  for (Eigen::Index i = 0; i < r.K.size(); ++i) r.K.data()[i] = nd(rng);
  r.C.resize(G);
  for (int g = 0; g < G; ++g) r.C(g) = nd(rng);
  r.H = r.K.transpose() * r.K;
  return r;
}

inline CliRun run(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int st = panelboot::run_cli(args, out, err);
  return {st, out.str(), err.str()};
}

// Runs `fit ... --format json` and returns the parsed JSON (fails the test on a non-zero exit).
inline nlohmann::json fit_json(std::vector<std::string> args) {
  args.insert(args.begin(), "fit");
  args.push_back("--format");
  args.push_back("json");
  const CliRun r = run(args);
  EXPECT_EQ(r.status, 0) << r.err;
  if (r.status != 0) return nlohmann::json::object();
  return nlohmann::json::parse(r.out);
}

inline const nlohmann::json& coef(const nlohmann::json& model, const std::string& name) {
  for (const auto& c : model.at("coefficients"))
    if (c.at("name") == name) return c;
  ADD_FAILURE() << "no coefficient " << name;
  static nlohmann::json none = {{"estimate", NAN}, {"std_error", NAN}, {"t_stat", NAN}};
  return none;
}

// |actual - published| within half a unit of the published number's last printed digit.
inline void expect_printed(double actual, const std::string& published, const std::string& what) {
  const double value = std::stod(published);
  const auto dot = published.find('.');
  const int decimals = dot == std::string::npos ? 0 : static_cast<int>(published.size() - dot - 1);
  const double tol = 0.5 * std::pow(10.0, -decimals) * (1 + 1e-9);
  EXPECT_NEAR(actual, value, tol) << what << ": published " << published;
}

// The (Pearson) correlation of the pairs (a_i, b_i).
inline double correlation(const std::vector<double>& a, const std::vector<double>& b) {
  double ma = 0, mb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ma += a[i];
    mb += b[i];
  }
  ma /= static_cast<double>(a.size());
  mb /= static_cast<double>(b.size());
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

// A fresh seed per run, printed so a failure can be replayed (PB_SEED=... overrides).
inline std::uint64_t fresh_seed() {
  if (const char* s = std::getenv("PB_SEED")) return std::strtoull(s, nullptr, 10);
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

// A generator `name` from a fresh seed that every failure of the enclosing test prints.
#define PB_FRESH_RNG(name)                                              \
  const std::uint64_t name##_seed = pbtest::fresh_seed();               \
  SCOPED_TRACE("PB_SEED=" + std::to_string(name##_seed));               \
  std::mt19937_64 name(name##_seed)

// The temporary paths a test process handed out, removed when it exits (children of run_process
// leave by exec or _exit, so only the test process removes them).
inline std::vector<std::string>& temp_registry() {
  struct Registry {
    std::vector<std::string> paths;
    ~Registry() {
      for (const std::string& p : paths) {
        std::error_code ec;
        std::filesystem::remove_all(p, ec);
      }
    }
  };
  static Registry r;
  return r.paths;
}

// A unique temporary path (not created), removed at exit: the process id alone can repeat across
// runs (a file left by an earlier process of the same id made mkfifo fail with EEXIST), so a
// random tag too.
inline std::string temp_path(const std::string& suffix) {
  static int counter = 0;
  static const std::string tag = std::to_string(std::random_device{}());
  auto dir = std::filesystem::temp_directory_path();
  const std::string p =
      (dir / ("pbtest_" + std::to_string(::getpid()) + "_" + tag + "_" + std::to_string(counter++) + suffix)).string();
  temp_registry().push_back(p);
  return p;
}

inline std::string write_temp(const std::string& content, const std::string& suffix = ".csv") {
  const std::string p = temp_path(suffix);
  FILE* f = std::fopen(p.c_str(), "wb");
  std::fwrite(content.data(), 1, content.size(), f);
  std::fclose(f);
  return p;
}

}  // namespace pbtest
