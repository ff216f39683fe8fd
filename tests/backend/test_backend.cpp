// One suite over every compiled backend (cpu, cuda). Each backend is held to the CPU reference
// on the same inputs, and the CPU reference to independent computations (the scalar weight
// function, a second enumeration algorithm, Eigen's solvers). CUDA rows skip when no device is
// present; built as test_gpu_backend (ctest label "gpu", PB_REQUIRE_GPU) they fail instead, so
// the device check cannot pass by skipping.
#include <dlfcn.h>
#include <sched.h>

#include <Eigen/Dense>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend/cpu/cpu.hpp"
#include "backend/cpu/threshold_batch.hpp"
#include "helpers.hpp"
#include "panelboot/backend.hpp"
#include "panelboot/config.hpp"
#include "panelboot/design.hpp"
#include "panelboot/error.hpp"
#include "panelboot/kernels/power_batch.hpp"
#include "panelboot/threshold.hpp"
#include "panelboot/wild.hpp"

using namespace panelboot;

namespace {

#ifndef PB_REQUIRE_GPU
#define PB_REQUIRE_GPU 0
#endif

std::unique_ptr<Backend> backend_or_skip(Device d) {
  if (d == Device::kCpu) return make_backend(Device::kCpu);
  std::string why;
  if (!PANELBOOT_HAVE_CUDA || cuda::usable_devices(why) == 0) {
    if (PB_REQUIRE_GPU) ADD_FAILURE() << "the gpu-labelled tests need a usable GPU: " << why;
    return nullptr;
  }
  return make_backend(Device::kCuda);
}

#define PB_BACKEND_OR_SKIP(var)                                     \
  const std::unique_ptr<Backend> var = backend_or_skip(GetParam()); \
  if (!var) GTEST_SKIP() << "no usable CUDA device";

Column numeric(const std::string& name, const std::vector<double>& v) {
  Column c;
  c.name = name;
  c.num = v;
  return c;
}

// A random unbalanced panel: units nested in 4 groups, heteroskedastic errors, weights.
DataFrame random_panel(std::mt19937_64& rng, int n_units, int n_t) {
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0, 1);
  std::vector<double> unit, time, grp, y, w, x1, x2, x3;
  std::vector<double> ua(n_units), ta(n_t);
  for (auto& a : ua) a = nd(rng);
  for (auto& a : ta) a = nd(rng);
  for (int i = 0; i < n_units; ++i)
    for (int t = 0; t < n_t; ++t) {
      if (t > 0 && ud(rng) < 0.1) continue;
      unit.push_back(i);
      time.push_back(t);
      grp.push_back(i % 4);
      const double a = nd(rng) + 0.5 * ua[i], b = nd(rng) - 0.4 * ta[t], c = nd(rng);
      x1.push_back(a);
      x2.push_back(b);
      x3.push_back(c);
      y.push_back(ua[i] + ta[t] + 0.2 * a - 0.1 * b + nd(rng) * (1 + 0.5 * (i % 3)));
      w.push_back(0.5 + 1.5 * ud(rng));
    }
  DataFrame df;
  df.source = "random";
  for (auto& [n, v] : std::vector<std::pair<std::string, std::vector<double>*>>{
           {"unit", &unit}, {"time", &time}, {"grp", &grp}, {"y", &y}, {"w", &w}, {"x1", &x1}, {"x2", &x2}, {"x3", &x3}})
    df.columns.push_back(numeric(n, *v));
  df.row_line.resize(y.size());
  for (std::size_t r = 0; r < y.size(); ++r) df.row_line[r] = static_cast<std::uint32_t>(r + 2);
  return df;
}

struct WildCase {
  std::string formula;
  std::vector<std::string> cluster;
  std::vector<std::string> tests;
  bool joint = false, impose_null = true, ci = true, weighted = false;
  WeightType weight = WeightType::kRademacher;
  Enumerate enumerate = Enumerate::kNever;
  bool force_gray = false;
  std::int64_t B = 999;
};

WildResult run_wild(const DataFrame& df, const WildCase& c, std::uint64_t seed, const Backend& be) {
  SampleOptions so;
  so.cluster = c.cluster;
  so.keep_singletons = true;
  if (c.weighted) so.weights = "w";
  Design d = build_design(df, parse_formula(c.formula), so);
  FitOptions fo;
  fo.vcov = VcovType::kCluster;
  WildOptions wo;
  wo.tests = c.tests;
  wo.joint = c.joint;
  wo.impose_null = c.impose_null;
  wo.ci = c.ci;
  wo.weight = c.weight;
  wo.enumerate = c.enumerate;
  wo.force_gray = c.force_gray;
  wo.n_boot = c.B;
  wo.seed = seed;
  return wild_bootstrap(d, fo, wo, be);
}

class BackendSuite : public ::testing::TestWithParam<Device> {};

TEST_P(BackendSuite, WeightsAreTheSameCounterBasedDraws) {
  PB_BACKEND_OR_SKIP(be);
  const std::uint64_t seed = pbtest::fresh_seed();
  const std::int32_t G = 300;  // several Philox blocks per replication for every type
  const std::size_t nb = 257;
  const std::uint64_t b0 = 123456789;
  for (WeightType t : {WeightType::kRademacher, WeightType::kMammen, WeightType::kWebb, WeightType::kNormal,
                       WeightType::kGamma}) {
    const std::vector<double> V = be->wild_weights(seed, t, false, b0, nb, G);
    ASSERT_EQ(V.size(), static_cast<std::size_t>(G) * nb);
    for (std::int32_t g = 0; g < G; ++g)
      for (std::size_t b = 0; b < nb; ++b) {
        const double ref = kernels::wild_weight(seed, b0 + b, static_cast<std::uint32_t>(g), t);
        const double got = V[static_cast<std::size_t>(g) * nb + b];
        // Rademacher, Mammen and Webb involve no transcendental function: identical bits. The
        // normal and gamma draws go through log/cos/sqrt, which the device computes within
        // 2 ulp of glibc: identical to 1e-14 relative.
        if (t == WeightType::kNormal || t == WeightType::kGamma)
          ASSERT_NEAR(got, ref, 1e-14 * std::max(1.0, std::fabs(ref))) << weight_type_name(t) << " g " << g << " b " << b;
        else
          ASSERT_EQ(got, ref) << weight_type_name(t) << " g " << g << " b " << b << " seed " << seed;
      }
  }
  // Rademacher signs drawn eight replications at a time: a group of eight that crosses 2^32 (the
  // counter's high word), one Philox block of clusters, a tail of replications
  for (std::uint64_t b1 : {std::uint64_t{4294967291u}, std::uint64_t{0}})
    for (std::int32_t G1 : {30, 128, 129}) {
      const std::size_t nb1 = 21;
      const std::vector<double> V =
          be->wild_weights(seed, WeightType::kRademacher, false, b1, nb1, G1);
      for (std::int32_t g = 0; g < G1; ++g)
        for (std::size_t b = 0; b < nb1; ++b)
          ASSERT_EQ(V[static_cast<std::size_t>(g) * nb1 + b],
                    kernels::wild_weight(seed, b1 + b, static_cast<std::uint32_t>(g),
                                         WeightType::kRademacher))
              << "g " << g << " b " << b1 + b << " G " << G1 << " seed " << seed;
    }
  const std::vector<double> E = be->wild_weights(seed, WeightType::kRademacher, true, 5, 4, 6);
  for (std::int32_t g = 0; g < 6; ++g)
    for (std::size_t b = 0; b < 4; ++b)
      EXPECT_EQ(E[static_cast<std::size_t>(g) * 4 + b], kernels::enumerated_weight(5 + b, static_cast<std::uint32_t>(g)));
}

