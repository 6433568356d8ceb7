// LlmEngine: weights upload (from a CPU model or random on the device), memory layout, sequences
// and their pages. The forward passes are in llm_engine_forward.cpp.
#include "model/llm_engine.h"

#include <algorithm>
#include <string>

#include "model/llm_engine_impl.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/device.h"
#include "backend/cuda/embedding.h"
#include "backend/cuda/flash_attention.h"
#include "backend/cuda/rope.h"
#include "backend/cuda/sampling.h"
#endif

namespace vila {

#ifdef VILA_WITH_CUDA

namespace {

constexpr size_t kAlign = 256;
size_t align_up(size_t n, size_t a = kAlign) { return (n + a - 1) / a * a; }

// One device allocation for every parameter. A slot is filled from checkpoint views (several
// views back to back: the fused qkv / gate_up), from random numbers, or with a constant.
class WeightBuilder {
 public:
  struct Slot {
    std::vector<TensorView> views;  // concatenated in order
    int64_t numel = 0;
    DType dtype = DType::kF32;
    bool random = false;
    float lo = 0, hi = 0;  // random range, or lo = the constant when !random and views empty
    size_t offset = 0;
  };

  size_t add_views(std::vector<TensorView> views, DType dtype) {
    Slot slot;
    for (const TensorView& v : views) slot.numel += v.numel();
    slot.views = std::move(views);
    slot.dtype = dtype;
    return push(std::move(slot));
  }
  size_t add_random(int64_t numel, DType dtype, float scale) {
    Slot slot;
    slot.numel = numel;
    slot.dtype = dtype;
    slot.random = true;
    slot.lo = -scale;
    slot.hi = scale;
    return push(std::move(slot));
  }
  size_t add_constant(int64_t numel, float value) {
    Slot slot;
    slot.numel = numel;
    slot.lo = value;
    slot.hi = value;
    return push(std::move(slot));
  }

  StatusOr<cuda::DeviceBuffer> finish(void* stream, uint64_t seed,
                                      const LlmEngineOptions& options) {
    VILA_ASSIGN_OR_RETURN(cuda::DeviceBuffer buffer, cuda::DeviceBuffer::create(total_));
    std::vector<float> f32;
    std::vector<uint16_t> half;
    size_t done = 0;
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Slot& slot = slots_[i];
      char* dst = buffer.as<char>() + slot.offset;
      if (slot.random || slot.views.empty()) {
        VILA_RETURN_IF_ERROR(
            cuda::fill_uniform(dst, slot.dtype, slot.numel, slot.lo, slot.hi, seed + i, stream));
      } else {
        for (const TensorView& v : slot.views) {
          const int64_t n = v.numel();
          f32.resize(static_cast<size_t>(n));
          VILA_RETURN_IF_ERROR(convert_to_f32(v.dtype, v.data, f32.data(), n));
          const void* src = f32.data();
          if (slot.dtype != DType::kF32) {
            half.resize(static_cast<size_t>(n));
            VILA_RETURN_IF_ERROR(convert_from_f32(f32.data(), slot.dtype, half.data(), n));
            src = half.data();
          }
          const auto bytes = static_cast<size_t>(dtype_bytes(slot.dtype, n));
          VILA_RETURN_IF_ERROR(cuda::copy_to_device(dst, src, bytes, stream));
          dst += bytes;
        }
      }
      done += static_cast<size_t>(dtype_bytes(slot.dtype, slot.numel));
      if (options.progress) {
        options.progress("upload weights", static_cast<double>(done) / static_cast<double>(total_));
      }
    }
    return buffer;
  }
  size_t total() const { return total_; }

