// CPU versus GPU on the problems of the CUDA backend's goals, printed as one compact table:
//   problem | CPU | GPU warm | GPU cold (whole process) | CPU/GPU | achieved vs device limit
// "warm": the backend (context, cuBLAS handle, memory pool) made and one untimed run done before
// the clock starts; the median of three runs. "cold": a fresh `panelboot` process from the CSV,
// CUDA context creation included. Run by scripts/device-check; usage:
//   pb_device_bench PANELBOOT_BINARY OUT_DIR [--quick]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "panelboot/backend.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/design.hpp"
#include "panelboot/error.hpp"
#include "panelboot/formula.hpp"
#include "panelboot/threshold.hpp"
#include "panelboot/wild.hpp"

using namespace panelboot;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_of(const std::function<void()>& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median_of(int reps, const std::function<void()>& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) t.push_back(seconds_of(f));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// A panel with n_clu clusters of `per` observations, k regressors and cluster fixed effects.
std::string write_wide_csv(const std::string& path, int n_clu, int per, int k) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nd;
  std::ofstream f(path);
  f << "g,t,y";
  for (int j = 1; j <= k; ++j) f << ",x" << j;
  f << "\n";
  for (int g = 0; g < n_clu; ++g) {
    const double a = nd(rng);
    for (int t = 0; t < per; ++t) {
      std::vector<double> x(k);
      double y = a + nd(rng);
      for (int j = 0; j < k; ++j) {
        x[j] = nd(rng) + 0.3 * a;
        y += 0.1 * x[j];
      }
      f << g << "," << t << "," << y;
      for (double v : x) f << "," << v;
      f << "\n";
    }
  }
  std::string formula = "y ~ x1";
  for (int j = 2; j <= k; ++j) formula += " + x" + std::to_string(j);
  return formula + " | g";
}

struct Problem {
  std::string name, data, formula, cluster;
  WildOptions wo;
  std::string cli;  // the extra CLI options of the same run
  std::string env;  // PANELBOOT_WILD_KERNEL for this row
  double flops = 0, bytes = 0;  // per run, for the achieved-rate column
};

