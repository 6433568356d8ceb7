// CudaLlmTrainer (llm_trainer_cuda.h): parameter layout, forward, backward, AdamW on the GPU.
#include "train/cuda/llm_trainer_cuda.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "backend/cuda/flash_attention.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/train_gemm.h"
#include "backend/cuda/train_ops.h"
#include "backend/cuda/train_optim.h"

namespace vila::train {

namespace {

constexpr int64_t kAlign = 64;  // elements: every parameter group starts 256-byte aligned
constexpr float kInitStd = 0.02f;
constexpr uint64_t kSeedStride = 1000003;

int64_t align_up(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

struct Entry {
  int64_t offset = 0;
  int64_t numel = 0;
  enum Init { kMatrix, kOne, kZero } init = kMatrix;
};

}  // namespace

struct CudaLlmTrainer::Impl {
  LanguageConfig cfg;
  CudaTrainOptions opt;
  cuda::Stream stream;
  std::unique_ptr<cuda::Blas> blas;
  std::unique_ptr<cuda::TrainGemm> gemm;
  std::vector<cuda::DeviceBuffer> owned;

  // Parameters: name -> entry; group offsets per layer.
  std::map<std::string, Entry> entries;
  int64_t n_params = 0, n_decay = 0;
  float *p = nullptr, *g = nullptr, *m = nullptr, *v = nullptr;
  uint16_t* p16 = nullptr;  // bf16 copy
  double* sumsq = nullptr;
  int64_t step_count = 0;
  struct LayerOffsets {
    int64_t ln1, ln2, wqkv, bqkv, wo, wgu, wdown;
  };
  std::vector<LayerOffsets> layer_off;
  int64_t embed_off = 0, norm_off = 0, head_off = 0;

  // Shapes.
  int64_t R = 0, T = 0, C = 0, F = 0, V = 0, H = 0, Hkv = 0, D = 0, qd = 0, kvd = 0, nqkv = 0;

  // Activations saved per layer (one set when recomputing).
  struct Saved {
    float *rstd1, *rstd2, *x2;
    uint16_t *h1, *q, *k, *v, *a, *h2, *gu;
  };
  std::vector<Saved> saved;
  std::vector<float*> xs;  // (L + 1) x (R, C) f32
  float *qkv_f, *dh, *dx, *rstd_f, *logits, *row_loss, *cos_t, *sin_t;
  uint16_t *mbuf, *dgu, *dxb, *da, *dqkv, *xn, *dlogits;
  int32_t *ids, *targets;
  float *s_buf, *dq, *dk_exp, *dv_exp;
  uint16_t *p_buf, *k_exp, *v_exp;
  std::vector<float> host_loss;

  template <typename T>
  StatusOr<T*> alloc(int64_t count) {
    VILA_ASSIGN_OR_RETURN(cuda::DeviceBuffer b,
                          cuda::DeviceBuffer::create(static_cast<size_t>(count) * sizeof(T)));
    T* ptr = b.as<T>();
    owned.push_back(std::move(b));
    return ptr;
  }

  void* st() const { return stream.handle(); }
  const uint16_t* w16(int64_t off) const { return p16 + off; }

