#pragma once
// `panelboot replicate`: the whole study of ../shared/paper/ (baseline, lag, robustness, splits,
// mediation, IV, threshold, and an audit of the paper's own tables) composed from the engines
// (fit, wild, power, threshold), never from the command line. run_study returns one results tree
// (results.json); the report's Markdown, LaTeX, console summary and figures are rendered from it.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "panelboot/audit.hpp"
#include "panelboot/backend.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/design.hpp"
#include "panelboot/estimate.hpp"
#include "panelboot/kernels/wild_weights.hpp"

namespace panelboot {

// ---- the study's data ----

// --map study=user,...: the study's variable names (newqua, rgzn, ..., province, year, region)
// and the user's columns that hold them. InvalidInput on a malformed item or a repeated name.
using VariableMap = std::vector<std::pair<std::string, std::string>>;
VariableMap parse_variable_map(const std::string& text);
// Renames each mapped user column to its study name (a column already called by the study name is
// replaced). InvalidInput naming the user's column when it is not in the data.
void apply_variable_map(DataFrame& df, const VariableMap& map);

// Stata's _pctile (the default definition, as winsor2 calls it): with the n values sorted,
// i = n p / 100; an integer i gives the mean of the i-th and (i+1)-th values, otherwise the
// ceil(i)-th. NaN values are left out; NaN when none is left.
double stata_percentile(std::vector<double> values, double p);
// Winsorizes v in place at winsor2's cut points (the lo-th and hi-th percentiles over the
// non-missing values); returns the cuts.
std::pair<double, double> winsorize(std::vector<double>& v, double lo = 1, double hi = 99);

// The first principal component of `vars` on the rows where all of them are present: each
// variable z-scored over those rows (SD with n - 1), PC1 from the SVD of the z matrix, the score
// scaled to unit variance and its sign chosen so that it correlates positively with `orient`
// (PC1's sign is arbitrary). score is NaN on the other rows.
struct PrincipalComponent {
  std::vector<std::string> vars;
  std::vector<double> loadings;  // unit length, in the order of vars
  double explained = 0;          // share of the total (standardized) variance
  double corr_with_orient = 0;
  std::size_t n_used = 0;
  std::vector<double> score;
};
PrincipalComponent first_principal_component(const DataFrame& df, const std::vector<std::string>& vars,
                                             const std::string& orient);

// Adds a numeric column (replacing one of the same name).
void set_numeric_column(DataFrame& df, const std::string& name, std::vector<double> values);
// The frame as CSV: numbers with 17 significant digits (they read back bit for bit), text quoted
// when needed, missing values empty.
std::string data_frame_csv(const DataFrame& df);

// ---- mediation (Table 9) ----
// Equation a: m on x and controls; equation b: y on x, m and controls; both with the same FE,
// sample and clusters. The indirect effect a*b with its delta-method SE from the cross-equation
// cluster-robust covariance of (a, b) (stacked scores by cluster; each variance exactly the fit's
// clustered one, the covariance with the factor sqrt(m_a m_b)), the Sobel SE (covariance 0)
// beside it, and the wild cluster bootstrap (WCU) percentile interval of a* b*: both equations'
// outcomes rebuilt from their own fit and residuals times the same cluster weight v_g, the
// regressors held fixed (the mediator in equation b too), the residuals scaled by sqrt(m) (each
// equation's small-sample factor, so that Var*(a*) is the reported clustered Var(a)). The within
// transform M is linear and X~'M = X~', so a* = a + sqrt(m_a) sum_g v_g psi_a,g exactly (psi the
// cluster scores of a's row of the bread, whatever FE are nested in the clusters): no refit.
struct MediationOptions {
  std::string x, m;                 // the treatment (rgzn) and the mediator (tec)
  std::int64_t n_boot = 9999;
  std::uint64_t seed = 20250101;
  kernels::WeightType weight = kernels::WeightType::kRademacher;
  double level = 0.95;
};
struct MediationResult {
  double a = 0, se_a = 0, b = 0, se_b = 0, cov_ab = 0, corr_ab = 0;
  double indirect = 0, se_delta = 0, se_sobel = 0;
  double z_delta = 0, p_delta = 0, ci_delta_low = 0, ci_delta_high = 0;  // N(0,1), as Sobel's test
  double p_sobel = 0;
  double ci_boot_low = 0, ci_boot_high = 0, p_boot = 0;  // percentile interval; p = 2 min(share <= 0, share >= 0)
  std::int64_t n_boot = 0;
  std::int32_t n_clusters = 0;
  std::size_t n_obs = 0;
  std::vector<double> boot_draws;   // test hook: a* b* of every replication (kept when asked)
};
// Fits both designs (consuming them as fit() does) and computes the indirect effect. InvalidInput
// when the designs' samples or clusters differ or x / m is not a coefficient.
MediationResult mediation(Design& eq_a, Design& eq_b, const FitOptions& fo, const MediationOptions& mo,
                          bool keep_draws = false);

// ---- the audit of the published tables (panelboot/audit.hpp) ----
// data/paper_tables.csv, compiled into the program
DataFrame embedded_paper_tables();
extern const char* const kEmbeddedPaperTablesName;

// ---- the study ----
struct StudyOptions {
  std::int64_t B = 9999;             // wild, WRE and mediation bootstraps
  std::int64_t R = 2000;             // power: Monte Carlo replications per group
  std::int64_t wild_B = 399;         // power: each nested wild bootstrap
  std::int64_t threshold_B = 300;    // per threshold test
  std::uint64_t seed = 20250101;
  double level = 0.95;
  bool quick = false;
  std::string instrument;            // the IV section's excluded instrument ("" : l(rgzn,1))
  std::string data_name = "study_data.csv";  // the derived data's file name in the report
  std::ostream* progress = nullptr;  // section lines and the engines' progress
  const Backend* power_backend = nullptr;  // the power study's (null: the study's backend)
  std::uint64_t max_memory = 0;
  const DataFrame* audit_table = nullptr;  // --audit: the table audited (null: the paper's, embedded)
};

// The study's data: the user's (or the embedded) frame with the derived columns added: ai_pc1
// (Table 7's index) and <var>_w (winsorized; Table 7) for each continuous variable present.
struct StudyData {
  DataFrame df;
  nlohmann::json derived;            // what was derived and how (PCA loadings, winsor cut points)
  std::vector<std::string> missing;  // optional variables absent (sections skipped)
};
// InvalidInput naming the first required variable that is missing and the --map that fixes it.
StudyData prepare_study_data(DataFrame df);

// Runs every section; results.json's tree. `backend` runs the replication work.
nlohmann::json run_study(const StudyData& data, const StudyOptions& so, const Backend& backend);

// A figure drawn for the report: its file name and the caption its script gave.
struct StudyFigure {
  std::string file, caption;
};
// The report's files from the tree: report.md (the figures it shows are those `figures` lists,
// with their captions; `figures_note` says why others are missing), tables.tex, and the console
// summary.
std::string study_markdown(const nlohmann::json& results, const std::vector<StudyFigure>& figures,
                           const std::string& figures_note);
std::string study_latex(const nlohmann::json& results);
std::string study_summary(const nlohmann::json& results, const std::string& out_dir);

}  // namespace panelboot
