// Every CUDA op of the decoder against its CPU oracle (ops/cpu), on random inputs of odd shapes,
// outputs poisoned (0xff bytes: NaN) first so that an unwritten element fails. Skips cleanly where
// there is no CUDA build or no GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu/activation.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/embedding.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/rope.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/attention.h"
#include "backend/cuda/ceilings.h"
#include "backend/cuda/device.h"
#include "backend/cuda/elementwise.h"
#include "backend/cuda/embedding.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/rope.h"
#endif

#include "cuda_test_util.h"

namespace vila {
namespace {

[[maybe_unused]] std::vector<float> random_floats(std::mt19937& rng, int64_t n,
                                                  float stddev = 1.0f) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// max |got - ref| / (1 + |ref|), NaN counting as infinite.
[[maybe_unused]] double max_rel_error(const std::vector<float>& got,
                                      const std::vector<float>& ref) {
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = std::fabs(static_cast<double>(got[i]) - ref[i]) / (1.0 + std::fabs(ref[i]));
    if (!(e <= worst)) worst = std::isnan(e) ? INFINITY : e;
  }
  return worst;
}

#ifdef VILA_WITH_CUDA
using testing::download;
using testing::poisoned;
using testing::upload;

// The CPU reference of a 16-bit linear layer: w (n, k) and x (m, k) rounded to dtype (bf16 or
// f16; wb, xb: the GPU's operands), then cpu::linear on those values plus the fp32 bias b (n).
// Both sides multiply the same values exactly in fp32; only the summation order differs.
struct HalfLinearRef {
  std::vector<uint16_t> wb, xb;
  std::vector<float> ref;  // (m, n)
};
void half_linear_ref(const std::vector<float>& x, const std::vector<float>& w,
                     const std::vector<float>& b, int64_t m, int64_t n, int64_t k, DType dtype,
                     HalfLinearRef* out) {
  out->wb.resize(w.size());
  out->xb.resize(x.size());
  ASSERT_TRUE(convert_from_f32(w.data(), dtype, out->wb.data(), n * k).ok());
  ASSERT_TRUE(convert_from_f32(x.data(), dtype, out->xb.data(), m * k).ok());
  std::vector<float> x_rounded(x.size());
  ASSERT_TRUE(convert_to_f32(dtype, out->xb.data(), x_rounded.data(), m * k).ok());
  cpu::LinearWeight lw{{out->wb.data(), dtype, {n, k}},
                       {const_cast<float*>(b.data()), DType::kF32, {n}}};
  out->ref.assign(static_cast<size_t>(m * n), 0.0f);
  ASSERT_TRUE(cpu::linear({out->ref.data(), DType::kF32, {m, n}},
                          {x_rounded.data(), DType::kF32, {m, k}}, lw)
                  .ok());
}
#endif

TEST(CudaOps, LinearF32MatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  auto blas = cuda::Blas::create();
  ASSERT_TRUE(blas.ok()) << blas.status().to_string();
  std::mt19937 rng(11);
  struct Case {
    int64_t m, n, k;
    bool bias;
  };
  for (const Case cs : {Case{1, 1, 1, false},
                        {1, 7, 5, true},
                        {3, 33, 17, true},
                        {17, 896, 64, false},
                        {64, 768, 64, true},
                        {5, 129, 1000, true},
                        {300, 257, 96, true}}) {
    const auto x = random_floats(rng, cs.m * cs.k);
    const auto w = random_floats(rng, cs.n * cs.k, 0.1f);
    const auto b = random_floats(rng, cs.n);
    cpu::LinearWeight lw{{const_cast<float*>(w.data()), DType::kF32, {cs.n, cs.k}}, {}};
    if (cs.bias) lw.bias = {const_cast<float*>(b.data()), DType::kF32, {cs.n}};
    std::vector<float> ref(static_cast<size_t>(cs.m * cs.n));
    ASSERT_TRUE(cpu::linear({ref.data(), DType::kF32, {cs.m, cs.n}},
                            {const_cast<float*>(x.data()), DType::kF32, {cs.m, cs.k}}, lw)
                    .ok());
    cuda::DeviceBuffer dx = upload(x), dw = upload(w), db = upload(b);
    cuda::DeviceBuffer dout = poisoned(ref.size() * 4);
    cuda::DeviceLinearWeight dlw{dw.data(), cs.bias ? db.as<float>() : nullptr, DType::kF32, cs.n,
                                 cs.k};
    const Status s = cuda::linear(**blas, dout.as<float>(), dx.data(), dlw, cs.m, nullptr);
    ASSERT_TRUE(s.ok()) << s.to_string();
    // fp32 accumulation in another order: error ~ sqrt(K) ulps of the terms.
    EXPECT_LE(max_rel_error(download<float>(dout, ref.size()), ref), 1e-5)
        << cs.m << "x" << cs.n << "x" << cs.k;
  }
#endif
}

TEST(CudaOps, LinearBf16MatchesCpuOnBf16Operands) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  auto blas = cuda::Blas::create();
  ASSERT_TRUE(blas.ok()) << blas.status().to_string();
  std::mt19937 rng(12);
  for (const auto& [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 7, 8},
                                {3, 33, 24},
                                {17, 896, 64},
                                {130, 200, 136}}) {
    auto x = random_floats(rng, m * k);
    const auto w = random_floats(rng, n * k, 0.1f);
    const auto b = random_floats(rng, n);
    HalfLinearRef r;
    ASSERT_NO_FATAL_FAILURE(half_linear_ref(x, w, b, m, n, k, DType::kBF16, &r));
    const std::vector<float>& ref = r.ref;
    // The GPU converts the fp32 input itself (f32_to_bf16), as the model does.
    cuda::DeviceBuffer dx = upload(x), dw = upload(r.wb), db = upload(b);
    cuda::DeviceBuffer dxb = poisoned(r.xb.size() * 2);
    ASSERT_TRUE(cuda::f32_to_bf16(dxb.as<uint16_t>(), dx.as<float>(), m * k, nullptr).ok());
    std::vector<uint16_t> xb_got(r.xb.size());
    ASSERT_TRUE(cuda::copy_to_host(xb_got.data(), dxb.data(), r.xb.size() * 2, nullptr).ok());
    EXPECT_EQ(xb_got, r.xb) << "f32_to_bf16 must round as core/dtype.h";
    cuda::DeviceBuffer dout = poisoned(ref.size() * 4);
    cuda::DeviceLinearWeight dlw{dw.data(), db.as<float>(), DType::kBF16, n, k};
    const Status s = cuda::linear(**blas, dout.as<float>(), dxb.data(), dlw, m, nullptr);
    ASSERT_TRUE(s.ok()) << s.to_string();
    EXPECT_LE(max_rel_error(download<float>(dout, ref.size()), ref), 1e-5)
        << m << "x" << n << "x" << k;
  }
