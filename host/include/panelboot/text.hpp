#pragma once
// Text that crosses to the user: messages on one line, bad fields echoed in short, input text
// made valid UTF-8 before it reaches JSON.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace panelboot {

// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view s);

// `s` read as Windows-1252 (Latin-1 with the C1 range's printable characters) and written as
// UTF-8: how text from Stata <= 13 files and Windows exports is decoded.
std::string cp1252_to_utf8(std::string_view s);

// `s` on one printable line: control characters, NUL included, and bytes that are not part of
// well-formed UTF-8 are written as \xNN (newline and tab as \n and \t); longer than `max_chars`
// bytes, it is cut there and ends "... (N bytes)".
std::string printable(std::string_view s, std::size_t max_chars = 100);

// A value echoed in a message: printable(s, 100) inside single quotes. (Overloads for strings
// and literals, so that they win over std::quoted, which argument-dependent lookup also finds.)
std::string quoted(std::string_view s);
std::string quoted(const std::string& s);
std::string quoted(std::string& s);
std::string quoted(const char* s);

// `s` without leading and trailing blanks and tabs.
std::string trimmed(std::string_view s);

// The pieces of `s` between the separators `sep` outside parentheses, in order, empty ones
// included: a comma list of expressions, the factors of a product a:b.
std::vector<std::string> split_outside_parentheses(std::string_view s, char sep);

}  // namespace panelboot
