// The FlashAttention-2 backward (backend/cuda/flash_attention_backward.h) and the forward's
// log-sum-exp output (flash_attention_dense with lse) against the fp32 CPU oracle
// (train/attention.h: attention_forward + attention_backward) fed the same bf16-rounded q, k, v,
// dout: causal and full masks, GQA, odd lengths, batch 1-2, head dims 64 / 72 / 128, fused QKV
// rows and padded output strides (the gaps must stay untouched). Outputs are poisoned with 0xff
// bytes (NaN) first. Argument errors, and a timing printout (*Timing*: Qwen2-1.5B-like causal
// attention at T = 2048, the flash backward vs the materialised cuBLAS path of the CUDA trainer).
// Skips cleanly where there is no CUDA build or no GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "cuda_test_util.h"
#include "train/attention.h"

#ifdef VILA_WITH_CUDA
#include <cuda_runtime.h>

#include "backend/cuda/flash_attention.h"
#include "backend/cuda/flash_attention_backward.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/train_gemm.h"
#include "backend/cuda/train_ops.h"
#endif

namespace vila {
namespace {

#ifdef VILA_WITH_CUDA

// bf16 rounding of P and dS in the MMAs (2^-9 relative each) summed over many keys / queries.
constexpr double kMaxTolerance = 4e-2;   // max |got - ref| / max |ref|
constexpr double kL2Tolerance = 1.5e-2;  // ||got - ref|| / ||ref||
constexpr double kLseTolerance = 1e-3;   // absolute, natural-log units
constexpr float kNormFloor = 1e-3f;      // seq 1 has all-zero dq, dk: errors count absolutely

struct Errors {
  double max_rel = 0;  // max |got - ref| / max(max |ref|, floor), NaN -> inf
  double l2_rel = 0;
};
Errors compare(const std::vector<float>& got, const std::vector<float>& ref) {
  double max_diff = 0, max_ref = kNormFloor, num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - ref[i]);
    if (!(d <= max_diff)) max_diff = std::isnan(d) ? INFINITY : d;
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref[i])));
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  den = std::max(den, static_cast<double>(kNormFloor) * kNormFloor * ref.size());
  return {max_diff / max_ref, std::isnan(num) ? INFINITY : std::sqrt(num / den)};
}

// n random N(0, 1) values rounded to bf16: bits for the GPU, values for the CPU.
struct Rounded {
  std::vector<uint16_t> bits;
  std::vector<float> values;
};
Rounded random_bf16(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Rounded r{std::vector<uint16_t>(static_cast<size_t>(n)),
            std::vector<float>(static_cast<size_t>(n))};
  for (int64_t i = 0; i < n; ++i) {
    r.bits[i] = f32_to_bf16(dist(rng));
    r.values[i] = bf16_to_f32(r.bits[i]);
  }
  return r;
}

using testing::download;
using testing::poisoned;
using testing::upload;

// Rows [r * stride, r * stride + width) of a (rows, stride) f32 buffer, densely; the values in
// the gaps must still be the 0xff poison.
std::vector<float> unpad(const std::vector<float>& padded, int64_t rows, int64_t stride,
                         int64_t width, bool* gaps_poisoned) {
  std::vector<float> dense(static_cast<size_t>(rows * width));
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(padded.begin() + r * stride, width, dense.begin() + r * width);
    for (int64_t c = width; c < stride; ++c) {
      uint32_t bits;
      std::memcpy(&bits, &padded[r * stride + c], 4);
      if (bits != 0xffffffffu) *gaps_poisoned = false;
    }
  }
  return dense;
}

struct BwdCase {
  int batch, seq, h, hkv, d;
  bool causal;
  bool fused;  // q, k, v as one fused (R, (H + 2 Hkv) D) activation, padded output strides
};

// Worst errors over the cases of a test.
struct Worst {
  double max_rel = 0, l2_rel = 0, lse = 0;
};

