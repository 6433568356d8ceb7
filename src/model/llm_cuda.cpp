// CudaLanguageModel: host code driving the launchers of backend/cuda (no CUDA headers here).
// Dimension legend as model/llm.cpp: T chunk tokens, C hidden, H heads, Hkv kv heads, D head dim,
// F intermediate, V vocab, L layers, S cache positions, p0 cache length before the chunk.
#include "model/llm_cuda.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#ifdef VILA_WITH_CUDA
#include "backend/cuda/attention.h"
#include "backend/cuda/device.h"
#include "backend/cuda/elementwise.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/rms_norm.h"
#include "backend/cuda/rope.h"
#endif

namespace vila {

#ifdef VILA_WITH_CUDA

namespace {

constexpr size_t kAlign = 256;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Collects tensors, then uploads them all into one device allocation (converted to fp32, or to
// bf16 where asked). Offsets are valid after finish().
class WeightUploader {
 public:
  size_t add(const TensorView& view, DType target) {
    const size_t offset = total_;
    pending_.push_back({view, target, offset});
    total_ = align_up(total_ + static_cast<size_t>(dtype_bytes(target, view.numel())));
    return offset;
  }
  StatusOr<cuda::DeviceBuffer> finish(void* stream) {
    VILA_ASSIGN_OR_RETURN(cuda::DeviceBuffer buffer, cuda::DeviceBuffer::create(total_));
    std::vector<float> f32;
    std::vector<uint16_t> half;
    for (const Pending& p : pending_) {
      const int64_t n = p.view.numel();
      f32.resize(static_cast<size_t>(n));
      VILA_RETURN_IF_ERROR(convert_to_f32(p.view.dtype, p.view.data, f32.data(), n));
      char* dst = buffer.as<char>() + p.offset;
      if (p.target == DType::kF32) {
        VILA_RETURN_IF_ERROR(cuda::copy_to_device(dst, f32.data(), f32.size() * 4, stream));
      } else {
        half.resize(static_cast<size_t>(n));
        VILA_RETURN_IF_ERROR(convert_from_f32(f32.data(), p.target, half.data(), n));
        VILA_RETURN_IF_ERROR(cuda::copy_to_device(dst, half.data(), half.size() * 2, stream));
      }
    }
    return buffer;
  }

 private:
  struct Pending {
    TensorView view;
    DType target;
    size_t offset;
  };
  std::vector<Pending> pending_;
  size_t total_ = 0;
};

// Offsets into the weight buffer until it exists, then pointers.
struct LinearSlot {
  size_t weight = 0;
  size_t bias = 0;
  bool has_bias = false;
  int64_t n = 0, k = 0;
};

struct LayerSlots {
  size_t attn_norm = 0, mlp_norm = 0;  // (C) fp32
  LinearSlot q, k, v, o, gate, up, down;
};

struct DeviceLayer {
  const float* attn_norm = nullptr;  // (C)
  const float* mlp_norm = nullptr;   // (C)
  cuda::DeviceLinearWeight q, k, v, o, gate, up, down;
};

}  // namespace

struct CudaLanguageModel::Impl {
  LlmConfig config;
  CudaLlmOptions options;
  cuda::Stream stream;
  std::unique_ptr<cuda::Blas> blas;
  cuda::DeviceBuffer weights;  // every parameter, one allocation
  std::vector<DeviceLayer> layers;
  const float* output_norm = nullptr;  // (C)
  cuda::DeviceLinearWeight output;     // (V, C)
  cuda::DeviceBuffer kv;               // K then V: (L, S, Hkv, D) each
  cuda::DeviceBuffer activations;
  int64_t length = 0;

  // Activations for max_chunk tokens (T below), carved from `activations`.
  float* x = nullptr;           // (T, C)    residual stream
  float* xn = nullptr;          // (T, C)    normed input, then block output
  float* q = nullptr;           // (T, H*D)
  float* attn = nullptr;        // (T, H*D)
  float* gate = nullptr;        // (T, F)
  float* up = nullptr;          // (T, F)
  float* rope_cos = nullptr;    // (T, D/2)
  float* rope_sin = nullptr;    // (T, D/2)
  float* inv_freq = nullptr;    // (D/2)
  float* logits = nullptr;      // (T, V)
  uint16_t* in_bf16 = nullptr;  // (T, max(C, H*D, F)) bf16 GEMM input (kBF16 only)

  void* s() const { return stream.handle(); }
  float* k_cache(int64_t l) const {
    return kv.as<float>() + l * options.max_seq * config.n_kv_heads * config.head_dim;
  }
  float* v_cache(int64_t l) const { return k_cache(l + config.n_layers); }

