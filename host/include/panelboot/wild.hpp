#pragma once
// The wild cluster bootstrap (WCR/WCU) without refitting: every replication is a handful of
// cluster-level products (MacKinnon 2021; Roodman, MacKinnon, Nielsen and Webb 2019).
//
// With A = (X'X)^-1 on the demeaned data, a = A R' and bootstrap-cluster scores s_g = X_g'u_g:
//   numerator_b    = sum_g v_gb a's_g
//   Z_cb           = sum_g v_gb K_cg,  K_cg = a'X_c'(u 1_g) - (X_c'X_c a)'(A s_g) - E_cg
//   denominator_b  = sum_S w_S sum_{c in S} Z_cb^2      (S: the clusterings of the variance)
// where E_cg = a'X_c' P_FE(u 1_g) re-projects the fixed effects that are not nested in the
// bootstrap clusters (zero when all are nested). The first term is sparse (clusters meeting
// bootstrap clusters), the second has rank k, the third rank <= the non-nested FE levels, so
// a replication costs O(nnz + (C + G)(k + L)), batched over a chunk of replications.
// Under WCR the residuals are affine in the null value r, so the numerator is affine and the
// squared denominator quadratic in r: after one pass each trial r of the CI costs O(B).
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "panelboot/backend.hpp"
#include "panelboot/design.hpp"
#include "panelboot/estimate.hpp"
#include "panelboot/kernels/wild_weights.hpp"
#include "panelboot/replications.hpp"

namespace panelboot {

using kernels::WeightType;
enum class Enumerate { kAuto, kAlways, kNever };
enum class PValueType { kSymmetric, kEqualTailed, kLower, kUpper };
enum class Ties { kStrict, kInclusive };
enum class PAdjust { kNone, kBonferroni, kSidak };

// Their names (the tables of panelboot/names.hpp).
std::string weight_type_name(WeightType w);
std::string pvalue_type_name(PValueType p);

struct WildOptions {
  std::vector<std::string> tests;  // linear restrictions, one per test ("x1 - x2 = 0")
  bool joint = false;              // one Wald/F test of all rows instead
  std::int64_t n_boot = 9999;
  WeightType weight = WeightType::kRademacher;
  bool impose_null = true;         // WCR (IV: WRE); false: WCU (IV: WUE)
  bool ar = false;                 // IV models: also the wild bootstrap Anderson-Rubin test of each --test
  Enumerate enumerate = Enumerate::kAuto;
  PValueType pvalue = PValueType::kSymmetric;
  Ties ties = Ties::kStrict;
  PAdjust padjust = PAdjust::kNone;
  double level = 0.95;
  std::string bootcluster;         // "" (default), "intersection", or a grouping in design.extra[0]
  std::uint64_t seed = 20250101;
  std::size_t chunk = 0;           // replications per batch; 0 = automatic
  bool ci = true;
  // Keep each replication's bootstrap statistic (WildTest::draws; --save-draws): drawn replications
  // or a stored enumeration, computed in this process (not a shard's or other ranks' ranges).
  bool keep_draws = false;
  bool force_gray = false;         // enumerate with the Gray-code walk even for small G (tests)
  int wre_form = 0;                // IV products: 0 the cheaper form, 1 dense, 2 factored (tests)
  std::ostream* progress = nullptr;  // where long runs show progress (ProgressReporter); null: none
  std::uint64_t max_memory = 0;    // bytes a run may use (--max-memory); 0: what the machine has
  double min_team_work = WildRunOptions{}.min_team_work;  // see WildRunOptions; tests set 0
  // Where each test's replications run (a shard's share, a checkpoint's blocks, a merge's parts);
  // null: all of them here. Each test is one task, keyed "test K: <hypothesis>": its counts
  // (abs, upper, lower, finite) and, with the CI, each replication's coefficients (n0, n1, d0,
  // d1, d2 under WCR; n0, d0 under WCU).
  ReplicationRunner* runner = nullptr;
};

struct WildTest {
  std::string hypothesis;
  std::string test;              // "t", "wald" (--joint); IV: "wre", "wue", "ar"
  int q = 1;
  double stat = 0;               // t (q = 1) or F = Wald / q
  double crve_p_value = 0;       // from t(df) or F(q, df) of the cluster-robust variance
  double p_value = 0;            // bootstrap
  double p_value_adjusted = 0;   // --padjust across the tests
  std::int64_t n_boot = 0, n_finite = 0, n_exceed = 0;
  bool enumerated = false;
  bool ci_available = false;
  bool ci_bounded = true;        // false: the set reaches -inf or +inf (AR), or the search's ends
  double ci_low = 0, ci_high = 0, ci_tol = 0;
  std::vector<std::pair<double, double>> ci_pieces;  // several when the set is disjoint; an AR
                                                     // set's ends may be -inf / +inf
  std::string note;
  std::vector<double> draws;     // keep_draws: the statistic of replication b at draws[b]
  // Multiply-adds of one replication (enumerating: one sign-vector pair, a Gray-walk step) on the path
  // the run took: the work model `panelboot bench` turns into FLOP/s.
  double work_per_replication = 0;
};

struct WildResult {
  FitResult fit;
  std::vector<WildTest> tests;
  std::string method;            // "WCR" or "WCU"; IV: "WRE" or "WUE"
  std::string pvalue_recommended;  // IV: "equal-tailed" when the effective F is below its critical value
  std::string weight_type;
  std::string bootcluster;       // name of the bootstrap clustering
  std::string backend;           // "cpu" or "cuda": where the replications ran
  std::int32_t n_bootclusters = 0;
  std::vector<std::string> fe_reprojected;  // FE dimensions not nested in the bootstrap clusters
  std::uint64_t seed = 0;
  std::vector<std::string> notes;
  std::vector<std::pair<std::string, double>> timing;  // seconds per stage, filled by the CLI
  int threads = 0;               // worker threads of the run, filled by the CLI
};

// Test hook: the bootstrap statistics of the first `keep` replications of each test (for
// enumeration, the first `keep` sign vectors in index order).
struct WildTrace {
  std::size_t keep = 0;
  std::vector<std::vector<double>> stats;
};

// Runs the fit (consuming the design as fit() does) and the bootstrap tests on `backend`, in
// stages (wild.cpp): check the options, choose the bootstrap clusters, fit, the variance terms,
// parse the tests, plan the enumeration, then per test the observed statistic, the residual
// parts, the problem (WildEngine) and its replications (or Gray walk), the p-value; last the
// multiple-testing adjustment.
WildResult wild_bootstrap(Design& design, const FitOptions& fo, const WildOptions& wo, const Backend& backend,
                          WildTrace* trace = nullptr);

// The i-th enumerated sign vector's weight for bootstrap cluster g (cluster 0 is always +1;
// the vector and its negation are counted together).
using kernels::enumerated_weight;

}  // namespace panelboot
