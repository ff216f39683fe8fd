#pragma once
// Monte Carlo size, power and minimum detectable effect of the tests a user runs on split
// samples (`panelboot power`; docs/POWER.md): per group, a data-generating process calibrated
// from the fitted model, R simulated datasets, and on each the group's FE regression and every
// requested test, exactly as `fit` and `wild` compute them.
//
// The fast path. X and the fixed effects are fixed across replications, and the simulated
// outcome is y_r(e) = (the fitted FE and controls) + x_target e + errors_r, so with the within
// transform M (linear) and A = (X~'X~)^-1:
//   beta_r(e) = beta_cal(e) + A X~' M errors_r       (the target's estimate moves by e exactly)
//   u_r       = M errors_r - X~ A X~' M errors_r     (the residuals do not depend on e)
// One regression per replication therefore serves every effect: the CRVE t is (e + d_r)/se_r.
// Under wild errors, M errors_r = sum_g z_rg M(c u 1_g) is a combination of G columns computed
// once per group. The nested wild bootstraps use the wild engine's pieces: the restriction's
// u-independent pieces once per group; per replication the residual parts (u_r and, under WCR,
// the direction h with t*(delta) affine over quadratic in delta = the estimate); per effect the
// replications on the Backend with their own draws.
//
// Draws are counter-based: the errors of replication r of a group from (seed, group, r) (the
// same at every effect and for every test: common random numbers), the bootstraps' from the
// `wild --seed` derived from (seed, group, effect, r) (power_wild_seed), so results are the
// same on any thread count, batch size and effect list.
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "panelboot/backend.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/design.hpp"
#include "panelboot/estimate.hpp"
#include "panelboot/formula.hpp"
#include "panelboot/power_design.hpp"
#include "panelboot/replications.hpp"

