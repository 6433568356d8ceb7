// Pillow-exact resampling: the result of `PIL.Image.resize((width, height))` on an RGB image with
// the default filter (BICUBIC, a = -0.5, antialiased: support scales with the reduction factor,
// reducing_gap None), including Pillow's 22-bit fixed-point coefficients and rounding.
#pragma once

#include "core/status.h"
#include "vision/image.h"

namespace vila {

// InvalidArgument for a non-positive size or an empty source. Same size returns a copy.
StatusOr<Image> resize_bicubic(const Image& src, int width, int height);

}  // namespace vila