  Status build_layout();
  Status alloc_activations();
  Status linear_fwd(void* out, DType out_dtype, const void* in, int64_t w_off, int64_t n, int64_t k,
                    const float* bias, bool accumulate);
  Status linear_bwd(void* dx_out, DType dx_dtype, float beta_dx, const void* dy, const void* x,
                    int64_t w_off, int64_t n, int64_t k);
  Status layer_forward(size_t l, bool recomputing);
  Status layer_backward(size_t l);
  Status attention_backward(const Saved& s);
};

CudaLlmTrainer::CudaLlmTrainer() : impl_(std::make_unique<Impl>()) {}
CudaLlmTrainer::~CudaLlmTrainer() = default;

Status CudaLlmTrainer::Impl::build_layout() {
  const int64_t L = cfg.layers;
  int64_t off = 0;
  auto add = [&](const std::string& name, int64_t numel, Entry::Init init) {
    entries[name] = Entry{off, numel, init};
    off += numel;
  };
  layer_off.resize(static_cast<size_t>(L));
  // Decaying weights first.
  for (int64_t l = 0; l < L; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    LayerOffsets& lo = layer_off[static_cast<size_t>(l)];
    off = align_up(off);
    lo.wqkv = off;
    add(pre + "self_attn.q_proj.weight", qd * C, Entry::kMatrix);
    add(pre + "self_attn.k_proj.weight", kvd * C, Entry::kMatrix);
    add(pre + "self_attn.v_proj.weight", kvd * C, Entry::kMatrix);
    off = align_up(off);
    lo.wo = off;
    add(pre + "self_attn.o_proj.weight", C * qd, Entry::kMatrix);
    off = align_up(off);
    lo.wgu = off;
    add(pre + "mlp.gate_proj.weight", F * C, Entry::kMatrix);
    add(pre + "mlp.up_proj.weight", F * C, Entry::kMatrix);
    off = align_up(off);
    lo.wdown = off;
    add(pre + "mlp.down_proj.weight", C * F, Entry::kMatrix);
  }
  if (!cfg.tie_word_embeddings) {
    off = align_up(off);
    head_off = off;
    add("lm_head.weight", V * C, Entry::kMatrix);
  }
  off = align_up(off);
  n_decay = off;
  embed_off = off;
  add("model.embed_tokens.weight", V * C, Entry::kMatrix);
  if (cfg.tie_word_embeddings) head_off = embed_off;
  off = align_up(off);
  norm_off = off;
  add("model.norm.weight", C, Entry::kOne);
  for (int64_t l = 0; l < L; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    LayerOffsets& lo = layer_off[static_cast<size_t>(l)];
    off = align_up(off);
    lo.ln1 = off;
    add(pre + "input_layernorm.weight", C, Entry::kOne);
    off = align_up(off);
    lo.ln2 = off;
    add(pre + "post_attention_layernorm.weight", C, Entry::kOne);
    off = align_up(off);
    lo.bqkv = cfg.qkv_bias ? off : -1;
    if (cfg.qkv_bias) {
      add(pre + "self_attn.q_proj.bias", qd, Entry::kZero);
      add(pre + "self_attn.k_proj.bias", kvd, Entry::kZero);
      add(pre + "self_attn.v_proj.bias", kvd, Entry::kZero);
    }
  }
  n_params = align_up(off);
  VILA_ASSIGN_OR_RETURN(p, alloc<float>(n_params));
  VILA_ASSIGN_OR_RETURN(g, alloc<float>(n_params));
  VILA_ASSIGN_OR_RETURN(m, alloc<float>(n_params));
  VILA_ASSIGN_OR_RETURN(v, alloc<float>(n_params));
  VILA_ASSIGN_OR_RETURN(p16, alloc<uint16_t>(n_params));
  VILA_ASSIGN_OR_RETURN(sumsq, alloc<double>(1));
  const size_t bytes = static_cast<size_t>(n_params) * sizeof(float);
  VILA_RETURN_IF_ERROR(cuda::memset_device(p, 0, bytes, st()));
  VILA_RETURN_IF_ERROR(cuda::memset_device(g, 0, bytes, st()));
  VILA_RETURN_IF_ERROR(cuda::memset_device(m, 0, bytes, st()));
  VILA_RETURN_IF_ERROR(cuda::memset_device(v, 0, bytes, st()));
  return ok_status();
}

Status CudaLlmTrainer::Impl::alloc_activations() {
  const size_t sets = opt.recompute ? 1 : static_cast<size_t>(cfg.layers);
  saved.resize(sets);
  for (Saved& s : saved) {
    VILA_ASSIGN_OR_RETURN(s.rstd1, alloc<float>(R));
    VILA_ASSIGN_OR_RETURN(s.rstd2, alloc<float>(R));
    VILA_ASSIGN_OR_RETURN(s.x2, alloc<float>(R * C));
    VILA_ASSIGN_OR_RETURN(s.h1, alloc<uint16_t>(R * C));
    VILA_ASSIGN_OR_RETURN(s.q, alloc<uint16_t>(R * qd));
    VILA_ASSIGN_OR_RETURN(s.k, alloc<uint16_t>(R * kvd));
    VILA_ASSIGN_OR_RETURN(s.v, alloc<uint16_t>(R * kvd));
    VILA_ASSIGN_OR_RETURN(s.a, alloc<uint16_t>(R * qd));
    VILA_ASSIGN_OR_RETURN(s.h2, alloc<uint16_t>(R * C));
    VILA_ASSIGN_OR_RETURN(s.gu, alloc<uint16_t>(R * 2 * F));
  }
  xs.resize(static_cast<size_t>(cfg.layers) + 1);
  for (float*& x : xs) {
    VILA_ASSIGN_OR_RETURN(x, alloc<float>(R * C));
  }
  VILA_ASSIGN_OR_RETURN(qkv_f, alloc<float>(R * nqkv));
  VILA_ASSIGN_OR_RETURN(dh, alloc<float>(R * C));
  VILA_ASSIGN_OR_RETURN(dx, alloc<float>(R * C));
  VILA_ASSIGN_OR_RETURN(rstd_f, alloc<float>(R));
  VILA_ASSIGN_OR_RETURN(logits, alloc<float>(R * V));
  VILA_ASSIGN_OR_RETURN(row_loss, alloc<float>(R));
  VILA_ASSIGN_OR_RETURN(mbuf, alloc<uint16_t>(R * F));
  VILA_ASSIGN_OR_RETURN(dgu, alloc<uint16_t>(R * 2 * F));
  VILA_ASSIGN_OR_RETURN(dxb, alloc<uint16_t>(R * C));
  VILA_ASSIGN_OR_RETURN(da, alloc<uint16_t>(R * qd));
  VILA_ASSIGN_OR_RETURN(dqkv, alloc<uint16_t>(R * nqkv));
  VILA_ASSIGN_OR_RETURN(xn, alloc<uint16_t>(R * C));
  VILA_ASSIGN_OR_RETURN(dlogits, alloc<uint16_t>(R * V));
  VILA_ASSIGN_OR_RETURN(ids, alloc<int32_t>(R));
  VILA_ASSIGN_OR_RETURN(targets, alloc<int32_t>(R));
  VILA_ASSIGN_OR_RETURN(s_buf, alloc<float>(H * T * T));
  VILA_ASSIGN_OR_RETURN(p_buf, alloc<uint16_t>(H * T * T));
  VILA_ASSIGN_OR_RETURN(k_exp, alloc<uint16_t>(T * qd));
  VILA_ASSIGN_OR_RETURN(v_exp, alloc<uint16_t>(T * qd));
  VILA_ASSIGN_OR_RETURN(dq, alloc<float>(T * qd));
  VILA_ASSIGN_OR_RETURN(dk_exp, alloc<float>(T * qd));
  VILA_ASSIGN_OR_RETURN(dv_exp, alloc<float>(T * qd));
  // RoPE tables (T, D/2), as train/rope.h computes them (double, rounded once).
  const int64_t half = D / 2;
  std::vector<float> cs(static_cast<size_t>(T * half)), sn(cs.size());
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double inv = std::pow(cfg.rope_theta, -2.0 * static_cast<double>(i) / D);
      const double ang = static_cast<double>(t) * inv;
      cs[static_cast<size_t>(t * half + i)] = static_cast<float>(std::cos(ang));
      sn[static_cast<size_t>(t * half + i)] = static_cast<float>(std::sin(ang));
    }
  }
  VILA_ASSIGN_OR_RETURN(cos_t, alloc<float>(T * half));
  VILA_ASSIGN_OR_RETURN(sin_t, alloc<float>(T * half));
  VILA_RETURN_IF_ERROR(cuda::copy_to_device(cos_t, cs.data(), cs.size() * sizeof(float), st()));
  VILA_RETURN_IF_ERROR(cuda::copy_to_device(sin_t, sn.data(), sn.size() * sizeof(float), st()));
  host_loss.resize(static_cast<size_t>(R));
  return ok_status();
}

