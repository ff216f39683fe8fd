// `panelboot power`: Monte Carlo size, power and minimum detectable effect per split group. See
// power.hpp for the algebra of the fast path and docs/POWER.md for the data-generating process.
#include "panelboot/power.hpp"
#include "panelboot/timing.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <memory>
#include <stdexcept>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend/cpu/cpu.hpp"
#include "inference/wild_engine.hpp"
#include "panelboot/distributions.hpp"
#include "panelboot/error.hpp"
#include "panelboot/kernels/wild_weights.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/progress.hpp"
#include "panelboot/report.hpp"
#include "panelboot/text.hpp"
#include "panelboot/within.hpp"

namespace panelboot {

using wild_detail::Mat;
using wild_detail::Vec;
using wild_detail::WildEngine;

std::string power_test_name(PowerTest t) {
  switch (t) {
    case PowerTest::kCrve: return "crve";
    case PowerTest::kWild: return "wild";
    case PowerTest::kWildWebb: return "wild-webb";
    case PowerTest::kWcu: return "wcu";
  }
  return "?";
}

namespace {

// ---- effects ----

bool parse_real(const std::string& s, double& v) {
  if (s.empty() || s.find_first_of("xXpP") != std::string::npos) return false;  // no hexadecimal
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(v);
}

// A grid point as the decimal it stands for (0.0022, not 0.0021999999999999997): rounded to 15
// significant digits, so that it equals the number typed in a list, draws included.
double decimal15(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return std::strtod(buf, nullptr);
}

std::vector<EffectItem> effect_range(const std::string& tok) {
  const std::size_t c1 = tok.find(':'), c2 = tok.find(':', c1 + 1);
  double a = 0, b = 0, n = 0;
  if (c2 == std::string::npos || tok.find(':', c2 + 1) != std::string::npos ||
      !parse_real(trimmed(tok.substr(0, c1)), a) || !parse_real(trimmed(tok.substr(c1 + 1, c2 - c1 - 1)), b) ||
      !parse_real(trimmed(tok.substr(c2 + 1)), n) || n != std::floor(n) || n < 1 || n > 10000)
    throw InvalidInput("--effects: '" + tok + "' is not a range a:b:n (n evenly spaced values from a to b, n from 1 to 10000)");
  if (n == 1 && a != b) throw InvalidInput("--effects: '" + tok + "' asks for 1 value between two different ends");
  std::vector<EffectItem> out;
  const int m = static_cast<int>(n);
  if (!std::isfinite(b - a)) throw InvalidInput("--effects: the range '" + tok + "' overflows; give smaller ends");
  for (int i = 0; i < m; ++i) out.push_back({m == 1 ? a : decimal15(a + (b - a) * i / (m - 1)), false});
  return out;
}

// ---- seeds ----

std::uint64_t mix64(std::uint64_t z) {  // SplitMix64's finalizer
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t effect_bits(double e) {
  if (e == 0) e = 0.0;  // -0 and +0 draw alike
  std::uint64_t b = 0;
  std::memcpy(&b, &e, sizeof b);
  return b;
}

// The seed of a group's simulated errors: z of replication r, cluster g = Philox(seed, r, g).
std::uint64_t error_seed(std::uint64_t seed, std::uint64_t group_key) {
  return mix64(mix64(seed ^ 0x5eed0f0e77045ULL) ^ group_key);
}

}  // namespace

std::vector<EffectItem> parse_effects(const std::string& text) {
  std::vector<EffectItem> out;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string tok = trimmed(text.substr(at, comma - at));
    at = comma + 1;
    if (tok.empty()) {
      if (comma == text.size() && !out.empty()) break;
      throw InvalidInput("--effects: an empty item in '" + text + "'; give numbers, a:b:n ranges or xM multiples, e.g. 0,0.001,0.002");
    }
    double v = 0;
    if (tok.find(':') != std::string::npos) {
      for (const EffectItem& e : effect_range(tok)) out.push_back(e);
    } else if ((tok[0] == 'x' || tok[0] == 'X') && parse_real(tok.substr(1), v)) {
      out.push_back({v, true});
    } else if (parse_real(tok, v)) {
      out.push_back({v, false});
    } else {
      throw InvalidInput("--effects: '" + tok + "' is not a number, an a:b:n range or a multiple xM of the full-sample estimate");
    }
    if (out.size() > 10000) throw InvalidInput("--effects: more than 10000 effects");
  }
  if (out.empty()) throw InvalidInput("--effects is empty; give numbers, a:b:n ranges or xM multiples");
  return out;
}

std::uint64_t power_group_key(const std::string& split, const std::string& group) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a over "split" 0x1f "group"
  for (char c : split + '\x1f' + group) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::uint64_t power_wild_seed(std::uint64_t seed, std::uint64_t group_key, double effect, std::int64_t rep) {
  std::uint64_t s = mix64(seed ^ 0xb007b007b007ULL);
  s = mix64(s ^ group_key);
  s = mix64(s ^ effect_bits(effect));
  return mix64(s ^ static_cast<std::uint64_t>(rep));
}

std::vector<std::int32_t> power_block_permutation(std::uint64_t seed, std::int64_t rep, std::int32_t n) {
  std::vector<std::int32_t> perm(static_cast<std::size_t>(std::max(n, 0)));
  for (std::int32_t i = 0; i < n; ++i) perm[static_cast<std::size_t>(i)] = i;
  for (std::int32_t j = n - 1; j > 0; --j) {  // Fisher-Yates, one Philox word per step
    const double u = kernels::to_unit(kernels::philox_block(seed, static_cast<std::uint64_t>(rep), static_cast<std::uint32_t>(j), 0x626c6bU)[0]);
    const auto k = static_cast<std::int32_t>(std::min<double>(std::floor(u * (j + 1)), j));
    std::swap(perm[static_cast<std::size_t>(j)], perm[static_cast<std::size_t>(k)]);
  }
  return perm;
}

double mcnemar_p(std::int64_t b, std::int64_t c) {
  const std::int64_t n = b + c, k = std::min(b, c);
  if (n == 0 || 2 * k == n) return 1.0;
  // P(Bin(n, 1/2) <= k) = I_{1/2}(n - k, k + 1)
  return std::min(1.0, 2 * incomplete_beta(static_cast<double>(n - k), static_cast<double>(k + 1), 0.5));
}

std::pair<double, double> wilson_interval(std::int64_t k, std::int64_t n, double z) {
  if (n <= 0) return {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
  const double nn = static_cast<double>(n), p = static_cast<double>(k) / nn, z2 = z * z;
  const double den = 1 + z2 / nn, centre = (p + z2 / (2 * nn)) / den;
  const double half = z * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / den;
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

namespace {

constexpr std::int32_t kMinClusters = 3;

// One split group: the fitted model whose X~, A and clusters every replication shares.
struct GroupModel {
  PowerGroup info;
  std::vector<char> mask;           // the group's data-frame rows (before the user's --where)
  Design d;                         // after fit(): X~ in d.X, the residuals in d.y
  FitResult fr;
  std::vector<double> X_raw, y_raw;  // before the within transform (the saved datasets)
  std::vector<std::string> x_raw_names;
  Grouping boot;                    // the coarsest cluster variable: bootstrap and error clusters
  std::vector<ClusterTerm> terms;
  int target = -1;                  // index among the fit's coefficients
  std::vector<double> beta_cal;     // the calibrating coefficients on the group's kept columns
  std::vector<double> u_cal;        // the calibrating residuals on the group's rows
  Vec xa, h;                        // X~ a (a = A e_target) and the WCR direction X~ a / a_t
  Mat basis;                        // wild errors: N x G, column g = M (c u_cal 1_g)
  std::vector<std::vector<std::int32_t>> cluster_rows;  // block errors: each cluster's rows
  std::vector<std::vector<std::int32_t>> unit_series;   // ar1 errors: each panel unit's rows by time
  const SyntheticDesign* design = nullptr;  // --design: the group's design and its rows' layout
  DesignLayout layout;
  // --design with xdraws: this group is draw x_draw of x_draws of its design, runs n_rep
  // replications (0: --R), and draws its errors under key_label (its design's text for draw 0)
  std::int32_t x_draw = 0, x_draws = 1;
  std::int64_t n_rep = 0;
  std::string key_label;
  // --tests diff (the interacted model of a split): every group's target, the first being
  // `target`; R (q x k) the first target less each other; W = X~ A R' and WQ = W (R A R')^-1
  // (n x q: the restricted residuals are u + WQ R b)
  bool diff = false;
  std::vector<int> targets;
  Mat R, W, WQ;
  // --placebo: the design before the within transform (each replication refits it with its own
  // placebo column), that column's index among the raw regressors, and the regressor copied
  bool placebo = false;
  Design d_raw;
  int placebo_col = -1, source = -1;
};

const char* const kDiffGroup = "(difference)";
const char* const kPlacebo = "placebo";

// A group as messages name it: "the whole sample" or "group region = East".
std::string sample_label(const PowerGroup& info) {
  return info.split == "pooled" ? std::string("the whole sample") : "group " + info.split + " = " + info.group;
}

// The fit every group's regression is: fit's options with the cluster-robust variance, no --wald.
FitOptions cluster_fit_options(const FitOptions& fo) {
  FitOptions f = fo;
  f.vcov = VcovType::kCluster;
  f.wald.clear();
  return f;
}

// The fit of one sample: the design, the raw columns kept aside, the cluster-robust fit.
void fit_group(const DataFrame& df, const Formula& fm, SampleOptions so, const FitOptions& fo, GroupModel& g) {
  so.row_mask = g.mask.empty() ? nullptr : &g.mask;
  const std::string label = g.info.group == kDiffGroup
                                ? "the interacted model of --split " + g.info.split + " (--tests diff)"
                                : sample_label(g.info);
  try {
    g.d = build_design(df, fm, so);
  } catch (const InvalidInput& e) {
    if (g.mask.empty()) throw;
    throw InvalidInput(label + ": " + e.what());  // which group's sample failed
  }
  const Design& d = g.d;
  if (d.clusters.empty()) throw InvalidInput("power needs --cluster VAR (its tests are cluster-robust)");
  const Grouping* best = &d.clusters[0];
  for (const Grouping& c : d.clusters)
    if (c.n_levels < best->n_levels) best = &c;
  g.boot = *best;
  if (g.boot.n_levels < kMinClusters)
    throw InvalidInput(label + " has " + std::to_string(g.boot.n_levels) + " cluster" + (g.boot.n_levels == 1 ? "" : "s") +
                       " of " + g.boot.name + " (" + std::to_string(d.n_obs) + " observations); power needs at least " +
                       std::to_string(kMinClusters) + " per group");
  double k_all = static_cast<double>(d.n_reg);
  for (const Grouping& f : d.fe) k_all += f.n_levels;
  if (!d.fe.empty()) k_all -= static_cast<double>(d.fe.size() - 1);
  if (static_cast<double>(d.n_obs) <= k_all)
    throw InvalidInput(label + " has " + std::to_string(d.n_obs) + " observations for " +
                       std::to_string(static_cast<long long>(k_all)) + " parameters (regressors and fixed-effect levels)");
  g.X_raw.assign(d.X.begin(), d.X.end());
  g.y_raw.assign(d.y.begin(), d.y.end());
  g.x_raw_names = d.x_names;
  if (g.placebo) {
    g.d_raw = d;
    g.placebo_col = static_cast<int>(std::find(d.x_names.begin(), d.x_names.end(), kPlacebo) - d.x_names.begin());
  }
  g.fr = fit(g.d, cluster_fit_options(fo));
  g.info.n_obs = g.d.n_obs;
  g.info.n_clusters = g.boot.n_levels;
  g.info.dof_k = g.fr.dof_k;
  g.info.k_all = k_all - static_cast<double>(d.n_reg - g.fr.beta.size());  // less the dropped columns
}

int target_index(const FitResult& fr, const std::string& target, const std::string& label) {
  for (std::size_t j = 0; j < fr.coefficients.size(); ++j)
    if (fr.coefficients[j].name == target) return static_cast<int>(j);
  for (const std::string& dname : fr.dropped)
    if (dname.substr(0, dname.find(' ')) == target)
      throw InvalidInput("--target " + target + " was dropped in " + label + ": " + dname +
                         "; it is absorbed by the fixed effects or collinear, so no effect of it can be estimated");
  std::string names;
  for (const auto& c : fr.coefficients) names += (names.empty() ? "" : ", ") + c.name;
  throw InvalidInput("--target " + target + " is not a coefficient of the model (its coefficients: " + names + ")");
}

double residual_ss(const Values& u) {
  double s = 0;
  for (double v : u) s += v * v;
  return s;
}

// The calibrating model of a group: its own fit, or the pooled one on the group's rows.
void calibrate(GroupModel& g, const GroupModel* pooled, PowerCalibration how) {
  const GroupModel& src = how == PowerCalibration::kPooled && pooled ? *pooled : g;
  g.info.calibrated_on = &src == &g ? "group" : "pooled";
  std::map<std::string, double> coef;
  for (std::size_t j = 0; j < src.fr.coefficients.size(); ++j) coef[src.fr.coefficients[j].name] = src.fr.beta(static_cast<Eigen::Index>(j));
  g.beta_cal.clear();
  for (const Coefficient& c : g.fr.coefficients) {
    // the interacted model's "split::group:x" takes the pooled model's x
    const std::string base = g.diff && &src != &g ? c.name.substr(c.name.rfind(':') + 1) : c.name;
    g.beta_cal.push_back(coef.count(base) ? coef[base] : 0.0);
  }
  for (const auto& kv : src.fr.coefficients) g.info.coefficients.emplace_back(kv.name, coef[kv.name]);
  const double n = static_cast<double>(src.d.n_obs);
  g.info.s2 = residual_ss(src.d.y) / (n - src.info.k_all);
  g.info.error_scale = std::sqrt(n / (n - src.info.k_all));
  if (&src == &g) {
    g.u_cal.assign(g.d.y.begin(), g.d.y.end());
    return;
  }
  // the pooled residuals at the group's rows (the group's rows are pooled rows: a subsample)
  std::vector<std::int64_t> at(src.d.rows.empty() ? 0 : src.d.rows.back() + 1, -1);
  for (std::size_t i = 0; i < src.d.rows.size(); ++i) at[src.d.rows[i]] = static_cast<std::int64_t>(i);
  g.u_cal.resize(g.d.n_obs);
  for (std::size_t i = 0; i < g.d.n_obs; ++i) {
    const std::uint32_t r = g.d.rows.empty() ? static_cast<std::uint32_t>(i) : g.d.rows[i];
    const std::int64_t j = src.d.rows.empty() ? r : (r < at.size() ? at[r] : -1);
    if (j < 0) throw InvalidInput("--calibrate pooled: a row of group " + g.info.split + " = " + g.info.group + " is not in the pooled sample");
    g.u_cal[i] = src.d.y[static_cast<std::size_t>(j)];
  }
}

Demeaner group_demeaner(const Design& d) {
  std::vector<FeView> views;
  for (const Grouping& f : d.fe) views.push_back({f.code.data(), f.n_levels});
  return Demeaner(views, d.n_obs, nullptr);
}

DemeanOptions tight_demean(const FitOptions& fo) {
  DemeanOptions o = fo.demean;
  o.tol = std::min(o.tol, 1e-13);
  return o;
}

// --errors block: each cluster's rows in data order; every cluster must have as many, so that a
// block moves whole (its j-th row onto the j-th row of the cluster it is drawn for).
void block_layout(GroupModel& g) {
  g.cluster_rows.assign(static_cast<std::size_t>(g.boot.n_levels), {});
  for (std::size_t i = 0; i < g.d.n_obs; ++i) g.cluster_rows[g.boot.code[i]].push_back(static_cast<std::int32_t>(i));
  std::size_t lo = g.d.n_obs, hi = 0;
  for (const auto& r : g.cluster_rows) {
    lo = std::min(lo, r.size());
    hi = std::max(hi, r.size());
  }
  if (lo != hi)
    throw InvalidInput("--errors block needs clusters of equal size, and " +
                       sample_label(g.info) + " has clusters of " + g.boot.name + " with " + std::to_string(lo) + " to " + std::to_string(hi) +
                       " observations; use --errors wild or normal");
}

double mean_variance_ratio(double rho, double T);
double estimated_rho(const GroupModel& g, double T);

// Each panel unit's rows (the design's extra[0]) in time order.
std::vector<std::vector<std::int32_t>> unit_series_by_time(const Design& d) {
  const Grouping& unit = d.extra.at(0);
  std::vector<std::vector<std::int32_t>> series(static_cast<std::size_t>(unit.n_levels));
  for (std::size_t i = 0; i < d.n_obs; ++i) series[unit.code[i]].push_back(static_cast<std::int32_t>(i));
  for (auto& rows : series)
    std::sort(rows.begin(), rows.end(), [&](std::int32_t a, std::int32_t b) { return d.time.code[a] < d.time.code[b]; });
  return series;
}

// The pooled first-order autocorrelation of v within the series: sum v_t v_{t-1} / sum v_{t-1}^2.
double lag1_autocorrelation(const std::vector<std::vector<std::int32_t>>& series, const double* v) {
  double num = 0, den = 0;
  for (const auto& rows : series)
    for (std::size_t t = 1; t < rows.size(); ++t) {
      num += v[rows[t]] * v[rows[t - 1]];
      den += v[rows[t - 1]] * v[rows[t - 1]];
    }
  return den > 0 ? num / den : 0.0;
}

// --errors ar1: each panel unit's rows in time order (the design's extra[0] is the unit, `time`
// the period), the residuals' pooled first-order autocorrelation within the units, and the
// coefficient used: --rho, or the estimate corrected for the within transform's bias,
// E(rho_hat) ~ rho - (1 + rho) / (T - 1) (Nickell 1981), so rho = (rho_hat (T - 1) + 1) / (T - 2).
void ar1_layout(GroupModel& g, const std::optional<double>& given) {
  g.unit_series = unit_series_by_time(g.d);
  const double T = static_cast<double>(g.d.n_obs) / std::max<double>(1, static_cast<double>(g.unit_series.size()));
  g.info.periods = T;
  g.info.rho_estimated = lag1_autocorrelation(g.unit_series, g.u_cal.data());
  if (given) {
    g.info.rho = *given;
    g.info.rho_source = "--rho";
  } else {
    g.info.rho = estimated_rho(g, T);
    g.info.rho_source = "estimated, bias-corrected";
  }
  g.info.ar1_variance = g.info.s2 * (T - 1) / (T - mean_variance_ratio(g.info.rho, T));
}

// T Var(mean of T periods) / variance of a stationary AR(1): 1 + (2/T) sum_k (T - k) rho^k (1
// without autocorrelation). The within transform removes each unit's mean, so RSS / (N - K)
// estimates the variance times (T - this) / (T - 1); the AR(1)'s variance undoes that.
double mean_variance_ratio(double rho, double T) {
  double s = 0, p = 1;
  for (int k = 1; k < static_cast<int>(T); ++k) {
    p *= rho;
    s += (T - k) * p;
  }
  return 1 + 2 * s / T;
}

// A lag-1 autocorrelation of within-transformed series of mean length T corrected for the
// transform's bias (Nickell): (rho_hat (T - 1) + 1) / (T - 2), clamped to [-0.99, 0.99].
double bias_corrected_rho(double rho_hat, double T) { return std::clamp((rho_hat * (T - 1) + 1) / (T - 2), -0.99, 0.99); }

double estimated_rho(const GroupModel& g, double T) {
  if (T <= 2)
    throw InvalidInput("--errors ar1 estimates the AR(1) coefficient from series of at least 3 periods; the panel units of " +
                       sample_label(g.info) + " have " + std::to_string(T) + " on average; give --rho");
  return bias_corrected_rho(g.info.rho_estimated, T);
}

// The rows the design's errors and the placebo run over: each panel unit's (individual's) rows
// in period order, and each row's cluster-period cell (cluster code x T + period code).
DesignLayout cluster_period_layout(const GroupModel& g) {
  DesignLayout L;
  const std::int32_t T = g.d.time.n_levels;
  L.series = unit_series_by_time(g.d);
  L.n_cells = g.boot.n_levels * T;
  L.cell.resize(g.d.n_obs);
  for (std::size_t i = 0; i < g.d.n_obs; ++i) L.cell[i] = g.boot.code[i] * T + g.d.time.code[i];
  return L;
}

// --errors design: the design's layout (extra[0] is the individual).
void design_layout(GroupModel& g) {
  if (g.d.time.n_levels != g.design->periods) throw std::logic_error("design_layout: periods");
  g.layout = cluster_period_layout(g);
}

// --placebo: the layout its draws run over (each unit's rows by period; each row's cluster-period
// cell) and the correlation of the target's within-transformed values x~ it copies: the lag-1
// autocorrelation within units, bias-corrected as --errors ar1's, and between units of one
// cluster at one period, sum_cells ((sum x~)^2 - sum x~^2) / sum_cells (n_cell - 1) sum x~^2
// (0 when no cell has two units), clamped to [0, 0.99]; the placebo's SD is the RMS of x~.
void placebo_layout(GroupModel& g) {
  const std::size_t n = g.d.n_obs;
  const double* x = g.d.X.data() + static_cast<std::size_t>(g.source) * n;
  g.layout = cluster_period_layout(g);
  std::vector<double> sum(static_cast<std::size_t>(g.layout.n_cells)), sq(sum.size()), cnt(sum.size());
  double ss = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int32_t c = g.layout.cell[i];
    sum[static_cast<std::size_t>(c)] += x[i];
    sq[static_cast<std::size_t>(c)] += x[i] * x[i];
    cnt[static_cast<std::size_t>(c)] += 1;
    ss += x[i] * x[i];
  }
  double num = 0, den = 0;
  for (std::size_t c = 0; c < sum.size(); ++c)
    if (cnt[c] > 1) {
      num += sum[c] * sum[c] - sq[c];
      den += (cnt[c] - 1) * sq[c];
    }
  const double Tbar = static_cast<double>(n) / std::max<double>(1, static_cast<double>(g.layout.series.size()));
  if (Tbar <= 2)
    throw InvalidInput("--placebo copies the target's serial correlation, estimated from series of at least 3 periods; the panel "
                       "units of " + sample_label(g.info) + " have " + std::to_string(Tbar) + " on average");
  g.info.placebo_rho_estimated = lag1_autocorrelation(g.layout.series, x);
  g.info.placebo_rho = bias_corrected_rho(g.info.placebo_rho_estimated, Tbar);
  g.info.placebo_icc = den > 0 ? std::clamp(num / den, 0.0, 0.99) : 0.0;
  g.info.placebo_sd = std::sqrt(ss / static_cast<double>(n));
  if (!(g.info.placebo_sd > 0)) throw InvalidInput("--placebo: --target has no variation within the fixed effects");
}

// The placebo regressor of replication rep on the group's rows.
void placebo_draw(const GroupModel& g, std::uint64_t eseed, std::int64_t rep, double* out) {
  correlated_regressor(g.layout, g.d.time.n_levels, g.info.placebo_icc, g.info.placebo_rho, eseed,
                       static_cast<std::uint64_t>(rep), out);
  for (std::size_t i = 0; i < g.d.n_obs; ++i) out[i] *= g.info.placebo_sd;
}

// The pieces of a fitted group that its target's tests use: the cluster-variance terms, X~ a
// (a = A e_target) and the WCR direction h = X~ a / a_t.
void target_pieces(GroupModel& g, const FitOptions& fo) {
  const std::size_t n = g.d.n_obs;
  g.terms = clustering_terms(g.d.clusters, fo.multiway_adj, static_cast<double>(n), g.fr.dof_k);
  Eigen::Map<const Mat> X(g.d.X.data(), static_cast<Eigen::Index>(n), g.fr.beta.size());
  const Vec a = g.fr.bread.col(g.target);
  g.xa = X * a;
  g.h = g.xa / a(g.target);
}

// The u-independent pieces of a group: the cluster terms, X~ a, h, the wild engine's restriction
// and (wild errors) the G columns M (c u_cal 1_g).
void prepare_group(GroupModel& g, const FitOptions& fo, const PowerOptions& po) {
  const PowerErrors errors = po.errors;
  const std::size_t n = g.d.n_obs;
  target_pieces(g, fo);
  Eigen::Map<const Mat> X(g.d.X.data(), static_cast<Eigen::Index>(n), g.fr.beta.size());
  if (g.diff) {
    g.W = X * (g.fr.bread * g.R.transpose());
    g.WQ = g.W * (g.R * g.fr.bread * g.R.transpose()).inverse();
  }
  if (errors == PowerErrors::kBlock) block_layout(g);
  if (errors == PowerErrors::kAr1) ar1_layout(g, po.rho);
  if (errors == PowerErrors::kDesign) design_layout(g);
  if (g.placebo) {  // no simulated errors: the data's own outcome
    placebo_layout(g);
    return;
  }
  if (errors != PowerErrors::kWild) return;
  const std::int32_t G = g.boot.n_levels;
  check_memory(8.0 * static_cast<double>(n) * G, po.max_memory,
               "the simulated errors' basis of group " + g.info.split + " = " + g.info.group, "use --errors normal");
  g.basis = Mat::Zero(static_cast<Eigen::Index>(n), G);
  for (std::size_t i = 0; i < n; ++i) g.basis(static_cast<Eigen::Index>(i), g.boot.code[i]) = g.info.error_scale * g.u_cal[i];
  if (!g.d.fe.empty())
    group_demeaner(g.d).demean(g.basis.data(), static_cast<std::size_t>(G), n, tight_demean(fo), std::vector<std::string>(G, "simulated errors"));
}

// ---- a batch of replications ----

// The raw simulated errors of replication rep (1-based), before the within transform.
void raw_errors(const GroupModel& g, PowerErrors errors, std::uint64_t eseed, std::int64_t rep, Vec& e) {
  const std::size_t n = g.d.n_obs;
  e.resize(static_cast<Eigen::Index>(n));
  const auto r = static_cast<std::uint64_t>(rep);
  if (errors == PowerErrors::kWild) {
    std::vector<double> z(static_cast<std::size_t>(g.boot.n_levels));
    for (std::size_t c = 0; c < z.size(); ++c) z[c] = kernels::wild_weight(eseed, r, static_cast<std::uint32_t>(c), WeightType::kNormal);
    for (std::size_t i = 0; i < n; ++i) e(static_cast<Eigen::Index>(i)) = g.info.error_scale * g.u_cal[i] * z[g.boot.code[i]];
    return;
  }
  if (errors == PowerErrors::kBlock) {  // cluster c gets the (rescaled) residual block of cluster perm[c]
    const std::vector<std::int32_t> perm = power_block_permutation(eseed, rep, g.boot.n_levels);
    for (std::size_t c = 0; c < perm.size(); ++c) {
      const auto& to = g.cluster_rows[c];
      const auto& from = g.cluster_rows[static_cast<std::size_t>(perm[c])];
      for (std::size_t j = 0; j < to.size(); ++j) e(to[j]) = g.info.error_scale * g.u_cal[static_cast<std::size_t>(from[j])];
    }
    return;
  }
  if (errors == PowerErrors::kDesign) {
    design_errors(*g.design, g.layout, eseed, r, e.data());
    return;
  }
  const double s = std::sqrt(g.info.s2);
  if (errors == PowerErrors::kAr1) {  // stationary AR(1) per unit: the same variance at every period
    const double rho = g.info.rho, sd = std::sqrt(g.info.ar1_variance), innovation = sd * std::sqrt(1 - rho * rho);
    for (const auto& rows : g.unit_series)
      for (std::size_t t = 0; t < rows.size(); ++t) {
        const double z = kernels::wild_weight(eseed, r, static_cast<std::uint32_t>(rows[t]), WeightType::kNormal);
        e(rows[t]) = t == 0 ? sd * z : rho * e(rows[t - 1]) + innovation * z;
      }
    return;
  }
  for (std::size_t i = 0; i < n; ++i)
    e(static_cast<Eigen::Index>(i)) = s * kernels::wild_weight(eseed, r, static_cast<std::uint32_t>(i), WeightType::kNormal);
}

// The within-transformed errors of replications r0 .. r0+nb-1, n x nb row-major: the basis
// combination (wild errors; sums over the clusters in order), or each draw's within transform
// (normal, block and AR(1) errors).
void batch_errors(const GroupModel& g, PowerErrors errors, std::uint64_t eseed, std::int64_t r0, std::size_t nb,
                  const FitOptions& fo, std::vector<double>& E) {
  const std::size_t n = g.d.n_obs;
  E.assign(n * nb, 0.0);
  if (errors == PowerErrors::kWild) {
    const std::size_t G = static_cast<std::size_t>(g.boot.n_levels);
    std::vector<double> z(G * nb);
    for (std::size_t c = 0; c < G; ++c)
      for (std::size_t b = 0; b < nb; ++b)
        z[c * nb + b] = kernels::wild_weight(eseed, static_cast<std::uint64_t>(r0) + b, static_cast<std::uint32_t>(c), WeightType::kNormal);
    for (std::size_t i = 0; i < n; ++i) {
      double* e = E.data() + i * nb;
      for (std::size_t c = 0; c < G; ++c) {
        const double v = g.basis(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(c));
        const double* zc = z.data() + c * nb;
        for (std::size_t b = 0; b < nb; ++b) e[b] += v * zc[b];
      }
    }
    return;
  }
  std::vector<double> cols(n * nb);  // column-major for the within transform
  Vec e;
  for (std::size_t b = 0; b < nb; ++b) {
    raw_errors(g, errors, eseed, r0 + static_cast<std::int64_t>(b), e);
    std::copy(e.data(), e.data() + n, cols.data() + b * n);
  }
  if (!g.d.fe.empty()) group_demeaner(g.d).demean(cols.data(), nb, n, tight_demean(fo), std::vector<std::string>(nb, "simulated errors"));
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t b = 0; b < nb; ++b) E[i * nb + b] = cols[b * n + i];
}

// The group's fixed design as the Backend reads it (pointers into g).
FixedDesign fixed_design(const GroupModel& g) {
  FixedDesign f;
  f.n = static_cast<std::int64_t>(g.d.n_obs);
  f.k = g.fr.beta.size();
  f.X = g.d.X.data();
  f.A = g.fr.bread.data();
  f.xa = g.xa.data();
  f.target = g.target;
  for (const ClusterTerm& t : g.terms) {
    f.term_code.push_back(t.grouping->code.data());
    f.term_levels.push_back(t.grouping->n_levels);
    f.term_weight.push_back(t.weight);
  }
  return f;
}

struct RunPlan {
  const std::vector<double>* effects;
  const std::vector<PowerTest>* tests;
  std::int64_t wild_B;
  std::uint64_t seed, group_key;
  bool enumerate;  // the Rademacher tests enumerate (2^G <= wild_B)
};

// The bootstrap p-value of one test at one effect (delta = the estimate under H0: target = 0).
double bootstrap_p(const Backend& backend, const WildProblem& pr, const RunPlan& plan, PowerTest test, double effect,
                   std::int64_t rep, double delta, double t, bool joint = false) {
  WildRunOptions o;
  o.seed = power_wild_seed(plan.seed, plan.group_key, effect, rep);
  o.weight = test == PowerTest::kWildWebb ? WeightType::kWebb : WeightType::kRademacher;
  o.enumerate = plan.enumerate && test != PowerTest::kWildWebb;
  o.n_rep = o.enumerate ? (std::uint64_t{1} << (pr.n_clu - 1)) : static_cast<std::uint64_t>(plan.wild_B);
  o.count_delta = delta;
  o.count_t = t;
  o.count_tol = wild_detail::tie_tolerance(t);
  o.min_team_work = std::numeric_limits<double>::infinity();  // never a team inside one replication
  const WildRun run = backend.prepare_wild(pr)->run(o);
  return wild_detail::p_from_counts(run.counts, PValueType::kSymmetric, joint);
}

bool has_test(const std::vector<PowerTest>& tests, PowerTest t) {
  return std::find(tests.begin(), tests.end(), t) != tests.end();
}

// Each test of replication `rep` at each effect, from its residuals u, its deviation dt (the
// estimate less the calibrated value) and its CRVE variance; p holds [effect][test] (NaN where
// undefined: a numerically zero standard error).
void replication_tests(const GroupModel& g, WildEngine* eng, const Backend& backend,
                       const RunPlan& plan, std::int64_t rep, const double* u, double dt,
                       double variance, double* p) {
  const std::size_t E = plan.effects->size(), T = plan.tests->size();
  std::fill(p, p + E * T, std::numeric_limits<double>::quiet_NaN());
  const double se = variance > 0 ? std::sqrt(variance) : 0.0;
  if (!(se > 0) || !std::isfinite(se) || se_is_zero(se, 0.0, g.fr.sigma * std::sqrt(g.fr.bread(g.target, g.target)))) return;
  const auto tests_at = [&](PowerTest test, const WildProblem* pr) {
    const std::size_t ti = static_cast<std::size_t>(std::find(plan.tests->begin(), plan.tests->end(), test) - plan.tests->begin());
    for (std::size_t ei = 0; ei < E; ++ei) {
      const double effect = (*plan.effects)[ei], delta = effect + dt, t = delta / se;
      p[ei * T + ti] = pr ? bootstrap_p(backend, *pr, plan, test, effect, rep, delta, t) : t_two_sided_p(t, g.fr.df_inference);
    }
  };
  if (has_test(*plan.tests, PowerTest::kCrve)) tests_at(PowerTest::kCrve, nullptr);
  if (has_test(*plan.tests, PowerTest::kWild) || has_test(*plan.tests, PowerTest::kWildWebb)) {
    eng->set_parts({u, g.h.data()});  // WCR: u(delta) = u + delta h
    const WildProblem& pr = eng->problem();
    if (has_test(*plan.tests, PowerTest::kWild)) tests_at(PowerTest::kWild, &pr);
    if (has_test(*plan.tests, PowerTest::kWildWebb)) tests_at(PowerTest::kWildWebb, &pr);
  }
  if (has_test(*plan.tests, PowerTest::kWcu)) {
    eng->set_parts({u});
    tests_at(PowerTest::kWcu, &eng->problem());
  }
}

// --tests diff: the cluster-robust variance of R b from residuals u, sum_S w_S sum_c s_c s_c'
// with s_c = sum_{i in c} W_i u_i (fit's variance of the interacted model, as its --wald uses).
Mat diff_variance(const GroupModel& g, const double* u) {
  const Eigen::Index q = g.R.rows();
  Mat V = Mat::Zero(q, q);
  for (const ClusterTerm& t : g.terms) {
    Mat S = Mat::Zero(t.grouping->n_levels, q);
    for (std::size_t i = 0; i < g.d.n_obs; ++i) S.row(t.grouping->code[i]) += g.W.row(static_cast<Eigen::Index>(i)) * u[i];
    V += t.weight * S.transpose() * S;
  }
  return V;
}

// The statistic of a difference test at R b = diff: t (one row) or the Wald F / q; NaN where the
// variance is not positive definite (no statistic).
double diff_statistic(const Vec& diff, const Mat& V) {
  if (diff.size() == 1) return V(0, 0) > 0 ? diff(0) / std::sqrt(V(0, 0)) : std::numeric_limits<double>::quiet_NaN();
  Eigen::LLT<Mat> llt(V);
  if (llt.info() != Eigen::Success) return std::numeric_limits<double>::quiet_NaN();
  return diff.dot(llt.solve(diff)) / static_cast<double>(diff.size());
}

// Each test of the difference at each effect (the first group's target exceeds the others' by
// the effect: R b = effect 1 + dR), as `fit --wald` and `wild --test ... --joint` compute them:
// the CRVE t with t(G-1) or F(q, G-1); the bootstraps from the restricted residuals u + WQ R b
// (WCR) or u (WCU).
void diff_tests(const GroupModel& g, WildEngine& eng, const Backend& backend, const RunPlan& plan, std::int64_t rep,
                const std::vector<double>& u, const double* dR, double* p) {
  const std::size_t E = plan.effects->size(), T = plan.tests->size();
  std::fill(p, p + E * T, std::numeric_limits<double>::quiet_NaN());
  const Eigen::Index q = g.R.rows();
  const bool joint = q > 1;
  const Mat V = diff_variance(g, u.data());
  const Mat RAR = g.R * g.fr.bread * g.R.transpose();
  for (Eigen::Index j = 0; j < q; ++j)  // a numerically zero SE of any row: no statistic (as replication_tests)
    if (!(V(j, j) > 0) || !std::isfinite(V(j, j)) ||
        se_is_zero(std::sqrt(V(j, j)), 0.0, g.fr.sigma * std::sqrt(std::max(RAR(j, j), 0.0))))
      return;
  std::vector<double> ut(u.size());
  for (std::size_t ei = 0; ei < E; ++ei) {
    const double effect = (*plan.effects)[ei];
    Vec diff(q);
    for (Eigen::Index j = 0; j < q; ++j) diff(j) = effect + dR[j];
    const double stat = diff_statistic(diff, V);
    if (!std::isfinite(stat)) continue;
    const Vec shift = g.WQ * diff;
    for (std::size_t ti = 0; ti < T; ++ti) {
      const PowerTest test = (*plan.tests)[ti];
      double& out = p[ei * T + ti];
      if (test == PowerTest::kCrve) {
        out = joint ? f_upper_p(stat, static_cast<double>(q), g.fr.df_inference) : t_two_sided_p(stat, g.fr.df_inference);
        continue;
      }
      for (std::size_t i = 0; i < u.size(); ++i) ut[i] = test == PowerTest::kWcu ? u[i] : u[i] + shift(static_cast<Eigen::Index>(i));
      eng.set_parts({ut.data()});
      out = bootstrap_p(backend, eng.problem(), plan, test, effect, rep, joint ? 0.0 : diff(0), stat, joint);
    }
  }
}

// The wild engine of a group with its restriction (target = 0) set: copied per thread.
WildEngine restricted_engine(const GroupModel& g) {
  WildEngine eng(g.d, g.fr, g.boot, g.terms);
  if (g.diff) {
    eng.set_restriction(g.R);
    return eng;
  }
  Mat R = Mat::Zero(1, g.fr.beta.size());
  R(0, g.target) = 1.0;
  eng.set_restriction(R);
  return eng;
}

// Replications r0 .. r0+nb-1: the errors, the regressions on the backend (one batch), then each
// replication's tests in parallel. d[b] and the variances come back in `reg`; p: [b][effect][test].
void run_batch(const GroupModel& g, const WildEngine& proto, const Backend& backend, const FitOptions& fo,
               PowerErrors errors, std::uint64_t eseed, const RunPlan& plan, std::int64_t r0, std::size_t nb,
               FixedDesignResult& reg, std::vector<double>& p, std::vector<double>* dR_out = nullptr) {
  std::vector<double> E;
  batch_errors(g, errors, eseed, r0, nb, fo, E);
  reg = backend.fixed_design_ols(fixed_design(g), {E.data(), static_cast<std::int64_t>(nb)});
  const std::size_t n = g.d.n_obs, ET = plan.effects->size() * plan.tests->size();
  // --tests diff: R d = W' e of each replication (nb x q; W'u = 0, so W'e = R A X~'e)
  std::vector<double> dR;
  if (g.diff) {
    const std::size_t q = static_cast<std::size_t>(g.R.rows());
    dR.assign(nb * q, 0.0);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < q; ++j) {
        const double w = g.W(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
        for (std::size_t b = 0; b < nb; ++b) dR[b * q + j] += w * E[i * nb + b];
      }
  }
  p.resize(nb * ET);
  cpu::RegionErrors failures;
  // a GPU backend's context (one stream, one cuBLAS handle) is driven from one host thread
  const bool host_threads = backend.device() == Device::kCpu;
#pragma omp parallel if (host_threads)
  {
    std::unique_ptr<WildEngine> eng;  // per thread, made in the first guarded iteration
    std::vector<double> u;
#pragma omp for schedule(dynamic, 1)
    for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nb); ++b) failures.guard([&] {
      if (!eng) eng = std::make_unique<WildEngine>(proto);
      u.resize(n);
      for (std::size_t i = 0; i < n; ++i) u[i] = reg.U[i * nb + static_cast<std::size_t>(b)];
      if (g.diff)
        diff_tests(g, *eng, backend, plan, r0 + b, u, dR.data() + static_cast<std::size_t>(b) * static_cast<std::size_t>(g.R.rows()),
                   p.data() + static_cast<std::size_t>(b) * ET);
      else
        replication_tests(g, eng.get(), backend, plan, r0 + b, u.data(),
                          reg.d_target[static_cast<std::size_t>(b)],
                          reg.variance[static_cast<std::size_t>(b)],
                          p.data() + static_cast<std::size_t>(b) * ET);
    });
  }
  failures.rethrow();
  if (dR_out) *dR_out = std::move(dR);
}

