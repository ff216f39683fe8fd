// The input readers seen as a user sees them: the real executable in a child process, its exit
// status, its stderr and its output. A user error is one line beginning 'panelboot: error: ' and
// exit status 2; a warning is a line beginning 'panelboot: warning: '; never a signal or exit 3.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "helpers.hpp"
#include "process.hpp"

namespace {

using pbtest::ProcRun;
using pbtest::run_process;

using pbtest::file_bytes;

// boottest_collapsed.dta (Stata 118) with the byte at `offset` replaced, written to a temp file.
std::string patched_dta(std::size_t offset, char byte, const std::string& suffix = ".dta") {
  std::string b = file_bytes(pbtest::data_path("boottest_collapsed.dta"));
  b.at(offset) = byte;
  return pbtest::write_temp(b, suffix);
}

// The stderr lines that begin with `prefix`.
std::vector<std::string> lines_starting(const std::string& err, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
  return out;
}

// files given with --data: the error is the only line
void expect_one_line_error(const ProcRun& r, const std::vector<std::string>& phrases) {
  pbtest::expect_user_error(r, phrases, 1);
}

void expect_success(const ProcRun& r) {
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, 0) << r.err;
  EXPECT_EQ(r.status, 0) << r.err;
}

const char* kPanel =
    "id,year,y,x\n"
    "1,2001,1.0,0.5\n"
    "1,2002,2.0,1.5\n"
    "2,2001,0.5,2.5\n"
    "2,2002,1.5,0.2\n"
    "3,2001,2.5,1.1\n"
    "3,2002,0.1,0.7\n";

}  // namespace

// 1. A .dta whose variable name is empty: ReadStat hands back NULL for the name.
TEST(ReadersProcess, StataVariableWithAnEmptyNameIsALocatedError) {
  const std::string p = patched_dta(334, '\0');  // the first byte of variable 1's name, "year"
  const ProcRun r = run_process({"describe", "--data", p});
  expect_one_line_error(r, {"file '" + p + "'", "variable 1 has an empty name"});
}

TEST(ReadersProcess, StataVariablesWithOneNameAreALocatedError) {
  std::string b = file_bytes(pbtest::data_path("boottest_collapsed.dta"));
  b.replace(334 + 129, 5, std::string("year\0", 5));  // variable 2, "selfemployed", renamed "year"
  const std::string p = pbtest::write_temp(b, ".dta");
  const ProcRun r = run_process({"describe", "--data", p});
  expect_one_line_error(r, {"file '" + p + "'", "variable 2 has the name 'year' of variable 1"});
}

// A text strL (format 117) whose stored length leaves out its terminating NUL: ReadStat hands it
// on as a C string, and reading it ran past the buffer (the .dta fuzzer's finding). Refused before
// ReadStat parses, from a file and from a pipe.
TEST(ReadersProcess, StataStrlWithoutItsNulIsALocatedError) {
  const std::string p = pbtest::write_temp(
      file_bytes(pbtest::data_path("fuzz-regressions/dta/text-strl-without-nul.dta")), ".dta");
  const std::vector<std::string> phrases = {"long string (strL) 1 (variable 9, observation 1)",
                                            "does not end where it says"};
  expect_one_line_error(run_process({"describe", "--data", p}), phrases);
  pbtest::ProcOptions o;
  o.stdin_text = file_bytes(p);
  expect_one_line_error(run_process({"describe", "--data", "/dev/stdin"}, o), phrases);
}

// ReadStat is loaded when a .dta file is read (io/readstat_api.hpp): where it cannot be, that
// file gets a one-line error naming the library, and CSV input never needed it.
TEST(ReadersProcess, StataFileWithoutTheReadStatLibrarySaysWhatIsMissing) {
  pbtest::ProcOptions o;
  o.env = {"PANELBOOT_READSTAT_LIBRARY=/nonexistent/libreadstat.so.1"};
  const std::string dta = pbtest::data_path("boottest_collapsed.dta");
  expect_one_line_error(
      run_process({"describe", "--data", dta}, o),
      {"cannot read '" + dta + "'", "needs the ReadStat library",
       "/nonexistent/libreadstat.so.1 could not be loaded", "export the data to CSV"});
  const std::string csv = pbtest::write_temp(kPanel);
  expect_success(run_process({"describe", "--data", csv}, o));
}

