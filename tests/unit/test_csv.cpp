#include <cmath>
#include <cstdio>
#include <random>

#include "helpers.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/error.hpp"

using namespace panelboot;

TEST(Csv, DetectsSemicolonAndTabAndReadsMissingMarkers) {
  for (const char* sep : {";", "\t", ","}) {
    std::string t = std::string("a") + sep + "b" + sep + "c\n1" + sep + "NA" + sep + "x\n2.5" + sep + "." + sep +
                    "\n" + sep + "-3e2" + sep + "y\n";
    const DataFrame df = read_csv_text(t, "t.csv");
    ASSERT_EQ(df.columns.size(), 3u) << sep;
    EXPECT_EQ(df.n_rows(), 3u);
    EXPECT_EQ(df.columns[0].num[1], 2.5);
    EXPECT_TRUE(std::isnan(df.columns[0].num[2]));
    EXPECT_TRUE(std::isnan(df.columns[1].num[0]));
    EXPECT_TRUE(std::isnan(df.columns[1].num[1]));
    EXPECT_EQ(df.columns[1].num[2], -300.0);
    ASSERT_TRUE(df.columns[2].is_string());
    EXPECT_EQ(df.columns[2].levels, (std::vector<std::string>{"x", "y"}));
    EXPECT_EQ(df.columns[2].codes, (std::vector<std::int32_t>{0, -1, 1}));
  }
}

TEST(Csv, QuotedFieldsWithDelimitersQuotesAndNewlines) {
  const std::string t = "\xEF\xBB\xBFname,v\n\"Smith, J.\",1\n\"say \"\"hi\"\"\",2\n\"two\nlines\",\"3\"\n\nlast,4\n";
  const DataFrame df = read_csv_text(t, "q.csv");
  ASSERT_EQ(df.n_rows(), 4u);
  EXPECT_EQ(df.columns[0].name, "name");  // BOM stripped
  EXPECT_EQ(df.columns[0].levels[0], "Smith, J.");
  EXPECT_EQ(df.columns[0].levels[1], "say \"hi\"");
  EXPECT_EQ(df.columns[0].levels[2], "two\nlines");
  EXPECT_EQ(df.columns[1].num[2], 3.0);
  EXPECT_EQ(df.row_line[3], 7u);  // physical line, counting the quoted newline and the blank line
}

// More fields with "" escapes in one record than the tokenizer's first scratch strings (8): adding
// one must not move the ones earlier fields point into (a use after free the CSV fuzzer found).
TEST(Csv, ManyEscapedQuotedFieldsInOneRecordKeepTheirText) {
  std::string header, row;
  for (int j = 1; j <= 12; ++j) {
    header += std::string(j > 1 ? "," : "") + "\"a\"\"" + std::to_string(j) + "\"";
    row += std::string(j > 1 ? "," : "") + "\"b\"\"" + std::to_string(j) + "\"";
  }
  const DataFrame df = read_csv_text(header + "\n" + row + "\n", "q.csv");
  ASSERT_EQ(df.columns.size(), 12u);
  for (int j = 1; j <= 12; ++j) {
    EXPECT_EQ(df.columns[j - 1].name, "a\"" + std::to_string(j));
    ASSERT_EQ(df.columns[j - 1].levels.size(), 1u);
    EXPECT_EQ(df.columns[j - 1].levels[0], "b\"" + std::to_string(j));
  }
}

TEST(Csv, RaggedRowIsAnErrorWithItsLine) {
  try {
    read_csv_text("a,b\n1,2\n3\n", "r.csv");
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("file 'r.csv', line 3: expected 2 fields"), std::string::npos) << e.what();
  }
}

TEST(Csv, ProblemsAreRaisedOnlyWhenTheColumnIsUsed) {
  const DataFrame df = read_csv_text("a,b\n1,2\n2,oops\n3,4\n", "p.csv");
  EXPECT_EQ(df.numeric("a").to_vector()[2], 3.0);
  try {
    df.numeric("b").to_vector();
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("unparsable number 'oops' at file 'p.csv', line 3, column 2 (b)"),
              std::string::npos) << e.what();
  }
}

// Random tables written with random delimiters, padding, widths (fields shorter and longer
// than the tokenizer's 16-byte scan), LF or CRLF, missing markers and a last line with or
// without its newline read back to the exact values.
TEST(Csv, RandomTablesReadBackExactly) {
  PB_FRESH_RNG(rng);
  std::uniform_int_distribution<int> small(0, 9);
  std::normal_distribution<double> nd;
  for (int rep = 0; rep < 60; ++rep) {
    const char sep = ",;\t"[rep % 3];
    const bool crlf = rep % 2, last_nl = rep % 5 != 0;
    const int n_col = 1 + small(rng), n_row = 1 + small(rng) * 7;
    std::vector<std::vector<double>> v(static_cast<std::size_t>(n_col));
    std::string t;
    for (int j = 0; j < n_col; ++j) t += (j ? std::string(1, sep) : "") + "c" + std::to_string(j);
    t += crlf ? "\r\n" : "\n";
    for (int i = 0; i < n_row; ++i) {
      for (int j = 0; j < n_col; ++j) {
        double x = std::ldexp(nd(rng), small(rng) * 7 - 30);
        if (small(rng) == 0) x = std::round(x);
        char buf[64];
        std::snprintf(buf, sizeof buf, small(rng) < 5 ? "%.17g" : "%.3g", x);
        std::string f = buf;
        if (small(rng) == 0) f = small(rng) < 5 || n_col == 1 ? "NA" : "";  // (a lone empty field is a blank line)
        x = f == "NA" || f.empty() ? std::nan("") : std::strtod(buf, nullptr);
        if (sep != '\t' && small(rng) < 2) f = std::string(static_cast<std::size_t>(small(rng)), ' ') + f + "  ";
        v[static_cast<std::size_t>(j)].push_back(x);
        t += (j ? std::string(1, sep) : "") + f;
      }
      if (i + 1 < n_row || last_nl) t += crlf ? "\r\n" : "\n";
    }
    const DataFrame df = read_csv_text(t, "random.csv");
    ASSERT_EQ(df.columns.size(), static_cast<std::size_t>(n_col)) << t;
    ASSERT_EQ(df.n_rows(), static_cast<std::size_t>(n_row)) << t;
    for (int j = 0; j < n_col; ++j)
      for (int i = 0; i < n_row; ++i) {
        const double want = v[static_cast<std::size_t>(j)][static_cast<std::size_t>(i)];
        const double got = df.columns[static_cast<std::size_t>(j)].num[static_cast<std::size_t>(i)];
        if (std::isnan(want)) EXPECT_TRUE(std::isnan(got)) << "rep " << rep << " row " << i << " col " << j;
        else EXPECT_EQ(got, want) << "rep " << rep << " row " << i << " col " << j << "\n" << t;
      }
  }
}

