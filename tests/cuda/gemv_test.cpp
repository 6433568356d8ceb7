// The fused decode GEMV (gemv.h) against the CPU oracle: cpu::linear on x̂ as the prefill ops
// form it, with the plain and the programmatic dependent launch (PDL); its
// prologues bit-identical to rms_norm_to / silu_mul_to; argument checks; a chain of dependent
// GEMVs under PDL equal bit for bit to the same chain launched plainly (a read before the wait
// would show). GemvTiming prints GB/s on the Qwen2-7B shapes per variant and the time of a
// 28-layer chain of the four layer GEMVs in a CUDA graph with and without PDL. Outputs are
// poisoned (0xff bytes) first. Skips cleanly without CUDA or GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu/matmul.h"

#ifdef VILA_WITH_CUDA
#include <cuda_runtime.h>

#include "backend/cuda/device.h"
#include "backend/cuda/elementwise.h"
#include "backend/cuda/gemv.h"
#include "backend/cuda/graph.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/rms_norm.h"
#endif

#include "cuda_test_util.h"
#include "decode_test_util.h"

namespace vila {
namespace {
using namespace decode_test;

#ifdef VILA_WITH_CUDA

// ---- shapes and inputs ----

struct GemvCase {
  int m;
  int64_t n, k;
  cuda::GemvPrologue prologue;
  cuda::GemvEpilogue epilogue;
  bool half_out;  // kStore into the compute dtype (else fp32)
  bool bias;
  DType dt;
};

const char* prologue_name(cuda::GemvPrologue p) {
  return p == cuda::GemvPrologue::kNone      ? "none"
         : p == cuda::GemvPrologue::kRmsNorm ? "rms"
                                             : "silu";
}

// The input rows of a case on the device (x at x_stride) and x̂ (m, k) as the prefill op forms it
// (rms_norm_to / silu_mul_to on the GPU, or the rounded x itself for kNone).
struct GemvInput {
  cuda::DeviceBuffer x, norm_weight;
  int64_t x_stride = 0;
  std::vector<float> xhat;
};

GemvInput make_gemv_input(std::mt19937& rng, int m, int64_t k, cuda::GemvPrologue prologue,
                          DType dt) {
  GemvInput in;
  const bool silu = prologue == cuda::GemvPrologue::kSiluGate;
  const int64_t width = silu ? 2 * k : k;
  in.x_stride = width + 8;  // padding columns hold NaN: a read past the row would show
  const auto compact = random_floats(rng, static_cast<size_t>(m * width), silu ? 2.0f : 1.0f);
  std::vector<float> strided(static_cast<size_t>(m * in.x_stride), NAN);
  for (int r = 0; r < m; ++r) {
    std::copy_n(compact.begin() + r * width, width, strided.begin() + r * in.x_stride);
  }
  if (prologue == cuda::GemvPrologue::kRmsNorm) {
    auto w = random_floats(rng, static_cast<size_t>(k), 0.3f);
    for (float& v : w) v += 1.0f;
    in.x = upload(strided);
    in.norm_weight = upload(w);
    cuda::DeviceBuffer dc = upload(compact), dw = upload(w), dh = poisoned(m * k * 2);
    EXPECT_TRUE(
        cuda::rms_norm_to(dh.data(), dt, dc.as<float>(), dw.as<float>(), m, k, 1e-6f, nullptr)
            .ok());
    in.xhat = from_half(download<uint16_t>(dh, static_cast<size_t>(m * k)), dt);
  } else {
    in.x = upload(to_half(strided, dt));
    const auto compact_h = to_half(compact, dt);
    if (silu) {
      cuda::DeviceBuffer dc = upload(compact_h), dh = poisoned(m * k * 2);
      EXPECT_TRUE(cuda::silu_mul_to(dh.data(), dc.data(), m, k, dt, nullptr).ok());
      in.xhat = from_half(download<uint16_t>(dh, static_cast<size_t>(m * k)), dt);
    } else {
      in.xhat = from_half(compact_h, dt);
    }
  }
  return in;
}

cuda::GemvArgs gemv_args(const GemvInput& in, const GemvCase& cs) {
  cuda::GemvArgs a;
  a.x = in.x.data();
  a.x_row_stride = in.x_stride;
  a.norm_weight = in.norm_weight.empty() ? nullptr : in.norm_weight.as<float>();
  a.eps = 1e-6f;
  a.rows = cs.m;
  a.n = cs.n;
  a.k = cs.k;
  a.dtype = cs.dt;
  a.prologue = cs.prologue;
  a.epilogue = cs.epilogue;
  a.out_dtype = cs.half_out ? cs.dt : DType::kF32;
  return a;
}

// The launch options every shape is checked with.
struct Variant {
  const char* name;
  bool pdl;
};
constexpr Variant kVariants[] = {{"plain", false}, {"pdl", true}};

#endif  // VILA_WITH_CUDA

TEST(CudaGemv, MatchesCpuLinear) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  using P = cuda::GemvPrologue;
  using E = cuda::GemvEpilogue;
  const DType b = DType::kBF16, h = DType::kF16;
  std::mt19937 rng(23);
  double worst = 0.0;
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.ok());
  for (const GemvCase& cs : std::vector<GemvCase>{
           {1, 1, 8, P::kNone, E::kStore, false, false, b},
           {3, 7, 72, P::kRmsNorm, E::kStore, true, true, b},
           {8, 4609, 3592, P::kSiluGate, E::kAddTo, false, true, b},
           {5, 4609, 3592, P::kRmsNorm, E::kAddTo, false, false, h},
           {8, 300, 72, P::kNone, E::kStore, false, true, h},
           {2, 7, 3592, P::kSiluGate, E::kStore, true, false, h},
           {7, 1, 72, P::kSiluGate, E::kAddTo, false, true, b},
           {4, 1000, 8, P::kRmsNorm, E::kStore, false, false, h},
           {6, 2050, 2056, P::kNone, E::kAddTo, false, true, b},
           {1, 4609, 3592, P::kRmsNorm, E::kAddTo, false, true, b},
           {1, 33, 2056, P::kSiluGate, E::kStore, false, false, b},
           {3, 17000, 72, P::kRmsNorm, E::kStore, false, true, b},   // large N, many rows
           {8, 16900, 264, P::kSiluGate, E::kStore, true, true, h},  // large N, many rows
           {8, 17, 4104, P::kNone, E::kStore, true, false, b},
           {1, 16390, 136, P::kRmsNorm, E::kStore, true, true, h},  // large N, few rows
           {8, 70, 9000, P::kSiluGate, E::kAddTo, false, true, b},  // long K, many rows
           {2, 33, 8200, P::kRmsNorm, E::kStore, false, false, h},  // long K, few rows
           {3, 40, 8192, P::kNone, E::kAddTo, false, true, h},
       }) {
    SCOPED_TRACE(::testing::Message()
                 << dtype_tag(cs.dt) << " M " << cs.m << " N " << cs.n << " K " << cs.k << " "
                 << prologue_name(cs.prologue) << (cs.epilogue == E::kAddTo ? " add" : " store")
                 << (cs.half_out ? " half" : " f32") << (cs.bias ? " bias" : ""));
    const GemvInput in = make_gemv_input(rng, cs.m, cs.k, cs.prologue, cs.dt);
    const auto w = from_half(
        to_half(random_floats(rng, static_cast<size_t>(cs.n * cs.k), 0.1f), cs.dt), cs.dt);
    const auto w_h = to_half(w, cs.dt);
    const auto bias = random_floats(rng, static_cast<size_t>(cs.n));
    cpu::LinearWeight lw{{const_cast<uint16_t*>(w_h.data()), cs.dt, {cs.n, cs.k}}, {}};
    if (cs.bias) lw.bias = {const_cast<float*>(bias.data()), DType::kF32, {cs.n}};
    std::vector<float> ref(static_cast<size_t>(cs.m * cs.n));
    ASSERT_TRUE(cpu::linear({ref.data(), DType::kF32, {cs.m, cs.n}},
                            {const_cast<float*>(in.xhat.data()), DType::kF32, {cs.m, cs.k}}, lw)
                    .ok());

    // Output rows at a stride wider than N; the padding must survive.
    const int64_t out_stride = cs.n + 3;
    const size_t out_elems = static_cast<size_t>(cs.m * out_stride);
    const size_t elem = cs.half_out ? 2 : 4;
    std::vector<float> out0;
    cuda::DeviceBuffer dout;
    if (cs.epilogue == E::kAddTo) {
      out0 = random_floats(rng, out_elems);
      dout = upload(out0);
    } else {
      dout = poisoned(out_elems * elem);
    }
    cuda::DeviceBuffer dw = upload(w_h), db = upload(bias);
    for (const Variant& v : kVariants) {
      SCOPED_TRACE(v.name);
      if (cs.epilogue == E::kAddTo) {
        ASSERT_TRUE(cuda::copy_to_device(dout.data(), out0.data(), out_elems * 4, nullptr).ok());
      } else {
        ASSERT_TRUE(cuda::memset_device(dout.data(), kPoison, out_elems * elem, nullptr).ok());
      }
      cuda::GemvArgs a = gemv_args(in, cs);
      a.out = dout.data();
      a.out_row_stride = out_stride;
      a.weight = dw.data();
      a.bias = cs.bias ? db.as<float>() : nullptr;
      a.programmatic_launch = v.pdl;
      const Status s = cuda::gemv(a, stream->handle());
      ASSERT_TRUE(s.ok()) << s.to_string();
      ASSERT_TRUE(stream->synchronize().ok());
      std::vector<float> got(out_elems);
      if (cs.half_out) {
        got = from_half(download<uint16_t>(dout, out_elems), cs.dt);
      } else {
        got = download<float>(dout, out_elems);
      }
      // Tolerance: fp32 accumulation in another order, relative to Σ|x̂ w| (+ |bias|), plus one
      // rounding of the output when it is 16-bit.
      const double out_ulp = cs.half_out ? (cs.dt == DType::kBF16 ? 1.0 / 256 : 1.0 / 2048) : 0.0;
      for (int m = 0; m < cs.m; ++m) {
        for (int64_t n = 0; n < cs.n; ++n) {
          double abs_sum = cs.bias ? std::fabs(bias[static_cast<size_t>(n)]) : 0.0;
          for (int64_t k = 0; k < cs.k; ++k) {
            abs_sum += std::fabs(static_cast<double>(in.xhat[static_cast<size_t>(m * cs.k + k)]) *
                                 w[static_cast<size_t>(n * cs.k + k)]);
          }
          double want = ref[static_cast<size_t>(m * cs.n + n)];
          const size_t at = static_cast<size_t>(m * out_stride + n);
          if (cs.epilogue == E::kAddTo) want += out0[at];
          const double err = std::fabs(got[at] - want);
          const double tol = 2e-5 * abs_sum + out_ulp * std::fabs(want) + 1e-6;
          worst = std::max(worst, (err - out_ulp * std::fabs(want)) / (abs_sum + 1e-6));
          ASSERT_LE(err, tol) << "at m " << m << " n " << n << ": got " << got[at] << ", want "
                              << want;
        }
        for (int64_t n = cs.n; n < out_stride; ++n) {  // padding untouched
          const size_t at = static_cast<size_t>(m * out_stride + n);
          if (cs.epilogue == E::kAddTo) {
            ASSERT_EQ(got[at], out0[at]);
          } else {
            ASSERT_TRUE(std::isnan(got[at]));
          }
        }
      }
    }
  }
  std::printf("gemv: worst |error| / sum|x w| = %.3g\n", worst);
#endif
}

