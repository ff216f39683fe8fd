// Audit of a paper's printed regression tables. The file's format is the "paper_tables.csv"
// section of data/README.md: one `coef` row per printed coefficient, one `claim` row per textual
// claim checked.
//
// References. For every coef row, t = estimate / std_error (from the printed, rounded numbers)
// and its two-sided p under N(0,1), t(N-K) (N = nobs, K = params) and t(G-1) (G = clusters);
// stars 3/2/1/0 at p < 0.01/0.05/0.10. A reference whose inputs are empty is not computed. A row
// is "consistent with" each reference whose stars equal the printed stars.
//
// Rules, each generic over the file (none names a particular row):
// - se_swapped: two coef rows of the same table and variable, in different columns, each
//   consistent with no reference, whose printed stars both become consistent when (a) their
//   standard errors are exchanged, or else (b) their whole cells (estimate and standard error;
//   equivalently their stars) are exchanged. One flag per pair (rows paired in file order); the
//   pair's rows then get no stars_mismatch. The kind keeps its contract name; the message says
//   which exchange fits.
// - stars_mismatch: a coef row consistent with no reference and not in such a pair.
// - stars_reference: a coef row whose printed stars are those of N(0,1) but not those of t(G-1):
//   the star depends on the reference. Intercepts (variable Constant or _cons) are exempt: under
//   two-way fixed effects they are only the normalisation of the effects, and no claim rests on
//   their stars (their stars_mismatch is still checked).
// - magnitude_outlier: among the coef rows of one table with the same outcome, measure and
//   variable (intercepts exempt), a row whose |estimate| is >= 5 times the median |estimate| of
//   the other columns AND whose standard error is >= 5 times their median standard error. The
//   estimate moved by an order of magnitude while its t stayed in line with the others': the
//   signature of a variable on another scale (units, a transformation such as winsorizing a
//   heavy-tailed variable, a misplaced decimal), not of a larger effect; the table prints it beside
//   the others without saying so. A large but noisy estimate (standard error typical of the table, as in a small
//   subsample) or a large and precise one (t larger by the same factor) is not flagged.
// - share_mismatch: a mediated_share claim whose value differs from a*b/c of the coef rows it
//   references by more than 10% of a*b/c.
// - decomposition_mismatch: a mediation_identity claim naming the total effect c, the direct
//   effect d and the paths a and b: OLS on one sample with the same controls gives c = d + a*b
//   exactly, so the printed numbers must agree within rounding (5% of |c|).
// - method_mismatch: a method claim whose stated method differs (case and outer blanks aside)
//   from the method of the coef rows of the table it names.
#include "panelboot/audit.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "panelboot/data_frame.hpp"
#include "panelboot/distributions.hpp"
#include "panelboot/error.hpp"
#include "panelboot/report.hpp"
#include "panelboot/text.hpp"
#include "report/format.hpp"

