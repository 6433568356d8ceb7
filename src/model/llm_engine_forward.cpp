// LlmEngine forward passes: prefill (cuBLASLt + paged flash attention), decode (GEMV or cuBLASLt
// + flash-decoding, captured in a CUDA graph per batch size) and GPU token selection.
// Dimensions as llm_engine.h; R rows of the pass (tokens of a prefill chunk, or sequences of a
// decode step).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "model/llm_engine.h"
#include "model/llm_engine_impl.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/device.h"
#include "backend/cuda/elementwise.h"
#include "backend/cuda/embedding.h"
#include "backend/cuda/flash_attention.h"
#include "backend/cuda/gemv.h"
#include "backend/cuda/kv_append.h"
#include "backend/cuda/rms_norm.h"
#include "backend/cuda/sampling.h"
#endif

namespace vila {

#ifdef VILA_WITH_CUDA

namespace {

constexpr int kGemvRows = 1;  // decode rows up to which the fused GEMV is used

// How the decode GEMVs launch (gemv.h). PDL measured neutral on the H100 (docs/benchmarks.md);
// the environment variable VILA_DECODE_PDL ("0" / "1") overrides the default for A/B
// measurements, read once per process.
struct GemvLaunch {
  bool pdl = true;  // programmatic dependent launch of every GEMV
};
bool env_flag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strcmp(v, "0") != 0;
}
const GemvLaunch& gemv_launch() {
  static const GemvLaunch launch = [] {
    GemvLaunch l;
    l.pdl = env_flag("VILA_DECODE_PDL", l.pdl);
    return l;
  }();
  return launch;
}

// x̂ (prologue) · Wᵀ (+ bias) through the GEMV (decode, rows <= kGemvMaxRows) or through a
// separate 16-bit input buffer and cuBLASLt (prefill, larger batches).
struct GemmStep {
  cuda::GemvPrologue prologue = cuda::GemvPrologue::kNone;
  const void* x = nullptr;  // prologue input (see gemv.h)
  int64_t x_row_stride = 0;
  const float* norm_weight = nullptr;  // kRmsNorm
  void* out = nullptr;
  int64_t out_row_stride = 0;
  DType out_dtype = DType::kF32;
  bool add_to = false;  // out (fp32) += result
};

}  // namespace

// The prologue's input transform into xn (or act), then cuBLASLt; or the fused GEMV.
static Status gemm(LlmEngine::Impl& m, const cuda::DeviceLinearWeight& w, const GemmStep& g,
                   int rows, bool use_gemv) {
  const DType dt = m.options.dtype;
  const float eps = static_cast<float>(m.config.rms_eps);
  if (use_gemv) {
    cuda::GemvArgs a;
    a.out = g.out;
    a.out_row_stride = g.out_row_stride;
    a.out_dtype = g.out_dtype;
    a.x = g.x;
    a.x_row_stride = g.x_row_stride;
    a.weight = w.weight;
    a.bias = w.bias;
    a.norm_weight = g.norm_weight;
    a.eps = eps;
    a.rows = rows;
    a.n = w.out_features;
    a.k = w.in_features;
    a.dtype = dt;
    a.prologue = g.prologue;
    a.epilogue = g.add_to ? cuda::GemvEpilogue::kAddTo : cuda::GemvEpilogue::kStore;
    a.programmatic_launch = gemv_launch().pdl;
    return cuda::gemv(a, m.s());
  }
  const void* in = g.x;
  switch (g.prologue) {
    case cuda::GemvPrologue::kRmsNorm:
      VILA_RETURN_IF_ERROR(cuda::rms_norm_to(m.scratch.xn, dt, static_cast<const float*>(g.x),
                                             g.norm_weight, rows, w.in_features, eps, m.s()));
      in = m.scratch.xn;
      break;
    case cuda::GemvPrologue::kSiluGate:
      VILA_RETURN_IF_ERROR(cuda::silu_mul_to(m.scratch.act, g.x, rows, w.in_features, dt, m.s()));
      in = m.scratch.act;
      break;
    case cuda::GemvPrologue::kNone:
      break;
  }
  cuda::LinearArgs la;
  la.out = g.out;
  la.out_dtype = g.out_dtype;
  la.out_row_stride = g.out_row_stride;
  la.in = in;
  la.rows = rows;
  la.accumulate = g.add_to;
  return cuda::linear(*m.blas, la, w, m.s());
}