// --placebo: replications r0 .. r0+nb-1, each the group's model refitted with its own placebo
// column (as `fit` fits the saved dataset) and its tests; d[b] the placebo's estimate (NaN when
// the fit drops it), p: [b][effect][test].
void placebo_batch(const GroupModel& g, const Backend& backend, const FitOptions& fo, std::uint64_t eseed, const RunPlan& plan,
                   std::int64_t r0, std::size_t nb, std::vector<double>& d, std::vector<double>& p,
                   std::vector<double>* variance = nullptr) {
  const std::size_t n = g.d.n_obs, ET = plan.effects->size() * plan.tests->size();
  d.assign(nb, std::numeric_limits<double>::quiet_NaN());
  if (variance) variance->assign(nb, 0.0);
  p.assign(nb * ET, std::numeric_limits<double>::quiet_NaN());
  const bool boot = std::any_of(plan.tests->begin(), plan.tests->end(), [](PowerTest t) { return t != PowerTest::kCrve; });
  cpu::RegionErrors failures;
  const bool host_threads = backend.device() == Device::kCpu;  // as run_batch
#pragma omp parallel for schedule(dynamic, 1) if (host_threads)
  for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nb); ++b) failures.guard([&] {
    const std::int64_t rep = r0 + b;
    GroupModel r;
    r.info = g.info;
    r.d = g.d_raw;
    placebo_draw(g, eseed, rep, r.d.X.data() + static_cast<std::size_t>(g.placebo_col) * n);
    r.fr = fit(r.d, cluster_fit_options(fo));
    const auto at = std::find_if(r.fr.coefficients.begin(), r.fr.coefficients.end(), [](const Coefficient& c) { return c.name == kPlacebo; });
    if (at == r.fr.coefficients.end()) return;  // collinear with the model: no estimate
    r.target = static_cast<int>(at - r.fr.coefficients.begin());
    r.boot = g.boot;
    target_pieces(r, fo);
    std::unique_ptr<WildEngine> eng;
    if (boot) eng = std::make_unique<WildEngine>(restricted_engine(r));
    d[static_cast<std::size_t>(b)] = r.fr.beta(r.target);
    if (variance) (*variance)[static_cast<std::size_t>(b)] = r.fr.vcov(r.target, r.target);
    replication_tests(r, eng.get(), backend, plan, rep, r.d.y.data(), r.fr.beta(r.target),
                      r.fr.vcov(r.target, r.target), p.data() + static_cast<std::size_t>(b) * ET);
  });
  failures.rethrow();
}

