// The decode-path CUDA ops other than the GEMV (gemv_test.cpp) against their CPU oracles:
// rms_norm_to / silu_mul_to bit-identical to a host formula, rope_kv_append vs ops/cpu/rope into
// shuffled pages, argmax_rows vs runtime/sampler's argmax, sample_top_p exactly (top_k 1, tiny
// temperature) and statistically (frequencies vs the CPU sampler's probabilities). Outputs are
// poisoned (0xff bytes) first. SamplingTiming prints the sampling kernels' time. Skips cleanly
// without CUDA or GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu/rope.h"
#include "runtime/sampler.h"

#ifdef VILA_WITH_CUDA
#include <cuda_runtime.h>

#include "backend/cuda/device.h"
#include "backend/cuda/elementwise.h"
#include "backend/cuda/kv_append.h"
#include "backend/cuda/kv_pages.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/rms_norm.h"
#include "backend/cuda/rope.h"
#include "backend/cuda/sampling.h"
#endif

#include "cuda_test_util.h"
#include "decode_test_util.h"

namespace vila {
namespace {
using namespace decode_test;

#ifdef VILA_WITH_CUDA

// ---- rms_norm_to / silu_mul_to ----

// The host formula of rms_norm_to (the CPU rms_norm's operations, then one rounding).
std::vector<uint16_t> host_rms_norm_to(const std::vector<float>& x, const std::vector<float>& w,
                                       int64_t rows, int64_t cols, float eps, DType dt) {
  std::vector<uint16_t> out(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * cols;
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += static_cast<double>(xr[c]) * xr[c];
    const auto variance = static_cast<float>(sum / static_cast<double>(cols));
    const float inv_rms = 1.0f / std::sqrt(variance + eps);
    for (int64_t c = 0; c < cols; ++c) {
      const float scaled = xr[c] * inv_rms;
      out[static_cast<size_t>(r * cols + c)] = round_half(scaled * w[static_cast<size_t>(c)], dt);
    }
  }
  return out;
}

float host_silu_mul(float g, float u) {
  const float silu = g / (1.0f + std::exp(-g));
  return silu * u;
}

// True when fp32 values within `ulps` of v round to different 16-bit values: there a 1-ulp
// difference of expf between host and device may legitimately change the rounding.
bool near_rounding_boundary(float v, DType dt, int ulps) {
  float lo = v, hi = v;
  for (int i = 0; i < ulps; ++i) {
    lo = std::nextafter(lo, -INFINITY);
    hi = std::nextafter(hi, INFINITY);
  }
  return round_half(lo, dt) != round_half(hi, dt);
}

#endif  // VILA_WITH_CUDA

TEST(CudaDecodeOps, RmsNormToIsBitExact) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(21);
  for (const DType dt : {DType::kBF16, DType::kF16}) {
    for (const auto& [rows, cols] :
         {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {2, 8}, {5, 3584}, {17, 4099}, {4, 18944}}) {
      const auto x = random_floats(rng, static_cast<size_t>(rows * cols), 2.0f);
      auto w = random_floats(rng, static_cast<size_t>(cols), 0.5f);
      for (float& v : w) v += 1.0f;
      const float eps = 1e-6f;
      const auto ref = host_rms_norm_to(x, w, rows, cols, eps, dt);
      cuda::DeviceBuffer dx = upload(x), dw = upload(w), dout = poisoned(ref.size() * 2);
      const Status s = cuda::rms_norm_to(dout.data(), dt, dx.as<float>(), dw.as<float>(), rows,
                                         cols, eps, nullptr);
      ASSERT_TRUE(s.ok()) << s.to_string();
      EXPECT_EQ(download<uint16_t>(dout, ref.size()), ref)
          << dtype_tag(dt) << " " << rows << "x" << cols;
    }
  }
  EXPECT_EQ(cuda::rms_norm_to(nullptr, DType::kF32, nullptr, nullptr, 1, 8, 1e-6f, nullptr).code(),
            StatusCode::kInvalidArgument);
#endif
}

// CUDA's expf is within 2 ulp, glibc's within 1; through 1 + e, the division and the product the
// fp32 results stay within a few ulp.
constexpr int kExpUlps = 8;

TEST(CudaDecodeOps, SiluMulToMatchesHostFormula) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(22);
  size_t checked = 0, boundary_mismatches = 0;
  for (const DType dt : {DType::kBF16, DType::kF16}) {
    // f % 8 != 0 takes the scalar path.
    for (const auto& [rows, f] :
         {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {2, 8}, {5, 3592}, {9, 18944}, {4, 1001}}) {
      auto gu = random_floats(rng, static_cast<size_t>(rows * 2 * f), 3.0f);
      const auto gu_h = to_half(gu, dt);
      gu = from_half(gu_h, dt);
      std::vector<float> ref(static_cast<size_t>(rows * f));
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < f; ++j) {
          ref[static_cast<size_t>(r * f + j)] = host_silu_mul(
              gu[static_cast<size_t>(r * 2 * f + j)], gu[static_cast<size_t>(r * 2 * f + f + j)]);
        }
      }
      cuda::DeviceBuffer dgu = upload(gu_h), dout = poisoned(ref.size() * 2);
      const Status s = cuda::silu_mul_to(dout.data(), dgu.data(), rows, f, dt, nullptr);
      ASSERT_TRUE(s.ok()) << s.to_string();
      const auto got = download<uint16_t>(dout, ref.size());
      for (size_t i = 0; i < ref.size(); ++i) {
        const uint16_t want = round_half(ref[i], dt);
        ++checked;
        if (got[i] == want) continue;
        ASSERT_TRUE(near_rounding_boundary(ref[i], dt, kExpUlps))
            << dtype_tag(dt) << " " << rows << "x" << f << " at " << i << ": got "
            << half_to_f32(got[i], dt) << ", host " << ref[i];
        ++boundary_mismatches;
      }
    }
  }
  std::printf("silu_mul_to: %zu values, %zu differ from the host formula at a rounding boundary\n",
              checked, boundary_mismatches);
  EXPECT_LE(boundary_mismatches * 100, checked);
