#pragma once
// Stock-Yogo (2005) weak-identification critical values, as ivreg2 prints them beside the
// Cragg-Donald and Kleibergen-Paap rk Wald F.
#include <vector>

#include "panelboot/estimate.hpp"

namespace panelboot::detail {

struct StockYogoRow {
  bool bias;  // Table 5.1 (relative bias 5/10/20/30%) or Table 5.2 (size 10/15/20/25%)
  int p, L;
  double value[4];
};

// The relative-bias values (when tabulated: L >= p + 2), then the size values (p <= 2), for p
// endogenous regressors and L excluded instruments; empty outside the tables (p > 3, L > 100).
std::vector<StockYogoValue> stock_yogo_values(int p, int L);

}  // namespace panelboot::detail
