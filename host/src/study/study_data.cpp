// The study's data (`replicate`): the user's names mapped to the study's, the derived variables
// of Table 7 (the PC1 index of the ai_* sub-indicators; winsorized copies), and the frame written
// back as CSV so that every number of the report can be rerun with fit/wild/threshold/power.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "panelboot/error.hpp"
#include "panelboot/report.hpp"
#include "panelboot/study.hpp"
#include "panelboot/text.hpp"
#include "report/format.hpp"

namespace panelboot {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The variables every section needs, and those some sections need (absent: the section is
// skipped with the reason).
const std::vector<std::string> kRequired = {"newqua", "rgzn", "urban", "ind", "fdi", "open", "fin", "province", "year"};
const std::vector<std::string> kSubIndicators = {"ai_fiber",    "ai_rd_exp", "ai_rd_staff", "ai_equip",  "ai_software",
                                                 "ai_embedded", "ai_firms",  "ai_newprod",  "ai_patent", "ai_profit"};
const std::vector<std::string> kWinsorized = {"newqua", "rgzn", "urban", "ind", "fdi", "open", "fin", "tec"};
const std::vector<std::string> kOptional = {"tec", "region", "devlevel", "municipality"};

double mean_of(DoubleSpan v, const std::vector<std::size_t>& rows) {
  double s = 0;
  for (std::size_t r : rows) s += v[r];
  return s / static_cast<double>(rows.size());
}

double sd_of(DoubleSpan v, const std::vector<std::size_t>& rows, double mean) {
  double s = 0;
  for (std::size_t r : rows) s += (v[r] - mean) * (v[r] - mean);
  return std::sqrt(s / static_cast<double>(rows.size() - 1));
}

}  // namespace

extern const unsigned char kEmbeddedPaperTables[];
extern const std::size_t kEmbeddedPaperTablesSize;
const char* const kEmbeddedPaperTablesName = "embedded:paper_tables.csv";

DataFrame embedded_paper_tables() {
  const std::string text(reinterpret_cast<const char*>(kEmbeddedPaperTables), kEmbeddedPaperTablesSize);
  return read_csv_text(text, kEmbeddedPaperTablesName);
}

VariableMap parse_variable_map(const std::string& text) {
  VariableMap map;
  for (const std::string& raw : split_outside_parentheses(text, ',')) {
    const std::string item = trimmed(raw);
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    const std::string study = eq == std::string::npos ? "" : trimmed(item.substr(0, eq));
    const std::string user = eq == std::string::npos ? "" : trimmed(item.substr(eq + 1));
    if (study.empty() || user.empty())
      throw InvalidInput("--map: " + quoted(item) + " is not study=yours (e.g. --map newqua=nqp,rgzn=ai_index)");
    for (const auto& [s, u] : map)
      if (s == study) throw InvalidInput("--map names " + quoted(study) + " twice");
    map.emplace_back(study, user);
  }
  return map;
}

void apply_variable_map(DataFrame& df, const VariableMap& map) {
  for (const auto& [study, user] : map)
    if (!df.find(user)) {
      std::string msg = "--map " + study + "=" + user + ": " + df.source + " has no variable " + quoted(user);
      const std::string near = nearest_name(user, df.names());
      if (!near.empty()) msg += "; did you mean " + quoted(near) + "?";
      throw InvalidInput(msg);
    }
  for (const auto& [study, user] : map) {
    if (study == user) continue;
    df.columns.erase(std::remove_if(df.columns.begin(), df.columns.end(),
                                    [&](const Column& c) { return c.name == study; }),
                     df.columns.end());
    for (Column& c : df.columns)
      if (c.name == user) c.name = study;
  }
}

double stata_percentile(std::vector<double> values, double p) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return v != v; }), values.end());
  if (values.empty()) return kNaN;
  std::sort(values.begin(), values.end());
  const double n = static_cast<double>(values.size());
  const double i = n * p / 100.0;
  const double fl = std::floor(i);
  if (i == fl) {  // an integer position: the mean of the i-th and the next value (1-based)
    if (fl < 1) return values.front();
    if (fl >= n) return values.back();
    const auto k = static_cast<std::size_t>(fl);
    return (values[k - 1] + values[k]) / 2;
  }
  const auto k = static_cast<std::size_t>(std::ceil(i));
  return values[std::min(k, values.size()) - 1];
}

std::pair<double, double> winsorize(std::vector<double>& v, double lo, double hi) {
  const double cut_lo = stata_percentile(v, lo), cut_hi = stata_percentile(v, hi);
  for (double& x : v)
    if (x == x) x = std::min(std::max(x, cut_lo), cut_hi);
  return {cut_lo, cut_hi};
}