#endif
}

// ---- rope_kv_append ----

TEST(CudaDecodeOps, RopeKvAppendMatchesCpuRope) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(25);
  struct Case {
    int rows, h, hkv, d, batch, max_pages;
    double theta;
    DType dt;
  };
  for (const Case& cs : {Case{1, 1, 1, 2, 1, 1, 10000.0, DType::kBF16},
                         {37, 4, 2, 128, 3, 9, 1e6, DType::kBF16},
                         {20, 7, 1, 64, 2, 40, 10000.0, DType::kF16},
                         {9, 28, 4, 128, 4, 100, 1e6, DType::kBF16},
                         {13, 6, 3, 80, 1, 3, 500000.0, DType::kF16}}) {
    SCOPED_TRACE(::testing::Message() << dtype_tag(cs.dt) << " rows " << cs.rows << " H " << cs.h
                                      << " Hkv " << cs.hkv << " D " << cs.d);
    const int half = cs.d / 2;
    const int64_t width = int64_t{cs.h + 2 * cs.hkv} * cs.d;
    const int64_t qkv_stride = width + 3, q_stride = int64_t{cs.h} * cs.d + 5;
    const int num_pages = cs.batch * cs.max_pages + 2;
    // Shuffled pages: sequence b's page j is table[b][j].
    std::vector<int32_t> page_ids(static_cast<size_t>(num_pages));
    std::iota(page_ids.begin(), page_ids.end(), 0);
    std::shuffle(page_ids.begin(), page_ids.end(), rng);
    std::vector<int32_t> table(static_cast<size_t>(cs.batch * cs.max_pages));
    std::copy_n(page_ids.begin(), table.size(), table.begin());
    // Distinct positions per sequence, anywhere in its pages.
    const int capacity = cs.max_pages * cuda::kKvPageSize;
    std::vector<std::vector<int>> free_pos(static_cast<size_t>(cs.batch));
    for (auto& f : free_pos) {
      f.resize(static_cast<size_t>(capacity));
      std::iota(f.begin(), f.end(), 0);
      std::shuffle(f.begin(), f.end(), rng);
    }
    std::vector<int32_t> positions(static_cast<size_t>(cs.rows)), seq_ids(positions.size());
    for (int r = 0; r < cs.rows; ++r) {
      seq_ids[static_cast<size_t>(r)] = static_cast<int32_t>(rng() % cs.batch);
      auto& f = free_pos[static_cast<size_t>(seq_ids[static_cast<size_t>(r)])];
      positions[static_cast<size_t>(r)] = f.back();
      f.pop_back();
    }
    const auto qkv = random_floats(rng, static_cast<size_t>(cs.rows * qkv_stride));

    // CPU: q (rows, H, D) and k (rows, Hkv, D) rotated by ops/cpu/rope at the positions.
    std::vector<int64_t> pos64(positions.begin(), positions.end());
    std::vector<float> cos_t(static_cast<size_t>(cs.rows * half)), sin_t(cos_t.size());
    ASSERT_TRUE(cpu::rope_cos_sin({cos_t.data(), DType::kF32, {cs.rows, half}},
                                  {sin_t.data(), DType::kF32, {cs.rows, half}}, pos64.data(),
                                  cs.theta)
                    .ok());
    std::vector<float> q(static_cast<size_t>(cs.rows * cs.h * cs.d));
    std::vector<float> k(static_cast<size_t>(cs.rows * cs.hkv * cs.d)), v(k.size());
    for (int r = 0; r < cs.rows; ++r) {
      const float* src = qkv.data() + r * qkv_stride;
      std::copy_n(src, cs.h * cs.d, q.begin() + r * cs.h * cs.d);
      std::copy_n(src + cs.h * cs.d, cs.hkv * cs.d, k.begin() + r * cs.hkv * cs.d);
      std::copy_n(src + (cs.h + cs.hkv) * cs.d, cs.hkv * cs.d, v.begin() + r * cs.hkv * cs.d);
    }
    ASSERT_TRUE(cpu::rope_apply({q.data(), DType::kF32, {cs.rows, cs.h, cs.d}},
                                {cos_t.data(), DType::kF32, {cs.rows, half}},
                                {sin_t.data(), DType::kF32, {cs.rows, half}})
                    .ok());
    ASSERT_TRUE(cpu::rope_apply({k.data(), DType::kF32, {cs.rows, cs.hkv, cs.d}},
                                {cos_t.data(), DType::kF32, {cs.rows, half}},
                                {sin_t.data(), DType::kF32, {cs.rows, half}})
                    .ok());

    const size_t pool = static_cast<size_t>(num_pages) * cs.hkv * cuda::kKvPageSize * cs.d;
    cuda::DeviceBuffer dqkv = upload(qkv), dpos = upload(positions), dseq = upload(seq_ids);
    cuda::DeviceBuffer dtable = upload(table), dinv = upload(cuda::rope_inv_freq(half, cs.theta));
    // The cos / sin tables of rope_cos_sin_f32 cover the first half of the positions; the rest
    // are evaluated in the kernel. Both must give the CPU's bits.
    const int64_t table_positions = capacity / 2;
    cuda::DeviceBuffer dcos = poisoned(static_cast<size_t>(table_positions * half) * 4);
    cuda::DeviceBuffer dsin = poisoned(static_cast<size_t>(table_positions * half) * 4);
    ASSERT_TRUE(cuda::rope_cos_sin_f32(dcos.as<float>(), dsin.as<float>(), dinv.as<float>(), 0,
                                       table_positions, half, nullptr)
                    .ok());
    for (const bool tables : {false, true}) {
      SCOPED_TRACE(tables ? "cos/sin tables" : "cos/sin in the kernel");
      cuda::DeviceBuffer dq = poisoned(static_cast<size_t>(cs.rows * q_stride) * 2);
      cuda::DeviceBuffer dk = poisoned(pool * 2), dv = poisoned(pool * 2);
      cuda::KvAppendArgs a;
      if (tables) {
        a.rope_cos = dcos.as<float>();
        a.rope_sin = dsin.as<float>();
        a.table_positions = table_positions;
      }
      a.q_out = dq.data();
      a.q_out_row_stride = q_stride;
      a.qkv = dqkv.as<float>();
      a.qkv_row_stride = qkv_stride;
      a.positions = dpos.as<int32_t>();
      a.seq_ids = dseq.as<int32_t>();
      a.inv_freq = dinv.as<float>();
      a.kv = {dk.data(), dv.data(), dtable.as<int32_t>(), cs.max_pages, cs.hkv, cs.d};
      a.rows = cs.rows;
      a.n_head = cs.h;
      a.dtype = cs.dt;
      const Status s = cuda::rope_kv_append(a, nullptr);
      ASSERT_TRUE(s.ok()) << s.to_string();

      const auto q_got = download<uint16_t>(dq, static_cast<size_t>(cs.rows * q_stride));
      const auto k_got = download<uint16_t>(dk, pool), v_got = download<uint16_t>(dv, pool);
      // Same fp32 angles, cos/sin in double on both sides, same rounded products: exact.
      size_t written = 0;
      for (int r = 0; r < cs.rows; ++r) {
        for (int i = 0; i < cs.h * cs.d; ++i) {
          ASSERT_EQ(q_got[static_cast<size_t>(r * q_stride + i)],
                    round_half(q[static_cast<size_t>(r * cs.h * cs.d + i)], cs.dt))
              << "q row " << r << " at " << i;
        }
        const int pos = positions[static_cast<size_t>(r)];
        const int page = table[static_cast<size_t>(seq_ids[static_cast<size_t>(r)] * cs.max_pages +
                                                   pos / cuda::kKvPageSize)];
        for (int hk = 0; hk < cs.hkv; ++hk) {
          const size_t base = ((static_cast<size_t>(page) * cs.hkv + hk) * cuda::kKvPageSize +
                               pos % cuda::kKvPageSize) *
                              cs.d;
          for (int i = 0; i < cs.d; ++i) {
            const size_t src = static_cast<size_t>((r * cs.hkv + hk) * cs.d + i);
            ASSERT_EQ(k_got[base + i], round_half(k[src], cs.dt)) << "k row " << r << " at " << i;
            ASSERT_EQ(v_got[base + i], round_half(v[src], cs.dt)) << "v row " << r << " at " << i;
            ++written;
          }
        }
      }
      // Nothing else in the pools was touched.
      const size_t untouched_k = static_cast<size_t>(
          std::count(k_got.begin(), k_got.end(), static_cast<uint16_t>(0xffff)));
      EXPECT_EQ(untouched_k, pool - written);
    }
  }
