#include "panelboot/expr.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "panelboot/error.hpp"
#include "panelboot/text.hpp"

namespace panelboot {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Token {
  enum class Type { kNumber, kString, kIdent, kOp, kEnd } type;
  std::string text;
  double number = 0;
  std::size_t pos = 0;
};

// What is being evaluated ("formula '...'", "--where '...'") as messages show it: such texts
// can run long, and the column number points into the part shown.
std::string shown(const std::string& what) { return printable(what, 250); }

[[noreturn]] void syntax_error(const std::string& what, std::size_t pos, const std::string& msg) {
  throw InvalidInput(shown(what) + ": syntax error at column " + std::to_string(pos + 1) + ": " + msg);
}

std::vector<Token> tokenize(const std::string& s, std::size_t begin, std::size_t end,
                            const std::string& what) {
  std::vector<Token> out;
  std::size_t i = begin;
  while (i < end) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    Token t;
    t.pos = i;
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '.' && i + 1 < end && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      std::size_t j = i;
      while (j < end && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.')) ++j;
      if (j < end && (s[j] == 'e' || s[j] == 'E')) {
        std::size_t k = j + 1;
        if (k < end && (s[k] == '+' || s[k] == '-')) ++k;
        if (k < end && std::isdigit(static_cast<unsigned char>(s[k]))) {
          j = k;
          while (j < end && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
        }
      }
      t.type = Token::Type::kNumber;
      t.text = s.substr(i, j - i);
      char* endp = nullptr;
      t.number = std::strtod(t.text.c_str(), &endp);
      if (*endp) syntax_error(what, i, "bad number " + quoted(t.text));
      i = j;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      std::size_t j = i;
      while (j < end && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_' ||
                         s[j] == '.'))
        ++j;
      t.type = Token::Type::kIdent;
      t.text = s.substr(i, j - i);
      i = j;
    } else if (c == '`') {
      std::size_t j = s.find('`', i + 1);
      if (j == std::string::npos || j >= end) syntax_error(what, i, "unclosed backtick");
      t.type = Token::Type::kIdent;
      t.text = s.substr(i + 1, j - i - 1);
      i = j + 1;
    } else if (c == '"' || c == '\'') {
      std::size_t j = s.find(c, i + 1);
      if (j == std::string::npos || j >= end) syntax_error(what, i, "unclosed string literal");
      t.type = Token::Type::kString;
      t.text = s.substr(i + 1, j - i - 1);
      i = j + 1;
    } else {
      static const char* two[] = {"==", "!=", "<=", ">=", "&&", "||", "**"};
      t.type = Token::Type::kOp;
      bool matched = false;
      for (const char* op : two) {
        if (i + 1 < end && s[i] == op[0] && s[i + 1] == op[1]) {
          t.text = op;
          i += 2;
          matched = true;
          break;
        }
      }
      if (!matched) {
        if (std::string("+-*/^()<>,!&|=").find(c) == std::string::npos)
          syntax_error(what, i, "unexpected character " + quoted(std::string(1, c)));
        t.text = std::string(1, c);
        ++i;
      }
      if (t.text == "&&") t.text = "&";
      if (t.text == "||") t.text = "|";
      if (t.text == "**") t.text = "^";
      if (t.text == "=") syntax_error(what, t.pos, "'=' is not a comparison; write '=='");
    }
    out.push_back(t);
  }
  Token e;
  e.type = Token::Type::kEnd;
  e.pos = end;
  out.push_back(e);
  return out;
}

class Parser {
 public:
  Parser(std::vector<Token> toks, std::string what) : t_(std::move(toks)), what_(std::move(what)) {}

  ExprPtr parse_all() {
    ExprPtr e = parse_or();
    if (peek().type != Token::Type::kEnd)
      syntax_error(what_, peek().pos, "unexpected " + quoted(peek().text));
    return e;
  }