// ---- the counts of one group ----

struct GroupCounts {
  std::vector<std::int64_t> reject;  // [effect][test][alpha]
  std::vector<std::int64_t> defined; // [effect][test]
  std::int64_t undefined = 0;        // replications without any p-value (no standard error)
  // per effect x test pair (a < b) x alpha: both defined; a rejected alone; b rejected alone
  std::vector<std::int64_t> both, only_a, only_b;
  double sum_d = 0, sum_d2 = 0;
  std::int64_t n_d = 0;
};

std::size_t default_batch(std::int64_t R) {
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  return static_cast<std::size_t>(std::min<std::int64_t>(R, std::max(64, 16 * threads)));
}

// The paired outcomes of one replication's p-values p[effect][test]: for each pair of tests
// (a < b in --tests order) defined together, whether each rejected where the other did not.
void count_pairs(const double* p, std::size_t E, std::size_t T, const std::vector<double>& alphas, GroupCounts& out) {
  const std::size_t Aa = alphas.size();
  for (std::size_t ei = 0, pi = 0; ei < E; ++ei)
    for (std::size_t a = 0; a < T; ++a)
      for (std::size_t b = a + 1; b < T; ++b, ++pi) {
        const double pa = p[ei * T + a], pb = p[ei * T + b];
        if (pa != pa || pb != pb) continue;
        for (std::size_t ai = 0; ai < Aa; ++ai) {
          const bool ra = pa <= alphas[ai], rb = pb <= alphas[ai];
          ++out.both[pi * Aa + ai];
          out.only_a[pi * Aa + ai] += ra && !rb;
          out.only_b[pi * Aa + ai] += rb && !ra;
        }
      }
}