// Same counts, p-values and CI as the CPU reference, on random problems with fresh seeds:
// dense and factored forms, WCR/WCU, one- and two-way clustering, weights, joint tests,
// stored and walked enumeration.
TEST_P(BackendSuite, WildCountsEqualTheCpuReference) {
  if (GetParam() == Device::kCpu) GTEST_SKIP() << "the CPU backend is the reference this case compares other backends with";
  PB_BACKEND_OR_SKIP(be);
  const auto cpu = make_backend(Device::kCpu);
  const std::uint64_t seed = pbtest::fresh_seed();
  std::mt19937_64 rng(seed);
  const DataFrame small = random_panel(rng, 14, 6), wide = random_panel(rng, 60, 5),
                  mid = random_panel(rng, 40, 4);
  std::vector<std::pair<const DataFrame*, WildCase>> cases;
  WildCase c;
  c.formula = "y ~ x1 + x2 | unit + time";
  c.cluster = {"unit"};
  c.tests = {"x1 = 0"};
  cases.push_back({&small, c});  // dense (few clusters), WCR with the CI's two parts
  WildCase u = c;
  u.impose_null = false;
  u.weight = WeightType::kWebb;
  cases.push_back({&small, u});
  WildCase two = c;
  two.cluster = {"unit", "time"};
  two.weighted = true;
  two.weight = WeightType::kMammen;
  cases.push_back({&small, two});
  WildCase fac = c;  // 60 clusters, more regressors: the factored (rank-k) form
  fac.formula = "y ~ x1 + x2 + x3 + I(x1 * x2) + I(x2 * x3) | unit + time";
  fac.weight = WeightType::kNormal;
  fac.B = 2999;
  cases.push_back({&wide, fac});
  WildCase joint = c;
  joint.tests = {"x1 = 0", "x2 = 0"};
  joint.joint = true;
  joint.ci = false;
  cases.push_back({&small, joint});
  WildCase en = c;  // 14 clusters: every sign vector stored (CI available)
  en.enumerate = Enumerate::kAlways;
  cases.push_back({&small, en});
  WildCase gray = en;  // the same enumeration walked by Gray code
  gray.force_gray = true;
  cases.push_back({&small, gray});
  cases.push_back({&mid, c});  // 40 clusters: the fused kernel's registers for up to 48
  // on the GPU every kernel of the dense form: fused (the default), fused with its weights in
  // registers (16, then 48 for the 40 clusters of `mid`) and cuBLAS products
  std::vector<std::string> kernels_to_try = {""};
  if (be->device() == Device::kCuda) kernels_to_try = {"fused", "fused-registers", "gemm"};
  for (const std::string& kern : kernels_to_try)
  for (const auto& [df, wc] : cases) {
    if (!kern.empty()) setenv("PANELBOOT_WILD_KERNEL", kern.c_str(), 1);
    const WildResult a = run_wild(*df, wc, seed, *cpu), b = run_wild(*df, wc, seed, *be);
    unsetenv("PANELBOOT_WILD_KERNEL");
    ASSERT_EQ(a.tests.size(), b.tests.size());
    for (std::size_t i = 0; i < a.tests.size(); ++i) {
      const WildTest &x = a.tests[i], &y = b.tests[i];
      SCOPED_TRACE(wc.formula + " test " + x.hypothesis + " seed " + std::to_string(seed) + " kernel " + kern);
      EXPECT_EQ(x.n_boot, y.n_boot);
      EXPECT_EQ(x.n_finite, y.n_finite);
      EXPECT_EQ(x.n_exceed, y.n_exceed);
      EXPECT_EQ(x.p_value, y.p_value);
      EXPECT_EQ(x.ci_available, y.ci_available);
      if (x.ci_available) {  // bisection to ci_tol; a last-bit difference may move a step
        EXPECT_NEAR(x.ci_low, y.ci_low, 2 * x.ci_tol);
        EXPECT_NEAR(x.ci_high, y.ci_high, 2 * x.ci_tol);
      }
    }
    EXPECT_EQ(b.backend, be->name());
  }
}

// The IV wild bootstrap (WRE/WUE, AR): the same products, moments and statistics in the same
// order on every backend, so every statistic's bits, the counts and the inversion sets agree.
TEST_P(BackendSuite, WreStatisticsEqualTheCpuReferenceBitForBit) {
  if (GetParam() == Device::kCpu) GTEST_SKIP() << "the CPU backend is the reference this case compares other backends with";
  PB_BACKEND_OR_SKIP(be);
  const auto cpu = make_backend(Device::kCpu);
  const std::uint64_t seed = pbtest::fresh_seed();
  std::mt19937_64 rng(seed);
  const DataFrame df = random_panel(rng, 14, 6);
  struct Case {
    std::string formula;
    std::vector<std::string> cluster;
    bool impose_null;
    Enumerate enumerate;
    int form;  // products: 1 dense, 2 factored
  };
  const std::vector<Case> cases = {
      {"y ~ x2 | unit + time | x1 ~ I(x1 + x3)", {"unit"}, true, Enumerate::kNever, 1},
      {"y ~ x2 | unit + time | x1 ~ I(x1 + x3)", {"unit"}, true, Enumerate::kNever, 2},
      {"y ~ x2 | unit + time | x1 ~ I(x1 + x3) + I(x3 * x2)", {"unit", "time"}, false, Enumerate::kNever, 2},
      {"y ~ x2 | unit + time | x1 ~ I(x1 + x3) + I(x3 * x2)", {"unit", "time"}, false, Enumerate::kNever, 1},
      {"y ~ x2 | unit | x1 ~ I(x1 + x3)", {"unit"}, true, Enumerate::kAlways, 1}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.formula + " seed " + std::to_string(seed));
    auto run = [&](const Backend& b, WildTrace& tr) {
      SampleOptions so;
      so.cluster = c.cluster;
      so.keep_singletons = true;
      Design d = build_design(df, parse_formula(c.formula), so);
      WildOptions wo;
      wo.tests = {"x1 = 0.1"};
      wo.impose_null = c.impose_null;
      wo.enumerate = c.enumerate;
      wo.wre_form = c.form;
      wo.ar = true;
      wo.n_boot = 4999;
      wo.seed = seed;
      tr.keep = 1u << 15;
      return wild_bootstrap(d, FitOptions{}, wo, b, &tr);
    };
    WildTrace ta, tb;
    const WildResult a = run(*cpu, ta), b = run(*be, tb);
    ASSERT_EQ(a.tests.size(), 2u);
    ASSERT_EQ(b.tests.size(), 2u);
    for (std::size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(a.tests[i].n_finite, b.tests[i].n_finite);
      EXPECT_EQ(a.tests[i].n_exceed, b.tests[i].n_exceed);
      EXPECT_EQ(a.tests[i].ci_pieces, b.tests[i].ci_pieces);
      ASSERT_EQ(ta.stats[i].size(), tb.stats[i].size());
      std::size_t differ = 0;
      for (std::size_t r = 0; r < ta.stats[i].size(); ++r)
        differ += std::memcmp(&ta.stats[i][r], &tb.stats[i][r], sizeof(double)) != 0;
      EXPECT_EQ(differ, 0u) << "statistics of row " << i << " differ in their bits";
    }
    EXPECT_EQ(b.backend, be->name());
  }
}