StatusOr<std::unique_ptr<CudaLlmTrainer>> CudaLlmTrainer::create(const LanguageConfig& config,
                                                                 const CudaTrainOptions& options,
                                                                 const ParamStore* store,
                                                                 uint64_t seed) {
  if (options.batch <= 0 || options.seq <= 0 || options.seq > config.max_position) {
    return invalid_argument("CudaLlmTrainer: bad batch " + std::to_string(options.batch) +
                            " / seq " + std::to_string(options.seq));
  }
  if (config.heads <= 0 || config.kv_heads <= 0 || config.heads % config.kv_heads != 0 ||
      config.hidden % config.heads != 0) {
    return invalid_argument("CudaLlmTrainer: bad heads " + std::to_string(config.heads) + "/" +
                            std::to_string(config.kv_heads));
  }
  std::unique_ptr<CudaLlmTrainer> tr(new CudaLlmTrainer());
  Impl& im = *tr->impl_;
  im.cfg = config;
  im.opt = options;
  im.T = options.seq;
  im.R = options.batch * options.seq;
  im.C = config.hidden;
  im.F = config.intermediate;
  im.V = config.vocab;
  im.H = config.heads;
  im.Hkv = config.kv_heads;
  im.D = config.head_dim();
  im.qd = im.H * im.D;
  im.kvd = im.Hkv * im.D;
  im.nqkv = im.qd + 2 * im.kvd;
  VILA_ASSIGN_OR_RETURN(im.stream, cuda::Stream::create());
  VILA_ASSIGN_OR_RETURN(im.blas, cuda::Blas::create());
  im.gemm = std::make_unique<cuda::TrainGemm>(*im.blas);
  VILA_RETURN_IF_ERROR(im.build_layout());
  VILA_RETURN_IF_ERROR(im.alloc_activations());
  uint64_t k = 0;
  for (const auto& [name, e] : im.entries) {
    float* dst = im.p + e.offset;
    if (store != nullptr) {
      Param* src = const_cast<ParamStore*>(store)->find(ParamModule::kLlm, name);
      if (src == nullptr || static_cast<int64_t>(src->value.size()) != e.numel) {
        return invalid_argument("CudaLlmTrainer: llm/" + name + " missing or mis-shaped");
      }
      VILA_RETURN_IF_ERROR(
          cuda::copy_to_device(dst, src->value.data(), src->value.size() * sizeof(float), im.st()));
    } else if (e.init == Entry::kMatrix) {
      VILA_RETURN_IF_ERROR(cuda::train_fill_uniform(dst, e.numel, seed * kSeedStride + ++k,
                                                    kInitStd * std::sqrt(3.0f), im.st()));
    } else if (e.init == Entry::kOne) {
      VILA_RETURN_IF_ERROR(cuda::train_fill_constant(dst, e.numel, 1.0f, im.st()));
    }
  }
  VILA_RETURN_IF_ERROR(cuda::train_f32_to_bf16(im.p16, im.p, im.n_params, im.st()));
  VILA_RETURN_IF_ERROR(im.stream.synchronize());
  return tr;
}

