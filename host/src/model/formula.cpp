#include "panelboot/formula.hpp"

#include <algorithm>
#include <cctype>

#include "panelboot/error.hpp"
#include "panelboot/text.hpp"

namespace panelboot {
namespace {

struct Piece {
  std::size_t begin, end;  // [begin, end) in the formula text, trimmed
  char sep_before = '+';
};

// Formulas run long; the message's column number points into the part shown.
std::string what_of(const std::string& text) { return "formula '" + printable(text, 200) + "'"; }

[[noreturn]] void fail(const std::string& text, std::size_t pos, const std::string& msg) {
  throw InvalidInput(what_of(text) + ": syntax error at column " + std::to_string(pos + 1) + ": " +
                     msg);
}

void trim(const std::string& s, std::size_t& b, std::size_t& e) {
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
}

// Splits [b, e) at top-level occurrences of any char in seps (outside parentheses and quotes).
std::vector<Piece> split_top(const std::string& s, std::size_t b, std::size_t e,
                             const std::string& seps, bool unary_ok = false) {
  std::vector<Piece> out;
  int depth = 0;
  char quote = 0;
  std::size_t start = b;
  char sep = '+';
  for (std::size_t i = b; i < e; ++i) {
    const char c = s[i];
    if (quote) {
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '"' || c == '\'') quote = c;
    else if (c == '(') ++depth;
    else if (c == ')') {
      if (--depth < 0) fail(s, i, "unmatched ')'");
    } else if (depth == 0 && seps.find(c) != std::string::npos) {
      std::size_t pb = start, pe = i;
      trim(s, pb, pe);
      // a leading sign ("- 1" at the start) is allowed where unary_ok
      if (!(unary_ok && pb == pe && out.empty() && start == b)) out.push_back({pb, pe, sep});
      sep = c;
      start = i + 1;
    }
  }
  if (quote) fail(s, e, "unclosed quote");
  if (depth > 0) fail(s, e, "missing ')'");
  std::size_t pb = start, pe = e;
  trim(s, pb, pe);
  out.push_back({pb, pe, sep});
  return out;
}

bool is_identifier(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) return false;
  return true;
}

FormulaFactor parse_factor(const std::string& s, std::size_t b, std::size_t e) {
  FormulaFactor f;
  f.pos = b;
  if (b == e) fail(s, b, "expected a variable or term here");
  // i(var, ...) : factor dummies
  std::size_t p = b;
  if (s[p] == 'i') {
    std::size_t q = p + 1;
    while (q < e && std::isspace(static_cast<unsigned char>(s[q]))) ++q;
    if (q < e && s[q] == '(') {
      if (s[e - 1] != ')') fail(s, e - 1, "expected ')' to close i(");
      std::vector<Piece> args = split_top(s, q + 1, e - 1, ",");
      f.dummies = true;
      for (std::size_t k = 0; k < args.size(); ++k) {
        const Piece& a = args[k];
        const std::string txt = s.substr(a.begin, a.end - a.begin);
        if (txt.empty()) fail(s, a.begin, "empty argument in i()");
        const std::size_t eq = txt.find('=');
        if (k == 0) {
          if (!is_identifier(txt)) fail(s, a.begin, "i() needs a variable name first, got " + quoted(txt));
          f.var = txt;
        } else if (eq != std::string::npos) {
          std::string key = txt.substr(0, eq), val = txt.substr(eq + 1);
          std::size_t kb = 0, ke = key.size(), vb = 0, ve = val.size();
          trim(key, kb, ke);
          trim(val, vb, ve);
          key = key.substr(kb, ke - kb);
          val = val.substr(vb, ve - vb);
          if (key != "ref") fail(s, a.begin, "unknown i() option " + quoted(key) + " (known: ref)");
          if (val.size() >= 2 && (val[0] == '"' || val[0] == '\'') && val.back() == val[0])
            val = val.substr(1, val.size() - 2);
          if (val.empty()) fail(s, a.begin, "ref= needs a level");
          f.ref = val;
          f.has_ref = true;
        } else if (k == 1 && !f.slope) {
          f.slope = parse_expression(s, what_of(s), a.begin, a.end);
        } else {
          fail(s, a.begin, "unexpected i() argument " + quoted(txt));
        }
      }
      f.name = "i(" + f.var + (f.slope ? "," + to_string(*f.slope) : "") + ")";
      return f;
    }
  }
  f.expr = parse_expression(s, what_of(s), b, e);
  if (f.expr->kind == ExprNode::Kind::kNumber)
    fail(s, b, "a constant is not a regressor (use '+ 0' or '- 1' to drop the intercept)");
  f.name = to_string(*f.expr);
  return f;
}

}  // namespace