Status LlmEngine::Impl::run_layers(int rows, bool decode) {
  const LlmConfig& c = config;
  const int64_t C = c.hidden, H = c.n_heads, D = c.head_dim, F = c.intermediate;
  // The fused GEMV beats cuBLASLt (plus separate norm / SwiGLU kernels) at one row; from a few
  // rows on cuBLASLt is faster (measured on the H100, docs/cuda.md).
  const bool use_gemv = decode && rows <= kGemvRows;
  const auto scale = static_cast<float>(std::pow(static_cast<double>(D), -0.5));
  const DType dt = options.dtype;
  for (size_t l = 0; l < layers.size(); ++l) {
    const EngineLayer& w = layers[l];
    const cuda::PagedKv kv = layer_kv(static_cast<int64_t>(l));
    // qkv (R, (H + 2Hkv) D) fp32 = rms_norm(x) · Wqkvᵀ + b
    GemmStep qkv;
    qkv.prologue = cuda::GemvPrologue::kRmsNorm;
    qkv.x = scratch.x;
    qkv.x_row_stride = C;
    qkv.norm_weight = w.attn_norm;
    qkv.out = scratch.qkv;
    qkv.out_row_stride = qkv_width();
    VILA_RETURN_IF_ERROR(gemm(*this, w.qkv, qkv, rows, use_gemv));
    // rotate q and k; q -> (R, H D) dtype, k and v -> the pages
    cuda::KvAppendArgs ka;
    ka.q_out = scratch.q;
    ka.q_out_row_stride = H * D;
    ka.qkv = scratch.qkv;
    ka.qkv_row_stride = qkv_width();
    ka.positions = scratch.positions;
    ka.seq_ids = scratch.seq_ids;
    ka.inv_freq = scratch.inv_freq;
    ka.rope_cos = scratch.rope_cos;
    ka.rope_sin = scratch.rope_sin;
    ka.table_positions = options.max_seq;
    ka.kv = kv;
    ka.rows = rows;
    ka.n_head = static_cast<int>(H);
    ka.dtype = dt;
    VILA_RETURN_IF_ERROR(cuda::rope_kv_append(ka, s()));
    // attn (R, H D) dtype
    if (decode) {
      cuda::PagedDecodeArgs da;
      da.out = scratch.attn;
      da.out_row_stride = H * D;
      da.q = scratch.q;
      da.q_row_stride = H * D;
      da.kv = kv;
      da.kv_len = scratch.kv_len;
      da.batch = rows;
      da.max_kv_len = static_cast<int>(options.max_seq);
      da.n_head = static_cast<int>(H);
      da.scale = scale;
      da.dtype = dt;
      da.workspace = scratch.attn_ws;
      VILA_RETURN_IF_ERROR(cuda::decode_attention_paged(da, s()));
    } else {
      cuda::PagedPrefillArgs pa;
      pa.out = scratch.attn;
      pa.out_row_stride = H * D;
      pa.q = scratch.q;
      pa.q_row_stride = H * D;
      pa.kv = kv;
      pa.q_start = scratch.q_start;
      pa.kv_len = scratch.kv_len;
      pa.batch = 1;
      pa.max_q_len = rows;
      pa.n_head = static_cast<int>(H);
      pa.scale = scale;
      pa.dtype = dt;
      VILA_RETURN_IF_ERROR(cuda::flash_attention_paged(pa, s()));
    }
    // x += attn · Woᵀ (+ b)
    GemmStep o;
    o.x = scratch.attn;
    o.x_row_stride = H * D;
    o.out = scratch.x;
    o.out_row_stride = C;
    o.add_to = true;
    VILA_RETURN_IF_ERROR(gemm(*this, w.o, o, rows, use_gemv));
    // gate_up (R, 2F) dtype = rms_norm(x) · Wguᵀ
    GemmStep gu;
    gu.prologue = cuda::GemvPrologue::kRmsNorm;
    gu.x = scratch.x;
    gu.x_row_stride = C;
    gu.norm_weight = w.mlp_norm;
    gu.out = scratch.gate_up;
    gu.out_row_stride = 2 * F;
    gu.out_dtype = dt;
    VILA_RETURN_IF_ERROR(gemm(*this, w.gate_up, gu, rows, use_gemv));
    // x += (silu(gate) * up) · Wdownᵀ
    GemmStep down;
    down.prologue = cuda::GemvPrologue::kSiluGate;
    down.x = scratch.gate_up;
    down.x_row_stride = 2 * F;
    down.out = scratch.x;
    down.out_row_stride = C;
    down.add_to = true;
    VILA_RETURN_IF_ERROR(gemm(*this, w.down, down, rows, use_gemv));
  }
  return ok_status();
}