// The Gray-code walk and the stored enumeration are different algorithms for the same 2^G
// statistics: their counts agree (here at several observed values, both tie rules).
TEST_P(BackendSuite, GrayWalkCountsEqualStoredEnumeration) {
  PB_BACKEND_OR_SKIP(be);
  PB_FRESH_RNG(rng);
  const int G = 13, C = 13;
  const pbtest::RandomGray rg = pbtest::random_gray(rng, G, C);
  const Eigen::MatrixXd &K = rg.K, &H = rg.H;
  const Eigen::VectorXd& Cv = rg.C;
  WildProblem sp;
  sp.n_clu = G;
  sp.q = 1;
  sp.n_part = 1;
  sp.dense = true;
  sp.n_rows = {C};
  sp.term_weight = {1.0};
  sp.row_off = {0, C};
  sp.cell_off = {0, 0};
  sp.m1 = std::vector<double>(Cv.data(), Cv.data() + G);
  std::vector<double> kd(static_cast<std::size_t>(C) * G);
  for (int c = 0; c < C; ++c)
    for (int g = 0; g < G; ++g) kd[static_cast<std::size_t>(c) * G + g] = K(c, g);
  sp.kd = kd;
  WildRunOptions ro;
  ro.enumerate = true;
  ro.n_rep = std::uint64_t{1} << (G - 1);
  ro.keep_coefs = true;
  ro.trace_keep = 3;
  const WildRun run = be->wild_replicates(sp, ro);
  ASSERT_EQ(run.trace.size(), 3u);
  for (double t : {0.0, 0.3, -1.1, 2.5, run.trace[1]}) {
    for (bool incl : {false, true}) {
      kernels::GrayProblem gp = rg.problem();
      gp.t = t;
      gp.tol = 1e-10 * std::max(std::fabs(t), 1e-300);
      gp.inclusive = incl;
      const BootCounts w = be->wild_enumerate(gp, nullptr);
      const BootCounts s = run.reps->count(0.0, t, gp.tol, incl);
      EXPECT_EQ(w.finite, std::int64_t{1} << G);
      EXPECT_EQ(w.finite, s.finite);
      EXPECT_EQ(w.abs, s.abs) << "t " << t << " inclusive " << incl;
      EXPECT_EQ(w.upper, s.upper) << "t " << t << " inclusive " << incl;
      EXPECT_EQ(w.lower, s.lower) << "t " << t << " inclusive " << incl;
    }
  }
  // the stored counts against the rule applied one statistic at a time
  BootCounts direct;
  const double t = 0.7, tol = 7e-11;
  for (std::uint64_t m = 0; m < ro.n_rep; ++m) {
    Eigen::VectorXd v(G);
    for (int g = 0; g < G; ++g) v(g) = kernels::enumerated_weight(m, static_cast<std::uint32_t>(g));
    const double s = Cv.dot(v) / std::sqrt(v.dot(H * v));
    kernels::count_stat(s, t, tol, false, Pairs::kNegated, direct);
  }
  const BootCounts s = run.reps->count(0.0, t, tol, false);
  EXPECT_EQ(direct.abs, s.abs);
  EXPECT_EQ(direct.upper, s.upper);
  EXPECT_EQ(direct.lower, s.lower);
  EXPECT_EQ(direct.finite, s.finite);
}

// A prepared problem runs any number of bootstraps: replications 0 .. 399 and 400 .. 999 in two
// runs (WildRunOptions::b0) give the counts and the statistics of one run over all 1000.
TEST_P(BackendSuite, PreparedProblemRunsReplicationRanges) {
  PB_BACKEND_OR_SKIP(be);
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  const int G = 9, C = 7;
  WildProblem pr;
  pr.n_clu = G;
  pr.n_rows = {C};
  pr.term_weight = {0.8};
  pr.row_off = {0, C};
  pr.cell_off = {0, 0};
  pr.m1.resize(G);
  pr.kd.resize(static_cast<std::size_t>(C) * G);
  for (double& v : pr.m1) v = nd(rng);
  for (double& v : pr.kd) v = nd(rng);
  const std::unique_ptr<PreparedWild> prep = be->prepare_wild(pr);
  WildRunOptions o;
  o.seed = rng_seed;
  o.weight = WeightType::kMammen;
  o.n_rep = o.trace_keep = 1000;
  o.count_t = 0.4;
  o.count_tol = 1e-10;
  const WildRun all = prep->run(o);
  WildRunOptions a = o, b = o;
  a.n_rep = a.trace_keep = 400;
  b.b0 = 400;
  b.n_rep = b.trace_keep = 600;
  const WildRun ra = prep->run(a), rb = prep->run(b);
  EXPECT_EQ(all.counts.finite, ra.counts.finite + rb.counts.finite);
  EXPECT_EQ(all.counts.abs, ra.counts.abs + rb.counts.abs);
  EXPECT_EQ(all.counts.upper, ra.counts.upper + rb.counts.upper);
  EXPECT_EQ(all.counts.lower, ra.counts.lower + rb.counts.lower);
  ASSERT_EQ(all.trace.size(), 1000u);
  ASSERT_EQ(ra.trace.size(), 400u);
  ASSERT_EQ(rb.trace.size(), 600u);
  for (std::size_t i = 0; i < 1000; ++i) EXPECT_EQ(all.trace[i], i < 400 ? ra.trace[i] : rb.trace[i - 400]) << i;
}

// Random regressions with a planted condition number.
Eigen::MatrixXd with_condition(std::mt19937_64& rng, int n, int k, double cond) {
  std::normal_distribution<double> nd;
  Eigen::MatrixXd A(n, k), B(k, k);
  for (Eigen::Index i = 0; i < A.size(); ++i) A.data()[i] = nd(rng);
  for (Eigen::Index i = 0; i < B.size(); ++i) B.data()[i] = nd(rng);
  const Eigen::MatrixXd U = Eigen::HouseholderQR<Eigen::MatrixXd>(A).householderQ() * Eigen::MatrixXd::Identity(n, k);
  const Eigen::MatrixXd V = Eigen::HouseholderQR<Eigen::MatrixXd>(B).householderQ();
  Eigen::VectorXd s(k);
  for (int j = 0; j < k; ++j) s(j) = std::pow(cond, -static_cast<double>(j) / std::max(k - 1, 1));
  return U * s.asDiagonal() * V.transpose();
}