#endif
}

// ---- argmax / sampling ----

TEST(CudaDecodeOps, ArgmaxRowsMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(26);
  for (const int64_t vocab : {int64_t{1}, int64_t{7}, int64_t{4100}, int64_t{152067}}) {
    for (const int64_t pad : {int64_t{0}, int64_t{3}}) {  // pad 3: rows not 16-byte aligned
      const int rows = 6;
      const int64_t stride = vocab + pad;
      auto logits = random_floats(rng, static_cast<size_t>(rows * stride), 3.0f);
      for (int r = 0; r < rows; ++r) {
        float* l = logits.data() + r * stride;
        if (r == 1 && vocab > 2) {  // a tie: the lower index wins
          const float top = *std::max_element(l, l + vocab) + 1.0f;
          l[vocab - 1] = top;
          l[vocab / 2] = top;
        }
        if (r == 2) std::fill(l, l + vocab, -INFINITY);  // all equal: index 0
        if (r == 3 && vocab > 1) l[vocab - 1] = 100.0f;  // the last column
        if (r == 4 && vocab > 5) l[3] = NAN;             // NaN never wins
      }
      std::vector<int32_t> want(rows);
      for (int r = 0; r < rows; ++r) {
        std::vector<float> row(logits.begin() + r * stride, logits.begin() + r * stride + vocab);
        for (float& x : row) {
          if (std::isnan(x)) x = -INFINITY;
        }
        want[static_cast<size_t>(r)] = argmax(row.data(), vocab);
      }
      cuda::DeviceBuffer dl = upload(logits);
      // One block per row; then rows split over blocks through a zeroed workspace, twice (the
      // call must leave the workspace zero for the next).
      auto ws = cuda::DeviceBuffer::create(cuda::argmax_workspace_bytes(rows));
      ASSERT_TRUE(ws.ok());
      ASSERT_TRUE(cuda::memset_device(ws->data(), 0, ws->bytes(), nullptr).ok());
      for (void* workspace : {static_cast<void*>(nullptr), ws->data(), ws->data()}) {
        cuda::DeviceBuffer dout = poisoned(rows * 4);
        const Status s = cuda::argmax_rows(dout.as<int32_t>(), dl.as<float>(), rows, vocab, stride,
                                           nullptr, workspace);
        ASSERT_TRUE(s.ok()) << s.to_string();
        EXPECT_EQ(download<int32_t>(dout, rows), want)
            << "vocab " << vocab << " pad " << pad << (workspace ? " split" : "");
      }
    }
  }
#endif
}

