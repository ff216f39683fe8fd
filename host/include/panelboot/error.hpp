#pragma once
// One error hierarchy for the whole engine. User-facing messages name the file, line, column or
// variable at fault and say what to do.
#include <stdexcept>
#include <string>
#include <vector>

namespace panelboot {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// Bad data, formula or option: the user's to fix.
class InvalidInput : public Error {
 public:
  using Error::Error;
};
// A feature whose backend or library was not compiled in.
class NotCompiled : public Error {
 public:
  using Error::Error;
};
// A numerical procedure that did not reach its tolerance.
class NotConverged : public Error {
 public:
  using Error::Error;
};
class CudaError : public Error {
 public:
  using Error::Error;
};

[[noreturn]] void throw_invalid(const std::string& msg);

// The closest name to `name` among `candidates` by edit distance, or "" if none is close.
std::string nearest_name(const std::string& name, const std::vector<std::string>& candidates);

}  // namespace panelboot

#define PB_EXPECTS(cond, msg)                                 \
  do {                                                        \
    if (!(cond)) ::panelboot::throw_invalid(std::string(msg)); \
  } while (0)
