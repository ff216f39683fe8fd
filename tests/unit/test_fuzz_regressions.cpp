// Every input the fuzzers (fuzz/) found a bug with, replayed through the fuzz target's own entry
// point (fuzz/fuzz_targets.cpp): tests/data/fuzz-regressions/<target>/* (the README there says
// what each was). The seed corpora (fuzz/corpus/<target>/*) run too, so the harness itself is
// built and run by the ordinary suite. Success or a panelboot::Error is the only correct outcome;
// any other exception fails the test here, and a crash or a sanitizer report (scripts/
// test-sanitize) fails the test binary.
#include <gtest/gtest.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_targets.hpp"
#include "helpers.hpp"
#include "panelboot/data_frame.hpp"
#include "panelboot/error.hpp"

namespace fs = std::filesystem;

// libFuzzer's malloc limit (-rss_limit_mb=2048 in scripts/fuzz): one allocation above it is a
// finding there, so it is one here too (an input that asks for gigabytes must be refused, not
// reserved; without the limit such a reservation often succeeds, untouched, and goes unseen).
// The whole replaceable family but the aligned forms is replaced, so that every new pairs with
// its delete also under ASan (whose runtime provides the ones not defined here).
namespace {
constexpr std::size_t kMallocLimit = std::size_t{2048} << 20;
struct OverLimit : std::bad_alloc {
  const char* what() const noexcept override { return "one allocation above the fuzzers' 2 GB limit"; }
};
void* limited_alloc(std::size_t n) {
  if (n > kMallocLimit) throw OverLimit();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* limited_alloc(std::size_t n, const std::nothrow_t&) noexcept {
  return n > kMallocLimit ? nullptr : std::malloc(n ? n : 1);
}
}  // namespace
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // free() of malloc(): they do pair
#endif
void* operator new(std::size_t n) { return limited_alloc(n); }
void* operator new[](std::size_t n) { return limited_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t& t) noexcept { return limited_alloc(n, t); }
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return limited_alloc(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

std::vector<fs::path> inputs(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != "README.md") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Feeds each file to the target; returns how many were fed.
std::size_t replay(const std::string& target, const fs::path& dir) {
  const panelboot::fuzz::Entry run = panelboot::fuzz::entry(target);
  EXPECT_NE(run, nullptr) << target;
  if (!run) return 0;
  std::size_t n = 0;
  for (const fs::path& p : inputs(dir)) {
    SCOPED_TRACE(p.string());
    const std::string bytes = slurp(p);
    try {
      run(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    } catch (const panelboot::Error&) {
      // a correct outcome: the input was refused with a message
    } catch (const std::exception& e) {
      ADD_FAILURE() << target << " on " << p << ": not a panelboot::Error: " << e.what();
    } catch (...) {
      ADD_FAILURE() << target << " on " << p << ": a non-standard exception";
    }
    ++n;
  }
  return n;
}

const fs::path kSource = PB_SOURCE_DIR;

class FuzzInputs : public ::testing::TestWithParam<const char*> {};

TEST_P(FuzzInputs, RegressionsGiveSuccessOrAnError) {
  replay(GetParam(), kSource / "tests/data/fuzz-regressions" / GetParam());
}

TEST_P(FuzzInputs, SeedCorpusGivesSuccessOrAnError) {
  EXPECT_GT(replay(GetParam(), kSource / "fuzz/corpus" / GetParam()), 0u) << "no seed inputs";
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzInputs, ::testing::Values("csv", "dta", "formula", "where"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace

// The CSV fuzzer's check (fuzz::csv_reading both ways) on random tables written to reach it.
// The fast path for records of plain numbers against the tokenizer reading every record: random
// tables mixing plain records with everything that must leave the fast path (quotes, padding, a
// '+', NA and '.', inf and nan, out-of-range and malformed numbers, text appearing midway, blank
// lines, CRLF, note lines, a missing final newline, a record with a field too many or too few)
// give the same frame, field by field and bit by bit, or the same error.
TEST(CsvFastPath, PlainRecordsGiveTheTokenizersFrame) {
  PB_FRESH_RNG(rng);
  std::uniform_int_distribution<int> pick(0, 99);
  std::normal_distribution<double> nd;
  const char* odd[] = {"\"1.5\"", " 2", "3 ", "+4", "NA", ".", "inf", "-nan", "1e400", "1e", "0x10", "abc",
                       "\"a,b\"", "1.5.2", "-", "+-1", "\"\"", "1e-400", "\"7\"\"\""};
  int errors = 0, texts = 0;
  for (int rep = 0; rep < 300; ++rep) {
    const char sep = ",;\t"[rep % 3];
    const bool crlf = pick(rng) < 30;
    const int n_col = 1 + pick(rng) % 6, n_row = 1 + pick(rng) % 40;
    std::string t = pick(rng) < 20 ? "# panelboot note\n" : "";
    for (int j = 0; j < n_col; ++j) t += (j ? std::string(1, sep) : "") + "c" + std::to_string(j);
    t += crlf ? "\r\n" : "\n";
    for (int i = 0; i < n_row; ++i) {
      if (pick(rng) < 3) t += crlf ? "\r\n" : "\n";  // a blank line
      const int fields = pick(rng) < 2 ? n_col + (pick(rng) < 50 ? 1 : -1) : n_col;
      for (int j = 0; j < fields; ++j) {
        char buf[64];
        const int r = pick(rng);
        if (r < 8) std::snprintf(buf, sizeof buf, "%s", odd[pick(rng) % (sizeof odd / sizeof *odd)]);
        else if (r < 12) buf[0] = '\0';
        else if (r < 30) std::snprintf(buf, sizeof buf, "%d", pick(rng) - 50);
        else std::snprintf(buf, sizeof buf, r < 65 ? "%.17g" : "%.4g", std::ldexp(nd(rng), pick(rng) % 60 - 30));
        t += (j ? std::string(1, sep) : "") + buf;
      }
      if (i + 1 < n_row || pick(rng) < 80) t += crlf ? "\r\n" : "\n";
    }
    const std::string fast = panelboot::fuzz::csv_reading(t, true), tokenizer = panelboot::fuzz::csv_reading(t, false);
    ASSERT_EQ(fast, tokenizer) << "rep " << rep << "\n" << t;
    errors += fast.rfind("error: ", 0) == 0;
    texts += fast.find("\x1fs") != std::string::npos;
  }
  EXPECT_GT(errors, 5);   // the planted field counts were met
  EXPECT_GT(texts, 20);   // and text columns
}

// Plain records read ahead in stretches cut at newlines: a stretch's rows stand only where the
// sequential pass arrives at its first byte as a record begins. Random tables with quoted fields
// that hold newlines (a stretch may begin inside one), blank lines, text columns appearing midway,
// CRLF, note lines, the three delimiters, '.', '+', a Windows-1252 byte and bad records, cut into
// 2 to 9 stretches of any length, give the tokenizer's frame or error, line numbers included.
TEST(CsvFastPath, StretchesReadAheadGiveTheTokenizersFrame) {
  PB_FRESH_RNG(rng);
  std::uniform_int_distribution<int> pick(0, 99);
  std::normal_distribution<double> nd;
  const char* odd[] = {"\"1.5\n2\"", "\"x\n\"", "\"\n3,4\n5\"", "NA",     "abc", "\"7\"", " 8",
                       "1e400",      ".",       "+2",           "caf\xe9"};
  int errors = 0, texts = 0;
  for (int rep = 0; rep < 400; ++rep) {
    const bool crlf = pick(rng) < 20;
    const std::string sep(1, ",;\t"[rep % 3]);
    const int n_col = 1 + pick(rng) % 4, n_row = 1 + pick(rng) % 60;
    std::string t = pick(rng) < 15 ? "# panelboot note\n" : "";
    for (int j = 0; j < n_col; ++j) t += (j ? sep : "") + std::string("c") + std::to_string(j);
    t += crlf ? "\r\n" : "\n";
    const int odd_share = pick(rng) % 6;  // some tables are all plain records, some rarely plain
    for (int i = 0; i < n_row; ++i) {
      if (pick(rng) < 3) t += crlf ? "\r\n" : "\n";  // a blank line
      const int fields = pick(rng) < 1 ? n_col + 1 : n_col;
      for (int j = 0; j < fields; ++j) {
        char buf[64];
        const int r = pick(rng);
        if (r < odd_share)
          std::snprintf(buf, sizeof buf, "%s", odd[pick(rng) % (sizeof odd / sizeof *odd)]);
        else if (r < odd_share + 3)
          buf[0] = '\0';
        else
          std::snprintf(buf, sizeof buf, "%.17g", std::ldexp(nd(rng), pick(rng) % 20 - 10));
        t += (j ? sep : "") + std::string(buf);
      }
      if (i + 1 < n_row || pick(rng) < 80) t += crlf ? "\r\n" : "\n";
    }
    const std::string tokenizer = panelboot::fuzz::csv_reading(t, false);
    for (std::size_t stretches = 2; stretches <= 9; ++stretches)
      ASSERT_EQ(panelboot::fuzz::csv_reading(t, true, stretches), tokenizer)
          << "rep " << rep << ", " << stretches << " stretches\n"
          << t;
    errors += tokenizer.rfind("error: ", 0) == 0;
    texts += tokenizer.find("\x1fs") != std::string::npos;
  }
  EXPECT_GT(errors, 20);  // the planted bad records were met
  EXPECT_GT(texts, 20);   // and text columns
}

// A text long enough for the default stretches (16 MiB each): long runs of plain records (so a
// stretch's rows are copied into the frame by the thread team, from 2^16 rows) broken by a few
// planted records that leave the fast path (a quoted number, NA, a blank line) and a word late in
// the text (its column turns to text there). Read on one thread, on three (two stretches), and
// with every record through the tokenizer: the same frame bit for bit, line numbers included.
TEST(CsvFastPath, LargeTextReadsTheSameOnOneThreadOrSeveral) {
#ifndef _OPENMP
  GTEST_SKIP() << "built without OpenMP: one thread only";
#else
  PB_FRESH_RNG(rng);
  std::normal_distribution<double> nd;
  std::string t = "unit,time,y,x1,x2,label\n";
  const std::size_t rows = 700000;  // about 44 MB: two stretches of 16 MiB or more
  for (std::size_t i = 0; i < rows; ++i) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%zu,%zu,%.17g,%.17g,%.10g,", i / 20, i % 20, nd(rng), nd(rng),
                  nd(rng));
    t += buf;
    const std::size_t pct = i * 100 / rows, step = rows / 100;
    const bool planted = i % step == 7;  // once in each percent of the rows
    t += planted && pct == 10   ? "\"7\""
         : planted && pct == 30 ? "NA"
         : planted && pct == 90 ? "word"
                                : "1";
    t += planted && pct == 62 ? "\n\n" : "\n";
  }
  const auto frame_as_text = [&](int threads, bool plain_records) {
    omp_set_num_threads(threads);
    panelboot::CsvOptions opts;
    opts.plain_records = plain_records;
    const panelboot::DataFrame df = panelboot::read_csv_text(t, "large.csv", opts);
    std::string out;
    for (const panelboot::Column& c : df.columns) {
      out += c.name + (c.is_string() ? " text " : " number ") + std::to_string(c.n_numeric_fields) +
             '\n';
      out.append(reinterpret_cast<const char*>(c.num.data()), c.num.size() * sizeof(double));
      out.append(reinterpret_cast<const char*>(c.codes.data()),
                 c.codes.size() * sizeof(std::int32_t));
    }
    out.append(reinterpret_cast<const char*>(df.row_line.data()),
               df.row_line.size() * sizeof(std::uint32_t));
    return std::make_pair(out, df);
  };
  const int threads_before = omp_get_max_threads();
  const auto tokenizer = frame_as_text(1, false), one = frame_as_text(1, true),
             three = frame_as_text(3, true);
  omp_set_num_threads(threads_before);
  EXPECT_TRUE(one.first == tokenizer.first);
  EXPECT_TRUE(three.first == tokenizer.first);
  ASSERT_EQ(three.second.n_rows(), rows);
  EXPECT_EQ(three.second.row_line.back(), rows + 2);  // the header, the rows and one blank line
  EXPECT_TRUE(three.second.columns[5].is_string());   // "word" made the label a text column
  EXPECT_FALSE(three.second.columns[2].is_string());
#endif
}
