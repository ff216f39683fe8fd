// Two-way FE OLS with one-way clustered SE on N = n_units x n_periods rows, 5 regressors, and
// two-way FE 2SLS (BM_Iv*), from columns in memory (Google Benchmark). Sizes from the command line:
//   bench_fit [--units 100000] [--periods 100] [google-benchmark flags]
// Reports wall time per fit and the process's peak resident memory.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>

#include "panelboot/data_frame.hpp"
#include "panelboot/design.hpp"
#include "panelboot/estimate.hpp"
#include "panelboot/memory.hpp"

using namespace panelboot;

namespace {

long g_units = 100000, g_periods = 100;
DataFrame* g_df = nullptr;

DataFrame make_panel(long n_units, long n_periods) {
  const std::size_t n = static_cast<std::size_t>(n_units * n_periods);
  DataFrame df;
  df.source = "bench";
  auto add = [&](const char* name) -> std::vector<double>& {
    Column c;
    c.name = name;
    c.num.resize(n);
    df.columns.push_back(std::move(c));
    return df.columns.back().num;
  };
  df.columns.reserve(8);
  auto& unit = add("unit");
  auto& time = add("time");
  auto& y = add("y");
  std::vector<double>* x[5];
  for (int j = 0; j < 5; ++j) x[j] = &add(("x" + std::to_string(j + 1)).c_str());
  std::mt19937_64 rng(42);
  std::normal_distribution<double> nd;
  std::vector<double> ua(n_units), ta(n_periods);
  for (auto& a : ua) a = nd(rng);
  for (auto& a : ta) a = nd(rng);
  for (long i = 0; i < n_units; ++i)
    for (long t = 0; t < n_periods; ++t) {
      const std::size_t r = static_cast<std::size_t>(i * n_periods + t);
      unit[r] = static_cast<double>(i);
      time[r] = static_cast<double>(t);
      double yv = ua[i] + ta[t] + nd(rng);
      for (int j = 0; j < 5; ++j) {
        const double xv = nd(rng) + 0.5 * ua[i];
        (*x[j])[r] = xv;
        yv += 0.1 * (j + 1) * xv;
      }
      y[r] = yv;
    }
  df.row_line.assign(n, 0);
  return df;
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

const Formula& ols_formula() {
  static const Formula f = parse_formula("y ~ x1 + x2 + x3 + x4 + x5 | unit + time");
  return f;
}

SampleOptions sample() {
  SampleOptions s;
  s.cluster = {"unit"};
  return s;
}

// The two models timed: two-way FE OLS with 5 regressors, and 2SLS with its diagnostics in the
// shape of bench/peers/iv.py (one exogenous, one endogenous regressor, two instruments; the
// columns' roles only: the timing does not depend on the DGP).
const Formula& iv_formula() {
  static const Formula f = parse_formula("y ~ x4 | unit + time | x1 ~ x2 + x3");
  return f;
}

// From the data frame: sample, design matrix, demeaning, solve, clustered variance.
void BM_FromColumns(benchmark::State& state, const Formula& (*model)()) {
  FitOptions fo;
  fo.vcov = VcovType::kCluster;
  for (auto _ : state) {
    Design d = build_design(*g_df, model(), sample());
    FitResult r = fit(d, fo);
    benchmark::DoNotOptimize(r.coefficients.data());
  }
  state.counters["rows"] = static_cast<double>(g_df->n_rows());
  state.counters["peak_rss_MB"] = peak_rss_mb();
}

// The estimator alone on a prepared design (demeaning, solve, clustered variance).
void BM_PreparedDesign(benchmark::State& state, const Formula& (*model)()) {
  FitOptions fo;
  fo.vcov = VcovType::kCluster;
  const Design base = build_design(*g_df, model(), sample());
  for (auto _ : state) {
    state.PauseTiming();
    Design d = base;
    state.ResumeTiming();
    FitResult r = fit(d, fo);
    benchmark::DoNotOptimize(r.coefficients.data());
  }
  state.counters["peak_rss_MB"] = peak_rss_mb();
}

}  // namespace

// the names RESULTS.md quotes: BM_FitFromColumns, BM_FitPreparedDesign, BM_IvFromColumns, BM_IvPreparedDesign
BENCHMARK_CAPTURE(BM_FromColumns, Fit, ols_formula)->Name("BM_FitFromColumns")->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK_CAPTURE(BM_PreparedDesign, Fit, ols_formula)->Name("BM_FitPreparedDesign")->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK_CAPTURE(BM_FromColumns, Iv, iv_formula)->Name("BM_IvFromColumns")->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK_CAPTURE(BM_PreparedDesign, Iv, iv_formula)->Name("BM_IvPreparedDesign")->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

int main(int argc, char** argv) {
  // the allocator as panelboot's main() sets it (host/src/cli/main.cpp): freed blocks stay in
  // the heap for reuse, so the engine is timed as the program runs it
  keep_freed_memory_for_reuse();
  std::vector<char*> rest;
  for (int a = 0; a < argc; ++a) {
    if (!std::strcmp(argv[a], "--units") && a + 1 < argc) g_units = std::atol(argv[++a]);
    else if (!std::strcmp(argv[a], "--periods") && a + 1 < argc) g_periods = std::atol(argv[++a]);
    else rest.push_back(argv[a]);
  }
  int n = static_cast<int>(rest.size());
  DataFrame df = make_panel(g_units, g_periods);
  g_df = &df;
  std::printf("data: %ld units x %ld periods = %ld rows, 8 columns (%.0f MB as doubles); peak RSS after "
              "generation %.0f MB\n",
              g_units, g_periods, g_units * g_periods, g_units * g_periods * 8 * 8 / 1e6, peak_rss_mb());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