#endif
}

// An fp32 bias with a 16-bit output (linear.h: fp32 GEMM into the scratch, then the epilogue
// kernel): the CPU linear on the same 16-bit operands, + gelu_tanh / + the old output in fp32,
// rounded once, must match within one 16-bit rounding step. Odd shapes, a row stride wider than
// N, and a case that takes several scratch chunks (rows * N * 4 > 64 MiB).
TEST(CudaOps, LinearBiasHalfOutputMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  auto blas = cuda::Blas::create();
  ASSERT_TRUE(blas.ok()) << blas.status().to_string();
  std::mt19937 rng(14);
  struct Case {
    int64_t m, n, k, out_pad;  // out row stride n + out_pad
    DType dtype;
    bool gelu, accumulate;
  };
  for (const Case cs : {Case{1, 7, 8, 0, DType::kBF16, false, false},
                        {3, 33, 24, 5, DType::kBF16, true, false},
                        {17, 96, 64, 0, DType::kF16, false, true},
                        {130, 200, 136, 8, DType::kF16, true, false},
                        {61, 1160, 40, 0, DType::kBF16, false, true},
                        {4201, 4099, 16, 3, DType::kBF16, true, false}}) {
    const int64_t m = cs.m, n = cs.n, k = cs.k, stride = cs.n + cs.out_pad;
    auto x = random_floats(rng, m * k);
    const auto w = random_floats(rng, n * k, 0.3f);
    const auto b = random_floats(rng, n);
    const auto old = random_floats(rng, m * stride);  // the output's prior values (accumulate)
    std::vector<uint16_t> oldb(old.size());
    ASSERT_TRUE(convert_from_f32(old.data(), cs.dtype, oldb.data(), m * stride).ok());
    std::vector<float> old_rounded(old.size());
    ASSERT_TRUE(convert_to_f32(cs.dtype, oldb.data(), old_rounded.data(), m * stride).ok());
    HalfLinearRef hr;
    ASSERT_NO_FATAL_FAILURE(half_linear_ref(x, w, b, m, n, k, cs.dtype, &hr));
    std::vector<float>& ref = hr.ref;  // (m, n) fp32
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t c = 0; c < n; ++c) {
        float& v = ref[r * n + c];
        if (cs.accumulate) v += old_rounded[r * stride + c];
        if (cs.gelu) {
          const double t = std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v));
          v = static_cast<float>(0.5 * v * (1.0 + t));
        }
      }
    }
    cuda::DeviceBuffer dx = upload(hr.xb), dw = upload(hr.wb), db = upload(b);
    cuda::DeviceBuffer dout = cs.accumulate ? upload(oldb) : poisoned(oldb.size() * 2);
    cuda::DeviceLinearWeight dlw{dw.data(), db.as<float>(), cs.dtype, n, k};
    cuda::LinearArgs args;
    args.out = dout.data();
    args.out_dtype = cs.dtype;
    args.out_row_stride = stride;
    args.in = dx.data();
    args.rows = m;
    args.accumulate = cs.accumulate;
    args.gelu_tanh = cs.gelu;
    const Status s = cuda::linear(**blas, args, dlw, nullptr);
    ASSERT_TRUE(s.ok()) << s.to_string();
    std::vector<uint16_t> got16(oldb.size());
    ASSERT_TRUE(cuda::copy_to_host(got16.data(), dout.data(), got16.size() * 2, nullptr).ok());
    std::vector<float> got_all(got16.size()), got(ref.size());
    ASSERT_TRUE(convert_to_f32(cs.dtype, got16.data(), got_all.data(), m * stride).ok());
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t c = 0; c < n; ++c) got[r * n + c] = got_all[r * stride + c];
    }
    // One rounding of the output (2^-8 bf16, 2^-11 f16 relative) plus fp32 summation order.
    const double tol = cs.dtype == DType::kBF16 ? 8e-3 : 1.2e-3;
    EXPECT_LE(max_rel_error(got, ref), tol)
        << m << "x" << n << "x" << k << " " << dtype_name(cs.dtype) << " gelu " << cs.gelu
        << " accumulate " << cs.accumulate;
    if (cs.out_pad > 0 && !cs.accumulate) {  // the gap between rows is not written
      EXPECT_EQ(got16[n], 0xffff) << m << "x" << n;
    }
  }
  EXPECT_GT((*blas)->scratch_bytes(), 0u);