namespace {

// The terms of [b, e): '+'-separated, a*b expanded to every subset of its '*'-groups (R's order:
// a, b, a:b), each name once. '0' and '1' set *intercept ('- 1' and '0' remove it); where
// intercept is null (the IV part) they are refused.
void parse_terms(const std::string& text, std::size_t b, std::size_t e, std::vector<FormulaTerm>& terms,
                 bool* intercept, const char* part) {
  for (const Piece& t : split_top(text, b, e, "+-", true)) {
    const std::string tt = text.substr(t.begin, t.end - t.begin);
    if (t.begin == t.end)
      fail(text, t.begin, std::string("expected a term after '") + t.sep_before + "'");
    if (tt == "0" || tt == "1") {
      if (!intercept) fail(text, t.begin, std::string("'") + tt + "' has no place among the " + part);
      if (t.sep_before == '-' || tt == "0") *intercept = false;
      continue;
    }
    if (t.sep_before == '-')
      fail(text, t.begin, "only '- 1' can be removed from a formula; drop the term instead");
    std::vector<Piece> groups = split_top(text, t.begin, t.end, "*");
    std::vector<std::vector<FormulaFactor>> gf;
    for (const Piece& g : groups) {
      std::vector<FormulaFactor> fs;
      for (const Piece& f : split_top(text, g.begin, g.end, ":")) fs.push_back(parse_factor(text, f.begin, f.end));
      gf.push_back(std::move(fs));
    }
    const std::size_t n_g = gf.size();
    if (n_g > 10) fail(text, t.begin, "too many '*' in one term");
    std::vector<unsigned> masks;
    for (unsigned m = 1; m < (1u << n_g); ++m) masks.push_back(m);
    std::stable_sort(masks.begin(), masks.end(), [](unsigned x, unsigned y) {
      return __builtin_popcount(x) < __builtin_popcount(y);
    });
    for (unsigned m : masks) {
      FormulaTerm term;
      for (std::size_t g = 0; g < n_g; ++g)
        if (m & (1u << g)) term.factors.insert(term.factors.end(), gf[g].begin(), gf[g].end());
      for (std::size_t k = 0; k < term.factors.size(); ++k)
        term.name += (k ? ":" : "") + term.factors[k].name;
      const bool dup = std::any_of(terms.begin(), terms.end(),
                                   [&](const FormulaTerm& o) { return o.name == term.name; });
      if (!dup) terms.push_back(std::move(term));
    }
  }
}

// Where the IV part 'endogenous ~ instruments' starts: after the last top-level '|', when that
// part holds a '~' (fixest's syntax); text.size() when there is none.
std::size_t iv_part_start(const std::string& text) {
  const std::vector<Piece> parts = split_top(text, 0, text.size(), "|");
  if (parts.size() < 2) return text.size();
  const Piece& last = parts.back();
  if (split_top(text, last.begin, last.end, "~").size() < 2) return text.size();
  return last.begin;
}

bool has_term(const std::vector<FormulaTerm>& terms, const std::string& name) {
  return std::any_of(terms.begin(), terms.end(), [&](const FormulaTerm& t) { return t.name == name; });
}

// 'endogenous ~ instruments': two non-empty term lists, no name in two roles.
void parse_iv_part(const std::string& text, std::size_t b, Formula& fm) {
  const std::vector<Piece> sides = split_top(text, b, text.size(), "~");
  if (sides.size() != 2) fail(text, b, "the IV part must be 'endogenous ~ instruments' with one '~'");
  if (sides[0].begin == sides[0].end) fail(text, sides[0].begin, "no endogenous regressor before '~' in the IV part");
  if (sides[1].begin == sides[1].end) fail(text, sides[1].begin, "no instrument after '~' in the IV part");
  parse_terms(text, sides[0].begin, sides[0].end, fm.endogenous, nullptr, "endogenous regressors");
  parse_terms(text, sides[1].begin, sides[1].end, fm.instruments, nullptr, "instruments");
  std::vector<std::string> outcome_vars;
  collect_variables(*fm.lhs, outcome_vars);
  for (const auto* list : {&fm.endogenous, &fm.instruments})
    for (const FormulaTerm& t : *list) {
      for (const FormulaFactor& f : t.factors) {
        if (!f.expr || has_panel_call(*f.expr)) continue;  // a lag of the outcome may instrument
        std::vector<std::string> vars;
        collect_variables(*f.expr, vars);
        for (const std::string& v : vars)
          if (std::find(outcome_vars.begin(), outcome_vars.end(), v) != outcome_vars.end())
            throw InvalidInput(what_of(text) + ": '" + t.name + "' uses the outcome '" + v +
                               "' in the IV part; neither an endogenous regressor nor an instrument may be the outcome (its lags l(" +
                               v + ", k) may instrument)");
      }
    }
  for (const FormulaTerm& t : fm.endogenous) {
    if (has_term(fm.terms, t.name))
      throw InvalidInput(what_of(text) + ": '" + t.name + "' is both an exogenous regressor and an endogenous one; list it in one place");
  }
  for (const FormulaTerm& t : fm.instruments) {
    if (has_term(fm.endogenous, t.name))
      throw InvalidInput(what_of(text) + ": '" + t.name + "' is both endogenous and an instrument; an endogenous regressor cannot instrument itself");
    if (has_term(fm.terms, t.name))
      throw InvalidInput(what_of(text) + ": '" + t.name + "' is an exogenous regressor, which instruments itself; list it only before the first '|', not among the excluded instruments");
  }
  if (fm.instruments.size() < fm.endogenous.size())
    throw InvalidInput(what_of(text) + ": " + std::to_string(fm.endogenous.size()) + " endogenous regressors but only " +
                       std::to_string(fm.instruments.size()) + " instrument" + (fm.instruments.size() == 1 ? "" : "s") +
                       "; 2SLS needs at least as many excluded instruments as endogenous regressors");
}

}  // namespace