 private:
  const Token& peek() const { return t_[i_]; }
  // Nesting is bounded: the parser, evaluate() and the tree's destructor recurse once per level,
  // and a few thousand parentheses ran off the stack. One level of parentheses or of a call's
  // arguments counts 3 (parse_or, parse_not, parse_unary), a unary operator or a power 1 or 2.
  static constexpr int kMaxDepth = 300;
  struct Nesting {
    explicit Nesting(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxDepth) syntax_error(p_.what_, p_.peek().pos, "expression nested too deeply");
    }
    ~Nesting() { --p_.depth_; }
    Parser& p_;
  };
  bool is_op(const char* op) const {
    return peek().type == Token::Type::kOp && peek().text == op;
  }
  bool is_word(const char* w) const {
    return peek().type == Token::Type::kIdent && peek().text == w;
  }
  void expect(const char* op) {
    if (!is_op(op))
      syntax_error(what_, peek().pos,
                   std::string("expected '") + op + "'" +
                       (peek().type == Token::Type::kEnd ? " before the end" : ""));
    ++i_;
  }
  static ExprPtr make(ExprNode::Kind k, std::string text, std::size_t pos,
                      std::vector<ExprPtr> args = {}) {
    auto n = std::make_shared<ExprNode>();
    n->kind = k;
    n->text = std::move(text);
    n->pos = pos;
    n->args = std::move(args);
    return n;
  }
  ExprPtr parse_or() {
    const Nesting nest(*this);
    ExprPtr l = parse_and();
    while (is_op("|") || is_word("or")) {
      const std::size_t p = peek().pos;
      ++i_;
      l = make(ExprNode::Kind::kBinary, "|", p, {l, parse_and()});
    }
    return l;
  }
  ExprPtr parse_and() {
    ExprPtr l = parse_not();
    while (is_op("&") || is_word("and")) {
      const std::size_t p = peek().pos;
      ++i_;
      l = make(ExprNode::Kind::kBinary, "&", p, {l, parse_not()});
    }
    return l;
  }
  ExprPtr parse_not() {
    const Nesting nest(*this);
    if (is_op("!") || is_word("not")) {
      const std::size_t p = peek().pos;
      ++i_;
      return make(ExprNode::Kind::kUnary, "!", p, {parse_not()});
    }
    return parse_cmp();
  }
  ExprPtr parse_cmp() {
    ExprPtr l = parse_add();
    static const char* ops[] = {"==", "!=", "<=", ">=", "<", ">"};
    for (const char* op : ops) {
      if (is_op(op)) {
        const std::size_t p = peek().pos;
        ++i_;
        return make(ExprNode::Kind::kBinary, op, p, {l, parse_add()});
      }
    }
    if (is_word("in")) {
      const std::size_t p = peek().pos;
      ++i_;
      expect("(");
      std::vector<ExprPtr> args{l};
      for (;;) {
        args.push_back(parse_add());
        if (is_op(",")) {
          ++i_;
          continue;
        }
        expect(")");
        break;
      }
      return make(ExprNode::Kind::kIn, "in", p, std::move(args));
    }
    return l;
  }
  ExprPtr parse_add() {
    ExprPtr l = parse_mul();
    while (is_op("+") || is_op("-")) {
      const Token op = peek();
      ++i_;
      l = make(ExprNode::Kind::kBinary, op.text, op.pos, {l, parse_mul()});
    }
    return l;
  }
  ExprPtr parse_mul() {
    ExprPtr l = parse_unary();
    while (is_op("*") || is_op("/")) {
      const Token op = peek();
      ++i_;
      l = make(ExprNode::Kind::kBinary, op.text, op.pos, {l, parse_unary()});
    }
    return l;
  }
  ExprPtr parse_unary() {
    const Nesting nest(*this);
    if (is_op("-") || is_op("+")) {
      const Token op = peek();
      ++i_;
      ExprPtr a = parse_unary();
      if (op.text == "+") return a;
      return make(ExprNode::Kind::kUnary, "-", op.pos, {a});
    }
    return parse_pow();
  }
  ExprPtr parse_pow() {
    ExprPtr base = parse_primary();
    if (is_op("^")) {
      const std::size_t p = peek().pos;
      ++i_;
      return make(ExprNode::Kind::kBinary, "^", p, {base, parse_unary()});
    }
    return base;
  }
  ExprPtr parse_primary() {
    const Token tok = peek();
    switch (tok.type) {
      case Token::Type::kNumber: {
        ++i_;
        auto n = make(ExprNode::Kind::kNumber, tok.text, tok.pos);
        n->number = tok.number;
        return n;
      }
      case Token::Type::kString:
        ++i_;
        return make(ExprNode::Kind::kString, tok.text, tok.pos);
      case Token::Type::kIdent: {
        ++i_;
        if (is_op("(")) {
          ++i_;
          std::vector<ExprPtr> args;
          if (!is_op(")")) {
            for (;;) {
              args.push_back(parse_or());
              if (is_op(",")) {
                ++i_;
                continue;
              }
              break;
            }
          }
          expect(")");
          return make(ExprNode::Kind::kCall, tok.text, tok.pos, std::move(args));
        }
        return make(ExprNode::Kind::kVariable, tok.text, tok.pos);
      }
      case Token::Type::kOp:
        if (tok.text == "(") {
          ++i_;
          ExprPtr e = parse_or();
          expect(")");
          return e;
        }
        syntax_error(what_, tok.pos, "unexpected " + quoted(tok.text));
      case Token::Type::kEnd:
        break;
    }
    syntax_error(what_, tok.pos, "expression ends too early");
  }

  std::vector<Token> t_;
  std::string what_;
  std::size_t i_ = 0;
  int depth_ = 0;
};

