#include <cmath>

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
  EXPECT_EQ(df.numeric("a")[2], 3.0);
  try {
    df.numeric("b");
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("unparsable number 'oops' at file 'p.csv', line 3, column 2 (b)"),
              std::string::npos) << e.what();
  }
}

TEST(Dta, MatchesTheCsvExport) {
  const DataFrame a = read_data(pbtest::data_path("boottest_nlsw88.dta"));
  const DataFrame b = read_data(pbtest::data_path("boottest_nlsw88.csv"));
  ASSERT_EQ(a.n_rows(), b.n_rows());
  for (const char* v : {"wage", "tenure", "industry", "collgrad"}) {
    const auto& x = a.numeric(v);
    const auto& y = b.numeric(v);
    for (std::size_t r = 0; r < x.size(); ++r) {
      if (std::isnan(y[r])) EXPECT_TRUE(std::isnan(x[r])) << v << " row " << r;
      else EXPECT_NEAR(x[r], y[r], 1e-6 * std::fabs(y[r])) << v << " row " << r;
    }
  }
}
