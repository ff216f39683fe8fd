// The CUDA backend's Thrust algorithms (cuda/thrust_algorithms.hpp) compiled by g++ for the host
// with THRUST_DEVICE_SYSTEM=CPP: the same functors and reductions the GPU runs, checked here
// against the CPU reference backend on random inputs.
#include <Eigen/Dense>
#include <random>

#include "helpers.hpp"
#include "panelboot/backend.hpp"
#include "thrust_algorithms.hpp"

using namespace panelboot;

namespace {
void expect_same(const BootCounts& a, const BootCounts& b) {
  EXPECT_EQ(a.abs, b.abs);
  EXPECT_EQ(a.upper, b.upper);
  EXPECT_EQ(a.lower, b.lower);
  EXPECT_EQ(a.finite, b.finite);
}
}  // namespace

TEST(ThrustHost, ReplicateCountsEqualTheCpuBackend) {
  const std::uint64_t seed = pbtest::fresh_seed();
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  // a stored enumeration of a random dense problem, counted by the CPU backend's vectorized
  // loop and by the Thrust transform-reduce over WildCountOp
  const int G = 11, C = 9;
  WildProblem sp;
  sp.n_clu = G;
  sp.q = 1;
  sp.n_part = 2;
  sp.dense = true;
  sp.n_rows = {C};
  sp.term_weight = {1.3};
  sp.row_off = {0, C};
  sp.cell_off = {0, 0};
  for (int p = 0; p < 2; ++p) {
    std::vector<double> m(G), k(static_cast<std::size_t>(C) * G);
    for (auto& v : m) v = nd(rng);
    for (auto& v : k) v = nd(rng);
    sp.m1.insert(sp.m1.end(), m.begin(), m.end());
    sp.kd.insert(sp.kd.end(), k.begin(), k.end());
  }
  WildRunOptions ro;
  ro.n_rep = 5000;
  ro.weight = kernels::WeightType::kWebb;
  ro.seed = seed;
  ro.keep_coefs = true;
  ro.trace_keep = 5000;
  const auto cpu = make_backend(Device::kCpu);
  const WildRun run = cpu->wild_replicates(sp, ro);
  // the coefficient arrays recomputed directly from the backend's weights, for the functor
  std::vector<double> n0(ro.n_rep), n1(ro.n_rep), d0(ro.n_rep), d1(ro.n_rep), d2(ro.n_rep);
  const std::vector<double> V = cpu->wild_weights(seed, ro.weight, false, 0, ro.n_rep, G);
  for (std::uint64_t b = 0; b < ro.n_rep; ++b) {
    double z[2][C];
    double nn[2];
    for (int p = 0; p < 2; ++p) {
      nn[p] = 0;
      for (int g = 0; g < G; ++g) nn[p] += sp.m1_of(p)[g] * V[g * ro.n_rep + b];
      for (int c = 0; c < C; ++c) {
        z[p][c] = 0;
        for (int g = 0; g < G; ++g) z[p][c] += sp.kd_of(p, 0, 0)[c * G + g] * V[g * ro.n_rep + b];
      }
    }
    n0[b] = nn[0];
    n1[b] = nn[1];
    d0[b] = d1[b] = d2[b] = 0;
    for (int c = 0; c < C; ++c) {
      d0[b] += 1.3 * (z[0][c] * z[0][c]);
      d1[b] += 1.3 * (z[0][c] * z[1][c]);
      d2[b] += 1.3 * (z[1][c] * z[1][c]);
    }
  }
  kernels::WildCountOp op;
  op.cf = {n0.data(), n1.data(), d0.data(), d1.data(), d2.data(), static_cast<std::int64_t>(ro.n_rep)};
  for (double delta : {0.0, 0.4, -2.0}) {
    for (double t : {0.05, -0.2, 0.3}) {
      for (bool incl : {false, true}) {
        op.delta = delta;
        op.t = t;
        op.tol = 1e-10 * std::fabs(t);
        op.inclusive = incl;
        const BootCounts a = thrust_algorithms::count_replicates(thrust::device, op);
        const BootCounts b = run.reps->count(delta, t, op.tol, incl);
        SCOPED_TRACE("delta " + std::to_string(delta) + " t " + std::to_string(t) + " seed " + std::to_string(seed));
        expect_same(a, b);
        EXPECT_EQ(a.finite, 5000);
        EXPECT_GT(a.abs, 0);
      }
    }
  }
}

TEST(ThrustHost, GrayEnumerationEqualsTheCpuBackend) {
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  const int G = 17;
  Eigen::MatrixXd K(20, G);
  for (Eigen::Index i = 0; i < K.size(); ++i) K.data()[i] = nd(rng);
  const Eigen::MatrixXd H = K.transpose() * K;
  Eigen::VectorXd Cv(G);
  for (int g = 0; g < G; ++g) Cv(g) = nd(rng);
  kernels::GrayRangeOp op;
  op.p.H = H.data();
  op.p.C = Cv.data();
  op.p.n_clu = G;
  op.p.t = 0.9;
  op.p.tol = 1e-10;
  // the GPU's range count (one block of kGrayBlock vectors each), unlike the CPU's parts
  op.n_ranges = thrust_algorithms::gray_ranges(op.p, std::uint64_t{1} << 20);
  EXPECT_EQ(op.n_ranges, (std::uint64_t{1} << (G - 1)) / kernels::kGrayBlock);
  const BootCounts a = thrust_algorithms::gray_enumerate(thrust::device, op);
  const BootCounts b = make_backend(Device::kCpu)->wild_enumerate(op.p, nullptr);
  expect_same(a, b);
  EXPECT_EQ(a.finite, std::int64_t{1} << G);
  // uneven ranges (the blocks not a multiple of the range count) cover every vector once
  op.n_ranges = 7;
  expect_same(thrust_algorithms::gray_enumerate(thrust::device, op), b);
  op.n_ranges = 1000;
  expect_same(thrust_algorithms::gray_enumerate(thrust::device, op), b);
}
