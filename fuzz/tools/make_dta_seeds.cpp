// Writes the small .dta seeds of fuzz/corpus/dta/ from the public data in ../shared/data: the
// first rows and columns of a Stata file, rewritten by ReadStat's writer in one .dta version
// (104-119), with a file label, variable labels, a value label set, missing values (also tagged
// ones from 113 on) and, from 117 on, a strL column. Small files let the fuzzer reach the whole
// format quickly; the originals are 8 KB to 476 KB.
//   g++ -std=c++17 -O1 fuzz/tools/make_dta_seeds.cpp -lreadstat -o /tmp/make_dta_seeds
//   /tmp/make_dta_seeds IN.dta OUT.dta VERSION ROWS COLS
#include <readstat.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct Var {
  std::string name, label, format;
  readstat_type_t type;
  size_t width;
};
struct Cell {
  bool missing = true;
  double num = 0;
  std::string str;
};
struct Data {
  int max_cols;
  std::vector<Var> vars;
  std::vector<std::vector<Cell>> rows;  // rows x vars
};

int on_variable(int index, readstat_variable_t* v, const char*, void* ctx) {
  auto* d = static_cast<Data*>(ctx);
  if (index >= d->max_cols) return READSTAT_HANDLER_SKIP_VARIABLE;
  const char* label = readstat_variable_get_label(v);
  const char* format = readstat_variable_get_format(v);
  d->vars.push_back({readstat_variable_get_name(v), label ? label : "", format ? format : "",
                     readstat_variable_get_type(v), readstat_variable_get_storage_width(v)});
  return READSTAT_HANDLER_OK;
}

int on_value(int obs, readstat_variable_t* v, readstat_value_t value, void* ctx) {
  auto* d = static_cast<Data*>(ctx);
  const int j = readstat_variable_get_index_after_skipping(v);
  if (static_cast<std::size_t>(obs) >= d->rows.size()) d->rows.resize(obs + 1);
  auto& row = d->rows[obs];
  if (row.size() < d->vars.size()) row.resize(d->vars.size());
  Cell& c = row[j];
  c.missing = readstat_value_is_missing(value, v);
  if (c.missing) return READSTAT_HANDLER_OK;
  if (readstat_value_type(value) == READSTAT_TYPE_STRING) {
    const char* s = readstat_string_value(value);
    c.str = s ? s : "";
  } else {
    c.num = readstat_double_value(value);
  }
  return READSTAT_HANDLER_OK;
}

ssize_t write_bytes(const void* bytes, size_t len, void* ctx) {
  return static_cast<ssize_t>(std::fwrite(bytes, 1, len, static_cast<FILE*>(ctx)));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s IN.dta OUT.dta VERSION ROWS COLS\n", argv[0]);
    return 2;
  }
  const int version = std::atoi(argv[3]), n_rows = std::atoi(argv[4]);
  Data d{std::atoi(argv[5]), {}, {}};
  readstat_parser_t* p = readstat_parser_init();
  readstat_set_variable_handler(p, &on_variable);
  readstat_set_value_handler(p, &on_value);
  readstat_set_row_limit(p, n_rows);
  if (readstat_parse_dta(p, argv[1], &d) != READSTAT_OK) return 1;
  readstat_parser_free(p);

  FILE* out = std::fopen(argv[2], "wb");
  if (!out) return 1;
  readstat_writer_t* w = readstat_writer_init();
  readstat_set_data_writer(w, &write_bytes);
  readstat_writer_set_file_format_version(w, static_cast<uint8_t>(version));
  readstat_writer_set_file_label(w, "panelboot fuzz seed");
  readstat_writer_set_file_timestamp(w, 1700000000);
  readstat_label_set_t* labels = readstat_add_label_set(w, READSTAT_TYPE_INT32, "yesno");
  readstat_label_int32_value(labels, 0, "no");
  readstat_label_int32_value(labels, 1, "yes");
  std::vector<readstat_variable_t*> vs;
  for (const Var& v : d.vars) {
    const bool str = v.type == READSTAT_TYPE_STRING;
    // versions before 117 have no strL; before 105 (104) no int32 or double labels matter
    readstat_variable_t* rv =
        readstat_add_variable(w, v.name.c_str(), v.type == READSTAT_TYPE_STRING_REF ? READSTAT_TYPE_STRING : v.type,
                              str ? (v.width ? v.width : 8) : 0);
    if (!v.label.empty()) readstat_variable_set_label(rv, v.label.c_str());
    if (!v.format.empty()) readstat_variable_set_format(rv, v.format.c_str());
    vs.push_back(rv);
  }
  readstat_variable_t* flag = readstat_add_variable(w, "flag", READSTAT_TYPE_INT32, 0);
  readstat_variable_set_label(flag, "a labelled 0/1 column");
  readstat_variable_set_label_set(flag, labels);
  readstat_variable_t* text = readstat_add_variable(w, "source", READSTAT_TYPE_STRING, 12);
  readstat_variable_t* strl = nullptr;
  if (version >= 117) strl = readstat_add_variable(w, "note", READSTAT_TYPE_STRING_REF, 0);
  readstat_string_ref_t* ref = strl ? readstat_add_string_ref(w, "a long note kept as a strL") : nullptr;
  if (version >= 105) readstat_add_note(w, "from ../shared/data");
  if (readstat_begin_writing_dta(w, out, static_cast<long>(d.rows.size())) != READSTAT_OK) return 1;
  for (std::size_t r = 0; r < d.rows.size(); ++r) {
    readstat_begin_row(w);
    for (std::size_t j = 0; j < vs.size(); ++j) {
      const Cell& c = d.rows[r][j];
      const readstat_type_t t = readstat_variable_get_type(vs[j]);
      if (c.missing) readstat_insert_missing_value(w, vs[j]);
      else if (t == READSTAT_TYPE_STRING) readstat_insert_string_value(w, vs[j], c.str.c_str());
      else if (t == READSTAT_TYPE_INT8) readstat_insert_int8_value(w, vs[j], static_cast<int8_t>(c.num));
      else if (t == READSTAT_TYPE_INT16) readstat_insert_int16_value(w, vs[j], static_cast<int16_t>(c.num));
      else if (t == READSTAT_TYPE_INT32) readstat_insert_int32_value(w, vs[j], static_cast<int32_t>(c.num));
      else if (t == READSTAT_TYPE_FLOAT) readstat_insert_float_value(w, vs[j], static_cast<float>(c.num));
      else readstat_insert_double_value(w, vs[j], c.num);
    }
    if (r == 1) readstat_insert_missing_value(w, flag);
    else if (r == 2 && version >= 113) readstat_insert_tagged_missing_value(w, flag, 'a');
    else readstat_insert_int32_value(w, flag, static_cast<int32_t>(r % 2));
    if (r == 0) readstat_insert_missing_value(w, text);
    else readstat_insert_string_value(w, text, r % 2 ? "East" : "West");
    if (strl) readstat_insert_string_ref(w, strl, ref);
    readstat_end_row(w);
  }
  const readstat_error_t err = readstat_end_writing(w);
  readstat_writer_free(w);
  std::fclose(out);
  if (err != READSTAT_OK) {
    std::fprintf(stderr, "%s\n", readstat_error_message(err));
    return 1;
  }
  return 0;
}
