#include "panelboot/design.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <unordered_map>

#include "panelboot/error.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/within.hpp"

namespace panelboot {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
// Rows below which the sample's passes over several columns run on the calling thread.
constexpr std::size_t kMinTeamRows = std::size_t{1} << 16;

// The columns one formula factor (or term) yields over all rows. A plain variable is borrowed
// from the data frame (no copy); computed columns are owned.
struct Block {
  std::vector<std::string> names;
  std::vector<const double*> cols;
  std::vector<std::shared_ptr<std::vector<double>>> owned;
  void add(std::string name, std::vector<double> v) {
    owned.push_back(std::make_shared<std::vector<double>>(std::move(v)));
    names.push_back(std::move(name));
    cols.push_back(owned.back()->data());
  }
  void borrow(std::string name, DoubleSpan v) {
    names.push_back(std::move(name));
    cols.push_back(v.data());
  }
};

// A plain variable reads the data frame's column in place; anything else is evaluated.
void add_expression(Block& b, const std::string& name, const ExprNode& e, const EvalContext& ctx) {
  if (e.kind == ExprNode::Kind::kVariable) b.borrow(name, ctx.df->numeric(e.text));
  else b.add(name, evaluate(e, ctx));
}

std::string number_text(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

Block factor_block(const FormulaFactor& f, const EvalContext& ctx,
                   const std::vector<char>& selected) {
  Block b;
  const DataFrame& df = *ctx.df;
  const std::size_t n = df.n_rows();
  if (!f.dummies) {
    add_expression(b, f.name, *f.expr, ctx);
    return b;
  }
  const Column& c = df.column(f.var);
  // level labels (sorted) present among the selected rows
  std::vector<std::string> labels;
  std::vector<double> key(n, kNaN);  // level index per row
  if (c.is_string()) {
    std::vector<char> present(c.levels.size(), 0);
    for (std::size_t r = 0; r < n; ++r)
      if (selected[r] && c.codes[r] >= 0) present[c.codes[r]] = 1;
    std::vector<std::int32_t> idx;
    for (std::size_t k = 0; k < c.levels.size(); ++k)
      if (present[k]) idx.push_back(static_cast<std::int32_t>(k));
    std::sort(idx.begin(), idx.end(), [&](std::int32_t a, std::int32_t b2) { return c.levels[a] < c.levels[b2]; });
    std::vector<double> pos(c.levels.size(), kNaN);
    for (std::size_t k = 0; k < idx.size(); ++k) {
      pos[idx[k]] = static_cast<double>(k);
      labels.push_back(c.levels[idx[k]]);
    }
    for (std::size_t r = 0; r < n; ++r)
      if (c.codes[r] >= 0) key[r] = pos[c.codes[r]];
  } else {
    const DoubleSpan v = df.numeric(f.var);
    std::vector<double> vals;
    for (std::size_t r = 0; r < n; ++r)
      if (selected[r] && v[r] == v[r]) vals.push_back(v[r]);
    std::sort(vals.begin(), vals.end());
    vals.erase(std::unique(vals.begin(), vals.end()), vals.end());
    if (vals.size() > 10000)
      throw InvalidInput("i(" + f.var + ") would make " + std::to_string(vals.size()) +
                         " dummies; absorb it as a fixed effect after '|' instead");
    for (double x : vals) labels.push_back(number_text(x));
    for (std::size_t r = 0; r < n; ++r) {
      if (v[r] != v[r]) continue;
      auto it = std::lower_bound(vals.begin(), vals.end(), v[r]);
      if (it != vals.end() && *it == v[r]) key[r] = static_cast<double>(it - vals.begin());
    }
  }
  std::ptrdiff_t ref = f.slope ? -1 : 0;  // i(f, x) keeps every level, as fixest does
  if (f.has_ref) {
    ref = -1;
    for (std::size_t k = 0; k < labels.size(); ++k)
      if (labels[k] == f.ref || (!c.is_string() && std::strtod(f.ref.c_str(), nullptr) ==
                                                       std::strtod(labels[k].c_str(), nullptr) &&
                                 !f.ref.empty()))
        ref = static_cast<std::ptrdiff_t>(k);
    if (ref < 0) {
      std::string known;
      for (std::size_t k = 0; k < labels.size() && k < 12; ++k) known += (k ? ", " : "") + labels[k];
      throw InvalidInput("i(" + f.var + ", ref=" + f.ref + "): '" + f.ref + "' is not a level of '" +
                         f.var + "' (levels: " + known + (labels.size() > 12 ? ", ..." : "") + ")");
    }
  }
  if (labels.size() < 2 && !f.slope)
    throw InvalidInput("i(" + f.var + "): '" + f.var + "' has " + std::to_string(labels.size()) +
                       " level(s) in the sample; dummies need at least two");
  std::vector<double> slope;
  if (f.slope) slope = evaluate(*f.slope, ctx);
  for (std::size_t k = 0; k < labels.size(); ++k) {
    if (static_cast<std::ptrdiff_t>(k) == ref) continue;
    std::vector<double> col(n);
    for (std::size_t r = 0; r < n; ++r) {
      if (key[r] != key[r]) col[r] = kNaN;
      else col[r] = key[r] == static_cast<double>(k) ? 1.0 : 0.0;
      if (f.slope) col[r] *= slope[r];
    }
    b.add(f.var + "::" + labels[k] + (f.slope ? ":" + to_string(*f.slope) : ""), std::move(col));
  }
  return b;
}

// Dense codes 0..L-1 over the sample rows, from codes over all rows (-1 = missing).
Grouping densify(const std::string& name, const std::vector<std::int32_t>& raw, std::int32_t n_raw,
                 const std::vector<std::uint32_t>& rows) {
  Grouping g;
  g.name = name;
  g.code.resize(rows.size());
  std::vector<std::int32_t> map(static_cast<std::size_t>(n_raw), -1);
  std::int32_t next = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::int32_t& m = map[raw[rows[i]]];
    if (m < 0) m = next++;
    g.code[i] = m;
  }
  g.n_levels = next;
  return g;
}

std::vector<std::string> split_name(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == '^') {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

}  // namespace

bool nested_in(const Grouping& inner, const Grouping& outer) {
  std::vector<std::int32_t> owner(static_cast<std::size_t>(inner.n_levels), -1);
  for (std::size_t i = 0; i < inner.code.size(); ++i) {
    std::int32_t& o = owner[inner.code[i]];
    if (o < 0) o = outer.code[i];
    else if (o != outer.code[i]) return false;
  }
  return true;
}

namespace {

// The finite range of a grouping variable's values (NaN skipped) and whether every value is a
// whole number; vectorised (the order of a min or max does not matter).
struct ValueRange {
  double lo = INFINITY, hi = -INFINITY;
  bool whole = true;
};

template <class At>
inline __attribute__((always_inline)) ValueRange value_range(std::size_t n, const At& at) {
  double lo = INFINITY, hi = -INFINITY;
  int whole = 1;
#pragma omp simd reduction(min : lo) reduction(max : hi) reduction(& : whole)
  for (std::size_t r = 0; r < n; ++r) {
    const double xv = at(r);
    const bool ok = xv == xv;
    lo = std::min(lo, ok ? xv : INFINITY);
    hi = std::max(hi, ok ? xv : -INFINITY);
    whole &= static_cast<int>(!ok) | static_cast<int>(std::trunc(xv) == xv);
  }
  return {lo, hi, whole != 0};
}

// Eight lanes at a time, as two vectors of four in GCC's vector types (AVX-512, AVX2 or SSE2 code
// per clone; 512-bit vectors would be slower: GCC 12 builds a 512-bit vector compare's result
// lane by lane): a NaN compares false and leaves the bounds as they are; the tail through
// value_range. Lane l takes rows r with r mod 8 = l, and the lanes fold in order.
__attribute__((target_clones("avx512f", "avx2", "default"))) ValueRange double_range(
    const double* x, std::size_t n) {
  typedef double V __attribute__((vector_size(32)));
  typedef std::int64_t M __attribute__((vector_size(32)));
  const V big = V{} + 0x1p52;  // |x| + 2^52 rounds to an integer: exactly |x| when |x| is one
  V lo[2] = {V{} + INFINITY, V{} + INFINITY}, hi[2] = {V{} - INFINITY, V{} - INFINITY};
  M whole[2] = {M{} - 1, M{} - 1};
  const std::size_t n8 = n - n % 8;
  for (std::size_t r = 0; r < n8; r += 8)
    for (int h = 0; h < 2; ++h) {
      V v;
      std::memcpy(&v, x + r + 4 * h, sizeof v);
      lo[h] = v < lo[h] ? v : lo[h];
      hi[h] = v > hi[h] ? v : hi[h];
      const V a = v < 0 ? -v : v;
      whole[h] &= (v != v) | (a >= big) | ((a + big) - big == a);
    }
  ValueRange out = value_range(n - n8, [x, n8](std::size_t r) { return x[n8 + r]; });
  for (int l = 0; l < 8; ++l) {
    out.lo = std::min(out.lo, lo[l / 4][l % 4]);
    out.hi = std::max(out.hi, hi[l / 4][l % 4]);
    out.whole = out.whole && whole[l / 4][l % 4] != 0;
  }
  return out;
}

// A numeric grouping variable's codes, in first-appearance order, written to `code` (n of
// them): whole numbers in a modest range index a table directly, anything else is
// hashed (the codes are the same either way). `at(r)` reads row r as a double (NaN missing); a
// borrowed integer column is read in place through it, giving the codes its doubles would.
template <class At>
std::int64_t numeric_codes(std::size_t n, const At& at, const ValueRange& range,
                           std::vector<std::int32_t>& code) {
  const double lo = range.lo, hi = range.hi;
  const bool whole = range.whole;
  std::int64_t n_levels = 0;
  code.resize(n);
  std::int32_t* out = code.data();
  if (whole && lo <= hi && hi - lo < 4.0 * static_cast<double>(n) + 1024) {
    std::vector<std::int32_t> table(static_cast<std::size_t>(hi - lo) + 1, -1);
    std::int32_t* tab = table.data();
    double last = std::numeric_limits<double>::quiet_NaN();  // a sorted panel's run: no lookup
    std::int32_t last_code = -1;
    for (std::size_t r = 0; r < n; ++r) {
      const double xv = at(r);
      if (xv == last) {
        out[r] = last_code;
        continue;
      }
      if (xv != xv) {
        out[r] = -1;
        continue;
      }
      std::int32_t& t = tab[static_cast<std::size_t>(xv - lo)];
      if (t < 0) t = static_cast<std::int32_t>(n_levels++);
      out[r] = t;
      last = xv;
      last_code = t;
    }
    return n_levels;
  }
  std::unordered_map<double, std::int32_t> map;
  for (std::size_t r = 0; r < n; ++r) {
    const double xv = at(r);
    out[r] = xv != xv ? -1 : map.emplace(xv, static_cast<std::int32_t>(map.size())).first->second;
  }
  return static_cast<std::int64_t>(map.size());
}

// One variable's codes over all rows (-1 missing), in `out` (its storage reused).
void variable_codes(const DataFrame& df, const std::string& var, GroupCodes& out) {
  const std::size_t n = df.n_rows();
  const Column& c = df.column(var);
  if (c.is_string()) {
    out.code = c.codes;
    out.n_levels = static_cast<std::int32_t>(c.levels.size());
  } else if (c.borrowed_int) {
    const std::int64_t* x = c.borrowed_int;
    const auto at = [x](std::size_t r) { return static_cast<double>(x[r]); };
    out.n_levels = static_cast<std::int32_t>(numeric_codes(n, at, value_range(n, at), out.code));
  } else {
    const DoubleSpan x = df.numeric(var);
    const ValueRange vr = double_range(x.data(), n);
    out.n_levels = static_cast<std::int32_t>(numeric_codes(
        n, [x](std::size_t r) { return x[r]; }, vr, out.code));
  }
}

}  // namespace

GroupCodes group_codes(const DataFrame& df, const std::vector<std::string>& vars) {
  GroupCodes out;
  group_codes_into(df, vars, out);
  return out;
}

void group_codes_into(const DataFrame& df, const std::vector<std::string>& vars, GroupCodes& out) {
  variable_codes(df, vars[0], out);
  for (std::size_t v = 1; v < vars.size(); ++v) {
    GroupCodes next;
    variable_codes(df, vars[v], next);
    // combine a^b: re-densify the pairs so codes stay 32-bit
    std::unordered_map<std::int64_t, std::int32_t> pairs;
    for (std::size_t r = 0; r < out.code.size(); ++r) {
      if (out.code[r] < 0 || next.code[r] < 0) {
        out.code[r] = -1;
        continue;
      }
      const std::int64_t key =
          static_cast<std::int64_t>(out.code[r]) * next.n_levels + next.code[r];
      out.code[r] = pairs.emplace(key, static_cast<std::int32_t>(pairs.size())).first->second;
    }
    out.n_levels = static_cast<std::int32_t>(pairs.size());
  }
}

// A stable LSD radix sort on the doubles' bits mapped to an order-preserving unsigned key (-0
// as +0), 11 bits a pass, skipping the passes where every key has the same digit: O(n), where a
// comparison sort of the xthreg example's 7910 rows took 0.45 ms.
std::vector<std::size_t> order_by_value(const double* v, std::size_t n) {
  std::vector<std::uint64_t> key(n), key2(n);
  std::vector<std::size_t> idx(n), idx2(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t b;
    const double x = v[i] == 0.0 ? 0.0 : v[i];
    std::memcpy(&b, &x, sizeof b);
    key[i] = (b >> 63) ? ~b : b | (std::uint64_t{1} << 63);
    idx[i] = i;
  }
  constexpr int kBits = 11, kPasses = 6;  // 6 x 11 >= 64
  constexpr std::size_t kBuckets = std::size_t{1} << kBits;
  std::vector<std::size_t> count(kPasses * kBuckets, 0);
  for (std::size_t i = 0; i < n; ++i)
    for (int ps = 0; ps < kPasses; ++ps) ++count[ps * kBuckets + ((key[i] >> (ps * kBits)) & (kBuckets - 1))];
  for (int ps = 0; ps < kPasses; ++ps) {
    std::size_t* c = count.data() + ps * kBuckets;
    if (n == 0 || c[(key[0] >> (ps * kBits)) & (kBuckets - 1)] == n) continue;  // one digit for all
    std::size_t sum = 0;
    for (std::size_t b = 0; b < kBuckets; ++b) {
      const std::size_t t = c[b];
      c[b] = sum;
      sum += t;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t at = c[(key[i] >> (ps * kBits)) & (kBuckets - 1)]++;
      key2[at] = key[i];
      idx2[at] = idx[i];
    }
    key.swap(key2);
    idx.swap(idx2);
  }
  return idx;
}

std::vector<double> distinct_values(const double* v, const std::vector<std::size_t>& order) {
  std::vector<double> out;
  for (std::size_t k : order)
    if (out.empty() || v[k] != out.back()) out.push_back(v[k]);
  return out;
}

// A model value must be finite and small enough that its square is too (|v| <= kMaxModelValue):
// the sums of squares that the collinearity screen and the variance rest on would overflow
// otherwise, and a column silently dropped or rescaled is a wrong answer. The error names the
// row and, for a variable read from the file, its column.

[[noreturn]] void refuse_model_value(const DataFrame& df, std::size_t r, const std::string& name, double v) {
  std::string at = df.where(r);
  const auto& cols = df.columns;
  for (std::size_t j = 0; j < cols.size(); ++j)
    if (cols[j].name == name) at += ", column " + std::to_string(j + 1);
  const std::string what = std::isinf(v) ? "is infinite" : "is too large: its square overflows double precision "
                                                           "(|x| > 1e154)";
  throw InvalidInput("value " + number_text(v) + " of '" + name + "' at " + at + " " + what +
                     "; rescale the variable or mark the value missing");
}

void check_model_values(const DataFrame& df, const std::vector<char>& keep, const std::string& name, const double* v) {
  for (std::size_t r = 0; r < keep.size(); ++r)
    if (keep[r] && std::fabs(v[r]) > kMaxModelValue) refuse_model_value(df, r, name, v[r]);
}

namespace {

// Lags and leads need the panel index, built only then (duplicate pairs are an error there).
std::unique_ptr<PanelIndex> panel_if_needed(const DataFrame& df, const Formula& fm, const SampleOptions& opts,
                                            const ExprNode* where_expr) {
  if (!fm.uses_panel_functions() && !(where_expr && has_panel_call(*where_expr))) return nullptr;
  if (opts.panel_id.empty())
    throw InvalidInput("formula '" + fm.text + "' (or --where) uses lags or leads; name the panel with --panel id,time");
  return std::make_unique<PanelIndex>(df, opts.panel_id, opts.panel_time);
}

// The rows --where keeps (all without it), counting the others.
std::vector<char> rows_where(const DataFrame& df, const ExprNode* where_expr, const PanelIndex* panel,
                             const SampleOptions& opts, Design& d) {
  std::vector<char> keep(df.n_rows(), 1);
  if (opts.row_mask)
    for (std::size_t r = 0; r < keep.size(); ++r) keep[r] = (*opts.row_mask)[r] != 0;
  if (where_expr) {
    const EvalContext wctx{&df, panel, "--where '" + opts.where + "'"};
    const std::vector<double> m = evaluate(*where_expr, wctx);
    for (std::size_t r = 0; r < keep.size(); ++r) keep[r] = keep[r] && (m[r] == m[r] && m[r] != 0);
  }
  for (std::size_t r = 0; r < keep.size(); ++r) d.n_dropped_where += !keep[r];
  return keep;
}

// The columns of one term over all rows: its factors' columns multiplied out.
Block term_block(const FormulaTerm& t, const EvalContext& ctx, const std::vector<char>& keep) {
  const std::size_t n = keep.size();
  Block acc;
  for (std::size_t k = 0; k < t.factors.size(); ++k) {
    Block b = factor_block(t.factors[k], ctx, keep);
    if (k == 0) {
      acc = std::move(b);
      continue;
    }
    // the same bound as one i() (a term of several i() made their product: 3^10 columns hung)
    if (acc.cols.size() * b.cols.size() > 10000)
      throw InvalidInput("term '" + t.name +
                         "' would make over 10000 columns; absorb it as a fixed effect after '|' instead (a^b)");
    Block prod;
    for (std::size_t a = 0; a < acc.cols.size(); ++a)
      for (std::size_t c = 0; c < b.cols.size(); ++c) {
        std::vector<double> col(n);
        for (std::size_t r = 0; r < n; ++r) col[r] = acc.cols[a][r] * b.cols[c][r];
        prod.add(acc.names[a] + ":" + b.names[c], std::move(col));
      }
    acc = std::move(prod);
  }
  return acc;
}

// The columns of a list of terms appended to xb, each name once; a name already in `others`
// (another role of an IV model) is an error naming it. Returns how many were appended.
std::size_t append_terms(const std::vector<FormulaTerm>& terms, const EvalContext& ctx, const std::vector<char>& keep,
                         Block& xb, std::size_t others, const char* role) {
  std::size_t added = 0;
  for (const FormulaTerm& t : terms) {
    const Block acc = term_block(t, ctx, keep);
    for (std::size_t a = 0; a < acc.cols.size(); ++a) {
      const auto at = std::find(xb.names.begin(), xb.names.end(), acc.names[a]);
      if (at != xb.names.end() && static_cast<std::size_t>(at - xb.names.begin()) < others)
        throw InvalidInput(ctx.what + ": column '" + acc.names[a] + "' is " + role +
                           " and also appears earlier in the model; give each variable one role");
      if (at != xb.names.end()) continue;
      xb.names.push_back(acc.names[a]);
      xb.cols.push_back(acc.cols[a]);
      ++added;
    }
    // the term's columns kept alive once (not once per column: columns^2 pointers)
    xb.owned.insert(xb.owned.end(), acc.owned.begin(), acc.owned.end());
  }
  return added;
}

// Every regressor column over all rows, in formula order, each name once; for an IV model the
// endogenous columns, then the excluded instruments, follow the exogenous ones.
Block regressor_block(const Formula& fm, const EvalContext& ctx, const std::vector<char>& keep, Design& d) {
  Block xb;
  if (fm.intercept) {
    xb.add("(Intercept)", std::vector<double>(keep.size(), 1.0));
    d.intercept = true;
  }
  append_terms(fm.terms, ctx, keep, xb, 0, "exogenous");
  if (fm.is_iv()) {
    const std::size_t n_exo = xb.names.size();
    d.n_endo = append_terms(fm.endogenous, ctx, keep, xb, n_exo, "endogenous");
    d.n_inst = append_terms(fm.instruments, ctx, keep, xb, n_exo + d.n_endo, "an instrument");
  }
  d.x_names = xb.names;
  return xb;
}

// The groupings over all rows (codes -1 where missing): FE, clusters, extra, time.
struct RawGroupings {
  std::vector<GroupCodes> fe, cluster, extra;
  GroupCodes time;
};

// The groupings over all rows, each distinct variable list coded once (the unit as FE and as
// cluster), the lists in parallel; an error is the first list's, as on one thread.
RawGroupings raw_groupings(const DataFrame& df, const Formula& fm, const SampleOptions& opts) {
  std::vector<std::vector<std::string>> lists;
  auto list_of = [&lists](const std::vector<std::string>& vars) {
    const auto at = std::find(lists.begin(), lists.end(), vars);
    if (at != lists.end()) return static_cast<std::size_t>(at - lists.begin());
    lists.push_back(vars);
    return lists.size() - 1;
  };
  std::vector<std::size_t> fe, cluster, extra;
  for (const auto& vars : fm.fe) fe.push_back(list_of(vars));
  for (const auto& c : opts.cluster) cluster.push_back(list_of(split_name(c)));
  for (const auto& c : opts.extra) extra.push_back(list_of(split_name(c)));
  const bool time_named = opts.need_time && !opts.panel_time.empty();
  const std::size_t time = time_named ? list_of({opts.panel_time}) : 0;
  std::vector<GroupCodes> coded(lists.size());
  // the code vectors allocated here, on the calling thread: its heap keeps the pages between fits
  for (GroupCodes& c : coded) c.code.resize(df.n_rows());
  std::vector<std::exception_ptr> failed(lists.size());
  [[maybe_unused]] const bool team = lists.size() > 1 && df.n_rows() >= kMinTeamRows;
#pragma omp parallel for schedule(dynamic, 1) if (team)
  for (std::ptrdiff_t t = 0; t < static_cast<std::ptrdiff_t>(lists.size()); ++t) {
    try {
      group_codes_into(df, lists[static_cast<std::size_t>(t)], coded[static_cast<std::size_t>(t)]);
    } catch (...) {
      failed[static_cast<std::size_t>(t)] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : failed)
    if (e) std::rethrow_exception(e);
  if (opts.need_time && !time_named)
    throw InvalidInput("--vcov dk needs the time dimension; name it with --panel id,time");
  // each list's codes moved to its last use, copied to the others
  std::vector<std::size_t> uses(lists.size(), 0);
  for (const auto* ix : {&fe, &cluster, &extra})
    for (std::size_t t : *ix) ++uses[t];
  if (time_named) ++uses[time];
  auto take = [&](std::size_t t) { return --uses[t] == 0 ? std::move(coded[t]) : coded[t]; };
  RawGroupings g;
  for (std::size_t t : fe) g.fe.push_back(take(t));
  for (std::size_t t : cluster) g.cluster.push_back(take(t));
  for (std::size_t t : extra) g.extra.push_back(take(t));
  if (time_named) g.time = take(time);
  return g;
}

// The variables a row needs, as pointers over all rows, to find missing values.
struct ModelColumns {
  const double* y;
  const std::vector<const double*>& x;
  DoubleSpan w;
  std::size_t n_rows;
};

// Is every value of v finite with |v| <= kMaxModelValue? (branch-free blocks: vectorised)
__attribute__((target_clones("avx512f", "avx2", "default"))) bool all_finite_and_small(
    const double* v, std::size_t n) {
  constexpr std::size_t kBlock = 4096;
  for (std::size_t b = 0; b < n; b += kBlock) {
    int bad = 0;
    for (std::size_t i = b, e = std::min(n, b + kBlock); i < e; ++i)
      bad |= !(std::fabs(v[i]) <= kMaxModelValue);
    if (bad) return false;
  }
  return true;
}

__attribute__((target_clones("avx512f", "avx2", "default"))) bool no_missing_code(
    const std::int32_t* c, std::size_t n) {
  std::int32_t lo = 0;
  for (std::size_t i = 0; i < n; ++i) lo = std::min(lo, c[i]);
  return lo >= 0;
}

// The common case checked column by column, in parallel: no value of the model missing, every
// value finite and in range, every weight positive. Then drop_missing and check_values have
// nothing to find (and skip their row-by-row passes); otherwise they run and say what is wrong.
// Without `columns`, only the grouping codes (a deferred design's y and X are checked later).
bool model_values_clean(const ModelColumns& m, const RawGroupings& g, bool columns = true) {
  std::vector<const double*> cols;
  if (columns) {
    cols.push_back(m.y);
    cols.insert(cols.end(), m.x.begin(), m.x.end());
    if (!m.w.empty()) cols.push_back(m.w.data());
  }
  std::vector<const GroupCodes*> codes;
  for (const auto* gs : {&g.fe, &g.cluster, &g.extra})
    for (const GroupCodes& c : *gs) codes.push_back(&c);
  if (!g.time.code.empty()) codes.push_back(&g.time);
  const std::size_t n_cols = cols.size(), n_tasks = n_cols + codes.size();
  const std::size_t n = m.n_rows;
  int clean = 1;
#pragma omp parallel for schedule(dynamic, 1) reduction(min : clean) if (n >= kMinTeamRows)
  for (std::ptrdiff_t t = 0; t < static_cast<std::ptrdiff_t>(n_tasks); ++t) {
    const std::size_t j = static_cast<std::size_t>(t);
    if (j < n_cols) {
      clean = std::min(clean, all_finite_and_small(cols[j], n) ? 1 : 0);
      continue;
    }
    clean = std::min(clean, no_missing_code(codes[j - n_cols]->code.data(), n) ? 1 : 0);
  }
  if (clean && columns && !m.w.empty()) {
    int positive = 1;
    for (std::size_t i = 0; i < n; ++i) positive &= m.w[i] > 0;
    clean = positive;
  }
  return clean != 0;
}

// Drops the kept rows with a missing value in any variable used, counting them per variable;
// an error when no row is left.
void drop_missing(const DataFrame& df, const Formula& fm, const SampleOptions& opts,
                  const ModelColumns& m, const RawGroupings& g, bool clean, std::vector<char>& keep,
                  Design& d) {
  std::map<std::string, std::size_t> miss;
  std::size_t n_where_kept = clean ? keep.size() - d.n_dropped_where : 0;
  for (std::size_t r = 0; r < keep.size() && !clean; ++r) {
    if (!keep[r]) continue;
    ++n_where_kept;
    bool ok = true;
    auto mark = [&](const std::string& name) {
      ++miss[name];
      ok = false;
    };
    if (m.y[r] != m.y[r]) mark(d.y_name);
    for (std::size_t j = 0; j < m.x.size(); ++j)
      if (m.x[j][r] != m.x[j][r]) mark(d.x_names[j]);
    for (std::size_t k = 0; k < g.fe.size(); ++k)
      if (g.fe[k].code[r] < 0) mark(fm.fe_names[k]);
    for (std::size_t k = 0; k < g.cluster.size(); ++k)
      if (g.cluster[k].code[r] < 0) mark(opts.cluster[k]);
    for (std::size_t k = 0; k < g.extra.size(); ++k)
      if (g.extra[k].code[r] < 0) mark(opts.extra[k]);
    if (!g.time.code.empty() && g.time.code[r] < 0) mark(opts.panel_time);
    if (!m.w.empty() && m.w[r] != m.w[r]) mark(opts.weights);
    if (!ok) {
      keep[r] = 0;
      ++d.n_dropped_missing;
    }
  }
  for (const auto& kv : miss) d.missing_by_variable.push_back(kv);
  if (keep.empty())
    throw InvalidInput(df.in_memory() ? df.source + " has no rows"
                                      : "file '" + df.source + "' has no data rows, only a header");
  if (n_where_kept == 0)
    throw InvalidInput("every row of '" + df.source + "' was dropped by --where '" + opts.where + "'; check the condition");
  if (d.n_dropped_missing == n_where_kept) {
    std::string detail;
    for (const auto& kv : miss) detail += (detail.empty() ? "" : ", ") + kv.first + " " + std::to_string(kv.second);
    throw InvalidInput("every row was dropped for missing values (missing per variable: " + detail +
                       "); check the variables used by formula '" + fm.text + "'");
  }
}

// Finite values whose squares are finite, and positive weights.
void check_values(const DataFrame& df, const SampleOptions& opts, const ModelColumns& m, const std::vector<char>& keep,
                  const Design& d) {
  check_model_values(df, keep, d.y_name, m.y);
  for (std::size_t j = 0; j < m.x.size(); ++j) check_model_values(df, keep, d.x_names[j], m.x[j]);
  if (m.w.empty()) return;
  check_model_values(df, keep, opts.weights, m.w.data());
  for (std::size_t r = 0; r < keep.size(); ++r)
    if (keep[r] && !(m.w[r] > 0))
      throw InvalidInput("--weights " + opts.weights + ": weight " + number_text(m.w[r]) + " at " + df.where(r) +
                         " is not positive; regression weights must be > 0 (exclude such rows with --where)");
}

// The kept rows of each level.
std::vector<std::uint32_t> kept_rows_per_level(const GroupCodes& g, const std::vector<char>& keep) {
  std::vector<std::uint32_t> count(static_cast<std::size_t>(g.n_levels), 0);
  const std::int32_t* code = g.code.data();
  if (std::find(keep.begin(), keep.end(), 0) != keep.end()) {
    for (std::size_t r = 0; r < keep.size(); ++r)
      if (keep[r]) ++count[static_cast<std::size_t>(code[r])];
    return count;
  }
  return rows_per_level(code, keep.size(), g.n_levels);
}

// Singletons, iteratively (a drop can make new singletons in another dimension).
void drop_singletons(const std::vector<GroupCodes>& fe, std::vector<char>& keep, Design& d) {
  bool changed = true;
  while (changed) {
    changed = false;
    // the counts of every dimension at once, one a thread
    std::vector<std::vector<std::uint32_t>> counts(fe.size());
    [[maybe_unused]] const bool team = fe.size() > 1 && keep.size() >= kMinTeamRows;
#pragma omp parallel for schedule(dynamic, 1) if (team)
    for (std::ptrdiff_t k = 0; k < static_cast<std::ptrdiff_t>(fe.size()); ++k)
      counts[static_cast<std::size_t>(k)] =
          kept_rows_per_level(fe[static_cast<std::size_t>(k)], keep);
    for (std::size_t k = 0; k < fe.size(); ++k) {
      const GroupCodes& raw = fe[k];
      if (k > 0 && changed) counts[k] = kept_rows_per_level(raw, keep);  // rows dropped since
      const std::vector<std::uint32_t>& count = counts[k];
      if (std::find(count.begin(), count.end(), 1u) == count.end()) continue;  // no singleton
      for (std::size_t r = 0; r < keep.size(); ++r)
        if (keep[r] && count[raw.code[r]] == 1) {
          keep[r] = 0;
          ++d.n_singletons;
          changed = true;
        }
    }
  }
}

// The groupings compacted to the sample, each all-rows code vector released as soon as it is
// (when no row was dropped the codes are already dense and move over without a copy).
void compact_groupings(const Formula& fm, const SampleOptions& opts, RawGroupings& g, bool all_rows, Design& d) {
  auto compact = [&](const std::string& name, GroupCodes& raw) {
    Grouping out;
    if (all_rows) {
      out.name = name;
      out.code = std::move(raw.code);
      out.n_levels = raw.n_levels;
    } else {
      out = densify(name, raw.code, raw.n_levels, d.rows);
    }
    std::vector<std::int32_t>().swap(raw.code);
    return out;
  };
  for (std::size_t k = 0; k < g.fe.size(); ++k) d.fe.push_back(compact(fm.fe_names[k], g.fe[k]));
  for (std::size_t k = 0; k < g.cluster.size(); ++k) d.clusters.push_back(compact(opts.cluster[k], g.cluster[k]));
  for (std::size_t k = 0; k < g.extra.size(); ++k) d.extra.push_back(compact(opts.extra[k], g.extra[k]));
}

// Whether y and X stay in the frame when every row is kept (SampleOptions::defer_columns).
bool defers(const SampleOptions& opts) {
  return opts.defer_columns && opts.weights.empty() && opts.where.empty() && !opts.row_mask;
}

// Every row's y and X copied whole, each value written once.
void copy_whole_columns(const std::vector<const double*>& cols, Design& d) {
  reserve_unwritten(d.y, d.n_obs);
  d.y.insert(d.y.end(), cols[0], cols[0] + d.n_obs);
  reserve_unwritten(d.X, d.n_obs * d.n_reg);
  for (std::size_t j = 1; j < cols.size(); ++j) d.X.insert(d.X.end(), cols[j], cols[j] + d.n_obs);
}

// y, X and the weights copied to the sample's rows, or (SampleOptions::defer_columns, every
// row, no weights) left where they are, with the evaluated columns they are among.
void compact_columns(const ModelColumns& m, const SampleOptions& opts,
                     std::vector<std::shared_ptr<std::vector<double>>> owned, Design& d) {
  d.n_reg = m.x.size();
  if (d.rows.empty()) {
    std::vector<const double*> cols{m.y};
    cols.insert(cols.end(), m.x.begin(), m.x.end());
    if (defers(opts)) {
      d.source = std::make_shared<Design::Source>();
      d.source->cols = std::move(cols);
      d.source->owned = std::move(owned);
      return;
    }
    copy_whole_columns(cols, d);
    if (!m.w.empty()) d.w.assign(m.w.begin(), m.w.end());
    return;
  }
  d.y.resize(d.n_obs);
  for (std::size_t i = 0; i < d.n_obs; ++i) d.y[i] = m.y[d.rows[i]];
  d.X.resize(d.n_obs * d.n_reg);
  for (std::size_t j = 0; j < d.n_reg; ++j) {
    double* dst = d.X.data() + j * d.n_obs;
    for (std::size_t i = 0; i < d.n_obs; ++i) dst[i] = m.x[j][d.rows[i]];
  }
  if (!m.w.empty()) {
    d.w.resize(d.n_obs);
    for (std::size_t i = 0; i < d.n_obs; ++i) d.w[i] = m.w[d.rows[i]];
  }
}

// Time codes in increasing time order (Driscoll-Kraay lags follow calendar order).
void time_codes(const DataFrame& df, const std::string& panel_time, Design& d) {
  const DoubleSpan t = df.numeric(panel_time);
  std::vector<double> tv;
  if (d.rows.empty()) tv.assign(t.begin(), t.end());
  for (std::uint32_t r : d.rows) tv.push_back(t[r]);
  const std::vector<double> vals = distinct_values(tv.data(), order_by_value(tv.data(), tv.size()));
  d.time.name = panel_time;
  d.time.n_levels = static_cast<std::int32_t>(vals.size());
  d.time.code.resize(d.n_obs);
  for (std::size_t i = 0; i < d.n_obs; ++i)
    d.time.code[i] =
        static_cast<std::int32_t>(std::lower_bound(vals.begin(), vals.end(), tv[i]) - vals.begin());
}

// The sample's row numbers (the identity kept empty when every row is in it).
void take_rows(std::vector<char>& keep, Design& d) {
  const std::size_t n_kept = static_cast<std::size_t>(std::count(keep.begin(), keep.end(), 1));
  if (n_kept < keep.size()) {
    d.rows.reserve(n_kept);
    for (std::size_t r = 0; r < keep.size(); ++r)
      if (keep[r]) d.rows.push_back(static_cast<std::uint32_t>(r));
  }
  d.n_obs = n_kept;
  std::vector<char>().swap(keep);
  if (d.n_obs == 0)
    throw InvalidInput("no observations left after dropping " + std::to_string(d.n_singletons) +
                       " singletons; use --keep-singletons or check the fixed effects");
}

}  // namespace

void take_columns(Design& d) {
  if (!d.columns_pending()) return;
  const std::vector<const double*>& cols = d.source->cols;
  int clean = 1;
#pragma omp parallel for schedule(dynamic, 1) reduction(min : clean) if (d.n_obs >= kMinTeamRows)
  for (std::ptrdiff_t j = 0; j < static_cast<std::ptrdiff_t>(cols.size()); ++j)
    clean =
        std::min(clean, all_finite_and_small(cols[static_cast<std::size_t>(j)], d.n_obs) ? 1 : 0);
  if (!clean) {
    d = d.source->rebuild();
    return;
  }
  copy_whole_columns(cols, d);
  d.source.reset();
}

Design build_design(const DataFrame& df, const Formula& fm, const SampleOptions& opts) {
  Design d;
  d.formula = fm.text;
  d.data_source = df.source;
  d.y_name = fm.lhs_name;
  d.n_input = df.n_rows();
  ExprPtr where_expr;
  if (!opts.where.empty()) where_expr = parse_expression(opts.where, "--where '" + opts.where + "'");
  const std::unique_ptr<PanelIndex> panel = panel_if_needed(df, fm, opts, where_expr.get());
  std::vector<char> keep = rows_where(df, where_expr.get(), panel.get(), opts, d);
  const EvalContext ctx{&df, panel.get(), "formula '" + fm.text + "'"};
  Block yb;
  add_expression(yb, fm.lhs_name, *fm.lhs, ctx);
  const Block xb = regressor_block(fm, ctx, keep, d);
  RawGroupings groups = raw_groupings(df, fm, opts);
  const ModelColumns m{yb.cols[0], xb.cols,
                       opts.weights.empty() ? DoubleSpan() : df.numeric(opts.weights), df.n_rows()};
  // A deferred design's y and X are checked by the pass that first reads them (fit's, or
  // take_columns'); unclean codes check them here, row by row, as ever.
  const bool clean = model_values_clean(m, groups, !defers(opts));
  drop_missing(df, fm, opts, m, groups, clean, keep, d);
  if (!clean) check_values(df, opts, m, keep, d);
  if (!groups.fe.empty() && !opts.keep_singletons) drop_singletons(groups.fe, keep, d);
  if (defers(opts) && clean && d.n_singletons > 0 && !model_values_clean(m, groups)) {
    // singletons dropped before the missing values (or before refusing a value): start again
    // without deferring, before take_rows can report an empty sample for the wrong reason
    SampleOptions plain = opts;
    plain.defer_columns = false;
    return build_design(df, fm, plain);
  }
  take_rows(keep, d);
  const bool all_rows = d.n_obs == d.n_input;
  compact_groupings(fm, opts, groups, all_rows, d);
  std::vector<std::shared_ptr<std::vector<double>>> owned = yb.owned;
  owned.insert(owned.end(), xb.owned.begin(), xb.owned.end());
  compact_columns(m, opts, std::move(owned), d);
  if (d.source) {
    SampleOptions plain = opts;
    plain.defer_columns = false;
    d.source->rebuild = [&df, fm, plain] { return build_design(df, fm, plain); };
  }
  if (!groups.time.code.empty()) time_codes(df, opts.panel_time, d);
  if (const Column* s = df.find("simulated")) {
    d.simulated = !s->is_string();
    for (std::size_t i = 0; i < d.n_obs && d.simulated; ++i)
      d.simulated = s->value(all_rows ? i : d.rows[i]) == 1.0;
  }
  return d;
}

}  // namespace panelboot