#endif
}

// A bias of the weight dtype (DeviceLinearWeight::bias16) goes into cuBLASLt's own epilogue, and
// gelu_aux also writes the pre-activation: against the CPU linear on the same bf16 operands and
// the bf16-rounded bias, within one bf16 rounding. With Blas::autotune on (the training setting),
// so the timed choice among cuBLASLt's candidates is exercised too; no scratch is used.
TEST(CudaOps, LinearBias16AndGeluAuxMatchCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  auto blas = cuda::Blas::create();
  ASSERT_TRUE(blas.ok()) << blas.status().to_string();
  (*blas)->set_autotune(true);
  std::mt19937 rng(15);
  for (const auto& [m, n, k, gelu] : {std::tuple<int64_t, int64_t, int64_t, bool>{5, 16, 24, true},
                                      {130, 200, 136, false},
                                      {1031, 4304, 64, true},
                                      {2048, 2048, 1032, true}}) {  // large enough to be tuned
    const auto x = random_floats(rng, m * k);
    const auto w = random_floats(rng, n * k, 0.3f);
    const auto b = random_floats(rng, n);
    // The reference adds the bias as rounded to bf16 (the bias16 the GEMM takes).
    std::vector<uint16_t> bb(b.size());
    ASSERT_TRUE(convert_from_f32(b.data(), DType::kBF16, bb.data(), n).ok());
    std::vector<float> b_rounded(b.size());
    ASSERT_TRUE(convert_to_f32(DType::kBF16, bb.data(), b_rounded.data(), n).ok());
    HalfLinearRef r;
    ASSERT_NO_FATAL_FAILURE(half_linear_ref(x, w, b_rounded, m, n, k, DType::kBF16, &r));
    const std::vector<float>& pre = r.ref;
    std::vector<float> post(pre.size());
    for (size_t i = 0; i < pre.size(); ++i) {
      const double v = pre[i];
      post[i] =
          gelu ? static_cast<float>(
                     0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))))
               : pre[i];
    }
    cuda::DeviceBuffer dx = upload(r.xb), dw = upload(r.wb), db = upload(b), db16 = upload(bb);
    cuda::DeviceBuffer dout = poisoned(pre.size() * 2), daux = poisoned(pre.size() * 2);
    cuda::DeviceLinearWeight dlw{dw.data(), db.as<float>(), DType::kBF16, n, k, db16.data()};
    cuda::LinearArgs args;
    args.out = dout.data();
    args.out_dtype = DType::kBF16;
    args.in = dx.data();
    args.rows = m;
    args.gelu_tanh = gelu;
    args.gelu_aux = gelu ? daux.data() : nullptr;
    const Status s = cuda::linear(**blas, args, dlw, nullptr);
    ASSERT_TRUE(s.ok()) << s.to_string();
    const auto to_f32 = [&](const cuda::DeviceBuffer& buf) {
      std::vector<uint16_t> h(pre.size());
      EXPECT_TRUE(cuda::copy_to_host(h.data(), buf.data(), h.size() * 2, nullptr).ok());
      std::vector<float> f(h.size());
      EXPECT_TRUE(convert_to_f32(DType::kBF16, h.data(), f.data(), m * n).ok());
      return f;
    };
    EXPECT_LE(max_rel_error(to_f32(dout), post), 8e-3) << m << "x" << n << "x" << k;
    if (gelu) {
      EXPECT_LE(max_rel_error(to_f32(daux), pre), 8e-3) << m << "x" << n << "x" << k;
    }
  }
  EXPECT_EQ((*blas)->scratch_bytes(), 0u);
  {  // residual: fp32 out = x Wᵀ + b + res, res left as it was
    constexpr int64_t m = 37, n = 72, k = 40;
    const auto x = random_floats(rng, m * k);
    const auto w = random_floats(rng, n * k, 0.3f);
    const auto b = random_floats(rng, n);
    const auto res = random_floats(rng, m * n);
    HalfLinearRef r;
    ASSERT_NO_FATAL_FAILURE(half_linear_ref(x, w, b, m, n, k, DType::kBF16, &r));
    std::vector<float>& ref = r.ref;
    for (size_t i = 0; i < ref.size(); ++i) ref[i] += res[i];
    cuda::DeviceBuffer dx = upload(r.xb), dw = upload(r.wb), db = upload(b), dres = upload(res);
    cuda::DeviceBuffer dout = poisoned(ref.size() * 4);
    cuda::DeviceLinearWeight dlw{dw.data(), db.as<float>(), DType::kBF16, n, k};
    cuda::LinearArgs args;
    args.out = dout.data();
    args.in = dx.data();
    args.rows = m;
    args.residual = dres.data();
    const Status s = cuda::linear(**blas, args, dlw, nullptr);
    ASSERT_TRUE(s.ok()) << s.to_string();
    EXPECT_LE(max_rel_error(download<float>(dout, ref.size()), ref), 1e-5);
    EXPECT_EQ(download<float>(dres, res.size()), res);
    args.accumulate = true;  // both: refused
    EXPECT_FALSE(cuda::linear(**blas, args, dlw, nullptr).ok());
    args.accumulate = false;  // the output as its own residual: refused (that is accumulate)
    args.residual = args.out;
    EXPECT_FALSE(cuda::linear(**blas, args, dlw, nullptr).ok());
  }
  // gelu_aux without gelu_tanh, or with N not a multiple of 8: refused.
  cuda::DeviceBuffer any = poisoned(64 * 64 * 2);
  cuda::DeviceLinearWeight dlw{any.data(), nullptr, DType::kBF16, 12, 8};
  cuda::LinearArgs bad;
  bad.out = any.data();
  bad.out_dtype = DType::kBF16;
  bad.in = any.data();
  bad.rows = 4;
  bad.gelu_aux = any.data();
  EXPECT_FALSE(cuda::linear(**blas, bad, dlw, nullptr).ok());
  bad.gelu_tanh = true;  // N = 12
  EXPECT_FALSE(cuda::linear(**blas, bad, dlw, nullptr).ok());
