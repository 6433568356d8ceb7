// Format dispatch, file reading, EXIF orientation and cropping.
#include "vision/image.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

namespace vila {
namespace {

uint32_t read_u16(const uint8_t* p, bool little) {
  return little ? (p[0] | (p[1] << 8)) : ((p[0] << 8) | p[1]);
}
uint32_t read_u32(const uint8_t* p, bool little) {
  return little ? (p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24))
                : ((static_cast<uint32_t>(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3]);
}

// Orientation from a TIFF-structured EXIF block (after "Exif\0\0"); 0 if not found.
int tiff_orientation(const uint8_t* tiff, size_t size) {
  if (size < 8) return 0;
  bool little;
  if (tiff[0] == 'I' && tiff[1] == 'I') {
    little = true;
  } else if (tiff[0] == 'M' && tiff[1] == 'M') {
    little = false;
  } else {
    return 0;
  }
  if (read_u16(tiff + 2, little) != 42) return 0;
  const uint32_t ifd = read_u32(tiff + 4, little);
  if (ifd > size || size - ifd < 2) return 0;
  const uint32_t count = read_u16(tiff + ifd, little);
  for (uint32_t i = 0; i < count; ++i) {
    const size_t entry = ifd + 2 + static_cast<size_t>(i) * 12;
    if (entry + 12 > size) return 0;
    if (read_u16(tiff + entry, little) != 0x0112) continue;
    const uint32_t type = read_u16(tiff + entry + 2, little);
    if (type == 3) return static_cast<int>(read_u16(tiff + entry + 8, little));  // SHORT
    if (type == 4) return static_cast<int>(read_u32(tiff + entry + 8, little));  // LONG
    return 0;
  }
  return 0;
}

}  // namespace

ImageFormat detect_image_format(const uint8_t* data, size_t size) {
  if (size >= 2 && data[0] == 0xFF && data[1] == 0xD8) return ImageFormat::kJpeg;
  static const uint8_t kPngMagic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 8 && std::memcmp(data, kPngMagic, 8) == 0) return ImageFormat::kPng;
  return ImageFormat::kUnknown;
}

int jpeg_exif_orientation(const uint8_t* data, size_t size) {
  if (detect_image_format(data, size) != ImageFormat::kJpeg) return 1;
  size_t pos = 2;
  while (pos + 4 <= size) {
    if (data[pos] != 0xFF) return 1;
    const uint8_t marker = data[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {
      pos += 2;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) return 1;  // start of scan / end: no EXIF before it
    const size_t length = read_u16(data + pos + 2, false);
    if (length < 2 || pos + 2 + length > size) return 1;
    const uint8_t* payload = data + pos + 4;
    const size_t payload_size = length - 2;
    if (marker == 0xE1 && payload_size >= 6 && std::memcmp(payload, "Exif\0\0", 6) == 0) {
      const int orientation = tiff_orientation(payload + 6, payload_size - 6);
      return orientation >= 1 && orientation <= 8 ? orientation : 1;
    }
    pos += 2 + length;
  }
  return 1;
}

Image apply_exif_orientation(const Image& image, int orientation) {
  if (orientation < 2 || orientation > 8) return image;
  const int w = image.width;
  const int h = image.height;
  const bool swap = orientation >= 5;
  Image out(swap ? h : w, swap ? w : h);
  for (int y = 0; y < out.height; ++y) {
    uint8_t* dst = out.row(y);
    for (int x = 0; x < out.width; ++x) {
      int sx = x;
      int sy = y;
      switch (orientation) {
        case 2:
          sx = w - 1 - x;
          break;  // FLIP_LEFT_RIGHT
        case 3:
          sx = w - 1 - x;
          sy = h - 1 - y;
          break;  // ROTATE_180
        case 4:
          sy = h - 1 - y;
          break;  // FLIP_TOP_BOTTOM
        case 5:
          sx = y;
          sy = x;
          break;  // TRANSPOSE
        case 6:
          sx = y;
          sy = h - 1 - x;
          break;  // ROTATE_270 (clockwise 90)
        case 7:
          sx = w - 1 - y;
          sy = h - 1 - x;
          break;  // TRANSVERSE
        case 8:
          sx = w - 1 - y;
          sy = x;
          break;  // ROTATE_90 (counter-clockwise)
        default:
          break;
      }
      std::memcpy(dst + 3 * x, image.row(sy) + 3 * sx, 3);
    }
  }
  return out;
}

StatusOr<Image> crop_image(const Image& image, int x, int y, int w, int h) {
  if (x < 0 || y < 0 || w < 0 || h < 0 || x + w > image.width || y + h > image.height) {
    return invalid_argument("crop box (" + std::to_string(x) + ", " + std::to_string(y) + ", " +
                            std::to_string(w) + "x" + std::to_string(h) + ") outside a " +
                            std::to_string(image.width) + "x" + std::to_string(image.height) +
                            " image");
  }
  Image out(w, h);
  for (int r = 0; r < h; ++r) {
    std::memcpy(out.row(r), image.row(y + r) + 3 * static_cast<size_t>(x),
                3 * static_cast<size_t>(w));
  }
  return out;
}

StatusOr<Image> load_image_from_memory(const uint8_t* data, size_t size, const std::string& label,
                                       const ImageLoadOptions& options) {
  if (size == 0 || data == nullptr) return data_loss(label + ": empty image file");
  if (options.max_pixels < 0) return invalid_argument(label + ": max_pixels must be >= 0");
  StatusOr<Image> image = Status(StatusCode::kInternal, "");
  switch (detect_image_format(data, size)) {
    case ImageFormat::kJpeg:
      image = decode_jpeg(data, size, label, options);
      break;
    case ImageFormat::kPng:
      image = decode_png(data, size, label, options);
      break;
    default:
      return unimplemented(label + ": not a JPEG or PNG image (unrecognised header bytes)");
  }
  if (!image.ok()) return image.status();
  if (options.apply_exif_orientation) {
    const int orientation = jpeg_exif_orientation(data, size);
    if (orientation != 1) return apply_exif_orientation(*image, orientation);
  }
  return image;
}

StatusOr<Image> load_image(const std::string& path, const ImageLoadOptions& options) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return not_found(path + ": no such file");
  if (std::filesystem::is_directory(path, ec)) return invalid_argument(path + ": is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(path + ": cannot open");
  // Sniff the format first so that a large non-image file is not read whole.
  uint8_t head[8] = {};
  in.read(reinterpret_cast<char*>(head), sizeof(head));
  const size_t got = static_cast<size_t>(in.gcount());
  if (got == 0) return data_loss(path + ": empty image file");
  if (detect_image_format(head, got) == ImageFormat::kUnknown && got == sizeof(head)) {
    return unimplemented(path + ": not a JPEG or PNG image (unrecognised header bytes)");
  }
  std::vector<uint8_t> bytes(head, head + got);
  bytes.insert(bytes.end(), std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) return data_loss(path + ": read error");
  return load_image_from_memory(bytes.data(), bytes.size(), path, options);
}

}  // namespace vila
