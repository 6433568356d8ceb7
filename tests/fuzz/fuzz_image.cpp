// libFuzzer target: JPEG / PNG decoding from memory (vision/image.h), with and without EXIF
// orientation. The pixel limit is lowered so that headers claiming huge sizes are refused quickly
// and the fuzzer's memory limit is not hit by legitimate large allocations.
#include <cstddef>
#include <cstdint>

#include "vision/image.h"
#include "vision/resize.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vila::ImageLoadOptions options;
  options.max_pixels = 4 << 20;
  options.apply_exif_orientation = size > 0 && (data[size - 1] & 1);
  auto image = vila::load_image_from_memory(data, size, "fuzz-input", options);
  if (image.ok() && image->width <= 512 && image->height <= 512) {
    auto small = vila::resize_bicubic(*image, 7, 5);
    (void)small;
  }
  (void)vila::jpeg_exif_orientation(data, size);
  return 0;
}
