// Span attention for CUDA training (span_attention.h).
#include "train/cuda/span_attention.h"

#include <algorithm>
#include <cmath>

#include "backend/cuda/flash_attention.h"
#include "backend/cuda/flash_attention_backward.h"
#include "backend/cuda/train_ops.h"

namespace vila::train {

namespace {

constexpr int64_t kFlashHeadDims[] = {16, 32, 64, 72, 80, 96, 128};
constexpr int64_t kFlashBackwardHeadDims[] = {64, 72, 80, 128};
constexpr int64_t kFlashStrideMultiple = 8;  // elements: 16-byte rows

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The flash kernels take this head dim, these row strides and (16-byte) operand addresses.
bool flash_supports(const AttnDims& d, const void* q, const void* k, const void* v) {
  const bool dim = std::find(std::begin(kFlashHeadDims), std::end(kFlashHeadDims), d.head_dim) !=
                   std::end(kFlashHeadDims);
  return dim && (d.heads * d.head_dim) % kFlashStrideMultiple == 0 &&
         d.qs() % kFlashStrideMultiple == 0 && d.kvs() % kFlashStrideMultiple == 0 &&
         aligned16(q) && aligned16(k) && aligned16(v);
}

// Whether the backward takes FlashAttention-2 (which then needs the forward's lse): a supported
// head dim, and not a deterministic context (flash's dq / dk / dv are fp32 atomics).
bool use_flash_backward(const TrainContext& ctx, const AttnDims& d, const void* q, const void* k,
                        const void* v) {
  return !ctx.deterministic && flash_supports(d, q, k, v) &&
         std::find(std::begin(kFlashBackwardHeadDims), std::end(kFlashBackwardHeadDims),
                   d.head_dim) != std::end(kFlashBackwardHeadDims);
}

int64_t longest(const std::vector<Span>& spans) {
  int64_t l = 0;
  for (const Span& s : spans) l = std::max(l, s.len);
  return l;
}

bool is_uniform(const std::vector<Span>& spans) {
  for (size_t i = 0; i < spans.size(); ++i) {
    if (spans[i].len != spans[0].len || spans[i].start != static_cast<int64_t>(i) * spans[0].len) {
      return false;
    }
  }
  return !spans.empty();
}

const uint16_t* at(const void* base, int64_t row, int64_t stride) {
  return static_cast<const uint16_t*>(base) + row * stride;
}

// Per-span scratch of the materialised path, sized for the longest span.
struct SpanScratch {
  float* s = nullptr;         // (H, L, L) f32: scores, then dP
  uint16_t* p = nullptr;      // (H, L, L) bf16: P, then dS
  uint16_t* k_exp = nullptr;  // (L, H·D) bf16: K expanded to H heads (GQA only)
  uint16_t* v_exp = nullptr;
  float *dq = nullptr, *dk = nullptr, *dv = nullptr;  // (L, H·D) f32
};

StatusOr<SpanScratch> get_scratch(TrainContext& ctx, const AttnDims& d, int64_t len,
                                  bool backward) {
  SpanScratch s;
  const int64_t qd = d.heads * d.head_dim;
  VILA_ASSIGN_OR_RETURN(s.s, ctx.scratch.get<float>("attn.s", d.heads * len * len));
  VILA_ASSIGN_OR_RETURN(s.p, ctx.scratch.get<uint16_t>("attn.p", d.heads * len * len));
  if (d.heads != d.kv_heads) {
    VILA_ASSIGN_OR_RETURN(s.k_exp, ctx.scratch.get<uint16_t>("attn.k_exp", len * qd));
    VILA_ASSIGN_OR_RETURN(s.v_exp, ctx.scratch.get<uint16_t>("attn.v_exp", len * qd));
  }
  if (backward) {
    VILA_ASSIGN_OR_RETURN(s.dq, ctx.scratch.get<float>("attn.dq", len * qd));
    VILA_ASSIGN_OR_RETURN(s.dk, ctx.scratch.get<float>("attn.dk", len * qd));
    VILA_ASSIGN_OR_RETURN(s.dv, ctx.scratch.get<float>("attn.dv", len * qd));
  }
  return s;
}

// K and V of one span as H-head operands: pointers and row stride (expanded under GQA).
struct KvOperands {
  const void* k;
  const void* v;
  int64_t ld;
};

StatusOr<KvOperands> kv_operands(TrainContext& ctx, const SpanScratch& s, const void* k,
                                 const void* v, const Span& span, const AttnDims& d) {
  const int64_t kvd = d.kv_heads * d.head_dim;
  const void* ks = at(k, span.start, d.kvs());
  const void* vs = at(v, span.start, d.kvs());
  if (d.heads == d.kv_heads) return KvOperands{ks, vs, d.kvs()};
  if (d.kvs() != kvd) return unimplemented("span attention: strided k / v under GQA");
  const cuda::QkvShape qs{span.len, span.len, static_cast<int>(d.heads),
                          static_cast<int>(d.kv_heads), static_cast<int>(d.head_dim)};
  VILA_RETURN_IF_ERROR(cuda::train_expand_kv(s.k_exp, ks, qs, ctx.st()));
  VILA_RETURN_IF_ERROR(cuda::train_expand_kv(s.v_exp, vs, qs, ctx.st()));
  return KvOperands{s.k_exp, s.v_exp, d.heads * d.head_dim};
}

// s.s (H, L, L) = scale q kᵀ;  s.p = softmax(s.s).
Status scores_and_softmax(TrainContext& ctx, const SpanScratch& s, const void* q,
                          const KvOperands& kv, int64_t len, const AttnDims& d) {
  const int64_t D = d.head_dim;
  cuda::GemmArgs sa;
  sa.m = len, sa.n = len, sa.k = D;
  sa.a = q, sa.lda = d.qs(), sa.stride_a = D;
  sa.b = kv.k, sa.ldb = kv.ld, sa.trans_b = true, sa.stride_b = D;
  sa.c = s.s, sa.ldc = len, sa.stride_c = len * len;
  sa.alpha = 1.0f / std::sqrt(static_cast<float>(D));
  sa.batch = static_cast<int>(d.heads);
  VILA_RETURN_IF_ERROR(ctx.gemm->gemm(sa, ctx.st()));
  return cuda::train_softmax(s.p, s.s, d.heads, len, d.causal, ctx.st());
}

}  // namespace

std::vector<Span> spans_from_segments(const int32_t* segments, int64_t t) {
  std::vector<Span> spans;
  if (segments == nullptr) return {{0, t}};
  for (int64_t i = 0; i < t; ++i) {
    if (i == 0 || segments[i] != segments[i - 1]) spans.push_back({i, 0});
    ++spans.back().len;
  }
  return spans;
}

std::vector<Span> uniform_spans(int64_t count, int64_t len) {
  std::vector<Span> spans;
  for (int64_t i = 0; i < count; ++i) spans.push_back({i * len, len});
  return spans;
}

Status span_attention_forward(TrainContext& ctx, void* out, float* lse, const void* q,
                              const void* k, const void* v, const std::vector<Span>& spans,
                              const AttnDims& d) {
  const int64_t D = d.head_dim;
  const int64_t qd = d.heads * D;
  if (flash_supports(d, q, k, v)) {
    cuda::DenseAttentionArgs a;
    a.out_row_stride = qd;
    a.q_row_stride = d.qs();
    a.k_row_stride = d.kvs();
    a.v_row_stride = d.kvs();
    a.n_head = static_cast<int>(d.heads);
    a.n_head_kv = static_cast<int>(d.kv_heads);
    a.head_dim = static_cast<int>(D);
    a.causal = d.causal;
    a.scale = 1.0f / std::sqrt(static_cast<float>(D));
    const bool uniform = is_uniform(spans);
    for (size_t i = 0; i < (uniform ? 1 : spans.size()); ++i) {
      const Span& sp = spans[i];
      a.out = static_cast<uint16_t*>(out) + sp.start * qd;
      a.q = at(q, sp.start, d.qs());
      a.k = at(k, sp.start, d.kvs());
      a.v = at(v, sp.start, d.kvs());
      a.lse = use_flash_backward(ctx, d, q, k, v) && lse != nullptr ? lse + sp.start * d.heads
                                                                    : nullptr;
      a.batch = uniform ? static_cast<int>(spans.size()) : 1;
      a.seq = static_cast<int>(sp.len);
      VILA_RETURN_IF_ERROR(cuda::flash_attention_dense(a, ctx.st()));
    }
    return ok_status();
  }
  VILA_ASSIGN_OR_RETURN(SpanScratch s, get_scratch(ctx, d, longest(spans), false));
  for (const Span& sp : spans) {
    const void* qs = at(q, sp.start, d.qs());
    VILA_ASSIGN_OR_RETURN(KvOperands kv, kv_operands(ctx, s, k, v, sp, d));
    VILA_RETURN_IF_ERROR(scores_and_softmax(ctx, s, qs, kv, sp.len, d));
    // out (L, D) per head = P v
    cuda::GemmArgs pv;
    pv.m = sp.len, pv.n = D, pv.k = sp.len;
    pv.a = s.p, pv.lda = sp.len, pv.stride_a = sp.len * sp.len;
    pv.b = kv.v, pv.ldb = kv.ld, pv.stride_b = D;
    pv.c = static_cast<uint16_t*>(out) + sp.start * qd, pv.ldc = qd, pv.stride_c = D;
    pv.c_dtype = DType::kBF16;
    pv.batch = static_cast<int>(d.heads);
    VILA_RETURN_IF_ERROR(ctx.gemm->gemm(pv, ctx.st()));
  }
  return ok_status();
}

namespace {

// The FlashAttention-2 backward over every span, then one merge over all rows.
Status flash_backward(TrainContext& ctx, void* dqkv, const void* da, const AttnSaved& sv,
                      const float* cos, const float* sin, const std::vector<Span>& spans,
                      const AttnDims& d) {
  const int64_t D = d.head_dim;
  const int64_t qd = d.heads * D;
  const int64_t kvd = d.kv_heads * D;
  const int64_t nqkv = qd + 2 * kvd;
  int64_t rows = 0;
  for (const Span& sp : spans) rows = std::max(rows, sp.start + sp.len);
  // Without RoPE and GQA the merge is a conversion: dq | dk | dv go into one (rows, nqkv) buffer.
  const bool direct = cos == nullptr && d.heads == d.kv_heads;
  float* dq = nullptr;
  float* dk = nullptr;
  float* dv = nullptr;
  cuda::AttentionBackwardArgs a;
  if (direct) {
    VILA_ASSIGN_OR_RETURN(dq, ctx.scratch.get<float>("attn.fdqkv", rows * nqkv));
    dk = dq + qd;
    dv = dk + kvd;
    a.dq_row_stride = a.dk_row_stride = a.dv_row_stride = nqkv;
  } else {
    VILA_ASSIGN_OR_RETURN(dq, ctx.scratch.get<float>("attn.fdq", rows * qd));
    VILA_ASSIGN_OR_RETURN(dk, ctx.scratch.get<float>("attn.fdk", rows * kvd));
    VILA_ASSIGN_OR_RETURN(dv, ctx.scratch.get<float>("attn.fdv", rows * kvd));
    a.dq_row_stride = qd;
    a.dk_row_stride = a.dv_row_stride = kvd;
  }
  a.out_row_stride = a.dout_row_stride = qd;
  a.q_row_stride = d.qs();
  a.k_row_stride = a.v_row_stride = d.kvs();
  a.n_head = static_cast<int>(d.heads);
  a.n_head_kv = static_cast<int>(d.kv_heads);
  a.head_dim = static_cast<int>(D);
  a.causal = d.causal;
  a.scale = 1.0f / std::sqrt(static_cast<float>(D));
  const bool uniform = is_uniform(spans);
  for (size_t i = 0; i < (uniform ? 1 : spans.size()); ++i) {
    const Span& sp = spans[i];
    a.dq = dq + sp.start * a.dq_row_stride;
    a.dk = dk + sp.start * a.dk_row_stride;
    a.dv = dv + sp.start * a.dv_row_stride;
    a.q = at(sv.q, sp.start, d.qs());
    a.k = at(sv.k, sp.start, d.kvs());
    a.v = at(sv.v, sp.start, d.kvs());
    a.out = at(sv.out, sp.start, qd);
    a.dout = at(da, sp.start, qd);
    a.lse = sv.lse + sp.start * d.heads;
    a.batch = uniform ? static_cast<int>(spans.size()) : 1;
    a.seq = static_cast<int>(sp.len);
    VILA_ASSIGN_OR_RETURN(
        a.workspace,
        ctx.scratch.get_bytes("attn.fws", cuda::attention_backward_workspace_bytes(a)));
    VILA_RETURN_IF_ERROR(cuda::flash_attention_backward(a, ctx.st()));
  }
  if (direct) return cuda::train_f32_to_bf16(dqkv, dq, rows * nqkv, ctx.st());
  const cuda::QkvShape shape{rows, rows, static_cast<int>(d.heads), static_cast<int>(d.kv_heads),
                             static_cast<int>(D)};
  return cuda::train_qkv_grad_merge(dqkv, dq, dk, dv, cos, sin, shape, ctx.st(),
                                    /*kv_summed=*/true);
}

}  // namespace

Status span_attention_backward(TrainContext& ctx, void* dqkv, const void* da, const AttnSaved& sv,
                               const float* cos, const float* sin, const std::vector<Span>& spans,
                               const AttnDims& d) {
  if (use_flash_backward(ctx, d, sv.q, sv.k, sv.v) && sv.lse != nullptr) {
    return flash_backward(ctx, dqkv, da, sv, cos, sin, spans, d);
  }
  const int64_t D = d.head_dim;
  const int64_t qd = d.heads * D;
  const int64_t half = D / 2;
  const int64_t nqkv = (d.heads + 2 * d.kv_heads) * D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int batch = static_cast<int>(d.heads);
  const void* q = sv.q;
  const void* k = sv.k;
  const void* v = sv.v;
  VILA_ASSIGN_OR_RETURN(SpanScratch s, get_scratch(ctx, d, longest(spans), true));
  for (const Span& sp : spans) {
    const int64_t L = sp.len;
    const void* qs = at(q, sp.start, d.qs());
    const void* das = at(da, sp.start, qd);
    VILA_ASSIGN_OR_RETURN(KvOperands kv, kv_operands(ctx, s, k, v, sp, d));
    VILA_RETURN_IF_ERROR(scores_and_softmax(ctx, s, qs, kv, L, d));
    // dV (L, D) per head = Pᵀ dA
    cuda::GemmArgs dv;
    dv.m = L, dv.n = D, dv.k = L;
    dv.a = s.p, dv.lda = L, dv.trans_a = true, dv.stride_a = L * L;
    dv.b = das, dv.ldb = qd, dv.stride_b = D;
    dv.c = s.dv, dv.ldc = qd, dv.stride_c = D;
    dv.batch = batch;
    VILA_RETURN_IF_ERROR(ctx.gemm->gemm(dv, ctx.st()));
    // dP (L, L) = dA vᵀ  (into S), then dS in place of P
    cuda::GemmArgs dp;
    dp.m = L, dp.n = L, dp.k = D;
    dp.a = das, dp.lda = qd, dp.stride_a = D;
    dp.b = kv.v, dp.ldb = kv.ld, dp.trans_b = true, dp.stride_b = D;
    dp.c = s.s, dp.ldc = L, dp.stride_c = L * L;
    dp.batch = batch;
    VILA_RETURN_IF_ERROR(ctx.gemm->gemm(dp, ctx.st()));
    VILA_RETURN_IF_ERROR(cuda::train_softmax_backward(s.p, s.s, d.heads, L, d.causal, ctx.st()));
    // dQ = scale dS k;  dK = scale dSᵀ q
    cuda::GemmArgs dq;
    dq.m = L, dq.n = D, dq.k = L;
    dq.a = s.p, dq.lda = L, dq.stride_a = L * L;
    dq.b = kv.k, dq.ldb = kv.ld, dq.stride_b = D;
    dq.c = s.dq, dq.ldc = qd, dq.stride_c = D;
    dq.alpha = scale;
    dq.batch = batch;
    VILA_RETURN_IF_ERROR(ctx.gemm->gemm(dq, ctx.st()));
    cuda::GemmArgs dk = dq;
    dk.trans_a = true;
    dk.b = qs, dk.ldb = d.qs();
    dk.c = s.dk;
    VILA_RETURN_IF_ERROR(ctx.gemm->gemm(dk, ctx.st()));
    const cuda::QkvShape shape{L, L, static_cast<int>(d.heads), static_cast<int>(d.kv_heads),
                               static_cast<int>(D)};
    VILA_RETURN_IF_ERROR(cuda::train_qkv_grad_merge(
        static_cast<uint16_t*>(dqkv) + sp.start * nqkv, s.dq, s.dk, s.dv,
        cos != nullptr ? cos + sp.start * half : nullptr,
        sin != nullptr ? sin + sp.start * half : nullptr, shape, ctx.st()));
  }
  return ok_status();
}

}  // namespace vila::train
