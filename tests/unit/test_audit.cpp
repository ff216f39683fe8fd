// The audit of the paper's printed tables (host/src/study/audit.cpp): each flag rule on a made-up
// table with one planted case and near misses, the p-values against R, the real
// data/paper_tables.csv, and malformed files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "panelboot/audit.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/distributions.hpp"
#include "panelboot/error.hpp"

using namespace panelboot;

namespace {

const char* const kHeader =
    "kind,table,column,variable,outcome,measure,method,estimate,std_error,stars,t_printed,nobs,"
    "clusters,params,location,value,text\n";

// A coef row: 300 observations, 30 clusters, 40 parameters (t(260), t(29)) unless told.
std::string coef(const std::string& table, const std::string& column, const std::string& variable,
                 const std::string& estimate, const std::string& std_error, int stars,
                 const std::string& outcome = "y", const std::string& measure = "",
                 const std::string& sizes = "300,30,40") {
  return "coef," + table + "," + column + "," + variable + "," + outcome + "," + measure +
         ",two-way fixed effects," + estimate + "," + std_error + "," + std::to_string(stars) +
         ",," + sizes + ",\"" + table + ", Section 1\",,\n";
}

std::string claim(const std::string& table, const std::string& variable, const std::string& value,
                  const std::string& text) {
  return "claim," + table + ",," + variable + ",,,,,,,,,,,Section 2," + value + "," + text + "\n";
}

nlohmann::json audit_text(const std::string& csv, const std::string& name = "made_up.csv") {
  return audit_paper_tables(read_csv_text(csv, name));
}

using FlagKey = std::tuple<std::string, std::string, std::string,
                           std::string>;  // kind, table, column, variable

std::vector<FlagKey> flag_keys(const nlohmann::json& audit) {
  std::vector<FlagKey> keys;
  for (const auto& f : audit.at("flags"))
    keys.emplace_back(f.at("kind"), f.at("table"), f.at("column"), f.at("variable"));
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::vector<FlagKey> sorted(std::vector<FlagKey> v) {
  std::sort(v.begin(), v.end());
  return v;
}

const nlohmann::json& find_row(const nlohmann::json& audit, const std::string& table,
                               const std::string& column, const std::string& variable) {
  for (const auto& r : audit.at("rows"))
    if (r.at("table") == table && r.at("column") == column && r.at("variable") == variable)
      return r;
  ADD_FAILURE() << "no row " << table << " / " << column << " / " << variable;
  static const nlohmann::json none;
  return none;
}

std::string flag_message(const nlohmann::json& audit, const std::string& kind) {
  for (const auto& f : audit.at("flags"))
    if (f.at("kind") == kind) return f.at("message");
  return "";
}

// One planted case of each flag kind (plus an intercept with N(0,1)-only stars, exempt).
std::string planted_table() {
  return std::string(kHeader) +
         // se_swapped: neither cell's stars fit; both fit once the standard errors are exchanged
         // (1 / 0.45 = 2.22 -> 2 stars, 1.5 / 1.0 = 1.5 -> none), not once the cells are.
         coef("T1", "A", "x", "1", "1.0", 2) + coef("T1", "B", "x", "1.5", "0.45", 0) +
         // stars_mismatch: t = 1 printed with 2 stars.
         coef("T1", "A", "z", "0.1", "0.1", 2) +
         // stars_reference: t = 2.02, 2 stars under N(0,1) and t(260), 1 under t(29).
         coef("T1", "A", "w", "2.02", "1.0", 2) +
         // the same for an intercept: exempt.
         coef("T1", "B", "Constant", "2.02", "1.0", 2) +
         // magnitude_outlier: estimate and standard error both about 9 times the other columns'.
         coef("T1", "A", "v", "0.010", "0.004", 2) + coef("T1", "B", "v", "0.001", "0.0004", 2) +
         coef("T1", "C", "v", "0.0012", "0.0005", 2) +
         // mediation: a = 0.5, b = 0.2, c = 0.4, a*b/c = 0.25, quoted 0.40.
         coef("T2", "m", "x", "0.5", "0.1", 3, "m") + coef("T2", "y", "m", "0.2", "0.05", 3) +
         coef("T2", "y", "x", "0.4", "0.1", 3) +
         claim("T2", "mediated_share", "0.40", "a=T2|m|x;b=T2|y|m;c=T2|y|x") +
         // decomposition: total 0.45 against direct 0.4 + a*b 0.1 = 0.5 (10% off)
         coef("T2", "total", "x", "0.45", "0.1", 3) +
         claim("T2", "mediation_identity", "", "a=T2|m|x;b=T2|y|m;c=T2|total|x;d=T2|y|x") +
         claim("T1", "method", "", "quantile regression");
}

// Consistent, with near misses of every rule.
std::string consistent_table() {
  return std::string(kHeader) + coef("C1", "A", "x", "0.3", "0.1", 3) +
         coef("C1", "B", "x", "0.25", "0.1", 2) +
         // printed 2 stars: t(29)'s (p = 0.015), not N(0,1)'s (p = 0.009): consistent.
         coef("C1", "A", "q", "2.6", "1.0", 2) +
         // 9 times the others' estimate, but its standard error is typical: a noisy estimate.
         coef("C1", "A", "u", "0.5", "0.6", 0) + coef("C1", "B", "u", "0.05", "0.5", 0) +
         coef("C1", "C", "u", "0.06", "0.4", 0) +
         // 9 times the others' estimate with the same standard error: a larger, precise effect.
         coef("C1", "A", "p", "0.5", "0.05", 3) + coef("C1", "B", "p", "0.05", "0.05", 0) +
         coef("C1", "C", "p", "0.06", "0.05", 0) +
         // 10 times x's estimate and standard error, but measured differently.
         coef("C1", "D", "x", "3.0", "1.0", 3, "y", "index") +
         // intercepts: exempt from magnitude_outlier.
         coef("C1", "A", "Constant", "9.0", "0.5", 3) +
         coef("C1", "B", "Constant", "0.1", "0.1", 0) +
         // 100 times, but another outcome.
         coef("C2", "m", "x", "5.0", "1.0", 3, "m") + coef("C2", "y", "x", "0.05", "0.01", 3) +
         coef("C2", "y", "m", "0.002", "0.0004", 3) +
         // N(0,1)'s stars, clusters and params unknown: no t(G-1) to compare with.
         coef("C3", "A", "x", "2.02", "1.0", 2, "y", "", "233,,") +
         // a*b/c = 5 * 0.002 / 0.05 = 0.2, quoted 0.21 (5% off).
         claim("C2", "mediated_share", "0.21", "a=C2|m|x;b=C2|y|m;c=C2|y|x") +
         // total 0.061 = direct 0.05 + a*b 0.01 within rounding (1.6% off)
         coef("C2", "total", "x", "0.061", "0.01", 3) +
         claim("C2", "mediation_identity", "", "a=C2|m|x;b=C2|y|m;c=C2|total|x;d=C2|y|x") +
         claim("C1", "method", "", " Two-Way Fixed Effects ");
}

void expect_invalid_input(const std::string& csv, const std::vector<std::string>& parts) {
  try {
    audit_text(csv, "bad.csv");
    ADD_FAILURE() << "no InvalidInput for:\n" << csv;
  } catch (const InvalidInput& e) {
    const std::string msg = e.what();
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

}  // namespace

TEST(Audit, FlagsExactlyThePlantedInconsistencies) {
  const auto audit = audit_text(planted_table());
  EXPECT_EQ(flag_keys(audit), sorted({{"se_swapped", "T1", "A / B", "x"},
                                      {"stars_mismatch", "T1", "A", "z"},
                                      {"stars_reference", "T1", "A", "w"},
                                      {"magnitude_outlier", "T1", "A", "v"},
                                      {"share_mismatch", "T2", "", "mediated_share"},
                                      {"decomposition_mismatch", "T2", "", "mediation_identity"},
                                      {"method_mismatch", "T1", "", "method"}}));
  const std::string identity = flag_message(audit, "decomposition_mismatch");
  EXPECT_NE(identity.find("c = 0.45"), std::string::npos) << identity;
  EXPECT_NE(identity.find("which is 0.5."), std::string::npos) << identity;
  EXPECT_NE(flag_message(audit, "se_swapped").find("standard errors are exchanged"),
            std::string::npos);
  const std::string share = flag_message(audit, "share_mismatch");
  EXPECT_NE(share.find("0.4"), std::string::npos) << share;
  EXPECT_NE(share.find("0.2500"), std::string::npos) << share;
  for (const auto& f : audit.at("flags")) {
    EXPECT_FALSE(f.at("location").get<std::string>().empty());
    const std::string m = f.at("message");
    EXPECT_EQ(m.back(), '.') << m;  // one sentence
    EXPECT_EQ(m.find(". "), std::string::npos) << m;
  }
  EXPECT_EQ(audit.at("source"), "made_up.csv");
  EXPECT_EQ(audit.at("rows").size(), 12u);
}

TEST(Audit, ConsistentTableGivesNoFlags) {
  const auto audit = audit_text(consistent_table());
  EXPECT_TRUE(audit.at("flags").empty()) << audit.at("flags").dump(2);
  EXPECT_EQ(find_row(audit, "C1", "A", "q").at("consistent_with"), nlohmann::json({"t_g1"}));
  EXPECT_NE(audit_markdown(audit).find("No inconsistencies found."), std::string::npos);
}

TEST(Audit, SwappedCellsAndUnexplainedPairs) {
  // Table 8's pattern: the stars fit each other's cell, not an exchange of the standard errors
  // (0.00157 / 0.00107 = 1.47 would still carry no star). Two mismatches no exchange explains
  // stay two stars_mismatch flags.
  const std::string csv =
      std::string(kHeader) + coef("S", "A", "x", "0.00157", "0.00149", 3, "y", "", "233,,") +
      coef("S", "B", "x", "0.00307", "0.00107", 0, "y", "", "127,,") +
      coef("S", "A", "z", "1.0", "1.0", 3) + coef("S", "B", "z", "1.0", "1.0", 2);
  const auto audit = audit_text(csv);
  EXPECT_EQ(flag_keys(audit), sorted({{"se_swapped", "S", "A / B", "x"},
                                      {"stars_mismatch", "S", "A", "z"},
                                      {"stars_mismatch", "S", "B", "z"}}));
  EXPECT_NE(flag_message(audit, "se_swapped").find("look exchanged"), std::string::npos);
}

TEST(Audit, ReferencePValuesMatchR) {
  const auto audit = audit_text(planted_table());
  const auto& w = find_row(audit, "T1", "A", "w");  // 2.02 / 1.0, N - K = 260, G - 1 = 29
  EXPECT_NEAR(w.at("t").get<double>(), 2.02, 1e-12);
  // R: 2*pnorm(-2.02); 2*pt(-2.02, 260); 2*pt(-2.02, 29)
  EXPECT_NEAR(w.at("p_normal").get<double>(), 0.0433833875352936, 1e-10);
  EXPECT_NEAR(w.at("p_t_nk").get<double>(), 0.0444089703140616, 1e-10);
  EXPECT_NEAR(w.at("p_t_g1").get<double>(), 0.0527069991995672, 1e-10);
  EXPECT_DOUBLE_EQ(w.at("p_t_g1").get<double>(), t_two_sided_p(2.02, 29));
  EXPECT_EQ(w.at("df_t_nk"), 260);
  EXPECT_EQ(w.at("df_t_g1"), 29);
  EXPECT_EQ(w.at("stars_normal"), 2);
  EXPECT_EQ(w.at("stars_t_nk"), 2);
  EXPECT_EQ(w.at("stars_t_g1"), 1);
  EXPECT_EQ(w.at("stars_printed"), 2);
  EXPECT_EQ(w.at("consistent_with"), nlohmann::json({"normal", "t_nk"}));
}

TEST(Audit, StarsAtTheTenFiveAndOnePercentLines) {
  // N(0,1) only (clusters and params empty): t = 1.64 / 1.65 straddle 10%, 1.95 / 1.97 5%,
  // 2.57 / 2.59 1% (R: 2*pnorm(-1.64) = 0.101, ... 2*pnorm(-2.59) = 0.0096).
  const std::vector<std::pair<std::string, int>> cases = {{"1.64", 0}, {"1.65", 1}, {"1.95", 1},
                                                          {"1.97", 2}, {"2.57", 2}, {"2.59", 3}};
  std::string csv = kHeader;
  for (const auto& c : cases)
    csv += coef("L", "A", "x" + c.first, c.first, "1", c.second, "y", "", "300,,");
  const auto audit = audit_text(csv);
  EXPECT_TRUE(audit.at("flags").empty()) << audit.at("flags").dump(2);
  for (const auto& c : cases) {
    const auto& r = find_row(audit, "L", "A", "x" + c.first);
    EXPECT_EQ(r.at("stars_normal"), c.second) << c.first;
    EXPECT_TRUE(r.at("stars_t_nk").is_null());
    EXPECT_TRUE(r.at("p_t_nk").is_null());
  }
}

TEST(Audit, RealPaperTablesGiveTheVerifiedFlags) {
  const DataFrame df = read_data(PB_SOURCE_DIR "/data/paper_tables.csv");
  const auto audit = audit_paper_tables(df);
  EXPECT_EQ(audit.at("rows").size(), 87u);
  EXPECT_EQ(flag_keys(audit), sorted({{"se_swapped", "Table 8", "High / Average", "rgzn"},
                                      {"stars_reference", "Table 6", "Lagged", "rgzn_{t-1}"},
                                      {"stars_reference", "Table 7", "No municipalities", "fdi"},
                                      {"stars_reference", "Table 8", "East", "rgzn"},
                                      {"stars_reference", "Table 8", "East", "fin"},
                                      {"stars_reference", "Table 8", "Central", "rgzn"},
                                      {"stars_reference", "Table 9", "tec", "rgzn"},
                                      {"stars_reference", "Table 9", "tec", "urban"},
                                      {"magnitude_outlier", "Table 7", "Winsorized", "fdi"},
                                      {"share_mismatch", "Table 9", "", "mediated_share"},
                                      {"decomposition_mismatch", "Table 9", "", "mediation_identity"},
                                      {"method_mismatch", "Table 8", "", "method"}}));
  const std::string identity = flag_message(audit, "decomposition_mismatch");
  EXPECT_NE(identity.find("0.0024"), std::string::npos) << identity;
  const std::string share = flag_message(audit, "share_mismatch");
  EXPECT_NE(share.find("0.245"), std::string::npos) << share;
  EXPECT_NE(share.find("0.0652"), std::string::npos) << share;

  // Table 9's 0.00953 (0.00472) against R: 2*pnorm(-0.00953/0.00472), 2*pt(-0.00953/0.00472, 29).
  const auto& a = find_row(audit, "Table 9", "tec", "rgzn");
  EXPECT_NEAR(a.at("t").get<double>(), 2.019068, 1e-6);
  EXPECT_NEAR(a.at("p_normal").get<double>(), 0.0434801734230419, 1e-10);
  EXPECT_NEAR(a.at("p_t_g1").get<double>(), 0.0528094433297422, 1e-10);
  // High development: number of provinces unknown, so neither t reference.
  const auto& high = find_row(audit, "Table 8", "High", "rgzn");
  EXPECT_TRUE(high.at("p_t_g1").is_null());
  EXPECT_TRUE(high.at("p_t_nk").is_null());
  EXPECT_TRUE(high.at("stars_t_g1").is_null());
  EXPECT_TRUE(high.at("consistent_with").empty());

  // Data entry: Table 5's printed t-statistics agree with estimate / std_error to their rounding.
  int printed_t = 0;
  for (const auto& r : audit.at("rows")) {
    if (r.at("t_printed").is_null()) continue;
    ++printed_t;
    EXPECT_LE(std::fabs(r.at("t").get<double>() - r.at("t_printed").get<double>()), 0.005 + 1e-9)
        << r.at("table") << " " << r.at("column") << " " << r.at("variable");
  }
  EXPECT_EQ(printed_t, 9);
  for (const auto& r : audit.at("rows")) {  // every other row's stars fit some reference
    if (r.at("table") == "Table 8" && (r.at("column") == "High" || r.at("column") == "Average") &&
        r.at("variable") == "rgzn")
      continue;
    EXPECT_FALSE(r.at("consistent_with").empty()) << r.dump();
  }
}

TEST(Audit, RendersMarkdownAndLatex) {
  const auto audit = audit_paper_tables(read_data(PB_SOURCE_DIR "/data/paper_tables.csv"));
  const std::string md = audit_markdown(audit);
  EXPECT_NE(md.find("| Table 8 | High | rgzn | 0.00157 (0.00149) | 3 | 1.05 |"), std::string::npos);
  EXPECT_NE(md.find("- `share_mismatch` Table 9, mediated\\_share (Section 5.2): "),
            std::string::npos);
  EXPECT_NE(md.find("a\\*b/c"), std::string::npos);
  EXPECT_GT(std::count(md.begin(), md.end(), '\n'), 87);
  const std::string tex = audit_latex(audit);
  for (const char* part : {"\\toprule", "\\midrule", "\\bottomrule", "\\begin{itemize}",
                           "\\item \\texttt{se\\_swapped}", "rgzn\\_\\{t-1\\}", "$<$0.001",
                           "\\caption{Audit of Table 8 as printed"})
    EXPECT_NE(tex.find(part), std::string::npos) << part;
  // one table + tabular per printed table (Tables 5 to 9), no longtable
  std::size_t tables = 0;
  for (std::size_t at = tex.find("\\begin{tabular}"); at != std::string::npos;
       at = tex.find("\\begin{tabular}", at + 1))
    ++tables;
  EXPECT_EQ(tables, 5u);
  EXPECT_EQ(tex.find("longtable"), std::string::npos);
}

TEST(Audit, MalformedFilesNameFileLineAndColumn) {
  // A missing column.
  std::string header = kHeader;
  header.replace(header.find("std_error,"), 10, "");
  expect_invalid_input(header + "coef,T,A,x,y,,fe,1,2,,,,,loc,,\n", {"bad.csv", "std_error"});
  // A std_error that is not a number (line 3 of the file, column 9).
  expect_invalid_input(std::string(kHeader) + coef("T", "A", "x", "1", "0.5", 2) +
                           coef("T", "B", "x", "1", "abc", 2) + coef("T", "C", "x", "1", "0.5", 2),
                       {"bad.csv", "line 3", "column 9 (std_error)", "abc"});
  // Stars out of range, an empty estimate, an unknown kind.
  expect_invalid_input(std::string(kHeader) + coef("T", "A", "x", "1", "0.5", 4),
                       {"bad.csv", "line 2", "column 10 (stars)"});
  expect_invalid_input(
      std::string(kHeader) + coef("T", "A", "x", "1", "0.5", 2) + coef("T", "B", "x", "", "0.5", 2),
      {"bad.csv", "line 3", "column 8 (estimate)"});
  expect_invalid_input(std::string(kHeader) + "coeff,T,A,x,y,,fe,1,0.5,2,,,,,loc,,\n",
                       {"bad.csv", "line 2", "column 1 (kind)", "coeff"});
  // A share claim naming a row that is not in the file.
  expect_invalid_input(std::string(kHeader) + coef("T", "A", "x", "1", "0.5", 2) +
                           claim("T", "mediated_share", "0.2", "a=T|A|x;b=T|A|x;c=T|B|x"),
                       {"bad.csv", "line 3", "column 17 (text)", "T|B|x"});
  // A coefficient typed twice.
  expect_invalid_input(std::string(kHeader) + coef("T", "A", "x", "1", "0.5", 2) +
                           coef("T", "A", "x", "1", "0.5", 2),
                       {"bad.csv", "line 3", "line 2"});
}