// out (R, n) = in (R, k) bf16 · W (n, k)ᵀ [+ bias] [+ out].
Status CudaLlmTrainer::Impl::linear_fwd(void* out, DType out_dtype, const void* in, int64_t w_off,
                                        int64_t n, int64_t k, const float* bias, bool accumulate) {
  cuda::DeviceLinearWeight w;
  w.weight = w16(w_off);
  w.bias = bias;
  w.dtype = DType::kBF16;
  w.out_features = n;
  w.in_features = k;
  cuda::LinearArgs a;
  a.out = out;
  a.out_dtype = out_dtype;
  a.in = in;
  a.rows = R;
  a.accumulate = accumulate;
  return cuda::linear(*blas, a, w, st());
}

// For y (R, n) = x (R, k) · W (n, k)ᵀ with dy (R, n) bf16, x (R, k) bf16:
//   dW (n, k) += dyᵀ x;  dx_out (R, k) = dy · W (+ beta_dx · dx_out)  (skipped when null).
Status CudaLlmTrainer::Impl::linear_bwd(void* dx_out, DType dx_dtype, float beta_dx, const void* dy,
                                        const void* x, int64_t w_off, int64_t n, int64_t k) {
  cuda::GemmArgs dw;
  dw.m = n;
  dw.n = k;
  dw.k = R;
  dw.a = dy;
  dw.lda = n;
  dw.trans_a = true;
  dw.b = x;
  dw.ldb = k;
  dw.c = g + w_off;
  dw.ldc = k;
  dw.beta = 1.0f;
  VILA_RETURN_IF_ERROR(gemm->gemm(dw, st()));
  if (dx_out == nullptr) return ok_status();
  cuda::GemmArgs di;
  di.m = R;
  di.n = k;
  di.k = n;
  di.a = dy;
  di.lda = n;
  di.b = w16(w_off);
  di.ldb = k;
  di.c = dx_out;
  di.ldc = k;
  di.c_dtype = dx_dtype;
  di.beta = beta_dx;
  return gemm->gemm(di, st());
}