// A string literal compared with a text column: the level's code, or -2 if absent.
double level_code(const Column& c, const std::string& s) {
  for (std::size_t k = 0; k < c.levels.size(); ++k)
    if (c.levels[k] == s) return static_cast<double>(k);
  return -2;
}

}  // namespace

ExprPtr parse_expression(const std::string& text, const std::string& what, std::size_t begin,
                         std::size_t end) {
  if (end == std::string::npos) end = text.size();
  Parser p(tokenize(text, begin, end, what), what);
  return p.parse_all();
}

std::string to_string(const ExprNode& n) {
  switch (n.kind) {
    case ExprNode::Kind::kNumber: {
      return n.text;
    }
    case ExprNode::Kind::kString:
      return "\"" + n.text + "\"";
    case ExprNode::Kind::kVariable:
      return n.text;
    case ExprNode::Kind::kUnary:
      return (n.text == "!" ? "!" : "-") + to_string(*n.args[0]);
    case ExprNode::Kind::kBinary: {
      auto wrap = [](const ExprNode& a) {
        const std::string s = to_string(a);
        return a.kind == ExprNode::Kind::kBinary ? "(" + s + ")" : s;
      };
      return wrap(*n.args[0]) + n.text + wrap(*n.args[1]);
    }
    case ExprNode::Kind::kCall:
    case ExprNode::Kind::kIn: {
      std::string s = n.kind == ExprNode::Kind::kIn ? to_string(*n.args[0]) + " in(" : n.text + "(";
      const std::size_t first = n.kind == ExprNode::Kind::kIn ? 1 : 0;
      for (std::size_t k = first; k < n.args.size(); ++k) {
        if (k > first) s += ",";
        s += to_string(*n.args[k]);
      }
      return s + ")";
    }
  }
  return "";
}

bool has_panel_call(const ExprNode& n) {
  if (n.kind == ExprNode::Kind::kCall &&
      (n.text == "l" || n.text == "f" || n.text == "L" || n.text == "F" || n.text == "lag" ||
       n.text == "lead"))
    return true;
  for (const auto& a : n.args)
    if (has_panel_call(*a)) return true;
  return false;
}

void collect_variables(const ExprNode& n, std::vector<std::string>& out) {
  if (n.kind == ExprNode::Kind::kVariable &&
      std::find(out.begin(), out.end(), n.text) == out.end())
    out.push_back(n.text);
  for (const auto& a : n.args) collect_variables(*a, out);
}

