// Every input the fuzzers (fuzz/) found a bug with, replayed through the fuzz target's own entry
// point (fuzz/fuzz_targets.cpp): tests/data/fuzz-regressions/<target>/* (the README there says
// what each was). The seed corpora (fuzz/corpus/<target>/*) run too, so the harness itself is
// built and run by the ordinary suite. Success or a panelboot::Error is the only correct outcome;
// any other exception fails the test here, and a crash or a sanitizer report (scripts/
// test-sanitize) fails the test binary.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_targets.hpp"
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