Status CudaLlmTrainer::Impl::layer_forward(size_t l, bool recomputing) {
  const LayerOffsets& lo = layer_off[l];
  Saved& s = saved[opt.recompute ? 0 : l];
  const float* x = xs[l];
  const auto eps = static_cast<float>(cfg.rms_eps);
  VILA_RETURN_IF_ERROR(cuda::train_rms_norm_forward(s.h1, s.rstd1, x, p + lo.ln1, R, C, eps, st()));
  // qkv (R, nqkv) f32 = h1 Wqkvᵀ + b; split + RoPE -> q, k, v bf16
  VILA_RETURN_IF_ERROR(linear_fwd(qkv_f, DType::kF32, s.h1, lo.wqkv, nqkv, C,
                                  lo.bqkv >= 0 ? p + lo.bqkv : nullptr, false));
  const cuda::QkvShape qs{R, T, static_cast<int>(H), static_cast<int>(Hkv), static_cast<int>(D)};
  VILA_RETURN_IF_ERROR(cuda::train_qkv_rope_split(s.q, s.k, s.v, qkv_f, cos_t, sin_t, qs, st()));
  // a (R, H·D) bf16 = causal attention
  cuda::DenseAttentionArgs at;
  at.out = s.a;
  at.out_row_stride = qd;
  at.q = s.q;
  at.q_row_stride = qd;
  at.k = s.k;
  at.k_row_stride = kvd;
  at.v = s.v;
  at.v_row_stride = kvd;
  at.batch = static_cast<int>(opt.batch);
  at.seq = static_cast<int>(T);
  at.n_head = static_cast<int>(H);
  at.n_head_kv = static_cast<int>(Hkv);
  at.head_dim = static_cast<int>(D);
  at.causal = true;
  at.scale = 1.0f / std::sqrt(static_cast<float>(D));
  VILA_RETURN_IF_ERROR(cuda::flash_attention_dense(at, st()));
  // x2 = x + a Woᵀ
  const size_t row_bytes = static_cast<size_t>(R * C) * sizeof(float);
  VILA_RETURN_IF_ERROR(cuda::copy_device_to_device(s.x2, x, row_bytes, st()));
  VILA_RETURN_IF_ERROR(linear_fwd(s.x2, DType::kF32, s.a, lo.wo, C, qd, nullptr, true));
  // h2 = rms(x2); gu = h2 Wguᵀ (R, 2F) bf16
  VILA_RETURN_IF_ERROR(
      cuda::train_rms_norm_forward(s.h2, s.rstd2, s.x2, p + lo.ln2, R, C, eps, st()));
  VILA_RETURN_IF_ERROR(linear_fwd(s.gu, DType::kBF16, s.h2, lo.wgu, 2 * F, C, nullptr, false));
  if (recomputing) return ok_status();  // the layer output is already saved
  // x_out = x2 + (silu(g) u) Wdownᵀ
  VILA_RETURN_IF_ERROR(cuda::train_silu_mul(mbuf, s.gu, R, F, st()));
  float* x_out = xs[l + 1];
  VILA_RETURN_IF_ERROR(cuda::copy_device_to_device(x_out, s.x2, row_bytes, st()));
  return linear_fwd(x_out, DType::kF32, mbuf, lo.wdown, C, F, nullptr, true);
}

