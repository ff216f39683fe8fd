#pragma once
// From a data frame and a formula to the estimation sample: the outcome, the regressor matrix
// (column-major, n_obs x n_reg), weights, and the integer codes of every fixed-effect,
// cluster and time dimension, with the count of rows each step dropped.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "panelboot/data_frame.hpp"
#include "panelboot/formula.hpp"
#include "panelboot/memory.hpp"

namespace panelboot {

struct SampleOptions {
  std::string where;                 // --where expression ("" = all rows)
  std::string weights;               // --weights variable ("" = none)
  std::vector<std::string> cluster;  // --cluster variables (may be empty)
  std::string panel_id, panel_time;  // --panel id,time ("" = not given)
  bool keep_singletons = false;
  bool need_time = false;            // Driscoll-Kraay needs the time dimension
  std::vector<std::string> extra;    // further groupings to carry (e.g. bootstrap clusters)
  // Rows outside a subsample (power's split groups), dropped as --where drops rows: 0 = out.
  // Null: every row. Lags and leads still read the whole frame.
  const std::vector<char>* row_mask = nullptr;
  // Without weights, --where or a row mask, and where every row is kept: y and X left where they
  // are (the frame's columns, or the evaluated ones, held by the design: Design::source) for
  // fit() to read once as it demeans them into the design, instead of a copy first; their
  // values are checked on that pass (a missing or out-of-range one: the design rebuilt without
  // deferring, which drops or refuses it as ever). The frame must outlive the design's fit;
  // anything else that reads y or X calls take_columns first.
  bool defer_columns = false;
};

// The indices 0 .. n-1 ordered by v (finite values), ties in index order (a stable sort; -0
// equals +0), in O(n).
std::vector<std::size_t> order_by_value(const double* v, std::size_t n);
// The distinct values of v, increasing, given order = order_by_value(v, n).
std::vector<double> distinct_values(const double* v, const std::vector<std::size_t>& order);

// The largest |value| a model column may hold: its square must be finite (the sums of squares
// the collinearity screen and the variance rest on).
constexpr double kMaxModelValue = 1e154;

// Dense integer codes 0..n_levels-1 of one grouping (FE, cluster, time) on the sample rows.
struct Grouping {
  std::string name;
  std::vector<std::int32_t> code;
  std::int32_t n_levels = 0;
};

struct Design {
  std::string formula;
  std::string y_name;
  std::vector<std::string> x_names;  // "(Intercept)" first when present
  bool intercept = false;
  std::size_t n_obs = 0, n_reg = 0;
  // An IV model's X holds [exogenous | endogenous (n_endo) | excluded instruments (n_inst)].
  std::size_t n_endo = 0, n_inst = 0;
  Values y;               // n_obs
  Values X;               // n_obs x n_reg, column-major
  std::vector<double> w;  // n_obs regression weights, or empty
  std::vector<Grouping> fe;
  std::vector<Grouping> clusters;
  Grouping time;                      // filled when SampleOptions::need_time
  std::vector<Grouping> extra;        // SampleOptions::extra, in order
  std::vector<std::uint32_t> rows;    // sample row -> data frame row (empty: every row, in order)
  std::size_t n_input = 0, n_dropped_where = 0, n_dropped_missing = 0, n_singletons = 0;
  std::vector<std::pair<std::string, std::size_t>> missing_by_variable;
  bool simulated = false;  // the data carry the stand-in marker column `simulated` == 1
  std::string data_source;
  // SampleOptions::defer_columns: y's column then X's, not yet in y and X (empty otherwise),
  // the evaluated columns among them, and the design as a build without deferring makes it
  // (for values found missing or out of range: their values are not checked yet).
  struct Source {
    std::vector<const double*> cols;
    std::vector<std::shared_ptr<std::vector<double>>> owned;
    std::function<Design()> rebuild;
  };
  std::shared_ptr<Source> source;
  bool columns_pending() const { return source != nullptr; }
};

// Where y and X are pending (Design::source): copied in when every value is finite and in
// range, else the design rebuilt without deferring (the rows with a missing value dropped, an
// out-of-range value refused, as any build does). Nothing otherwise.
void take_columns(Design& d);

// Is every level of `inner` inside one level of `outer` (on the sample rows)?
bool nested_in(const Grouping& inner, const Grouping& outer);

Design build_design(const DataFrame& df, const Formula& fm, const SampleOptions& opts);

// Codes of a (possibly multi-variable, a^b) grouping over all rows: 0..n_levels-1, -1 where
// missing.
struct GroupCodes {
  std::vector<std::int32_t> code;
  std::int32_t n_levels = 0;
};
GroupCodes group_codes(const DataFrame& df, const std::vector<std::string>& vars);
// The same into `out`, its code vector's storage reused.
void group_codes_into(const DataFrame& df, const std::vector<std::string>& vars, GroupCodes& out);

}  // namespace panelboot