#ifdef VILA_WITH_CUDA

// Draws rows x steps ids; the rows all hold the same logits (row_stride = vocab + pad).
std::vector<int32_t> sample_many(const std::vector<float>& row, int rows, int64_t pad, int steps,
                                 float temperature, int top_k, float top_p, uint64_t seed,
                                 uint64_t first_step = 0) {
  const auto vocab = static_cast<int64_t>(row.size());
  const int64_t stride = vocab + pad;
  std::vector<float> logits(static_cast<size_t>(rows * stride), 0.0f);
  for (int r = 0; r < rows; ++r) std::copy(row.begin(), row.end(), logits.begin() + r * stride);
  cuda::DeviceBuffer dl = upload(logits), dout = poisoned(rows * 4);
  cuda::DeviceBuffer dstep = poisoned(8);
  std::vector<int32_t> all;
  for (int st = 0; st < steps; ++st) {
    const uint64_t step = first_step + static_cast<uint64_t>(st);
    EXPECT_TRUE(cuda::copy_to_device(dstep.data(), &step, 8, nullptr).ok());
    cuda::SampleArgs a;
    a.out_ids = dout.as<int32_t>();
    a.logits = dl.as<float>();
    a.rows = rows;
    a.vocab = vocab;
    a.row_stride = stride;
    a.temperature = temperature;
    a.top_k = top_k;
    a.top_p = top_p;
    a.seed = seed;
    a.step = dstep.as<uint64_t>();
    const Status s = cuda::sample_top_p(a, nullptr);
    EXPECT_TRUE(s.ok()) << s.to_string();
    const auto ids = download<int32_t>(dout, static_cast<size_t>(rows));
    all.insert(all.end(), ids.begin(), ids.end());
  }
  return all;
}