// logits (rows, V) fp32 at out_device = rms_norm(x rows) · lm_headᵀ, rows <= kLogitRows.
Status LlmEngine::Impl::logits_rows(const float* x_rows, int rows, float* out_device) {
  GemmStep g;
  g.prologue = cuda::GemvPrologue::kRmsNorm;
  g.x = x_rows;
  g.x_row_stride = config.hidden;
  g.norm_weight = output_norm;
  g.out = out_device;
  g.out_row_stride = config.vocab_size;
  return gemm(*this, lm_head, g, rows, rows <= kGemvRows);
}

Status LlmEngine::Impl::prefill_impl(int seq, const float* embeds, bool embeds_on_device, int64_t n,
                                     float* logits, int64_t n_logits) {
  if (seq < 0 || static_cast<size_t>(seq) >= seqs.size() ||
      !seqs[static_cast<size_t>(seq)].active) {
    return invalid_argument("LlmEngine::prefill: no sequence " + std::to_string(seq));
  }
  VILA_RETURN_IF_ERROR(check_forward_args(embeds, n, logits, n_logits));
  EngineSequence& sq = seqs[static_cast<size_t>(seq)];
  if (n > options.max_seq - sq.length) {
    return out_of_range("LlmEngine::prefill: " + std::to_string(n) + " new positions at length " +
                        std::to_string(sq.length) + " exceed max_seq " +
                        std::to_string(options.max_seq));
  }
  VILA_RETURN_IF_ERROR(cuda::set_device(options.device));
  VILA_RETURN_IF_ERROR(reserve_pages(seq, sq.length + n));
  const int64_t C = config.hidden, V = config.vocab_size;
  const int64_t first_logit_row = n - n_logits;
  for (int64_t start = 0; start < n; start += options.max_chunk) {
    const int64_t T = std::min(options.max_chunk, n - start);
    const int64_t p0 = sq.length;
    const auto bytes = static_cast<size_t>(T * C) * 4;
    if (embeds_on_device) {
      VILA_RETURN_IF_ERROR(cuda::copy_device_to_device(scratch.x, embeds + start * C, bytes, s()));
    } else {
      VILA_RETURN_IF_ERROR(cuda::copy_to_device(scratch.x, embeds + start * C, bytes, s()));
    }
    // The previous chunk's step arrays may still be in use by the GPU.
    VILA_RETURN_IF_ERROR(stream.synchronize());
    for (int64_t r = 0; r < T; ++r) {
      host.positions[r] = static_cast<int32_t>(p0 + r);
      host.seq_ids[r] = 0;
    }
    host.q_start[0] = 0;
    host.q_start[1] = static_cast<int32_t>(T);
    host.kv_len[0] = static_cast<int32_t>(p0 + T);
    fill_block_table_row(0, seq);
    VILA_RETURN_IF_ERROR(upload_step());
    VILA_RETURN_IF_ERROR(run_layers(static_cast<int>(T), /*decode=*/false));
    // Logits of chunk rows [first, T).
    const int64_t first = std::clamp(first_logit_row - start, int64_t{0}, T);
    for (int64_t r = first; r < T; r += kLogitRows) {
      const int64_t rows = std::min(kLogitRows, T - r);
      VILA_RETURN_IF_ERROR(logits_rows(scratch.x + r * C, static_cast<int>(rows), scratch.logits));
      float* dst = logits + (start + r - first_logit_row) * V;
      VILA_RETURN_IF_ERROR(
          cuda::copy_to_host(dst, scratch.logits, static_cast<size_t>(rows * V) * 4, s()));
    }
    VILA_RETURN_IF_ERROR(stream.synchronize());
    sq.length = p0 + T;
  }
  return ok_status();
}