TEST_P(BackendSuite, BatchedOlsMatchesEigenAndFlagsSingularItems) {
  PB_BACKEND_OR_SKIP(be);
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  // k = 1, 6, 7, 8 and 11 take the CUDA backend's one-warp-per-item kernels (k + 1 <= 12
  // columns; the tensor-core form with one column block (k = 1, 6, and 7, which fills it), a
  // second holding only y (k = 8) and two (k = 11); staged through shared memory where the item
  // fits, as n = 40, 45 and 50 do, direct from device memory beyond, as n = 700 with k = 11), k =
  // 14 its DGEMM path; n = 45 is not a multiple of the warp, nor of the tensor cores' 4 rows, and n
  // = 700 has whole 32-row blocks and a tail. On a GPU every kernel in turn (PANELBOOT_OLS_KERNEL),
  // each from pageable memory and from the backend's pinned memory (host_array: the copies go up in
  // chunks on a second stream, overlapping the kernels). (kernel, pinned, chunks of a pinned batch:
  // PANELBOOT_OLS_CHUNKS, "" for the default)
  std::vector<std::tuple<std::string, bool, std::string>> kernels_to_try = {{"", false, ""},
                                                                            {"", true, ""}};
  if (be->device() == Device::kCuda) {
    kernels_to_try.clear();
    for (const char* kern : {"mma", "mma-direct", "staged", "direct", "pipelined", "gemm"})
      for (bool pinned : {false, true}) kernels_to_try.push_back({kern, pinned, ""});
    for (const char* chunks : {"1", "3"}) kernels_to_try.push_back({"mma", true, chunks});
  }
  for (const auto& [kern, pinned, chunks] : kernels_to_try)
    for (const auto& [n, k] :
         {std::pair{37, 1}, std::pair{33, 7}, std::pair{40, 6}, std::pair{50, 8}, std::pair{45, 11},
          std::pair{700, 11}, std::pair{40, 14}}) {
      SCOPED_TRACE("n " + std::to_string(n) + ", k " + std::to_string(k) + " kernel " + kern +
                   (pinned ? ", the backend's host memory" : "") +
                   (chunks.empty() ? "" : ", in " + chunks + " chunks"));
      if (!kern.empty()) setenv("PANELBOOT_OLS_KERNEL", kern.c_str(), 1);
      if (!chunks.empty()) setenv("PANELBOOT_OLS_CHUNKS", chunks.c_str(), 1);
      const int n_batch = 64;
      const std::int64_t sx = n * k + 3, sy = n + 1;  // strides larger than the items
      std::vector<double> X(static_cast<std::size_t>(sx * n_batch), 0.0),
          y(static_cast<std::size_t>(sy * n_batch), 0.0);
      std::vector<double> cond(n_batch);
      for (int b = 0; b < n_batch; ++b) {
        cond[b] = b % 4 == 3 ? 1e6 : std::pow(10.0, (b % 4));  // 1, 10, 100 (< 1e3) and 1e6
        Eigen::MatrixXd Xb = with_condition(rng, n, k, cond[b]);
        if (b == 5 && k > 2) Xb.col(2) = Xb.col(0) + Xb.col(1);  // planted: exactly collinear
        if (b == 9) Xb.setZero();                                // planted: all zero
        if (b == 17) Xb(0, 0) = NAN;                             // planted: NaN in X
        if (b == 21) Xb(n - 1, k - 1) = INFINITY;                // planted: +Inf in X
        for (int j = 0; j < k; ++j)
          for (int i = 0; i < n; ++i) X[static_cast<std::size_t>(b * sx + j * n + i)] = Xb(i, j);
        for (int i = 0; i < n; ++i) y[static_cast<std::size_t>(b * sy + i)] = nd(rng);
      }
      y[static_cast<std::size_t>(13 * sy + 4)] = NAN;  // planted: a NaN response
      const std::unique_ptr<HostArray> hX = be->host_array(X.size()), hy = be->host_array(y.size());
      std::copy(X.begin(), X.end(), hX->data());
      std::copy(y.begin(), y.end(), hy->data());
      OlsBatch bt;
      bt.X = pinned ? hX->data() : X.data();
      bt.y = pinned ? hy->data() : y.data();
      bt.n_obs = n;
      bt.n_reg = k;
      bt.n_batch = n_batch;
      bt.stride_x = sx;
      bt.stride_y = sy;
      if (be->device() == Device::kCuda && pinned && kern == "mma" && chunks.empty()) {
        setenv("PANELBOOT_OLS_CHUNKS", "0", 1);  // out of its range: an error, never ignored
        EXPECT_THROW(be->batched_ols(bt), InvalidInput);
        unsetenv("PANELBOOT_OLS_CHUNKS");
      }
      const OlsBatchResult r = be->batched_ols(bt);
      unsetenv("PANELBOOT_OLS_KERNEL");
      unsetenv("PANELBOOT_OLS_CHUNKS");
      ASSERT_EQ(r.status.size(), static_cast<std::size_t>(n_batch));
      for (int b = 0; b < n_batch; ++b) {
        SCOPED_TRACE("item " + std::to_string(b));
        Eigen::Map<const Eigen::MatrixXd, 0, Eigen::OuterStride<>> Xb(X.data() + b * sx, n, k,
                                                                      Eigen::OuterStride<>(n));
        Eigen::Map<const Eigen::VectorXd> yb(y.data() + b * sy, n);
        if ((b == 5 && k > 2) || b == 9) {
          EXPECT_EQ(r.status[b], static_cast<int>(kernels::SolveStatus::kSingular));
          EXPECT_TRUE(std::isnan(r.beta[static_cast<std::size_t>(b * k)]));
          continue;
        }
        if (b == 17 || b == 21) {  // a diagonal entry of X'X not finite: no solve, all NaN
          EXPECT_EQ(r.status[b], static_cast<int>(kernels::SolveStatus::kNotFinite));
          for (int j = 0; j < k; ++j)
            EXPECT_TRUE(std::isnan(r.beta[static_cast<std::size_t>(b * k + j)]));
          EXPECT_TRUE(std::isnan(r.ssr[b]));
          continue;
        }
        if (b == 13) {  // X is fine, the NaN propagates into beta and the SSR, never a crash
          EXPECT_TRUE(std::isnan(r.ssr[b]));
          continue;
        }
        EXPECT_EQ(r.status[b], 0);
        const Eigen::VectorXd ref = Xb.colPivHouseholderQr().solve(yb);
        // the normal equations lose cond^2 of accuracy
        const double tol = cond[b] < 1e3 ? 1e-10 : cond[b] * cond[b] * 1e-15;
        for (int j = 0; j < k; ++j)
          EXPECT_NEAR(r.beta[static_cast<std::size_t>(b * k + j)], ref(j),
                      tol * std::max(1.0, ref.cwiseAbs().maxCoeff()));
        const double ssr = (yb - Xb * ref).squaredNorm();
        EXPECT_NEAR(r.ssr[b], ssr, std::max(1e-9, tol) * ssr);
      }
      if (be->device() == Device::kCuda) {
        EXPECT_GE(r.device_s, 0.0);
      } else {
        EXPECT_TRUE(std::isnan(r.device_s));
      }
    }
  // n_obs == n_reg: an exact fit
  std::vector<double> Xs(9), ys(3);
  const Eigen::MatrixXd Q = with_condition(rng, 3, 3, 5.0);
  std::copy(Q.data(), Q.data() + 9, Xs.begin());
  for (auto& v : ys) v = nd(rng);
  OlsBatch sq{Xs.data(), ys.data(), 3, 3, 1, 9, 3};
  const OlsBatchResult rs = be->batched_ols(sq);
  EXPECT_EQ(rs.status[0], 0);
  EXPECT_NEAR(rs.ssr[0], 0.0, 1e-20);
}

// A balanced panel for the threshold bootstrap: two regime regressors, a threshold in q.
DataFrame threshold_panel(std::mt19937_64& rng, int n, int T) {
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0, 1);
  std::vector<double> id, yr, y, z, x, x2, q;
  for (int i = 0; i < n; ++i) {
    const double a = nd(rng);
    for (int t = 0; t < T; ++t) {
      const double qq = std::round(ud(rng) * 500) / 500, xx = nd(rng), ww = nd(rng), zz = nd(rng);
      id.push_back(i + 1);
      yr.push_back(2000 + t);
      q.push_back(qq);
      x.push_back(xx);
      x2.push_back(ww);
      z.push_back(zz);
      y.push_back(a + 0.4 * zz + (qq < 0.3 ? 1.0 : qq < 0.7 ? -0.5 : 0.4) * xx + 0.3 * ww + nd(rng));
    }
  }
  DataFrame df;
  df.source = "threshold";
  for (auto& [nm, v] : std::vector<std::pair<std::string, std::vector<double>*>>{
           {"id", &id}, {"year", &yr}, {"y", &y}, {"z", &z}, {"x", &x}, {"x2", &x2}, {"q", &q}})
    df.columns.push_back(numeric(nm, *v));
  df.row_line.assign(y.size(), 1);
  return df;
}

// Hansen's and xthreg's conventions, time effects, two regime regressors with every distinct
// value, and the wild variant on an unbalanced panel (data: threshold_panel(rng, 40, 6)).
std::vector<ThresholdOptions> threshold_cases(std::uint64_t seed) {
  std::vector<ThresholdOptions> cases;
  ThresholdOptions o;
  o.formula = "y ~ z | id";
  o.regime = {"x"};
  o.threshold_var = "q";
  o.sample.panel_id = "id";
  o.sample.panel_time = "year";
  o.n_thresholds = 2;
  o.grid = 60;
  o.trim = {0.05};
  o.n_boot = 40;
  o.trace = 40;
  o.seed = seed;
  cases.push_back(o);
  ThresholdOptions xt = o;
  xt.xthreg = true;
  xt.time_effects = true;
  cases.push_back(xt);
  ThresholdOptions two = o;
  two.regime = {"x", "x2"};
  two.n_thresholds = 3;
  two.grid = 0;  // every distinct value
  cases.push_back(two);
  ThresholdOptions wild = o;
  wild.bootstrap_wild = true;
  wild.sample.where = "not (year == 2003 and id <= 5)";
  cases.push_back(wild);
  return cases;
}

// F* the same bits on every backend: compares a and b (the fstar of every test, p, crit).
void expect_same_fstar(const ThresholdResult& a, const ThresholdResult& b, std::uint64_t seed, std::size_t n_boot = 40) {
  ASSERT_EQ(a.fstar.size(), b.fstar.size());
  for (std::size_t k = 0; k < a.fstar.size(); ++k) {
    ASSERT_EQ(a.fstar[k].size(), n_boot);
    // the same bits (a replication whose fixed set is singular is NaN on both)
    auto same = [](double u, double w) { return std::memcmp(&u, &w, sizeof u) == 0; };
    for (std::size_t r = 0; r < a.fstar[k].size(); ++r)
      EXPECT_TRUE(same(a.fstar[k][r], b.fstar[k][r]))
          << a.fstar[k][r] << " vs " << b.fstar[k][r] << " test " << k + 1 << " replication " << r << " seed " << seed;
    EXPECT_TRUE(same(a.tests[k].p_value, b.tests[k].p_value));
    ASSERT_EQ(a.tests[k].crit.size(), b.tests[k].crit.size());
    for (std::size_t c = 0; c < a.tests[k].crit.size(); ++c) EXPECT_TRUE(same(a.tests[k].crit[c], b.tests[k].crit[c]));
  }
}