// The CPU sampler's distribution (runtime/sampler.cpp) with top_k 0 read as kSampleMaxTopK.
std::map<int32_t, double> cpu_probabilities(const std::vector<float>& logits, float temperature,
                                            int top_k, float top_p) {
  std::vector<std::pair<float, int32_t>> c;
  for (size_t i = 0; i < logits.size(); ++i) c.emplace_back(logits[i], static_cast<int32_t>(i));
  std::sort(c.begin(), c.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  const size_t keep =
      std::min(c.size(), static_cast<size_t>(top_k == 0 ? cuda::kSampleMaxTopK : top_k));
  c.resize(keep);
  const double inv_t = 1.0 / temperature;
  const double max_logit = c[0].first;
  std::vector<double> p(keep);
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    p[i] = std::exp((c[i].first - max_logit) * inv_t);
    total += p[i];
  }
  if (top_p < 1.0f) {
    double mass = 0.0;
    size_t cut = p.size();
    for (size_t i = 0; i < p.size(); ++i) {
      mass += p[i] / total;
      if (mass >= top_p) {
        cut = i + 1;
        break;
      }
    }
    p.resize(cut);
    total = std::accumulate(p.begin(), p.end(), 0.0);
  }
  std::map<int32_t, double> out;
  for (size_t i = 0; i < p.size(); ++i) out[c[i].second] = p[i] / total;
  return out;
}

#endif  // VILA_WITH_CUDA