 private:
  size_t push(Slot slot) {
    slot.offset = total_;
    total_ = align_up(total_ + static_cast<size_t>(dtype_bytes(slot.dtype, slot.numel)));
    slots_.push_back(std::move(slot));
    return slots_.back().offset;
  }
  std::vector<Slot> slots_;
  size_t total_ = 0;
};

struct LinearSlot {
  size_t weight = 0, bias = 0;
  bool has_bias = false;
  int64_t n = 0, k = 0;
};

struct LayerSlots {
  size_t attn_norm = 0, mlp_norm = 0;
  LinearSlot qkv, o, gate_up, down;
};

struct ModelSlots {
  std::vector<LayerSlots> layers;
  size_t embed = 0, output_norm = 0;
  LinearSlot lm_head;
  bool lm_head_is_embed = false;
};

Status check_config(const LlmConfig& c, const LlmEngineOptions& o) {
  if (o.dtype != DType::kBF16 && o.dtype != DType::kF16) {
    return invalid_argument("LlmEngine: dtype must be bf16 or f16, got " +
                            std::string(dtype_name(o.dtype)));
  }
  if (o.max_batch <= 0 || o.max_seq <= 0 || o.max_chunk <= 0 || o.num_pages < 0) {
    return invalid_argument("LlmEngine: max_batch, max_seq and max_chunk must be positive");
  }
  if (c.hidden <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.head_dim <= 0 ||
      c.intermediate <= 0 || c.vocab_size <= 0 || c.n_heads % c.n_kv_heads != 0) {
    return invalid_argument("LlmEngine: bad model geometry");
  }
  if (c.mlp_bias) {
    return unimplemented("LlmEngine: MLP biases (Llama mlp_bias) are not supported yet");
  }
  if (c.hidden % 8 != 0 || c.intermediate % 8 != 0 || (c.n_heads * c.head_dim) % 8 != 0) {
    return unimplemented("LlmEngine: hidden, intermediate and H*D must be multiples of 8");
  }
  return ok_status();
}

// Resolves slot offsets into device pointers.
cuda::DeviceLinearWeight resolve(char* base, const LinearSlot& slot, DType dtype) {
  cuda::DeviceLinearWeight d;
  d.weight = base + slot.weight;
  d.bias = slot.has_bias ? reinterpret_cast<const float*>(base + slot.bias) : nullptr;
  d.dtype = dtype;
  d.out_features = slot.n;
  d.in_features = slot.k;
  return d;
}

void bind(LlmEngine::Impl& m, const ModelSlots& slots) {
  char* base = m.weights.as<char>();
  const DType dt = m.options.dtype;
  auto f32_at = [&](size_t off) { return reinterpret_cast<const float*>(base + off); };
  m.layers.clear();
  for (const LayerSlots& ls : slots.layers) {
    EngineLayer& l = m.layers.emplace_back();
    l.attn_norm = f32_at(ls.attn_norm);
    l.mlp_norm = f32_at(ls.mlp_norm);
    l.qkv = resolve(base, ls.qkv, dt);
    l.o = resolve(base, ls.o, dt);
    l.gate_up = resolve(base, ls.gate_up, dt);
    l.down = resolve(base, ls.down, dt);
  }
  m.embed_table = base + slots.embed;
  m.output_norm = f32_at(slots.output_norm);
  m.lm_head = resolve(base, slots.lm_head, dt);
}

StatusOr<std::unique_ptr<LlmEngine::Impl>> new_impl(const LlmConfig& config,
                                                    const LlmEngineOptions& options) {
  VILA_RETURN_IF_ERROR(check_config(config, options));
  if (cuda::device_count() <= options.device) {
    return unimplemented("LlmEngine: no CUDA device " + std::to_string(options.device));
  }
  VILA_RETURN_IF_ERROR(cuda::set_device(options.device));
  auto impl = std::make_unique<LlmEngine::Impl>();
  impl->config = config;
  impl->options = options;
  VILA_ASSIGN_OR_RETURN(impl->stream, cuda::Stream::create());
  VILA_ASSIGN_OR_RETURN(impl->blas, cuda::Blas::create());
  return impl;
}

}  // namespace

cuda::PagedKv LlmEngine::Impl::layer_kv(int64_t layer) const {
  const size_t pool = static_cast<size_t>(num_pages) * page_elems() * 2;  // bytes of one pool
  char* base = kv.as<char>() + static_cast<size_t>(layer) * 2 * pool;
  cuda::PagedKv p;
  p.k = base;
  p.v = base + pool;
  p.block_table = scratch.block_table;
  p.max_pages = max_pages;
  p.n_head_kv = static_cast<int>(config.n_kv_heads);
  p.head_dim = static_cast<int>(config.head_dim);
  return p;
}