// da (R, H·D) bf16 -> dq, dk_exp, dv_exp per sequence -> dqkv (R, nqkv) bf16.
Status CudaLlmTrainer::Impl::attention_backward(const Saved& s) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const cuda::QkvShape qs{T, T, static_cast<int>(H), static_cast<int>(Hkv), static_cast<int>(D)};
  const int batch = static_cast<int>(H);
  for (int64_t b = 0; b < opt.batch; ++b) {
    const uint16_t* q = s.q + b * T * qd;
    const uint16_t* dab = da + b * T * qd;
    VILA_RETURN_IF_ERROR(cuda::train_expand_kv(k_exp, s.k + b * T * kvd, qs, st()));
    VILA_RETURN_IF_ERROR(cuda::train_expand_kv(v_exp, s.v + b * T * kvd, qs, st()));
    // S (H, T, T) f32 = scale q kᵀ
    cuda::GemmArgs sa;
    sa.m = T, sa.n = T, sa.k = D;
    sa.a = q, sa.lda = qd, sa.stride_a = D;
    sa.b = k_exp, sa.ldb = qd, sa.trans_b = true, sa.stride_b = D;
    sa.c = s_buf, sa.ldc = T, sa.stride_c = T * T;
    sa.alpha = scale;
    sa.batch = batch;
    VILA_RETURN_IF_ERROR(gemm->gemm(sa, st()));
    VILA_RETURN_IF_ERROR(cuda::train_causal_softmax(p_buf, s_buf, H, T, st()));
    // dV_exp (T, D) per head = Pᵀ dA
    cuda::GemmArgs dv;
    dv.m = T, dv.n = D, dv.k = T;
    dv.a = p_buf, dv.lda = T, dv.trans_a = true, dv.stride_a = T * T;
    dv.b = dab, dv.ldb = qd, dv.stride_b = D;
    dv.c = dv_exp, dv.ldc = qd, dv.stride_c = D;
    dv.batch = batch;
    VILA_RETURN_IF_ERROR(gemm->gemm(dv, st()));
    // dP (T, T) = dA vᵀ  (into S)
    cuda::GemmArgs dp;
    dp.m = T, dp.n = T, dp.k = D;
    dp.a = dab, dp.lda = qd, dp.stride_a = D;
    dp.b = v_exp, dp.ldb = qd, dp.trans_b = true, dp.stride_b = D;
    dp.c = s_buf, dp.ldc = T, dp.stride_c = T * T;
    dp.batch = batch;
    VILA_RETURN_IF_ERROR(gemm->gemm(dp, st()));
    VILA_RETURN_IF_ERROR(cuda::train_causal_softmax_backward(p_buf, s_buf, H, T, st()));
    // dQ = scale dS k;  dK_exp = scale dSᵀ q
    cuda::GemmArgs dqa;
    dqa.m = T, dqa.n = D, dqa.k = T;
    dqa.a = p_buf, dqa.lda = T, dqa.stride_a = T * T;
    dqa.b = k_exp, dqa.ldb = qd, dqa.stride_b = D;
    dqa.c = dq, dqa.ldc = qd, dqa.stride_c = D;
    dqa.alpha = scale;
    dqa.batch = batch;
    VILA_RETURN_IF_ERROR(gemm->gemm(dqa, st()));
    cuda::GemmArgs dka = dqa;
    dka.trans_a = true;
    dka.b = q;
    dka.c = dk_exp;
    VILA_RETURN_IF_ERROR(gemm->gemm(dka, st()));
    VILA_RETURN_IF_ERROR(cuda::train_qkv_grad_merge(dqkv + b * T * nqkv, dq, dk_exp, dv_exp, cos_t,
                                                    sin_t, qs, st()));
  }
  return ok_status();
}