#endif
}

// Timing only (no assertion on time): SigLIP-so400m's qkv and fc1 GEMMs over 17 tiles with a
// 16-bit output: no bias, the bf16 bias in cuBLASLt's epilogue (bias16: what the tower runs), and
// the fp32 bias through the 16-bit-output scratch path.
TEST(CudaOps, LinearBiasHalfOutputTiming) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  auto blas = cuda::Blas::create();
  auto timer = cuda::EventTimer::create();
  ASSERT_TRUE(blas.ok() && timer.ok());
  constexpr int64_t kRows = 17 * 1024, kHidden = 1152, kMlp = 4304, kRuns = 10;
  enum class Bias { kNone, kBf16, kF32 };
  struct Shape {
    const char* name;
    int64_t n;
    Bias bias;
    bool gelu;
  };
  const Shape shapes[] = {{"qkv no bias", 3 * kHidden, Bias::kNone, false},
                          {"qkv + bf16 bias epilogue", 3 * kHidden, Bias::kBf16, false},
                          {"qkv + fp32 bias (scratch)", 3 * kHidden, Bias::kF32, false},
                          {"fc1 gelu no bias", kMlp, Bias::kNone, true},
                          {"fc1 gelu + bf16 bias epilogue", kMlp, Bias::kBf16, true},
                          {"fc1 gelu + fp32 bias (scratch)", kMlp, Bias::kF32, true}};
  for (const Shape& sh : shapes) {
    auto in = cuda::DeviceBuffer::create(kRows * kHidden * 2);
    auto w = cuda::DeviceBuffer::create(sh.n * kHidden * 2);
    auto out = cuda::DeviceBuffer::create(kRows * sh.n * 2);
    auto bias = cuda::DeviceBuffer::create(sh.n * 4);
    ASSERT_TRUE(in.ok() && w.ok() && out.ok() && bias.ok());
    ASSERT_TRUE(
        cuda::fill_uniform(in->data(), DType::kBF16, kRows * kHidden, -1, 1, 1, nullptr).ok());
    ASSERT_TRUE(
        cuda::fill_uniform(w->data(), DType::kBF16, sh.n * kHidden, -0.03f, 0.03f, 2, nullptr)
            .ok());
    ASSERT_TRUE(cuda::memset_device(bias->data(), 0, sh.n * 4, nullptr).ok());
    cuda::DeviceLinearWeight lw{w->data(), nullptr, DType::kBF16, sh.n, kHidden};
    if (sh.bias != Bias::kNone) lw.bias = bias->as<float>();
    if (sh.bias == Bias::kBf16) lw.bias16 = bias->data();  // zeros read as bf16 too
    cuda::LinearArgs a;
    a.out = out->data();
    a.out_dtype = DType::kBF16;
    a.in = in->data();
    a.rows = kRows;
    a.gelu_tanh = sh.gelu;
    ASSERT_TRUE(cuda::linear(**blas, a, lw, nullptr).ok());  // warm-up: plan + scratch
    ASSERT_TRUE(timer->start(nullptr).ok());
    for (int r = 0; r < kRuns; ++r) ASSERT_TRUE(cuda::linear(**blas, a, lw, nullptr).ok());
    auto ms = timer->stop_ms(nullptr);
    ASSERT_TRUE(ms.ok());
    std::printf("[linear bias16] %-32s %7.3f ms\n", sh.name, *ms / kRuns);
  }
