#include <algorithm>

#include "helpers.hpp"
#include "panelboot/error.hpp"
#include "panelboot/formula.hpp"

using namespace panelboot;

namespace {
std::vector<std::string> term_names(const Formula& f) {
  std::vector<std::string> out;
  for (const auto& t : f.terms) out.push_back(t.name);
  return out;
}
std::string error_of(const std::string& text) {
  try {
    parse_formula(text);
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Formula, StarExpandsToMainEffectsAndInteraction) {
  const Formula f = parse_formula("y ~ a*b + c:d + log(x) + I(z^2)");
  EXPECT_EQ(term_names(f), (std::vector<std::string>{"a", "b", "a:b", "c:d", "log(x)", "I(z^2)"}));
  EXPECT_TRUE(f.intercept);
  EXPECT_TRUE(f.fe.empty());
}

TEST(Formula, FixedEffectsRemoveTheInterceptAndCombineWithCaret) {
  const Formula f = parse_formula("y ~ x | id + year + region^year");
  EXPECT_FALSE(f.intercept);
  EXPECT_EQ(f.fe_names, (std::vector<std::string>{"id", "year", "region^year"}));
  EXPECT_EQ(f.fe[2], (std::vector<std::string>{"region", "year"}));
}

TEST(Formula, InterceptCanBeDropped) {
  EXPECT_FALSE(parse_formula("y ~ x - 1").intercept);
  EXPECT_FALSE(parse_formula("y ~ 0 + x").intercept);
  EXPECT_TRUE(parse_formula("y ~ 1 + x").intercept);
}

TEST(Formula, FactorDummiesWithReferenceAndSlope) {
  const Formula f = parse_formula("y ~ i(region, ref=\"West\") + i(year, x)");
  ASSERT_EQ(f.terms.size(), 2u);
  EXPECT_TRUE(f.terms[0].factors[0].dummies);
  EXPECT_EQ(f.terms[0].factors[0].ref, "West");
  EXPECT_TRUE(f.terms[1].factors[0].slope != nullptr);
}

TEST(Formula, LagsMarkThePanelAsNeeded) {
  EXPECT_TRUE(parse_formula("y ~ l(x, 1) + x").uses_panel_functions());
  EXPECT_TRUE(parse_formula("y ~ f(x, 2)").uses_panel_functions());
  EXPECT_FALSE(parse_formula("y ~ log(x)").uses_panel_functions());
}

TEST(Formula, SyntaxErrorsNameTheColumn) {
  EXPECT_NE(error_of("y ~ x +").find("column 8"), std::string::npos) << error_of("y ~ x +");
  EXPECT_NE(error_of("y ~ x | ").find("no fixed effects"), std::string::npos);
  EXPECT_NE(error_of("y ~ (x").find("missing ')'"), std::string::npos);
  EXPECT_NE(error_of("y ~ x | a + log(b)").find("must be a variable name"), std::string::npos);
  EXPECT_NE(error_of("y ~ x $ z").find("unexpected character '$'"), std::string::npos);
  EXPECT_NE(error_of("y ~ x - z").find("only '- 1'"), std::string::npos);
}

TEST(Formula, IvPartAsFixestWritesIt) {
  const Formula f = parse_formula("y ~ x1 + x2 | id + year | d1 + d2 ~ z1 + z2 + z3");
  EXPECT_TRUE(f.is_iv());
  EXPECT_EQ(term_names(f), (std::vector<std::string>{"x1", "x2"}));
  EXPECT_EQ(f.fe_names, (std::vector<std::string>{"id", "year"}));
  ASSERT_EQ(f.endogenous.size(), 2u);
  EXPECT_EQ(f.endogenous[1].name, "d2");
  ASSERT_EQ(f.instruments.size(), 3u);
  EXPECT_EQ(f.instruments[2].name, "z3");
  EXPECT_FALSE(f.intercept);
  // no exogenous regressor; no fixed effects (the intercept stays); functions of variables
  const Formula g = parse_formula("y ~ 1 | id | d ~ z");
  EXPECT_TRUE(g.terms.empty());
  EXPECT_EQ(g.endogenous[0].name, "d");
  const Formula h = parse_formula("log(y) ~ x | log(d) ~ log(z) + I(z^2)");
  EXPECT_TRUE(h.fe.empty());
  EXPECT_TRUE(h.intercept);
  EXPECT_EQ(h.endogenous[0].name, "log(d)");
  EXPECT_EQ(h.instruments[1].name, "I(z^2)");
  EXPECT_FALSE(parse_formula("y ~ x | id + year").is_iv());
  const auto vars = f.variables();
  EXPECT_NE(std::find(vars.begin(), vars.end(), "z3"), vars.end());
}

TEST(Formula, IvPartErrorsNameTheProblem) {
  EXPECT_NE(error_of("y ~ x | fe | d ~ ").find("no instrument"), std::string::npos) << error_of("y ~ x | fe | d ~ ");
  EXPECT_NE(error_of("y ~ x | fe |  ~ z").find("no endogenous regressor"), std::string::npos);
  EXPECT_NE(error_of("y ~ x | fe | d ~ z ~ w").find("one '~'"), std::string::npos);
  EXPECT_NE(error_of("y ~ x | fe | d ~ 1 + z").find("'1' has no place among the instruments"), std::string::npos);
  EXPECT_NE(error_of("y ~ x | d + e ~ z").find("2 endogenous regressors but only 1 instrument"), std::string::npos);
  EXPECT_NE(error_of("y ~ x + d | d ~ z").find("'d' is both an exogenous regressor and an endogenous one"),
            std::string::npos);
  EXPECT_NE(error_of("y ~ x | y ~ z").find("uses the outcome 'y' in the IV part"), std::string::npos);
  EXPECT_NE(error_of("y ~ x | d ~ I(2*y) + z").find("uses the outcome 'y'"), std::string::npos);
  EXPECT_EQ(error_of("y ~ x | id | d ~ l(y, 2) + z"), "");  // a lag of the outcome may instrument
  EXPECT_NE(error_of("y ~ x | d ~ z | id").find("comes last"), std::string::npos) << error_of("y ~ x | d ~ z | id");
  EXPECT_NE(error_of("y ~ x | a | b | c").find("more than one '|'"), std::string::npos);
}