TEST(CudaDecodeOps, SampleTopKOneAndTinyTemperatureAreArgmax) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(27);
  for (const int64_t vocab : {int64_t{1}, int64_t{50}, int64_t{152064}}) {
    const int rows = 8;
    const int64_t stride = vocab + 1;
    auto logits = random_floats(rng, static_cast<size_t>(rows * stride), 3.0f);
    std::vector<int32_t> want(rows);
    for (int r = 0; r < rows; ++r) {
      float* l = logits.data() + r * stride;
      const int64_t top = static_cast<int64_t>(rng() % vocab);
      l[top] = *std::max_element(l, l + vocab) + 1.0f;  // a clear winner
      if (r == 0 && vocab > 2) l[vocab - 1] = l[top];   // a tie: the lower index
      want[static_cast<size_t>(r)] = argmax(l, vocab);
    }
    cuda::DeviceBuffer dl = upload(logits), dout = poisoned(rows * 4);
    const uint64_t step = 5;
    cuda::DeviceBuffer dstep = upload(std::vector<uint64_t>{step});
    for (const auto& [temperature, top_k] :
         {std::pair<float, int>{1.0f, 1}, {2.0f, 1}, {1e-6f, 0}, {1e-6f, 40}}) {
      if (temperature < 1e-3f) {  // the tie of row 0 would split the mass: top_k 1 only
        if (vocab > 2) continue;
      }
      cuda::SampleArgs a;
      a.out_ids = dout.as<int32_t>();
      a.logits = dl.as<float>();
      a.rows = rows;
      a.vocab = vocab;
      a.row_stride = stride;
      a.temperature = temperature;
      a.top_k = top_k;
      a.top_p = 0.9f;
      a.seed = 99;
      a.step = dstep.as<uint64_t>();
      ASSERT_TRUE(cuda::sample_top_p(a, nullptr).ok());
      EXPECT_EQ(download<int32_t>(dout, rows), want)
          << "vocab " << vocab << " T " << temperature << " top_k " << top_k;
    }
    // Tiny temperature without the tie row.
    if (vocab > 2) {
      cuda::SampleArgs a;
      a.out_ids = dout.as<int32_t>();
      a.logits = dl.as<float>() + stride;
      a.rows = rows - 1;
      a.vocab = vocab;
      a.row_stride = stride;
      a.temperature = 1e-6f;
      a.top_p = 1.0f;
      a.step = dstep.as<uint64_t>();
      ASSERT_TRUE(cuda::sample_top_p(a, nullptr).ok());
      EXPECT_EQ(download<int32_t>(dout, rows - 1),
                std::vector<int32_t>(want.begin() + 1, want.end()))
          << "vocab " << vocab << " tiny temperature";
    }
  }
#endif
}

#ifdef VILA_WITH_CUDA

// Frequencies over many draws vs the CPU sampler's exact probabilities: every drawn id must have
// probability > 0, and each frequency must lie within 5 sigma of its probability.
void expect_frequencies(const std::vector<int32_t>& ids, const std::map<int32_t, double>& p,
                        const char* what) {
  const auto n = static_cast<double>(ids.size());
  std::map<int32_t, double> count;
  for (const int32_t id : ids) {
    ASSERT_TRUE(p.count(id) == 1) << what << ": drew id " << id << " of probability 0";
    count[id] += 1.0;
  }
  double worst_sigma = 0.0;
  for (const auto& [id, prob] : p) {
    const double freq = count[id] / n;
    const double sigma = std::sqrt(prob * (1.0 - prob) / n) + 1.0 / n;
    worst_sigma = std::max(worst_sigma, std::fabs(freq - prob) / sigma);
    EXPECT_LE(std::fabs(freq - prob), 5.0 * sigma)
        << what << ": id " << id << " p " << prob << " freq " << freq;
  }
  std::printf("%s: %zu draws, %zu candidates, worst deviation %.2f sigma\n", what, ids.size(),
              p.size(), worst_sigma);
}

#endif  // VILA_WITH_CUDA

