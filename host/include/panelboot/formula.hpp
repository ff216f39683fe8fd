#pragma once
// fixest-style model formulas:  y ~ x1 + x2 + a:b + c*d + i(f) + i(f, ref=v) + i(f, x)
//                                  + I(x^2) + log(x) + l(x, 1) + f(x, 1) [+ 0 | - 1]  | fe1 + fe2^fe3
// With fixed effects there is no intercept; without, "(Intercept)" comes first unless removed.
// Instrumental variables as fixest writes them, the IV part last:
//   y ~ x_exo | fe1 + fe2 | x_endo1 + x_endo2 ~ z1 + z2      y ~ 1 | fe | x ~ z      y ~ x_exo | x ~ z
#include <string>
#include <vector>

#include "panelboot/expr.hpp"

namespace panelboot {

struct FormulaFactor {
  bool dummies = false;   // i(var, ...): one 0/1 column per level but the reference
  ExprPtr expr;           // otherwise: a numeric expression
  std::string var;        // i(): the factor variable
  std::string ref;        // i(): the reference level as written ("" = first level)
  bool has_ref = false;
  ExprPtr slope;          // i(f, x): dummies multiplied by x (then no level is dropped)
  std::string name;       // canonical name
  std::size_t pos = 0;
};

struct FormulaTerm {
  std::vector<FormulaFactor> factors;  // the term is their product (interaction)
  std::string name;
};

struct Formula {
  std::string text;
  ExprPtr lhs;
  std::string lhs_name;
  std::vector<FormulaTerm> terms;
  bool intercept = true;
  std::vector<std::vector<std::string>> fe;  // each FE dimension: its variables (a^b combines)
  std::vector<std::string> fe_names;
  std::vector<FormulaTerm> endogenous;   // the IV part's left side (empty: not an IV model)
  std::vector<FormulaTerm> instruments;  // its right side: the excluded instruments
  bool is_iv() const { return !endogenous.empty(); }
  // Every variable the formula reads.
  std::vector<std::string> variables() const;
  bool uses_panel_functions() const;
};

Formula parse_formula(const std::string& text);

// Commands without an IV form refuse an IV formula: one line naming the command and why.
void refuse_iv(const Formula& fm, const std::string& command, const std::string& why);

}  // namespace panelboot
