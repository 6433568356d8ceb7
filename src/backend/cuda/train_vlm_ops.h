// Element-wise and row-wise CUDA kernels of the VLM training step beyond the LLM (issue 5): the
// SigLIP tower (LayerNorm, GELU, patch im2col, position embeddings), the projector
// (spatial-to-channel downsample, Linear bias gradient) and the media splice. Activations are bf16
// (`void*` below: __nv_bfloat16), the residual stream and gradients fp32. R = rows. Every launcher
// checks its arguments (a zero count is a no-op, a negative one or a null pointer an error) and
// returns VILA_CUDA_CHECK(cudaGetLastError()); stream is a cudaStream_t or nullptr.
//
// Math (the CPU oracles: train/norm.h, train/activation.h, train/patch_embed.h,
// train/downsample.h, train/media_splice.h):
//   layer norm: μ = mean(x), r = 1 / sqrt(mean((x - μ)²) + eps), x̂ = (x - μ) r, y = w x̂ + b;
//               g = dy w,  dx (+)= r (g - mean(g) - x̂ mean(g x̂)),  dw += Σ_rows dy x̂,
//               db += Σ_rows dy   (row sums: fp32 per lane, double across lanes; dw, db: per
//               warp / block partials summed in a fixed order, partials.h)
//   gelu erf:   y = x Φ(x),                 y' = Φ(x) + x φ(x)
//   gelu tanh:  u = β (x + κ x³), y = ½ x (1 + tanh u),
//               y' = ½ (1 + tanh u) + ½ x (1 - tanh² u) β (1 + 3 κ x²)
//   im2col:     cols[i·P + py·G + px, (c·p + ky)·p + kx] = pixels[i, c, py·p + ky, px·p + kx]
//   s2c:        out[i·g + j, (dr·k + dc)·C + c] = x[(k·i + dr)·s + (k·j + dc), c]  (0: padding)
// Every reduction is deterministic (bitwise reproducible run to run): dpos loops over images;
// column sums and the LayerNorm dw / db sum per-block partials in a fixed order (partials.h).
#pragma once

#include <cstdint>

#include "core/status.h"

namespace vila::cuda {

// y (R, C) bf16, mean (R) f32, rstd (R) f32 <- x (R, C) f32, w, b (C) f32 (b may be null).
// Biased variance; row statistics summed in fp32 per lane and double across the warp (one warp per
// row), rounded to fp32.
Status train_layer_norm_forward(void* y, float* mean, float* rstd, const float* x, const float* w,
                                const float* b, int64_t rows, int64_t cols, float eps,
                                void* stream);
// dx (R, C) f32 written, or added to when accumulate (may be null: not needed); dw, db (C) f32
// added to (either may be null: frozen); dy (R, C) f32; x the forward input; cols <= 16384.
// dx16 (R, C) bf16, 8-byte aligned, when non-null: also the final dx rounded (the next GEMM's
// operand, saving a conversion pass).
Status train_layer_norm_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                                 const float* w, const float* mean, const float* rstd, int64_t rows,
                                 int64_t cols, bool accumulate, void* stream, void* dx16 = nullptr);

enum class TrainGelu { kTanh, kErf };
// y (n) bf16 <- gelu(x (n) bf16); dx (n) bf16 <- dy (n) bf16 * gelu'(x); fp32 math. dx may alias
// dy.
Status train_gelu_forward(void* y, const void* x, int64_t n, TrainGelu kind, void* stream);
Status train_gelu_backward(void* dx, const void* dy, const void* x, int64_t n, TrainGelu kind,
                           void* stream);

// cols (N·P, Cin·p·p) bf16 <- pixels (N, Cin, S, S) f32: row (i, py, px) (P = G², G = S / p,
// row-major patch grid; trailing pixels that fill no whole patch are ignored), column (c, ky, kx),
// i.e. a conv weight (C, Cin, p, p) flattened is its (C, Cin·p·p) GEMM operand: patch embeddings
// = cols · Wᵀ.
Status train_patch_im2col(void* cols, const float* pixels, int64_t n_images, int64_t channels,
                          int64_t image_size, int64_t patch, void* stream);

// x (N, P, C) f32 += pos (P, C) f32 broadcast over images.
Status train_add_position(float* x, const float* pos, int64_t n_images, int64_t tokens,
                          int64_t cols, void* stream);
// dpos (P, C) f32 += Σ_i dx (N, P, C) f32 (deterministic: one thread per element of dpos).
Status train_position_backward(float* dpos, const float* dx, int64_t n_images, int64_t tokens,
                               int64_t cols, void* stream);

// out (N) f32 += Σ_rows in (R, N) f32 (bias gradient of a Linear whose dy is fp32).
// out (N) f32 += Σ_rows in (R, N) bf16 (the bias gradient of a Linear whose dy is bf16).
Status train_column_sum_add(float* out, const void* in, int64_t rows, int64_t n, void* stream);
Status train_column_sum_add_f32(float* out, const float* in, int64_t rows, int64_t n, void* stream);

// Spatial-to-channel (downsample.h): x (items, s·s, C) f32 -> out (items, g², k·k·C) f32,
// g = ceil(s/k), zero padding; backward dx (items, s·s, C) written from dout (items, g², k·k·C).
Status train_space_to_channel(float* out, const float* x, int64_t items, int64_t side, int64_t cols,
                              int64_t factor, void* stream);
Status train_space_to_channel_backward(float* dx, const float* dout, int64_t items, int64_t side,
                                       int64_t cols, int64_t factor, void* stream);

// Media splice (media_splice.h): x (T, C) f32 rows[i] <- feats (n, C) f32; backward: dfeats
// (n, C) f32 <- dx rows[i], then dx rows[i] = 0. rows (n) device int32, distinct and in [0, T):
// the caller checks them on the host (they are not checked here).
Status train_splice_rows(float* x, const float* feats, const int32_t* rows, int64_t n, int64_t cols,
                         void* stream);
Status train_splice_rows_backward(float* dfeats, float* dx, const int32_t* rows, int64_t n,
                                  int64_t cols, void* stream);

}  // namespace vila::cuda