Status LlmEngine::Impl::allocate_runtime() {
  const LlmConfig& c = config;
  const int64_t C = c.hidden, H = c.n_heads, D = c.head_dim, F = c.intermediate;
  max_pages = static_cast<int>((options.max_seq + cuda::kKvPageSize - 1) / cuda::kKvPageSize);
  num_pages = options.num_pages > 0 ? options.num_pages
                                    : static_cast<int64_t>(options.max_batch) * max_pages;
  VILA_ASSIGN_OR_RETURN(
      kv, cuda::DeviceBuffer::create(static_cast<size_t>(c.n_layers) * 2 *
                                     static_cast<size_t>(num_pages) * page_elems() * 2));
  free_pages.clear();
  for (int64_t p = num_pages - 1; p >= 0; --p) free_pages.push_back(static_cast<int32_t>(p));
  seqs.assign(static_cast<size_t>(options.max_batch), EngineSequence{});

  // Scratch: 16-bit buffers hold 2 bytes per element, fp32 ones 4.
  const int64_t R = std::max<int64_t>(options.max_chunk, options.max_batch);
  scratch_rows = R;
  const int B = options.max_batch;
  size_t total = 0;
  auto take = [&](size_t bytes) {
    const size_t at = total;
    total = align_up(total + bytes);
    return at;
  };
  const size_t o_x = take(static_cast<size_t>(R * C) * 4);
  const size_t o_xn = take(static_cast<size_t>(R * C) * 2);
  const size_t o_qkv = take(static_cast<size_t>(R * qkv_width()) * 4);
  const size_t o_q = take(static_cast<size_t>(R * H * D) * 2);
  const size_t o_attn = take(static_cast<size_t>(R * H * D) * 2);
  const size_t o_gu = take(static_cast<size_t>(R * 2 * F) * 2);
  const size_t o_act = take(static_cast<size_t>(R * F) * 2);
  const size_t o_logits =
      take(static_cast<size_t>(std::max<int64_t>(kLogitRows, B) * c.vocab_size) * 4);
  const size_t o_ws = take(cuda::decode_attention_workspace_bytes(
      B, static_cast<int>(H), static_cast<int>(D), static_cast<int>(options.max_seq)));
  const size_t o_argmax = take(cuda::argmax_workspace_bytes(B));
  const size_t o_freq = take(static_cast<size_t>(D / 2) * 4);
  const size_t rope_table = static_cast<size_t>(options.max_seq * (D / 2)) * 4;
  const size_t o_cos = take(rope_table);
  const size_t o_sin = take(rope_table);
  // The step block (mirrored in pinned memory): positions, seq_ids, q_start, kv_len,
  // block_table, tokens, next, step.
  size_t step = 0;
  auto step_take = [&](size_t bytes) {
    const size_t at = step;
    step = align_up(step + bytes, 16);
    return at;
  };
  const size_t s_pos = step_take(static_cast<size_t>(R) * 4);
  const size_t s_seq = step_take(static_cast<size_t>(R) * 4);
  const size_t s_qs = step_take(static_cast<size_t>(B + 1) * 4);
  const size_t s_kvl = step_take(static_cast<size_t>(B) * 4);
  const size_t s_bt = step_take(static_cast<size_t>(B) * max_pages * 4);
  const size_t s_tok = step_take(static_cast<size_t>(B) * 4);
  const size_t s_next = step_take(static_cast<size_t>(B) * 4);
  const size_t s_step = step_take(8);
  step_bytes = step;
  const size_t o_step = take(step_bytes);

  VILA_ASSIGN_OR_RETURN(scratch_buffer, cuda::DeviceBuffer::create(total));
  char* b = scratch_buffer.as<char>();
  scratch.x = reinterpret_cast<float*>(b + o_x);
  scratch.xn = b + o_xn;
  scratch.qkv = reinterpret_cast<float*>(b + o_qkv);
  scratch.q = b + o_q;
  scratch.attn = b + o_attn;
  scratch.gate_up = b + o_gu;
  scratch.act = b + o_act;
  scratch.logits = reinterpret_cast<float*>(b + o_logits);
  scratch.attn_ws = b + o_ws;
  scratch.argmax_ws = b + o_argmax;
  scratch.inv_freq = reinterpret_cast<float*>(b + o_freq);
  scratch.rope_cos = reinterpret_cast<float*>(b + o_cos);
  scratch.rope_sin = reinterpret_cast<float*>(b + o_sin);
  char* sb = b + o_step;
  scratch.positions = reinterpret_cast<int32_t*>(sb + s_pos);
  scratch.seq_ids = reinterpret_cast<int32_t*>(sb + s_seq);
  scratch.q_start = reinterpret_cast<int32_t*>(sb + s_qs);
  scratch.kv_len = reinterpret_cast<int32_t*>(sb + s_kvl);
  scratch.block_table = reinterpret_cast<int32_t*>(sb + s_bt);
  scratch.tokens = reinterpret_cast<int32_t*>(sb + s_tok);
  scratch.next = reinterpret_cast<int32_t*>(sb + s_next);
  scratch.step = reinterpret_cast<uint64_t*>(sb + s_step);

  VILA_ASSIGN_OR_RETURN(step_pinned, cuda::PinnedBuffer::create(step_bytes));
  char* hb = step_pinned.as<char>();
  host.positions = reinterpret_cast<int32_t*>(hb + s_pos);
  host.seq_ids = reinterpret_cast<int32_t*>(hb + s_seq);
  host.q_start = reinterpret_cast<int32_t*>(hb + s_qs);
  host.kv_len = reinterpret_cast<int32_t*>(hb + s_kvl);
  host.block_table = reinterpret_cast<int32_t*>(hb + s_bt);
  host.tokens = reinterpret_cast<int32_t*>(hb + s_tok);
  host.next = reinterpret_cast<int32_t*>(hb + s_next);
  host.step = reinterpret_cast<uint64_t*>(hb + s_step);
  std::fill(host.block_table, host.block_table + static_cast<size_t>(B) * max_pages, 0);

  const std::vector<float> inv_freq = cuda::rope_inv_freq(D / 2, c.rope_theta);
  VILA_RETURN_IF_ERROR(
      cuda::copy_to_device(scratch.inv_freq, inv_freq.data(), inv_freq.size() * 4, s()));
  VILA_RETURN_IF_ERROR(
      cuda::memset_device(scratch.argmax_ws, 0, cuda::argmax_workspace_bytes(B), s()));
  VILA_RETURN_IF_ERROR(cuda::rope_cos_sin_f32(scratch.rope_cos, scratch.rope_sin, scratch.inv_freq,
                                              0, options.max_seq, D / 2, s()));
  return stream.synchronize();
}