// A test backend whose threshold bootstrap is its own and everything else the CPU backend's.
class ThresholdOnlyBackend : public Backend {
 public:
  explicit ThresholdOnlyBackend(std::string name) : cpu_(make_backend(Device::kCpu)), name_(std::move(name)) {}
  Device device() const override { return Device::kCpu; }
  std::string name() const override { return name_; }
  std::string describe() const override { return "backend: " + name_ + " (test)"; }
  std::vector<double> wild_weights(std::uint64_t seed, kernels::WeightType type, bool enumerate, std::uint64_t b0,
                                   std::size_t nb, std::int32_t G) const override {
    return cpu_->wild_weights(seed, type, enumerate, b0, nb, G);
  }
  std::unique_ptr<PreparedWild> prepare_wild(const WildProblem& p) const override { return cpu_->prepare_wild(p); }
  BootCounts wild_enumerate(const kernels::GrayProblem& p, ProgressSink* pr) const override {
    return cpu_->wild_enumerate(p, pr);
  }
  WreRun wre_replicates(const WreProblem& p, const WreEval& e, const WreRunOptions& o) const override {
    return cpu_->wre_replicates(p, e, o);
  }
  OlsBatchResult batched_ols(const OlsBatch& bt) const override { return cpu_->batched_ols(bt); }

 private:
  std::unique_ptr<Backend> cpu_;
  std::string name_;
};

// A warp on the CPU: kernels::kLanes threads run one replication together, each as one lane of
// the CUDA backend's WarpTeam (rank = lane, sync = a barrier, argmin over all lanes), so the warp
// decomposition of kernels/threshold_boot.hpp is checked without a GPU.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> lk(m_);
    const std::uint64_t gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(lk, [&] { return gen_ != gen; });
    }
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int n_, count_ = 0;
  std::uint64_t gen_ = 0;
};

struct ThreadTeam {
  static constexpr int kSize = kernels::kLanes;
  int lane;
  Barrier* bar;
  double* vals;
  std::int64_t* idx;
  int rank() const { return lane; }
  void sync() const { bar->wait(); }
  void argmin(double& best, std::int64_t& g) const {
    vals[lane] = best;
    idx[lane] = g;
    bar->wait();
    for (int l = 0; l < kSize; ++l)
      if (idx[l] >= 0 && (g < 0 || vals[l] < best || (vals[l] == best && idx[l] < g))) {
        best = vals[l];
        g = idx[l];
      }
    bar->wait();
  }
};

class EmulatedWarpBackend final : public ThresholdOnlyBackend {
 public:
  EmulatedWarpBackend() : ThresholdOnlyBackend("emulated-warp") {}
  std::vector<double> threshold_fstar(const ThresholdBootSpec& sp, const ThresholdGram& gram) const override {
    const kernels::ThresholdBootView& v = sp.view;
    const HostGramAccess hg{gram.diag(), &gram};
    std::vector<double> fstar(static_cast<std::size_t>(sp.n_boot)), buf(static_cast<std::size_t>(kernels::threshold_scratch_size(v)));
    const kernels::ThresholdScratch s = kernels::threshold_scratch_at(v, buf.data());
    Barrier bar(kernels::kLanes);
    double vals[kernels::kLanes];
    std::int64_t idx[kernels::kLanes];
    std::vector<std::thread> lanes;
    for (int l = 0; l < kernels::kLanes; ++l)
      lanes.emplace_back([&, l] {
        const ThreadTeam tm{l, &bar, vals, idx};
        for (std::int64_t b = 0; b < sp.n_boot; ++b) {
          const double s0 = kernels::threshold_project(v, static_cast<std::uint64_t>(b), s, tm);
          const double f = kernels::threshold_search(v, hg, s.r, s0, tm);
          if (l == 0) fstar[static_cast<std::size_t>(b)] = f;
          bar.wait();  // the next replication reuses the scratch
        }
      });
    for (auto& t : lanes) t.join();
    return fstar;
  }
};

// threshold_project and threshold_search one replication at a time on one thread (SoloTeam): the
// definition the CPU backend's batches (threshold_batch.hpp) must reproduce bit for bit.
class PerReplicationBackend final : public ThresholdOnlyBackend {
 public:
  PerReplicationBackend() : ThresholdOnlyBackend("per-replication") {}
  std::vector<double> threshold_fstar(const ThresholdBootSpec& sp, const ThresholdGram& gram) const override {
    const kernels::ThresholdBootView& v = sp.view;
    const HostGramAccess hg{gram.diag(), &gram};
    std::vector<double> fstar(static_cast<std::size_t>(sp.n_boot)), buf(static_cast<std::size_t>(kernels::threshold_scratch_size(v)));
    const kernels::ThresholdScratch s = kernels::threshold_scratch_at(v, buf.data());
    const kernels::SoloTeam solo;
    for (std::int64_t b = 0; b < sp.n_boot; ++b)
      fstar[static_cast<std::size_t>(b)] =
          kernels::threshold_search(v, hg, s.r, kernels::threshold_project(v, static_cast<std::uint64_t>(b), s, solo), solo);
    return fstar;
  }
};

// The CPU backend runs replications in batches (8 in the elements of a vector, a partial batch
// at the end, Q'y* and e lane by lane with the columns' count unrolled up to 8 or not) and the
// first stage's points as one vector loop: each replication still gets the shared kernel's bits,
// for every case of threshold_cases, three thresholds with one regime regressor, B = 21 (a
// partial batch of 5), 3 and 10 linear regressors, and a panel of fewer rows than lanes.
TEST(Backend, ThresholdBatchesGiveThePerReplicationBits) {
  PB_FRESH_RNG(rng);
  DataFrame df = threshold_panel(rng, 40, 6);
  const auto cpu = make_backend(Device::kCpu);
  PerReplicationBackend one;
  std::vector<ThresholdOptions> cases = threshold_cases(rng_seed);
  ThresholdOptions three = cases[0];  // one regime regressor, stages with 0, 1 and 2 fixed points
  three.n_thresholds = 3;
  cases.push_back(three);
  ThresholdOptions wide = cases[0];
  wide.formula = "y ~ z + x2 | id";
  cases.push_back(wide);
  wide.formula = "y ~ z + x2 + I(z^2) + I(z*x2) + I(x2^2) + I(z^3) + I(x2^3) + I(z^2*x2) + I(z*x2^2) | id";
  wide.n_thresholds = 1;
  cases.push_back(wide);
  for (ThresholdOptions c : cases) {
    c.n_boot = c.trace = 21;
    c.min_team_work = 0;  // the batches shared by the thread team, as a larger job would
    expect_same_fstar(estimate_threshold(df, c, *cpu), estimate_threshold(df, c, one), rng_seed, 21);
  }
  // fewer transformed rows (10 units x 3) than reduction lanes (32); trim 0.24 keeps about 9
  // rows below the lowest grid point (at 8 x 4 and 0.1, 3 rows, and when they were last periods,
  // which the transform deletes, a regime kept 1 row: a refusal, PB_SEED=5551)
  const DataFrame tiny = threshold_panel(rng, 10, 4);
  ThresholdOptions c = cases[0];
  c.n_thresholds = 1;
  c.grid = 20;
  c.trim = {0.24};
  c.n_boot = c.trace = 21;
  expect_same_fstar(estimate_threshold(tiny, c, *cpu), estimate_threshold(tiny, c, one), rng_seed, 21);
}

