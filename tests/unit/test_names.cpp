// The name <-> value tables of the enumerated options (panelboot/names.hpp): every name converts
// to its value and back, aliases convert but are not offered, an unknown name is an error that
// names the quantity and the choices, and the CLI offers and accepts exactly the table's names.
#include <gtest/gtest.h>

#include "helpers.hpp"
#include "panelboot/names.hpp"

using namespace panelboot;

namespace {

template <class E, std::size_t N>
void expect_round_trip(const NameTable<E, N>& table) {
  for (const std::string& name : names_of(table)) EXPECT_EQ(name_of(table, value_of(table, name, "x")), name);
  for (const Named<E>& e : table) EXPECT_EQ(value_of(table, e.name, "x"), e.value) << e.name;
}

}  // namespace

TEST(Names, EveryTableRoundTrips) {
  expect_round_trip(kFormatNames);
  expect_round_trip(kDeviceNames);
  expect_round_trip(kWeightTypeNames);
  expect_round_trip(kPValueTypeNames);
  expect_round_trip(kEnumerateNames);
  expect_round_trip(kTiesNames);
  expect_round_trip(kPAdjustNames);
  expect_round_trip(kVcovNames);
  expect_round_trip(kDofFeNames);
  expect_round_trip(kMultiwayAdjNames);
}

TEST(Names, AliasesAreAcceptedButNotOffered) {
  EXPECT_EQ(value_of(kFormatNames, "md", "--format"), Format::kMarkdown);
  EXPECT_EQ(value_of(kFormatNames, "tex", "--format"), Format::kLatex);
  EXPECT_EQ(name_of(kFormatNames, Format::kMarkdown), "markdown");
  EXPECT_EQ(choices(kFormatNames), "text | json | markdown | latex | csv");
  EXPECT_EQ(accepted_names(kFormatNames).size(), 7u);
}

TEST(Names, AnUnknownNameNamesTheQuantityAndTheChoices) {
  try {
    value_of(kWeightTypeNames, "rademaker", "--weight-type");
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_EQ(std::string(e.what()), "--weight-type 'rademaker': choose rademacher, mammen, webb, normal or gamma");
  }
}

TEST(Names, TheCliOffersTheTablesNames) {
  const pbtest::CliRun help = pbtest::run({"wild", "--help"});
  EXPECT_NE(help.out.find("rademacher | mammen | webb | normal | gamma"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("symmetric | equal-tailed | lower | upper"), std::string::npos);
  EXPECT_NE(help.out.find("--backend TEXT:{auto,cpu,cuda}"), std::string::npos);
  // the undocumented gpu alias is gone: an error naming the choices
  const pbtest::CliRun gpu = pbtest::run({"describe", "--backend", "gpu"});
  EXPECT_EQ(gpu.status, 2);
  EXPECT_NE(gpu.err.find("--backend: gpu not in {auto,cpu,cuda}"), std::string::npos) << gpu.err;
  // an alias of the table is accepted where the command writes the format
  EXPECT_EQ(pbtest::run({"describe", "--format", "md"}).status, 0);
}

TEST(Names, ACommandWithoutReplicationsSaysItRunsOnTheCpuWithoutABackend) {
  const pbtest::CliRun r = pbtest::run({"fit", "-f", "newqua ~ rgzn | province + year", "--verbose"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("panelboot: backend: cpu ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("); fit solves one regression per model\n"), std::string::npos) << r.err;
}

// The variance code names its type itself (the estimate layer does not see the tables): the
// names it writes are the table's.
TEST(Names, TheFitsVcovFieldIsTheTablesName) {
  for (const std::string& v : names_of(kVcovNames)) {
    std::vector<std::string> a{"fit", "-f", "newqua ~ rgzn | province + year", "--vcov", v, "--format", "json"};
    if (v == "cluster") a.insert(a.end(), {"--cluster", "province"});
    if (v == "dk") a.insert(a.end(), {"--panel", "province,year"});
    const pbtest::CliRun r = pbtest::run(a);
    ASSERT_EQ(r.status, 0) << v << ": " << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["models"][0]["vcov"], v);
  }
}
