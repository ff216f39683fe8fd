#pragma once
// Hansen (1999) panel threshold regression, as his program THRESH_P computes it (--mode hansen):
//   y_it = m_i + z_it'c + x_it'b_1 1(q_it < g_1) + ... + x_it'b_{K+1} 1(q_it >= g_K) + e_it
// on a balanced panel: every variable demeaned by individual over all T periods, then the LAST
// period of each individual deleted (n(T-1) observations); the grid is Hansen's quantile grid of
// the distinct threshold values (1-based GAUSS indexing); thresholds are found sequentially with
// exclusion windows around the fixed ones; bootstrap p-values resample individuals' residual
// blocks. Fast algebra: with M projecting off [z x] and w_g the transformed x 1(q < g), every
// stage needs only r_g = w_g'M y, S0 = |My|^2 and the grid's Gram matrix w_g'M w_h (its diagonal
// blocks once, a point's column block when a search first fixes it), so a replication costs one
// product with the grid columns plus O(grid) per stage. The conventions and their sources: docs/METHODS-NOTES.md.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "panelboot/data_frame.hpp"
#include "panelboot/design.hpp"
#include "panelboot/replications.hpp"

namespace panelboot {

struct ThresholdOptions {
  std::string formula;                  // "y ~ z1 + z2 | id" (the FE, if given, is the panel id)
  std::vector<std::string> regime;      // regime-dependent regressors x (expressions)
  std::string threshold_var;            // q (an expression)
  // The sample, as fit and wild take it: --panel id,time (required; the formula's one fixed effect
  // is the unit), --where, and --cluster (at most one variable: the groups of se_cluster; none:
  // the panel unit). The engine always keeps singletons and reads the periods; it takes no weights.
  SampleOptions sample;
  int n_thresholds = 1;
  std::vector<double> trim = {0.01, 0.01, 0.05};  // the last value repeats for later stages
  int grid = 400;                       // Hansen's qn: quantile step 1/qn
  std::int64_t n_boot = 300;
  std::uint64_t seed = 20250101;
  std::size_t trace = 0;                // keep this many F* per test (tests)
  double min_team_work = 4e7;           // ThresholdBootSpec::min_team_work (tests set 0)
  // Where each test's replications run (a shard's share, a checkpoint's blocks, a merge's parts);
  // null: all here. Test k is the task "F<k>: <k> against <k-1> thresholds", its F* the values.
  ReplicationRunner* runner = nullptr;
  bool xthreg = false;                  // --mode xthreg: Stata xthreg's conventions (see below)
  std::vector<double> gammas;           // fixed thresholds (xthreg's thgiven): no search, no bootstrap
  bool time_effects = false;            // also remove period means (two-way); outside Hansen's program
  bool bootstrap_wild = false;          // wild (unit sign flips) instead of residual blocks
  double level = 0.95;                  // the level of the `ci` set (ci95 and ci99 are always reported)
  std::string vcov = "iid";             // the SE the report shows as std_error: iid, white or cluster
  bool keep_regimes = true;             // fill ThresholdResult::regimes (--save-regimes)
  bool robust_ci = false;               // Hansen (2000)'s heteroskedasticity-robust LR sets
  bool robust_kernel = true;            // eta^2 by his kernel rule (default) or a quadratic regression
  std::ostream* progress = nullptr;     // where long bootstraps show progress; null: none
  std::uint64_t max_memory = 0;         // bytes a run may use (--max-memory); 0: what the machine has
};
// --mode xthreg (Wang 2015, as reverse-engineered in docs/METHODS-NOTES.md): no deleted period (NT
// observations), lower regime q <= gamma, the grid drops floor(1% x N_u) distinct values at each
// end and takes --grid N points at indices round(j (N_v - 1) / (N - 1)), and sigma^2 = S/(NT - T).

// The bootstrap draw of replication b for test k: the individual whose residual block is attached
// to individual i (a pure function of (seed, k, b, i)).
std::size_t threshold_draw(std::uint64_t seed, int k, std::uint64_t b, std::size_t i, std::size_t n);

struct ThresholdCoef {
  std::string name;
  double estimate, se_homo, se_white;
  double se_cluster;  // clustered by the panel unit or --cluster; Hansen's HC0: no small-sample factor
};

struct ThresholdModel {
  int n_thresholds = 0;
  std::vector<double> gammas;                            // increasing
  std::vector<std::pair<double, double>> ci95, ci99;     // per threshold, in the order of `gammas`
  std::vector<std::pair<double, double>> ci;             // at ThresholdOptions::level
  // with robust_ci: ci95/ci99 are Hansen (2000)'s sets; the homoskedastic ones, eta^2 and the
  // kernel bandwidth (NaN: quadratic) per threshold
  std::vector<std::pair<double, double>> ci95_homo, ci99_homo;
  std::vector<double> eta2, eta_bandwidth;
  double ssr = 0;
  std::vector<ThresholdCoef> coefficients;
  // the sequential search: for stage k the threshold found, its CI and the fixed ones
  std::vector<std::string> notes;
};

struct ThresholdTest {
  int k = 0;            // k thresholds against k - 1
  double F = 0, p_value = 0;
  std::vector<double> crit;  // bootstrap critical values at 10%, 5%, 1%
  std::int64_t n_boot = 0;
  double work_per_replication = 0;  // multiply-adds (kernels::threshold_work_per_replication)
};

struct ThresholdResult {
  std::size_t n_units = 0, n_periods = 0, n_obs = 0;  // n, T (before deletion), n(T-1)
  std::size_t n_grid = 0, n_distinct = 0;
  double grid_first = 0, grid_last = 0;
  double ssr_linear = 0;
  std::vector<ThresholdModel> models;
  std::vector<ThresholdTest> tests;
  std::vector<double> lr_gamma, lr_value;  // LR(gamma) of the single-threshold search
  double lr_robust_factor = 0;             // robust_ci: the robust LR curve is lr_value * this (1 / eta^2)
  std::vector<double> ssr_curve;           // test hook: S1(gamma) at every grid point (reports use lr_value)
  std::vector<std::vector<double>> fstar;  // test hook: the first `trace` F* of each test
  // each observation's regime (1-based) in the last model: unit text, time, q, regime
  struct RegimeRow {
    std::string unit;
    double time, q;
    int regime;
  };
  std::vector<RegimeRow> regimes;
  double c95 = 0, c99 = 0, c_level = 0;
  std::string cluster;          // the grouping of se_cluster: the panel unit or --cluster
  std::int32_t n_clusters = 0;  // its groups
  bool simulated = false;
  std::string data_source;
  std::vector<std::string> departures;  // options outside the chosen program's procedure
  std::vector<std::string> omitted;     // linear terms dropped because they repeat a regime regressor
  std::vector<std::pair<std::string, double>> timing;  // seconds per stage (setup, search, bootstrap)
  std::string backend;                    // where the bootstrap runs: "cpu" or "cuda"
  std::vector<std::string> warnings;      // the data reader's, filled by the CLI
  int threads = 0;                        // worker threads of the run, filled by the CLI
};

class Backend;
// The model search on the host; each bootstrap test's replications on `backend`.
ThresholdResult estimate_threshold(const DataFrame& df, const ThresholdOptions& opts, const Backend& backend);

}  // namespace panelboot