#endif
}

TEST(CudaOps, EmbeddingMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(13);
  const int64_t vocab = 37, cols = 131;
  const auto table = random_floats(rng, vocab * cols);
  const std::vector<int32_t> ids = {0, 36, 5, 5, 17, 1, 30};
  const auto n = static_cast<int64_t>(ids.size());
  std::vector<float> ref(static_cast<size_t>(n * cols));
  ASSERT_TRUE(cpu::embedding({ref.data(), DType::kF32, {n, cols}},
                             {const_cast<float*>(table.data()), DType::kF32, {vocab, cols}},
                             ids.data(), n)
                  .ok());
  cuda::DeviceBuffer dt = upload(table), di = upload(ids), dout = poisoned(ref.size() * 4);
  ASSERT_TRUE(cuda::embedding_f32(dout.as<float>(), dt.as<float>(), di.as<int32_t>(), n, vocab,
                                  cols, nullptr)
                  .ok());
  EXPECT_EQ(download<float>(dout, ref.size()), ref);
#endif
}

TEST(CudaOps, RopeMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(14);
  struct Case {
    int64_t t, n_head, d, p0;
    double theta;
  };
  for (const Case cs : {Case{1, 1, 2, 0, 10000.0},
                        {5, 3, 16, 7, 10000.0},
                        {9, 4, 64, 1000, 1e6},
                        {33, 2, 128, 4093, 500000.0},
                        {2, 7, 80, 123457, 1e6}}) {
    const int64_t half = cs.d / 2;
    std::vector<int64_t> pos(static_cast<size_t>(cs.t));
    for (int64_t i = 0; i < cs.t; ++i) pos[static_cast<size_t>(i)] = cs.p0 + i;
    std::vector<float> cos_ref(static_cast<size_t>(cs.t * half)), sin_ref(cos_ref.size());
    ASSERT_TRUE(cpu::rope_cos_sin({cos_ref.data(), DType::kF32, {cs.t, half}},
                                  {sin_ref.data(), DType::kF32, {cs.t, half}}, pos.data(), cs.theta)
                    .ok());
    const std::vector<float> inv = cuda::rope_inv_freq(half, cs.theta);
    cuda::DeviceBuffer dinv = upload(inv);
    cuda::DeviceBuffer dcos = poisoned(cos_ref.size() * 4), dsin = poisoned(cos_ref.size() * 4);
    ASSERT_TRUE(cuda::rope_cos_sin_f32(dcos.as<float>(), dsin.as<float>(), dinv.as<float>(), cs.p0,
                                       cs.t, half, nullptr)
                    .ok());
    const auto cos_got = download<float>(dcos, cos_ref.size());
    const auto sin_got = download<float>(dsin, sin_ref.size());
    // Same fp32 angle; cos/sin in double on both sides: at most an ulp apart.
    EXPECT_LE(max_rel_error(cos_got, cos_ref), 1e-7) << cs.t << "x" << cs.d << "@" << cs.p0;
    EXPECT_LE(max_rel_error(sin_got, sin_ref), 1e-7) << cs.t << "x" << cs.d << "@" << cs.p0;

    auto x = random_floats(rng, cs.t * cs.n_head * cs.d);
    cuda::DeviceBuffer dx = upload(x);
    ASSERT_TRUE(cpu::rope_apply({x.data(), DType::kF32, {cs.t, cs.n_head, cs.d}},
                                {cos_ref.data(), DType::kF32, {cs.t, half}},
                                {sin_ref.data(), DType::kF32, {cs.t, half}})
                    .ok());
    // Apply with the CPU's tables, so that only rope_apply is compared here.
    cuda::DeviceBuffer ccos = upload(cos_ref), csin = upload(sin_ref);
    ASSERT_TRUE(cuda::rope_apply_f32(dx.as<float>(), ccos.as<float>(), csin.as<float>(), cs.t,
                                     cs.n_head, cs.d, nullptr)
                    .ok());
    EXPECT_LE(max_rel_error(download<float>(dx, x.size()), x), 1e-6) << cs.t << "x" << cs.d;
  }
#endif
}

