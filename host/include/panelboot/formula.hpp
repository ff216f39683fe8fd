#pragma once
// fixest-style model formulas:  y ~ x1 + x2 + a:b + c*d + i(f) + i(f, ref=v) + i(f, x)
//                                  + I(x^2) + log(x) + l(x, 1) + f(x, 1) [+ 0 | - 1]  | fe1 + fe2^fe3
// With fixed effects there is no intercept; without, "(Intercept)" comes first unless removed.
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
  // Every variable the formula reads.
  std::vector<std::string> variables() const;
  bool uses_panel_functions() const;
};

Formula parse_formula(const std::string& text);

}  // namespace panelboot
