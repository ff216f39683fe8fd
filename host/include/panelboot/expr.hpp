#pragma once
// Expressions over data columns, as used by I(...), log(...), l(x, k) in formulas and by
// --where: numbers, "strings", variables, + - * / ^, comparisons (== != < <= > >=), and/or/not
// (also & | !), `x in (a, b, c)`, and the functions log, exp, sqrt, abs, l(x, k), f(x, k).
// Evaluation is vectorized: one double per row, NaN = missing. A comparison with a missing
// operand is missing (R's convention; such rows are dropped by --where).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "panelboot/data_frame.hpp"

namespace panelboot {

struct ExprNode {
  enum class Kind { kNumber, kString, kVariable, kUnary, kBinary, kCall, kIn };
  Kind kind = Kind::kNumber;
  double number = 0;
  std::string text;  // variable name, string literal, operator or function name
  std::vector<std::shared_ptr<ExprNode>> args;
  std::size_t pos = 0;  // 0-based offset in the whole option text, for error messages
};
using ExprPtr = std::shared_ptr<ExprNode>;

// Thrown messages name `what` (e.g. "--where" or "formula 'y ~ x'") and the 1-based column.
ExprPtr parse_expression(const std::string& text, const std::string& what,
                         std::size_t begin = 0, std::size_t end = std::string::npos);

// Row r's position among rows of the same panel unit k periods back (k > 0: lag, k < 0: lead),
// or -1. Built from --panel id,time; duplicate (id, time) pairs are an error.
class PanelIndex {
 public:
  PanelIndex(const DataFrame& df, const std::string& id_var, const std::string& time_var);
  std::vector<std::int64_t> shifted(int k) const;
  const std::string& id_var() const { return id_var_; }
  const std::string& time_var() const { return time_var_; }

 private:
  std::string id_var_, time_var_;
  std::vector<std::int64_t> unit_;  // dense unit code per row (-1 if missing)
  std::vector<std::int64_t> time_;  // integer time per row
  std::vector<bool> ok_;
  std::vector<std::int64_t> sorted_;  // rows sorted by (unit, time)
};

struct EvalContext {
  const DataFrame* df = nullptr;
  const PanelIndex* panel = nullptr;  // needed by l() and f()
  std::string what;                   // where the expression came from, for messages
};

std::vector<double> evaluate(const ExprNode& node, const EvalContext& ctx);
// Variables the expression reads.
void collect_variables(const ExprNode& node, std::vector<std::string>& out);
// True if the expression calls l(), f() (lags and leads).
bool has_panel_call(const ExprNode& node);
// Canonical text (no spaces), used to name formula terms.
std::string to_string(const ExprNode& node);

}  // namespace panelboot