namespace {

const Column* text_column(const ExprNode& n, const EvalContext& ctx) {
  if (n.kind != ExprNode::Kind::kVariable) return nullptr;
  const Column& c = ctx.df->column(n.text);
  return c.is_string() ? &c : nullptr;
}

std::vector<double> codes_as_double(const Column& c) {
  std::vector<double> v(c.codes.size());
  for (std::size_t r = 0; r < v.size(); ++r) v[r] = c.codes[r] < 0 ? kNaN : c.codes[r];
  return v;
}

int lag_order(const ExprNode& n, const EvalContext& ctx) {
  if (n.args.size() == 1) return 1;
  if (n.args.size() != 2 || n.args[1]->kind != ExprNode::Kind::kNumber ||
      n.args[1]->number != std::floor(n.args[1]->number) || n.args[1]->number < 0 ||
      n.args[1]->number > std::numeric_limits<int>::max())  // k is cast to int below
    throw InvalidInput(shown(ctx.what) + ": " + printable(n.text) + "(x, k) needs a whole number k >= 0 (column " +
                       std::to_string(n.pos + 1) + ")");
  return static_cast<int>(n.args[1]->number);
}

}  // namespace

namespace {

using K = ExprNode::Kind;

// x in (c1, c2, ...): a text variable against quoted levels, or a number against constants.
std::vector<double> evaluate_in(const ExprNode& n, const EvalContext& ctx) {
  const Column* tc = text_column(*n.args[0], ctx);
  std::vector<double> a = tc ? codes_as_double(*tc) : evaluate(*n.args[0], ctx);
  std::vector<double> vals;
  for (std::size_t k = 1; k < n.args.size(); ++k) {
    const ExprNode& e = *n.args[k];
    if (tc) {
      if (e.kind != K::kString)
        throw InvalidInput(shown(ctx.what) + ": " + quoted(tc->name) + " is text; write its values in quotes");
      vals.push_back(level_code(*tc, e.text));
    } else {
      if (e.kind != K::kNumber && !(e.kind == K::kUnary && e.args[0]->kind == K::kNumber))
        throw InvalidInput(shown(ctx.what) + ": 'in (...)' takes a list of constants (column " +
                           std::to_string(e.pos + 1) + ")");
      // the constant itself, as the kUnary case computes it (not evaluate(e, ctx)[0]: that
      // vector has one value per row, and none when the data have no rows)
      double v = e.kind == K::kNumber ? e.number : e.args[0]->number;
      if (e.kind == K::kUnary) v = e.text == "-" ? -v : (v == 0 ? 1.0 : 0.0);
      vals.push_back(v);
    }
  }
  for (double& v : a) {
    if (v != v) continue;
    v = std::find(vals.begin(), vals.end(), v) != vals.end() ? 1.0 : 0.0;
  }
  return a;
}

// A comparison involving text: a text variable against a quoted value (either side), == or !=.
std::vector<double> compare_text(const ExprNode& n, const EvalContext& ctx, const Column* ta, const Column* tb) {
  const std::string& op = n.text;
  const Column* col = ta ? ta : tb;
  const ExprNode& lit = ta ? *n.args[1] : *n.args[0];
  if (!col || lit.kind != K::kString || (op != "==" && op != "!="))
    throw InvalidInput(shown(ctx.what) + ": at column " + std::to_string(n.pos + 1) +
                       ", text can only be compared for equality (== or !=) between a text "
                       "variable and a quoted value");
  std::vector<double> a = codes_as_double(*col);
  const double code = level_code(*col, lit.text);
  for (double& v : a) {
    if (v != v) continue;
    v = ((v == code) == (op == "==")) ? 1.0 : 0.0;
  }
  return a;
}

// Arithmetic, comparison and logic of two numeric operands (NA-aware; & and | three-valued).
double binary_value(const std::string& op, double x, double y) {
  double v;
  if (op == "&" || op == "|") {
    // three-valued logic: FALSE & NA = FALSE, TRUE | NA = TRUE
    const bool xm = x != x, ym = y != y;
    if (op == "&") {
      if ((!xm && x == 0) || (!ym && y == 0)) v = 0;
      else v = (xm || ym) ? kNaN : 1;
    } else {
      if ((!xm && x != 0) || (!ym && y != 0)) v = 1;
      else v = (xm || ym) ? kNaN : 0;
    }
  } else if (x != x || y != y) {
    v = kNaN;
  } else if (op == "+") v = x + y;
  else if (op == "-") v = x - y;
  else if (op == "*") v = x * y;
  else if (op == "/") v = y == 0 ? kNaN : x / y;
  else if (op == "^") v = std::pow(x, y);
  else if (op == "==") v = x == y;
  else if (op == "!=") v = x != y;
  else if (op == "<") v = x < y;
  else if (op == "<=") v = x <= y;
  else if (op == ">") v = x > y;
  else v = x >= y;
  if (!std::isfinite(v) && v == v) v = kNaN;
  return v;
}

std::vector<double> evaluate_binary(const ExprNode& n, const EvalContext& ctx) {
  const std::string& op = n.text;
  const bool cmp = op == "==" || op == "!=" || op == "<" || op == "<=" || op == ">" || op == ">=";
  const Column* ta = text_column(*n.args[0], ctx);
  const Column* tb = text_column(*n.args[1], ctx);
  if (cmp && (ta || tb || n.args[0]->kind == K::kString || n.args[1]->kind == K::kString))
    return compare_text(n, ctx, ta, tb);
  std::vector<double> a = evaluate(*n.args[0], ctx);
  const std::vector<double> b = evaluate(*n.args[1], ctx);
  for (std::size_t r = 0; r < a.size(); ++r) a[r] = binary_value(op, a[r], b[r]);
  return a;
}

bool is_shift_call(const std::string& f) {
  return f == "l" || f == "f" || f == "L" || f == "F" || f == "lag" || f == "lead";
}

// l(x, k) / f(x, k): the value k periods before / after in the same unit (NA outside).
std::vector<double> evaluate_shift(const ExprNode& n, const EvalContext& ctx) {
  const std::string& f = n.text;
  const std::size_t n_obs = ctx.df->n_rows();
  if (!ctx.panel)
    throw InvalidInput(shown(ctx.what) + ": " + printable(f) + "(...) at column " + std::to_string(n.pos + 1) +
                       " needs the panel structure; add --panel id,time");
  if (n.args.empty())
    throw InvalidInput(shown(ctx.what) + ": " + printable(f) + "() needs a variable");
  int k = lag_order(n, ctx);
  if (f == "f" || f == "F" || f == "lead") k = -k;
  const std::vector<double> x = evaluate(*n.args[0], ctx);
  const std::vector<std::int64_t> idx = ctx.panel->shifted(k);
  std::vector<double> out(n_obs);
  for (std::size_t r = 0; r < n_obs; ++r) out[r] = idx[r] < 0 ? kNaN : x[idx[r]];
  return out;
}

// log, exp, sqrt, abs, log1p of one argument (NA where undefined), and I(expr).
std::vector<double> evaluate_function(const ExprNode& n, const EvalContext& ctx) {
  const std::string& f = n.text;
  if (f == "I") {
    if (n.args.size() != 1) throw InvalidInput(shown(ctx.what) + ": I() takes one expression");
    return evaluate(*n.args[0], ctx);
  }
  if (n.args.size() != 1)
    throw InvalidInput(shown(ctx.what) + ": " + printable(f) + "() takes one argument (column " +
                       std::to_string(n.pos + 1) + ")");
  std::vector<double> a = evaluate(*n.args[0], ctx);
  double (*fn)(double) = nullptr;
  if (f == "log") fn = [](double x) { return x > 0 ? std::log(x) : kNaN; };
  else if (f == "exp") fn = [](double x) { return std::exp(x); };
  else if (f == "sqrt") fn = [](double x) { return x >= 0 ? std::sqrt(x) : kNaN; };
  else if (f == "abs") fn = [](double x) { return std::fabs(x); };
  else if (f == "log1p") fn = [](double x) { return x > -1 ? std::log1p(x) : kNaN; };
  else
    throw InvalidInput(shown(ctx.what) + ": unknown function " + quoted(f) + " at column " +
                       std::to_string(n.pos + 1) +
                       "; known: log, exp, sqrt, abs, log1p, I, l, f, i");
  for (double& v : a) {
    if (v != v) continue;
    v = fn(v);
    if (!std::isfinite(v)) v = kNaN;
  }
  return a;
}

}  // namespace