namespace panelboot {

enum class PowerTest { kCrve, kWild, kWildWebb, kWcu };
// kDesign: the errors of --design's data-generating process (power_design.hpp)
enum class PowerErrors { kWild, kNormal, kBlock, kAr1, kDesign };
enum class PowerCalibration { kGroup, kPooled };

// One item of --effects: a value, or a multiple of the full-sample estimate ("x0.5").
struct EffectItem {
  double value = 0;
  bool multiple = false;
};
// "0,0.001,0.002", "a:b:n" (n evenly spaced values from a to b), "x0.5,x1,x2", mixed.
// InvalidInput on an empty list or a token that is none of these.
std::vector<EffectItem> parse_effects(const std::string& text);

struct PowerOptions {
  std::string target;                 // the coefficient whose value is set to each effect
  std::vector<EffectItem> effects;
  std::vector<std::string> splits;    // --split variables
  bool pooled = false;                // the whole sample as a group too (always without splits)
  std::vector<PowerTest> tests{PowerTest::kCrve};
  // --tests diff: per --split, the test that the target's effect differs between its groups (the
  // interacted model; its tests are crve and those of `tests` that bootstrap). With `tests`
  // empty only the difference tests run.
  bool diff = false;
  // --placebo: test a regressor `placebo` drawn per replication with the target's within-cluster
  // and serial correlation, on the data's own outcome (its true effect 0; effects add e placebo)
  bool placebo = false;
  std::int64_t n_rep = 1000;          // R
  std::int64_t wild_B = 399;
  std::vector<double> alphas{0.05};
  double power_target = 0.8;
  PowerErrors errors = PowerErrors::kWild;
  PowerCalibration calibrate = PowerCalibration::kGroup;
  std::optional<double> rho;          // --errors ar1: the AR(1) coefficient (default: estimated)
  std::uint64_t seed = 20250101;
  std::size_t batch = 0;              // replications per batch (0: automatic); no effect on results
  std::int64_t save_replication = 0;  // K (1-based): write the K-th dataset of each group x effect
  std::string save_dir;
  std::ostream* progress = nullptr;   // the shared progress reporter's stream; null: none
  std::uint64_t max_memory = 0;       // --max-memory (0: what the machine has)
  // Where each group's Monte Carlo replications run (a shard's share, a checkpoint's blocks, a
  // merge's parts); null: all here. A group (each x draw of a design) is one task: its rejection,
  // pair and undefined counts, and each replication's deviation of the estimate (NaN: none), from
  // which the estimates' mean and SD are summed in replication order.
  ReplicationRunner* runner = nullptr;
  // --design: synthetic designs, one group each (split "design"); set by power_design_study
  std::vector<SyntheticDesign> designs;
};

// The `wild --seed` that reproduces the bootstrap draws of replication `rep` (1-based) of a
// group at an effect; group_key = power_group_key(split, group).
std::uint64_t power_group_key(const std::string& split, const std::string& group);
std::uint64_t power_wild_seed(std::uint64_t seed, std::uint64_t group_key, double effect, std::int64_t rep);
// --errors block: the permutation of a group's n clusters in replication rep (1-based) drawn from
// the errors' seed: cluster c receives the residual block of cluster perm[c] (Fisher-Yates on
// Philox words; each block used once: without replacement).
std::vector<std::int32_t> power_block_permutation(std::uint64_t seed, std::int64_t rep, std::int32_t n);

struct PowerGroup {
  std::string split, group;         // "pooled", "all" for the whole sample
  std::size_t n_obs = 0;
  std::int32_t n_clusters = 0;      // of the bootstrap (coarsest) cluster variable: the G of t(G-1)
  double dof_k = 0;                 // K of the CRVE small-sample factor (fit's)
  double k_all = 0;                 // K counting every absorbed level (the errors' rescaling)
  double s2 = 0;                    // RSS / (N - k_all) of the calibrating model
  double error_scale = 1;           // sqrt(N / (N - k_all)) of the calibrating model (wild errors)
  double estimate = 0, std_error = 0;  // the target in the group's own fit (CRVE)
  std::vector<std::pair<std::string, double>> coefficients;  // the calibrating model's fit
  std::string calibrated_on;        // "group" or "pooled"
  std::vector<std::pair<std::string, double>> exact_level;   // per "test@alpha" with enumeration
  bool enumerated = false;          // Rademacher tests enumerate 2^G sign vectors (2^G <= --wild-B)
  std::int64_t n_undefined = 0;     // replications without a positive CRVE variance (left out)
  // --errors ar1: the residuals' first-order autocorrelation within the panel units, as estimated
  // and as used (bias-corrected, or --rho); T the mean series length
  double rho_estimated = 0, rho = 0, periods = 0;
  double ar1_variance = 0;          // the errors' variance: s2 corrected for the lost unit means
  std::string rho_source;
  std::string design;               // --design: the normalized specification ("" on data)
  // --tests diff (group "(difference)"): the interacted model's formula, the target's coefficient
  // per group in the order of the restriction rows (the first less each other), q = rows
  std::string formula;
  std::vector<std::string> contrast;
  int q = 1;
  // --placebo: the target's within-transformed values' lag-1 autocorrelation (as estimated, and
  // bias-corrected as used), their correlation between units of a cluster at one period, and
  // the placebo's standard deviation (the target's root mean square within value)
  double placebo_rho_estimated = 0, placebo_rho = 0, placebo_icc = 0, placebo_sd = 0;
};

struct PowerCell {
  std::string split, group;
  double effect = 0;
  std::string test;                 // "crve", "wild", "wild-webb", "wcu"
  double alpha = 0.05;
  std::int64_t rejections = 0, n_rep = 0;  // n_rep: replications with a defined p-value
  double rejection_rate = 0, mc_se = 0, ci_low = 0, ci_high = 0;  // Wilson 95% interval
  std::int32_t n_clusters = 0;
  // at effect 0: more than 3 null SEs from the reference level (alpha, or the enumerated test's
  // exact achievable level); nullopt at other effects
  std::optional<bool> size_flag;
  double size_reference = 0;        // the level the size is compared with (effect 0)
  double estimate_mean = 0, estimate_sd = 0;  // of the target's estimate (bias check)
};

// Two tests on the same simulated datasets at one effect and level: how often each rejected
// where the other did not, and the exact McNemar test of equal rejection rates,
// p = min(1, 2 P(Bin(only_a + only_b, 1/2) <= min(only_a, only_b))).
struct PowerPaired {
  std::string split, group, test_a, test_b;
  double effect = 0, alpha = 0.05;
  std::int64_t n_rep = 0;           // replications where both p-values are defined
  std::int64_t only_a = 0, only_b = 0;
  double mcnemar_p = 1;
};

struct PowerMde {
  std::string split, group, test;
  double alpha = 0.05, power = 0.8;
  std::optional<double> effect;                // interpolated; nullopt when not reached, or
                                               // reached at the smallest effect (at most bracket_high)
  std::optional<double> bracket_low, bracket_high;
  double mde_analytic = 0;                     // (t_{G-1,1-a/2} + t_{G-1,power}) x SE
  std::string note;
};

// What --save-replication wrote for one group x effect, and what the replication gave: the
// numbers `fit` and `wild --seed wild_seed --B wild_B` reproduce from the file.
struct SavedReplication {
  std::string file, split, group, formula;  // formula: the model the file is fit with
  std::vector<std::string> wild_tests;      // the `wild --test` rows (with --joint when 2 or more)
  double effect = 0;
  std::int64_t replication = 0;
  std::uint64_t wild_seed = 0;
  std::int64_t wild_B = 0;
  double estimate = 0, std_error = 0, t = 0;  // difference test: the first row's; t NaN when joint
  double statistic = 0;                       // t, or the joint F of a difference test
  std::vector<std::pair<std::string, double>> p_values;  // per test
  std::string content;  // the CSV (written by the caller, with its other outputs)
};

struct PowerResult {
  std::string formula, target, data_source;
  std::string placebo_of;            // --placebo: the regressor whose correlation the placebo copies
  bool simulated = false;
  double full_sample_estimate = 0;   // the target in the pooled fit (the x-multiples' base)
  std::vector<double> effects;
  std::vector<std::string> tests;
  std::vector<double> alphas;
  std::int64_t n_rep = 0, wild_B = 0;
  double power_target = 0.8;
  std::string errors, calibrate;
  std::uint64_t seed = 0;
  std::vector<PowerGroup> groups;
  std::vector<PowerCell> cells;
  std::vector<PowerMde> mde;
  std::vector<PowerPaired> paired;   // every pair of --tests, per group x effect x alpha
  std::vector<SavedReplication> saved;
  std::vector<std::string> notes;
  std::string backend;
  int threads = 0;
  std::vector<std::pair<std::string, double>> timing;  // seconds per stage
};

// Runs the study: the pooled fit, each group's calibration, the replications in batches, the
// counts and the MDE. InvalidInput for a group with fewer than 3 clusters or fewer observations
// than parameters, a target not in the model, R < 1 and the like.
PowerResult power_study(const DataFrame& df, const Formula& fm, const SampleOptions& so, const FitOptions& fo,
                        const PowerOptions& po, const Backend& backend);

// The study of synthetic designs (--design): their data set (synthetic_panel), the model
// y ~ x | cluster + period clustered by cluster, one group per design, errors kDesign; po.target
// defaults to x. InvalidInput on effects given as multiples (there is no estimate to scale).
PowerResult power_design_study(const std::vector<SyntheticDesign>& designs, const FitOptions& fo, PowerOptions po,
                               const Backend& backend);

// The exact two-sided McNemar p-value of discordant counts b and c.
double mcnemar_p(std::int64_t b, std::int64_t c);

// The Wilson score interval for k successes in n at z (1.96: 95%).
std::pair<double, double> wilson_interval(std::int64_t k, std::int64_t n, double z = 1.959963984540054);

std::string power_test_name(PowerTest t);

}  // namespace panelboot