TEST(CudaDecodeOps, SampleFrequenciesMatchCpuSampler) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(28);
  {
    // A small vocabulary: temperature and top-p over the 64 kept candidates.
    const auto logits = random_floats(rng, 1000, 2.0f);
    const auto ids = sample_many(logits, 4096, 3, 6, 0.7f, 0, 0.9f, 1234);
    expect_frequencies(ids, cpu_probabilities(logits, 0.7f, 0, 0.9f), "vocab 1000 T 0.7 p 0.9");
  }
  {
    // Qwen2's vocabulary with the 150 largest logits all in the columns of one thread group
    // (columns 4096 j + {0..3}): the candidate gather must still find the true top 40.
    auto logits = random_floats(rng, 152064, 1.0f);
    std::vector<float> big = random_floats(rng, 150, 1.0f);
    for (size_t j = 0; j < big.size(); ++j) logits[4096 * (j / 4) + j % 4] = 6.0f + big[j];
    const auto ids = sample_many(logits, 1024, 0, 8, 1.5f, 40, 1.0f, 77);
    expect_frequencies(ids, cpu_probabilities(logits, 1.5f, 40, 1.0f),
                       "vocab 152064 adversarial T 1.5 k 40");
  }
  {
    // Many equal logits: candidates ordered by index, as the CPU sorts them.
    std::vector<float> logits(5000, 1.0f);
    for (int i = 0; i < 10; ++i) logits[static_cast<size_t>(4000 + i)] = 2.0f;
    const auto ids = sample_many(logits, 2048, 1, 4, 1.0f, 20, 1.0f, 5);
    expect_frequencies(ids, cpu_probabilities(logits, 1.0f, 20, 1.0f), "ties k 20");
  }
  // Same (seed, step): the same draws; another step: other draws.
  const auto logits = random_floats(rng, 300, 1.0f);
  const auto a = sample_many(logits, 256, 0, 1, 1.0f, 0, 1.0f, 9, 17);
  const auto b = sample_many(logits, 256, 0, 1, 1.0f, 0, 1.0f, 9, 17);
  const auto c = sample_many(logits, 256, 0, 1, 1.0f, 0, 1.0f, 9, 18);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
#endif
}

TEST(CudaDecodeOps, SampleRejectsBadArguments) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  cuda::DeviceBuffer buf = poisoned(1024);
  cuda::SampleArgs a;
  a.out_ids = buf.as<int32_t>();
  a.logits = buf.as<float>() + 16;
  a.rows = 1;
  a.vocab = 10;
  a.row_stride = 10;
  cuda::SampleArgs bad = a;
  bad.temperature = 0.0f;
  EXPECT_EQ(cuda::sample_top_p(bad, nullptr).code(), StatusCode::kInvalidArgument);
  bad = a;
  bad.top_k = cuda::kSampleMaxTopK + 1;
  EXPECT_EQ(cuda::sample_top_p(bad, nullptr).code(), StatusCode::kInvalidArgument);
  bad = a;
  bad.top_p = 0.0f;
  EXPECT_EQ(cuda::sample_top_p(bad, nullptr).code(), StatusCode::kInvalidArgument);
  bad = a;
  bad.rows = 2;
  bad.row_stride = 5;
  EXPECT_EQ(cuda::sample_top_p(bad, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cuda::argmax_rows(nullptr, a.logits, 1, 10, 10, nullptr).code(),
            StatusCode::kInvalidArgument);
#endif
}

TEST(CudaDecodeOps, SamplingTiming) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  // Sampling at Qwen2's vocabulary, 8 rows.
  const int64_t vocab = 152064;
  cuda::DeviceBuffer logits = poisoned(8 * vocab * 4), ids = poisoned(64);
  {
    std::mt19937 rng(29);
    logits = upload(random_floats(rng, static_cast<size_t>(8 * vocab), 3.0f));
  }
  cuda::DeviceBuffer step = upload(std::vector<uint64_t>{0});
  Status last = ok_status();
  const double argmax_ms = time_ms(20, [&](int) {
    last = cuda::argmax_rows(ids.as<int32_t>(), logits.as<float>(), 8, vocab, vocab, nullptr);
  });
  EXPECT_TRUE(last.ok());
  cuda::SampleArgs sa;
  sa.out_ids = ids.as<int32_t>();
  sa.logits = logits.as<float>();
  sa.rows = 8;
  sa.vocab = vocab;
  sa.row_stride = vocab;
  sa.temperature = 0.7f;
  sa.top_p = 0.9f;
  sa.step = step.as<uint64_t>();
  const double sample_ms = time_ms(20, [&](int) { last = cuda::sample_top_p(sa, nullptr); });
  EXPECT_TRUE(last.ok());
  std::printf("argmax_rows 8 x %lld: %.1f us; sample_top_p 8 x %lld: %.1f us\n",
              static_cast<long long>(vocab), argmax_ms * 1e3, static_cast<long long>(vocab),
              sample_ms * 1e3);
#endif
}

}  // namespace
}  // namespace vila