// W[n][n % K] = 1, else 0: y[m][n] = x̂[m][n % K] exactly (one nonzero product per output), so
// the GEMV's x̂ can be compared bit for bit with the prefill op's.

TEST(CudaGemv, PrologueEqualsPrefillOps) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  using P = cuda::GemvPrologue;
  std::mt19937 rng(24);
  struct Case {
    int m;
    int64_t n, k;
    P prologue;
    DType dt;
  };
  for (const Case& cs : {Case{8, 3592, 3592, P::kRmsNorm, DType::kBF16},
                         {3, 72, 72, P::kSiluGate, DType::kF16},
                         {5, 2056, 2056, P::kSiluGate, DType::kBF16},
                         {1, 8, 8, P::kRmsNorm, DType::kF16},
                         {8, 4104, 4104, P::kSiluGate, DType::kBF16},
                         {7, 17000, 264, P::kSiluGate, DType::kBF16},  // large N
                         {8, 17000, 3592, P::kRmsNorm, DType::kF16},
                         {6, 8200, 8200, P::kSiluGate, DType::kBF16},  // long K
                         {2, 8200, 8200, P::kRmsNorm, DType::kF16},
                         {1, 17000, 1000, P::kRmsNorm, DType::kBF16}}) {
    SCOPED_TRACE(::testing::Message() << dtype_tag(cs.dt) << " M " << cs.m << " N " << cs.n << " K "
                                      << cs.k << " " << prologue_name(cs.prologue));
    const GemvInput in = make_gemv_input(rng, cs.m, cs.k, cs.prologue, cs.dt);
    std::vector<uint16_t> w(static_cast<size_t>(cs.n * cs.k), 0);
    const uint16_t one = round_half(1.0f, cs.dt);
    for (int64_t n = 0; n < cs.n; ++n) w[static_cast<size_t>(n * cs.k + n % cs.k)] = one;
    cuda::DeviceBuffer dw = upload(w), dout = poisoned(static_cast<size_t>(cs.m * cs.n) * 4);
    GemvCase gc{cs.m, cs.n, cs.k, cs.prologue, cuda::GemvEpilogue::kStore, false, false, cs.dt};
    {
      cuda::GemvArgs a = gemv_args(in, gc);
      a.out = dout.data();
      a.out_row_stride = cs.n;
      a.weight = dw.data();
      ASSERT_TRUE(cuda::gemv(a, nullptr).ok());
      const auto got = download<float>(dout, static_cast<size_t>(cs.m * cs.n));
      for (int m = 0; m < cs.m; ++m) {
        for (int64_t n = 0; n < cs.n; ++n) {
          const float want = in.xhat[static_cast<size_t>(m * cs.k + n % cs.k)];
          ASSERT_EQ(got[static_cast<size_t>(m * cs.n + n)], want) << "m " << m << " n " << n;
        }
      }
    }
  }
