// libFuzzer target: SafetensorsFile::parse on arbitrary bytes must never crash, hang or read out
// of bounds, and every entry it accepts must lie inside the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "format/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = vila::SafetensorsFile::parse(data, size, "fuzz.safetensors");
  if (!file.ok()) {
    if (file.status().message().empty()) std::abort();  // every error explains itself
    return 0;
  }
  uint64_t sum = 0;
  for (const auto& [name, entry] : (*file)->entries()) {
    if (entry.nbytes != 0 && (entry.data < data || entry.data + entry.nbytes > data + size)) {
      std::abort();
    }
    if (static_cast<int64_t>(entry.nbytes) != entry.view().nbytes()) std::abort();
    // Touch every byte so that ASan sees any out-of-bounds view.
    for (size_t i = 0; i < entry.nbytes; ++i) sum += entry.data[i];
  }
  for (const auto& [key, value] : (*file)->metadata()) sum += key.size() + value.size();
  volatile uint64_t sink = sum;
  (void)sink;
  return 0;
}
