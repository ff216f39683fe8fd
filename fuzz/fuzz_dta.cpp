// libFuzzer driver: fuzz/fuzz_targets.hpp says what panelboot::fuzz::dta does. A panelboot::Error
// is a correct outcome; anything else that escapes (Finding, another exception), a crash, a
// sanitizer report, a leak or a timeout is a finding.
#include <cstdio>
#include <cstdlib>

#include "fuzz_targets.hpp"
#include "panelboot/error.hpp"

// Stops the run at once where the reader cannot run (ReadStat is loaded at run time).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  try {
    panelboot::fuzz::require_dta_reader();
  } catch (const panelboot::Error& e) {
    std::fprintf(stderr, "fuzz_dta: %s\n", e.what());
    std::exit(2);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    panelboot::fuzz::dta(data, size);
  } catch (const panelboot::Error&) {
  }
  return 0;
}