// Runs the forward (with lse) and the backward of one case on the GPU and the CPU oracle.
void check_case(const BwdCase& cs, std::mt19937& rng, Worst* worst) {
  SCOPED_TRACE(::testing::Message()
               << "batch " << cs.batch << " seq " << cs.seq << " H " << cs.h << "/" << cs.hkv
               << " D " << cs.d << (cs.causal ? " causal" : " full") << (cs.fused ? " fused" : ""));
  const int64_t rows = int64_t{cs.batch} * cs.seq;
  const int64_t qw = int64_t{cs.h} * cs.d, kvw = int64_t{cs.hkv} * cs.d;
  const Rounded q = random_bf16(rng, rows * qw), k = random_bf16(rng, rows * kvw),
                v = random_bf16(rng, rows * kvw), dout = random_bf16(rng, rows * qw);
  // Device inputs: one fused activation or three buffers.
  const int64_t in_stride = cs.fused ? qw + 2 * kvw : 0;
  std::vector<uint16_t> fused(static_cast<size_t>(rows * in_stride));
  for (int64_t r = 0; r < rows && cs.fused; ++r) {
    std::copy_n(q.bits.begin() + r * qw, qw, fused.begin() + r * in_stride);
    std::copy_n(k.bits.begin() + r * kvw, kvw, fused.begin() + r * in_stride + qw);
    std::copy_n(v.bits.begin() + r * kvw, kvw, fused.begin() + r * in_stride + qw + kvw);
  }
  cuda::DeviceBuffer d_fused = upload(fused), d_q = upload(q.bits), d_k = upload(k.bits),
                     d_v = upload(v.bits), d_dout = upload(dout.bits);
  const auto* f16 = d_fused.as<uint16_t>();
  const void* q_ptr = cs.fused ? f16 : d_q.data();
  const void* k_ptr = cs.fused ? f16 + qw : d_k.data();
  const void* v_ptr = cs.fused ? f16 + qw + kvw : d_v.data();
  cuda::DeviceBuffer d_out = poisoned(rows * qw * 2), d_lse = poisoned(rows * cs.h * 4);
  const float scale = 1.0f / std::sqrt(static_cast<float>(cs.d));

  cuda::DenseAttentionArgs fa;
  fa.out = d_out.data();
  fa.out_row_stride = qw;
  fa.q = q_ptr;
  fa.q_row_stride = cs.fused ? in_stride : qw;
  fa.k = k_ptr;
  fa.k_row_stride = cs.fused ? in_stride : kvw;
  fa.v = v_ptr;
  fa.v_row_stride = cs.fused ? in_stride : kvw;
  fa.batch = cs.batch;
  fa.seq = cs.seq;
  fa.n_head = cs.h;
  fa.n_head_kv = cs.hkv;
  fa.head_dim = cs.d;
  fa.causal = cs.causal;
  fa.scale = scale;
  fa.lse = d_lse.as<float>();
  ASSERT_TRUE(cuda::flash_attention_dense(fa, nullptr).ok());

  const int64_t dq_stride = cs.fused ? qw + 6 : qw, dkv_stride = cs.fused ? kvw + 2 : kvw;
  cuda::DeviceBuffer d_dq = poisoned(rows * dq_stride * 4), d_dk = poisoned(rows * dkv_stride * 4),
                     d_dv = poisoned(rows * dkv_stride * 4);
  cuda::AttentionBackwardArgs ba;
  ba.dq = d_dq.as<float>();
  ba.dq_row_stride = dq_stride;
  ba.dk = d_dk.as<float>();
  ba.dk_row_stride = dkv_stride;
  ba.dv = d_dv.as<float>();
  ba.dv_row_stride = dkv_stride;
  ba.q = fa.q;
  ba.q_row_stride = fa.q_row_stride;
  ba.k = fa.k;
  ba.k_row_stride = fa.k_row_stride;
  ba.v = fa.v;
  ba.v_row_stride = fa.v_row_stride;
  ba.out = d_out.data();
  ba.out_row_stride = qw;
  ba.dout = d_dout.data();
  ba.dout_row_stride = qw;
  ba.lse = d_lse.as<float>();
  ba.batch = cs.batch;
  ba.seq = cs.seq;
  ba.n_head = cs.h;
  ba.n_head_kv = cs.hkv;
  ba.head_dim = cs.d;
  ba.causal = cs.causal;
  ba.scale = scale;
  cuda::DeviceBuffer d_ws = poisoned(cuda::attention_backward_workspace_bytes(ba));
  ba.workspace = d_ws.data();
  const Status st = cuda::flash_attention_backward(ba, nullptr);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  bool gaps = true;
  const std::vector<float> dq =
      unpad(download<float>(d_dq, rows * dq_stride), rows, dq_stride, qw, &gaps);
  const std::vector<float> dk =
      unpad(download<float>(d_dk, rows * dkv_stride), rows, dkv_stride, kvw, &gaps);
  const std::vector<float> dv =
      unpad(download<float>(d_dv, rows * dkv_stride), rows, dkv_stride, kvw, &gaps);
  const std::vector<float> lse = download<float>(d_lse, rows * cs.h);
  EXPECT_TRUE(gaps) << "a gap between output rows was written";

  // CPU oracle per sequence.
  std::vector<float> ref_dq(dq.size()), ref_dk(dk.size()), ref_dv(dv.size());
  double lse_err = 0;
  for (int b = 0; b < cs.batch; ++b) {
    const int64_t t = cs.seq, r0 = int64_t{b} * cs.seq;
    auto view = [&](const float* data, int64_t heads) {
      return TensorView{const_cast<float*>(data), DType::kF32, {t, heads, cs.d}};
    };
    const float* qb = q.values.data() + r0 * qw;
    const float* kb = k.values.data() + r0 * kvw;
    const float* vb = v.values.data() + r0 * kvw;
    std::vector<float> out(static_cast<size_t>(t * qw));
    train::AttentionSaved saved;
    ASSERT_TRUE(
        train::attention_forward(
            view(out.data(), cs.h), view(qb, cs.h), view(kb, cs.hkv), view(vb, cs.hkv), nullptr,
            cs.causal ? train::AttentionMask::kCausal : train::AttentionMask::kFull, scale, &saved)
            .ok());
    ASSERT_TRUE(train::attention_backward(view(ref_dq.data() + r0 * qw, cs.h),
                                          view(ref_dk.data() + r0 * kvw, cs.hkv),
                                          view(ref_dv.data() + r0 * kvw, cs.hkv),
                                          view(dout.values.data() + r0 * qw, cs.h), view(qb, cs.h),
                                          view(kb, cs.hkv), view(vb, cs.hkv), saved)
                    .ok());
    // lse in double over the visible keys.
    const int group = cs.h / cs.hkv;
    for (int64_t i = 0; i < t; ++i) {
      for (int hh = 0; hh < cs.h; ++hh) {
        const int64_t end = cs.causal ? i + 1 : t;
        std::vector<double> sc(static_cast<size_t>(end));
        double mx = -INFINITY;
        for (int64_t j = 0; j < end; ++j) {
          double dot = 0;
          for (int dd = 0; dd < cs.d; ++dd) {
            dot += static_cast<double>(qb[i * qw + hh * cs.d + dd]) *
                   kb[j * kvw + (hh / group) * cs.d + dd];
          }
          sc[j] = dot * scale;
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (double x : sc) sum += std::exp(x - mx);
        const double e = std::fabs(lse[(r0 + i) * cs.h + hh] - (mx + std::log(sum)));
        if (!(e <= lse_err)) lse_err = std::isnan(e) ? INFINITY : e;
      }
    }
  }
  const Errors eq = compare(dq, ref_dq), ek = compare(dk, ref_dk), ev = compare(dv, ref_dv);
  std::printf(
      "[flash bwd] B=%d T=%d H=%d/%d D=%d %s%s: dq %.2e/%.2e dk %.2e/%.2e dv %.2e/%.2e "
      "(max/l2) lse %.1e\n",
      cs.batch, cs.seq, cs.h, cs.hkv, cs.d, cs.causal ? "causal" : "full", cs.fused ? " fused" : "",
      eq.max_rel, eq.l2_rel, ek.max_rel, ek.l2_rel, ev.max_rel, ev.l2_rel, lse_err);
  for (const Errors& e : {eq, ek, ev}) {
    EXPECT_LT(e.max_rel, kMaxTolerance);
    EXPECT_LT(e.l2_rel, kL2Tolerance);
    worst->max_rel = std::max(worst->max_rel, e.max_rel);
    worst->l2_rel = std::max(worst->l2_rel, e.l2_rel);
  }
  EXPECT_LT(lse_err, kLseTolerance);
  worst->lse = std::max(worst->lse, lse_err);
}

void print_worst(const Worst& w) {
  std::printf("[flash bwd] worst: max %.2e, l2 %.2e, lse %.1e\n", w.max_rel, w.l2_rel, w.lse);
}

TEST(FlashBackwardCuda, MatchesCpuOracleShort) {
  VILA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(51);
  Worst worst;
  for (const BwdCase& cs :
       {BwdCase{1, 1, 4, 2, 64, true, false}, BwdCase{2, 17, 4, 2, 128, false, true},
        BwdCase{1, 64, 12, 2, 128, true, false}, BwdCase{2, 200, 4, 2, 64, true, true},
        BwdCase{2, 200, 4, 4, 72, false, true}, BwdCase{1, 17, 12, 2, 72, true, false},
        BwdCase{2, 64, 4, 2, 64, false, false}, BwdCase{2, 1, 4, 4, 128, false, false}}) {
    check_case(cs, rng, &worst);
  }
  print_worst(worst);
}

TEST(FlashBackwardCuda, MatchesCpuOracleLong) {
  VILA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(53);
  Worst worst;
  for (const BwdCase& cs :
       {BwdCase{1, 513, 12, 2, 128, true, false}, BwdCase{1, 513, 4, 2, 128, false, false},
        BwdCase{1, 200, 12, 2, 128, false, true}, BwdCase{2, 513, 4, 2, 64, true, true}}) {
    check_case(cs, rng, &worst);
  }
  print_worst(worst);
}

TEST(FlashBackwardCuda, BadArgumentsReturnErrors) {
  VILA_SKIP_WITHOUT_GPU();
  cuda::DeviceBuffer buf = poisoned(1 << 16);
  auto* base = buf.as<uint8_t>();
  cuda::AttentionBackwardArgs a;
  // Inputs, outputs, lse and workspace in separate 16 KiB regions (the values are NaN).
  constexpr int kRegion = 1 << 14;
  a.q = a.k = a.v = a.out = a.dout = base;
  a.dq = a.dk = a.dv = reinterpret_cast<float*>(base + kRegion);
  a.lse = reinterpret_cast<const float*>(base + 2 * kRegion);
  a.workspace = base + 3 * kRegion;
  a.batch = 1;
  a.seq = 8;
  a.n_head = 2;
  a.n_head_kv = 1;
  a.head_dim = 64;
  a.q_row_stride = a.out_row_stride = a.dout_row_stride = a.dq_row_stride = 128;
  a.k_row_stride = a.v_row_stride = a.dk_row_stride = a.dv_row_stride = 64;
  a.scale = 0.125f;
  ASSERT_TRUE(cuda::flash_attention_backward(a, nullptr).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  auto expect_code = [&](cuda::AttentionBackwardArgs bad, StatusCode code) {
    const Status st = cuda::flash_attention_backward(bad, nullptr);
    EXPECT_EQ(st.code(), code) << st.message();
  };
  cuda::AttentionBackwardArgs bad = a;
  bad.head_dim = 96;
  expect_code(bad, StatusCode::kUnimplemented);
  bad = a;
  bad.dtype = DType::kF16;
  expect_code(bad, StatusCode::kUnimplemented);
  bad = a;
  bad.n_head_kv = 3;
  expect_code(bad, StatusCode::kInvalidArgument);
  bad = a;
  bad.lse = nullptr;
  expect_code(bad, StatusCode::kInvalidArgument);
  bad = a;
  bad.workspace = nullptr;
  expect_code(bad, StatusCode::kInvalidArgument);
  bad = a;
  bad.q = base + 8;  // not 16-byte aligned
  expect_code(bad, StatusCode::kInvalidArgument);
  bad = a;
  bad.dq_row_stride = 127;
  expect_code(bad, StatusCode::kInvalidArgument);
  bad = a;
  bad.k_row_stride = 32;  // < Hkv D
  expect_code(bad, StatusCode::kInvalidArgument);
  bad = a;
  bad.scale = 0.0f;
  expect_code(bad, StatusCode::kInvalidArgument);
  bad = a;
  bad.seq = -1;
  expect_code(bad, StatusCode::kInvalidArgument);
  bad = a;
  bad.seq = 0;  // nothing to do
  EXPECT_TRUE(cuda::flash_attention_backward(bad, nullptr).ok());
  EXPECT_EQ(cuda::attention_backward_workspace_bytes(a), size_t{2 * 1 * 2 * 64 * 4});
}

using testing::time_ms;

// Prints only (no speed assertions): Qwen2-1.5B-like causal attention, T = 2048, H 12 / Hkv 2,
// D 128. The flash backward (preprocess + main kernel) vs the materialised backward of
// CudaLlmTrainer::Impl::attention_backward (KV expansion, S = scale q kᵀ, softmax, dV = Pᵀ dA,
// dP = dA vᵀ, softmax backward, dQ, dK: strided-batched cuBLASLt GEMMs over (H, T, T) f32 / bf16
// buffers), without the final qkv gradient merge that both would need. Also the forward with and
// without lse, and the dq of the two backward paths against each other.
TEST(FlashBackwardCuda, Timing) {
  VILA_SKIP_WITHOUT_GPU();
  constexpr int kT = 2048, kH = 12, kHkv = 2, kD = 128;
  constexpr int64_t kQw = int64_t{kH} * kD, kKvw = int64_t{kHkv} * kD;
  std::mt19937 rng(52);
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.ok());
  auto cs = static_cast<cudaStream_t>(stream->handle());
  cuda::DeviceBuffer q = upload(random_bf16(rng, kT * kQw).bits);
  cuda::DeviceBuffer k = upload(random_bf16(rng, kT * kKvw).bits);
  cuda::DeviceBuffer v = upload(random_bf16(rng, kT * kKvw).bits);
  cuda::DeviceBuffer da = upload(random_bf16(rng, kT * kQw).bits);
  cuda::DeviceBuffer out = poisoned(kT * kQw * 2), lse = poisoned(kT * kH * 4);
  const float scale = 1.0f / std::sqrt(static_cast<float>(kD));
  cuda::DenseAttentionArgs fa;
  fa.out = out.data();
  fa.out_row_stride = fa.q_row_stride = kQw;
  fa.q = q.data();
  fa.k = k.data();
  fa.v = v.data();
  fa.k_row_stride = fa.v_row_stride = kKvw;
  fa.batch = 1;
  fa.seq = kT;
  fa.n_head = kH;
  fa.n_head_kv = kHkv;
  fa.head_dim = kD;
  fa.causal = true;
  fa.scale = scale;
  const double fwd_ms = time_ms(cs, 20, [&] { return cuda::flash_attention_dense(fa, cs); });
  fa.lse = lse.as<float>();
  const double fwd_lse_ms = time_ms(cs, 20, [&] { return cuda::flash_attention_dense(fa, cs); });
  const double fwd_flop = 4.0 * kT * kT * kH * kD / 2;  // causal
  std::printf(
      "[flash bwd] forward T=%d H=%d/%d D=%d causal: %.3f ms (%.1f TFLOP/s), with lse "
      "%.3f ms\n",
      kT, kH, kHkv, kD, fwd_ms, fwd_flop / (fwd_ms * 1e9), fwd_lse_ms);

  cuda::DeviceBuffer dq = poisoned(kT * kQw * 4), dk = poisoned(kT * kKvw * 4),
                     dv = poisoned(kT * kKvw * 4);
  cuda::AttentionBackwardArgs ba;
  ba.dq = dq.as<float>();
  ba.dq_row_stride = kQw;
  ba.dk = dk.as<float>();
  ba.dv = dv.as<float>();
  ba.dk_row_stride = ba.dv_row_stride = kKvw;
  ba.q = q.data();
  ba.q_row_stride = kQw;
  ba.k = k.data();
  ba.v = v.data();
  ba.k_row_stride = ba.v_row_stride = kKvw;
  ba.out = out.data();
  ba.out_row_stride = kQw;
  ba.dout = da.data();
  ba.dout_row_stride = kQw;
  ba.lse = lse.as<float>();
  ba.batch = 1;
  ba.seq = kT;
  ba.n_head = kH;
  ba.n_head_kv = kHkv;
  ba.head_dim = kD;
  ba.causal = true;
  ba.scale = scale;
  cuda::DeviceBuffer ws = poisoned(cuda::attention_backward_workspace_bytes(ba));
  ba.workspace = ws.data();
  const double bwd_flop = 2.5 * fwd_flop;
  const double flash_ms = time_ms(cs, 20, [&] { return cuda::flash_attention_backward(ba, cs); });
  std::printf("[flash bwd] flash backward: %.3f ms, %.1f TFLOP/s\n", flash_ms,
              bwd_flop / (flash_ms * 1e9));

  // The materialised path (llm_trainer_cuda.cpp's GEMM sequence for one sequence).
  auto blas = cuda::Blas::create();
  ASSERT_TRUE(blas.ok()) << blas.status().message();
  cuda::TrainGemm gemm(**blas);
  cuda::DeviceBuffer k_exp = poisoned(kT * kQw * 2), v_exp = poisoned(kT * kQw * 2);
  cuda::DeviceBuffer s_buf = poisoned(int64_t{kH} * kT * kT * 4);
  cuda::DeviceBuffer p_buf = poisoned(int64_t{kH} * kT * kT * 2);
  cuda::DeviceBuffer m_dq = poisoned(kT * kQw * 4), dk_exp = poisoned(kT * kQw * 4),
                     dv_exp = poisoned(kT * kQw * 4);
  const cuda::QkvShape qs{kT, kT, kH, kHkv, kD};
  const auto materialised = [&]() -> Status {
    VILA_RETURN_IF_ERROR(cuda::train_expand_kv(k_exp.data(), k.data(), qs, cs));
    VILA_RETURN_IF_ERROR(cuda::train_expand_kv(v_exp.data(), v.data(), qs, cs));
    cuda::GemmArgs sa;
    sa.m = kT, sa.n = kT, sa.k = kD;
    sa.a = q.data(), sa.lda = kQw, sa.stride_a = kD;
    sa.b = k_exp.data(), sa.ldb = kQw, sa.trans_b = true, sa.stride_b = kD;
    sa.c = s_buf.data(), sa.ldc = kT, sa.stride_c = int64_t{kT} * kT;
    sa.alpha = scale;
    sa.batch = kH;
    VILA_RETURN_IF_ERROR(gemm.gemm(sa, cs));
    VILA_RETURN_IF_ERROR(cuda::train_softmax(p_buf.data(), s_buf.as<float>(), kH, kT, true, cs));
    cuda::GemmArgs dva;
    dva.m = kT, dva.n = kD, dva.k = kT;
    dva.a = p_buf.data(), dva.lda = kT, dva.trans_a = true, dva.stride_a = int64_t{kT} * kT;
    dva.b = da.data(), dva.ldb = kQw, dva.stride_b = kD;
    dva.c = dv_exp.data(), dva.ldc = kQw, dva.stride_c = kD;
    dva.batch = kH;
    VILA_RETURN_IF_ERROR(gemm.gemm(dva, cs));
    cuda::GemmArgs dpa;
    dpa.m = kT, dpa.n = kT, dpa.k = kD;
    dpa.a = da.data(), dpa.lda = kQw, dpa.stride_a = kD;
    dpa.b = v_exp.data(), dpa.ldb = kQw, dpa.trans_b = true, dpa.stride_b = kD;
    dpa.c = s_buf.data(), dpa.ldc = kT, dpa.stride_c = int64_t{kT} * kT;
    dpa.batch = kH;
    VILA_RETURN_IF_ERROR(gemm.gemm(dpa, cs));
    VILA_RETURN_IF_ERROR(
        cuda::train_softmax_backward(p_buf.data(), s_buf.as<float>(), kH, kT, true, cs));
    cuda::GemmArgs dqa;
    dqa.m = kT, dqa.n = kD, dqa.k = kT;
    dqa.a = p_buf.data(), dqa.lda = kT, dqa.stride_a = int64_t{kT} * kT;
    dqa.b = k_exp.data(), dqa.ldb = kQw, dqa.stride_b = kD;
    dqa.c = m_dq.data(), dqa.ldc = kQw, dqa.stride_c = kD;
    dqa.alpha = scale;
    dqa.batch = kH;
    VILA_RETURN_IF_ERROR(gemm.gemm(dqa, cs));
    cuda::GemmArgs dka = dqa;
    dka.trans_a = true;
    dka.b = q.data();
    dka.c = dk_exp.data();
    return gemm.gemm(dka, cs);
  };
  const double mat_ms = time_ms(cs, 10, materialised);
  std::printf(
      "[flash bwd] materialised backward: %.3f ms, %.1f TFLOP/s (causal-equivalent); "
      "flash is %.2fx faster\n",
      mat_ms, bwd_flop / (mat_ms * 1e9), mat_ms / flash_ms);
  ASSERT_EQ(cudaStreamSynchronize(cs), cudaSuccess);
  const Errors e = compare(download<float>(dq, kT * kQw), download<float>(m_dq, kT * kQw));
  std::printf("[flash bwd] dq flash vs materialised: max %.2e, l2 %.2e\n", e.max_rel, e.l2_rel);
  EXPECT_LT(e.l2_rel, kL2Tolerance);
}

// Prints only: the SigLIP-448 tower's attention in one NVILA-Lite-2B training step's batch, 10
// tiles of T = 1024 patches, H 16 / Hkv 16, D 72, full (non-causal): forward with lse, backward.
TEST(FlashBackwardCuda, TimingSiglip) {
  VILA_SKIP_WITHOUT_GPU();
  constexpr int kB = 10, kT = 1024, kH = 16, kD = 72;
  constexpr int64_t kW = int64_t{kH} * kD, kRows = int64_t{kB} * kT;
  std::mt19937 rng(53);
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.ok());
  auto cs = static_cast<cudaStream_t>(stream->handle());
  cuda::DeviceBuffer q = upload(random_bf16(rng, kRows * kW).bits);
  cuda::DeviceBuffer k = upload(random_bf16(rng, kRows * kW).bits);
  cuda::DeviceBuffer v = upload(random_bf16(rng, kRows * kW).bits);
  cuda::DeviceBuffer da = upload(random_bf16(rng, kRows * kW).bits);
  cuda::DeviceBuffer out = poisoned(kRows * kW * 2), lse = poisoned(kRows * kH * 4);
  cuda::DenseAttentionArgs fa;
  fa.out = out.data();
  fa.out_row_stride = fa.q_row_stride = fa.k_row_stride = fa.v_row_stride = kW;
  fa.q = q.data();
  fa.k = k.data();
  fa.v = v.data();
  fa.batch = kB;
  fa.seq = kT;
  fa.n_head = fa.n_head_kv = kH;
  fa.head_dim = kD;
  fa.causal = false;
  fa.scale = 1.0f / std::sqrt(static_cast<float>(kD));
  fa.lse = lse.as<float>();
  const double fwd_ms = time_ms(cs, 10, [&] { return cuda::flash_attention_dense(fa, cs); });
  cuda::DeviceBuffer dq = poisoned(kRows * kW * 4), dk = poisoned(kRows * kW * 4),
                     dv = poisoned(kRows * kW * 4);
  cuda::AttentionBackwardArgs ba;
  ba.dq = dq.as<float>();
  ba.dk = dk.as<float>();
  ba.dv = dv.as<float>();
  ba.dq_row_stride = ba.dk_row_stride = ba.dv_row_stride = kW;
  ba.q = q.data();
  ba.k = k.data();
  ba.v = v.data();
  ba.out = out.data();
  ba.dout = da.data();
  ba.q_row_stride = ba.k_row_stride = ba.v_row_stride = ba.out_row_stride = ba.dout_row_stride = kW;
  ba.lse = lse.as<float>();
  ba.batch = kB;
  ba.seq = kT;
  ba.n_head = ba.n_head_kv = kH;
  ba.head_dim = kD;
  ba.causal = false;
  ba.scale = fa.scale;
  cuda::DeviceBuffer ws = poisoned(cuda::attention_backward_workspace_bytes(ba));
  ba.workspace = ws.data();
  const double bwd_ms = time_ms(cs, 10, [&] { return cuda::flash_attention_backward(ba, cs); });
  const double fwd_flop = 4.0 * kB * kT * kT * kH * kD;
  std::printf(
      "[flash bwd] SigLIP B=%d T=%d H=%d D=%d full: forward+lse %.3f ms (%.1f TFLOP/s), "
      "backward %.3f ms (%.1f TFLOP/s)\n",
      kB, kT, kH, kD, fwd_ms, fwd_flop / (fwd_ms * 1e9), bwd_ms, 2.5 * fwd_flop / (bwd_ms * 1e9));
}

#else
TEST(FlashBackwardCuda, SkippedWithoutCuda) { GTEST_SKIP() << "no CUDA build"; }
#endif

}  // namespace
}  // namespace vila
