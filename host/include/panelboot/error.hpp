#pragma once
// One error hierarchy for the whole engine. User-facing messages name the file, line, column or
// variable at fault and say what to do.
#include <stdexcept>
#include <string>
#include <vector>

namespace panelboot {

// Every message is one line: control characters (a NUL or a newline inside an echoed field
// included) are written as printable() writes them (\n, \t, \xNN), so that what() carries the
// whole message. Header-only: the CUDA plugin throws these too.
inline std::string one_line_message(const std::string& msg) {
  std::string out;
  out.reserve(msg.size());
  static const char kHex[] = "0123456789ABCDEF";
  for (char ch : msg) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != 0x7F) {
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(one_line_message(msg)) {}
  explicit Error(const char* msg) : Error(std::string(msg)) {}
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

// The closest name to `name` among `candidates` by edit distance, or "" if none is close.
std::string nearest_name(const std::string& name, const std::vector<std::string>& candidates);

}  // namespace panelboot
