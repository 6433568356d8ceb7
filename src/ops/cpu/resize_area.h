// Area resize of channel-last 2-D maps: torch F.interpolate(mode="area") ==
// F.adaptive_avg_pool2d, in PyTorch's arithmetic.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::cpu {

// Window of output index o along an axis of In inputs and Out outputs (PyTorch start_index /
// end_index): [floor(o * In / Out), ceil((o + 1) * In / Out)).
inline int64_t area_window_begin(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
inline int64_t area_window_end(int64_t o, int64_t in, int64_t out) {
  return ((o + 1) * in + out - 1) / out;
}

// in (Hi, Wi, C) f32, out (Ho, Wo, C) f32; out must not alias in. Per channel:
//   out[oh, ow] = (sum over ih in window(oh), iw in window(ow), ih-major, of in[ih, iw]) / kh / kw
// with an fp32 running sum and two divisions, as PyTorch's CPU and CUDA kernels. Integer
// upscales replicate; other ratios average windows of 1-2 samples per axis.
Status resize_area(const TensorView& out, const TensorView& in);

}  // namespace vila::cpu