// The counts of another x draw of the same design added in (all are sums over replications).
void merge_counts(GroupCounts& into, const GroupCounts& from) {
  const auto add = [](std::vector<std::int64_t>& a, const std::vector<std::int64_t>& b) {
    for (std::size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  };
  add(into.reject, from.reject);
  add(into.defined, from.defined);
  add(into.both, from.both);
  add(into.only_a, from.only_a);
  add(into.only_b, from.only_b);
  into.undefined += from.undefined;
  into.sum_d += from.sum_d;
  into.sum_d2 += from.sum_d2;
  into.n_d += from.n_d;
}

// The replications a group runs: --R, or its share of it (a design's x draw).
std::int64_t group_reps(const GroupModel& g, const PowerOptions& po) { return g.n_rep ? g.n_rep : po.n_rep; }

// The counts of a group as one flat list (a task's counts): reject, defined, both, only_a,
// only_b, then undefined and n_d.
std::vector<std::int64_t> flat_counts(const GroupCounts& c) {
  std::vector<std::int64_t> v;
  for (const auto* part : {&c.reject, &c.defined, &c.both, &c.only_a, &c.only_b}) v.insert(v.end(), part->begin(), part->end());
  v.push_back(c.undefined);
  v.push_back(c.n_d);
  return v;
}

// A task's whole segment as the group's counts: the integer counts unpacked, and the deviations'
// sums formed replication by replication in index order (the same additions for any split).
GroupCounts counts_of(const Segment& all, GroupCounts shape) {
  std::size_t at = 0;
  for (auto* part : {&shape.reject, &shape.defined, &shape.both, &shape.only_a, &shape.only_b})
    for (std::int64_t& x : *part) x = all.counts[at++];
  shape.undefined = all.counts[at++];
  shape.n_d = all.counts[at++];
  shape.sum_d = shape.sum_d2 = 0;
  for (const double d : all.values) {
    if (d != d) continue;
    shape.sum_d += d;
    shape.sum_d2 += d * d;
  }
  return shape;
}

// What replications r = range.begin+1 .. range.end of a group left: its counts and each
// replication's deviation d (NaN when a placebo's fit dropped it).
Segment simulate_range(const GroupModel& g, const FitOptions& fo, const PowerOptions& po, const RunPlan& plan,
                       const Backend& backend, const std::optional<WildEngine>& proto, std::size_t batch,
                       ProgressSink& progress, GroupCounts out, RepRange range) {
  const std::size_t E = plan.effects->size(), T = plan.tests->size(), Aa = po.alphas.size();
  const std::uint64_t eseed = error_seed(po.seed, plan.group_key);
  Segment seg;
  seg.range = range;
  seg.values.assign(range.size(), std::numeric_limits<double>::quiet_NaN());
  std::vector<double> p, dR;
  FixedDesignResult reg;
  const std::int64_t last = static_cast<std::int64_t>(range.end);
  for (std::int64_t r0 = static_cast<std::int64_t>(range.begin) + 1; r0 <= last; r0 += static_cast<std::int64_t>(batch)) {
    const std::size_t nb = static_cast<std::size_t>(std::min<std::int64_t>(static_cast<std::int64_t>(batch), last - r0 + 1));
    if (g.placebo) placebo_batch(g, backend, fo, eseed, plan, r0, nb, dR, p);
    else run_batch(g, *proto, backend, fo, po.errors, eseed, plan, r0, nb, reg, p, &dR);
    for (std::size_t b = 0; b < nb; ++b) {
      // the first contrast's (diff), the placebo's, or the target's deviation
      const double d = g.diff ? dR[b * static_cast<std::size_t>(g.R.rows())] : g.placebo ? dR[b] : reg.d_target[b];
      seg.values[static_cast<std::size_t>(r0 - 1 - static_cast<std::int64_t>(range.begin)) + b] = d;
      if (d != d) {  // a placebo the fit dropped
        ++out.undefined;
        continue;
      }
      ++out.n_d;
      out.undefined += std::all_of(p.begin() + static_cast<std::ptrdiff_t>(b * E * T),
                                   p.begin() + static_cast<std::ptrdiff_t>((b + 1) * E * T), [](double v) { return v != v; });
      for (std::size_t i = 0; i < E * T; ++i) {
        const double pv = p[b * E * T + i];
        if (pv != pv) continue;
        ++out.defined[i];
        for (std::size_t ai = 0; ai < Aa; ++ai) out.reject[i * Aa + ai] += pv <= po.alphas[ai];
      }
      count_pairs(p.data() + b * E * T, E, T, po.alphas, out);
    }
    progress.advance(nb);
  }
  seg.counts = flat_counts(out);
  return seg;
}

// The zero counts of a group with E effects, T tests and A alphas.
GroupCounts zero_counts(std::size_t E, std::size_t T, std::size_t Aa) {
  GroupCounts zero;
  zero.reject.assign(E * T * Aa, 0);
  zero.defined.assign(E * T, 0);
  const std::size_t P = T * (T - 1) / 2;
  zero.both.assign(E * P * Aa, 0);
  zero.only_a.assign(E * P * Aa, 0);
  zero.only_b.assign(E * P * Aa, 0);
  return zero;
}

// A group's task (PowerOptions::runner): its key, its R replications, its counts and one value each.
TaskSpec group_task(const std::string& key, std::int64_t R, const GroupCounts& zero) {
  return {key, static_cast<std::uint64_t>(R), 1, flat_counts(zero).size(), 1};
}

// The group's task key: its place, split and group, a difference group, a design's x draw.
std::string group_task_key(const GroupModel& g, std::size_t index, const std::string& key) {
  return "group " + std::to_string(index + 1) + ": " + g.info.split + " = " + key + (g.diff ? " (difference)" : "") +
         (g.x_draws > 1 ? ", x draw " + std::to_string(g.x_draw + 1) : "");
}

void simulate_group(const GroupModel& g, const FitOptions& fo, const PowerOptions& po, const RunPlan& plan,
                    const std::string& task_key, const Backend& backend, ProgressSink& progress, GroupCounts& out) {
  const std::size_t E = plan.effects->size(), T = plan.tests->size();
  const GroupCounts zero = zero_counts(E, T, po.alphas.size());
  // a placebo's replications each build their own engine (placebo_batch)
  const std::optional<WildEngine> proto = g.placebo ? std::nullopt : std::optional<WildEngine>(restricted_engine(g));
  const std::int64_t R = group_reps(g, po);
  const std::size_t batch = po.batch ? std::min<std::size_t>(po.batch, static_cast<std::size_t>(R)) : default_batch(R);
  check_memory(8.0 * static_cast<double>(batch) * (static_cast<double>(E * T) + 2.0 * static_cast<double>(g.d.n_obs) + 2),
               po.max_memory,
               "a batch of " + std::to_string(batch) + " replications (their errors, residuals and p-values at " +
                   std::to_string(E) + " effects x " + std::to_string(T) + " tests)",
               "lower --batch (0 chooses it) or give fewer effects");
  const auto compute = [&](RepRange range) {
    return simulate_range(g, fo, po, plan, backend, proto, batch, progress, zero, range);
  };
  const RepRange all{0, static_cast<std::uint64_t>(R)};
  const TaskSpec task = group_task(task_key, R, zero);
  out = counts_of(po.runner ? po.runner->run(task, compute, &progress) : compute(all), zero);
}

// ---- the report ----

double exact_enumerated_level(double alpha, std::int32_t G) {
  const double pairs = std::ldexp(1.0, G - 1);
  return std::min(1.0, (std::floor(alpha * pairs + 1e-9) + 1) / pairs);
}

void add_cells(const GroupModel& g, const PowerOptions& po, const RunPlan& plan, const GroupCounts& c, PowerResult& res) {
  const std::size_t E = plan.effects->size(), T = plan.tests->size(), Aa = po.alphas.size();
  const double mean_d = c.n_d ? c.sum_d / static_cast<double>(c.n_d) : 0.0;
  const double var_d = c.n_d > 1 ? std::max(0.0, (c.sum_d2 - c.sum_d * mean_d) / static_cast<double>(c.n_d - 1)) : 0.0;
  for (std::size_t ei = 0; ei < E; ++ei)
    for (std::size_t ti = 0; ti < T; ++ti)
      for (std::size_t ai = 0; ai < Aa; ++ai) {
        PowerCell cell;
        cell.split = g.info.split;
        cell.group = g.info.group;
        cell.effect = (*plan.effects)[ei];
        cell.test = power_test_name((*plan.tests)[ti]);
        cell.alpha = po.alphas[ai];
        cell.rejections = c.reject[(ei * T + ti) * Aa + ai];
        cell.n_rep = c.defined[ei * T + ti];
        const double n = static_cast<double>(cell.n_rep);
        cell.rejection_rate = n > 0 ? static_cast<double>(cell.rejections) / n : std::numeric_limits<double>::quiet_NaN();
        cell.mc_se = n > 0 ? std::sqrt(cell.rejection_rate * (1 - cell.rejection_rate) / n) : cell.rejection_rate;
        std::tie(cell.ci_low, cell.ci_high) = wilson_interval(cell.rejections, cell.n_rep);
        cell.n_clusters = g.info.n_clusters;
        cell.estimate_mean = cell.effect + mean_d;
        cell.estimate_sd = std::sqrt(var_d);
        if (cell.effect == 0 && n > 0) {
          const PowerTest t = (*plan.tests)[ti];
          const bool enumerated = plan.enumerate && (t == PowerTest::kWild || t == PowerTest::kWcu);
          cell.size_reference = enumerated ? exact_enumerated_level(cell.alpha, g.info.n_clusters) : cell.alpha;
          const double ref = cell.size_reference;
          cell.size_flag = std::fabs(cell.rejection_rate - ref) > 3 * std::sqrt(ref * (1 - ref) / n);
        }
        res.cells.push_back(cell);
      }
}

void add_paired(const GroupModel& g, const PowerOptions& po, const RunPlan& plan, const GroupCounts& c, PowerResult& res) {
  const std::size_t E = plan.effects->size(), T = plan.tests->size(), Aa = po.alphas.size();
  for (std::size_t ei = 0, pi = 0; ei < E; ++ei)
    for (std::size_t a = 0; a < T; ++a)
      for (std::size_t b = a + 1; b < T; ++b, ++pi)
        for (std::size_t ai = 0; ai < Aa; ++ai) {
          PowerPaired pp;
          pp.split = g.info.split;
          pp.group = g.info.group;
          pp.test_a = power_test_name((*plan.tests)[a]);
          pp.test_b = power_test_name((*plan.tests)[b]);
          pp.effect = (*plan.effects)[ei];
          pp.alpha = po.alphas[ai];
          pp.n_rep = c.both[pi * Aa + ai];
          pp.only_a = c.only_a[pi * Aa + ai];
          pp.only_b = c.only_b[pi * Aa + ai];
          pp.mcnemar_p = mcnemar_p(pp.only_a, pp.only_b);
          res.paired.push_back(pp);
        }
}

// The MDE of one group x test x alpha from its power curve: the effects on the side of zero the
// list covers (the positive side when it has positive effects), by increasing |effect|, zero
// included as the start; linear interpolation between the bracketing effects.
PowerMde interpolate_mde(const std::vector<const PowerCell*>& curve, double target) {
  PowerMde m;
  std::vector<const PowerCell*> side;
  const bool positive = std::any_of(curve.begin(), curve.end(), [](const PowerCell* c) { return c->effect > 0; });
  for (const PowerCell* c : curve)
    if (c->n_rep > 0 && (positive ? c->effect >= 0 : c->effect <= 0)) side.push_back(c);
  std::sort(side.begin(), side.end(), [](const PowerCell* a, const PowerCell* b) { return std::fabs(a->effect) < std::fabs(b->effect); });
  for (std::size_t i = 0; i < side.size(); ++i) {
    if (side[i]->rejection_rate < target) continue;
    m.bracket_high = side[i]->effect;
    if (i == 0) {  // no effect below it was studied: the MDE is at most this one
      char buf[120];
      std::snprintf(buf, sizeof buf, "power reaches the target at the smallest effect studied, %.6g: the MDE is at most that", side[i]->effect);
      m.note = buf;
      return m;
    }
    const PowerCell& lo = *side[i - 1];
    const PowerCell& hi = *side[i];
    m.bracket_low = lo.effect;
    const double f = (target - lo.rejection_rate) / (hi.rejection_rate - lo.rejection_rate);
    m.effect = lo.effect + f * (hi.effect - lo.effect);
    return m;
  }
  if (!side.empty()) {
    m.bracket_low = side.back()->effect;
    char buf[96];
    std::snprintf(buf, sizeof buf, "power stays below the target up to effect %.6g", side.back()->effect);
    m.note = buf;
  } else {
    m.note = "no effect with a defined rejection rate";
  }
  return m;
}

void add_mde(const GroupModel& g, const PowerOptions& po, const RunPlan& plan, PowerResult& res, std::size_t first_cell) {
  for (PowerTest test : *plan.tests)
    for (double alpha : po.alphas) {
      std::vector<const PowerCell*> curve;
      for (std::size_t i = first_cell; i < res.cells.size(); ++i)
        if (res.cells[i].test == power_test_name(test) && res.cells[i].alpha == alpha) curve.push_back(&res.cells[i]);
      PowerMde m = interpolate_mde(curve, po.power_target);
      m.split = g.info.split;
      m.group = g.info.group;
      m.test = power_test_name(test);
      m.alpha = alpha;
      m.power = po.power_target;
      const double df = g.fr.df_inference;
      // a standard error the fit found numerically zero (no t statistic) gives no analytic MDE;
      // a synthetic design has no fit of its own: the estimate's Monte Carlo SD stands for its SE
      // a joint difference test (q > 1) has no such rule
      // (so is a placebo's, whose fit holds only a placeholder draw)
      const bool mc_sd = g.design || g.placebo;
      const bool se_ok = mc_sd || (g.diff ? g.R.rows() == 1 && g.info.std_error > 0
                                          : std::isfinite(g.fr.coefficients[static_cast<std::size_t>(g.target)].t_stat));
      const double se = mc_sd ? res.cells[first_cell].estimate_sd : g.info.std_error;
      m.mde_analytic = se_ok && se > 0 ? (t_quantile(1 - alpha / 2, df) + t_quantile(po.power_target, df)) * se
                             : std::numeric_limits<double>::quiet_NaN();
      res.mde.push_back(m);
    }
}

// ---- --save-replication ----

std::string file_part(const std::string& s) {
  std::string o;
  for (char c : s) o += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '_';
  return o.empty() ? "_" : o;
}

// base + ".csv", or base + "-2.csv" and so on when an earlier file took the name (group labels
// that differ only in characters file names replace, such as "a b" and "a_b").
std::string unique_file(const std::string& base, const std::vector<SavedReplication>& taken) {
  for (int i = 1;; ++i) {
    const std::string f = base + (i == 1 ? "" : "-" + std::to_string(i)) + ".csv";
    if (std::none_of(taken.begin(), taken.end(), [&](const SavedReplication& s) { return s.file == f; })) return f;
  }
}

std::string shortest(double v) {  // "0.05", not 0.050000000000000003
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

std::string g17(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// The dataset of replication K at one effect: the group's estimation rows, every column as read,
// the outcome replaced by fitted FE + X beta_cal(effect) + the replication's raw errors.
// --placebo: the outcome as read plus effect x placebo, and the placebo column replaced.
std::string replication_csv(const DataFrame& df, const GroupModel& g, const PowerOptions& po, const RunPlan& plan,
                            double effect, const SavedReplication& sr, const Vec& e, const std::vector<double>* placebo) {
  const std::size_t n = g.d.n_obs, kr = g.x_raw_names.size();
  std::map<std::string, double> fitted, cal;
  for (std::size_t j = 0; j < g.fr.coefficients.size(); ++j) {
    fitted[g.fr.coefficients[j].name] = g.fr.beta(static_cast<Eigen::Index>(j));
    const bool other_target = std::find(g.targets.begin() + 1, g.targets.end(), static_cast<int>(j)) != g.targets.end();
    cal[g.fr.coefficients[j].name] = j == static_cast<std::size_t>(g.target) ? effect : other_target ? 0.0 : g.beta_cal[j];
  }
  std::string tests;
  for (const std::string& t : sr.wild_tests) tests += " --test '" + t + "'";
  if (sr.wild_tests.size() > 1) tests += " --joint";
  std::string out = "# panelboot power: replication " + std::to_string(sr.replication) + " of " + g.info.split + " = " +
                    g.info.group + " at effect " + g17(effect) + " (--seed " + std::to_string(po.seed) +
                    "); its model: -f '" + sr.formula + "'; its bootstraps: wild" + tests + " --seed " + std::to_string(sr.wild_seed) +
                    " --B " + std::to_string(plan.wild_B) + " (Rademacher; --weight-type webb; --impose-null no)\n";
  for (std::size_t c = 0; c < df.columns.size(); ++c) out += (c ? "," : "") + csv_field(df.columns[c].name);
  out += '\n';
  for (std::size_t i = 0; i < n; ++i) {
    double y = placebo ? g.y_raw[i] + effect * (*placebo)[i] : g.y_raw[i] - g.d.y[i] + e(static_cast<Eigen::Index>(i));  // the fitted FE part + errors ...
    for (std::size_t j = 0; j < kr && !placebo; ++j) {
      const auto f = fitted.find(g.x_raw_names[j]);
      if (f == fitted.end()) continue;  // a dropped column carries no coefficient
      y += g.X_raw[j * n + i] * (cal[g.x_raw_names[j]] - f->second);  // ... + X (beta_cal - beta)
    }
    const std::uint32_t r = g.d.rows.empty() ? static_cast<std::uint32_t>(i) : g.d.rows[i];
    for (std::size_t c = 0; c < df.columns.size(); ++c) {
      const Column& col = df.columns[c];
      if (c) out += ',';
      if (col.name == g.d.y_name) out += g17(y);
      else if (placebo && col.name == kPlacebo) out += g17((*placebo)[i]);
      else if (col.is_string()) out += csv_field(col.text(r));
      else if (!col.missing(r)) out += g17(col.value(r));
    }
    out += '\n';
  }
  return out;
}

// --tests diff: the restriction rows as `wild --test` reads them, "first = other".
std::vector<std::string> contrast_rows(const GroupModel& g) {
  std::vector<std::string> rows;
  for (std::size_t j = 1; j < g.info.contrast.size(); ++j) rows.push_back(g.info.contrast[0] + " = " + g.info.contrast[j]);
  return rows;
}

// Replication K (of the group's own R: with xdraws, of its draw) written at every effect; the
// file and its header give the design's replication number po.save_replication.
void save_replication(const DataFrame& df, const std::string& fm_text, const GroupModel& g, const FitOptions& fo,
                      const PowerOptions& po, const RunPlan& plan, const Backend& backend, std::int64_t K, PowerResult& res) {
  const std::uint64_t eseed = error_seed(po.seed, plan.group_key);
  const std::size_t E = plan.effects->size(), T = plan.tests->size();
  FixedDesignResult reg;
  std::vector<double> p, dR, pv;
  if (g.placebo) placebo_batch(g, backend, fo, eseed, plan, K, 1, dR, p, &pv);
  else run_batch(g, restricted_engine(g), backend, fo, po.errors, eseed, plan, K, 1, reg, p, &dR);  // the batch of replication K
  double dt = g.placebo ? dR[0] : reg.d_target[0];
  const double v = g.placebo ? pv[0] : reg.variance[0];
  double se = v > 0 ? std::sqrt(v) : 0.0;
  Mat V;
  if (g.diff) {
    V = diff_variance(g, reg.U.data());
    dt = dR[0];
    se = V(0, 0) > 0 ? std::sqrt(V(0, 0)) : 0.0;
  }
  Vec e;
  std::vector<double> placebo;
  if (g.placebo) {
    placebo.resize(g.d.n_obs);
    placebo_draw(g, eseed, K, placebo.data());
  } else {
    raw_errors(g, po.errors, eseed, K, e);
  }
  for (std::size_t ei = 0; ei < E; ++ei) {
    SavedReplication sr;
    sr.split = g.info.split;
    sr.group = g.info.group;
    sr.effect = (*plan.effects)[ei];
    sr.replication = po.save_replication;
    sr.wild_seed = power_wild_seed(po.seed, plan.group_key, sr.effect, K);
    sr.wild_B = plan.wild_B;
    sr.formula = g.diff ? g.info.formula : fm_text;
    sr.wild_tests = g.diff ? contrast_rows(g) : std::vector<std::string>{g.fr.coefficients[static_cast<std::size_t>(g.target)].name + " = 0"};
    sr.estimate = sr.effect + dt;
    sr.std_error = se;
    sr.t = sr.estimate / se;
    sr.statistic = sr.t;
    if (g.diff && g.R.rows() > 1) {
      Vec diff(g.R.rows());
      for (Eigen::Index j = 0; j < diff.size(); ++j) diff(j) = sr.effect + dR[static_cast<std::size_t>(j)];
      sr.statistic = diff_statistic(diff, V);
      sr.t = std::numeric_limits<double>::quiet_NaN();
    }
    for (std::size_t ti = 0; ti < T; ++ti) sr.p_values.emplace_back(power_test_name((*plan.tests)[ti]), p[ei * T + ti]);
    // a design's label is its whole specification: its file is named by its place in the list
    const std::string label = g.design ? std::to_string(g.design - po.designs.data() + 1) : g.info.group;
    sr.file = unique_file(po.save_dir + "/replication-" + std::to_string(po.save_replication) + "_" + file_part(g.info.split) + "-" +
                              file_part(label) + "_effect-" + std::to_string(ei + 1),
                          res.saved);
    sr.content = replication_csv(df, g, po, plan, sr.effect, sr, e, g.placebo ? &placebo : nullptr);
    res.saved.push_back(std::move(sr));
  }
}

// ---- the groups ----

// The groups of one --split variable: its distinct values on the pooled estimation sample, in
// increasing order (numbers, -0 as 0) or alphabetical order (text). A number's label has 15
// significant digits, or 17 when two values would print alike.
std::vector<GroupModel> split_groups(const DataFrame& df, const std::string& split, const Design& pooled) {
  const Column& col = df.column(split);
  if (!col.is_string()) df.numeric(split);  // raises a stored parse problem
  std::map<std::string, std::vector<char>> text_masks;
  std::map<double, std::vector<char>> number_masks;
  const std::size_t n = pooled.rows.empty() ? pooled.n_obs : pooled.rows.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t r = pooled.rows.empty() ? static_cast<std::uint32_t>(i) : pooled.rows[i];
    if (col.missing(r)) continue;
    auto& m = col.is_string() ? text_masks[col.text(r)] : number_masks[col.value(r) == 0 ? 0.0 : col.value(r)];
    if (m.empty()) m.assign(df.n_rows(), 0);
    m[r] = 1;
  }
  if (text_masks.empty() && number_masks.empty())
    throw InvalidInput("--split " + split + " has no non-missing value in the estimation sample");
  std::vector<std::pair<std::string, std::vector<char>>> groups;
  for (auto& kv : text_masks) groups.emplace_back(kv.first, std::move(kv.second));
  bool alike = false;
  std::string last;
  for (const auto& kv : number_masks) {
    alike = alike || (!last.empty() && shortest(kv.first) == last);
    last = shortest(kv.first);
  }
  for (auto& kv : number_masks) groups.emplace_back(alike ? g17(kv.first) : shortest(kv.first), std::move(kv.second));
  std::vector<GroupModel> out;
  for (auto& [label, mask] : groups) {
    GroupModel g;
    g.info.split = split;
    g.info.group = label;
    g.mask = std::move(mask);
    out.push_back(std::move(g));
  }
  return out;
}

void check_options(const PowerOptions& po, const SampleOptions& so) {
  if (po.target.empty()) throw InvalidInput("power needs --target VAR: the coefficient whose effect is varied");
  if (po.effects.empty()) throw InvalidInput("--effects is empty; give numbers, a:b:n ranges or xM multiples");
  if (po.n_rep < 1) throw InvalidInput("--R must be at least 1 replication");
  if (po.tests.empty() && !po.diff) throw InvalidInput("--tests is empty; choose from crve, wild, wild-webb, wcu, diff");
  if (po.diff && po.splits.empty())
    throw InvalidInput("--tests diff compares the groups of a split; add --split VAR");
  if (po.diff && po.tests.empty() && po.pooled)
    throw InvalidInput("--pooled with --tests diff alone: there is no per-group test to run on the whole sample; add crve or wild to --tests");
  if (po.alphas.empty()) throw InvalidInput("--alpha is empty");
  for (double a : po.alphas)
    if (!(a > 0 && a < 1)) throw InvalidInput("--alpha values must lie strictly between 0 and 1");
  // below 0.5 the analytic MDE (t_{1-alpha/2} + t_power) SE can turn negative: not a power anyone sizes for
  if (!(po.power_target > 0.5 && po.power_target < 1))
    throw InvalidInput("--power-target must lie strictly between 0.5 and 1");
  if (so.cluster.empty()) throw InvalidInput("power needs --cluster VAR: its tests are cluster-robust");
  if (!so.weights.empty()) throw InvalidInput("power does not support --weights yet: the simulated designs are unweighted");
  if ((po.errors == PowerErrors::kDesign) != !po.designs.empty())
    throw InvalidInput("the errors of a synthetic design go with --design only");
  if (po.save_replication < 0 || po.save_replication > po.n_rep)
    throw InvalidInput("--save-replication " + std::to_string(po.save_replication) + ": the replication must be from 1 to --R (" +
                       std::to_string(po.n_rep) + ")");
}

// --tests diff: the model of a split's groups as one regression, every regressor and every
// fixed effect interacted with the split, so that its coefficients are the groups' separate
// regressions' (Stata's suest): "y ~ i(S, x1) + i(S, x2) | fe1^S + fe2^S" (| S without FE).
std::string interacted_formula(const Formula& fm, const DataFrame& df, const std::string& split) {
  std::string rhs;
  for (const FormulaTerm& t : fm.terms) {
    const Column* c = df.find(t.name);
    if (t.factors.size() != 1 || t.factors[0].dummies || !c || c->is_string())
      throw InvalidInput("--tests diff interacts each regressor with --split " + split + ", and '" + t.name +
                         "' is not a numeric variable of the data (an expression or interaction?): make it a variable first");
    rhs += (rhs.empty() ? "" : " + ") + ("i(" + split + ", " + t.name + ")");
  }
  if (rhs.empty()) throw InvalidInput("--tests diff needs a regressor to compare");
  std::string fe;
  for (const std::vector<std::string>& dim : fm.fe) {
    std::string term;
    for (const std::string& v : dim) term += (term.empty() ? "" : "^") + v;
    fe += (fe.empty() ? "" : " + ") + term + "^" + split;
  }
  // without fixed effects: the groups' intercepts as the split's effects, or none ("+ 0")
  if (fe.empty()) return fm.lhs_name + " ~ " + rhs + (fm.intercept ? " | " + split : std::string(" + 0"));
  return fm.lhs_name + " ~ " + rhs + " | " + fe;
}

// The distinct values of a split on the rows of a mask.
std::size_t count_groups(const DataFrame& df, const std::string& split, const std::vector<char>& mask) {
  const Column& col = df.column(split);
  std::set<std::string> seen;
  for (std::size_t r = 0; r < mask.size(); ++r)
    if (mask[r] && !col.missing(r)) seen.insert(col.is_string() ? col.text(r) : g17(col.value(r) == 0 ? 0.0 : col.value(r)));
  return seen.size();
}

// --tests diff: the interacted model of one split on the pooled estimation rows that have a
// split value, its groups' targets (in the fit's order) and R: the first less each other.
GroupModel diff_group(const DataFrame& df, const Formula& fm, const SampleOptions& so, const FitOptions& fo,
                      const std::string& target, const std::string& split, const Design& pooled) {
  GroupModel g;
  g.info.split = split;
  g.info.group = kDiffGroup;
  g.diff = true;
  const Column& col = df.column(split);
  g.mask.assign(df.n_rows(), 0);
  const std::size_t n = pooled.rows.empty() ? pooled.n_obs : pooled.rows.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t r = pooled.rows.empty() ? static_cast<std::uint32_t>(i) : pooled.rows[i];
    if (!col.missing(r)) g.mask[r] = 1;
  }
  g.info.formula = interacted_formula(fm, df, split);
  fit_group(df, parse_formula(g.info.formula), so, fo, g);
  // each group's D interacted dimensions are connected only within the group: D - 1 redundant
  // levels per group, where fit_group took D - 1 for the whole model
  if (g.d.fe.size() > 1) g.info.k_all -= static_cast<double>(g.d.fe.size() - 1) * static_cast<double>(count_groups(df, split, g.mask) - 1);
  const std::string pre = split + "::", post = ":" + target;
  const auto is_target = [&](const std::string& name) {
    return name.size() > pre.size() + post.size() && name.compare(0, pre.size(), pre) == 0 &&
           name.compare(name.size() - post.size(), post.size(), post) == 0;
  };
  for (const std::string& dname : g.fr.dropped)
    if (is_target(dname.substr(0, dname.find(' '))))
      throw InvalidInput("--tests diff: " + dname + " in the interacted model of --split " + split +
                         "; a group whose target cannot be estimated has no effect to compare");
  for (std::size_t j = 0; j < g.fr.coefficients.size(); ++j)
    if (is_target(g.fr.coefficients[j].name)) {
      g.targets.push_back(static_cast<int>(j));
      g.info.contrast.push_back(g.fr.coefficients[j].name);
    }
  if (g.targets.size() < 2)
    throw InvalidInput("--tests diff: --split " + split + " has " + std::to_string(g.targets.size()) +
                       " group in the estimation sample; a difference needs two or more");
  g.target = g.targets[0];
  const Eigen::Index q = static_cast<Eigen::Index>(g.targets.size() - 1);
  g.info.q = static_cast<int>(q);
  g.R = Mat::Zero(q, g.fr.beta.size());
  for (Eigen::Index j = 0; j < q; ++j) {
    g.R(j, g.targets[0]) = 1.0;
    g.R(j, g.targets[static_cast<std::size_t>(j) + 1]) = -1.0;
  }
  return g;
}

// The difference test's own estimate and SE: the first row of R b in the interacted fit.
void diff_estimate(GroupModel& g) {
  const Vec rb = g.R * g.fr.beta;
  const Mat rvr = g.R * g.fr.vcov * g.R.transpose();
  g.info.estimate = rb(0);
  g.info.std_error = rvr(0, 0) > 0 ? std::sqrt(rvr(0, 0)) : 0.0;
}

std::string power_errors_name(PowerErrors e) {
  switch (e) {
    case PowerErrors::kWild: return "wild";
    case PowerErrors::kNormal: return "normal";
    case PowerErrors::kBlock: return "block";
    case PowerErrors::kAr1: return "ar1";
    case PowerErrors::kDesign: return "design";
  }
  return "?";
}

// --design: the groups of the split "design" (values 1 .. D) labelled by their designs' texts,
// so that a design's draws (its group key) do not depend on the other designs listed.
void label_designs(const std::vector<SyntheticDesign>& designs, std::int64_t R, std::vector<GroupModel>& groups) {
  std::size_t i = 0;
  for (const SyntheticDesign& d : designs)
    for (std::int32_t m = 0; m < d.xdraws; ++m, ++i) {
      if (i >= groups.size()) throw std::logic_error("label_designs: one group per draw");
      GroupModel& g = groups[i];
      g.design = &d;
      g.info.group = d.text;
      g.info.design = d.text;
      g.x_draw = m;
      g.x_draws = d.xdraws;
      g.n_rep = R / d.xdraws;
      g.key_label = design_draw_key(d, m);
    }
  if (i != groups.size()) throw std::logic_error("label_designs: one group per draw");
}

// --design: the saved datasets' outcome is x effect + errors (no fixed-effects part), so the
// raw outcome is taken to be the calibration draw's residuals plus x beta_hat.
void drop_fixed_effects_part(GroupModel& g) {
  const std::size_t n = g.d.n_obs;
  for (std::size_t i = 0; i < n; ++i) {
    double y = g.d.y[i];
    for (std::size_t j = 0; j < g.fr.coefficients.size(); ++j) {
      const auto at = std::find(g.x_raw_names.begin(), g.x_raw_names.end(), g.fr.coefficients[j].name);
      if (at != g.x_raw_names.end())
        y += g.X_raw[static_cast<std::size_t>(at - g.x_raw_names.begin()) * n + i] * g.fr.beta(static_cast<Eigen::Index>(j));
    }
    g.y_raw[i] = y;
  }
}

std::vector<double> resolve_effects(const std::vector<EffectItem>& items, double full) {
  std::vector<double> out;
  for (const EffectItem& e : items) {
    const double v = e.multiple ? e.value * full : e.value;
    if (!std::isfinite(v)) throw InvalidInput("--effects: an effect overflows (not a finite number); give smaller values");
    out.push_back(v == 0 ? 0.0 : v);
  }
  return out;
}

}  // namespace

