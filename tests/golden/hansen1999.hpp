#pragma once
// Hansen (1999)'s investment panel (tests/data/hansen1999_invest.csv): the options of his
// program's run and the numbers it printed (hansen1999_expected.json), shared by the golden
// suite and the unit tests.
#include <fstream>

#include "helpers.hpp"
#include "panelboot/threshold.hpp"

namespace {
inline panelboot::ThresholdOptions hansen_options(int K, std::int64_t B) {
  panelboot::ThresholdOptions o;
  o.formula = "inva ~ l(vala,1) + I(l(vala,1)^2) + I(l(vala,1)^3) + l(debta,1) + I(l(vala,1)*l(debta,1)) | id";
  o.regime = {"l(cfa,1)"};
  o.threshold_var = "l(debta,1)";
  o.sample.panel_id = "id";
  o.sample.panel_time = "year";
  o.n_thresholds = K;
  o.n_boot = B;
  return o;
}

inline nlohmann::json expected() {
  std::ifstream in(pbtest::data_path("hansen1999_expected.json"));
  return nlohmann::json::parse(in);
}
}  // namespace
