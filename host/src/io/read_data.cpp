// --data: the format is told from the content, not the name. A Stata signature is read as .dta
// whatever the file is called (a .dta renamed .csv used to be parsed as CSV and echoed binary
// into messages); a file named .dta without one, UTF-16 text and binary content are errors that
// say what the file is; everything else is CSV text.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <string_view>
#include <utility>

#include "input_file.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/error.hpp"

namespace panelboot {
namespace {

// How much of the start of a file the content tests look at.
constexpr std::size_t kSniffBytes = 4096;

// Stata 13 and later (formats 117-119) begin "<stata_dta>"; formats 104-115 begin with the
// release number as one byte, the byte order (1 big-endian, 2 little-endian) and the file type 1
// (Stata's dta_113 description; ReadStat reads 104-119). No text file begins with those bytes.
bool has_stata_signature(std::string_view head) {
  if (head.substr(0, 11) == "<stata_dta>") return true;
  if (head.size() < 4) return false;
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(head[i]); };
  return byte(0) >= 104 && byte(0) <= 115 && (byte(1) == 1 || byte(1) == 2) && byte(2) == 1;
}

bool named_dta(const std::string& path) {
  if (path.size() < 4) return false;
  std::string ext = path.substr(path.size() - 4);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".dta";
}

bool has_utf16_bom(std::string_view head) {
  return head.size() >= 2 && ((head[0] == '\xFF' && head[1] == '\xFE') ||
                              (head[0] == '\xFE' && head[1] == '\xFF'));
}

// A NUL byte near the start marks binary content (compressed, a spreadsheet, an image); one
// further on is left to the CSV reader, which shows it, escaped, in the field it spoils.
void reject_binary(std::string_view head, const std::string& shown) {
  const std::string_view sniffed = head.substr(0, kSniffBytes);
  const std::size_t nul = sniffed.find('\0');
  if (nul == std::string_view::npos) return;
  const auto line = 1 + std::count(sniffed.begin(), sniffed.begin() + static_cast<std::ptrdiff_t>(nul), '\n');
  throw InvalidInput("file '" + shown + "' is neither CSV text nor a Stata .dta file: it holds " +
                     "binary data (a NUL byte at line " + std::to_string(line) + ", byte " +
                     std::to_string(nul + 1) + "); export the data to CSV or Stata .dta");
}

enum class Content { kStata, kText };

// The input's kind from its first bytes; an error naming the file for what panelboot cannot read.
// `path` is the name as given, `shown` as messages show it.
Content classify(std::string_view head, const std::string& path, const std::string& shown) {
  if (has_stata_signature(head)) return Content::kStata;
  if (named_dta(path))
    throw InvalidInput("cannot read Stata file '" + shown +
                       "': it does not start with a Stata .dta signature ('<stata_dta>' or a "
                       "format 104-115 header); save it from Stata again, or rename it if it holds "
                       "CSV text");
  if (has_utf16_bom(head))
    throw InvalidInput("file '" + shown +
                       "' is UTF-16 text; panelboot reads UTF-8 or Windows-1252 text: save it as "
                       "CSV UTF-8, or convert it with iconv -f UTF-16 -t UTF-8");
  reject_binary(head, shown);
  return Content::kText;
}

}  // namespace

DataFrame read_data(const std::string& path) {
  if (path.empty() || path == ":embedded:") return embedded_dataset();
  InputFile in(path);
  const std::string shown = shown_path(path);
  // a regular file's head decides whether to read it whole (CSV) or hand its path to ReadStat;
  // a stream can be read only once, so it is read whole first
  std::string bytes;
  in.read_into(bytes, in.is_regular() ? kSniffBytes : InputFile::kAll);
  if (classify(bytes, path, shown) == Content::kStata)
    return in.is_regular() ? read_dta(path) : read_dta_bytes(bytes, shown);
  return read_csv_file(in, std::move(bytes));
}

}  // namespace panelboot
