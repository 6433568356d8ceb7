// PNG decoding through libpng, converted like Pillow's PngImagePlugin + convert("RGB"): palettes
// expanded, alpha and tRNS ignored (no compositing), gray replicated, 1/2/4-bit gray scaled to
// 0..255, 16-bit samples reduced to their high byte except 16-bit gray, which Pillow opens as
// mode "I" and clips to 255 when converting to RGB. No gamma or ICC handling, like Pillow.
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstring>
#include <string>
#include <vector>

#include "vision/image.h"

namespace vila {
namespace {

struct PngContext {
  const uint8_t* data;
  size_t size;
  size_t pos;
  std::jmp_buf jump;
  char message[256];
  bool truncated;
};

void png_error_fn(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngContext*>(png_get_error_ptr(png));
  std::snprintf(ctx->message, sizeof(ctx->message), "%s", msg ? msg : "unknown error");
  std::longjmp(ctx->jump, 1);
}

void png_warning_fn(png_structp /*png*/, png_const_charp /*msg*/) {}

void png_read_fn(png_structp png, png_bytep out, png_size_t length) {
  auto* ctx = static_cast<PngContext*>(png_get_io_ptr(png));
  if (length > ctx->size - ctx->pos) {
    ctx->truncated = true;
    png_error(png, "unexpected end of data");
  }
  std::memcpy(out, ctx->data + ctx->pos, length);
  ctx->pos += length;
}

}  // namespace

StatusOr<Image> decode_png(const uint8_t* data, size_t size, const std::string& label,
                           const ImageLoadOptions& options) {
  // Objects with destructors live above setjmp so that longjmp skips no destructor.
  Image image;
  std::vector<uint8_t> buffer;
  std::vector<png_bytep> rows;
  Status status;
  PngContext ctx;
  ctx.data = data;
  ctx.size = size;
  ctx.pos = 0;
  ctx.message[0] = '\0';
  ctx.truncated = false;

  // Check the IHDR (always the first chunk) against the pixel limit before libpng allocates
  // anything: png_read_info would otherwise read up to the first IDAT first.
  if (size >= 24 && std::memcmp(data + 12, "IHDR", 4) == 0) {
    const auto be32 = [&](size_t o) {
      return (static_cast<uint32_t>(data[o]) << 24) | (data[o + 1] << 16) | (data[o + 2] << 8) |
             data[o + 3];
    };
    const uint64_t w = be32(16);  // up to 2^32 - 1 before libpng validates it
    const uint64_t h = be32(20);
    if (w * h > static_cast<uint64_t>(options.max_pixels)) {
      return resource_exhausted(label + ": image of " + std::to_string(w) + "x" +
                                std::to_string(h) + " pixels exceeds the limit of " +
                                std::to_string(options.max_pixels) + " pixels");
    }
  }
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_error_fn, png_warning_fn);
  if (png == nullptr) return internal_error(label + ": cannot create a libpng reader");
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return internal_error(label + ": cannot create a libpng reader");
  }
  if (setjmp(ctx.jump)) {
    png_destroy_read_struct(&png, &info, nullptr);
    if (ctx.truncated) return data_loss(label + ": PNG file is truncated");
    return data_loss(label + ": corrupt PNG: " + ctx.message);
  }
  png_set_read_fn(png, &ctx, png_read_fn);
  // Pillow has no per-side limit, only the total pixel count checked below.
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_read_info(png, info);

  const png_uint_32 width = png_get_image_width(png, info);
  const png_uint_32 height = png_get_image_height(png, info);
  const int color_type = png_get_color_type(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  const int64_t pixels = static_cast<int64_t>(width) * height;
  if (pixels > options.max_pixels) {
    status = resource_exhausted(label + ": image of " + std::to_string(width) + "x" +
                                std::to_string(height) + " pixels exceeds the limit of " +
                                std::to_string(options.max_pixels) + " pixels");
    png_destroy_read_struct(&png, &info, nullptr);
    return status;
  }

  const bool gray16 = color_type == PNG_COLOR_TYPE_GRAY && bit_depth == 16;
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (bit_depth == 16 && !gray16) png_set_strip_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);

  const size_t rowbytes = png_get_rowbytes(png, info);
  const int channels = png_get_channels(png, info);
  buffer.resize(rowbytes * height);
  rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = buffer.data() + rowbytes * y;
  png_read_image(png, rows.data());
  // No png_read_end: like Pillow, chunks after the image data (even a missing IEND) do not matter.
  png_destroy_read_struct(&png, &info, nullptr);

  image = Image(static_cast<int>(width), static_cast<int>(height));
  for (png_uint_32 y = 0; y < height; ++y) {
    const uint8_t* in = rows[y];
    uint8_t* out = image.row(static_cast<int>(y));
    for (png_uint_32 x = 0; x < width; ++x) {
      if (gray16) {
        const int v = (in[2 * x] << 8) | in[2 * x + 1];
        out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = static_cast<uint8_t>(std::min(v, 255));
      } else if (channels >= 3) {
        std::memcpy(out + 3 * x, in + static_cast<size_t>(channels) * x, 3);
      } else {
        const uint8_t v = in[static_cast<size_t>(channels) * x];
        out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
      }
    }
  }
  return image;
}

}  // namespace vila
