// Spatial-to-channel forward (the projector's inference code) and backward (the inverse
// permutation); see downsample.h.
#include "train/downsample.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "model/projector.h"
#include "train/check.h"

namespace vila::train {

namespace {

struct Grid {
  int64_t items = 0, side = 0, channels = 0, factor = 0, out_side = 0;
};

// The grid of x (n_items, s·s, C) and the expected out shape; InvalidArgument otherwise.
StatusOr<Grid> check_grid(const char* op, const TensorView& x, const TensorView& out,
                          int64_t factor) {
  VILA_RETURN_IF_ERROR(cpu::check_f32(op, "x", x));
  VILA_RETURN_IF_ERROR(cpu::check_f32(op, "out", out));
  if (x.shape.rank != 3 || factor <= 0) {
    return invalid_argument(std::string(op) + ": need x (n_items, s*s, C) and factor > 0, got " +
                            x.shape.to_string() + ", factor " + std::to_string(factor));
  }
  Grid g;
  g.items = x.dim(0), g.channels = x.dim(2), g.factor = factor;
  g.side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(x.dim(1)))));
  if (g.side * g.side != x.dim(1)) {
    return invalid_argument(std::string(op) + ": " + std::to_string(x.dim(1)) +
                            " tokens per item do not form a square grid");
  }
  g.out_side = (g.side + factor - 1) / factor;
  const Shape expected{g.items, g.out_side * g.out_side, factor * factor * g.channels};
  if (out.shape != expected || (out.empty() && out.numel() > 0) || (x.empty() && x.numel() > 0)) {
    return invalid_argument(std::string(op) + ": out " + out.shape.to_string() + ", expected " +
                            expected.to_string());
  }
  return g;
}

}  // namespace

int64_t spatial_to_channel_tokens(int64_t side, int64_t factor) {
  const int64_t g = (side + factor - 1) / factor;
  return g * g;
}

Status spatial_to_channel_forward(const TensorView& out, const TensorView& x, int64_t factor) {
  VILA_ASSIGN_OR_RETURN(const Grid g, check_grid("spatial_to_channel", x, out, factor));
  const int64_t in_item = g.side * g.side * g.channels;
  const int64_t out_item = g.out_side * g.out_side * factor * factor * g.channels;
  for (int64_t item = 0; item < g.items; ++item) {
    spatial_to_channel(x.f32() + item * in_item, g.side, g.channels, factor,
                       out.f32() + item * out_item);
  }
  return ok_status();
}

Status spatial_to_channel_backward(const TensorView& dx, const TensorView& dout, int64_t factor) {
  VILA_ASSIGN_OR_RETURN(const Grid g, check_grid("spatial_to_channel backward", dx, dout, factor));
  const int64_t s = g.side, c = g.channels, k = factor, gs = g.out_side;
  const int64_t in_item = s * s * c, out_item = gs * gs * k * k * c;
  for (int64_t item = 0; item < g.items; ++item) {
    const float* src = dout.f32() + item * out_item;
    float* dst = dx.f32() + item * in_item;
    for (int64_t i = 0; i < gs; ++i) {
      for (int64_t j = 0; j < gs; ++j) {
        const float* token = src + (i * gs + j) * k * k * c;  // (k·k·C): dr, dc, c
        for (int64_t dr = 0; dr < k; ++dr) {
          for (int64_t dc = 0; dc < k; ++dc) {
            const int64_t r = k * i + dr, col = k * j + dc;
            if (r >= s || col >= s) continue;  // padding: no input behind it
            const float* from = token + (dr * k + dc) * c;
            std::copy(from, from + c, dst + (r * s + col) * c);
          }
        }
      }
    }
  }
  return ok_status();
}

}  // namespace vila::train