// dx (R, C) f32: d(layer output) on entry, d(layer input) on return.
Status CudaLlmTrainer::Impl::layer_backward(size_t l) {
  const LayerOffsets& lo = layer_off[l];
  if (opt.recompute) VILA_RETURN_IF_ERROR(layer_forward(l, true));
  const Saved& s = saved[opt.recompute ? 0 : l];
  // MLP: dW_down += dxᵀ m; dm = dx W_down (into m's buffer: stream order makes dW read m first)
  VILA_RETURN_IF_ERROR(cuda::train_f32_to_bf16(dxb, dx, R * C, st()));
  VILA_RETURN_IF_ERROR(cuda::train_silu_mul(mbuf, s.gu, R, F, st()));
  VILA_RETURN_IF_ERROR(linear_bwd(mbuf, DType::kBF16, 0.0f, dxb, mbuf, lo.wdown, C, F));
  VILA_RETURN_IF_ERROR(cuda::train_silu_mul_backward(dgu, mbuf, s.gu, R, F, st()));
  // dW_gu += dguᵀ h2; dh2 = dgu W_gu; dx += rms_backward(dh2)
  VILA_RETURN_IF_ERROR(linear_bwd(dh, DType::kF32, 0.0f, dgu, s.h2, lo.wgu, 2 * F, C));
  VILA_RETURN_IF_ERROR(cuda::train_rms_norm_backward(dx, g + lo.ln2, dh, s.x2, p + lo.ln2, s.rstd2,
                                                     R, C, true, st()));
  // Attention: dW_o += dxᵀ a; da = dx W_o
  VILA_RETURN_IF_ERROR(cuda::train_f32_to_bf16(dxb, dx, R * C, st()));
  VILA_RETURN_IF_ERROR(linear_bwd(da, DType::kBF16, 0.0f, dxb, s.a, lo.wo, C, qd));
  VILA_RETURN_IF_ERROR(attention_backward(s));
  // dW_qkv += dqkvᵀ h1; db += Σ dqkv; dh1 = dqkv W_qkv; dx += rms_backward(dh1)
  if (lo.bqkv >= 0) {
    VILA_RETURN_IF_ERROR(cuda::train_column_sum_add(g + lo.bqkv, dqkv, R, nqkv, st()));
  }
  VILA_RETURN_IF_ERROR(linear_bwd(dh, DType::kF32, 0.0f, dqkv, s.h1, lo.wqkv, nqkv, C));
  return cuda::train_rms_norm_backward(dx, g + lo.ln1, dh, xs[l], p + lo.ln1, s.rstd1, R, C, true,
                                       st());
}

StatusOr<double> CudaLlmTrainer::forward_backward(const int32_t* ids, const int32_t* targets) {
  Impl& im = *impl_;
  const int64_t R = im.R, C = im.C, V = im.V;
  int64_t counted = 0;
  for (int64_t i = 0; i < R; ++i) {
    if (ids[i] < 0 || ids[i] >= V) {
      return invalid_argument("CudaLlmTrainer: id " + std::to_string(ids[i]) + " at " +
                              std::to_string(i) + " outside the vocabulary");
    }
    if (targets[i] == cuda::kTrainIgnoreIndex) continue;
    if (targets[i] < 0 || targets[i] >= V) {
      return invalid_argument("CudaLlmTrainer: target " + std::to_string(targets[i]) + " at " +
                              std::to_string(i) + " outside the vocabulary");
    }
    ++counted;
  }
  if (counted == 0) return invalid_argument("CudaLlmTrainer: every target is ignored");
  void* st = im.st();
  VILA_RETURN_IF_ERROR(
      cuda::copy_to_device(im.ids, ids, static_cast<size_t>(R) * sizeof(int32_t), st));
  VILA_RETURN_IF_ERROR(
      cuda::copy_to_device(im.targets, targets, static_cast<size_t>(R) * sizeof(int32_t), st));
  VILA_RETURN_IF_ERROR(
      cuda::memset_device(im.g, 0, static_cast<size_t>(im.n_params) * sizeof(float), st));
  // Forward.
  VILA_RETURN_IF_ERROR(
      cuda::train_embedding_forward(im.xs[0], im.p + im.embed_off, im.ids, R, C, st));
  for (size_t l = 0; l < im.layer_off.size(); ++l) VILA_RETURN_IF_ERROR(im.layer_forward(l, false));
  const float* xf = im.xs.back();
  VILA_RETURN_IF_ERROR(cuda::train_rms_norm_forward(im.xn, im.rstd_f, xf, im.p + im.norm_off, R, C,
                                                    static_cast<float>(im.cfg.rms_eps), st));
  VILA_RETURN_IF_ERROR(
      im.linear_fwd(im.logits, DType::kF32, im.xn, im.head_off, V, C, nullptr, false));
  VILA_RETURN_IF_ERROR(cuda::train_cross_entropy(im.dlogits, im.row_loss, im.logits, im.targets, R,
                                                 V, 1.0f / static_cast<float>(counted), st));
  // Backward: lm_head, final norm, layers, embedding.
  VILA_RETURN_IF_ERROR(
      im.linear_bwd(im.dh, DType::kF32, 0.0f, im.dlogits, im.xn, im.head_off, V, C));
  VILA_RETURN_IF_ERROR(cuda::train_rms_norm_backward(
      im.dx, im.g + im.norm_off, im.dh, xf, im.p + im.norm_off, im.rstd_f, R, C, false, st));
  for (size_t l = im.layer_off.size(); l-- > 0;) VILA_RETURN_IF_ERROR(im.layer_backward(l));
  VILA_RETURN_IF_ERROR(
      cuda::train_embedding_backward(im.g + im.embed_off, im.dx, im.ids, R, C, st));
  VILA_RETURN_IF_ERROR(cuda::copy_to_host(im.host_loss.data(), im.row_loss,
                                          static_cast<size_t>(R) * sizeof(float), st));
  double sum = 0.0;
  for (float x : im.host_loss) sum += x;
  return sum / static_cast<double>(counted);
}