// A threshold bootstrap below the team rule runs on plain threads (cpu::on_threads), one for
// every cpu::kLightThreadWork of work: each thread takes the next batch, each replication keeps
// its bits, and every index is taken exactly once.
TEST(Backend, SmallThresholdJobsShareTheirBatchesOverPlainThreads) {
  EXPECT_EQ(cpu::light_team_size(0.9 * cpu::kLightThreadWork, 8), 1);
  EXPECT_EQ(cpu::light_team_size(1.9 * cpu::kLightThreadWork, 8), 1);
  EXPECT_EQ(cpu::light_team_size(2.0 * cpu::kLightThreadWork, 8), 2);
  EXPECT_EQ(cpu::light_team_size(5.5 * cpu::kLightThreadWork, 8), 5);
  EXPECT_EQ(cpu::light_team_size(1e6 * cpu::kLightThreadWork, 3), 3);
  EXPECT_EQ(cpu::light_team_size(1e6 * cpu::kLightThreadWork, 1), 1);

  // helpers start on the caller's other CPUs, where it has any
  cpu_set_t three, just_2;
  CPU_ZERO(&three);
  CPU_ZERO(&just_2);
  for (int c : {0, 2, 5}) CPU_SET(c, &three);
  CPU_SET(2, &just_2);
  const cpu_set_t without_2 = cpu::helper_start_cpus(three, 2);
  EXPECT_EQ(CPU_COUNT(&without_2), 2);
  EXPECT_TRUE(CPU_ISSET(0, &without_2) && CPU_ISSET(5, &without_2));
  const cpu_set_t unknown_cpu = cpu::helper_start_cpus(three, -1),
                  only = cpu::helper_start_cpus(just_2, 2);
  EXPECT_TRUE(CPU_EQUAL(&unknown_cpu, &three));
  EXPECT_TRUE(CPU_EQUAL(&only, &just_2));

  // the threads that ran a share, every index taken once; no more threads than this thread's CPUs;
  // each with the caller's CPUs to run on when its share starts (not left where it was started)
  cpu_set_t mine;
  CPU_ZERO(&mine);
  ASSERT_EQ(sched_getaffinity(0, sizeof mine, &mine), 0);
  auto threads_that_ran = [](int n) {
    std::atomic<int> next{0};
    std::vector<std::atomic<int>> taken(1000);
    std::mutex m;
    std::set<std::thread::id> ids;
    cpu_set_t callers;
    CPU_ZERO(&callers);
    EXPECT_EQ(sched_getaffinity(0, sizeof callers, &callers), 0);
    cpu::on_threads(n, [&] {
      cpu_set_t runs_on;
      CPU_ZERO(&runs_on);
      EXPECT_EQ(pthread_getaffinity_np(pthread_self(), sizeof runs_on, &runs_on), 0);
      EXPECT_TRUE(CPU_EQUAL(&runs_on, &callers));
      {
        std::lock_guard<std::mutex> lock(m);
        ids.insert(std::this_thread::get_id());
      }
      for (int i = next++; i < 1000; i = next++) ++taken[static_cast<std::size_t>(i)];
    });
    EXPECT_TRUE(ids.count(std::this_thread::get_id()));
    for (const auto& t : taken) EXPECT_EQ(t.load(), 1);
    cpu_set_t after;
    CPU_ZERO(&after);
    EXPECT_EQ(sched_getaffinity(0, sizeof after, &after), 0);
    EXPECT_TRUE(CPU_EQUAL(&after, &callers));
    return ids.size();
  };
  EXPECT_EQ(threads_that_ran(3),
            std::min<std::size_t>(3, static_cast<std::size_t>(CPU_COUNT(&mine))));
  // pinned to one CPU (as OMP_PROC_BIND pins the first thread): helpers would only take turns
  cpu_set_t one_cpu;
  CPU_ZERO(&one_cpu);
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &mine)) {
      CPU_SET(c, &one_cpu);
      break;
    }
  ASSERT_EQ(sched_setaffinity(0, sizeof one_cpu, &one_cpu), 0);
  EXPECT_EQ(threads_that_ran(3), 1u);
  ASSERT_EQ(sched_setaffinity(0, sizeof mine, &mine), 0);

  PB_FRESH_RNG(rng);
  const DataFrame df = threshold_panel(rng, 40, 6);
  const auto cpu = make_backend(Device::kCpu);
  PerReplicationBackend one;
  ThresholdOptions c = threshold_cases(rng_seed)[0];
  c.n_boot = c.trace = 16003;  // over 3 x kLightThreadWork per test: three threads where 3 may run
  const int before = omp_get_max_threads();
  omp_set_num_threads(3);
  const ThresholdResult light = estimate_threshold(df, c, *cpu);
  omp_set_num_threads(before);
  expect_same_fstar(light, estimate_threshold(df, c, one), rng_seed, 16003);
}

// ThresholdBatchOf::project compiled for AVX-512 (eight replications a batch), AVX2 and the
// baseline (four), each a wrapper built for that instruction set as the CPU backend's functions
// are, against threshold_project one replication at a time, on synthetic views: Hansen-style
// deleted rows or not, time effects or not, one or two regime regressors, 1 to 9 linear
// regressors, fewer rows than lanes or more; five replications, so a batch of four is followed
// by one of a single replication.
using WideBatch = cpu::ThresholdBatchOf<8>;
using NarrowBatch = cpu::ThresholdBatchOf<4>;
__attribute__((target("avx512f"))) void batch_avx512(WideBatch& tb,
                                                     const kernels::ThresholdBootView& v,
                                                     const double* QL, std::uint64_t b0, int nb,
                                                     double* s0) {
  tb.project(v, QL, b0, nb, s0);
}
__attribute__((target("avx2"))) void batch_avx2(NarrowBatch& tb,
                                                const kernels::ThresholdBootView& v,
                                                const double* QL, std::uint64_t b0, int nb,
                                                double* s0) {
  tb.project(v, QL, b0, nb, s0);
}
void batch_baseline(NarrowBatch& tb, const kernels::ThresholdBootView& v, const double* QL,
                    std::uint64_t b0, int nb, double* s0) {
  tb.project(v, QL, b0, nb, s0);
}

// Replications 7 .. 7 + nb - 1 in batches of Batch::W by `project`: each one's S0 and r.
template <class Batch, class Project>
void batches_of(const kernels::ThresholdBootView& v, int nb, Project project,
                std::vector<double>& s0, std::vector<std::vector<double>>& r) {
  const std::vector<double> QL = Batch::lane_major(v);
  Batch tb(v);
  s0.assign(static_cast<std::size_t>(nb), 0.0);
  r.assign(static_cast<std::size_t>(nb),
           std::vector<double>(static_cast<std::size_t>(v.n_grid * v.p)));
  for (int b0 = 0; b0 < nb; b0 += Batch::W) {
    const int m = std::min(Batch::W, nb - b0);
    double s[Batch::W];
    project(tb, v, QL.data(), static_cast<std::uint64_t>(7 + b0), m, s);
    for (int i = 0; i < m; ++i) {
      s0[static_cast<std::size_t>(b0 + i)] = s[i];
      tb.extract(v, i, r[static_cast<std::size_t>(b0 + i)].data());
    }
  }
}

// One instance per instruction set of the backend's clones; a set this CPU lacks is skipped
// with the reason, so the test summary shows what was not exercised here.
class ThresholdBatchIsa : public ::testing::TestWithParam<std::string> {};

