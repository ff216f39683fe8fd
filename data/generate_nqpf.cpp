// Seeded generator of data/nqpf_synthetic.csv: a SIMULATED stand-in for the study's panel
// (30 Chinese provinces x 2011-2022), whose raw data is not public. See data/README.md.
//
//   pb_gen_nqpf [--seed S] > data/nqpf_synthetic.csv
//
// Everything is deterministic: a SplitMix64 stream and Box-Muller normals written here (no
// std:: distributions, whose outputs differ between standard libraries), and fixed printf
// formats, so the same seed gives the same bytes on every machine.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  double normal() {
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

struct Province {
  const char* name;
  const char* region;
  int municipality;
};

const Province kProvinces[30] = {
    {"Beijing", "East", 1},        {"Tianjin", "East", 1},      {"Hebei", "East", 0},
    {"Liaoning", "East", 0},       {"Shanghai", "East", 1},     {"Jiangsu", "East", 0},
    {"Zhejiang", "East", 0},       {"Fujian", "East", 0},       {"Shandong", "East", 0},
    {"Guangdong", "East", 0},      {"Hainan", "East", 0},       {"Shanxi", "Central", 0},
    {"Jilin", "Central", 0},       {"Heilongjiang", "Central", 0}, {"Anhui", "Central", 0},
    {"Jiangxi", "Central", 0},     {"Henan", "Central", 0},     {"Hubei", "Central", 0},
    {"Hunan", "Central", 0},       {"Inner Mongolia", "West", 0}, {"Guangxi", "West", 0},
    {"Chongqing", "West", 1},      {"Sichuan", "West", 0},      {"Guizhou", "West", 0},
    {"Yunnan", "West", 0},         {"Shaanxi", "West", 0},      {"Gansu", "West", 0},
    {"Qinghai", "West", 0},        {"Ningxia", "West", 0},      {"Xinjiang", "West", 0},
};

// Table 2's sub-indicators of the AI index, and the fixed weights that build rgzn from them.
const char* kIndicators[10] = {"ai_fiber",    "ai_rd_exp",  "ai_rd_staff", "ai_equip",
                               "ai_software", "ai_embedded", "ai_firms",   "ai_newprod",
                               "ai_patent",   "ai_profit"};
const double kWeights[10] = {0.08, 0.14, 0.12, 0.08, 0.12, 0.08, 0.12, 0.10, 0.06, 0.10};
const double kLoading[10] = {0.85, 0.95, 0.93, 0.80, 0.90, 0.82, 0.92, 0.86, 0.70, 0.90};
const double kSpread[10] = {0.9, 1.1, 1.0, 0.7, 1.2, 0.9, 1.3, 0.6, 0.5, 1.2};

