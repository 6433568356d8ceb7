// CudaVisionEncoder, the projector side: the dynamic-S2 merge, the projector stages and the
// encode entry points (device rows, caller memory, or a new vector). Host code only; see
// vision_cuda_internal.h for the dimension legend.
#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "model/s2_merge.h"
#include "model/vision_cuda_internal.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/device.h"
#include "backend/cuda/layer_norm.h"
#include "backend/cuda/vision_ops.h"
#endif

namespace vila {

StatusOr<int64_t> vision_cuda::check_tiles(const Geometry& g, const ImageTiles& tiles) {
  const int64_t S = g.tower.image_size, L = g.tokens, N = tiles.n_tiles, cin = g.tower.n_channels;
  if (N <= 0) return invalid_argument("cuda vision encode: no tiles");
  if (tiles.size != S) {
    return invalid_argument("cuda vision encode: tiles are " + std::to_string(tiles.size) +
                            " px, the vision tower takes " + std::to_string(S));
  }
  if (static_cast<int64_t>(tiles.pixels.size()) != N * cin * S * S) {
    return invalid_argument("cuda vision encode: pixels hold " +
                            std::to_string(tiles.pixels.size()) + " floats, expected (" +
                            std::to_string(N) + ", " + std::to_string(cin) + ", " +
                            std::to_string(S) + ", " + std::to_string(S) + ")");
  }
  if ((tiles.rows > 0) != (tiles.cols > 0) || tiles.rows < 0 || tiles.cols < 0) {
    return invalid_argument("cuda vision encode: rows and cols must both be set or both be 0");
  }
  const int64_t lp = g.tokens_out(L);
  if (tiles.rows == 0) return N * lp;
  if (!g.vision.dynamic_s2) {
    return invalid_argument(
        "cuda vision encode: a block grid was given but the model is not dynamic_s2");
  }
  if (exact_sqrt(L) < 0) {
    return invalid_argument("cuda vision encode: dynamic_s2 needs square tokens");
  }
  const std::vector<int64_t>& scales = g.vision.s2_scales;
  const int64_t expected = s2_tile_count(scales, tiles.rows, tiles.cols);
  if (N != expected) {
    return invalid_argument("cuda vision encode: " + std::to_string(N) + " tiles, expected " +
                            std::to_string(expected) + " for s2_scales and a " +
                            std::to_string(tiles.rows) + "x" + std::to_string(tiles.cols) +
                            " grid");
  }
  const int64_t K = g.n_scales();
  const int64_t idx =
      g.vision.s2_resize_idx < 0 ? g.vision.s2_resize_idx + K : g.vision.s2_resize_idx;
  if (idx < 0 || idx >= K) {
    return invalid_argument("cuda vision encode: s2_resize_output_to_scale_idx " +
                            std::to_string(g.vision.s2_resize_idx) + " outside " +
                            std::to_string(K) + " scales");
  }
  const int64_t blocks = idx + 1 == K ? tiles.rows * tiles.cols
                                      : (scales[idx] / scales[0]) * (scales[idx] / scales[0]);
  return blocks * lp;
}

StatusOr<int64_t> CudaVisionEncoder::output_tokens(const ImageTiles& tiles) const {
  return vision_cuda::check_tiles(impl_->geo, tiles);
}

#ifdef VILA_WITH_CUDA

using vision_cuda::exact_sqrt;
using vision_cuda::StageGeom;

// Activations alternate between pa / pb (fp32) and p16 (the 16-bit input of the next GEMM).
StatusOr<const float*> CudaVisionEncoder::Impl::run_projector(const float* in, int64_t items,
                                                              int64_t item_stride,
                                                              int64_t first_token, int64_t tokens,
                                                              int64_t width, size_t first_stage) {
  using K = ProjectorStageKind;
  const float* cur = in;  // fp32 activation, valid while !is16
  bool is16 = false;      // the activation is in p16
  int64_t stride = item_stride, first = first_token, t = tokens, w = width;
  auto free_f32 = [&]() { return cur == pa ? pb : pa; };
  auto compact = [&]() -> Status {  // cur becomes a compact fp32 (items*t, w)
    if (stride == t && first == 0) return ok_status();
    float* out = free_f32();
    VILA_RETURN_IF_ERROR(
        cuda::gather_tokens(out, DType::kF32, cur, items, stride, first, t, w, 1, s()));
    cur = out;
    stride = t;
    first = 0;
    return ok_status();
  };
  const size_t n = stages.size();
  for (size_t i = first_stage; i < n; ++i) {
    const vision_cuda::DeviceStage& st = stages[i];
    const bool next_linear = i + 1 < n && stages[i + 1].geom.kind == K::kLinear;
    const int64_t rows = items * t;
    if (is16 && st.geom.kind != K::kLinear) {
      return internal_error("projector: a 16-bit activation before a non-linear stage");
    }
    static const char* const kKindNames[] = {"stc", "layernorm", "linear", "gelu"};
    const std::string stage_name =
        "projector." + std::to_string(i) + "." + kKindNames[static_cast<int>(st.geom.kind)];
    VILA_RETURN_IF_ERROR(begin());
    switch (st.geom.kind) {
      case K::kSpatialToChannel: {  // (s*s, w) -> (g*g, k*k*w)
        const int64_t side = exact_sqrt(t), k = st.geom.factor, g = (side + k - 1) / k;
        void* out = next_linear ? p16 : static_cast<void*>(free_f32());
        VILA_RETURN_IF_ERROR(cuda::spatial_to_channel(out, next_linear ? dt() : DType::kF32, cur,
                                                      items, stride, first, side, w, k, s()));
        if (!next_linear) cur = static_cast<float*>(out);
        is16 = next_linear;
        t = g * g;
        w = st.geom.out_dim;  // k * k * w
        stride = t;
        first = 0;
        break;
      }
      case K::kLayerNorm: {  // (rows, w), LayerNorm eps 1e-5 (nn.LayerNorm)
        constexpr float kProjectorLnEps = 1e-5f;
        VILA_RETURN_IF_ERROR(compact());
        float* out32 = free_f32();
        void* out = next_linear ? p16 : static_cast<void*>(out32);
        VILA_RETURN_IF_ERROR(cuda::layer_norm(out, next_linear ? dt() : DType::kF32, 0, cur,
                                              DType::kF32, st.norm_w, st.norm_b, rows, w,
                                              kProjectorLnEps, s()));
        if (!next_linear) cur = out32;
        is16 = next_linear;
        break;
      }
      case K::kLinear: {  // (rows, w) -> (rows, out_dim) fp32, bias or bias + erf GELU
        if (!is16) {
          VILA_RETURN_IF_ERROR(
              cuda::gather_tokens(p16, dt(), cur, items, stride, first, t, w, 1, s()));
          stride = t;
          first = 0;
        }
        float* out = free_f32();
        const bool gelu_next = i + 1 < n && stages[i + 1].geom.kind == K::kGelu;
        const int64_t out_dim = st.geom.out_dim;
        if (!gelu_next) {
          VILA_RETURN_IF_ERROR(gemm(out, DType::kF32, p16, rows, st.linear, nullptr, false));
          cur = out;
          is16 = false;
        } else {
          cuda::DeviceLinearWeight no_bias = st.linear;
          no_bias.bias = nullptr;
          VILA_RETURN_IF_ERROR(gemm(out, DType::kF32, p16, rows, no_bias, nullptr, false));
          const bool linear_after = i + 2 < n && stages[i + 2].geom.kind == K::kLinear;
          void* act = linear_after ? p16 : static_cast<void*>(out);  // GEMM has read p16
          VILA_RETURN_IF_ERROR(cuda::gelu_bias(act, linear_after ? dt() : DType::kF32, out,
                                               st.linear.bias, rows, out_dim, false, s()));
          cur = out;
          is16 = linear_after;
          ++i;  // the GELU stage is done
        }
        w = out_dim;
        break;
      }
      case K::kGelu: {  // a GELU not after a Linear: erf, no bias
        VILA_RETURN_IF_ERROR(compact());
        float* out = free_f32();
        VILA_RETURN_IF_ERROR(cuda::gelu_bias(out, DType::kF32, cur, nullptr, rows, w, false, s()));
        cur = out;
        break;
      }
    }
    VILA_RETURN_IF_ERROR(end(stage_name));
  }
  VILA_RETURN_IF_ERROR(compact());  // identity projector: the features themselves
  return cur;
}

StatusOr<CudaVisionEncoder::DeviceRows> CudaVisionEncoder::Impl::encode_rows(
    const ImageTiles& tiles) {
  const vision_cuda::Geometry& g = geo;
  VILA_ASSIGN_OR_RETURN(const int64_t n_out, vision_cuda::check_tiles(g, tiles));
  const int64_t C = g.tower.hidden, L = g.tokens, N = tiles.n_tiles, H = g.out_channels;
  VILA_RETURN_IF_ERROR(cuda::set_device(options.device));
  // tower_ms / projector_ms from two event pairs that end together, so that nothing waits
  // between the tower and the projector.
  if (!whole_timer) {
    VILA_ASSIGN_OR_RETURN(cuda::EventTimer a, cuda::EventTimer::create());
    VILA_ASSIGN_OR_RETURN(cuda::EventTimer b, cuda::EventTimer::create());
    whole_timer = std::make_unique<cuda::EventTimer>(std::move(a));
    tail_timer = std::make_unique<cuda::EventTimer>(std::move(b));
  }
  flops = 0;
  download_ms = 0;
  VILA_RETURN_IF_ERROR(whole_timer->start(s()));
  VILA_RETURN_IF_ERROR(run_tower(tiles.pixels.data(), N));  // x (N, P, C)
  VILA_RETURN_IF_ERROR(tail_timer->start(s()));

  const int64_t K = g.n_scales();
  const float* result = nullptr;
  if (tiles.rows > 0) {
    // Dynamic S2: one gather from the tile features to the projector's rows after its
    // spatial-to-channel, in raster order (S2MergeArgs), then the rest of the projector.
    const std::vector<int64_t>& scales = g.vision.s2_scales;
    const bool fuse_stc =
        !stages.empty() && stages[0].geom.kind == ProjectorStageKind::kSpatialToChannel;
    const size_t rest = fuse_stc ? 1 : 0;
    bool raster = true;  // row-wise after the fused stage: no second spatial-to-channel
    for (size_t i = rest; i < stages.size(); ++i) {
      raster = raster && stages[i].geom.kind != ProjectorStageKind::kSpatialToChannel;
    }
    cuda::S2MergeArgs a;
    a.out = blocks;  // (rows*cols, G², k²*K*C)
    a.features = x;
    a.item_stride = g.patches;
    a.first_token = g.first_token;
    a.g = exact_sqrt(L);
    a.channels = C;
    a.n_scales = static_cast<int>(K);
    for (int64_t sc = 0; sc < K; ++sc) {
      const bool last = sc + 1 == K;
      a.grid_h[sc] = last ? tiles.rows : scales[sc] / scales[0];
      a.grid_w[sc] = last ? tiles.cols : scales[sc] / scales[0];
    }
    const int64_t idx =
        g.vision.s2_resize_idx < 0 ? g.vision.s2_resize_idx + K : g.vision.s2_resize_idx;
    a.out_rows = a.grid_h[idx];
    a.out_cols = a.grid_w[idx];
    a.factor = fuse_stc ? stages[0].geom.factor : 1;
    a.raster = raster;
    const int64_t items = a.out_rows * a.out_cols, G = (a.g + a.factor - 1) / a.factor;
    const int64_t width = a.factor * a.factor * K * C;
    VILA_RETURN_IF_ERROR(begin());
    VILA_RETURN_IF_ERROR(cuda::s2_merge_features(a, s()));
    VILA_RETURN_IF_ERROR(end(fuse_stc ? "s2.merge+stc" : "s2.merge"));
    VILA_ASSIGN_OR_RETURN(result, run_projector(blocks, items, G * G, 0, G * G, width, rest));
    if (!raster) {  // (rows*cols, g'², H) blocks -> (rows*g', cols*g', H)
      float* map = result == pa ? pb : pa;
      VILA_RETURN_IF_ERROR(begin());
      VILA_RETURN_IF_ERROR(cuda::merge_chessboard(map, result, a.out_rows, a.out_cols,
                                                  exact_sqrt(n_out / items), H, s()));
      VILA_RETURN_IF_ERROR(end("s2.chessboard"));
      result = map;
    }
  } else if (g.vision.dynamic_s2) {
    // No grid: each tile's features repeated K times along channels ([f | f | f]).
    VILA_RETURN_IF_ERROR(
        cuda::gather_tokens(blocks, DType::kF32, x, N, g.patches, g.first_token, L, C, K, s()));
    VILA_ASSIGN_OR_RETURN(result, run_projector(blocks, N, L, 0, L, K * C, 0));
  } else {
    VILA_ASSIGN_OR_RETURN(result, run_projector(x, N, g.patches, g.first_token, L, C, 0));
  }
  VILA_ASSIGN_OR_RETURN(const double total_ms, whole_timer->stop_ms(s()));  // waits
  VILA_ASSIGN_OR_RETURN(const double tail_ms, tail_timer->stop_ms(s()));
  timings.tower_ms += total_ms - tail_ms;
  timings.projector_ms += tail_ms;
  return DeviceRows{result, n_out, H};
}

StatusOr<CudaVisionEncoder::DeviceRows> CudaVisionEncoder::encode_device(const ImageTiles& tiles) {
  return impl_->encode_rows(tiles);
}

Status CudaVisionEncoder::encode_into(const ImageTiles& tiles, float* out, int64_t out_floats,
                                      int64_t* n_tokens) {
  Impl& m = *impl_;
  if (n_tokens == nullptr) return invalid_argument("cuda vision encode_into: n_tokens is null");
  VILA_ASSIGN_OR_RETURN(const int64_t n, output_tokens(tiles));
  const int64_t floats = n * m.geo.out_channels;
  if (out == nullptr || out_floats < floats) {
    return invalid_argument("cuda vision encode_into: out holds " + std::to_string(out_floats) +
                            " floats, the item needs " + std::to_string(floats));
  }
  VILA_ASSIGN_OR_RETURN(const DeviceRows rows, m.encode_rows(tiles));
  const auto t0 = std::chrono::steady_clock::now();
  VILA_RETURN_IF_ERROR(
      cuda::copy_to_host(out, rows.rows, static_cast<size_t>(floats) * sizeof(float), m.s()));
  m.download_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  m.timings.projector_ms += m.download_ms;
  if (m.timer) m.add_stage("download (host wall)", m.download_ms);
  *n_tokens = rows.n_tokens;
  return ok_status();
}

StatusOr<std::vector<float>> CudaVisionEncoder::encode(const ImageTiles& tiles, int64_t* n_tokens) {
  if (n_tokens == nullptr) return invalid_argument("cuda vision encode: n_tokens is null");
  VILA_ASSIGN_OR_RETURN(const int64_t n, output_tokens(tiles));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<float> out(static_cast<size_t>(n * impl_->geo.out_channels));
  if (impl_->timer) {
    impl_->add_stage(
        "out alloc (host wall)",
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  VILA_RETURN_IF_ERROR(encode_into(tiles, out.data(), static_cast<int64_t>(out.size()), n_tokens));
  return out;
}

#else  // !VILA_WITH_CUDA

StatusOr<std::vector<float>> CudaVisionEncoder::encode(const ImageTiles&, int64_t*) {
  return unimplemented("CudaVisionEncoder: built without CUDA");
}
Status CudaVisionEncoder::encode_into(const ImageTiles&, float*, int64_t, int64_t*) {
  return unimplemented("CudaVisionEncoder: built without CUDA");
}
StatusOr<CudaVisionEncoder::DeviceRows> CudaVisionEncoder::encode_device(const ImageTiles&) {
  return unimplemented("CudaVisionEncoder: built without CUDA");
}

#endif  // VILA_WITH_CUDA

}  // namespace vila