  Status linear(float* out, const float* in, const cuda::DeviceLinearWeight& w, int64_t rows) {
    if (w.dtype == DType::kBF16) {
      VILA_RETURN_IF_ERROR(cuda::f32_to_bf16(in_bf16, in, rows * w.in_features, s()));
      return cuda::linear(*blas, out, in_bf16, w, rows, s());
    }
    return cuda::linear(*blas, out, in, w, rows, s());
  }

  Status forward_chunk(const float* embeds, int64_t t_count, float* host_logits,
                       int64_t first_logit);
  Status attention_block(int64_t layer, int64_t t_count);
  Status mlp_block(int64_t layer, int64_t t_count);
};

StatusOr<std::unique_ptr<CudaLanguageModel>> CudaLanguageModel::create(
    const LanguageModel& cpu, const CudaLlmOptions& options) {
  if (cuda::device_count() <= options.device) {
    return unimplemented("CudaLanguageModel: no CUDA device " + std::to_string(options.device));
  }
  if (options.max_seq <= 0 || options.max_chunk <= 0) {
    return invalid_argument("CudaLanguageModel: max_seq and max_chunk must be positive");
  }
  VILA_RETURN_IF_ERROR(cuda::set_device(options.device));
  auto impl = std::make_unique<Impl>();
  impl->config = cpu.config();
  impl->options = options;
  const LlmConfig& c = impl->config;
  const int64_t C = c.hidden, H = c.n_heads, Hkv = c.n_kv_heads, D = c.head_dim;
  const int64_t F = c.intermediate, V = c.vocab_size, L = c.n_layers;
  if (D % 2 != 0 || D > cuda::kAttentionMaxHeadDim) {
    return unimplemented("CudaLanguageModel: head_dim " + std::to_string(D) +
                         " (supported: even, <= 256)");
  }
  VILA_ASSIGN_OR_RETURN(impl->stream, cuda::Stream::create());
  VILA_ASSIGN_OR_RETURN(impl->blas, cuda::Blas::create());

  // Weights: one allocation, linear weights in the chosen precision, the rest fp32.
  const DType wdt = options.weights == CudaWeightPrecision::kBF16 ? DType::kBF16 : DType::kF32;
  const LlmWeights& w = cpu.weights();
  WeightUploader up;
  auto add_linear = [&](const cpu::LinearWeight& lw) {
    LinearSlot slot;
    slot.weight = up.add(lw.weight, wdt);
    slot.has_bias = lw.has_bias();
    if (slot.has_bias) slot.bias = up.add(lw.bias, DType::kF32);
    slot.n = lw.out_features();
    slot.k = lw.in_features();
    return slot;
  };
  std::vector<LayerSlots> slots(static_cast<size_t>(L));
  for (size_t l = 0; l < slots.size(); ++l) {
    const LlmLayerWeights& lw = w.layers[l];
    LayerSlots& ls = slots[l];
    ls.attn_norm = up.add(lw.attn_norm, DType::kF32);
    ls.q = add_linear(lw.q);
    ls.k = add_linear(lw.k);
    ls.v = add_linear(lw.v);
    ls.o = add_linear(lw.o);
    ls.mlp_norm = up.add(lw.mlp_norm, DType::kF32);
    ls.gate = add_linear(lw.gate);
    ls.up = add_linear(lw.up);
    ls.down = add_linear(lw.down);
  }
  const size_t output_norm = up.add(w.output_norm, DType::kF32);
  const LinearSlot output = add_linear(w.output);
  VILA_ASSIGN_OR_RETURN(impl->weights, up.finish(impl->s()));

  char* base = impl->weights.as<char>();
  auto resolve = [&](const LinearSlot& slot) {
    cuda::DeviceLinearWeight d;
    d.weight = base + slot.weight;
    d.bias = slot.has_bias ? reinterpret_cast<const float*>(base + slot.bias) : nullptr;
    d.dtype = wdt;
    d.out_features = slot.n;
    d.in_features = slot.k;
    return d;
  };
  auto f32_at = [&](size_t offset) { return reinterpret_cast<const float*>(base + offset); };
  for (const LayerSlots& ls : slots) {
    DeviceLayer& dl = impl->layers.emplace_back();
    dl.attn_norm = f32_at(ls.attn_norm);
    dl.mlp_norm = f32_at(ls.mlp_norm);
    dl.q = resolve(ls.q);
    dl.k = resolve(ls.k);
    dl.v = resolve(ls.v);
    dl.o = resolve(ls.o);
    dl.gate = resolve(ls.gate);
    dl.up = resolve(ls.up);
    dl.down = resolve(ls.down);
  }
  impl->output_norm = f32_at(output_norm);
  impl->output = resolve(output);

  // KV cache.
  const auto per_cache = static_cast<size_t>(L * options.max_seq * Hkv * D) * sizeof(float);
  VILA_ASSIGN_OR_RETURN(impl->kv, cuda::DeviceBuffer::create(2 * per_cache));

  // Activations.
  const int64_t T = options.max_chunk;
  const int64_t widest = std::max({C, H * D, F});
  size_t total = 0;
  std::vector<std::pair<float**, int64_t>> floats = {{&impl->x, T * C},
                                                     {&impl->xn, T * C},
                                                     {&impl->q, T * H * D},
                                                     {&impl->attn, T * H * D},
                                                     {&impl->gate, T * F},
                                                     {&impl->up, T * F},
                                                     {&impl->rope_cos, T * D / 2},
                                                     {&impl->rope_sin, T * D / 2},
                                                     {&impl->inv_freq, D / 2},
                                                     {&impl->logits, T * V}};
  for (const auto& [ptr, count] : floats) total += align_up(static_cast<size_t>(count) * 4);
  const size_t bf16_bytes = wdt == DType::kBF16 ? static_cast<size_t>(T * widest) * 2 : 0;
  VILA_ASSIGN_OR_RETURN(impl->activations, cuda::DeviceBuffer::create(total + bf16_bytes));
  char* at = impl->activations.as<char>();
  for (const auto& [ptr, count] : floats) {
    *ptr = reinterpret_cast<float*>(at);
    at += align_up(static_cast<size_t>(count) * 4);
  }
  if (bf16_bytes > 0) impl->in_bf16 = reinterpret_cast<uint16_t*>(at);

  const std::vector<float> inv_freq = cuda::rope_inv_freq(D / 2, c.rope_theta);
  VILA_RETURN_IF_ERROR(
      cuda::copy_to_device(impl->inv_freq, inv_freq.data(), inv_freq.size() * 4, impl->s()));
  VILA_RETURN_IF_ERROR(impl->stream.synchronize());
  return std::unique_ptr<CudaLanguageModel>(new CudaLanguageModel(std::move(impl)));
}

CudaLanguageModel::CudaLanguageModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaLanguageModel::~CudaLanguageModel() = default;

const LlmConfig& CudaLanguageModel::config() const { return impl_->config; }
int64_t CudaLanguageModel::length() const { return impl_->length; }
int64_t CudaLanguageModel::capacity() const { return impl_->options.max_seq; }
void CudaLanguageModel::reset() { impl_->length = 0; }

Status CudaLanguageModel::truncate(int64_t n) {
  if (n < 0 || n > impl_->length) {
    return invalid_argument("truncate: " + std::to_string(n) + " outside [0, " +
                            std::to_string(impl_->length) + "]");
  }
  impl_->length = n;
  return ok_status();
}

size_t CudaLanguageModel::device_bytes() const {
  return impl_->weights.bytes() + impl_->kv.bytes() + impl_->activations.bytes() +
         impl_->blas->workspace_bytes();
}

Status CudaLanguageModel::forward(const float* embeds, int64_t n, float* logits, int64_t n_logits) {
  Impl& m = *impl_;
  const LlmConfig& c = m.config;
  VILA_RETURN_IF_ERROR(check_forward_args(embeds, n, logits, n_logits));
  if (n > m.options.max_seq - m.length) {
    return out_of_range("forward: " + std::to_string(n) + " new positions at length " +
                        std::to_string(m.length) + " exceed the KV cache capacity " +
                        std::to_string(m.options.max_seq));
  }
  VILA_RETURN_IF_ERROR(cuda::set_device(m.options.device));
  const int64_t max_chunk = m.options.max_chunk;
  const int64_t first_logit_row = n - n_logits;
  for (int64_t start = 0; start < n; start += max_chunk) {
    const int64_t t_count = std::min(max_chunk, n - start);
    const int64_t first = std::clamp(first_logit_row - start, int64_t{0}, t_count);
    float* chunk_logits =
        first < t_count ? logits + (start + first - first_logit_row) * c.vocab_size : nullptr;
    VILA_RETURN_IF_ERROR(m.forward_chunk(embeds + start * c.hidden, t_count, chunk_logits, first));
  }
  return ok_status();
}

Status CudaLanguageModel::Impl::forward_chunk(const float* embeds, int64_t t_count,
                                              float* host_logits, int64_t first_logit) {
  const int64_t T = t_count, C = config.hidden, D = config.head_dim, V = config.vocab_size;
  VILA_RETURN_IF_ERROR(cuda::copy_to_device(x, embeds, static_cast<size_t>(T * C) * 4, s()));
  VILA_RETURN_IF_ERROR(cuda::rope_cos_sin_f32(rope_cos, rope_sin, inv_freq, length, T, D / 2, s()));
  for (int64_t l = 0; l < config.n_layers; ++l) {
    VILA_RETURN_IF_ERROR(attention_block(l, T));
    VILA_RETURN_IF_ERROR(mlp_block(l, T));
  }
  if (host_logits != nullptr && first_logit < T) {
    const int64_t rows = T - first_logit;
    VILA_RETURN_IF_ERROR(cuda::rms_norm_f32(xn, x + first_logit * C, output_norm, rows, C,
                                            static_cast<float>(config.rms_eps), s()));
    VILA_RETURN_IF_ERROR(linear(logits, xn, output, rows));  // (rows, V)
    VILA_RETURN_IF_ERROR(
        cuda::copy_to_host(host_logits, logits, static_cast<size_t>(rows * V) * 4, s()));
  } else {
    VILA_RETURN_IF_ERROR(stream.synchronize());
  }
  length += T;  // commit: the chunk's K/V are in the cache
  return ok_status();
}

Status CudaLanguageModel::Impl::attention_block(int64_t layer, int64_t t_count) {
  const DeviceLayer& w = layers[static_cast<size_t>(layer)];
  const int64_t T = t_count, C = config.hidden, H = config.n_heads, Hkv = config.n_kv_heads;
  const int64_t D = config.head_dim, p0 = length;
  const auto scale = static_cast<float>(std::pow(static_cast<double>(D), -0.5));
  float* kc = k_cache(layer);        // (S, Hkv, D)
  float* vc = v_cache(layer);        // (S, Hkv, D)
  float* k_new = kc + p0 * Hkv * D;  // (T, Hkv*D) rows p0 .. p0+T-1
  float* v_new = vc + p0 * Hkv * D;  // (T, Hkv*D)

  VILA_RETURN_IF_ERROR(
      cuda::rms_norm_f32(xn, x, w.attn_norm, T, C, static_cast<float>(config.rms_eps), s()));
  VILA_RETURN_IF_ERROR(linear(q, xn, w.q, T));      // q (T, H*D)
  VILA_RETURN_IF_ERROR(linear(k_new, xn, w.k, T));  // k (T, Hkv*D) into the cache
  VILA_RETURN_IF_ERROR(linear(v_new, xn, w.v, T));  // v (T, Hkv*D) into the cache
  VILA_RETURN_IF_ERROR(cuda::rope_apply_f32(q, rope_cos, rope_sin, T, H, D, s()));
  VILA_RETURN_IF_ERROR(cuda::rope_apply_f32(k_new, rope_cos, rope_sin, T, Hkv, D, s()));
  VILA_RETURN_IF_ERROR(
      cuda::attention_causal_f32(attn, q, kc, vc, p0, T, H, Hkv, D, options.max_seq, scale, s()));
  VILA_RETURN_IF_ERROR(linear(xn, attn, w.o, T));  // xn (T, C) = o_proj(attn)
  return cuda::add_inplace_f32(x, xn, T * C, s());
}

Status CudaLanguageModel::Impl::mlp_block(int64_t layer, int64_t t_count) {
  const DeviceLayer& w = layers[static_cast<size_t>(layer)];
  const int64_t T = t_count, C = config.hidden, F = config.intermediate;
  VILA_RETURN_IF_ERROR(
      cuda::rms_norm_f32(xn, x, w.mlp_norm, T, C, static_cast<float>(config.rms_eps), s()));
  VILA_RETURN_IF_ERROR(linear(gate, xn, w.gate, T));  // (T, F)
  VILA_RETURN_IF_ERROR(linear(up, xn, w.up, T));      // (T, F)
  VILA_RETURN_IF_ERROR(cuda::silu_mul_f32(gate, gate, up, T * F, s()));
  VILA_RETURN_IF_ERROR(linear(xn, gate, w.down, T));  // xn (T, C) = down(gate)
  return cuda::add_inplace_f32(x, xn, T * C, s());
}

#else  // !VILA_WITH_CUDA

struct CudaLanguageModel::Impl {
  LlmConfig config;
};

StatusOr<std::unique_ptr<CudaLanguageModel>> CudaLanguageModel::create(const LanguageModel&,
                                                                       const CudaLlmOptions&) {
  return unimplemented("CudaLanguageModel: vila.cpp was built without CUDA (VILA_CUDA=OFF)");
}
CudaLanguageModel::CudaLanguageModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaLanguageModel::~CudaLanguageModel() = default;
const LlmConfig& CudaLanguageModel::config() const { return impl_->config; }
Status CudaLanguageModel::forward(const float*, int64_t, float*, int64_t) {
  return unimplemented("CudaLanguageModel: built without CUDA");
}
int64_t CudaLanguageModel::length() const { return 0; }
int64_t CudaLanguageModel::capacity() const { return 0; }
void CudaLanguageModel::reset() {}
Status CudaLanguageModel::truncate(int64_t) {
  return unimplemented("CudaLanguageModel: built without CUDA");
}
size_t CudaLanguageModel::device_bytes() const { return 0; }

#endif  // VILA_WITH_CUDA

}  // namespace vila
