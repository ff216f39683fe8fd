// libFuzzer driver: fuzz/fuzz_targets.hpp says what panelboot::fuzz::csv does. A panelboot::Error
// is a correct outcome; anything else that escapes (Finding, another exception), a crash, a
// sanitizer report, a leak or a timeout is a finding.
#include "fuzz_targets.hpp"
#include "panelboot/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    panelboot::fuzz::csv(data, size);
  } catch (const panelboot::Error&) {
  }
  return 0;
}