TEST(CudaOps, SiluMulAndAddMatchCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(15);
  for (const int64_t n : {1, 3, 4, 7, 64, 1001, 4096, 70001}) {
    for (const int64_t offset : {0, 1}) {  // offset 1: misaligned, takes the scalar path
      const auto g = random_floats(rng, n + offset, 3.0f);
      const auto u = random_floats(rng, n + offset);
      std::vector<float> ref(static_cast<size_t>(n));
      ASSERT_TRUE(cpu::silu_mul({ref.data(), DType::kF32, {n}},
                                {const_cast<float*>(g.data()) + offset, DType::kF32, {n}},
                                {const_cast<float*>(u.data()) + offset, DType::kF32, {n}})
                      .ok());
      cuda::DeviceBuffer dg = upload(g), du = upload(u), dout = poisoned((n + offset) * 4);
      ASSERT_TRUE(cuda::silu_mul_f32(dout.as<float>() + offset, dg.as<float>() + offset,
                                     du.as<float>() + offset, n, nullptr)
                      .ok());
      EXPECT_LE(max_rel_error(download<float>(dout, ref.size(), offset), ref), 1e-6) << n;

      std::vector<float> sum(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) sum[i] = g[i + offset] + u[i + offset];
      ASSERT_TRUE(
          cuda::add_inplace_f32(dg.as<float>() + offset, du.as<float>() + offset, n, nullptr).ok());
      EXPECT_EQ(download<float>(dg, sum.size(), offset), sum) << n;  // one rounding: exact
    }
  }
#endif
}

