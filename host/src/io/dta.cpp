// Stata .dta input through ReadStat (optional at build time).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <unordered_map>

#include "panelboot/config.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/error.hpp"

#if PANELBOOT_HAVE_READSTAT
#include <readstat.h>
#endif

namespace panelboot {

#if PANELBOOT_HAVE_READSTAT
namespace {
struct DtaContext {
  DataFrame* df;
  std::vector<std::unordered_map<std::string, std::int32_t>> index;
  long n_rows = 0;      // rows to reserve per column
  long file_bytes = 0;  // the file's size, which bounds that
};

int on_metadata(readstat_metadata_t* meta, void* ctx_ptr) {
  auto* ctx = static_cast<DtaContext*>(ctx_ptr);
  // The header's row count is not trusted beyond what the file can hold (a corrupt one asked for
  // gigabytes): every observation takes at least one byte per variable.
  const long vars = std::max(1, readstat_get_var_count(meta));
  ctx->n_rows = std::min<long>(readstat_get_row_count(meta), ctx->file_bytes / vars);
  return READSTAT_HANDLER_OK;
}

int on_variable(int index, readstat_variable_t* var, const char*, void* ctx_ptr) {
  auto* ctx = static_cast<DtaContext*>(ctx_ptr);
  Column c;
  // ReadStat gives no name (NULL) for some malformed files; an empty name is named as CSV does
  const char* name = readstat_variable_get_name(var);
  c.name = name && *name ? name : "V" + std::to_string(index + 1);
  if (readstat_variable_get_type_class(var) == READSTAT_TYPE_CLASS_STRING) {
    c.type = Column::Type::kString;
    c.codes.reserve(ctx->n_rows > 0 ? ctx->n_rows : 0);
  } else {
    c.num.reserve(ctx->n_rows > 0 ? ctx->n_rows : 0);
  }
  if (static_cast<std::size_t>(index) != ctx->df->columns.size()) return READSTAT_HANDLER_ABORT;
  ctx->df->columns.push_back(std::move(c));
  ctx->index.emplace_back();
  return READSTAT_HANDLER_OK;
}

int on_value(int obs, readstat_variable_t* var, readstat_value_t value, void* ctx_ptr) {
  auto* ctx = static_cast<DtaContext*>(ctx_ptr);
  const int j = readstat_variable_get_index(var);
  Column& c = ctx->df->columns[j];
  if (j == 0) ctx->df->row_line.push_back(static_cast<std::uint32_t>(obs + 1));
  const bool missing = readstat_value_is_missing(value, var);
  if (c.is_string()) {
    const char* s = missing ? nullptr : readstat_string_value(value);
    if (!s || !*s) {
      c.codes.push_back(-1);
      return READSTAT_HANDLER_OK;
    }
    auto& idx = ctx->index[j];
    auto it = idx.find(s);
    if (it == idx.end()) {
      it = idx.emplace(s, static_cast<std::int32_t>(c.levels.size())).first;
      c.levels.emplace_back(s);
    }
    c.codes.push_back(it->second);
    ++c.n_text_fields;
    return READSTAT_HANDLER_OK;
  }
  double v = std::numeric_limits<double>::quiet_NaN();
  if (!missing) {
    switch (readstat_value_type(value)) {
      case READSTAT_TYPE_INT8: v = readstat_int8_value(value); break;
      case READSTAT_TYPE_INT16: v = readstat_int16_value(value); break;
      case READSTAT_TYPE_INT32: v = readstat_int32_value(value); break;
      case READSTAT_TYPE_FLOAT: v = readstat_float_value(value); break;
      case READSTAT_TYPE_DOUBLE: v = readstat_double_value(value); break;
      default: break;
    }
  }
  ++c.n_numeric_fields;
  c.num.push_back(v);
  return READSTAT_HANDLER_OK;
}
}  // namespace

DataFrame read_dta(const std::string& path) {
  DataFrame df;
  df.source = path;
  df.row_unit = "observation";
  DtaContext ctx{&df, {}, 0};
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(path, ec);
  ctx.file_bytes =
      ec ? 0 : static_cast<long>(std::min<std::uintmax_t>(bytes, std::numeric_limits<long>::max()));
  readstat_parser_t* parser = readstat_parser_init();
  readstat_set_metadata_handler(parser, &on_metadata);
  readstat_set_variable_handler(parser, &on_variable);
  readstat_set_value_handler(parser, &on_value);
  const readstat_error_t err = readstat_parse_dta(parser, path.c_str(), &ctx);
  readstat_parser_free(parser);
  if (err != READSTAT_OK)
    throw InvalidInput("cannot read Stata file '" + path + "': " + readstat_error_message(err) +
                       "; check the path given to --data and that it is a .dta file");
  return df;
}
#else
DataFrame read_dta(const std::string& path) {
  throw NotCompiled("cannot read '" + path +
                    "': this panelboot was built without ReadStat, so Stata .dta input is "
                    "unavailable; install libreadstat-dev and rebuild, or export the data to CSV");
}
#endif

}  // namespace panelboot