namespace panelboot {
namespace {

using report::num_or_null;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

constexpr double kShareTolerance = 0.10;  // relative
constexpr double kIdentityTolerance = 0.05;  // relative to the total effect
constexpr double kMagnitudeFactor = 5.0;

const char* const kRequiredColumns[] = {"kind",      "table", "column", "variable", "estimate",
                                        "std_error", "stars", "nobs",   "clusters", "params",
                                        "location",  "value", "text"};

// References in the order of the JSON's fields: N(0,1), t(N-K), t(G-1).
enum Ref { kNormal = 0, kTnk = 1, kTg1 = 2 };
const char* const kRefKey[3] = {"normal", "t_nk", "t_g1"};
using Stars = std::array<int, 3>;  // -1: reference not computed

struct CoefRow {
  std::size_t row = 0;  // index in the DataFrame
  std::string table, column, variable, outcome, measure, method, location;
  double estimate = kNaN, std_error = kNaN, t_printed = kNaN;
  int stars = 0;
  double nobs = kNaN, clusters = kNaN, params = kNaN;
  double t = kNaN;
  std::array<double, 3> p{};  // NaN: not computed
  Stars ref_stars{};
};

struct ClaimRow {
  std::size_t row = 0;
  std::string table, column, variable, location, text;
  double value = kNaN;
};

struct Audit {
  std::vector<CoefRow> coefs;
  std::vector<ClaimRow> claims;
  std::vector<AuditFlag> flags;
  std::vector<nlohmann::json> claim_results;
};

// ---------------------------------------------------------------- small helpers

std::string g(double v) { return report::fmt_num("%g", v); }
std::string g3(double v) { return report::fmt_num("%.3g", v); }
std::string fixed2(double v) { return report::fmt_num("%.2f", v); }
std::string fixed3(double v) { return report::fmt_num("%.3f", v); }

std::string lower_trimmed(const std::string& s) {
  std::string out = trimmed(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_intercept(const CoefRow& r) {
  const std::string v = lower_trimmed(r.variable);
  return v == "constant" || v == "_cons";
}

int stars_for(double p) {
  if (!(p == p)) return -1;
  return p < 0.01 ? 3 : p < 0.05 ? 2 : p < 0.10 ? 1 : 0;
}

std::string stars_words(int n) {
  return n == 0   ? std::string("no star")
         : n == 1 ? std::string("1 star")
                  : std::to_string(n) + " stars";
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Degrees of freedom of each reference for a row: infinity for N(0,1), NaN when not computable.
std::array<double, 3> reference_df(const CoefRow& r) {
  return {std::numeric_limits<double>::infinity(), r.nobs - r.params, r.clusters - 1};
}

std::string reference_name(Ref k, const CoefRow& r) {
  if (k == kNormal) return "N(0,1)";
  return "t(" + g(reference_df(r)[k]) + ")";
}

double two_sided_p(double t, double df) {
  if (!(df == df)) return kNaN;
  return std::isinf(df) ? normal_two_sided_p(t) : t_two_sided_p(t, df);
}

// The stars of estimate / std_error under each of the row's references.
Stars stars_of(double estimate, double std_error, const CoefRow& r) {
  const auto df = reference_df(r);
  Stars s{};
  for (int k = 0; k < 3; ++k) s[k] = stars_for(two_sided_p(estimate / std_error, df[k]));
  return s;
}

bool gives(const Stars& s, int printed) {
  return std::find(s.begin(), s.end(), printed) != s.end();
}

bool explained(const CoefRow& r) { return gives(r.ref_stars, r.stars); }

std::string describe_cell(const CoefRow& r) {
  return g(r.estimate) + " (" + g(r.std_error) + "), t = " + fixed2(r.t);
}

// "Table 8, High, rgzn": a row named in a message.
std::string row_name(const CoefRow& r) { return r.table + ", " + r.column + ", " + r.variable; }

// ---------------------------------------------------------------- reading and checking

std::string cell_where(const DataFrame& df, std::size_t row, const std::string& name) {
  std::size_t j = 0;
  while (j < df.columns.size() && df.columns[j].name != name) ++j;
  return df.where(row) + ", column " + std::to_string(j + 1) + " (" + name + ")";
}

void require_columns(const DataFrame& df) {
  for (const char* name : kRequiredColumns) {
    if (df.find(name)) continue;
    std::string msg = "file '" + df.source + "', header: no column " + quoted(name) +
                      "; the paper-tables audit needs kind, table, column, variable, estimate, "
                      "std_error, stars, nobs, clusters, params, location, value, text";
    const std::string near = nearest_name(name, df.names());
    if (!near.empty()) msg += " (is " + quoted(near) + " meant?)";
    throw InvalidInput(msg);
  }
}

// A cell as trimmed text; "" for an absent optional column or a missing value.
std::string text_cell(const DataFrame& df, std::size_t row, const std::string& name) {
  const Column* c = df.find(name);
  return c ? trimmed(c->text(row)) : std::string();
}

// A numeric column (InvalidInput at the first unparsable cell, with its file, line and column);
// an absent optional column reads as all missing.
std::vector<double> numeric_or_missing(const DataFrame& df, const std::string& name) {
  if (!df.find(name)) return std::vector<double>(df.n_rows(), kNaN);
  return df.numeric(name).to_vector();
}

double required_number(const DataFrame& df, const std::vector<double>& col, std::size_t row,
                       const std::string& name, const std::string& why) {
  if (col[row] != col[row]) throw InvalidInput(cell_where(df, row, name) + ": empty; " + why);
  return col[row];
}

// A count that may be empty: NaN, or an integer >= min.
double optional_count(const DataFrame& df, const std::vector<double>& col, std::size_t row,
                      const std::string& name, double min) {
  const double v = col[row];
  if (v != v) return v;
  if (v != std::floor(v) || v < min)
    throw InvalidInput(cell_where(df, row, name) + ": " + g(v) +
                       " is not a whole number >= " + g(min) + "; fix it or leave it empty");
  return v;
}

struct NumericColumns {
  std::vector<double> estimate, std_error, stars, nobs, clusters, params, value, t_printed;
};

NumericColumns read_numeric_columns(const DataFrame& df) {
  NumericColumns n;
  n.estimate = df.numeric("estimate").to_vector();
  n.std_error = df.numeric("std_error").to_vector();
  n.stars = df.numeric("stars").to_vector();
  n.nobs = df.numeric("nobs").to_vector();
  n.clusters = df.numeric("clusters").to_vector();
  n.params = df.numeric("params").to_vector();
  n.value = df.numeric("value").to_vector();
  n.t_printed = numeric_or_missing(df, "t_printed");
  return n;
}

void require_text(const DataFrame& df, std::size_t row, const std::string& name,
                  const std::string& value) {
  if (value.empty())
    throw InvalidInput(cell_where(df, row, name) + ": empty; every row names its " + name);
}

CoefRow read_coef_row(const DataFrame& df, const NumericColumns& n, std::size_t row) {
  CoefRow r;
  r.row = row;
  r.table = text_cell(df, row, "table");
  r.column = text_cell(df, row, "column");
  r.variable = text_cell(df, row, "variable");
  for (const char* name : {"table", "column", "variable"})
    require_text(df, row, name, text_cell(df, row, name));
  r.outcome = text_cell(df, row, "outcome");
  r.measure = text_cell(df, row, "measure");
  r.method = text_cell(df, row, "method");
  r.location = text_cell(df, row, "location");
  r.estimate =
      required_number(df, n.estimate, row, "estimate", "a coef row needs its printed estimate");
  r.std_error = required_number(df, n.std_error, row, "std_error",
                                "a coef row needs its printed standard error");
  if (!(r.std_error > 0))
    throw InvalidInput(cell_where(df, row, "std_error") + ": " + g(r.std_error) +
                       " is not a positive standard error");
  const double stars =
      required_number(df, n.stars, row, "stars", "write 0 for a coefficient without stars");
  if (stars != std::floor(stars) || stars < 0 || stars > 3)
    throw InvalidInput(cell_where(df, row, "stars") + ": " + g(stars) +
                       " is not a number of stars (0, 1, 2 or 3)");
  r.stars = static_cast<int>(stars);
  r.t_printed = n.t_printed[row];
  r.nobs = optional_count(df, n.nobs, row, "nobs", 1);
  r.clusters = optional_count(df, n.clusters, row, "clusters", 2);
  r.params = optional_count(df, n.params, row, "params", 1);
  if (r.params == r.params && r.nobs == r.nobs && r.params >= r.nobs)
    throw InvalidInput(cell_where(df, row, "params") + ": " + g(r.params) +
                       " parameters leave no " + "degrees of freedom with " + g(r.nobs) +
                       " observations");
  return r;
}

ClaimRow read_claim_row(const DataFrame& df, const NumericColumns& n, std::size_t row) {
  ClaimRow c;
  c.row = row;
  c.table = text_cell(df, row, "table");
  c.column = text_cell(df, row, "column");
  c.variable = text_cell(df, row, "variable");
  c.location = text_cell(df, row, "location");
  c.text = text_cell(df, row, "text");
  c.value = n.value[row];
  require_text(df, row, "variable", c.variable);
  require_text(df, row, "text", c.text);
  if (c.variable == "mediated_share") {
    required_number(df, n.value, row, "value", "a mediated_share claim needs the quoted share");
  } else if (c.variable == "mediation_identity") {
  } else if (c.variable == "method") {
    require_text(df, row, "table", c.table);
  } else {
    throw InvalidInput(cell_where(df, row, "variable") + ": unknown claim " + quoted(c.variable) +
                       "; a claim row's variable is mediated_share, mediation_identity or method");
  }
  return c;
}

void reject_duplicates(const DataFrame& df, const std::vector<CoefRow>& coefs) {
  std::map<std::array<std::string, 3>, std::size_t> first;
  for (const CoefRow& r : coefs) {
    const auto inserted =
        first.emplace(std::array<std::string, 3>{r.table, r.column, r.variable}, r.row);
    if (!inserted.second)
      throw InvalidInput(df.where(r.row) + ": " + row_name(r) + " repeats the row at " +
                         df.where(inserted.first->second) + "; type each coefficient once");
  }
}

Audit read_audit_table(const DataFrame& df) {
  require_columns(df);
  const NumericColumns n = read_numeric_columns(df);
  Audit a;
  for (std::size_t row = 0; row < df.n_rows(); ++row) {
    const std::string kind = text_cell(df, row, "kind");
    if (kind == "coef")
      a.coefs.push_back(read_coef_row(df, n, row));
    else if (kind == "claim")
      a.claims.push_back(read_claim_row(df, n, row));
    else
      throw InvalidInput(cell_where(df, row, "kind") + ": " + quoted(kind) +
                         " is neither coef nor claim");
  }
  reject_duplicates(df, a.coefs);
  return a;
}

// ---------------------------------------------------------------- references

void compute_references(CoefRow& r) {
  r.t = r.estimate / r.std_error;
  const auto df = reference_df(r);
  for (int k = 0; k < 3; ++k) r.p[k] = two_sided_p(r.t, df[k]);
  for (int k = 0; k < 3; ++k) r.ref_stars[k] = stars_for(r.p[k]);
}

// ---------------------------------------------------------------- rules

AuditFlag flag_for(const std::string& kind, const CoefRow& r, const std::string& message) {
  return {kind, r.table, r.column, r.variable, r.location, message};
}

// The sentence for a pair whose stars a swap explains, or "" when no swap does.
std::string swap_explanation(const CoefRow& a, const CoefRow& b) {
  const std::string head = a.variable + " is printed with " + stars_words(a.stars) + " in " +
                           a.column + " at " + describe_cell(a) + ", and with " +
                           stars_words(b.stars) + " in " + b.column + " at " + describe_cell(b) +
                           ": no reference gives either, but ";
  if (gives(stars_of(a.estimate, b.std_error, a), a.stars) &&
      gives(stars_of(b.estimate, a.std_error, b), b.stars))
    return head + "both fit once the two standard errors are exchanged (t = " +
           fixed2(a.estimate / b.std_error) + " and " + fixed2(b.estimate / a.std_error) + ").";
  if (gives(b.ref_stars, a.stars) && gives(a.ref_stars, b.stars))
    return head +
           "each column's stars fit the other column's estimate and standard error, so the "
           "two cells (or their stars) look exchanged; exchanging only the standard errors "
           "(t = " +
           fixed2(a.estimate / b.std_error) + " and " + fixed2(b.estimate / a.std_error) +
           ") would not explain them.";
  return "";
}

// se_swapped pairs; marks their rows in `paired`.
void flag_swaps(const std::vector<CoefRow>& coefs, std::vector<char>& paired,
                std::vector<AuditFlag>& flags) {
  for (std::size_t i = 0; i < coefs.size(); ++i) {
    if (paired[i] || explained(coefs[i])) continue;
    for (std::size_t j = i + 1; j < coefs.size(); ++j) {
      const CoefRow& a = coefs[i];
      const CoefRow& b = coefs[j];
      if (paired[j] || explained(b) || a.table != b.table || a.variable != b.variable ||
          a.column == b.column)
        continue;
      const std::string why = swap_explanation(a, b);
      if (why.empty()) continue;
      flags.push_back(
          {"se_swapped", a.table, a.column + " / " + b.column, a.variable, a.location, why});
      paired[i] = paired[j] = 1;
      break;
    }
  }
}

std::string reference_stars_text(const CoefRow& r) {
  std::string s;
  for (int k = 0; k < 3; ++k) {
    if (r.ref_stars[k] < 0) continue;
    if (!s.empty()) s += ", ";
    s += reference_name(static_cast<Ref>(k), r) + " gives " + std::to_string(r.ref_stars[k]);
  }
  return s;
}

void flag_star_mismatches(const std::vector<CoefRow>& coefs, const std::vector<char>& paired,
                          std::vector<AuditFlag>& flags) {
  for (std::size_t i = 0; i < coefs.size(); ++i) {
    const CoefRow& r = coefs[i];
    if (paired[i] || explained(r)) continue;
    flags.push_back(flag_for("stars_mismatch", r,
                             "In " + r.column + ", " + r.variable + "'s " + describe_cell(r) +
                                 ", is printed with " + stars_words(r.stars) +
                                 ", but no reference gives that (" + reference_stars_text(r) +
                                 ")."));
  }
}

void flag_reference_dependence(const std::vector<CoefRow>& coefs, std::vector<AuditFlag>& flags) {
  for (const CoefRow& r : coefs) {
    if (is_intercept(r) || r.ref_stars[kTg1] < 0) continue;
    if (r.stars != r.ref_stars[kNormal] || r.stars == r.ref_stars[kTg1]) continue;
    flags.push_back(flag_for(
        "stars_reference", r,
        "In " + r.column + ", " + r.variable + "'s " + describe_cell(r) + ", carries the " +
            stars_words(r.stars) + " of N(0,1) (p = " + fixed3(r.p[kNormal]) + ") but " +
            reference_name(kTg1, r) + " gives " + stars_words(r.ref_stars[kTg1]) + " (p = " +
            fixed3(r.p[kTg1]) + "), so its stars depend on the reference distribution."));
  }
}

bool same_magnitude_group(const CoefRow& a, const CoefRow& b) {
  return a.table == b.table && a.outcome == b.outcome && a.measure == b.measure &&
         a.variable == b.variable && a.column != b.column;
}

void flag_magnitude_outliers(const std::vector<CoefRow>& coefs, std::vector<AuditFlag>& flags) {
  for (const CoefRow& r : coefs) {
    if (is_intercept(r)) continue;
    std::vector<double> other_estimates, other_errors;
    for (const CoefRow& o : coefs) {
      if (!same_magnitude_group(r, o)) continue;
      other_estimates.push_back(std::fabs(o.estimate));
      other_errors.push_back(o.std_error);
    }
    if (other_estimates.empty()) continue;
    const double typical_estimate = median(other_estimates);
    const double typical_error = median(other_errors);
    if (!(typical_estimate > 0)) continue;
    const double estimate_ratio = std::fabs(r.estimate) / typical_estimate;
    const double error_ratio = r.std_error / typical_error;
    if (estimate_ratio < kMagnitudeFactor || error_ratio < kMagnitudeFactor) continue;
    flags.push_back(flag_for(
        "magnitude_outlier", r,
        "In " + r.column + ", " + r.variable + "'s " + describe_cell(r) + ", is " +
            report::fmt_num("%.1f", estimate_ratio) +
            " times the median absolute estimate of the table's other columns (" +
            g3(typical_estimate) + ") and its standard error " +
            report::fmt_num("%.1f", error_ratio) + " times theirs (" + g3(typical_error) +
            "), so the variable's scale differs in this column (a transformation such as winsorizing a "
            "heavy-tailed variable, or other units) and the coefficient is not comparable with the others "
            "as printed."));
  }
}

const CoefRow* find_coef(const std::vector<CoefRow>& coefs, const std::string& table,
                         const std::string& column, const std::string& variable) {
  for (const CoefRow& r : coefs)
    if (r.table == table && r.column == column && r.variable == variable) return &r;
  return nullptr;
}

// "a=Table 9|tec|rgzn;b=...;c=...": the referenced coef rows, one per letter of `keys`, in that
// order; `form` says how to write them.
std::vector<const CoefRow*> claim_references(const DataFrame& df, const ClaimRow& c, const std::vector<CoefRow>& coefs,
                                             const std::string& keys, const std::string& form) {
  std::vector<const CoefRow*> refs(keys.size(), nullptr);
  const std::string where = cell_where(df, c.row, "text");
  std::stringstream items(c.text);
  std::string item;
  while (std::getline(items, item, ';')) {
    const std::size_t eq = item.find('=');
    const std::string key = trimmed(item.substr(0, eq == std::string::npos ? 0 : eq));
    const std::size_t k = key.size() == 1 ? keys.find(key[0]) : std::string::npos;
    if (eq == std::string::npos || k == std::string::npos)
      throw InvalidInput(where + ": " + quoted(item) + " is not a reference " + keys.substr(0, 1) + "= to " +
                         keys.substr(keys.size() - 1) + "=" + form);
    std::vector<std::string> parts;
    std::stringstream fields(item.substr(eq + 1));
    std::string part;
    while (std::getline(fields, part, '|')) parts.push_back(trimmed(part));
    if (parts.size() != 3)
      throw InvalidInput(where + ": " + quoted(item) + " does not name TABLE|COLUMN|VARIABLE" +
                         form);
    const CoefRow* r = find_coef(coefs, parts[0], parts[1], parts[2]);
    if (!r)
      throw InvalidInput(where + ": " + quoted(item) + " names no coef row of the file" + form);
    refs[k] = r;
  }
  for (std::size_t k = 0; k < keys.size(); ++k)
    if (!refs[k])
      throw InvalidInput(where + ": reference " + std::string(1, keys[k]) + "= is missing" + form);
  return refs;
}

std::string ref_text(const char* name, const CoefRow& r) {
  return std::string(name) + " = " + g(r.estimate) + " (" + row_name(r) + ")";
}

void audit_share_claim(const DataFrame& df, const ClaimRow& c, const std::vector<CoefRow>& coefs,
                       Audit& a) {
  const auto refs =
      claim_references(df, c, coefs, "abc", "; write a=TABLE|COLUMN|VARIABLE;b=...;c=... (share = a*b/c)");
  if (refs[2]->estimate == 0)
    throw InvalidInput(cell_where(df, c.row, "text") + ": c (" + row_name(*refs[2]) +
                       ") is 0, so a*b/c is undefined");
  const double share = refs[0]->estimate * refs[1]->estimate / refs[2]->estimate;
  a.claim_results.push_back({{"table", c.table},
                             {"variable", c.variable},
                             {"location", c.location},
                             {"quoted", c.value},
                             {"recomputed", share},
                             {"text", c.text}});
  if (std::fabs(c.value - share) <= kShareTolerance * std::fabs(share)) return;
  a.flags.push_back({"share_mismatch", c.table, c.column, c.variable, c.location,
                     c.location + " quotes a mediated share of " + g(c.value) +
                         ", but a*b/c from " + ref_text("a", *refs[0]) + ", " +
                         ref_text("b", *refs[1]) + " and " + ref_text("c", *refs[2]) + " is " +
                         report::fmt_num("%.4f", share) + "."});
}

void audit_identity_claim(const DataFrame& df, const ClaimRow& c, const std::vector<CoefRow>& coefs, Audit& a) {
  const auto refs = claim_references(df, c, coefs, "abcd",
                                     "; write a=TABLE|COLUMN|VARIABLE;b=...;c=... (the total effect);d=... (the "
                                     "direct effect): c = d + a*b");
  const double implied = refs[3]->estimate + refs[0]->estimate * refs[1]->estimate;
  a.claim_results.push_back({{"table", c.table},
                             {"variable", c.variable},
                             {"location", c.location},
                             {"quoted", refs[2]->estimate},
                             {"recomputed", implied},
                             {"text", c.text}});
  if (std::fabs(refs[2]->estimate - implied) <= kIdentityTolerance * std::fabs(refs[2]->estimate)) return;
  a.flags.push_back({"decomposition_mismatch", c.table, c.column, c.variable, c.location,
                     "OLS on one sample with the same controls gives total = direct + a*b exactly, but the total " +
                         ref_text("c", *refs[2]) + " differs from " + ref_text("d", *refs[3]) + " plus a*b = " +
                         g(refs[0]->estimate) + " x " + g(refs[1]->estimate) + ", which is " +
                         report::fmt_num("%.3g", implied) + "."});
}

void audit_method_claim(const DataFrame& df, const ClaimRow& c, const std::vector<CoefRow>& coefs,
                        Audit& a) {
  std::set<std::string> methods;
  for (const CoefRow& r : coefs)
    if (r.table == c.table) methods.insert(r.method);
  if (methods.empty())
    throw InvalidInput(cell_where(df, c.row, "table") + ": the method claim names " +
                       quoted(c.table) + ", which has no coef rows");
  std::string listed;
  bool differs = false;
  for (const std::string& m : methods) {
    listed += (listed.empty() ? "" : " and ") + (m.empty() ? std::string("(method not typed)") : m);
    differs = differs || lower_trimmed(m) != lower_trimmed(c.text);
  }
  a.claim_results.push_back({{"table", c.table},
                             {"variable", c.variable},
                             {"location", c.location},
                             {"quoted", c.text},
                             {"recomputed", listed},
                             {"text", c.text}});
  if (!differs) return;
  a.flags.push_back({"method_mismatch", c.table, c.column, c.variable, c.location,
                     c.location + " says " + c.table + " was estimated by " + c.text +
                         ", but the table's columns are " + listed + " estimates."});
}

void audit_claims(const DataFrame& df, Audit& a) {
  for (const ClaimRow& c : a.claims) {
    if (c.variable == "mediated_share")
      audit_share_claim(df, c, a.coefs, a);
    else if (c.variable == "mediation_identity")
      audit_identity_claim(df, c, a.coefs, a);
    else
      audit_method_claim(df, c, a.coefs, a);
  }
}

// ---------------------------------------------------------------- JSON

nlohmann::json stars_or_null(int s) { return s < 0 ? nlohmann::json() : nlohmann::json(s); }

// A count (nobs, clusters, params, degrees of freedom) as a JSON integer, null when missing.
nlohmann::json count_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(static_cast<long long>(v)) : nlohmann::json();
}

nlohmann::json row_json(const CoefRow& r) {
  nlohmann::json consistent = nlohmann::json::array();
  for (int k = 0; k < 3; ++k)
    if (r.ref_stars[k] == r.stars) consistent.push_back(kRefKey[k]);
  const auto df = reference_df(r);
  return {{"table", r.table},
          {"column", r.column},
          {"variable", r.variable},
          {"outcome", r.outcome},
          {"measure", r.measure},
          {"location", r.location},
          {"intercept", is_intercept(r)},
          {"estimate", r.estimate},
          {"std_error", r.std_error},
          {"stars_printed", r.stars},
          {"t", r.t},
          {"t_printed", num_or_null(r.t_printed)},
          {"nobs", count_or_null(r.nobs)},
          {"clusters", count_or_null(r.clusters)},
          {"params", count_or_null(r.params)},
          {"df_t_nk", count_or_null(df[kTnk])},
          {"df_t_g1", count_or_null(df[kTg1])},
          {"p_normal", num_or_null(r.p[kNormal])},
          {"p_t_nk", num_or_null(r.p[kTnk])},
          {"p_t_g1", num_or_null(r.p[kTg1])},
          {"stars_normal", stars_or_null(r.ref_stars[kNormal])},
          {"stars_t_nk", stars_or_null(r.ref_stars[kTnk])},
          {"stars_t_g1", stars_or_null(r.ref_stars[kTg1])},
          {"consistent_with", consistent}};
}

nlohmann::json flag_json(const AuditFlag& f) {
  return {{"kind", f.kind},         {"table", f.table},       {"column", f.column},
          {"variable", f.variable}, {"location", f.location}, {"message", f.message}};
}

// ---------------------------------------------------------------- rendering helpers

std::string jtext(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

double jnum(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : kNaN;
}

std::string p_text(double p) {
  if (!(p == p)) return "";
  return p < 0.001 ? "<0.001" : report::fmt_num("%.3f", p);
}

std::string latex_p(double p) {
  const std::string s = p_text(p);
  return s.rfind('<', 0) == 0 ? "$<$" + s.substr(1) : s;
}

std::string star_digit(const nlohmann::json& row, const char* key) {
  const double s = jnum(row, key);
  return s == s ? report::fmt_num("%.0f", s) : "-";
}

std::string reference_stars_cell(const nlohmann::json& row) {
  return star_digit(row, "stars_normal") + " / " + star_digit(row, "stars_t_nk") + " / " +
         star_digit(row, "stars_t_g1");
}

std::string consistent_cell(const nlohmann::json& row) {
  std::string s;
  for (const auto& k : row.at("consistent_with"))
    s += (s.empty() ? "" : ", ") + k.get<std::string>();
  return s.empty() ? "none" : s;
}

std::string estimate_cell(const nlohmann::json& row) {
  return g(jnum(row, "estimate")) + " (" + g(jnum(row, "std_error")) + ")";
}

// Text in Markdown: md_cell's escaping plus * and _, which would start emphasis ("a*b/c").
std::string md_text(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '_') out += '\\';
    out += c;
  }
  return md_cell(out);
}

std::string flag_place(const nlohmann::json& f) {
  std::string s = jtext(f, "table");
  for (const char* key : {"column", "variable"})
    if (!jtext(f, key).empty()) s += ", " + jtext(f, key);
  return s;
}

std::string claim_value(const nlohmann::json& c, const char* key) {
  const auto& v = c.at(key);
  return v.is_number() ? report::fmt_num("%.4g", v.get<double>()) : jtext(c, key);
}

// One booktabs table per printed table (plain booktabs, no longtable: the largest, Table 8, has
// 35 rows).
std::string latex_table_start(const nlohmann::json& audit, const std::string& table) {
  return "\\begin{table}[htbp]\n\\centering\n\\small\n\\caption{Audit of " + latex_escape(table) +
         " as printed (" + latex_escape(jtext(audit, "source")) +
         "): stars recomputed from each printed estimate and standard error}\n"
         "\\begin{tabular}{llrrrrrrl}\n\\toprule\n"
         "Column & Variable & Estimate (SE) & Printed & $t$ & $p$ N(0,1) & $p$ $t(N-K)$ & "
         "$p$ $t(G-1)$ & Consistent with \\\\\n\\midrule\n";
}

std::string latex_row(const nlohmann::json& r) {
  return latex_escape(jtext(r, "column")) + " & " + latex_escape(jtext(r, "variable")) + " & " +
         latex_escape(estimate_cell(r)) + " & " + jtext(r, "stars_printed") + " & " +
         fixed2(jnum(r, "t")) + " & " + latex_p(jnum(r, "p_normal")) + " & " +
         latex_p(jnum(r, "p_t_nk")) + " & " + latex_p(jnum(r, "p_t_g1")) + " & " +
         latex_escape(consistent_cell(r)) + " \\\\\n";
}

}  // namespace

nlohmann::json audit_paper_tables(const DataFrame& table) {
  Audit a = read_audit_table(table);
  for (CoefRow& r : a.coefs) compute_references(r);
  std::vector<char> paired(a.coefs.size(), 0);
  flag_swaps(a.coefs, paired, a.flags);
  flag_star_mismatches(a.coefs, paired, a.flags);
  flag_reference_dependence(a.coefs, a.flags);
  flag_magnitude_outliers(a.coefs, a.flags);
  audit_claims(table, a);

  nlohmann::json j;
  j["source"] = table.source;
  j["rows"] = nlohmann::json::array();
  for (const CoefRow& r : a.coefs) j["rows"].push_back(row_json(r));
  j["claims"] = a.claim_results;
  j["flags"] = nlohmann::json::array();
  for (const AuditFlag& f : a.flags) j["flags"].push_back(flag_json(f));
  return j;
}

std::string audit_markdown(const nlohmann::json& audit) {
  std::ostringstream o;
  o << "Audit of the printed tables in `" << md_cell(jtext(audit, "source"))
    << "`: t = estimate / standard error from the printed (rounded) numbers; stars at 10/5/1% "
       "under N(0,1), t(N-K) and t(G-1) (\"-\": not computable, the sample's size or clusters "
       "unknown).\n\n";
  o << "| Table | Column | Variable | Estimate (SE) | Printed stars | t | p N(0,1) | p t(N-K) | "
       "p t(G-1) | Stars N / t(N-K) / t(G-1) | Consistent with |\n"
    << "|---|---|---|---|---:|---:|---:|---:|---:|---|---|\n";
  for (const auto& r : audit.at("rows"))
    o << "| " << md_text(jtext(r, "table")) << " | " << md_text(jtext(r, "column")) << " | "
      << md_text(jtext(r, "variable")) << " | " << estimate_cell(r) << " | "
      << jtext(r, "stars_printed") << " | " << fixed2(jnum(r, "t")) << " | "
      << p_text(jnum(r, "p_normal")) << " | " << p_text(jnum(r, "p_t_nk")) << " | "
      << p_text(jnum(r, "p_t_g1")) << " | " << reference_stars_cell(r) << " | "
      << consistent_cell(r) << " |\n";
  if (audit.contains("claims") && !audit.at("claims").empty()) {
    o << "\n| Claim | Where | About | Quoted | Recomputed |\n|---|---|---|---|---|\n";
    for (const auto& c : audit.at("claims"))
      o << "| " << md_text(jtext(c, "variable")) << " | " << md_text(jtext(c, "location")) << " | "
        << md_text(jtext(c, "table")) << " | " << md_text(claim_value(c, "quoted")) << " | "
        << md_text(claim_value(c, "recomputed")) << " |\n";
  }
  const auto& flags = audit.at("flags");
  o << "\n"
    << (flags.empty() ? std::string("No inconsistencies found.")
                      : "Inconsistencies (" + std::to_string(flags.size()) + "):")
    << "\n\n";
  for (const auto& f : flags)
    o << "- `" << jtext(f, "kind") << "` " << md_text(flag_place(f)) << " ("
      << md_text(jtext(f, "location")) << "): " << md_text(jtext(f, "message")) << "\n";
  return o.str();
}

std::string audit_latex(const nlohmann::json& audit) {
  std::ostringstream o;
  const auto& rows = audit.at("rows");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::string table = jtext(rows[i], "table");
    if (i == 0 || table != jtext(rows[i - 1], "table")) o << latex_table_start(audit, table);
    o << latex_row(rows[i]);
    if (i + 1 == rows.size() || table != jtext(rows[i + 1], "table"))
      o << "\\bottomrule\n\\end{tabular}\n\\end{table}\n\n";
  }
  const auto& flags = audit.at("flags");
  if (flags.empty()) return o.str() + "No inconsistencies found.\n";
  o << "\\begin{itemize}\n";
  for (const auto& f : flags)
    o << "\\item \\texttt{" << latex_escape(jtext(f, "kind")) << "} " << latex_escape(flag_place(f))
      << " (" << latex_escape(jtext(f, "location")) << "): " << latex_escape(jtext(f, "message"))
      << "\n";
  o << "\\end{itemize}\n";
  return o.str();
}

}  // namespace panelboot