Status CudaLlmTrainer::optimizer_step(double lr) {
  Impl& im = *impl_;
  void* st = im.st();
  if (im.opt.max_grad_norm > 0.0) {
    VILA_RETURN_IF_ERROR(cuda::memset_device(im.sumsq, 0, sizeof(double), st));
    VILA_RETURN_IF_ERROR(cuda::train_grad_sumsq(im.sumsq, im.g, im.n_params, st));
  }
  cuda::AdamWStep s;
  s.lr = lr;
  s.beta1 = im.opt.beta1;
  s.beta2 = im.opt.beta2;
  s.eps = im.opt.eps;
  s.weight_decay = im.opt.weight_decay;
  s.step = ++im.step_count;
  s.max_norm = im.opt.max_grad_norm;
  s.sumsq = im.sumsq;
  return cuda::train_adamw(im.p, im.p16, im.g, im.m, im.v, im.n_params, im.n_decay, s, st);
}

Status CudaLlmTrainer::synchronize() { return impl_->stream.synchronize(); }

namespace {
StatusOr<std::vector<float>> download(CudaLlmTrainer::Impl& im, const std::string& name,
                                      const float* base) {
  auto it = im.entries.find(name);
  if (it == im.entries.end()) {
    return invalid_argument("CudaLlmTrainer: no parameter " + name);
  }
  std::vector<float> out(static_cast<size_t>(it->second.numel));
  VILA_RETURN_IF_ERROR(cuda::copy_to_host(out.data(), base + it->second.offset,
                                          out.size() * sizeof(float), im.st()));
  return out;
}
}  // namespace

StatusOr<std::vector<float>> CudaLlmTrainer::value(const std::string& name) {
  return download(*impl_, name, impl_->p);
}
StatusOr<std::vector<float>> CudaLlmTrainer::grad(const std::string& name) {
  return download(*impl_, name, impl_->g);
}
std::vector<std::string> CudaLlmTrainer::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : impl_->entries) out.push_back(name);
  return out;
}
int64_t CudaLlmTrainer::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, e] : impl_->entries) n += e.numel;
  return n;
}
int64_t CudaLlmTrainer::embedding_parameters() const {
  const int64_t table = impl_->V * impl_->C;
  return impl_->cfg.tie_word_embeddings ? table : 2 * table;
}
void* CudaLlmTrainer::stream() const { return impl_->stream.handle(); }

}  // namespace vila::train
