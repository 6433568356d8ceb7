// The data-movement and elementwise ops of the vision path on the GPU (SigLIP embeddings, the
// projectors' spatial-to-channel and erf GELU, the dynamic-S2 merge). Each is the CPU formula of
// its oracle, element for element:
//   im2col_patches           ops/cpu/patch_embed.cpp (columns ordered (ci, ky, kx))
//   add_position_embeddings  model/siglip.cpp (x += pos_emb, broadcast over tiles)
//   gelu_bias                ops/cpu/activation.h gelu of (in + bias)
//   spatial_to_channel       model/projector.h spatial_to_channel
//   gather_tokens            model/vision_encoder.cpp (feature_select, the K-fold channel repeat)
//   s2_merge_features        model/s2_merge.h s2_merge_features (chessboard merge, area resize,
//                            channel concat, chessboard split, in one pass)
//   merge_chessboard         model/s2_merge.h merge_chessboard
// Feature inputs are SigLIP outputs (n_tiles, P, C) fp32 read through (item_stride, first_token):
// token t of item n is row n * item_stride + first_token + t, so "patch" feature selection (drop
// token 0) needs no copy. Host-callable launchers, device pointers, no CUDA headers; out dtypes are
// kF32 or a 16-bit compute dtype (kBF16 / kF16, rounded to nearest even).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace vila::cuda {

// pixels (batch, cin, size, size) -> cols (batch * grid², col_stride) of dtype (kBF16/kF16),
// grid = size / patch (a valid convolution drops the remainder). Row b * grid² + py * grid + px,
// column (ci * patch + ky) * patch + kx holds pixels[b, ci, py*patch + ky, px*patch + kx]; columns
// cin * patch² .. col_stride-1 are written as zeros (a row stride padded to 8 keeps GEMM rows
// 16-byte aligned; the weight's padding columns then multiply zeros). pixel_dtype: kF32 (rounded
// to dtype here) or dtype itself (already rounded, e.g. on the host: half the bytes to upload,
// the same columns).
Status im2col_patches(void* cols, DType dtype, int64_t col_stride, const void* pixels,
                      DType pixel_dtype, int64_t batch, int64_t cin, int64_t size, int64_t patch,
                      void* stream);

// x (batch, tokens, channels) fp32 += pos (tokens, channels) fp32.
Status add_position_embeddings(float* x, const float* pos, int64_t batch, int64_t tokens,
                               int64_t channels, void* stream);

// out (rows, cols) of out_dtype = gelu(in + bias): erf form 0.5 v (1 + erf(v / sqrt 2)) (nn.GELU(),
// the projectors) or, with tanh_approx, 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v³))). in fp32;
// bias (cols) fp32 or nullptr; out may alias in when out_dtype is kF32.
Status gelu_bias(void* out, DType out_dtype, const float* in, const float* bias, int64_t rows,
                 int64_t cols, bool tanh_approx, void* stream);

// Items of side*side tokens (row-major grid) of `channels` fp32 -> out (items, g², k² * channels)
// of out_dtype, g = ceil(side / k): out[n, i*g + j, (dr*k + dc)*C + c] = x[k*i + dr, k*j + dc, c]
// with zeros where k*i + dr or k*j + dc >= side (VILA's flat_square padding).
Status spatial_to_channel(void* out, DType out_dtype, const float* in, int64_t items,
                          int64_t item_stride, int64_t first_token, int64_t side, int64_t channels,
                          int64_t factor, void* stream);

// out (items, tokens, repeat * channels) of out_dtype: out[n, t, r*C + c] = token t of item n,
// channel c, for r < repeat. repeat 1 compacts (and converts); repeat K is dynamic-S2's
// [f | f | f] for media without a block grid.
Status gather_tokens(void* out, DType out_dtype, const float* in, int64_t items,
                     int64_t item_stride, int64_t first_token, int64_t tokens, int64_t channels,
                     int64_t repeat, void* stream);

// The dynamic-S2 merge of one image. Scale s has a grid_h[s] x grid_w[s] tile grid; the features
// hold the tiles of scale 0, then scale 1, ... (row-major in each), each g*g tokens of C channels.
// Per scale: merge the tiles into a (grid_h*g, grid_w*g) map, area-resize it (PyTorch
// adaptive_avg_pool2d: window [floor(o*In/Out), ceil((o+1)*In/Out)), fp32 sum in (ih, iw) order,
// then / kh / kw) to (out_rows*g, out_cols*g), and concatenate the scales along channels; then
// split that map into out_rows*out_cols blocks, row-major:
//   out (out_rows*out_cols, g*g, n_scales*C) fp32, block channel s*C + c = scale s's channel c.
// Two optional rearrangements ride in the same pass (no extra kernels):
//   factor k > 1  the projector's spatial-to-channel of each block (see spatial_to_channel): the
//                 block's token (i, j), i, j < G = ceil(g / k), holds channels
//                 (dr*k + dc)*K*C + s*C + c = block position (k*i + dr, k*j + dc), scale s,
//                 channel c, zero where k*i + dr or k*j + dc >= g:
//                   out (out_rows*out_cols, G*G, k*k*K*C)
//   raster        rows in the order of the chessboard-merged map of the blocks instead of block
//                 by block: token (i, j) of block (bi, bj) is row (bi*G + i) * out_cols*G +
//                 bj*G + j. Everything after the spatial-to-channel in a projector is row-wise,
//                 so the projected rows then come out in VILA's merge_chessboard order.
// One CTA per (output row, spatial sub-position, scale); the window bounds are computed once per
// CTA in 32-bit arithmetic and the threads walk the channels (float4 when C % 4 == 0).
constexpr int kMaxS2Scales = 8;
struct S2MergeArgs {
  float* out = nullptr;
  const float* features = nullptr;
  int64_t item_stride = 0;  // tokens per tile in features (P)
  int64_t first_token = 0;  // tokens skipped at the start of each tile
  int64_t g = 0;            // tile side in tokens
  int64_t channels = 0;     // C
  int n_scales = 0;
  int64_t grid_h[kMaxS2Scales] = {};
  int64_t grid_w[kMaxS2Scales] = {};
  int64_t out_rows = 0, out_cols = 0;  // block grid of the resize scale
  int64_t factor = 1;                  // spatial-to-channel k (1: none)
  bool raster = false;                 // chessboard-merged row order
};
Status s2_merge_features(const S2MergeArgs& args, void* stream);

// tiles (n_h*n_w, g*g, C) fp32 -> map (n_h*g, n_w*g, C) fp32: tile i*n_w + j lands at block (i, j).
Status merge_chessboard(float* map, const float* tiles, int64_t n_h, int64_t n_w, int64_t g,
                        int64_t channels, void* stream);

}  // namespace vila::cuda