constexpr int kN = 30, kT = 12, kObs = kN * kT;

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / v.size();
}
double sd(const std::vector<double>& v) {
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / (v.size() - 1));
}
// x -> m + s (x - mean) / sd: Table 3's mean and standard deviation exactly
void calibrate(std::vector<double>& v, double m, double s) {
  const double m0 = mean(v), s0 = sd(v);
  for (double& x : v) x = m + s * (x - m0) / s0;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t seed = 20250101;
  for (int a = 1; a + 1 < argc; ++a)
    if (!std::strcmp(argv[a], "--seed")) seed = std::strtoull(argv[a + 1], nullptr, 10);
  Rng rng{seed};

  // Province latent factors: development D (regional gradient, municipalities ahead), an
  // urban-structure factor U, an openness factor O, a fiscal factor F.
  double D[kN], U[kN], O[kN], F[kN], trend[kN], fdi_base[kN];
  for (int i = 0; i < kN; ++i) {
    const std::string r = kProvinces[i].region;
    const double base = r == "East" ? 0.7 : r == "Central" ? -0.3 : -0.6;
    D[i] = base + 0.55 * rng.normal() + (kProvinces[i].municipality ? 0.8 : 0.0);
    U[i] = rng.normal();
    O[i] = rng.normal();
    F[i] = rng.normal();
    trend[i] = 0.09 + 0.03 * rng.normal();
    fdi_base[i] = -0.85 + 0.5 * rng.normal();
  }
  std::vector<double> rgzn(kObs), urban(kObs), ind(kObs), fdi(kObs), open(kObs), fin(kObs),
      tec(kObs), dev(kObs);
  std::vector<std::vector<double>> sub(10, std::vector<double>(kObs));
  for (int i = 0; i < kN; ++i)
    for (int t = 0; t < kT; ++t) {
      const int o = i * kT + t;
      const double tc = t - 5.5;
      const double A = 0.9 * D[i] + trend[i] * tc + 0.12 * rng.normal();  // AI latent
      for (int k = 0; k < 10; ++k) {
        const double z = kLoading[k] * A + std::sqrt(1 - kLoading[k] * kLoading[k]) * rng.normal();
        sub[k][o] = std::exp(kSpread[k] * z);
      }
      urban[o] = 0.045 * D[i] + 0.060 * U[i] + 0.009 * tc + 0.012 * rng.normal();
      ind[o] = std::exp(0.04 * D[i] + 0.30 * U[i] + 0.025 * tc + 0.08 * rng.normal()) +
               (i == 0 ? 3.2 : 0.0);  // Beijing's service economy
      open[o] = std::exp(0.95 * D[i] + 0.55 * O[i] + 0.35 * U[i] - 0.02 * tc + 0.15 * rng.normal());
      fin[o] = std::exp(-0.30 * D[i] + 0.22 * F[i] + 0.02 * tc + 0.05 * rng.normal());
      tec[o] = 1.0 * D[i] - 0.45 * F[i] + 0.06 * tc + 0.18 * rng.normal();
      fdi[o] = std::exp(fdi_base[i] + 0.25 * rng.normal());
      dev[o] = D[i] + 0.04 * tc + 0.25 * rng.normal();
    }
  // A few foreign-investment outliers (Table 3: max 57.6 against a mean of 0.88).
  // They sit in the province (Beijing aside) with the most service-heavy structure, which gives
  // fdi its positive correlation with ind (Table 4: 0.269).
  int hub = 1;
  for (int i = 1; i < kN; ++i)
    if (ind[i * kT] > ind[hub * kT]) hub = i;
  fdi[hub * kT + 2] = 57.6126;
  fdi[hub * kT + 3] = 52.0;
  fdi[hub * kT + 5] = 18.2;
  fdi[27 * kT + 1] = 0.0538;

  // rgzn = a + b * sum_k w_k ind_k / mean(ind_k), calibrated to Table 3.
  std::vector<double> raw(kObs, 0.0);
  for (int k = 0; k < 10; ++k) {
    const double m = mean(sub[k]);
    for (int o = 0; o < kObs; ++o) raw[o] += kWeights[k] * sub[k][o] / m;
  }
  const double b = 10.49283 / sd(raw), a = 11.20761 - b * mean(raw);
  for (int o = 0; o < kObs; ++o) rgzn[o] = a + b * raw[o];
  calibrate(urban, 0.6011, 0.12056);
  calibrate(ind, 1.3571, 0.74433);
  calibrate(open, 0.2813, 0.28469);
  calibrate(fin, 0.2590, 0.1115);
  calibrate(tec, 10.8320, 1.3876);

  // newqua: Table 5 column (2) slopes + province effects (tied to development) + year effects
  // + noise; the province effects' scale and the level are calibrated to Table 3.
  const double beta[6] = {0.00212, 0.567, -0.00189, 0.00108, 0.000943, -0.155};
  std::vector<double> xb(kObs), year_fx(kT), noise(kObs), newqua(kObs);
  for (int t = 0; t < kT; ++t) year_fx[t] = 0.004 * t + 0.004 * rng.normal();
  double alpha_noise[kN];
  for (int i = 0; i < kN; ++i) alpha_noise[i] = 0.25 * rng.normal();
  for (int o = 0; o < kObs; ++o) {
    xb[o] = beta[0] * rgzn[o] + beta[1] * urban[o] + beta[2] * ind[o] + beta[3] * fdi[o] +
            beta[4] * open[o] + beta[5] * fin[o];
    noise[o] = 0.0165 * rng.normal();
  }
  // bisection on the scale c of the province effects c exp(0.8 (D_i + noise_i)) to hit sd 0.13074
  auto build = [&](double c) {
    for (int i = 0; i < kN; ++i)
      for (int t = 0; t < kT; ++t) {
        const int o = i * kT + t;
        newqua[o] = xb[o] + c * std::exp(0.8 * (D[i] + alpha_noise[i])) + year_fx[t] + noise[o];
      }
  };
  double lo = 0, hi = 1;
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    build(mid);
    (sd(newqua) < 0.13074 ? lo : hi) = mid;
  }
  build(0.5 * (lo + hi));
  const double shift = 0.28516 - mean(newqua);
  for (double& v : newqua) v += shift;

  // devlevel: the 233 most developed province-years are "high" (the paper's 233/127 split).
  std::vector<int> order(kObs);
  for (int o = 0; o < kObs; ++o) order[o] = o;
  for (int x = 1; x < kObs; ++x)  // insertion sort: deterministic, no std::sort tie rules
    for (int y = x; y > 0 && dev[order[y]] > dev[order[y - 1]]; --y) std::swap(order[y], order[y - 1]);
  std::vector<int> high(kObs, 0);
  for (int r = 0; r < 233; ++r) high[order[r]] = 1;

  std::printf("province,year,region,devlevel,municipality,newqua,rgzn,urban,ind,fdi,open,fin,tec");
  for (const char* s : kIndicators) std::printf(",%s", s);
  std::printf(",simulated\n");
  for (int i = 0; i < kN; ++i)
    for (int t = 0; t < kT; ++t) {
      const int o = i * kT + t;
      std::printf("%s,%d,%s,%s,%d,%.6f,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f", kProvinces[i].name, 2011 + t,
                  kProvinces[i].region, high[o] ? "high" : "average", kProvinces[i].municipality,
                  newqua[o], rgzn[o], urban[o], ind[o], fdi[o], open[o], fin[o], tec[o]);
      for (int k = 0; k < 10; ++k) std::printf(",%.6g", sub[k][o]);
      std::printf(",1\n");
    }
  std::fprintf(stderr, "pb_gen_nqpf: seed %llu; rgzn = %.6f + %.6f * sum_k w_k ind_k/mean(ind_k)\n",
               static_cast<unsigned long long>(seed), a, b);
  return 0;
}
