#pragma once
// A column store read from CSV or Stata .dta. Numeric columns hold doubles (NaN = missing);
// text columns are factorized into codes (-1 = missing) over their levels in order of first
// appearance. Problems found while reading (an unparsable number, a non-finite value) are kept
// with their location and raised only when the column is used, so that unused columns never
// stop a run.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace panelboot {

struct Column {
  enum class Type { kNumeric, kString };
  std::string name;
  Type type = Type::kNumeric;
  std::vector<double> num;          // kNumeric: one value per row, NaN = missing
  std::vector<std::int32_t> codes;  // kString: index into levels, -1 = missing
  std::vector<std::string> levels;  // kString: distinct texts, first-appearance order
  // kString columns that were mostly numbers: the first field that failed to parse.
  std::size_t n_numeric_fields = 0;
  std::size_t n_text_fields = 0;
  std::string first_text_where;  // "file 'f', line 7, column 3 (x)"
  std::string first_text_value;
  // kNumeric columns: the first non-finite value (inf, nan) met.
  std::string first_nonfinite_where;
  std::string first_nonfinite_value;

  bool is_string() const { return type == Type::kString; }
  bool missing(std::size_t row) const {
    return is_string() ? codes[row] < 0 : num[row] != num[row];
  }
  std::string text(std::size_t row) const;  // the value as text ("" when missing)
};

class DataFrame {
 public:
  std::string source;               // file name as given (or "<embedded>")
  std::string row_unit = "line";    // "line" (CSV, 1-based physical line) or "observation"
  std::vector<Column> columns;
  std::vector<std::uint32_t> row_line;  // physical line (or observation number) of each row
  // What the reader noticed but did not stop for (a file that reads as one column), one line
  // each without the "panelboot: warning: " prefix; the CLI prints them.
  std::vector<std::string> warnings;

  std::size_t n_rows() const { return row_line.size(); }
  std::vector<std::string> names() const;
  // The column, or an InvalidInput error naming the variable and the nearest existing name.
  const Column& column(const std::string& name) const;
  const Column* find(const std::string& name) const;
  // A numeric column's values; raises the stored parse problem or a text-column error.
  const std::vector<double>& numeric(const std::string& name) const;
  std::string where(std::size_t row) const;  // "file 'f', line 12"
};

struct CsvOptions {
  char delimiter = 0;  // 0 = detect among ',', ';' and '\t' from the header line
};

DataFrame read_csv(const std::string& path, const CsvOptions& opts = {});
DataFrame read_csv_text(const std::string& text, const std::string& source_name,
                        const CsvOptions& opts = {});
DataFrame read_dta(const std::string& path);
// A .dta file's bytes (read from a pipe, which ReadStat cannot seek).
DataFrame read_dta_bytes(const std::string& bytes, const std::string& source_name);
// The format told from the content: a Stata signature through ReadStat, text by CSV rules;
// "" or ":embedded:" the built-in dataset.
DataFrame read_data(const std::string& path);
DataFrame embedded_dataset();
extern const char* const kEmbeddedName;

}  // namespace panelboot