namespace {

// --placebo: the formula with `placebo` as its last regressor (before the fixed effects' '|').
std::string placebo_formula(const std::string& text) {
  int depth = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    depth += text[i] == '(' ? 1 : text[i] == ')' ? -1 : 0;
    if (text[i] == '|' && depth == 0) return text.substr(0, i) + "+ " + kPlacebo + " " + text.substr(i);
  }
  return text + " + " + kPlacebo;
}

// --placebo: the data with a column `placebo` holding N(0, 1) placeholders (each replication
// refits with its own draw; the placeholders only let the group's model be built and fitted).
DataFrame with_placebo_column(const DataFrame& df, std::uint64_t seed) {
  if (df.find(kPlacebo))
    throw InvalidInput("--placebo adds a regressor named 'placebo', and the data has a variable of that name; rename it");
  DataFrame out = df;
  Column c;
  c.name = kPlacebo;
  c.num.resize(df.n_rows());
  for (std::size_t r = 0; r < c.num.size(); ++r)
    c.num[r] = kernels::wild_weight(mix64(seed ^ 0x91ace60ULL), 0, static_cast<std::uint32_t>(r), WeightType::kNormal);
  out.columns.push_back(std::move(c));
  return out;
}

PowerResult study(const DataFrame& df, const Formula& fm, const SampleOptions& so, const FitOptions& fo,
                  const PowerOptions& po, const Backend& backend);

}  // namespace

