// The q/k/v split (with or without RoPE) and its backward merge (backend/cuda/train_ops.h) against
// plain host loops: GQA shapes (12 / 2 heads, D 128, dk / dv per query head or already summed per
// KV head), SigLIP-like MHA (16 / 16, D 72) and a small odd head size (scalar path), odd row
// counts, outputs poisoned with 0xff bytes (NaN) first. Unrotated values are bf16 conversions and
// must match bit for bit; rotated ones within bf16 rounding of |x1| + |x2|. The Timing case prints
// the SigLIP-so400m shapes of one NVILA-Lite step (10240 rows). Skips without CUDA or a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_test_util.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/memory.h"
#include "backend/cuda/train_ops.h"
#include "core/dtype.h"
#endif

namespace vila {
namespace {

#ifdef VILA_WITH_CUDA

using testing::download;
using testing::poisoned;
using testing::upload;

constexpr double kRotTol = 8e-3;  // rotated outputs: |got - ref| <= kRotTol (|x1| + |x2|)

std::vector<float> normal(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// Reference outputs of one (row, head): y (D) and the per-element tolerance (0: bit-exact).
struct Expected {
  std::vector<float> y, tol;
};

// Counts elements of got (bf16) outside ref ± tol (tol 0: the bf16 rounding of ref exactly).
int64_t misses(const std::vector<uint16_t>& got, const Expected& ref) {
  int64_t bad = 0;
  for (size_t i = 0; i < ref.y.size(); ++i) {
    if (ref.tol[i] == 0.0f) {
      if (got[i] != f32_to_bf16(ref.y[i])) ++bad;
    } else if (!(std::fabs(bf16_to_f32(got[i]) - ref.y[i]) <= ref.tol[i])) {
      ++bad;
    }
  }
  return bad;
}

// Rope tables (seq, D/2): angle p · 10000^(-2i/D).
void rope_tables(int64_t seq, int d, std::vector<float>& cos, std::vector<float>& sin) {
  const int half = d / 2;
  cos.resize(seq * half);
  sin.resize(seq * half);
  for (int64_t p = 0; p < seq; ++p) {
    for (int i = 0; i < half; ++i) {
      const double a = static_cast<double>(p) * std::pow(10000.0, -2.0 * i / d);
      cos[p * half + i] = static_cast<float>(std::cos(a));
      sin[p * half + i] = static_cast<float>(std::sin(a));
    }
  }
}

struct Case {
  int heads, kv_heads, d;
};

TEST(TrainQkvOpsTest, SplitMatchesHostLoop) {
  VILA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(11);
  for (const Case cs : {Case{12, 2, 128}, {16, 16, 72}, {4, 2, 6}, {3, 1, 20}}) {
    for (const bool rope : {false, true}) {
      for (const int64_t rows : {1, 7, 37}) {
        const int64_t seq = rows > 7 ? 13 : rows;  // 37 rows: positions wrap (row % seq)
        const int h = cs.heads, hkv = cs.kv_heads, d = cs.d, half = d / 2, all = h + 2 * hkv;
        const auto qkv = normal(rng, rows * all * d);  // (R, (H + 2 Hkv) D)
        std::vector<float> cos, sin;
        if (rope) rope_tables(seq, d, cos, sin);
        // (R, H, D), (R, Hkv, D), (R, Hkv, D) oracles
        Expected q{std::vector<float>(rows * h * d), std::vector<float>(rows * h * d)};
        Expected k{std::vector<float>(rows * hkv * d), std::vector<float>(rows * hkv * d)};
        Expected v = k;
        for (int64_t r = 0; r < rows; ++r) {
          for (int hh = 0; hh < all; ++hh) {
            Expected& out = hh < h ? q : hh < h + hkv ? k : v;
            const int oh = hh < h ? hh : hh < h + hkv ? hh - h : hh - h - hkv;
            const int out_heads = hh < h ? h : hkv;
            for (int i = 0; i < half; ++i) {
              const float x1 = qkv[(r * all + hh) * d + i], x2 = qkv[(r * all + hh) * d + i + half];
              float y1 = x1, y2 = x2, tol = 0.0f;
              if (rope && hh < h + hkv) {
                const float c = cos[(r % seq) * half + i], s = sin[(r % seq) * half + i];
                y1 = x1 * c - x2 * s;
                y2 = x2 * c + x1 * s;
                tol = static_cast<float>(kRotTol * (std::fabs(x1) + std::fabs(x2)));
              }
              const int64_t o = (r * out_heads + oh) * d + i;
              out.y[o] = y1;
              out.y[o + half] = y2;
              out.tol[o] = out.tol[o + half] = tol;
            }
          }
        }
        cuda::DeviceBuffer dqkv = upload(qkv), dcos = upload(cos), dsin = upload(sin);
        cuda::DeviceBuffer dq = poisoned(q.y.size() * 2), dk = poisoned(k.y.size() * 2),
                           dv = poisoned(v.y.size() * 2);
        const cuda::QkvShape shape{rows, seq, h, hkv, d};
        const Status st = cuda::train_qkv_rope_split(
            dq.data(), dk.data(), dv.data(), dqkv.as<float>(), rope ? dcos.as<float>() : nullptr,
            rope ? dsin.as<float>() : nullptr, shape, nullptr);
        ASSERT_TRUE(st.ok()) << st.to_string();
        const auto where = ::testing::Message()
                           << h << "/" << hkv << " D " << d << " rows " << rows << " rope " << rope;
        EXPECT_EQ(misses(download<uint16_t>(dq, q.y.size()), q), 0) << where;
        EXPECT_EQ(misses(download<uint16_t>(dk, k.y.size()), k), 0) << where;
        EXPECT_EQ(misses(download<uint16_t>(dv, v.y.size()), v), 0) << where;
      }
    }
  }
}

TEST(TrainQkvOpsTest, GradMergeMatchesHostLoop) {
  VILA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(12);
  for (const Case cs : {Case{12, 2, 128}, {16, 16, 72}, {4, 2, 6}, {3, 1, 20}}) {
    for (const bool rope : {false, true}) {
      for (const bool summed : {false, true}) {
        for (const int64_t seq : {1, 7, 37}) {
          const int h = cs.heads, hkv = cs.kv_heads, d = cs.d, half = d / 2, all = h + 2 * hkv;
          const int group = summed ? 1 : h / hkv, kv_rows = summed ? hkv : h;
          const auto dq = normal(rng, seq * h * d);        // (seq, H, D)
          const auto dk = normal(rng, seq * kv_rows * d);  // (seq, H or Hkv, D)
          const auto dv = normal(rng, seq * kv_rows * d);  // (seq, H or Hkv, D)
          std::vector<float> cos, sin;
          if (rope) rope_tables(seq, d, cos, sin);
          Expected ref{std::vector<float>(seq * all * d), std::vector<float>(seq * all * d)};
          for (int64_t r = 0; r < seq; ++r) {
            for (int hh = 0; hh < all; ++hh) {
              for (int i = 0; i < half; ++i) {
                float g1 = 0.0f, g2 = 0.0f;
                if (hh < h) {
                  g1 = dq[(r * h + hh) * d + i];
                  g2 = dq[(r * h + hh) * d + i + half];
                } else {
                  const int kvh = hh < h + hkv ? hh - h : hh - h - hkv;
                  const std::vector<float>& src = hh < h + hkv ? dk : dv;
                  for (int j = 0; j < group; ++j) {
                    g1 += src[(r * kv_rows + kvh * group + j) * d + i];
                    g2 += src[(r * kv_rows + kvh * group + j) * d + i + half];
                  }
                }
                float x1 = g1, x2 = g2, tol = 0.0f;
                if (rope && hh < h + hkv) {
                  const float c = cos[r * half + i], s = sin[r * half + i];
                  x1 = g1 * c + g2 * s;
                  x2 = g2 * c - g1 * s;
                  tol = static_cast<float>(kRotTol * (std::fabs(g1) + std::fabs(g2)));
                }
                const int64_t o = (r * all + hh) * d + i;
                ref.y[o] = x1;
                ref.y[o + half] = x2;
                ref.tol[o] = ref.tol[o + half] = tol;
              }
            }
          }
          cuda::DeviceBuffer ddq = upload(dq), ddk = upload(dk), ddv = upload(dv);
          cuda::DeviceBuffer dcos = upload(cos), dsin = upload(sin);
          cuda::DeviceBuffer out = poisoned(ref.y.size() * 2);
          const cuda::QkvShape shape{seq, seq, h, hkv, d};
          const Status st =
              cuda::train_qkv_grad_merge(out.data(), ddq.as<float>(), ddk.as<float>(),
                                         ddv.as<float>(), rope ? dcos.as<float>() : nullptr,
                                         rope ? dsin.as<float>() : nullptr, shape, nullptr, summed);
          ASSERT_TRUE(st.ok()) << st.to_string();
          EXPECT_EQ(misses(download<uint16_t>(out, ref.y.size()), ref), 0)
              << h << "/" << hkv << " D " << d << " seq " << seq << " rope " << rope << " summed "
              << summed;
        }
      }
    }
  }
}

// The vision calls of one NVILA-Lite-2B step: 10 tiles x 1024 patches, 16 heads of 72, no RoPE.
TEST(TrainQkvOpsTest, Timing) {
  VILA_SKIP_WITHOUT_GPU();
  constexpr int64_t kRows = 10240;
  constexpr int kHeads = 16, kDim = 72, kIters = 20;
  constexpr int64_t kWidth = 3 * kHeads * kDim;  // (H + 2 Hkv) D
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.ok());
  auto st = static_cast<cudaStream_t>(stream->handle());
  auto f32 = cuda::DeviceBuffer::create(kRows * kWidth * 4);
  auto b16 = cuda::DeviceBuffer::create(kRows * kWidth * 2);
  ASSERT_TRUE(f32.ok() && b16.ok());
  ASSERT_TRUE(cuda::memset_device(f32->data(), 0, f32->bytes(), nullptr).ok());
  const cuda::QkvShape shape{kRows, kRows, kHeads, kHeads, kDim};
  const int64_t per = kRows * kHeads * kDim;  // elements of q (= k = v)
  float* base = f32->as<float>();
  auto* out = static_cast<uint16_t*>(b16->data());
  const double bytes = kRows * kWidth * 6.0;  // f32 in, bf16 out
  const double split_ms = testing::time_ms(st, kIters, [&] {
    return cuda::train_qkv_rope_split(out, out + per, out + 2 * per, base, nullptr, nullptr, shape,
                                      st);
  });
  const double merge_ms = testing::time_ms(st, kIters, [&] {
    return cuda::train_qkv_grad_merge(out, base, base + per, base + 2 * per, nullptr, nullptr,
                                      shape, st, /*kv_summed=*/true);
  });
  std::printf("[ qkv ] split (10240 x 16 x 72)  %8.3f ms  %7.0f GB/s\n", split_ms,
              bytes / split_ms * 1e-6);
  std::printf("[ qkv ] merge (10240 x 16 x 72)  %8.3f ms  %7.0f GB/s\n", merge_ms,
              bytes / merge_ms * 1e-6);
}

#else

TEST(TrainQkvOpsTest, SkippedWithoutCuda) { GTEST_SKIP() << "no CUDA build"; }

#endif

}  // namespace
}  // namespace vila
