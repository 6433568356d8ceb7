// The CUDA training path (issue 5) against the CPU oracles: the general training GEMM on every
// transpose / batch combination, then one whole Qwen2 step of CudaLlmTrainer (loss and every
// gradient) against the CPU LlmModel + cross entropy on a tiny odd-shaped model, with and without
// activation recomputation, and 3 AdamW steps (clipping, weight decay) against train/optimizer.h.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cuda_test_util.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/linear.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/train_gemm.h"
#include "backend/cuda/train_ops.h"
#include "train/cross_entropy.h"
#include "train/cuda/llm_trainer_cuda.h"
#include "train/model/vlm_config.h"
#include "train/model/vlm_llm.h"
#include "train/optimizer.h"
#include "train/params.h"
#endif

namespace vila {
namespace {

#ifdef VILA_WITH_CUDA

uint16_t to_bf16(float x) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float from_bf16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// C_b (M, N) = alpha op(A_b) op(B_b) + beta C_b on the host in double, from bf16-rounded inputs.
TEST(TrainCudaTest, GemmMatchesHostForEveryTranspose) {
  VILA_SKIP_WITHOUT_GPU();
  auto blas = cuda::Blas::create();
  ASSERT_TRUE(blas.ok()) << blas.status().message();
  cuda::TrainGemm tg(**blas);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t M = 37, N = 21, K = 19;
  const int batch = 3;
  for (int mode = 0; mode < 8; ++mode) {
    const bool ta = mode & 1, tb = mode & 2, f32 = mode & 4;
    const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
    const int64_t a_rows = ta ? K : M, b_rows = tb ? N : K;
    const int64_t sa = a_rows * lda, sb = b_rows * ldb, sc = M * ldc;
    std::vector<uint16_t> a(static_cast<size_t>(sa * batch)), b(static_cast<size_t>(sb * batch));
    for (auto& x : a) x = to_bf16(nd(rng));
    for (auto& x : b) x = to_bf16(nd(rng));
    std::vector<float> c0(static_cast<size_t>(sc * batch));
    for (auto& x : c0) x = from_bf16(to_bf16(nd(rng)));
    const float alpha = 0.75f, beta = 0.5f;
    auto da = cuda::DeviceBuffer::create(a.size() * 2);
    ASSERT_TRUE(da.ok());
    auto db = cuda::DeviceBuffer::create(b.size() * 2);
    ASSERT_TRUE(db.ok());
    auto dc = cuda::DeviceBuffer::create(c0.size() * 4);
    ASSERT_TRUE(dc.ok());
    ASSERT_TRUE(cuda::copy_to_device(da->data(), a.data(), a.size() * 2, nullptr).ok());
    ASSERT_TRUE(cuda::copy_to_device(db->data(), b.data(), b.size() * 2, nullptr).ok());
    if (f32) {
      ASSERT_TRUE(cuda::copy_to_device(dc->data(), c0.data(), c0.size() * 4, nullptr).ok());
    } else {
      std::vector<uint16_t> c16(c0.size());
      for (size_t i = 0; i < c0.size(); ++i) c16[i] = to_bf16(c0[i]);
      ASSERT_TRUE(cuda::copy_to_device(dc->data(), c16.data(), c16.size() * 2, nullptr).ok());
    }
    cuda::GemmArgs g;
    g.m = M, g.n = N, g.k = K;
    g.a = da->data(), g.lda = lda, g.trans_a = ta, g.stride_a = sa;
    g.b = db->data(), g.ldb = ldb, g.trans_b = tb, g.stride_b = sb;
    g.c = dc->data(), g.ldc = ldc, g.stride_c = sc;
    g.c_dtype = f32 ? DType::kF32 : DType::kBF16;
    g.alpha = alpha, g.beta = beta, g.batch = batch;
    ASSERT_TRUE(tg.gemm(g, nullptr).ok());
    std::vector<float> got(c0.size());
    if (f32) {
      ASSERT_TRUE(cuda::copy_to_host(got.data(), dc->data(), got.size() * 4, nullptr).ok());
    } else {
      std::vector<uint16_t> c16(c0.size());
      ASSERT_TRUE(cuda::copy_to_host(c16.data(), dc->data(), c16.size() * 2, nullptr).ok());
      for (size_t i = 0; i < c16.size(); ++i) got[i] = from_bf16(c16[i]);
    }
    double worst = 0.0;
    for (int bi = 0; bi < batch; ++bi) {
      for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
          double s = 0.0;
          for (int64_t k = 0; k < K; ++k) {
            const float av = from_bf16(a[bi * sa + (ta ? k * lda + i : i * lda + k)]);
            const float bv = from_bf16(b[bi * sb + (tb ? j * ldb + k : k * ldb + j)]);
            s += static_cast<double>(av) * bv;
          }
          const double want = alpha * s + beta * c0[bi * sc + i * ldc + j];
          worst =
              std::max(worst, std::abs(want - got[bi * sc + i * ldc + j]) / (1.0 + std::abs(want)));
        }
      }
    }
    EXPECT_LT(worst, f32 ? 1e-4 : 1e-2) << "mode " << mode;
  }
}

