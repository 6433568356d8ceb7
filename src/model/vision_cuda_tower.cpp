// CudaVisionEncoder, the SigLIP side: device pointers of the weights, the activation buffers,
// and the tower forward (pixels -> hidden_states[select_layer]). Host code only; see
// vision_cuda_internal.h for the dimension legend.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>

#include "model/vision_cuda_internal.h"
#include "vision/resize.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/device.h"
#include "backend/cuda/elementwise.h"
#include "backend/cuda/flash_attention.h"
#include "backend/cuda/layer_norm.h"
#include "backend/cuda/vision_ops.h"
#endif

namespace vila {

#ifdef VILA_WITH_CUDA

using vision_cuda::align_up;
using vision_cuda::DeviceLayer;
using vision_cuda::DeviceStage;
using vision_cuda::exact_sqrt;
using vision_cuda::Geometry;
using vision_cuda::LayerSlots;
using vision_cuda::LinearSlot;
using vision_cuda::StageGeom;

// Resolves the layout's offsets into device pointers.
Status CudaVisionEncoder::Impl::bind(DType dtype) {
  blas->set_autotune(options.autotune && cuda::Blas::autotune_from_env());
  int streams = options.tower_streams;
  if (const char* env = std::getenv("VILA_VISION_STREAMS"); env != nullptr && *env != '\0') {
    streams = std::atoi(env);
  }
  streams = std::clamp(streams, 1, vision_cuda::kMaxTowerStreams);
  for (int i = 1; i < streams; ++i) {
    VILA_ASSIGN_OR_RETURN(lane_streams.emplace_back(), cuda::Stream::create());
    VILA_ASSIGN_OR_RETURN(lane_blas.emplace_back(), cuda::Blas::create());
    lane_blas.back()->set_autotune(blas->autotune());
  }
  char* base = weights.as<char>();
  auto f32_at = [&](size_t offset) { return reinterpret_cast<const float*>(base + offset); };
  auto resolve = [&](const LinearSlot& slot) {
    cuda::DeviceLinearWeight d;
    d.weight = base + slot.weight;
    d.bias = f32_at(slot.bias);
    d.bias16 = slot.bias16 != 0 ? base + slot.bias16 : nullptr;
    d.dtype = dtype;
    d.out_features = slot.n;
    d.in_features = slot.k;
    return d;
  };
  patch = resolve(layout.patch);
  pos = f32_at(layout.pos);
  for (const LayerSlots& ls : layout.layers) {
    layers.push_back({f32_at(ls.ln1_w), f32_at(ls.ln1_b), f32_at(ls.ln2_w), f32_at(ls.ln2_b),
                      resolve(ls.qkv), resolve(ls.o), resolve(ls.fc1), resolve(ls.fc2)});
  }
  for (size_t i = 0; i < geo.stages.size(); ++i) {
    DeviceStage& ds = stages.emplace_back();
    ds.geom = geo.stages[i];
    if (ds.geom.kind == ProjectorStageKind::kLayerNorm) {
      ds.norm_w = f32_at(layout.stages[i].weight);
      ds.norm_b = f32_at(layout.stages[i].bias);
    } else if (ds.geom.kind == ProjectorStageKind::kLinear) {
      ds.linear = resolve(layout.stages[i]);
    }
  }
  return ok_status();
}

Status CudaVisionEncoder::Impl::ensure_capacity(int64_t n_tiles) {
  if (n_tiles <= capacity) return ok_status();
  const SiglipConfig& c = geo.tower;
  const int64_t B = n_tiles, T = B * geo.patches, C = c.hidden, F = c.intermediate;
  const int64_t es = dtype_bytes(dt(), 1);
  // Widest projector activation per item (tokens x width), input included.
  int64_t widest = geo.tokens * geo.vision.mm_hidden, t = geo.tokens;
  for (const StageGeom& st : geo.stages) {
    if (st.kind == ProjectorStageKind::kSpatialToChannel) {
      const int64_t g = (exact_sqrt(t) + st.factor - 1) / st.factor;
      t = g * g;
    }
    widest = std::max(widest, t * std::max(st.in_dim, st.out_dim));
  }
  const bool erf_mlp = c.act == cpu::GeluApprox::kErf;
  const std::vector<std::pair<void**, int64_t>> fixed = {
      {&pixels, B * c.n_channels * c.image_size * c.image_size * es},
      {reinterpret_cast<void**>(&x), T * C * 4}};
  const std::vector<std::pair<void**, int64_t>> tower = {
      {&cols, T * geo.patch_k_pad * es},
      {&xs, T * C * es},
      {&x_mid, T * C * es},
      {&xn, T * C * es},
      {&qkv, T * 3 * C * es},
      {&attn, T * C * es},
      {&mlp, T * F * es},
      {reinterpret_cast<void**>(&mlp32), erf_mlp ? T * F * 4 : 0}};
  const std::vector<std::pair<void**, int64_t>> projector = {
      // S2 rows after a fused spatial-to-channel (padded to k*G per side) fit `widest` too.
      {reinterpret_cast<void**>(&blocks), B * widest * 4},
      {reinterpret_cast<void**>(&pa), B * widest * 4},
      {reinterpret_cast<void**>(&pb), B * widest * 4},
      {&p16, B * widest * es}};
  auto bytes_of = [](const std::vector<std::pair<void**, int64_t>>& list) {
    size_t total = 0;
    for (const auto& [ptr, bytes] : list) total += align_up(static_cast<size_t>(bytes));
    return total;
  };
  const size_t region = std::max(bytes_of(tower), bytes_of(projector));
  activations = cuda::DeviceBuffer();  // free the old ones first
  staging = cuda::PinnedBuffer();
  capacity = 0;
  VILA_ASSIGN_OR_RETURN(
      staging, cuda::PinnedBuffer::create(B * c.n_channels * c.image_size * c.image_size * es));
  VILA_ASSIGN_OR_RETURN(activations, cuda::DeviceBuffer::create(bytes_of(fixed) + region));
  auto carve = [](char* at, const std::vector<std::pair<void**, int64_t>>& list) {
    for (const auto& [ptr, bytes] : list) {
      *ptr = bytes > 0 ? at : nullptr;
      at += align_up(static_cast<size_t>(bytes));
    }
    return at;
  };
  char* shared = carve(activations.as<char>(), fixed);
  carve(shared, tower);
  carve(shared, projector);
  capacity = n_tiles;
  return ok_status();
}

// The pixels go through a pinned staging buffer one tile at a time: the vision threads round tile
// i to the compute dtype into it while the copy engine uploads tile i-1 (a pageable cudaMemcpy
// moves them at one thread's memcpy speed, and blocks). Rounding here is what im2col_patches would
// do to fp32 pixels (nearest even), so the columns are the same and half the bytes go up.
// ensure_capacity sized the buffers.
Status CudaVisionEncoder::Impl::upload_pixels(const float* host_tiles, int64_t n_tiles) {
  const SiglipConfig& c = geo.tower;
  const auto tile = static_cast<size_t>(c.n_channels * c.image_size * c.image_size);  // values
  const auto es = static_cast<size_t>(dtype_bytes(dt(), 1));
  if (staging.bytes() < static_cast<size_t>(n_tiles) * tile * es) {
    return internal_error("CudaVisionEncoder: pixel staging smaller than the tiles");
  }
  // A failed call may have left work in flight on either stream.
  VILA_RETURN_IF_ERROR(stream.synchronize());
  for (const cuda::Stream& st : lane_streams) VILA_RETURN_IF_ERROR(st.synchronize());
  constexpr int64_t kPieces = 64;  // per tile, spread over the threads
  const int64_t piece = static_cast<int64_t>((tile + kPieces - 1) / kPieces);
  for (int64_t t = 0; t < n_tiles; ++t) {
    const float* src = host_tiles + static_cast<size_t>(t) * tile;
    char* dst = staging.as<char>() + static_cast<size_t>(t) * tile * es;
    vision_parallel_for(kPieces, 2, [&](int64_t p0, int64_t p1) {
      const auto lo =
          static_cast<size_t>(std::min<int64_t>(p0 * piece, static_cast<int64_t>(tile)));
      const auto hi =
          static_cast<size_t>(std::min<int64_t>(p1 * piece, static_cast<int64_t>(tile)));
      // Cannot fail: dt() is bf16 or f16.
      (void)convert_from_f32(src + lo, dt(), dst + lo * es, static_cast<int64_t>(hi - lo));
    });
    VILA_RETURN_IF_ERROR(cuda::copy_to_device_async(
        static_cast<char*>(pixels) + static_cast<size_t>(t) * tile * es, dst, tile * es, s()));
  }
  return ok_status();
}

// Upload + embeddings + the layers that run: x (B*P, C) holds hidden_states[select_layer].
Status CudaVisionEncoder::Impl::run_tower(const float* host_tiles, int64_t n_tiles) {
  const SiglipConfig& c = geo.tower;
  const int64_t B = n_tiles, S = c.image_size, rows = B * geo.patches;
  VILA_RETURN_IF_ERROR(ensure_capacity(B));
  const auto t0 = std::chrono::steady_clock::now();
  VILA_RETURN_IF_ERROR(upload_pixels(host_tiles, B));
  upload_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (timer) add_stage("upload (host wall)", upload_ms);
  VILA_RETURN_IF_ERROR(begin());
  VILA_RETURN_IF_ERROR(cuda::im2col_patches(cols, dt(), geo.patch_k_pad, pixels, dt(), B,
                                            c.n_channels, S, c.patch_size, s()));  // (T, Kpad)
  VILA_RETURN_IF_ERROR(gemm(x, DType::kF32, cols, rows, patch, nullptr, false, geo.patch_k));
  VILA_RETURN_IF_ERROR(cuda::add_position_embeddings(x, pos, B, geo.patches, c.hidden, s()));
  // The residual stream is 16-bit from here, as in the reference (a bf16 / f16 model): every
  // block's output is rounded once (o / fc2 add the residual in their epilogue).
  VILA_RETURN_IF_ERROR(cuda::convert_dtype(xs, dt(), x, DType::kF32, rows * c.hidden, s()));
  VILA_RETURN_IF_ERROR(end("siglip.embed"));
  // Lanes of tiles on their own streams: one lane's attention (latency-bound, the tensor cores
  // half idle) overlaps another's GEMMs and LayerNorms, and each kernel's last partial wave fills
  // with the other lanes' blocks. As many lanes as the streams allow with >= kMinLaneTiles tiles
  // each; profiling keeps one stream (its events time one stream).
  const auto n_lanes = static_cast<int64_t>(std::min<size_t>(
      lane_streams.size() + 1, static_cast<size_t>(B / vision_cuda::kMinLaneTiles)));
  // The features: x = the stream, widened to fp32 for the S2 merge and the projector.
  const auto features = [&] {
    return cuda::convert_dtype(x, DType::kF32, xs, dt(), rows * c.hidden, s());
  };
  if (timer || n_lanes < 2) {
    for (const DeviceLayer& w : layers) VILA_RETURN_IF_ERROR(encoder_layer(w, main_lane(B)));
    return features();
  }
  // The first call with a tile count meets new GEMM shapes, which cuBLASLt tuning times on the
  // lane's stream: those calls run the lanes one after the other, so no lane times its
  // candidates while another lane's kernels share the GPU.
  const bool one_by_one = lanes_tuned_for != B;
  std::vector<Lane> lanes;
  for (int64_t i = 0, tile0 = 0; i < n_lanes; ++i) {
    const int64_t tiles = B / n_lanes + (i < B % n_lanes ? 1 : 0);
    Lane lane = main_lane(tiles);
    if (i > 0) lane = {lane_streams[i - 1].handle(), lane_blas[i - 1].get(), 0, tiles};
    lane.row0 = tile0 * geo.patches;
    lanes.push_back(lane);
    tile0 += tiles;
  }
  for (size_t i = 1; i < lanes.size(); ++i) {  // the embeddings are in
    VILA_RETURN_IF_ERROR(cuda::stream_wait(lanes[i].stream, s()));
  }
  if (one_by_one) {
    for (size_t i = 0; i < lanes.size(); ++i) {
      if (i > 0) VILA_RETURN_IF_ERROR(cuda::stream_wait(lanes[i].stream, lanes[i - 1].stream));
      for (const DeviceLayer& w : layers) VILA_RETURN_IF_ERROR(encoder_layer(w, lanes[i]));
    }
    lanes_tuned_for = B;
  } else {
    for (const DeviceLayer& w : layers) {
      for (const Lane& lane : lanes) VILA_RETURN_IF_ERROR(encoder_layer(w, lane));
    }
  }
  for (size_t i = 1; i < lanes.size(); ++i) {  // the main stream sees the whole tower
    VILA_RETURN_IF_ERROR(cuda::stream_wait(s(), lanes[i].stream));
  }
  return features();
}

// One layer for the lane's tiles (rows [row0, row0 + tiles * P) of every buffer).
Status CudaVisionEncoder::Impl::encoder_layer(const DeviceLayer& w, const Lane& lane) {
  const SiglipConfig& c = geo.tower;
  const int64_t P = geo.patches, rows = lane.tiles * P, C = c.hidden, F = c.intermediate;
  const int64_t Hh = c.n_heads, D = c.head_dim(), es = dtype_bytes(dt(), 1);
  const auto eps = static_cast<float>(c.ln_eps);
  void* st = lane.stream;
  const int64_t r0 = lane.row0;
  char* xs_l = static_cast<char*>(xs) + r0 * C * es;
  char* x_mid_l = static_cast<char*>(x_mid) + r0 * C * es;
  char* xn_l = static_cast<char*>(xn) + r0 * C * es;
  char* qkv_l = static_cast<char*>(qkv) + r0 * 3 * C * es;
  char* attn_l = static_cast<char*>(attn) + r0 * C * es;
  char* mlp_l = static_cast<char*>(mlp) + r0 * F * es;

  // Attention block: x_mid = x + o(attention(qkv(LN1(x)))).
  VILA_RETURN_IF_ERROR(begin());
  VILA_RETURN_IF_ERROR(
      cuda::layer_norm(xn_l, dt(), C, xs_l, dt(), w.ln1_w, w.ln1_b, rows, C, eps, st));
  VILA_RETURN_IF_ERROR(end("siglip.ln1"));
  VILA_RETURN_IF_ERROR(begin());
  VILA_RETURN_IF_ERROR(gemm_on(lane, qkv_l, dt(), xn_l, rows, w.qkv, nullptr, false));  // q|k|v
  VILA_RETURN_IF_ERROR(end("siglip.qkv"));
  cuda::DenseAttentionArgs a;
  a.out = attn_l;  // (rows, C)
  a.out_row_stride = C;
  a.q = qkv_l;
  a.k = qkv_l + C * es;
  a.v = qkv_l + 2 * C * es;
  a.q_row_stride = a.k_row_stride = a.v_row_stride = 3 * C;
  a.batch = static_cast<int>(lane.tiles);
  a.seq = static_cast<int>(P);
  a.n_head = a.n_head_kv = static_cast<int>(Hh);
  a.head_dim = static_cast<int>(D);
  a.causal = false;
  a.scale = static_cast<float>(std::pow(static_cast<double>(D), -0.5));
  a.dtype = dt();
  VILA_RETURN_IF_ERROR(begin());
  VILA_RETURN_IF_ERROR(cuda::flash_attention_dense(a, st));
  VILA_RETURN_IF_ERROR(end("siglip.attention"));
  flops += 4.0 * static_cast<double>(lane.tiles) * static_cast<double>(P * P) *
           static_cast<double>(Hh * D);
  VILA_RETURN_IF_ERROR(begin());
  // x_mid = x + o(attn): the residual rides in cuBLASLt's C operand (C != D, so the plan can be
  // tuned; the traffic is that of an in-place add).
  VILA_RETURN_IF_ERROR(gemm_on(lane, x_mid_l, dt(), attn_l, rows, w.o, xs_l, false));
  VILA_RETURN_IF_ERROR(end("siglip.o"));

  // MLP block: x = x_mid + fc2(gelu(fc1(LN2(x_mid)))).
  VILA_RETURN_IF_ERROR(begin());
  VILA_RETURN_IF_ERROR(
      cuda::layer_norm(xn_l, dt(), C, x_mid_l, dt(), w.ln2_w, w.ln2_b, rows, C, eps, st));
  VILA_RETURN_IF_ERROR(end("siglip.ln2"));
  VILA_RETURN_IF_ERROR(begin());
  if (c.act == cpu::GeluApprox::kTanh) {
    VILA_RETURN_IF_ERROR(gemm_on(lane, mlp_l, dt(), xn_l, rows, w.fc1, nullptr, true));  // GELU
  } else {  // erf GELU after an fp32 GEMM (fp32 bias epilogue)
    float* mlp32_l = mlp32 + r0 * F;
    VILA_RETURN_IF_ERROR(gemm_on(lane, mlp32_l, DType::kF32, xn_l, rows, w.fc1, nullptr, false));
    VILA_RETURN_IF_ERROR(cuda::gelu_bias(mlp_l, dt(), mlp32_l, nullptr, rows, F, false, st));
  }
  VILA_RETURN_IF_ERROR(end("siglip.fc1"));
  VILA_RETURN_IF_ERROR(begin());
  VILA_RETURN_IF_ERROR(gemm_on(lane, xs_l, dt(), mlp_l, rows, w.fc2, x_mid_l, false));
  return end("siglip.fc2");
}

Status CudaVisionEncoder::tower_forward(const float* tiles, int64_t n_tiles,
                                        std::vector<float>& out) {
  Impl& m = *impl_;
  const Geometry& g = m.geo;
  if (n_tiles <= 0 || tiles == nullptr) {
    return invalid_argument("cuda vision tower_forward: need tiles and n_tiles > 0");
  }
  VILA_RETURN_IF_ERROR(cuda::set_device(m.options.device));
  m.flops = 0;
  VILA_RETURN_IF_ERROR(m.run_tower(tiles, n_tiles));
  const int64_t C = g.tower.hidden;
  const float* src = m.x;
  if (g.first_token > 0) {  // "patch": drop token 0 of every tile
    VILA_RETURN_IF_ERROR(cuda::gather_tokens(m.blocks, DType::kF32, m.x, n_tiles, g.patches,
                                             g.first_token, g.tokens, C, 1, m.s()));
    src = m.blocks;
  }
  out.resize(static_cast<size_t>(n_tiles * g.tokens * C));
  return cuda::copy_to_host(out.data(), src, out.size() * 4, m.s());
}

#else  // !VILA_WITH_CUDA

Status CudaVisionEncoder::tower_forward(const float*, int64_t, std::vector<float>&) {
  return unimplemented("CudaVisionEncoder: built without CUDA");
}

#endif  // VILA_WITH_CUDA

}  // namespace vila