Status LlmEngine::Impl::decode_body(int batch) {
  VILA_RETURN_IF_ERROR(cuda::embedding_to_f32(scratch.x, embed_table, options.dtype, scratch.tokens,
                                              batch, config.vocab_size, config.hidden, s()));
  VILA_RETURN_IF_ERROR(run_layers(batch, /*decode=*/true));
  return logits_rows(scratch.x, batch, scratch.logits);
}

Status LlmEngine::prefill(int seq, const float* embeds, int64_t n, float* logits,
                          int64_t n_logits) {
  return impl_->prefill_impl(seq, embeds, false, n, logits, n_logits);
}

Status LlmEngine::prefill_device(int seq, const float* embeds_device, int64_t n, float* logits,
                                 int64_t n_logits) {
  return impl_->prefill_impl(seq, embeds_device, true, n, logits, n_logits);
}

Status LlmEngine::decode(const std::vector<int>& seq_list, const std::vector<int32_t>& tokens,
                         const SamplingParams& sampling, uint64_t step, std::vector<int32_t>& next,
                         float* logits) {
  Impl& m = *impl_;
  const int batch = static_cast<int>(seq_list.size());
  if (batch == 0 || batch > m.options.max_batch || tokens.size() != seq_list.size()) {
    return invalid_argument("LlmEngine::decode: " + std::to_string(batch) + " sequences and " +
                            std::to_string(tokens.size()) + " tokens (1 .. max_batch " +
                            std::to_string(m.options.max_batch) + ", one token each)");
  }
  VILA_RETURN_IF_ERROR(cuda::set_device(m.options.device));
  VILA_RETURN_IF_ERROR(m.stream.synchronize());  // the pinned step arrays are free again
  for (int i = 0; i < batch; ++i) {
    const int sq_id = seq_list[static_cast<size_t>(i)];
    if (sq_id < 0 || static_cast<size_t>(sq_id) >= m.seqs.size() ||
        !m.seqs[static_cast<size_t>(sq_id)].active) {
      return invalid_argument("LlmEngine::decode: no sequence " + std::to_string(sq_id));
    }
    for (int j = 0; j < i; ++j) {
      if (seq_list[static_cast<size_t>(j)] == sq_id) {
        return invalid_argument("LlmEngine::decode: sequence " + std::to_string(sq_id) +
                                " listed twice");
      }
    }
    const int32_t tok = tokens[static_cast<size_t>(i)];
    if (tok < 0 || tok >= m.config.vocab_size) {
      return invalid_argument("LlmEngine::decode: token id " + std::to_string(tok) +
                              " outside the vocabulary of " + std::to_string(m.config.vocab_size));
    }
    const EngineSequence& sq = m.seqs[static_cast<size_t>(sq_id)];
    if (sq.length + 1 > m.options.max_seq) {
      return out_of_range("LlmEngine::decode: sequence " + std::to_string(sq_id) +
                          " is full (max_seq " + std::to_string(m.options.max_seq) + ")");
    }
  }
  for (int i = 0; i < batch; ++i) {
    const int sq_id = seq_list[static_cast<size_t>(i)];
    VILA_RETURN_IF_ERROR(m.reserve_pages(sq_id, m.seqs[static_cast<size_t>(sq_id)].length + 1));
    const EngineSequence& sq = m.seqs[static_cast<size_t>(sq_id)];
    m.host.positions[i] = static_cast<int32_t>(sq.length);
    m.host.seq_ids[i] = i;
    m.host.kv_len[i] = static_cast<int32_t>(sq.length + 1);
    m.host.tokens[i] = tokens[static_cast<size_t>(i)];
    m.fill_block_table_row(i, sq_id);
  }
  *m.host.step = step;
  VILA_RETURN_IF_ERROR(m.upload_step());

  if (m.options.cuda_graphs) {
    auto it = m.decode_graphs.find(batch);
    if (it == m.decode_graphs.end()) {
      // Warm up outside the capture (cuBLASLt plans, lazy module loading), then capture.
      VILA_RETURN_IF_ERROR(m.decode_body(batch));
      VILA_RETURN_IF_ERROR(cuda::Graph::begin_capture(m.s()));
      const Status st = m.decode_body(batch);
      if (!st.ok()) {
        cuda::Graph::abort_capture(m.s());
        return st;
      }
      VILA_ASSIGN_OR_RETURN(cuda::Graph graph, cuda::Graph::end_capture(m.s()));
      it = m.decode_graphs.emplace(batch, std::move(graph)).first;
    }
    VILA_RETURN_IF_ERROR(it->second.launch(m.s()));
  } else {
    VILA_RETURN_IF_ERROR(m.decode_body(batch));
  }

  const int64_t V = m.config.vocab_size;
  if (sampling.temperature <= 0.0f) {
    VILA_RETURN_IF_ERROR(cuda::argmax_rows(m.scratch.next, m.scratch.logits, batch, V, V, m.s(),
                                           m.scratch.argmax_ws));
  } else {
    cuda::SampleArgs sa;
    sa.out_ids = m.scratch.next;
    sa.logits = m.scratch.logits;
    sa.rows = batch;
    sa.vocab = V;
    sa.row_stride = V;
    sa.temperature = sampling.temperature;
    sa.top_k = sampling.top_k;
    sa.top_p = sampling.top_p;
    sa.seed = sampling.seed;
    sa.step = m.scratch.step;
    VILA_RETURN_IF_ERROR(cuda::sample_top_p(sa, m.s()));
  }
  VILA_RETURN_IF_ERROR(
      cuda::copy_to_host_async(m.host.next, m.scratch.next, static_cast<size_t>(batch) * 4, m.s()));
  if (logits != nullptr) {
    VILA_RETURN_IF_ERROR(cuda::copy_to_host_async(logits, m.scratch.logits,
                                                  static_cast<size_t>(batch * V) * 4, m.s()));
  }
  VILA_RETURN_IF_ERROR(m.stream.synchronize());
  next.assign(m.host.next, m.host.next + batch);
  for (int i = 0; i < batch; ++i)
    m.seqs[static_cast<size_t>(seq_list[static_cast<size_t>(i)])].length++;
  return ok_status();
}