TEST(CudaOps, AttentionMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(16);
  struct Case {
    int64_t t, h, hkv, d, p0, s;
  };
  // Prefill from empty, prefill after a prefix, decode (T = 1) at long and short lengths, GQA
  // groups 1..7, head dims 2..256 (odd multiples of 2 included).
  for (const Case cs : {Case{1, 1, 1, 2, 0, 1},
                        {7, 4, 2, 16, 0, 9},
                        {5, 4, 1, 16, 11, 20},
                        {1, 14, 2, 64, 300, 301},
                        {1, 28, 4, 128, 1000, 1024},
                        {33, 7, 7, 80, 3, 40},
                        {17, 6, 3, 256, 40, 64},
                        {3, 2, 2, 34, 0, 3}}) {
    const auto q = random_floats(rng, cs.t * cs.h * cs.d);
    const auto k = random_floats(rng, cs.s * cs.hkv * cs.d);
    const auto v = random_floats(rng, cs.s * cs.hkv * cs.d);
    const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(cs.d)));
    std::vector<float> ref(q.size());
    ASSERT_TRUE(cpu::attention_causal(
                    {ref.data(), DType::kF32, {cs.t, cs.h, cs.d}},
                    {const_cast<float*>(q.data()), DType::kF32, {cs.t, cs.h, cs.d}},
                    {const_cast<float*>(k.data()), DType::kF32, {cs.s, cs.hkv, cs.d}},
                    {const_cast<float*>(v.data()), DType::kF32, {cs.s, cs.hkv, cs.d}}, cs.p0, scale)
                    .ok());
    cuda::DeviceBuffer dq = upload(q), dk = upload(k), dv = upload(v);
    cuda::DeviceBuffer dout = poisoned(q.size() * 4);
    const Status st =
        cuda::attention_causal_f32(dout.as<float>(), dq.as<float>(), dk.as<float>(), dv.as<float>(),
                                   cs.p0, cs.t, cs.h, cs.hkv, cs.d, cs.s, scale, nullptr);
    ASSERT_TRUE(st.ok()) << st.to_string();
    EXPECT_LE(max_rel_error(download<float>(dout, ref.size()), ref), 2e-6)
        << "T " << cs.t << " H " << cs.h << " Hkv " << cs.hkv << " D " << cs.d << " p0 " << cs.p0;
  }
  // Positions past the cache are refused.
  EXPECT_EQ(cuda::attention_causal_f32(nullptr, nullptr, nullptr, nullptr, 5, 4, 2, 1, 16, 8, 0.25f,
                                       nullptr)
                .code(),
            StatusCode::kOutOfRange);
#endif
}

}  // namespace
}  // namespace vila
