#pragma once
// A column store read from CSV or Stata .dta. Numeric columns hold doubles (NaN = missing);
// text columns are factorized into codes (-1 = missing) over their levels in order of first
// appearance. Problems found while reading (an unparsable number, a non-finite value) are kept
// with their location and raised only when the column is used, so that unused columns never
// stop a run.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace panelboot {

// A read-only view of doubles: a numeric column's values, owned by the frame or borrowed.
class DoubleSpan {
 public:
  DoubleSpan() = default;
  DoubleSpan(const double* data, std::size_t size) : data_(data), size_(size) {}
  DoubleSpan(const std::vector<double>& v) : data_(v.data()), size_(v.size()) {}  // NOLINT: a view of it
  const double* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const double& operator[](std::size_t i) const { return data_[i]; }
  const double* begin() const { return data_; }
  const double* end() const { return data_ + size_; }
  std::vector<double> to_vector() const { return std::vector<double>(begin(), end()); }

 private:
  const double* data_ = nullptr;
  std::size_t size_ = 0;
};

struct Column {
  enum class Type { kNumeric, kString };
  std::string name;
  Type type = Type::kNumeric;
  std::vector<double> num;          // kNumeric: one value per row, NaN = missing (what readers fill)
  // kNumeric values the frame borrows instead of owning (the Python package hands over its numpy
  // buffers, alive for the whole run, without copying them): doubles, or 64-bit integers that the
  // groupings read in place and values() converts to doubles once, for the other uses.
  const double* borrowed = nullptr;
  const std::int64_t* borrowed_int = nullptr;
  std::size_t borrowed_rows = 0;
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
  // A numeric column's values, wherever they live (borrowed integers converted on first use).
  DoubleSpan values() const;
  double value(std::size_t row) const {
    return borrowed ? borrowed[row] : borrowed_int ? static_cast<double>(borrowed_int[row]) : num[row];
  }
  bool missing(std::size_t row) const {
    if (is_string()) return codes[row] < 0;
    const double v = value(row);
    return v != v;
  }
  std::string text(std::size_t row) const;  // the value as text ("" when missing)

 private:
  mutable std::shared_ptr<const std::vector<double>> converted_;  // borrowed_int as doubles
};

class DataFrame {
 public:
  std::string source;               // file name as given (or "<embedded>")
  std::string row_unit = "line";    // "line" (CSV, 1-based physical line) or "observation"
  std::vector<Column> columns;
  std::vector<std::uint32_t> row_line;  // physical line (or observation number) of each row
  // A frame handed over in memory (the Python package) has no lines: row_line stays empty, its
  // rows are counted here and named by their 0-based position ("pandas DataFrame, row 11").
  std::size_t rows_in_memory = 0;
  // Columns the data holds that were not handed over (the Python package passes only the columns
  // a command names): offered as the nearest name when a name is unknown.
  std::vector<std::string> names_not_loaded;
  // What the reader noticed but did not stop for (a file that reads as one column), one line
  // each without the "panelboot: warning: " prefix; the CLI prints them.
  std::vector<std::string> warnings;

  std::size_t n_rows() const { return row_line.empty() ? rows_in_memory : row_line.size(); }
  // Handed over in memory (its rows named "row", by position), not read from a file.
  bool in_memory() const { return row_unit == "row"; }
  std::vector<std::string> names() const;
  // The column, or an InvalidInput error naming the variable and the nearest existing name.
  const Column& column(const std::string& name) const;
  const Column* find(const std::string& name) const;
  // A numeric column's values; raises the stored parse problem or a text-column error.
  DoubleSpan numeric(const std::string& name) const;
  std::string row_label(std::size_t row) const;  // "line 12" (a file's), "row 11" (in memory, 0-based)
  std::string where(std::size_t row) const;      // "file 'f', line 12", "pandas DataFrame, row 11"
};

struct CsvOptions {
  char delimiter = 0;  // 0 = detect among ',', ';' and '\t' from the header line
  // Records of plain numbers parsed straight from the text (the fast path); false: every record
  // through the tokenizer's fields (the tests compare the two, which must give the same frame).
  bool plain_records = true;
  // Plain records are read ahead in stretches, one a thread (or `stretches` when not 0), each at
  // least min_stretch_bytes long; the sequential pass then takes each stretch's rows where a
  // record begins at its start. The tests make them small to plant records across their edges.
  std::size_t stretches = 0;
  std::size_t min_stretch_bytes = std::size_t{16} << 20;
};

DataFrame read_csv(const std::string& path, const CsvOptions& opts = {});
DataFrame read_csv_text(std::string_view text, const std::string& source_name,
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