Status LlmEngine::Impl::upload_step() {
  return cuda::copy_to_device_async(scratch.positions, step_pinned.as<char>(), step_bytes, s());
}

void LlmEngine::Impl::fill_block_table_row(int row, int seq) {
  const EngineSequence& sq = seqs[static_cast<size_t>(seq)];
  int32_t* dst = host.block_table + static_cast<size_t>(row) * max_pages;
  std::copy(sq.pages.begin(), sq.pages.end(), dst);
}

Status LlmEngine::Impl::reserve_pages(int seq, int64_t new_length) {
  EngineSequence& sq = seqs[static_cast<size_t>(seq)];
  const auto needed = static_cast<size_t>((new_length + cuda::kKvPageSize - 1) / cuda::kKvPageSize);
  if (needed <= sq.pages.size()) return ok_status();
  if (needed - sq.pages.size() > free_pages.size()) {
    return out_of_range("LlmEngine: the KV page pool is full (" + std::to_string(num_pages) +
                        " pages of " + std::to_string(cuda::kKvPageSize) + " positions)");
  }
  while (sq.pages.size() < needed) {
    sq.pages.push_back(free_pages.back());
    free_pages.pop_back();
  }
  return ok_status();
}

StatusOr<std::unique_ptr<LlmEngine>> LlmEngine::create(const LanguageModel& cpu,
                                                       const LlmEngineOptions& options) {
  VILA_ASSIGN_OR_RETURN(auto impl, new_impl(cpu.config(), options));
  const LlmConfig& c = impl->config;
  const DType dt = options.dtype;
  const LlmWeights& w = cpu.weights();
  WeightBuilder b;
  auto linear = [&](std::vector<const cpu::LinearWeight*> parts) {
    LinearSlot slot;
    std::vector<TensorView> ws, bs;
    for (const cpu::LinearWeight* p : parts) {
      ws.push_back(p->weight);
      if (p->has_bias()) bs.push_back(p->bias);
      slot.n += p->out_features();
      slot.k = p->in_features();
    }
    slot.weight = b.add_views(ws, dt);
    slot.has_bias = !bs.empty();
    if (slot.has_bias) slot.bias = b.add_views(bs, DType::kF32);
    return slot;
  };
  for (const LlmLayerWeights& lw : w.layers) {
    if (lw.q.has_bias() != lw.k.has_bias() || lw.k.has_bias() != lw.v.has_bias() ||
        lw.gate.has_bias() != lw.up.has_bias()) {
      return unimplemented("LlmEngine: q/k/v (or gate/up) with a bias on some but not all");
    }
  }
  ModelSlots slots;
  for (const LlmLayerWeights& lw : w.layers) {
    LayerSlots& ls = slots.layers.emplace_back();
    ls.attn_norm = b.add_views({lw.attn_norm}, DType::kF32);
    ls.qkv = linear({&lw.q, &lw.k, &lw.v});
    ls.o = linear({&lw.o});
    ls.mlp_norm = b.add_views({lw.mlp_norm}, DType::kF32);
    ls.gate_up = linear({&lw.gate, &lw.up});
    ls.down = linear({&lw.down});
  }
  slots.embed = b.add_views({w.token_embd}, dt);
  slots.output_norm = b.add_views({w.output_norm}, DType::kF32);
  if (c.tie_embeddings) {
    slots.lm_head.weight = slots.embed;
    slots.lm_head.n = c.vocab_size;
    slots.lm_head.k = c.hidden;
  } else {
    slots.lm_head = linear({&w.output});
  }
  VILA_ASSIGN_OR_RETURN(impl->weights, b.finish(impl->s(), 0, options));
  bind(*impl, slots);
  VILA_RETURN_IF_ERROR(impl->allocate_runtime());
  return std::unique_ptr<LlmEngine>(new LlmEngine(std::move(impl)));
}