#endif
}

TEST(CudaGemv, RejectsBadArguments) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  cuda::DeviceBuffer buf = poisoned(1 << 16);
  cuda::GemvArgs a;
  a.out = buf.data();
  a.weight = buf.data();
  a.x = buf.data();
  a.rows = 1;
  a.n = 4;
  a.k = 16;
  a.x_row_stride = 16;
  a.out_row_stride = 4;
  ASSERT_TRUE(cuda::gemv(a, nullptr).ok());
  auto expect = [&](cuda::GemvArgs bad, StatusCode code, const char* what) {
    EXPECT_EQ(cuda::gemv(bad, nullptr).code(), code) << what;
  };
  cuda::GemvArgs bad = a;
  bad.rows = cuda::kGemvMaxRows + 1;
  expect(bad, StatusCode::kInvalidArgument, "rows > 8");
  bad = a;
  bad.k = 12;
  expect(bad, StatusCode::kInvalidArgument, "K % 8");
  bad = a;
  bad.dtype = DType::kF32;
  expect(bad, StatusCode::kUnimplemented, "f32 compute");
  bad = a;
  bad.epilogue = cuda::GemvEpilogue::kAddTo;
  bad.out_dtype = DType::kBF16;
  expect(bad, StatusCode::kInvalidArgument, "kAddTo into bf16");
  bad = a;
  bad.prologue = cuda::GemvPrologue::kRmsNorm;
  expect(bad, StatusCode::kInvalidArgument, "kRmsNorm without norm_weight");
  bad = a;
  bad.rows = 2;
  bad.x_row_stride = 20;  // 40 bytes: rows not 16-byte aligned
  expect(bad, StatusCode::kInvalidArgument, "misaligned x rows");
  bad = a;
  bad.x = static_cast<const char*>(buf.data()) + 2;
  expect(bad, StatusCode::kInvalidArgument, "misaligned x");