// 2. --data naming a directory, and inputs that cannot seek (a pipe) read to the end.
TEST(ReadersProcess, DirectoryIsAUserError) {
  const std::string dir = std::filesystem::temp_directory_path().string();
  const ProcRun r = run_process({"describe", "--data", dir});
  expect_one_line_error(r, {"cannot read data file '" + dir + "': it is a directory"});
}

TEST(ReadersProcess, CsvFromAPipeIsReadToTheEnd) {
  pbtest::ProcOptions o;
  o.stdin_text = kPanel;
  const ProcRun r = run_process({"fit", "--data", "/dev/stdin", "-f", "y ~ x | id", "--format", "json"}, o);
  expect_success(r);
  EXPECT_EQ(nlohmann::json::parse(r.out)["models"][0]["nobs"], 6) << r.out;
}

TEST(ReadersProcess, FifoIsReadToTheEnd) {
  const std::string fifo = pbtest::temp_path(".csv");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // The writer is a shell in the background (given up after 30 s should panelboot never open
  // the FIFO); panelboot reads it as it would a named pipe a user made with mkfifo.
  const std::string feeder = pbtest::write_temp(kPanel);
  const std::string cmd = "timeout 30 sh -c \"cat '" + feeder + "' > '" + fifo + "'\" &";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const ProcRun r = run_process({"describe", "--data", fifo});
  std::filesystem::remove(fifo);
  expect_success(r);
  EXPECT_NE(r.out.find("(6 rows, 4 columns)"), std::string::npos) << r.out;
}

// 3. The format comes from the content.
TEST(ReadersProcess, StataFileFromAPipeIsRead) {
  pbtest::ProcOptions o;
  o.stdin_text = file_bytes(pbtest::data_path("boottest_collapsed.dta"));
  const ProcRun r = run_process({"describe", "--data", "/dev/stdin", "--format", "json"}, o);
  expect_success(r);
  EXPECT_NE(r.out.find("\"selfemployed\""), std::string::npos) << r.out;
}

