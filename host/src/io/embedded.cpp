#include <string>

#include "panelboot/data_frame.hpp"

namespace panelboot {

extern const unsigned char kEmbeddedCsv[];
extern const std::size_t kEmbeddedCsvSize;
const char* const kEmbeddedName = "embedded:nqpf_synthetic.csv";

DataFrame embedded_dataset() {
  const std::string text(reinterpret_cast<const char*>(kEmbeddedCsv), kEmbeddedCsvSize);
  return read_csv_text(text, kEmbeddedName);
}

}  // namespace panelboot