#endif
}
#ifdef VILA_WITH_CUDA

// ---- dependent chains under programmatic dependent launch ----

// One decoder-layer-shaped chain of GEMVs on M rows, repeated `layers` times over the same
// buffers, each GEMV reading what the previous one wrote (as in the engine's decode step):
//   h (M, Nq) dtype = rms_norm(x) · Wqᵀ;  x += h[:, :C] · Woᵀ;  gu (M, 2F) dtype = rms_norm(x) ·
//   Wguᵀ; x += silu(gu) · Wdᵀ.
struct Chain {
  int64_t c = 0, nq = 0, f = 0;
  int m = 0;
  float* x = nullptr;                                                      // (M, C) fp32
  void* h = nullptr;                                                       // (M, Nq) dtype
  void* gu = nullptr;                                                      // (M, 2F) dtype
  const float* norm = nullptr;                                             // (C) fp32
  const void *wq = nullptr, *wo = nullptr, *wgu = nullptr, *wd = nullptr;  // (N, K) dtype
};

Status run_chain(const Chain& b, int layers, DType dt, bool pdl, void* stream) {
  cuda::GemvArgs base;
  base.rows = b.m;
  base.dtype = dt;
  base.eps = 1e-6f;
  base.programmatic_launch = pdl;
  for (int l = 0; l < layers; ++l) {
    cuda::GemvArgs q = base;
    q.prologue = cuda::GemvPrologue::kRmsNorm;
    q.x = b.x;
    q.x_row_stride = b.c;
    q.norm_weight = b.norm;
    q.weight = b.wq;
    q.n = b.nq;
    q.k = b.c;
    q.out = b.h;
    q.out_row_stride = b.nq;
    q.out_dtype = dt;
    VILA_RETURN_IF_ERROR(cuda::gemv(q, stream));
    cuda::GemvArgs o = base;
    o.x = b.h;
    o.x_row_stride = b.nq;
    o.weight = b.wo;
    o.n = b.c;
    o.k = b.c;
    o.out = b.x;
    o.out_row_stride = b.c;
    o.epilogue = cuda::GemvEpilogue::kAddTo;
    VILA_RETURN_IF_ERROR(cuda::gemv(o, stream));
    cuda::GemvArgs gu = q;
    gu.weight = b.wgu;
    gu.n = 2 * b.f;
    gu.out = b.gu;
    gu.out_row_stride = 2 * b.f;
    VILA_RETURN_IF_ERROR(cuda::gemv(gu, stream));
    cuda::GemvArgs d = base;
    d.prologue = cuda::GemvPrologue::kSiluGate;
    d.x = b.gu;
    d.x_row_stride = 2 * b.f;
    d.weight = b.wd;
    d.n = b.c;
    d.k = b.f;
    d.out = b.x;
    d.out_row_stride = b.c;
    d.epilogue = cuda::GemvEpilogue::kAddTo;
    VILA_RETURN_IF_ERROR(cuda::gemv(d, stream));
  }
  return ok_status();
}