PowerResult power_study(const DataFrame& df, const Formula& fm, const SampleOptions& so, const FitOptions& fo,
                        const PowerOptions& po, const Backend& backend) {
  if (!po.placebo) return study(df, fm, so, fo, po, backend);
  if (po.diff) throw InvalidInput("--placebo and --tests diff: a placebo has no groups to compare; run them separately");
  if (!po.designs.empty()) throw InvalidInput("--placebo tests a regressor on the data; --design has no data");
  if (so.extra.empty() || so.panel_time.empty())
    throw InvalidInput("--placebo copies the target's serial correlation within panel units: give --panel id,time");
  PowerResult res = study(with_placebo_column(df, po.seed), parse_formula(placebo_formula(fm.text)), so, fo, po, backend);
  res.placebo_of = po.target;
  res.errors = "placebo";
  return res;
}

namespace {

PowerResult study(const DataFrame& df, const Formula& fm, const SampleOptions& so, const FitOptions& fo,
                  const PowerOptions& po, const Backend& backend) {
  const auto t0 = Clock::now();
  check_options(po, so);
  PowerResult res;
  const std::string tested = po.placebo ? kPlacebo : po.target;  // the coefficient each replication tests
  GroupModel pooled;
  pooled.info.split = "pooled";
  pooled.info.group = "all";
  pooled.placebo = po.placebo;
  fit_group(df, fm, so, fo, pooled);
  pooled.target = target_index(pooled.fr, tested, "the whole sample");
  pooled.source = target_index(pooled.fr, po.target, "the whole sample");
  res.full_sample_estimate = pooled.fr.beta(pooled.source);
  if (po.save_replication > 0) {
    const Column* y = df.find(pooled.d.y_name);
    if (!y || y->is_string())
      throw InvalidInput("--save-replication needs the outcome to be a numeric variable of the data; '" + pooled.d.y_name +
                         "' is not one (an expression?): make it a variable first");
  }
  std::vector<GroupModel> groups;
  std::vector<std::string> seen;
  for (const std::string& split : po.splits) {
    if (split == "pooled")
      throw InvalidInput("--split pooled: the name 'pooled' labels the whole-sample group; rename the variable");
    if (std::find(seen.begin(), seen.end(), split) != seen.end()) continue;  // --split x --split x: once
    seen.push_back(split);
    if (!po.tests.empty())
      for (GroupModel& g : split_groups(df, split, pooled.d)) groups.push_back(std::move(g));
    if (po.diff) groups.push_back(diff_group(df, fm, so, fo, po.target, split, pooled.d));
  }
  if (!po.designs.empty()) label_designs(po.designs, po.n_rep, groups);
  const bool with_pooled = po.pooled || po.splits.empty();
  // the difference tests: crve and the bootstraps of --tests
  std::vector<PowerTest> diff_tests_run{PowerTest::kCrve};
  for (PowerTest t : po.tests)
    if (t != PowerTest::kCrve) diff_tests_run.push_back(t);
  const std::vector<double> effects = resolve_effects(po.effects, res.full_sample_estimate);
  for (GroupModel& g : groups) {
    if (g.diff) continue;  // fitted by diff_group
    g.placebo = po.placebo;
    fit_group(df, fm, so, fo, g);
    g.target = target_index(g.fr, tested, sample_label(g.info));
    g.source = target_index(g.fr, po.target, sample_label(g.info));
    g.targets = {g.target};
    if (g.design) drop_fixed_effects_part(g);
  }
  pooled.targets = {pooled.target};
  if (with_pooled && !po.tests.empty()) {
    GroupModel copy = pooled;  // its design is the fit's (consumed) one
    groups.insert(groups.begin(), std::move(copy));
  }
  for (GroupModel& g : groups) {
    calibrate(g, &pooled, po.calibrate);
    g.info.estimate = g.fr.beta(g.target);
    g.info.std_error = g.fr.coefficients[static_cast<std::size_t>(g.target)].std_error;
    if (g.diff) diff_estimate(g);
    prepare_group(g, fo, po);
  }
  const auto t1 = Clock::now();
  std::uint64_t total_reps = 0, n_groups = 0;
  const auto key_of = [](const GroupModel& g) { return g.key_label.empty() ? g.info.group : g.key_label; };
  for (const GroupModel& g : groups) {
    // the replications this process computes (a shard's share, what a checkpoint lacks)
    const std::size_t T = (g.diff ? diff_tests_run : po.tests).size();
    const GroupCounts zero = zero_counts(effects.size(), T, po.alphas.size());
    total_reps += planned_replications(
        po.runner, group_task(group_task_key(g, static_cast<std::size_t>(&g - groups.data()), key_of(g)), group_reps(g, po), zero));
    n_groups += g.x_draw == 0;
  }
  ProgressReporter progress("power: " + std::to_string(n_groups) + " group" + (n_groups == 1 ? "" : "s") + " x " +
                                std::to_string(po.n_rep) + " replications",
                            "replications", total_reps, po.progress);
  GroupCounts counts;
  for (const GroupModel& g : groups) {
    const std::string key = key_of(g);
    RunPlan plan{&effects, g.diff ? &diff_tests_run : &po.tests, po.wild_B, po.seed, power_group_key(g.info.split, key),
                 wild_detail::enumerates(Enumerate::kAuto, WeightType::kRademacher, g.boot.n_levels, po.wild_B)};
    GroupCounts draw;
    simulate_group(g, fo, po, plan, group_task_key(g, static_cast<std::size_t>(&g - groups.data()), key), backend,
                   progress, draw);
    if (g.x_draw == 0) counts = std::move(draw);
    else merge_counts(counts, draw);
    // --design xdraws: replication K of the design is replication K - m R/M of draw m
    const std::int64_t local_K = po.save_replication - static_cast<std::int64_t>(g.x_draw) * group_reps(g, po);
    const bool partial = po.runner && !po.runner->complete();  // a shard saves nothing
    if (po.save_replication > 0 && !partial && local_K >= 1 && local_K <= group_reps(g, po))
      save_replication(df, fm.text, g, fo, po, plan, backend, local_K, res);
    if (g.x_draw + 1 < g.x_draws) continue;  // the design's other draws first
    const std::size_t first = res.cells.size();
    add_cells(g, po, plan, counts, res);
    add_paired(g, po, plan, counts, res);
    add_mde(g, po, plan, res, first);
    PowerGroup info = g.info;
    info.enumerated = plan.enumerate;
    info.n_undefined = counts.undefined;
    if (counts.undefined > 0)
      res.notes.push_back(g.info.split + " = " + g.info.group + ": " + std::to_string(counts.undefined) + " of " +
                          std::to_string(po.n_rep) + " replications had no positive cluster-robust variance (no t statistic) "
                          "and are left out of its rejection rates (n_rep counts the others)");
    if (plan.enumerate)
      for (PowerTest t : *plan.tests)
        if (t == PowerTest::kWild || t == PowerTest::kWcu)
          for (double a : po.alphas)
            info.exact_level.emplace_back(power_test_name(t) + "@" + shortest(a), exact_enumerated_level(a, g.boot.n_levels));
    res.groups.push_back(std::move(info));
  }
  progress.finish();
  const auto t2 = Clock::now();
  res.formula = fm.text;
  res.target = tested;
  res.data_source = pooled.fr.data_source;
  res.simulated = pooled.fr.simulated;
  res.effects = effects;
  for (PowerTest t : po.tests) res.tests.push_back(power_test_name(t));
  if (po.diff) res.tests.push_back("diff");
  res.alphas = po.alphas;
  res.n_rep = po.n_rep;
  res.wild_B = po.wild_B;
  res.power_target = po.power_target;
  res.errors = power_errors_name(po.errors);
  res.calibrate = po.calibrate == PowerCalibration::kGroup ? "group" : "pooled";
  res.seed = po.seed;
  res.backend = backend.name();
  res.timing = {{"calibrate_s", seconds_between(t0, t1)}, {"simulate_s", seconds_between(t1, t2)}};
  return res;
}

}  // namespace