TEST(ReadersProcess, StataFileNamedCsvIsReadAsStata) {
  const std::string p = pbtest::write_temp(file_bytes(pbtest::data_path("boottest_collapsed.dta")), ".csv");
  const ProcRun r = run_process({"describe", "--data", p});
  expect_success(r);
  EXPECT_NE(r.out.find("(100 rows, 5 columns)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("selfemployed"), std::string::npos) << r.out;
}

TEST(ReadersProcess, OldFormatStataFileNamedTxtIsReadAsStata) {
  // boottest_nlsw88.dta is format 113: no "<stata_dta>", a release byte then a byte-order byte
  const std::string p = pbtest::write_temp(file_bytes(pbtest::data_path("boottest_nlsw88.dta")), ".txt");
  const ProcRun r = run_process({"describe", "--data", p});
  expect_success(r);
  EXPECT_NE(r.out.find("tenure"), std::string::npos) << r.out;
}

TEST(ReadersProcess, DtaNameWithoutTheStataSignatureSaysSo) {
  const std::string p = pbtest::write_temp(kPanel, ".dta");
  const ProcRun r = run_process({"describe", "--data", p});
  expect_one_line_error(r, {"cannot read Stata file '" + p + "'", "does not start with a Stata"});
}

TEST(ReadersProcess, BinaryContentIsNeitherCsvNorStata) {
  const std::string gz("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x48\xcd\xc9\xc9\x07\x00", 17);
  const std::string p = pbtest::write_temp(gz, ".csv");
  const ProcRun r = run_process({"describe", "--data", p});
  expect_one_line_error(r, {"file '" + p + "' is neither CSV text nor a Stata .dta file"});
  EXPECT_LT(r.err.size(), 400u) << r.err;
}

TEST(ReadersProcess, Utf16TextIsNamed) {
  std::string u16("\xff\xfe", 2);
  for (char c : std::string("y,x\n1,2\n")) u16 += std::string{c, '\0'};
  const std::string p = pbtest::write_temp(u16, ".csv");
  const ProcRun r = run_process({"describe", "--data", p});
  expect_one_line_error(r, {"file '" + p + "' is UTF-16 text"});
}

TEST(ReadersProcess, SpaceDelimitedFileWithoutHeaderWarns) {
  // the layout of Hansen's invest.dat: runs of spaces, CRLF, numbers from the first line on
  const std::string p = pbtest::write_temp(
      "      0.16262000       0.14790000       0.10339000\r\n"
      "      0.10500000      0.075810000      0.079360000\r\n"
      "     0.040060000       0.18772000      0.089750000\r\n",
      ".dat");
  const ProcRun r = run_process({"describe", "--data", p});
  expect_success(r);
  const auto w = lines_starting(r.err, "panelboot: warning: ");
  ASSERT_EQ(w.size(), 1u) << r.err;
  for (const char* phrase : {"reads as one column", "3 fields separated by spaces",
                             "comma-, semicolon- or tab-delimited", "no header row", "sed "})
    EXPECT_NE(w[0].find(phrase), std::string::npos) << "missing '" << phrase << "' in: " << w[0];
}

TEST(ReadersProcess, SpaceDelimitedFileWithHeaderWarnsWithoutTheHeaderHint) {
  const std::string p = pbtest::write_temp("id  year   y\n1  2001  0.5\n2  2002  1.5\n", ".txt");
  const ProcRun r = run_process({"describe", "--data", p});
  expect_success(r);
  const auto w = lines_starting(r.err, "panelboot: warning: ");
  ASSERT_EQ(w.size(), 1u) << r.err;
  EXPECT_NE(w[0].find("reads as one column"), std::string::npos) << w[0];
  EXPECT_EQ(w[0].find("no header row"), std::string::npos) << w[0];
}

TEST(ReadersProcess, OneColumnCsvDoesNotWarn) {
  const std::string p = pbtest::write_temp("my value\n1\n2\n3\n");
  const ProcRun r = run_process({"describe", "--data", p});
  expect_success(r);
  EXPECT_TRUE(r.err.empty()) << r.err;
}

// 4. Text that is not UTF-8 is read as Windows-1252, with one warning per file.
TEST(ReadersProcess, Latin1CsvLevelsAndNamesBecomeUtf8) {
  const std::string csv =
      "y,x,region,d\xe9p\n"
      "1.0,0.5,Qu\xe9" "bec,1\n"
      "2.0,1.5,Ontario,2\n"
      "0.5,2.5,Qu\xe9" "bec,3\n"
      "1.5,0.2,Ontario,4\n"
      "2.5,1.1,Alberta,5\n"
      "0.1,0.7,Alberta,6\n"
      "0.9,0.3,Qu\xe9" "bec,7\n"
      "1.2,1.9,Ontario,8\n";
  const std::string p = pbtest::write_temp(csv);
  const std::string warning =
      "panelboot: warning: file '" + p + "' is not UTF-8; its text was read as Windows-1252 (Latin-1)";
  const std::vector<std::vector<std::string>> runs{
      {"fit", "--data", p, "--format", "json", "-f", "y ~ x + i(region)"},
      {"fit", "--data", p, "--format", "json", "-f", "y ~ x | region", "--cluster", "region"},
      {"describe", "--data", p, "--format", "json"}};
  for (const auto& args : runs) {
    const ProcRun r = run_process(args);
    expect_success(r);
    EXPECT_TRUE(nlohmann::json::accept(r.out)) << r.out;
    if (args[0] == "describe") {
      EXPECT_NE(r.out.find("\"d\xc3\xa9p\""), std::string::npos) << r.out;
    }
    if (args.back() == "y ~ x + i(region)") {
      EXPECT_NE(r.out.find("Qu\xc3\xa9" "bec"), std::string::npos) << r.out;
    }
    EXPECT_EQ(lines_starting(r.err, "panelboot: warning: "), std::vector<std::string>{warning}) << r.err;
  }
}

TEST(ReadersProcess, Utf8CsvIsNotTranscoded) {
  const std::string p = pbtest::write_temp("y,x,g\n1,2,Qu\xc3\xa9" "bec\n2,1,Ontario\n3,3,Qu\xc3\xa9" "bec\n");
  const ProcRun r = run_process({"describe", "--data", p, "--format", "json"});
  expect_success(r);
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST(ReadersProcess, Stata118NameThatIsNotUtf8IsReadAsWindows1252) {
  const std::string p = patched_dta(335, '\xe9');  // "year" -> "y\xe9ar"
  const ProcRun r = run_process({"describe", "--data", p, "--format", "json"});
  expect_success(r);
  EXPECT_TRUE(nlohmann::json::accept(r.out)) << r.out;
  EXPECT_NE(r.out.find("\"y\xc3\xa9" "ar\""), std::string::npos) << r.out;
  EXPECT_EQ(lines_starting(r.err, "panelboot: warning: ").size(), 1u) << r.err;
}

TEST(ReadersProcess, OldStataFormatTextIsWindows1252WithoutAWarning) {
  // format 113 text is Windows-1252 by definition; ReadStat converts it: variable 2, "age" -> "a\xe9e"
  std::string b = file_bytes(pbtest::data_path("boottest_nlsw88.dta"));
  b.at(126 + 33 + 1) = '\xe9';
  const std::string p = pbtest::write_temp(b, ".dta");
  const ProcRun r = run_process({"describe", "--data", p, "--format", "json"});
  expect_success(r);
  EXPECT_TRUE(nlohmann::json::accept(r.out)) << r.out;
  EXPECT_NE(r.out.find("\"a\xc3\xa9" "e\""), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST(ReadersProcess, DataPathThatIsNotUtf8StillGivesJson) {
  const std::string p = pbtest::temp_path("caf\xe9.csv");
  std::ofstream(p, std::ios::binary) << kPanel;
  const ProcRun r = run_process({"describe", "--data", p, "--format", "json"});
  expect_success(r);
  EXPECT_TRUE(nlohmann::json::accept(r.out)) << r.out;
}

// 5. Messages echo a bad field in short, on one line, NUL bytes included.
TEST(ReadersProcess, HugeFieldIsEchoedInShort) {
  std::string csv = "y,x\n1,1\n2," + ("1" + std::string(5000000, 'x')) + "\n3,3\n4,4\n";
  const std::string p = pbtest::write_temp(csv);
  const ProcRun r = run_process({"fit", "--data", p, "-f", "y ~ x"});
  expect_one_line_error(r, {"unparsable number '1xxx", "(5000001 bytes)", "line 3, column 2 (x)"});
  EXPECT_LT(r.err.size(), 400u) << r.err.substr(0, 2000);
}

TEST(ReadersProcess, NulByteInAFieldIsShownEscaped) {
  std::string csv = "y,x\n";
  for (int i = 0; i < 800; ++i) csv += std::to_string(i) + "," + std::to_string(i % 7) + "\n";
  csv += "9,2" + std::string(1, '\0') + "5\n";  // past the first few KB: read as CSV text
  const std::string p = pbtest::write_temp(csv);
  const ProcRun r = run_process({"fit", "--data", p, "-f", "y ~ x"});
  expect_one_line_error(r, {"unparsable number '2\\x005'", "line 802, column 2 (x)"});
  EXPECT_LT(r.err.size(), 400u) << r.err;
}

TEST(ReadersProcess, HugeColumnNameIsEchoedInShort) {
  const std::string name(100000, 'v');
  const std::string p = pbtest::write_temp("y," + name + "\n1,a\n2,b\n3,c\n");
  const ProcRun r = run_process({"fit", "--data", p, "-f", "y ~ " + name});
  expect_one_line_error(r, {"holds text", "(100000 bytes)"});
  EXPECT_LT(r.err.size(), 500u) << r.err.substr(0, 2000);
}

TEST(ReadersProcess, HugeFormulaTokenIsEchoedInShort) {
  const std::string p = pbtest::write_temp(kPanel);
  const ProcRun r = run_process({"fit", "--data", p, "-f", "y ~ x + " + std::string(100000, 'q') + "(x)"});
  expect_one_line_error(r, {"unknown function 'qqq", "(100000 bytes)"});
  EXPECT_LT(r.err.size(), 600u) << r.err.substr(0, 2000);
}