StatusOr<std::unique_ptr<LlmEngine>> LlmEngine::create_random(const LlmConfig& config,
                                                              const LlmEngineOptions& options,
                                                              uint64_t seed) {
  VILA_ASSIGN_OR_RETURN(auto impl, new_impl(config, options));
  const LlmConfig& c = impl->config;
  const DType dt = options.dtype;
  WeightBuilder b;
  auto linear = [&](int64_t n, int64_t k, bool bias) {
    LinearSlot slot;
    slot.n = n;
    slot.k = k;
    // Uniform(-a, a) with a = 1/sqrt(k): unit-scale outputs for unit-scale inputs.
    slot.weight = b.add_random(n * k, dt, 1.0f / std::sqrt(static_cast<float>(k)));
    slot.has_bias = bias;
    if (bias) slot.bias = b.add_random(n, DType::kF32, 0.02f);
    return slot;
  };
  const int64_t C = c.hidden, F = c.intermediate, HD = c.n_heads * c.head_dim;
  ModelSlots slots;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerSlots& ls = slots.layers.emplace_back();
    ls.attn_norm = b.add_constant(C, 1.0f);
    ls.qkv = linear(impl->qkv_width(), C, c.qkv_bias);
    ls.o = linear(C, HD, c.o_bias);
    ls.mlp_norm = b.add_constant(C, 1.0f);
    ls.gate_up = linear(2 * F, C, c.mlp_bias);
    ls.down = linear(C, F, c.mlp_bias);
  }
  slots.embed = b.add_random(c.vocab_size * C, dt, 1.0f);
  slots.output_norm = b.add_constant(C, 1.0f);
  if (c.tie_embeddings) {
    slots.lm_head.weight = slots.embed;
    slots.lm_head.n = c.vocab_size;
    slots.lm_head.k = C;
  } else {
    slots.lm_head = linear(c.vocab_size, C, false);
  }
  VILA_ASSIGN_OR_RETURN(impl->weights, b.finish(impl->s(), seed, options));
  bind(*impl, slots);
  VILA_RETURN_IF_ERROR(impl->allocate_runtime());
  return std::unique_ptr<LlmEngine>(new LlmEngine(std::move(impl)));
}

LlmEngine::LlmEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlmEngine::~LlmEngine() = default;

const LlmConfig& LlmEngine::config() const { return impl_->config; }
const LlmEngineOptions& LlmEngine::options() const { return impl_->options; }

