#pragma once
// Fixed-effects OLS with the variance conventions users compare against.
//   iid      sigma2 (X'X)^-1, sigma2 = e'e / (N - K)
//   hc1      N/(N-K) (X'X)^-1 (sum x_i x_i' e_i^2) (X'X)^-1
//   cluster  m (X'X)^-1 (sum_g s_g s_g') (X'X)^-1, m = G/(G-1) (N-1)/(N-K); several cluster
//            variables by inclusion-exclusion (Cameron-Gelbach-Miller) over their intersections
//   dk       Driscoll-Kraay: (X'X)^-1 S (X'X)^-1, S = Gamma_0 + sum_l (1 - l/(L+1))
//            (Gamma_l + Gamma_l'), h_t = sum_i x_it e_it; no small-sample factor (plm::vcovSCC)
// K counts the regressors plus the FE levels, less the FE nested in a cluster variable when
// --dof-fe nested (xtreg, reghdfe, fixest): K = k + sum_d L_d - (D - 1) - sum_nested (L_d - 1).
#include <Eigen/Dense>
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "panelboot/design.hpp"
#include "panelboot/within.hpp"

namespace panelboot {

enum class VcovType { kIid, kHc1, kCluster, kDk };
enum class DofFe { kNested, kAll };
enum class MultiwayAdj { kMin, kEach };

struct FitOptions {
  VcovType vcov = VcovType::kIid;
  DofFe dof_fe = DofFe::kNested;
  MultiwayAdj multiway_adj = MultiwayAdj::kMin;
  int dk_lag = -1;         // -1: floor(T^(1/4)) as plm::vcovSCC
  bool psd_fix = false;    // clip negative eigenvalues of a multiway V to zero
  double level = 0.95;
  DemeanOptions demean;
  std::vector<std::string> wald;  // joint tests, e.g. "x1 = 0, x2 = 0"
  // false (--small no): the large-sample form of ivreg2/ivreghdfe without `small`: no
  // small-sample factor (iid e'e/N, HC0, clusters without G/(G-1)(N-1)/(N-K)), N(0,1) reference.
  bool small = true;
};

struct Coefficient {
  std::string name;
  double estimate, std_error, t_stat, p_value, ci_low, ci_high;
};

struct WaldTest {
  std::string hypothesis;
  int q = 0;
  double f_stat = 0, df1 = 0, df2 = 0, p_value = 0;
};

// Instrumental variables (2SLS): the first stages and the weak-instrument diagnostics as
// ivreg2/ivreghdfe report them (docs/IV.md gives every formula and factor).
struct FirstStage {
  std::string variable;                   // the endogenous regressor
  std::vector<Coefficient> coefficients;  // excluded instruments first, then the exogenous ones
  double f_stat = 0, f_df1 = 0, f_df2 = 0, f_p_value = 0;  // excluded instruments = 0
  // Sanderson-Windmeijer conditional F (several endogenous regressors; NaN with one)
  double sw_f = 0, sw_df1 = 0, sw_df2 = 0, sw_p_value = 0;
  double partial_r2 = 0;                  // of the excluded instruments, the exogenous ones partialled out
};

struct StockYogoValue {
  std::string label;  // e.g. "10% maximal IV size"
  double value = 0;
};

struct IvDiagnostics {
  double kp_rk_lm = 0, kp_rk_lm_df = 0, kp_rk_lm_p = 0;  // underidentification
  double kp_rk_wald = 0, kp_rk_wald_f = 0;               // weak identification (chi2 and F)
  double cragg_donald_f = 0;                             // the homoskedastic version
  std::vector<StockYogoValue> stock_yogo;                // beside the weak-identification F
  // Montiel Olea-Pflueger, one endogenous regressor: the effective F, the generalized 2SLS
  // critical value at tau = 10% (weakivtest's c_TSLS) with its K_eff and worst-case bias
  // B_TSLS, and the simplified (conservative) critical value.
  double effective_f = 0, effective_f_crit = 0, effective_f_k_eff = 0, effective_f_crit_simplified = 0,
         mop_b_tsls = 0;
  double hansen_j = 0, hansen_j_df = 0, hansen_j_p = 0;  // over-identified only (NaN otherwise)
  std::string j_name;                                    // "Hansen J" or "Sargan" (iid)
  std::vector<std::string> warnings;                     // why a statistic is not reported
};

struct IvInfo {
  std::vector<std::string> endogenous, instruments, exogenous;
  std::vector<FirstStage> first_stages;
  IvDiagnostics diagnostics;
};

struct FitResult {
  std::string formula, y_name, data_source;
  bool simulated = false;
  std::vector<Coefficient> coefficients;
  Eigen::MatrixXd vcov;
  Eigen::VectorXd beta;   // the estimates, in coefficient order
  Eigen::MatrixXd bread;  // (X'X)^-1 of the demeaned, sqrt(w)-scaled regressors
  std::vector<std::string> dropped;         // "name (reason)"
  std::size_t n_obs = 0, n_input = 0, n_dropped_where = 0, n_dropped_missing = 0, n_singletons = 0;
  std::vector<std::pair<std::string, std::size_t>> missing_by_variable;
  std::vector<std::string> fe_names;
  std::vector<std::int32_t> fe_levels;
  std::vector<std::string> cluster_names;
  std::vector<std::int32_t> n_clusters;     // per cluster variable
  std::vector<std::string> nested_fe;       // FE not counted in K
  std::string vcov_type;                    // "iid", "hc1", "cluster", "dk"
  std::string vcov_label;                   // human-readable convention
  double dof_k = 0;                         // K used in the small-sample factor
  double df_inference = 0;                  // t / F reference degrees of freedom
  std::string reference;                    // "t(29)"
  double rss = 0, r2 = 0, r2_within = 0;    // r2_within NaN without FE
  double sigma = 0;
  int dk_lag = -1;
  std::string demean_method;
  int demean_iterations = 0;
  double level = 0.95;
  std::vector<WaldTest> wald;
  // seconds per stage, filled by the CLI: design_s (the sample, its columns and groupings), fit_s
  std::vector<std::pair<std::string, double>> timing;
  std::vector<std::string> warnings;
  // The warnings that put the reported numbers themselves in doubt (a numerically zero
  // variance); also in `warnings`, and repeated on stderr by the CLI.
  std::vector<std::string> serious_warnings;
  bool small = true;                        // FitOptions::small
  std::shared_ptr<const IvInfo> iv;         // set for an IV (2SLS) model
  // The fewest clusters of any cluster variable (the G of the reference t(G-1)); 0 unclustered.
  std::int32_t min_clusters() const {
    return n_clusters.empty() ? 0 : *std::min_element(n_clusters.begin(), n_clusters.end());
  }
};

// A standard error that is zero relative to its coefficient's scale: below kZeroSeRel times
// the larger of |estimate| and the homoskedastic SE. The variance estimator then carries no
// information (e.g. two clusters with period effects, or an exact fit), and t, p and the CI are
// not reported (NaN) rather than shown with stars.
constexpr double kZeroSeRel = 1e-10;
bool se_is_zero(double se, double estimate, double se_iid);

// Estimates the model. Consumes the design: X is demeaned in place and y becomes the residuals.
// An IV design (n_endo > 0) goes to fit_iv.
FitResult fit(Design& design, const FitOptions& opts);
// 2SLS with every FE dimension absorbed: coefficients of [endogenous, exogenous], the variance
// sandwich on the fitted regressors and the structural residuals, first stages and diagnostics.
FitResult fit_iv(Design& design, const FitOptions& opts);

// The cluster-robust variance as a signed sum over clusterings (one-way: one term; multiway:
// every intersection of the cluster variables, inclusion-exclusion). weight = sign x G/(G-1) x
// (N-1)/(N-K) under the chosen --multiway-adj; with no cluster variable, one term with each
// observation its own cluster and weight N/(N-K) (HC1).
struct ClusterTerm {
  const Grouping* grouping = nullptr;   // points into the design, or at `owned`
  std::shared_ptr<Grouping> owned;      // an intersection
  double weight = 1.0;
};
std::vector<ClusterTerm> clustering_terms(const std::vector<Grouping>& clusters, MultiwayAdj adj,
                                          double N, double K, bool small = true);

// One row of R b = r from text such as "x1 - 2*x2 = 0.5", over the coefficient names.
struct LinearRestriction {
  std::string text;
  Eigen::VectorXd R;
  double r = 0;
};
std::vector<LinearRestriction> parse_restrictions(const std::string& text,
                                                  const std::vector<std::string>& names);

// The joint Wald statistic F = W / q, W = d' (R V R')^-1 d with d = R b - r (fit --wald, wild
// --joint). InvalidInput naming `what` when R V R' is singular (dependent rows).
double wald_f(const Eigen::VectorXd& diff, const Eigen::MatrixXd& RVR, const std::string& what);

}  // namespace panelboot
