#pragma once
// Audit of a paper's published regression tables (data/paper_tables.csv, described in
// data/README.md): each printed coefficient's stars recomputed from its printed estimate and
// standard error under three reference distributions, and generic consistency rules over the
// whole file (the rules are listed at the top of host/src/study/audit.cpp).
#include <nlohmann/json.hpp>
#include <string>

namespace panelboot {

class DataFrame;

// One inconsistency found. kind: se_swapped, stars_mismatch, stars_reference, share_mismatch,
// magnitude_outlier or method_mismatch; message: one sentence.
struct AuditFlag {
  std::string kind, table, column, variable, location, message;
};

// Reads the table as read_data / read_csv_text give it, checks its columns (a missing column or
// a bad value: InvalidInput naming the file, line and column) and audits it. The JSON (field
// names are a contract):
//   {"source", "rows": [{table, column, variable, location, estimate, std_error, stars_printed,
//     t, p_normal, p_t_nk, p_t_g1, stars_normal, stars_t_nk, stars_t_g1, consistent_with, ...}],
//    "claims": [...], "flags": [{kind, table, column, variable, location, message}]}
// p_t_nk / p_t_g1 and their stars are null where nobs/params or clusters are missing;
// consistent_with lists the references ("normal", "t_nk", "t_g1") whose stars equal the printed.
nlohmann::json audit_paper_tables(const DataFrame& table);

// A Markdown section body: the rows, the claims, then one bullet per flag.
std::string audit_markdown(const nlohmann::json& audit);
// One booktabs table (table + tabular, only \usepackage{booktabs} needed) per printed table of
// the rows, then the flags as an itemize list.
std::string audit_latex(const nlohmann::json& audit);

}  // namespace panelboot