PowerResult power_design_study(const std::vector<SyntheticDesign>& designs, const FitOptions& fo, PowerOptions po,
                               const Backend& backend) {
  if (designs.empty()) throw InvalidInput("--design: no design given");
  if (po.diff) throw InvalidInput("--tests diff compares the groups of a split of data; the designs of --design are separate studies");
  for (const EffectItem& e : po.effects)
    if (e.multiple)
      throw InvalidInput("--effects: multiples (x" + shortest(e.value) + ") scale an estimate, and a synthetic design has none; "
                         "give effects in standard deviations of the errors (x and u have variance 1)");
  for (std::size_t i = 0; i < designs.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (designs[i].text == designs[j].text) throw InvalidInput("--design " + designs[i].text + " is given twice");
  double rows = 0;
  for (const SyntheticDesign& d : designs) {
    rows += static_cast<double>(d.obs) * d.periods * d.xdraws;
    if (po.n_rep % d.xdraws != 0)
      throw InvalidInput("--design " + d.text + ": --R (" + std::to_string(po.n_rep) + ") is shared evenly among the " +
                         std::to_string(d.xdraws) + " draws of x; give an --R that xdraws divides");
  }
  if (rows > 2147483647.0)
    throw InvalidInput("--design: the designs have " + shortest(rows) + " rows together; at most 2^31 - 1");
  po.designs = designs;
  po.errors = PowerErrors::kDesign;
  po.splits = {"design"};
  po.pooled = false;
  po.calibrate = PowerCalibration::kGroup;
  if (po.target.empty()) po.target = "x";
  const DataFrame df = synthetic_panel(designs, po.seed, po.max_memory);
  SampleOptions so;
  so.cluster = {"cluster"};
  so.panel_id = "id";
  so.panel_time = "period";
  so.need_time = true;
  so.extra = {"id"};
  PowerResult res = power_study(df, parse_formula("y ~ x | cluster + period"), so, fo, po, backend);
  res.full_sample_estimate = std::numeric_limits<double>::quiet_NaN();  // the stacked designs' fit means nothing
  return res;
}

}  // namespace panelboot