Formula parse_formula(const std::string& text) {
  Formula fm;
  fm.text = text;
  const std::size_t iv_begin = iv_part_start(text);
  // the model part: everything before the IV part's '|'
  const std::size_t main_end = iv_begin == text.size() ? text.size() : text.rfind('|', iv_begin);
  std::vector<Piece> sides = split_top(text, 0, main_end, "~");
  if (sides.size() != 2)
    throw InvalidInput(what_of(text) + ": " +
                       (sides.size() < 2 ? "needs '~' between the outcome and the regressors "
                                           "(e.g. 'y ~ x1 + x2 | id + year')"
                                         : "has more than one '~': an IV part 'endogenous ~ instruments' comes last, "
                                           "after the fixed effects (y ~ x | fe | d ~ z)"));
  if (sides[0].begin == sides[0].end) fail(text, 0, "the outcome is missing before '~'");
  fm.lhs = parse_expression(text, what_of(text), sides[0].begin, sides[0].end);
  fm.lhs_name = to_string(*fm.lhs);
  std::vector<Piece> parts = split_top(text, sides[1].begin, main_end, "|");
  if (parts.size() > 2)
    fail(text, parts[2].begin - 1, "more than one '|' (the third part, if any, is the IV part 'endogenous ~ instruments')");
  const Piece rhs = parts[0];
  if (rhs.begin == rhs.end) fail(text, rhs.begin, "no regressors after '~' (write '1' for none)");
  parse_terms(text, rhs.begin, rhs.end, fm.terms, &fm.intercept, "regressors");
  if (parts.size() == 2) {
    const Piece fes = parts[1];
    if (fes.begin == fes.end) fail(text, fes.begin, "no fixed effects after '|'");
    for (const Piece& p : split_top(text, fes.begin, fes.end, "+")) {
      if (p.begin == p.end) fail(text, p.begin, "expected a fixed-effect variable after '+'");
      std::vector<std::string> vars;
      std::string name;
      for (const Piece& v : split_top(text, p.begin, p.end, "^")) {
        const std::string var = text.substr(v.begin, v.end - v.begin);
        if (!is_identifier(var))
          fail(text, v.begin, "a fixed effect must be a variable name (or a^b), got " + quoted(var));
        vars.push_back(var);
        name += (name.empty() ? "" : "^") + var;
      }
      fm.fe.push_back(vars);
      fm.fe_names.push_back(name);
    }
    fm.intercept = false;
  }
  if (iv_begin != text.size()) parse_iv_part(text, iv_begin, fm);
  if (fm.terms.empty() && !fm.intercept && fm.endogenous.empty())
    throw InvalidInput(what_of(text) + ": the model has no regressors");
  return fm;
}

std::vector<std::string> Formula::variables() const {
  std::vector<std::string> out;
  collect_variables(*lhs, out);
  for (const auto* list : {&terms, &endogenous, &instruments})
   for (const auto& t : *list)
    for (const auto& f : t.factors) {
      if (f.dummies) {
        if (std::find(out.begin(), out.end(), f.var) == out.end()) out.push_back(f.var);
        if (f.slope) collect_variables(*f.slope, out);
      } else {
        collect_variables(*f.expr, out);
      }
    }
  for (const auto& d : fe)
    for (const auto& v : d)
      if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  return out;
}

bool Formula::uses_panel_functions() const {
  if (has_panel_call(*lhs)) return true;
  for (const auto* list : {&terms, &endogenous, &instruments})
   for (const auto& t : *list)
    for (const auto& f : t.factors)
      if ((f.expr && has_panel_call(*f.expr)) || (f.slope && has_panel_call(*f.slope))) return true;
  return false;
}

void refuse_iv(const Formula& fm, const std::string& command, const std::string& why) {
  if (fm.is_iv())
    throw InvalidInput(command + ": formula '" + printable(fm.text, 200) + "' is an IV model ('... | endogenous ~ instruments'); " + why);
}

}  // namespace panelboot