struct TinyLlm {
  train::VlmConfig vlm;
  train::ParamStore store;
  train::LlmModel llm;
};

// head_dim hidden / 4: 16 takes the materialised attention backward, 64 the flash one.
train::LanguageConfig tiny_config(int64_t hidden) {
  train::LanguageConfig c;
  c.hidden = hidden;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;  // GQA 2
  c.intermediate = 96;
  c.vocab = 101;
  c.max_position = 256;
  c.rope_theta = 10000.0;
  return c;
}

Status make_tiny(TinyLlm& t, int64_t hidden = 64) {
  VILA_ASSIGN_OR_RETURN(t.vlm, train::vlm_preset("tiny"));
  t.vlm.llm = tiny_config(hidden);
  VILA_RETURN_IF_ERROR(train::register_params(t.vlm, t.store));
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const train::Param* cp : t.store.all()) {
    auto* p = const_cast<train::Param*>(cp);
    if (p->module != train::ParamModule::kLlm) continue;
    for (float& x : p->value) {
      x = p->role == train::ParamRole::kNorm ? 1.0f + 0.1f * nd(rng) : 0.08f * nd(rng);
    }
  }
  return t.llm.bind(t.vlm.llm, t.store);
}

// CPU loss and gradients of the LLM alone (batch rows as separate segments).
StatusOr<double> cpu_step(TinyLlm& t, const std::vector<int32_t>& ids,
                          const std::vector<int32_t>& targets, int64_t batch, int64_t seq) {
  t.store.zero_grads();
  std::vector<int32_t> seg(ids.size());
  for (size_t i = 0; i < seg.size(); ++i) seg[i] = static_cast<int32_t>(i / seq);
  const int64_t R = batch * seq, V = t.vlm.llm.vocab;
  train::LinearPrecision prec;
  VILA_RETURN_IF_ERROR(t.llm.forward(ids.data(), seg.data(), R, nullptr, nullptr, 0, prec));
  std::vector<float>& logits = t.llm.logits();
  std::vector<float> dlogits(logits.size());
  VILA_ASSIGN_OR_RETURN(auto ce,
                        train::cross_entropy(f32_view(dlogits.data(), {R, V}),
                                             f32_view(logits.data(), {R, V}), targets.data()));
  VILA_RETURN_IF_ERROR(t.llm.backward(dlogits.data(), nullptr, prec));
  return ce.loss;
}

void make_batch(int64_t R, int64_t V, std::vector<int32_t>& ids, std::vector<int32_t>& targets) {
  std::mt19937 rng(5);
  ids.resize(static_cast<size_t>(R));
  targets.resize(static_cast<size_t>(R));
  for (int64_t i = 0; i < R; ++i) {
    ids[i] = static_cast<int32_t>(rng() % V);
    targets[i] = i % 7 == 3 ? train::kIgnoreIndex : static_cast<int32_t>(rng() % V);
  }
}

