#include "panelboot/data_frame.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <mutex>

#include "panelboot/error.hpp"
#include "panelboot/text.hpp"

namespace panelboot {

DoubleSpan Column::values() const {
  if (borrowed) return {borrowed, borrowed_rows};
  if (!borrowed_int) return num;
  static std::mutex converting;
  const std::lock_guard<std::mutex> lock(converting);
  if (!converted_) {
    auto v = std::make_shared<std::vector<double>>(borrowed_rows);
    for (std::size_t r = 0; r < borrowed_rows; ++r) (*v)[r] = static_cast<double>(borrowed_int[r]);
    converted_ = std::move(v);
  }
  return *converted_;
}

std::string Column::text(std::size_t row) const {
  if (is_string()) return codes[row] < 0 ? std::string() : levels[codes[row]];
  const double v = value(row);
  if (v != v) return std::string();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

std::vector<std::string> DataFrame::names() const {
  std::vector<std::string> out;
  out.reserve(columns.size());
  for (const auto& c : columns) out.push_back(c.name);
  return out;
}

const Column* DataFrame::find(const std::string& name) const {
  for (const auto& c : columns)
    if (c.name == name) return &c;
  return nullptr;
}

const Column& DataFrame::column(const std::string& name) const {
  if (const Column* c = find(name)) return *c;
  std::string msg = "unknown variable " + quoted(name) + " in " + source;
  std::vector<std::string> all = names();
  all.insert(all.end(), names_not_loaded.begin(), names_not_loaded.end());
  const std::string near = nearest_name(name, all);
  if (!near.empty()) msg += "; did you mean " + quoted(near) + "?";
  else if (in_memory()) msg += "; it has no such column";
  else msg += "; its columns are listed by 'panelboot describe --data FILE'";
  throw InvalidInput(msg);
}

DoubleSpan DataFrame::numeric(const std::string& name) const {
  const Column& c = column(name);
  if (c.is_string()) {
    if (c.n_numeric_fields > c.n_text_fields)
      throw InvalidInput("unparsable number " + quoted(c.first_text_value) + " at " +
                         c.first_text_where + "; fix the value or mark it missing (empty, NA or .)");
    throw InvalidInput("variable " + quoted(name) + " in " + source + " holds text (e.g. " +
                       quoted(c.first_text_value) + "), not numbers; use i(" + printable(name) +
                       ") for dummies, or use it as a fixed effect or cluster variable");
  }
  if (!c.first_nonfinite_where.empty())
    throw InvalidInput("non-finite value " + quoted(c.first_nonfinite_value) + " at " +
                       c.first_nonfinite_where + "; replace it or mark it missing (empty, NA or .)");
  return c.values();
}

std::string DataFrame::row_label(std::size_t row) const {
  return row_unit + " " + std::to_string(row_line.empty() ? row : std::size_t{row_line[row]});
}

std::string DataFrame::where(std::size_t row) const {
  if (in_memory()) return source + ", " + row_label(row);
  return "file '" + source + "', " + row_label(row);
}

}  // namespace panelboot