std::vector<double> evaluate(const ExprNode& n, const EvalContext& ctx) {
  const std::size_t n_obs = ctx.df->n_rows();
  switch (n.kind) {
    case K::kNumber:
      return std::vector<double>(n_obs, n.number);
    case K::kString:
      throw InvalidInput(shown(ctx.what) + ": the text \"" + printable(n.text) + "\" at column " +
                         std::to_string(n.pos + 1) +
                         " can only be compared with a text variable (== or != or in)");
    case K::kVariable:
      return ctx.df->numeric(n.text).to_vector();  // a text or unparsable column raises its own message
    case K::kUnary: {
      std::vector<double> a = evaluate(*n.args[0], ctx);
      for (double& v : a) {
        if (v != v) continue;
        v = n.text == "-" ? -v : (v == 0 ? 1.0 : 0.0);
      }
      return a;
    }
    case K::kIn: return evaluate_in(n, ctx);
    case K::kBinary: return evaluate_binary(n, ctx);
    case K::kCall: return is_shift_call(n.text) ? evaluate_shift(n, ctx) : evaluate_function(n, ctx);
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
PanelIndex::PanelIndex(const DataFrame& df, const std::string& id_var, const std::string& time_var)
    : id_var_(id_var), time_var_(time_var) {
  const std::size_t n_obs = df.n_rows();
  const Column& id = df.column(id_var);
  const DoubleSpan t = df.numeric(time_var);
  unit_.assign(n_obs, -1);
  time_.assign(n_obs, 0);
  ok_.assign(n_obs, false);
  std::unordered_map<double, std::int64_t> codes;
  for (std::size_t r = 0; r < n_obs; ++r) {
    if (id.missing(r) || t[r] != t[r]) continue;
    if (t[r] != std::floor(t[r]))
      throw InvalidInput("--panel: time variable " + quoted(time_var) + " must hold whole numbers; " +
                         df.where(r) + " has " + df.column(time_var).text(r));
    // cast to int64 below, with a lag of up to INT_MAX subtracted: beyond 2^53 that overflows
    if (std::fabs(t[r]) > 9007199254740992.0)
      throw InvalidInput("--panel: time variable " + quoted(time_var) + " holds " +
                         df.column(time_var).text(r) + " at " + df.where(r) +
                         ", beyond the periods panelboot can index (up to 2^53 in magnitude)");
    if (id.is_string()) unit_[r] = id.codes[r];
    else unit_[r] = codes.emplace(id.value(r), static_cast<std::int64_t>(codes.size())).first->second;
    time_[r] = static_cast<std::int64_t>(t[r]);
    ok_[r] = true;
  }
  for (std::size_t r = 0; r < n_obs; ++r)
    if (ok_[r]) sorted_.push_back(static_cast<std::int64_t>(r));
  std::stable_sort(sorted_.begin(), sorted_.end(), [&](std::int64_t a, std::int64_t b) {
    return unit_[a] != unit_[b] ? unit_[a] < unit_[b] : time_[a] < time_[b];
  });
  for (std::size_t k = 1; k < sorted_.size(); ++k) {
    const auto a = sorted_[k - 1], b = sorted_[k];
    if (unit_[a] == unit_[b] && time_[a] == time_[b])
      throw InvalidInput("--panel " + printable(id_var) + "," + printable(time_var) + ": duplicate (" +
                         printable(id_var) + ", " + printable(time_var) + ") pair (" +
                         printable(id.text(a)) + ", " + std::to_string(time_[a]) +
                         ") at " + df.where(a) + " and " + df.row_label(b) +
                         "; lags and panel methods need one row per unit and period");
  }
}

std::vector<std::int64_t> PanelIndex::shifted(int k) const {
  std::vector<std::int64_t> out(unit_.size(), -1);
  // Within each unit (rows sorted by time), find the row whose time is t - k.
  std::size_t begin = 0;
  while (begin < sorted_.size()) {
    std::size_t end = begin;
    while (end < sorted_.size() && unit_[sorted_[end]] == unit_[sorted_[begin]]) ++end;
    for (std::size_t a = begin; a < end; ++a) {
      const std::int64_t want = time_[sorted_[a]] - k;
      // binary search within [begin, end)
      std::size_t lo = begin, hi = end;
      while (lo < hi) {
        const std::size_t mid = (lo + hi) / 2;
        if (time_[sorted_[mid]] < want) lo = mid + 1;
        else hi = mid;
      }
      if (lo < end && time_[sorted_[lo]] == want) out[sorted_[a]] = sorted_[lo];
    }
    begin = end;
  }
  return out;
}

}  // namespace panelboot