LlmEngineMemory LlmEngine::memory() const {
  LlmEngineMemory m;
  m.weights = impl_->weights.bytes();
  m.kv_cache = impl_->kv.bytes();
  m.activations = impl_->scratch_buffer.bytes();
  m.workspace = impl_->blas->workspace_bytes();
  return m;
}

StatusOr<int> LlmEngine::new_sequence() {
  for (size_t i = 0; i < impl_->seqs.size(); ++i) {
    EngineSequence& sq = impl_->seqs[i];
    if (!sq.active) {
      sq = EngineSequence{};
      sq.active = true;
      return static_cast<int>(i);
    }
  }
  return resource_exhausted("LlmEngine: all " + std::to_string(impl_->seqs.size()) +
                            " sequence slots are in use (max_batch)");
}

void LlmEngine::release(int seq) {
  if (seq < 0 || static_cast<size_t>(seq) >= impl_->seqs.size()) return;
  EngineSequence& sq = impl_->seqs[static_cast<size_t>(seq)];
  for (int32_t p : sq.pages) impl_->free_pages.push_back(p);
  sq = EngineSequence{};
}

int64_t LlmEngine::length(int seq) const {
  if (seq < 0 || static_cast<size_t>(seq) >= impl_->seqs.size()) return 0;
  return impl_->seqs[static_cast<size_t>(seq)].length;
}

Status LlmEngine::truncate(int seq, int64_t n) {
  if (seq < 0 || static_cast<size_t>(seq) >= impl_->seqs.size() ||
      !impl_->seqs[static_cast<size_t>(seq)].active) {
    return invalid_argument("LlmEngine::truncate: no sequence " + std::to_string(seq));
  }
  EngineSequence& sq = impl_->seqs[static_cast<size_t>(seq)];
  if (n < 0 || n > sq.length) {
    return invalid_argument("LlmEngine::truncate: " + std::to_string(n) + " outside [0, " +
                            std::to_string(sq.length) + "]");
  }
  sq.length = n;
  const auto keep = static_cast<size_t>((n + cuda::kKvPageSize - 1) / cuda::kKvPageSize);
  while (sq.pages.size() > keep) {
    impl_->free_pages.push_back(sq.pages.back());
    sq.pages.pop_back();
  }
  return ok_status();
}

#else  // !VILA_WITH_CUDA

struct LlmEngine::Impl {
  LlmConfig config;
  LlmEngineOptions options;
};

StatusOr<std::unique_ptr<LlmEngine>> LlmEngine::create(const LanguageModel&,
                                                       const LlmEngineOptions&) {
  return unimplemented("LlmEngine: vila.cpp was built without CUDA (VILA_CUDA=OFF)");
}
StatusOr<std::unique_ptr<LlmEngine>> LlmEngine::create_random(const LlmConfig&,
                                                              const LlmEngineOptions&, uint64_t) {
  return unimplemented("LlmEngine: vila.cpp was built without CUDA (VILA_CUDA=OFF)");
}
LlmEngine::LlmEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlmEngine::~LlmEngine() = default;
const LlmConfig& LlmEngine::config() const { return impl_->config; }
const LlmEngineOptions& LlmEngine::options() const { return impl_->options; }
LlmEngineMemory LlmEngine::memory() const { return {}; }
StatusOr<int> LlmEngine::new_sequence() { return unimplemented("LlmEngine: built without CUDA"); }
void LlmEngine::release(int) {}
int64_t LlmEngine::length(int) const { return 0; }
Status LlmEngine::truncate(int, int64_t) { return unimplemented("LlmEngine: built without CUDA"); }
Status LlmEngine::prefill(int, const float*, int64_t, float*, int64_t) {
  return unimplemented("LlmEngine: built without CUDA");
}
Status LlmEngine::prefill_device(int, const float*, int64_t, float*, int64_t) {
  return unimplemented("LlmEngine: built without CUDA");
}
Status LlmEngine::decode(const std::vector<int>&, const std::vector<int32_t>&,
                         const SamplingParams&, uint64_t, std::vector<int32_t>&, float*) {
  return unimplemented("LlmEngine: built without CUDA");
}
Status LlmEngine::embed(const int32_t*, int64_t, float*) const {
  return unimplemented("LlmEngine: built without CUDA");
}

#endif  // VILA_WITH_CUDA

}  // namespace vila