void check_step(bool recompute, int64_t hidden = 64) {
  TinyLlm t;
  ASSERT_TRUE(make_tiny(t, hidden).ok());
  const int64_t batch = 2, seq = 40;
  std::vector<int32_t> ids, targets;
  make_batch(batch * seq, t.vlm.llm.vocab, ids, targets);
  auto cpu_loss = cpu_step(t, ids, targets, batch, seq);
  ASSERT_TRUE(cpu_loss.ok()) << cpu_loss.status().message();
  train::CudaTrainOptions opt;
  opt.batch = batch;
  opt.seq = seq;
  opt.recompute = recompute;
  auto tr = train::CudaLlmTrainer::create(t.vlm.llm, opt, &t.store);
  ASSERT_TRUE(tr.ok()) << tr.status().message();
  auto loss = (*tr)->forward_backward(ids.data(), targets.data());
  ASSERT_TRUE(loss.ok()) << loss.status().message();
  EXPECT_NEAR(*loss, *cpu_loss, 1e-2 * *cpu_loss);
  double worst = 0.0;
  for (const std::string& name : (*tr)->names()) {
    auto g = (*tr)->grad(name);
    ASSERT_TRUE(g.ok());
    const train::Param* p = t.store.find(train::ParamModule::kLlm, name);
    ASSERT_NE(p, nullptr) << name;
    const double e = rel_err(*g, p->grad);
    worst = std::max(worst, e);
    EXPECT_LT(e, 3e-2) << name;
  }
  std::printf("[ train ] hidden %d recompute %d: loss gpu %.6f cpu %.6f, worst grad rel err %.3g\n",
              static_cast<int>(hidden), recompute ? 1 : 0, *loss, *cpu_loss, worst);
}

TEST(TrainCudaTest, LlmStepMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
  check_step(false);
}

TEST(TrainCudaTest, LlmStepWithRecomputeMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
  check_step(true);
}

TEST(TrainCudaTest, LlmStepWithFlashBackwardMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
  check_step(false, 256);  // head_dim 64
}

TEST(TrainCudaTest, ThreeAdamWStepsMatchCpu) {
  VILA_SKIP_WITHOUT_GPU();
  TinyLlm t;
  ASSERT_TRUE(make_tiny(t).ok());
  const int64_t batch = 1, seq = 33;
  std::vector<int32_t> ids, targets;
  make_batch(batch * seq, t.vlm.llm.vocab, ids, targets);
  train::CudaTrainOptions opt;
  opt.batch = batch;
  opt.seq = seq;
  opt.weight_decay = 0.1;
  opt.max_grad_norm = 0.5;
  auto tr = train::CudaLlmTrainer::create(t.vlm.llm, opt, &t.store);
  ASSERT_TRUE(tr.ok()) << tr.status().message();
  train::AdamWConfig ac;
  ac.weight_decay = 0.1;
  auto adam = train::AdamW::create(ac);
  ASSERT_TRUE(adam.ok());
  const double lr = 1e-2;
  for (int step = 0; step < 3; ++step) {
    auto cpu_loss = cpu_step(t, ids, targets, batch, seq);
    ASSERT_TRUE(cpu_loss.ok());
    ASSERT_TRUE(train::clip_grad_norm(t.store, opt.max_grad_norm).ok());
    ASSERT_TRUE(adam->step(t.store, lr).ok());
    auto loss = (*tr)->forward_backward(ids.data(), targets.data());
    ASSERT_TRUE(loss.ok());
    ASSERT_TRUE((*tr)->optimizer_step(lr).ok());
    std::printf("[ train ] step %d: loss gpu %.6f cpu %.6f\n", step, *loss, *cpu_loss);
    EXPECT_NEAR(*loss, *cpu_loss, 1e-2 * *cpu_loss) << "step " << step;
  }
  auto w = (*tr)->value("model.layers.1.mlp.down_proj.weight");
  ASSERT_TRUE(w.ok());
  const train::Param* p =
      t.store.find(train::ParamModule::kLlm, "model.layers.1.mlp.down_proj.weight");
  EXPECT_LT(rel_err(*w, p->value), 2e-2);
}

#else

TEST(TrainCudaTest, SkippedWithoutCuda) { GTEST_SKIP() << "no CUDA build"; }

#endif

}  // namespace
}  // namespace vila
