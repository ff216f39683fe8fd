// power's regressions over one fixed design on the CPU: the shared column kernel
// (kernels/power_batch.hpp) over blocks of the batch's columns, blocks in parallel.
#include <algorithm>

#include "backend/cpu/cpu.hpp"
#include "panelboot/backend.hpp"

namespace panelboot::cpu {

FixedDesignResult fixed_design_ols(const FixedDesign& d, const FixedDesignBatch& bt) {
  FixedDesignResult out = kernels::fixed_design_result(d, bt);
  const std::int64_t block = kernels::kFixedDesignBlock, n_blocks = (bt.nb + block - 1) / block;
  const bool team = n_blocks > 1 && static_cast<double>(d.n) * static_cast<double>(d.k + 2) * static_cast<double>(bt.nb) > 1e6;
  RegionErrors errors;
#pragma omp parallel for schedule(static) if (team)
  for (std::int64_t blk = 0; blk < n_blocks; ++blk)
    errors.guard([&] { kernels::fixed_design_columns(d, bt, blk * block, std::min(bt.nb, (blk + 1) * block), out); });
  errors.rethrow();
  return out;
}

}  // namespace panelboot::cpu
