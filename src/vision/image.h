// Image: decoded 8-bit RGB pixels, and loading from JPEG / PNG files or memory.
//
// Decoding matches what VILA does with `PIL.Image.open(path).convert("RGB")` (Pillow on Debian's
// libjpeg-turbo): ISLOW IDCT with fancy upsampling for JPEG, alpha dropped WITHOUT compositing,
// gray replicated into three channels, palettes expanded, 16-bit samples reduced to their high
// byte. EXIF orientation is NOT applied by default (VILA does not call ImageOps.exif_transpose).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace vila {

// Interleaved RGB, row-major: pixel (x, y) channel c is at pixels[(y * width + x) * 3 + c].
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;

  Image() = default;
  Image(int w, int h) : width(w), height(h), pixels(static_cast<size_t>(w) * h * 3) {}
  bool empty() const { return width == 0 || height == 0; }
  uint8_t* row(int y) { return pixels.data() + static_cast<size_t>(y) * width * 3; }
  const uint8_t* row(int y) const { return pixels.data() + static_cast<size_t>(y) * width * 3; }
};

// Pillow raises DecompressionBombError above 2 * Image.MAX_IMAGE_PIXELS = 2 * 89478485 pixels.
constexpr int64_t kPillowMaxImagePixels = 178956970;

struct ImageLoadOptions {
  // Images with width * height above this are refused from their header, before any pixel
  // buffer is allocated (ResourceExhausted).
  int64_t max_pixels = kPillowMaxImagePixels;
  // Rotate / flip JPEGs by their EXIF Orientation tag (ImageOps.exif_transpose). Off by default
  // because the reference (VILA) does not do it.
  bool apply_exif_orientation = false;
};

enum class ImageFormat { kUnknown, kJpeg, kPng };

// Sniffs the magic bytes.
ImageFormat detect_image_format(const uint8_t* data, size_t size);

// Errors name the file: NotFound (missing), DataLoss (empty, truncated, corrupt), Unimplemented
// (unsupported format), ResourceExhausted (over max_pixels).
StatusOr<Image> load_image(const std::string& path, const ImageLoadOptions& options = {});
// `label` names the source in error messages (a path, "upload #3", ...).
StatusOr<Image> load_image_from_memory(const uint8_t* data, size_t size, const std::string& label,
                                       const ImageLoadOptions& options = {});

// EXIF orientation (1..8) from a JPEG's APP1 segment; 1 when absent or unreadable.
int jpeg_exif_orientation(const uint8_t* data, size_t size);
// Applies an EXIF orientation value like PIL.ImageOps.exif_transpose.
Image apply_exif_orientation(const Image& image, int orientation);

// Crops [x, x + w) x [y, y + h); the box must lie inside the image (InvalidArgument otherwise).
StatusOr<Image> crop_image(const Image& image, int x, int y, int w, int h);

// Internal decoders (image_jpeg.cpp, image_png.cpp); `label` is used in messages.
StatusOr<Image> decode_jpeg(const uint8_t* data, size_t size, const std::string& label,
                            const ImageLoadOptions& options);
StatusOr<Image> decode_png(const uint8_t* data, size_t size, const std::string& label,
                           const ImageLoadOptions& options);

}  // namespace vila
