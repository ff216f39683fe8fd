#pragma once
// ReadStat's functions as dta.cpp calls them, from libreadstat loaded when the first .dta file is
// read: a process that reads CSV never maps it (nor the zlib it brings), about 0.25 ms of every
// process's start (bench/RESULTS.md). Only with PANELBOOT_HAVE_READSTAT.
#include <readstat.h>

#include <string>

namespace panelboot {

#define PB_READSTAT_FUNCTIONS(X)                                                              \
  X(parser_init)                                                                              \
  X(parser_free) X(parse_dta) X(error_message) X(get_row_count) X(get_var_count)              \
      X(variable_get_name) X(variable_get_type_class) X(variable_get_index) X(value_type)     \
          X(value_is_missing) X(int8_value) X(int16_value) X(int32_value) X(float_value)      \
              X(double_value) X(string_value) X(set_metadata_handler) X(set_variable_handler) \
                  X(set_value_handler) X(set_open_handler) X(set_close_handler)               \
                      X(set_seek_handler) X(set_read_handler) X(set_update_handler) X(set_io_ctx)

// readstat_NAME as NAME
struct ReadStat {
#define PB_READSTAT_MEMBER(name) decltype(&::readstat_##name) name = nullptr;
  PB_READSTAT_FUNCTIONS(PB_READSTAT_MEMBER)
#undef PB_READSTAT_MEMBER
};

// The functions, the library loaded at the first call; NotCompiled naming the library and
// `reading` (the file to be read) where it cannot be loaded or lacks one of them. The environment
// variable PANELBOOT_READSTAT_LIBRARY names another build of it (a path, or a name dlopen
// searches).
const ReadStat& readstat(const std::string& reading);

}  // namespace panelboot