TEST(Dta, MatchesTheCsvExport) {
  const DataFrame a = read_data(pbtest::data_path("boottest_nlsw88.dta"));
  const DataFrame b = read_data(pbtest::data_path("boottest_nlsw88.csv"));
  ASSERT_EQ(a.n_rows(), b.n_rows());
  for (const char* v : {"wage", "tenure", "industry", "collgrad"}) {
    const auto& x = a.numeric(v).to_vector();
    const auto& y = b.numeric(v).to_vector();
    for (std::size_t r = 0; r < x.size(); ++r) {
      if (std::isnan(y[r])) EXPECT_TRUE(std::isnan(x[r])) << v << " row " << r;
      else EXPECT_NEAR(x[r], y[r], 1e-6 * std::fabs(y[r])) << v << " row " << r;
    }
  }
}

// Leading "# panelboot" lines are panelboot's notes (power's --save-replication files start with
// one) and are skipped; the line numbers of errors still count them. Other '#' lines are data.
TEST(Csv, LeadingPanelbootNoteLinesAreSkippedAndStillCounted) {
  const DataFrame df = read_csv_text("# panelboot power: a note, with a comma\n# panelboot more\nx,y\n1,2\n3,4\n", "c.csv");
  ASSERT_EQ(df.columns.size(), 2u);
  EXPECT_EQ(df.columns[0].name, "x");
  EXPECT_EQ(df.n_rows(), 2u);
  EXPECT_EQ(df.row_line, (std::vector<std::uint32_t>{4, 5}));
  try {
    read_csv_text("# panelboot note\nx,y\n1,2,3\n", "c.csv").numeric("x").to_vector();
    ADD_FAILURE() << "no error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
  }
  // a header that begins with '#' is a header, as before
  const DataFrame d1 = read_csv_text("#id,x\n1,2\n", "c.csv");
  ASSERT_EQ(d1.columns.size(), 2u);
  EXPECT_EQ(d1.columns[0].name, "#id");
  EXPECT_EQ(d1.n_rows(), 1u);
  // and a '#' after the header is data
  const DataFrame d2 = read_csv_text("x,s\n1,#a\n", "c.csv");
  EXPECT_EQ(d2.columns[1].levels, (std::vector<std::string>{"#a"}));
}

// Bytes that are not UTF-8 are found where the tokenizer reads (plain numeric records, the fast
// path, are ASCII): anywhere in the file, they make the whole text read as Windows-1252, as if it
// had been checked first: after thousands of plain records, in the header, in a note line; and
// a structural error before such bytes is the error the Windows-1252 reading gives.
TEST(Csv, TextThatIsNotUtf8AnywhereIsReadWhollyAsWindows1252) {
  std::string plain;
  for (int i = 0; i < 3000; ++i) plain += std::to_string(i) + ",1.5\n";
  struct Case {
    std::string text, second_name;  // the second column's name as read
    std::size_t rows;
  };
  const Case cases[] = {
      {"a,caf\xc3\xa9\n" + plain + "7,d\xe9j\xe0\n", "caf\xc3\x83\xc2\xa9", 3001},  // UTF-8 header, Latin-1 at the end
      {"a,caf\xe9\n" + plain, "caf\xc3\xa9", 3000},                                  // a Latin-1 header
      {"# panelboot \xe9t\xe9\na,b\n" + plain + "1,x\n", "b", 3001},                   // a Latin-1 note line
  };
  for (const Case& c : cases) {
    const DataFrame df = read_csv_text(c.text, "latin.csv");
    ASSERT_EQ(df.warnings.size(), 1u) << c.text.substr(0, 40);
    EXPECT_NE(df.warnings[0].find("is not UTF-8; its text was read as Windows-1252"), std::string::npos);
    EXPECT_EQ(df.columns[1].name, c.second_name);
    EXPECT_EQ(df.n_rows(), c.rows);
    EXPECT_EQ(df.columns[0].num[2999], 2999.0);
  }
  // an error before the byte: the same error as the Windows-1252 reading of the whole text gives
  try {
    read_csv_text("a,caf\xc3\xa9\n1,2\n" + plain + "7,x,\xe9\n", "latin.csv");
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("line 3003: expected 2 fields"), std::string::npos) << e.what();
  }
  try {
    read_csv_text("a,b\n" + plain + "1,\"\xe9\n", "latin.csv");
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("a quoted field is never closed"), std::string::npos) << e.what();
  }
}