PrincipalComponent first_principal_component(const DataFrame& df, const std::vector<std::string>& vars,
                                             const std::string& orient) {
  PrincipalComponent pc;
  pc.vars = vars;
  std::vector<DoubleSpan> cols;
  for (const std::string& v : vars) cols.push_back(df.numeric(v));
  const DoubleSpan o = df.numeric(orient);
  std::vector<std::size_t> rows;
  for (std::size_t r = 0; r < df.n_rows(); ++r) {
    bool ok = o[r] == o[r];
    for (const DoubleSpan& c : cols) ok = ok && c[r] == c[r];
    if (ok) rows.push_back(r);
  }
  if (rows.size() < vars.size() + 2)
    throw InvalidInput("the principal-component index needs more rows with every one of " + std::to_string(vars.size()) +
                       " sub-indicators present (found " + std::to_string(rows.size()) + ")");
  const auto n = static_cast<Eigen::Index>(rows.size());
  Eigen::MatrixXd Z(n, static_cast<Eigen::Index>(vars.size()));
  for (std::size_t j = 0; j < cols.size(); ++j) {
    const double m = mean_of(cols[j], rows), s = sd_of(cols[j], rows, m);
    if (!(s > 0)) throw InvalidInput("the principal-component index: " + quoted(vars[j]) + " is constant");
    for (Eigen::Index i = 0; i < n; ++i) Z(i, static_cast<Eigen::Index>(j)) = (cols[j][rows[i]] - m) / s;
  }
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(Z, Eigen::ComputeThinV);
  Eigen::VectorXd v = svd.matrixV().col(0);
  Eigen::VectorXd score = Z * v;
  const double sd = std::sqrt(score.squaredNorm() / static_cast<double>(n - 1));  // score has mean 0
  score /= sd;
  // orient: the sign that correlates positively with `orient`
  const double om = mean_of(o, rows);
  double cov = 0, oss = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    cov += score(i) * (o[rows[i]] - om);
    oss += (o[rows[i]] - om) * (o[rows[i]] - om);
  }
  if (cov < 0) {
    score = -score;
    v = -v;
    cov = -cov;
  }
  pc.corr_with_orient = cov / std::sqrt(oss * static_cast<double>(n - 1));
  pc.loadings.assign(v.data(), v.data() + v.size());
  const Eigen::VectorXd sv = svd.singularValues();
  pc.explained = sv(0) * sv(0) / sv.squaredNorm();
  pc.n_used = rows.size();
  pc.score.assign(df.n_rows(), kNaN);
  for (Eigen::Index i = 0; i < n; ++i) pc.score[rows[i]] = score(i);
  return pc;
}

void set_numeric_column(DataFrame& df, const std::string& name, std::vector<double> values) {
  Column c;
  c.name = name;
  c.type = Column::Type::kNumeric;
  c.num = std::move(values);
  for (Column& old : df.columns)
    if (old.name == name) {
      old = std::move(c);
      return;
    }
  df.columns.push_back(std::move(c));
}

std::string data_frame_csv(const DataFrame& df) {
  std::string out;
  for (std::size_t j = 0; j < df.columns.size(); ++j) out += (j ? "," : "") + csv_field(df.columns[j].name);
  out += "\n";
  for (std::size_t r = 0; r < df.n_rows(); ++r) {
    for (std::size_t j = 0; j < df.columns.size(); ++j) {
      const Column& c = df.columns[j];
      if (j) out += ",";
      if (c.missing(r)) continue;
      out += c.is_string() ? csv_field(c.levels[static_cast<std::size_t>(c.codes[r])]) : report::fmt_num("%.17g", c.value(r));
    }
    out += "\n";
  }
  return out;
}

StudyData prepare_study_data(DataFrame df) {
  for (const std::string& v : kRequired)
    if (!df.find(v)) {
      std::string msg = "replicate needs the variable " + quoted(v) + ", which " + df.source + " lacks";
      const std::string near = nearest_name(v, df.names());
      msg += near.empty() ? "; name the column that holds it with --map " + v + "=YOURS"
                          : "; if " + quoted(near) + " holds it, add --map " + v + "=" + near;
      throw InvalidInput(msg);
    }
  StudyData sd;
  for (const std::string& v : kOptional)
    if (!df.find(v)) sd.missing.push_back(v);
  sd.derived = nlohmann::json::object();
  std::vector<std::string> absent_ai;
  for (const std::string& v : kSubIndicators)
    if (!df.find(v)) absent_ai.push_back(v);
  if (absent_ai.empty()) {
    const PrincipalComponent pc = first_principal_component(df, kSubIndicators, "rgzn");
    set_numeric_column(df, "ai_pc1", pc.score);
    sd.derived["ai_pc1"] = {{"variables", pc.vars},
                            {"loadings", pc.loadings},
                            {"explained_share", pc.explained},
                            {"corr_with_rgzn", pc.corr_with_orient},
                            {"n", pc.n_used},
                            {"method", "PC1 of the pooled province-year z-scores (SD with n - 1), from the SVD; "
                                       "scaled to unit variance; sign chosen to correlate positively with rgzn"}};
  } else {
    sd.missing.push_back("ai_*");
    sd.derived["ai_pc1"] = nullptr;
  }
  nlohmann::json cuts = nlohmann::json::object();
  for (const std::string& v : kWinsorized) {
    if (!df.find(v)) continue;
    std::vector<double> w = df.numeric(v).to_vector();
    const auto [lo, hi] = winsorize(w);
    set_numeric_column(df, v + "_w", std::move(w));
    cuts[v] = {{"p1", lo}, {"p99", hi}};
  }
  sd.derived["winsorized"] = {{"cuts", cuts},
                              {"method", "winsor2 at 1/99 over the pooled sample: Stata _pctile's cut points "
                                         "(the mean of two order statistics at an integer position)"}};
  sd.df = std::move(df);
  return sd;
}

}  // namespace panelboot