Status LlmEngine::embed(const int32_t* ids, int64_t n, float* out) const {
  Impl& m = *impl_;
  const int64_t C = m.config.hidden;
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= m.config.vocab_size) {
      return invalid_argument("LlmEngine::embed: token id " + std::to_string(ids[i]) +
                              " outside the vocabulary of " + std::to_string(m.config.vocab_size));
    }
  }
  VILA_RETURN_IF_ERROR(m.stream.synchronize());
  for (int64_t start = 0; start < n; start += m.options.max_batch) {
    const int64_t rows = std::min<int64_t>(m.options.max_batch, n - start);
    std::copy(ids + start, ids + start + rows, m.host.tokens);
    VILA_RETURN_IF_ERROR(cuda::copy_to_device(m.scratch.tokens, m.host.tokens,
                                              static_cast<size_t>(rows) * 4, m.s()));
    VILA_RETURN_IF_ERROR(cuda::embedding_to_f32(m.scratch.x, m.embed_table, m.options.dtype,
                                                m.scratch.tokens, rows, m.config.vocab_size, C,
                                                m.s()));
    VILA_RETURN_IF_ERROR(
        cuda::copy_to_host(out + start * C, m.scratch.x, static_cast<size_t>(rows * C) * 4, m.s()));
  }
  return ok_status();
}

#endif  // VILA_WITH_CUDA

}  // namespace vila