TEST_P(ThresholdBatchIsa, EqualsTheKernel) {
  const std::string isa_param = GetParam();
  if ((isa_param == "avx512f" && !__builtin_cpu_supports("avx512f")) ||
      (isa_param == "avx2" && !__builtin_cpu_supports("avx2")))
    GTEST_SKIP() << "this CPU lacks " << isa_param << ": that clone is not tested here";
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  for (int rep = 0; rep < 24; ++rep) {
    const bool drop_last = rep % 2, time_effects = rep % 3 == 0;
    const int n = 2 + static_cast<int>(rng() % 30), T = 3 + static_cast<int>(rng() % 5), p = 1 + rep % 2;
    const int nq = 1 + static_cast<int>(rng() % 9), n_grid = 5 + static_cast<int>(rng() % 40);
    const int Tk = drop_last ? T - 1 : T;
    const std::int64_t N = static_cast<std::int64_t>(n) * Tk, n_design = static_cast<std::int64_t>(n) * T;
    std::vector<std::int64_t> offset(n + 1), s_row, cut;
    std::vector<std::int32_t> s_unit, s_period, t_period(static_cast<std::size_t>(N)), nn;
    for (int i = 0; i <= n; ++i) offset[i] = static_cast<std::int64_t>(i) * Tk;
    std::vector<double> fitted(N), resid(N), Q(N * nq), inv_len(n, 1.0 / T), s_x(n_design * p);
    for (auto* vec : {&fitted, &resid, &Q, &s_x})
      for (double& x : *vec) x = nd(rng);
    for (std::int64_t r = 0; r < N; ++r) t_period[r] = static_cast<std::int32_t>(r % Tk);
    std::vector<std::int64_t> perm(static_cast<std::size_t>(n_design));
    for (std::int64_t k = 0; k < n_design; ++k) perm[k] = k;
    std::shuffle(perm.begin(), perm.end(), rng);
    for (std::int64_t k : perm) {  // design row k: unit k / T, period k % T (the last deleted when drop_last)
      const std::int64_t i = k / T, t = k % T;
      s_unit.push_back(static_cast<std::int32_t>(i));
      s_period.push_back(static_cast<std::int32_t>(t));
      s_row.push_back(t < Tk ? i * Tk + t : -1);
    }
    for (int g = 0; g < n_grid; ++g) {
      cut.push_back(n_design * (g + 1) / (n_grid + 1));
      nn.push_back(g);
    }
    kernels::ThresholdBootView v;
    v.n_obs = N;
    v.n_units = n;
    v.n_periods = T;
    v.n_design = n_design;
    v.n_grid = n_grid;
    v.offset = offset.data();
    v.fitted = fitted.data();
    v.resid = resid.data();
    v.Q = Q.data();
    v.n_q = nq;
    v.s_unit = s_unit.data();
    v.s_row = s_row.data();
    v.s_period = s_period.data();
    v.t_period = t_period.data();
    v.unit_inv_len = inv_len.data();
    v.time_effects = time_effects;
    v.p = p;
    v.s_x = s_x.data();
    v.cut = cut.data();
    v.nn = nn.data();
    v.k = 1 + rep % 3;
    v.seed = rng();
    v.wild = rep % 4 == 1;
    // the kernel, one replication at a time
    const int nb = 5;
    std::vector<double> buf(static_cast<std::size_t>(kernels::threshold_scratch_size(v)));
    const kernels::ThresholdScratch sc = kernels::threshold_scratch_at(v, buf.data());
    std::vector<std::vector<double>> r_ref(nb);
    double s0_ref[nb];
    for (int i = 0; i < nb; ++i) {
      s0_ref[i] = kernels::threshold_project(v, static_cast<std::uint64_t>(7 + i), sc, kernels::SoloTeam{});
      r_ref[i].assign(sc.r, sc.r + n_grid * p);
    }
    auto same = [](double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; };
    {
      const char* isa = isa_param.c_str();
      std::vector<double> s0;
      std::vector<std::vector<double>> r;
      if (std::strcmp(isa, "avx512f") == 0)
        batches_of<WideBatch>(v, nb, batch_avx512, s0, r);
      else if (std::strcmp(isa, "avx2") == 0)
        batches_of<NarrowBatch>(v, nb, batch_avx2, s0, r);
      else
        batches_of<NarrowBatch>(v, nb, batch_baseline, s0, r);
      for (int i = 0; i < nb; ++i) {
        EXPECT_TRUE(same(s0[i], s0_ref[i])) << isa << " rep " << rep << " replication " << i;
        for (std::size_t g = 0; g < r[i].size(); ++g)
          ASSERT_TRUE(same(r[i][g], r_ref[i][g]))
              << isa << " rep " << rep << " replication " << i << " entry " << g << ": " << r[i][g]
              << " vs " << r_ref[i][g];
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backend, ThresholdBatchIsa, ::testing::Values("avx512f", "avx2", "baseline"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(Backend, ThresholdWarpDecompositionGivesTheCpuBits) {
  const std::uint64_t seed = pbtest::fresh_seed();
  std::mt19937_64 rng(seed);
  const DataFrame df = threshold_panel(rng, 40, 6);
  const auto cpu = make_backend(Device::kCpu);
  EmulatedWarpBackend warp;
  for (ThresholdOptions c : threshold_cases(seed)) {
    c.n_boot = c.trace = 40;
    expect_same_fstar(estimate_threshold(df, c, *cpu), estimate_threshold(df, c, warp), seed);
  }
}

// The threshold bootstrap's F* are the same bits on every backend (the same PB_HD operations,
// multiply-adds unfused on the device), in Hansen's and xthreg's conventions, with time effects,
// two regime regressors, the wild variant on an unbalanced panel, and on 1 or 2 threads.
TEST_P(BackendSuite, ThresholdBootstrapFStarEqualTheCpuReference) {
  if (GetParam() == Device::kCpu) GTEST_SKIP() << "the CPU backend is the reference this case compares other backends with";
  PB_BACKEND_OR_SKIP(be);
  const auto cpu = make_backend(Device::kCpu);
  const std::uint64_t seed = pbtest::fresh_seed();
  std::mt19937_64 rng(seed);
  const DataFrame df = threshold_panel(rng, 40, 6);
  for (const ThresholdOptions& c : threshold_cases(seed))
    expect_same_fstar(estimate_threshold(df, c, *cpu), estimate_threshold(df, c, *be), seed);
}

TEST_P(BackendSuite, ThresholdBootstrapFStarDoNotDependOnTheThreadCount) {
#ifndef _OPENMP
  GTEST_SKIP() << "built without OpenMP: one thread only";
#else
  PB_BACKEND_OR_SKIP(be);
  const std::uint64_t seed = pbtest::fresh_seed();
  std::mt19937_64 rng(seed);
  const DataFrame df = threshold_panel(rng, 40, 6);
  const std::vector<ThresholdOptions> cases = threshold_cases(seed);
  ThresholdOptions c2 = cases[2];
  c2.min_team_work = 0;  // a thread team even for this small job
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const ThresholdResult one = estimate_threshold(df, c2, *be);
  omp_set_num_threads(2);
  const ThresholdResult two_t = estimate_threshold(df, c2, *be);
  omp_set_num_threads(before);
  ASSERT_EQ(one.fstar.size(), two_t.fstar.size());
  for (std::size_t k = 0; k < one.fstar.size(); ++k)
    EXPECT_EQ(0, std::memcmp(one.fstar[k].data(), two_t.fstar[k].data(), one.fstar[k].size() * sizeof(double)))
        << "seed " << seed;
#endif
}

// power's regressions over one fixed design: every backend's fixed_design_ols equals the shared
// column kernel run over the whole batch at once, bit for bit (the CPU backend runs it in column
// blocks, the CUDA backend one thread per column in the same order, multiply-adds unfused), for
// one-way and two-way cluster terms and a batch that is no multiple of the block or the warp.
TEST_P(BackendSuite, FixedDesignOlsEqualsTheColumnKernelBitForBit) {
  PB_BACKEND_OR_SKIP(be);
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  for (const auto& [n, k, nb] : {std::tuple{60, 3, 1}, std::tuple{150, 5, 70}, std::tuple{333, 7, 257}}) {
    SCOPED_TRACE("n " + std::to_string(n) + ", k " + std::to_string(k) + ", batch " + std::to_string(nb));
    std::vector<double> X(static_cast<std::size_t>(n * k)), E(static_cast<std::size_t>(n * nb));
    for (double& v : X) v = nd(rng);
    for (double& v : E) v = nd(rng);
    Eigen::Map<const Eigen::MatrixXd> Xm(X.data(), n, k);
    const Eigen::MatrixXd A = (Xm.transpose() * Xm).inverse();
    const int target = k - 1;
    const Eigen::VectorXd xa = Xm * A.col(target);
    std::vector<std::int32_t> unit(static_cast<std::size_t>(n)), time(static_cast<std::size_t>(n)), cell(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      unit[static_cast<std::size_t>(i)] = i % 9;
      time[static_cast<std::size_t>(i)] = (i / 9) % 5;
      cell[static_cast<std::size_t>(i)] = unit[static_cast<std::size_t>(i)] * 5 + time[static_cast<std::size_t>(i)];
    }
    FixedDesign d;
    d.n = n;
    d.k = k;
    d.X = X.data();
    d.A = A.data();
    d.xa = xa.data();
    d.target = target;
    d.term_code = {unit.data(), time.data(), cell.data()};
    d.term_levels = {9, 5, 45};
    d.term_weight = {1.1, 0.9, -0.7};
    const FixedDesignBatch bt{E.data(), nb};
    FixedDesignResult want = kernels::fixed_design_result(d, bt);
    kernels::fixed_design_columns(d, bt, 0, nb, want);
    const FixedDesignResult got = be->fixed_design_ols(d, bt);
    EXPECT_EQ(got.U, want.U);
    EXPECT_EQ(got.d_target, want.d_target);
    EXPECT_EQ(got.variance, want.variance);
  }
}

std::vector<Device> compiled_backends() {
  std::vector<Device> v;
  if (!PB_REQUIRE_GPU) v.push_back(Device::kCpu);
  if (PANELBOOT_HAVE_CUDA) v.push_back(Device::kCuda);
  return v;
}

INSTANTIATE_TEST_SUITE_P(Compiled, BackendSuite, ::testing::ValuesIn(compiled_backends()),
                         [](const ::testing::TestParamInfo<Device>& i) {
                           return std::string(i.param == Device::kCpu ? "cpu" : "cuda");
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BackendSuite);

}  // namespace

// cuBLAS is opened only when a path needs it (a cold process that runs only the backend's own
// kernels skips its ~50 ms load): the warp OLS kernels run without it, the DGEMM choice loads it.
TEST(Backend, CublasIsLoadedOnlyWhenAPathNeedsIt) {
  const std::unique_ptr<Backend> be = backend_or_skip(Device::kCuda);
  if (!be) GTEST_SKIP() << "no usable CUDA device";
  auto cublas_mapped = [] {
    std::ifstream maps("/proc/self/maps");
    const std::string text((std::istreambuf_iterator<char>(maps)),
                           std::istreambuf_iterator<char>());
    return text.find("/libcublas.so") != std::string::npos;
  };
  if (cublas_mapped()) GTEST_SKIP() << "cuBLAS was loaded by an earlier test of this process";
  // the wild bootstrap's general path (the factored form of 60 clusters; the dense form through
  // the general path's products) has its own products
  std::mt19937_64 panel_rng(11);
  const DataFrame wide = random_panel(panel_rng, 60, 5), small = random_panel(panel_rng, 14, 6);
  WildCase wc;
  wc.formula = "y ~ x1 + x2 | unit + time";
  wc.cluster = {"unit"};
  wc.tests = {"x1 = 0"};
  wc.B = 999;
  wc.ci = false;
  const auto cpu = make_backend(Device::kCpu);
  WildCase fac = wc;
  fac.formula = "y ~ x1 + x2 + x3 + I(x1 * x2) + I(x2 * x3) | unit + time";
  setenv("PANELBOOT_WILD_KERNEL", "gemm", 1);
  for (const auto& [df, c] : {std::pair{&wide, fac}, std::pair{&small, wc}})
    EXPECT_EQ(run_wild(*df, c, 5, *be).tests[0].n_exceed,
              run_wild(*df, c, 5, *cpu).tests[0].n_exceed);
  unsetenv("PANELBOOT_WILD_KERNEL");
  EXPECT_FALSE(cublas_mapped());
  const std::int64_t n = 30, k = 3, n_batch = 4;
  std::vector<double> X(static_cast<std::size_t>(n * k * n_batch)),
      y(static_cast<std::size_t>(n * n_batch));
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nd;
  for (double& v : X) v = nd(rng);
  for (double& v : y) v = nd(rng);
  const OlsBatch bt{X.data(), y.data(), n, k, n_batch, n * k, n};
  const OlsBatchResult warp = be->batched_ols(bt);
  EXPECT_FALSE(cublas_mapped());
  setenv("PANELBOOT_OLS_KERNEL", "gemm", 1);
  const OlsBatchResult gemm = be->batched_ols(bt);
  unsetenv("PANELBOOT_OLS_KERNEL");
  EXPECT_TRUE(cublas_mapped());
  for (std::size_t i = 0; i < warp.beta.size(); ++i) EXPECT_NEAR(warp.beta[i], gemm.beta[i], 1e-12);
}

TEST(Backend, CpuAlwaysAvailableAndAutoFallsBack) {
  EXPECT_EQ(make_backend(Device::kCpu)->device(), Device::kCpu);
  std::string why;
  if (cuda::usable_devices(why) == 0) {
    const auto b = make_backend(Device::kAuto);
    EXPECT_EQ(b->device(), Device::kCpu);
    EXPECT_NE(b->describe().find(why), std::string::npos);
  }
}

TEST(Backend, CudaWithoutUsableGpuSaysWhy) {
  std::string why;
  if (cuda::usable_devices(why) > 0) GTEST_SKIP() << "a GPU is present";
  if (PANELBOOT_HAVE_CUDA) {
    EXPECT_THROW(make_backend(Device::kCuda), CudaError);
  } else {
    EXPECT_THROW(make_backend(Device::kCuda), NotCompiled);
  }
}

// The CUDA plugin resolves every symbol and answers without a GPU (CI builds it with nvcc but
// has no device): a link error in the device code shows up here, not first on a GPU machine.
TEST(Backend, CudaPluginLoadsAndReportsWithoutAGpu) {
  if (!PANELBOOT_HAVE_CUDA) GTEST_SKIP() << "built without CUDA";
  void* h = dlopen(PB_BINARY_DIR "/libpanelboot_cuda.so", RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  auto devices = reinterpret_cast<int (*)(char*, int)>(dlsym(h, "pb_cuda_plugin_devices"));
  auto make = reinterpret_cast<Backend* (*)(char*, int)>(dlsym(h, "pb_cuda_plugin_make"));
  ASSERT_NE(devices, nullptr);
  ASSERT_NE(make, nullptr);
  char why[512] = {0};
  const int n = devices(why, sizeof why);
  if (n == 0) {
    EXPECT_GT(std::strlen(why), 10u);
    char err[512] = {0};
    EXPECT_EQ(make(err, sizeof err), nullptr);  // no device: an error message, not a crash
    EXPECT_GT(std::strlen(err), 10u);
  }
}

TEST(Backend, EveryCommandTakesBackendAndSaysWhichInOneLine) {
  std::string why;
  if (cuda::usable_devices(why) > 0) GTEST_SKIP() << "a GPU is present";
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"fit", "--formula", "newqua ~ rgzn | province + year"},
        std::vector<std::string>{"wild", "--formula", "newqua ~ rgzn | province + year", "--cluster", "province",
                                 "--test", "rgzn = 0", "--B", "99", "--no-ci"},
        std::vector<std::string>{"describe"},
        std::vector<std::string>{"threshold", "--panel", "province,year", "--formula", "newqua ~ urban | province",
                                 "--regime", "rgzn", "--threshold-var", "fin", "--B", "0"}}) {
    std::vector<std::string> a = cmd;
    a.insert(a.end(), {"--backend", "cuda"});
    const pbtest::CliRun bad = pbtest::run(a);
    EXPECT_EQ(bad.status, 2) << cmd[0];
    EXPECT_NE(bad.err.find("--backend cuda: " + why), std::string::npos) << bad.err;
    EXPECT_TRUE(bad.out.empty());
    a = cmd;
    a.insert(a.end(), {"--backend", "auto"});
    const pbtest::CliRun ok = pbtest::run(a);
    EXPECT_EQ(ok.status, 0) << ok.err;
    EXPECT_NE(ok.err.find("panelboot: backend: cpu (" + why + ")"), std::string::npos) << cmd[0] << ": " << ok.err;
  }
  const pbtest::CliRun typo = pbtest::run({"describe", "--backend", "opencl"});
  EXPECT_NE(typo.status, 0);
}