#endif  // VILA_WITH_CUDA

// PDL changes when a GEMV starts, never what it reads: the chain launched with PDL (directly and
// captured in a graph) equals the plainly launched chain bit for bit.
TEST(CudaGemv, ProgrammaticLaunchChainEqualsPlain) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(31);
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.ok());
  for (const int m : {1, 4}) {
    for (const DType dt : {DType::kBF16, DType::kF16}) {
      SCOPED_TRACE(::testing::Message() << dtype_tag(dt) << " M " << m);
      Chain b;
      b.m = m;
      b.c = 1032;
      b.nq = 1544;
      b.f = 2056;
      const auto x0 = random_floats(rng, static_cast<size_t>(m * b.c));
      auto norm = random_floats(rng, static_cast<size_t>(b.c), 0.1f);
      for (float& v : norm) v += 1.0f;
      auto weight = [&](int64_t n, int64_t k) {
        return upload(to_half(
            random_floats(rng, static_cast<size_t>(n * k), 1.0f / std::sqrt(static_cast<float>(k))),
            dt));
      };
      cuda::DeviceBuffer dnorm = upload(norm), wq = weight(b.nq, b.c), wo = weight(b.c, b.c),
                         wgu = weight(2 * b.f, b.c), wd = weight(b.c, b.f), dx = upload(x0),
                         dh = poisoned(static_cast<size_t>(m * b.nq) * 2),
                         dgu = poisoned(static_cast<size_t>(m * 2 * b.f) * 2);
      b.norm = dnorm.as<float>();
      b.wq = wq.data();
      b.wo = wo.data();
      b.wgu = wgu.data();
      b.wd = wd.data();
      b.x = dx.as<float>();
      b.h = dh.data();
      b.gu = dgu.data();
      constexpr int kLayers = 6;
      {
        auto run = [&](bool pdl, bool graph) {
          EXPECT_TRUE(cuda::copy_to_device(b.x, x0.data(), x0.size() * 4, stream->handle()).ok());
          if (graph) {
            EXPECT_TRUE(cuda::Graph::begin_capture(stream->handle()).ok());
            const Status s = run_chain(b, kLayers, dt, pdl, stream->handle());
            EXPECT_TRUE(s.ok()) << s.to_string();
            auto g = cuda::Graph::end_capture(stream->handle());
            EXPECT_TRUE(g.ok());
            if (g.ok()) {
              EXPECT_TRUE(g->launch(stream->handle()).ok());
            }
          } else {
            const Status s = run_chain(b, kLayers, dt, pdl, stream->handle());
            EXPECT_TRUE(s.ok()) << s.to_string();
          }
          EXPECT_TRUE(stream->synchronize().ok());
          return download<float>(dx, x0.size());
        };
        const std::vector<float> want = run(false, false);
        for (const float v : want) ASSERT_TRUE(std::isfinite(v));
        for (int rep = 0; rep < 3; ++rep) {
          const std::vector<float> direct = run(true, false), graph = run(true, true);
          for (size_t i = 0; i < want.size(); ++i) {
            ASSERT_EQ(direct[i], want[i]) << "direct PDL, element " << i;
            ASSERT_EQ(graph[i], want[i]) << "graph PDL, element " << i;
          }
        }
      }
    }
  }
