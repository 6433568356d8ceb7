// JPEG decoding through libjpeg(-turbo), set up like Pillow's JpegDecode: default ISLOW IDCT and
// fancy upsampling, YCbCr -> RGB by libjpeg, gray replicated, CMYK as Pillow's "CMYK;I" + cmyk2rgb.
// libjpeg reports fatal errors through error_exit, which must not return: we longjmp back here.
#include <csetjmp>
#include <cstdio>
#include <string>
#include <vector>

// clang-format off
#include <jpeglib.h>  // after <cstdio>: jpeglib.h needs FILE and size_t
#include <jerror.h>
// clang-format on

#include "vision/image.h"

namespace vila {
namespace {

struct JpegErrorManager {
  jpeg_error_mgr pub;  // first member: libjpeg casts cinfo->err back to this
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings are ignored like Pillow does, except premature end of data: Pillow refuses truncated
// images ("image file is truncated") unless LOAD_TRUNCATED_IMAGES is set.
void jpeg_emit_message(j_common_ptr cinfo, int msg_level) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  if (msg_level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    err->truncated = true;
    (*cinfo->err->format_message)(cinfo, err->message);
    std::longjmp(err->jump, 1);
  }
}

void jpeg_output_message(j_common_ptr /*cinfo*/) {}  // never print from library code

// Pillow's MULDIV255 and cmyk2rgb on inverted ("CMYK;I") samples.
inline uint8_t cmyk_channel(int raw_ink, int raw_k) {
  const int ink = 255 - raw_ink;
  const int nk = 255 - (255 - raw_k);
  const int tmp = ink * nk + 128;
  const int v = nk - (((tmp >> 8) + tmp) >> 8);
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

}  // namespace

StatusOr<Image> decode_jpeg(const uint8_t* data, size_t size, const std::string& label,
                            const ImageLoadOptions& options) {
  // Everything with a destructor lives above setjmp so that longjmp skips no destructor.
  Image image;
  std::vector<uint8_t> scratch;
  Status status;
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  err.truncated = false;
  err.message[0] = '\0';
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_error_exit;
  err.pub.emit_message = jpeg_emit_message;
  err.pub.output_message = jpeg_output_message;

  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    if (err.truncated) return data_loss(label + ": JPEG file is truncated (" + err.message + ")");
    return data_loss(label + ": corrupt JPEG: " + err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);

  const int64_t pixels = static_cast<int64_t>(cinfo.image_width) * cinfo.image_height;
  int channels = 0;
  if (pixels == 0) {
    status = data_loss(label + ": JPEG has zero width or height");
  } else if (pixels > options.max_pixels) {
    status =
        resource_exhausted(label + ": image of " + std::to_string(cinfo.image_width) + "x" +
                           std::to_string(cinfo.image_height) + " pixels exceeds the limit of " +
                           std::to_string(options.max_pixels) + " pixels");
  } else {
    switch (cinfo.jpeg_color_space) {
      case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        channels = 1;
        break;
      case JCS_CMYK:
      case JCS_YCCK:
        cinfo.out_color_space = JCS_CMYK;
        channels = 4;
        break;
      case JCS_RGB:
      case JCS_YCbCr:
        cinfo.out_color_space = JCS_RGB;
        channels = 3;
        break;
      default:
        status = unimplemented(label + ": unsupported JPEG color space " +
                               std::to_string(static_cast<int>(cinfo.jpeg_color_space)));
    }
  }
  if (!status.ok()) {
    jpeg_destroy_decompress(&cinfo);
    return status;
  }

  jpeg_start_decompress(&cinfo);
  image = Image(static_cast<int>(cinfo.output_width), static_cast<int>(cinfo.output_height));
  if (channels != 3) scratch.resize(static_cast<size_t>(image.width) * channels);
  while (cinfo.output_scanline < cinfo.output_height) {
    const int y = static_cast<int>(cinfo.output_scanline);
    uint8_t* out = image.row(y);
    JSAMPROW row = channels == 3 ? out : scratch.data();
    jpeg_read_scanlines(&cinfo, &row, 1);
    if (channels == 1) {
      for (int x = 0; x < image.width; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = row[x];
    } else if (channels == 4) {
      for (int x = 0; x < image.width; ++x) {
        const uint8_t* p = row + 4 * x;
        for (int c = 0; c < 3; ++c) out[3 * x + c] = cmyk_channel(p[c], p[3]);
      }
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return image;
}

}  // namespace vila