WildResult run_once(const Problem& p, const DataFrame& df, const Backend& be) {
  SampleOptions so;
  so.cluster = {p.cluster};
  Design d = build_design(df, parse_formula(p.formula), so);
  FitOptions fo;
  fo.vcov = VcovType::kCluster;
  return wild_bootstrap(d, fo, p.wo, be);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: pb_device_bench PANELBOOT_BINARY OUT_DIR [--quick]\n");
    return 2;
  }
  const std::string bin = argv[1], out = argv[2];
  const bool quick = argc > 3 && std::string(argv[3]) == "--quick";
  try {
    const auto cpu = make_backend(Device::kCpu);
    std::unique_ptr<Backend> gpu;
    try {
      gpu = make_backend(Device::kCuda);
    } catch (const Error& e) {
      std::fprintf(stderr, "pb_device_bench: %s (GPU columns left empty)\n", e.what());
    }
    const std::string gpu_name = gpu ? gpu->describe() : "none";
    // device limits: H200 SXM, FP64 tensor-core DGEMM 67 TFLOP/s, HBM3e 4.8 TB/s
    const bool h200 = gpu_name.find("H200") != std::string::npos;
    const double peak_flops = 67e12, peak_bytes = 4.8e12;

    // the study's shape is the embedded dataset (the CLI's default data)
    std::vector<Problem> probs;
    const std::int64_t B_study = quick ? 1000000 : 10000000;
    {
      Problem p;
      p.name = "study G=30, B=" + std::to_string(B_study) + " (p only)";
      p.formula = "newqua ~ rgzn + urban | province + year";
      p.cluster = "province";
      p.wo.tests = {"rgzn = 0"};
      p.wo.n_boot = B_study;
      p.wo.enumerate = Enumerate::kNever;
      p.wo.ci = false;
      p.cli = "--B " + std::to_string(B_study) + " --enumerate never --no-ci";
      // V (G x B) written and read by two DGEMMs (1 x 30 and 30 x 30 per replication)
      p.flops = 2.0 * 30 * (1 + 30) * B_study + 2.0 * 30 * B_study;
      p.bytes = 8.0 * 30 * B_study * 3 + 8.0 * 30 * B_study * 2;
      probs.push_back(p);
    }
    {
      Problem p;
      p.name = "study G=30, enumeration 2^30";
      p.formula = "newqua ~ rgzn + urban | province + year";
      p.cluster = "province";
      p.wo.tests = {"rgzn = 0"};
      p.wo.enumerate = Enumerate::kAlways;
      p.wo.ci = false;
      p.cli = "--enumerate always --no-ci";
      p.flops = 2.0 * 30 * std::pow(2.0, 29);  // y += dv H[:, g] per vector
      probs.push_back(p);
    }
    {
      Problem p;
      const int G = 1000, k = 20;
      p.name = "G=1000, k=20, B=100000 (p only)";
      p.data = out + "/wide.csv";
      p.formula = write_wide_csv(p.data, G, 10, k);
      p.cluster = "g";
      p.wo.tests = {"x1 = 0.1"};
      p.wo.n_boot = 100000;
      p.wo.enumerate = Enumerate::kNever;
      p.wo.ci = false;
      p.cli = "--B 100000 --enumerate never --no-ci";
      // factored form: R1 = [C; Q; GW] V ((1 + k) x G) and Z = T1 V - PF R1 (G x k)
      p.flops = 2.0 * (1 + k) * G * 1e5 + 2.0 * G * k * 1e5 + 2.0 * G * 1e5;
      p.bytes = 8.0 * G * 1e5 * 4;
      probs.push_back(p);
    }
    const DataFrame study = read_data("");
    std::printf("%-44s %10s %10s %12s %9s  %s\n", "problem", "CPU s", "GPU warm s", "GPU cold s", "CPU/GPU",
                "achieved (estimated) vs device limit");
    std::vector<std::string> rows;
    // the study's shape again with the cuBLAS products instead of the fused kernel (the choice
    // between them is kept where it measures faster)
    {
      Problem p = probs[0];
      p.name = "  the same, PANELBOOT_WILD_KERNEL=gemm";
      p.env = "gemm";
      probs.insert(probs.begin() + 1, p);
    }
    for (const Problem& p : probs) {
      if (!p.env.empty()) setenv("PANELBOOT_WILD_KERNEL", p.env.c_str(), 1);
      const DataFrame df = p.data.empty() ? study : read_data(p.data);
      WildResult rc, rg;
      const double t_cpu = seconds_of([&] { rc = run_once(p, df, *cpu); });
      double t_warm = NAN, t_cold = NAN;
      std::string agree = "-";
      if (gpu) {
        run_once(p, df, *gpu);  // warm-up
        t_warm = median_of(3, [&] { rg = run_once(p, df, *gpu); });
        agree = rc.tests[0].n_exceed == rg.tests[0].n_exceed && rc.tests[0].n_finite == rg.tests[0].n_finite
                    ? "counts identical"
                    : "COUNTS DIFFER (" + std::to_string(rc.tests[0].n_exceed) + " vs " +
                          std::to_string(rg.tests[0].n_exceed) + ")";
        const std::string cmd = (p.env.empty() ? "" : "PANELBOOT_WILD_KERNEL=" + p.env + " ") + bin + " wild" + (p.data.empty() ? "" : " --data " + p.data) + " --formula '" +
                                p.formula + "' --cluster " + p.cluster + " --test '" + p.wo.tests[0] + "' " + p.cli +
                                " --backend cuda --format json >/dev/null 2>&1";
        t_cold = seconds_of([&] {
          if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "failed: %s\n", cmd.c_str());
        });
      }
      char rate[160] = "-";
      if (gpu && h200 && t_warm > 0) {
        const double fr = p.flops / t_warm / peak_flops, br = p.bytes / t_warm / peak_bytes;
        std::snprintf(rate, sizeof rate, "%.0f GFLOP/s (%.1f%% of FP64), %.0f GB/s (%.1f%% of HBM)", p.flops / t_warm / 1e9,
                      100 * fr, p.bytes / t_warm / 1e9, 100 * br);
      }
      char line[512];
      std::snprintf(line, sizeof line, "%-44s %10.4f %10.4f %12.3f %8.1fx  %s; %s", p.name.c_str(), t_cpu, t_warm,
                    t_cold, t_cpu / t_warm, rate, agree.c_str());
      rows.push_back(line);
      std::printf("%s\n", line);
      std::fflush(stdout);
      unsetenv("PANELBOOT_WILD_KERNEL");
    }
    // Hansen's threshold application, 3 tests x B = 1000, on the 393-point grid and every value
    for (const std::string grid : {"400", "all"}) {
      ThresholdOptions o;
      o.formula = "inva ~ l(vala,1) + I(l(vala,1)^2) + I(l(vala,1)^3) + l(debta,1) + I(l(vala,1)*l(debta,1)) | id";
      o.regime = {"l(cfa,1)"};
      o.threshold_var = "l(debta,1)";
      o.sample.panel_id = "id";
      o.sample.panel_time = "year";
      o.n_thresholds = 3;
      o.n_boot = 1000;
      o.grid = grid == "all" ? 0 : 400;
      o.trace = 1000;
      const std::string data = "tests/data/hansen1999_invest.csv";
      const DataFrame df = read_data(data);
      ThresholdResult rc, rg;
      const double t_cpu = seconds_of([&] { rc = estimate_threshold(df, o, *cpu); });
      double t_warm = NAN, t_cold = NAN;
      std::string agree = "-";
      if (gpu) {
        estimate_threshold(df, o, *gpu);
        t_warm = median_of(3, [&] { rg = estimate_threshold(df, o, *gpu); });
        agree = rc.fstar == rg.fstar ? "F* identical" : "F* DIFFER";
        const std::string cmd = bin + " threshold --data " + data + " --panel id,year --formula '" + o.formula +
                                "' --regime 'l(cfa,1)' --threshold-var 'l(debta,1)' --thresholds 3 --B 1000 --grid " +
                                grid + " --backend cuda --format json >/dev/null 2>&1";
        t_cold = seconds_of([&] {
          if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "failed: %s\n", cmd.c_str());
        });
      }
      // where the time goes (the last run of each): setup, sample search, bootstrap
      auto stages = [](const ThresholdResult& r) {
        std::string o;
        for (const auto& [k, v] : r.timing) o += (o.empty() ? "" : " ") + k.substr(0, k.size() - 2) + " " + std::to_string(v).substr(0, 6);
        return o;
      };
      const std::string where = "whole estimate; CPU: " + stages(rc) + (gpu ? "; GPU: " + stages(rg) : "");
      char line[640];
      std::snprintf(line, sizeof line, "%-44s %10.4f %10.4f %12.3f %8.1fx  %s; %s",
                    ("Hansen threshold 3 tests B=1000 grid " + grid).c_str(), t_cpu, t_warm, t_cold, t_cpu / t_warm,
                    where.c_str(), agree.c_str());
      rows.push_back(line);
      std::printf("%s\n", line);
      std::fflush(stdout);
    }
    // batched OLS: n_batch regressions of n x k
    {
      const std::int64_t n = 200, k = 10, nb = quick ? 2000 : 20000;
      std::mt19937_64 rng(3);
      std::normal_distribution<double> nd;
      std::vector<double> X(static_cast<std::size_t>(n * k * nb)), y(static_cast<std::size_t>(n * nb));
      for (auto& v : X) v = nd(rng);
      for (auto& v : y) v = nd(rng);
      OlsBatch bt{X.data(), y.data(), n, k, nb, n * k, n};
      OlsBatchResult rc;
      const double t_cpu = seconds_of([&] { rc = cpu->batched_ols(bt); });
      // the floor: X and y read once, beta and ssr written (bytes); the packed upper triangle of
      // [X y]'[X y] and the residuals (flops), against HBM bandwidth and the FP64 rate
      const double flops = static_cast<double>(nb) * (1.0 * n * (k + 1) * (k + 2) + 2.0 * n * (k + 1));
      const double bytes = static_cast<double>(nb) * 8.0 * (n * k + n + k + 1);
      const double floor_s = std::max(flops / peak_flops, bytes / peak_bytes);
      // the three kernels (PANELBOOT_OLS_KERNEL; staged is the default), then the default's whole
      // call with the host-device copies
      for (const std::string variant : {"staged", "direct", "gemm", "whole"}) {
        double t = NAN;
        std::string agree = "-";
        if (gpu) {
          setenv("PANELBOOT_OLS_KERNEL", variant == "whole" ? "staged" : variant.c_str(), 1);
          OlsBatchResult rg = gpu->batched_ols(bt);
          std::vector<double> dev;
          const double t_whole = median_of(3, [&] {
            rg = gpu->batched_ols(bt);
            dev.push_back(rg.device_s);
          });
          std::sort(dev.begin(), dev.end());
          t = variant == "whole" ? t_whole : dev[dev.size() / 2];
          double worst = 0, worst_ssr = 0;
          int bad = 0;
          for (std::size_t i = 0; i < rc.beta.size(); ++i)
            worst = std::max(worst, std::fabs(rc.beta[i] - rg.beta[i]) / std::max(1.0, std::fabs(rc.beta[i])));
          for (std::size_t i = 0; i < rc.ssr.size(); ++i) {
            worst_ssr = std::max(worst_ssr, std::fabs(rc.ssr[i] - rg.ssr[i]) / std::fabs(rc.ssr[i]));
            bad += rc.status[i] != rg.status[i];
          }
          char buf[96];
          std::snprintf(buf, sizeof buf, "max rel diff beta %.1e, ssr %.1e, status differs %d", worst, worst_ssr, bad);
          agree = buf;
          unsetenv("PANELBOOT_OLS_KERNEL");
        }
        char rate[200] = "-";
        if (gpu && h200)
          std::snprintf(rate, sizeof rate, "%.0f GFLOP/s, %.0f GB/s (%.1f%% of HBM): %.1fx the device floor %.0f us%s",
                        flops / t / 1e9, bytes / t / 1e9, 100 * bytes / t / peak_bytes, t / floor_s, 1e6 * floor_s,
                        variant == "whole" ? ", incl. PCIe copies" : "");
        char line[512];
        std::snprintf(line, sizeof line, "%-44s %10.4f %10.4f %12s %8.1fx  %s; %s",
                      ("batched OLS " + std::to_string(nb) + " x (200 x 10) " +
                       (variant == "whole" ? std::string("whole call") : "kernel " + variant))
                          .c_str(),
                      t_cpu, t, "-", t_cpu / t, rate, agree.c_str());
        rows.push_back(line);
        std::printf("%s\n", line);
      }
    }
    std::printf("\n== device-check table (%s) ==\n", gpu_name.c_str());
    std::printf("%-44s %10s %10s %12s %9s  %s\n", "problem", "CPU s", "GPU warm s", "GPU cold s", "CPU/GPU",
                "achieved (estimated) vs device limit");
    for (const auto& r : rows) std::printf("%s\n", r.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pb_device_bench: %s\n", e.what());
    return 1;
  }
}