#endif
}

// ---- timing (prints only) ----

TEST(CudaGemv, GemvTiming) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  // Peak: a 1 GiB device-to-device copy (read + write bytes).
  const size_t copy_bytes = size_t{1} << 30;
  cuda::DeviceBuffer src = poisoned(copy_bytes), dst = poisoned(copy_bytes);
  const double copy_ms = time_ms(5, [&](int) {
    cudaMemcpyAsync(dst.data(), src.data(), copy_bytes, cudaMemcpyDeviceToDevice, nullptr);
  });
  const double peak = 2.0 * copy_bytes / (copy_ms * 1e-3) / 1e9;
  std::printf("device copy 1 GiB: %.3f ms, %.0f GB/s (read + write)\n", copy_ms, peak);

  // Weights rotate through a pool larger than the L2 so that every call streams from DRAM.
  const size_t pool_bytes = size_t{1536} << 20;
  cuda::DeviceBuffer pool = poisoned(pool_bytes);
  EXPECT_TRUE(cuda::memset_device(pool.data(), 0x3c, pool_bytes, nullptr).ok());  // bf16 ~0.011
  const int64_t max_k = 18944, max_n = 152064;
  cuda::DeviceBuffer x = poisoned(8 * 2 * max_k * 4), out = poisoned(8 * max_n * 4);
  EXPECT_TRUE(cuda::memset_device(x.data(), 0x3c, 8 * 2 * max_k * 4, nullptr).ok());
  EXPECT_TRUE(cuda::memset_device(out.data(), 0, 8 * max_n * 4, nullptr).ok());
  cuda::DeviceBuffer norm = poisoned(max_k * 4);
  EXPECT_TRUE(cuda::memset_device(norm.data(), 0x3c, max_k * 4, nullptr).ok());
  auto blas = cuda::Blas::create();
  ASSERT_TRUE(blas.ok());
  using P = cuda::GemvPrologue;
  using E = cuda::GemvEpilogue;
  struct Shape {
    const char* name;
    int64_t n, k;
    P prologue;
    E epilogue;
    DType out;
  };
  double total_bytes = 0.0, total_ms[2] = {0.0, 0.0};  // M 1, M 8
  for (const Shape& sh : {Shape{"qkv", 4608, 3584, P::kRmsNorm, E::kStore, DType::kF32},
                          {"o", 3584, 3584, P::kNone, E::kAddTo, DType::kF32},
                          {"gate_up", 37888, 3584, P::kRmsNorm, E::kStore, DType::kBF16},
                          {"down", 3584, 18944, P::kSiluGate, E::kAddTo, DType::kF32},
                          {"lm_head", 152064, 3584, P::kRmsNorm, E::kStore, DType::kF32}}) {
    const size_t w_bytes = static_cast<size_t>(sh.n * sh.k) * 2;
    const size_t copies = std::max<size_t>(1, pool_bytes / w_bytes);
    for (const int m : {1, 8}) {
      cuda::GemvArgs a;
      a.out = out.data();
      a.out_row_stride = sh.n;
      a.out_dtype = sh.out;
      a.x = x.data();
      a.x_row_stride = sh.prologue == P::kSiluGate ? 2 * sh.k : sh.k;
      a.norm_weight = norm.as<float>();
      a.eps = 1e-6f;
      a.rows = m;
      a.n = sh.n;
      a.k = sh.k;
      a.prologue = sh.prologue;
      a.epilogue = sh.epilogue;
      Status last = ok_status();
      const int iters = 20;
      const double ms = time_ms(iters, [&](int i) {
        a.weight = static_cast<const char*>(pool.data()) + (i % copies) * w_bytes;
        last = cuda::gemv(a, nullptr);
      });
      ASSERT_TRUE(last.ok()) << last.to_string();
      total_ms[m == 1 ? 0 : 1] += ms;
      // cuBLASLt on the same shape (bf16 in, fp32 out, no prologue) for comparison.
      cuda::LinearArgs la;
      la.out = out.data();
      la.in = x.data();
      la.rows = m;
      const double blas_ms = time_ms(iters, [&](int i) {
        cuda::DeviceLinearWeight w{static_cast<const char*>(pool.data()) + (i % copies) * w_bytes,
                                   nullptr, DType::kBF16, sh.n, sh.k};
        last = cuda::linear(**blas, la, w, nullptr);
      });
      ASSERT_TRUE(last.ok()) << last.to_string();
      auto gbs = [&](double t) { return w_bytes / (t * 1e-3) / 1e9; };
      std::printf(
          "gemv %-8s M %d  N %6lld K %5lld: %7.1f us %5.0f GB/s %5.1f%% of copy | cuBLASLt "
          "%6.0f GB/s\n",
          sh.name, m, static_cast<long long>(sh.n), static_cast<long long>(sh.k), ms * 1e3, gbs(ms),
          100.0 * gbs(ms) / peak, gbs(blas_ms));
      if (m == 1) total_bytes += static_cast<double>(w_bytes);
    }
  }
  for (int i = 0; i < 2; ++i) {
    const double gbs = total_bytes / (total_ms[i] * 1e-3) / 1e9;
    std::printf("gemv all five shapes, M %d: %.0f GB/s (%.1f%% of copy)\n", i == 0 ? 1 : 8, gbs,
                100.0 * gbs / peak);
  }

  // The four layer GEMVs of Qwen2-7B x 28 layers (distinct weights, 13 GB) at M = 1 in a CUDA
  // graph: what PDL saves across kernel boundaries.
  constexpr int kLayers = 28;
  Chain b;
  b.m = 1;
  b.c = 3584;
  b.nq = 4608;
  b.f = 18944;
  const size_t wq_bytes = static_cast<size_t>(b.nq * b.c) * 2;
  const size_t wo_bytes = static_cast<size_t>(b.c * b.c) * 2;
  const size_t wgu_bytes = static_cast<size_t>(2 * b.f * b.c) * 2;
  const size_t layer_bytes = wq_bytes + wo_bytes + wgu_bytes + static_cast<size_t>(b.c * b.f) * 2;
  auto weights = cuda::DeviceBuffer::create(layer_bytes * kLayers);
  ASSERT_TRUE(weights.ok());
  EXPECT_TRUE(cuda::memset_device(weights->data(), 0x3c, layer_bytes * kLayers, nullptr).ok());
  cuda::DeviceBuffer cx = poisoned(static_cast<size_t>(b.c) * 4),
                     ch = poisoned(static_cast<size_t>(b.nq) * 2),
                     cgu = poisoned(static_cast<size_t>(2 * b.f) * 2),
                     cnorm = poisoned(static_cast<size_t>(b.c) * 4);
  EXPECT_TRUE(cuda::memset_device(cx.data(), 0, static_cast<size_t>(b.c) * 4, nullptr).ok());
  EXPECT_TRUE(cuda::memset_device(cnorm.data(), 0x3c, static_cast<size_t>(b.c) * 4, nullptr).ok());
  b.x = cx.as<float>();
  b.h = ch.data();
  b.gu = cgu.data();
  b.norm = cnorm.as<float>();
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.ok());
  for (const bool pdl : {false, true}) {
    EXPECT_TRUE(cuda::Graph::begin_capture(stream->handle()).ok());
    Status st = ok_status();
    for (int l = 0; l < kLayers && st.ok(); ++l) {
      const char* base = static_cast<const char*>(weights->data()) + l * layer_bytes;
      b.wq = base;
      b.wo = base + wq_bytes;
      b.wgu = base + wq_bytes + wo_bytes;
      b.wd = base + wq_bytes + wo_bytes + wgu_bytes;
      st = run_chain(b, 1, DType::kBF16, pdl, stream->handle());
    }
    EXPECT_TRUE(st.ok()) << st.to_string();
    auto graph = cuda::Graph::end_capture(stream->handle());
    ASSERT_TRUE(graph.ok());
    Status last = ok_status();
    cudaStream_t cs = static_cast<cudaStream_t>(stream->handle());
    EXPECT_TRUE(graph->launch(cs).ok());  // warm-up
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    constexpr int kIters = 10;
    cudaEventRecord(start, cs);
    for (int i = 0; i < kIters; ++i) last = graph->launch(cs);
    cudaEventRecord(stop, cs);
    cudaEventSynchronize(stop);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, start, stop);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    EXPECT_TRUE(last.ok());
    const double per = ms / kIters;
    const double gbs = static_cast<double>(layer_bytes) * kLayers / (per * 1e-3) / 1e9;
    std::printf(
        "gemv chain 28 x (qkv, o, gate_up, down) M 1%s: %.3f ms, %.0f GB/s (%.1f%% of copy)\n",
        pdl ? " pdl" : "", per, gbs, 100.0 * gbs / peak);
  }
#endif
}

}  // namespace
}  // namespace vila
