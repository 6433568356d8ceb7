// Attention (causal / full, GQA, packed segments), RoPE and packing helpers: finite-difference
// gradients against float64 references and equality with the inference ops.
#include "ops/cpu/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "gradcheck.h"
#include "ops/cpu/attention_full.h"
#include "ops/cpu/rope.h"
#include "train/attention.h"
#include "train/packing.h"
#include "train/rope.h"

namespace vila::train {
namespace {

using testing::gradients_match;
using testing::numeric_gradient;
using testing::project;
using testing::random_vector;
using testing::to_f64;

struct AttnCase {
  int64_t t, h, hkv, d;
  AttentionMask mask;
  std::vector<int32_t> segments;  // empty: one segment (null pointer)
};

std::vector<AttnCase> attention_cases() {
  return {
      // causal, GQA with 2 kv groups, two packed samples of 4 and 5 tokens
      {9, 4, 2, 6, AttentionMask::kCausal, {0, 0, 0, 0, 1, 1, 1, 1, 1}},
      // full (vision), one kv head for 3 query heads, two packed images of 3 and 4 tokens
      {7, 3, 1, 5, AttentionMask::kFull, {3, 3, 3, 8, 8, 8, 8}},
      {5, 2, 2, 3, AttentionMask::kCausal, {}},
      {6, 2, 2, 4, AttentionMask::kFull, {}},
      // three segments, one of a single token
      {6, 2, 1, 2, AttentionMask::kCausal, {0, 0, 1, 2, 2, 2}},
  };
}

// out (T, H, D) in float64: key j is visible to query t when both are in the same segment and,
// causal, j <= t.
std::vector<double> attention_f64(const std::vector<double>& q, const std::vector<double>& k,
                                  const std::vector<double>& v, const AttnCase& c, double scale) {
  const int64_t group = c.h / c.hkv;
  std::vector<double> out(static_cast<size_t>(c.t * c.h * c.d), 0.0);
  auto seg = [&](int64_t i) { return c.segments.empty() ? 0 : c.segments[i]; };
  for (int64_t h = 0; h < c.h; ++h) {
    const int64_t g = h / group;
    for (int64_t t = 0; t < c.t; ++t) {
      std::vector<double> s(static_cast<size_t>(c.t), 0.0);
      std::vector<bool> vis(static_cast<size_t>(c.t), false);
      double mx = -1e300;
      for (int64_t j = 0; j < c.t; ++j) {
        vis[j] = seg(j) == seg(t) && (c.mask == AttentionMask::kFull || j <= t);
        if (!vis[j]) continue;
        double dot = 0.0;
        for (int64_t i = 0; i < c.d; ++i) {
          dot += q[(t * c.h + h) * c.d + i] * k[(j * c.hkv + g) * c.d + i];
        }
        s[j] = dot * scale;
        mx = std::max(mx, s[j]);
      }
      double z = 0.0;
      for (int64_t j = 0; j < c.t; ++j) {
        if (vis[j]) z += std::exp(s[j] - mx);
      }
      for (int64_t j = 0; j < c.t; ++j) {
        if (!vis[j]) continue;
        const double p = std::exp(s[j] - mx) / z;
        for (int64_t i = 0; i < c.d; ++i) {
          out[(t * c.h + h) * c.d + i] += p * v[(j * c.hkv + g) * c.d + i];
        }
      }
    }
  }
  return out;
}

TEST(TrainAttention, GradCheck) {
  std::mt19937 rng(21);
  for (const AttnCase& c : attention_cases()) {
    SCOPED_TRACE(::testing::Message()
                 << "T " << c.t << " H " << c.h << " Hkv " << c.hkv << " D " << c.d
                 << (c.mask == AttentionMask::kFull ? " full" : " causal"));
    const Shape qs{c.t, c.h, c.d}, ks{c.t, c.hkv, c.d};
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.d)) * 1.7f;  // sharper softmax
    std::vector<float> q = random_vector(qs.numel(), rng), k = random_vector(ks.numel(), rng),
                       v = random_vector(ks.numel(), rng), r = random_vector(qs.numel(), rng);
    const int32_t* segments = c.segments.empty() ? nullptr : c.segments.data();
    std::vector<float> out(q.size());
    AttentionSaved saved;
    ASSERT_TRUE(attention_forward(f32_view(out.data(), qs), f32_view(q.data(), qs),
                                  f32_view(k.data(), ks), f32_view(v.data(), ks), segments, c.mask,
                                  scale, &saved)
                    .ok());
    std::vector<float> dq(q.size()), dk(k.size(), 7.0f), dv(v.size(), 7.0f);  // dk, dv written
    ASSERT_TRUE(attention_backward(f32_view(dq.data(), qs), f32_view(dk.data(), ks),
                                   f32_view(dv.data(), ks), f32_view(r.data(), qs),
                                   f32_view(q.data(), qs), f32_view(k.data(), ks),
                                   f32_view(v.data(), ks), saved)
                    .ok());
    std::vector<double> q64 = to_f64(q), k64 = to_f64(k), v64 = to_f64(v);
    auto loss = [&] { return project(attention_f64(q64, k64, v64, c, scale), r); };
    EXPECT_LT(testing::max_abs_diff(out, attention_f64(q64, k64, v64, c, scale)), 1e-5);
    EXPECT_TRUE(gradients_match(dq, numeric_gradient(q64, loss))) << "dq";
    EXPECT_TRUE(gradients_match(dk, numeric_gradient(k64, loss))) << "dk";
    EXPECT_TRUE(gradients_match(dv, numeric_gradient(v64, loss))) << "dv";
  }
}

// Large enough for the thread-pool paths of forward and backward; numeric gradients at sampled
// elements only.
TEST(TrainAttention, GradCheckThreadedSizesSampled) {
  std::mt19937 rng(25);
  std::vector<int32_t> seg(45, 0);
  for (size_t i = 20; i < seg.size(); ++i) seg[i] = 1;
  const AttnCase c{45, 4, 2, 16, AttentionMask::kCausal, seg};
  const Shape qs{c.t, c.h, c.d}, ks{c.t, c.hkv, c.d};
  const float scale = 0.25f;
  std::vector<float> q = random_vector(qs.numel(), rng), k = random_vector(ks.numel(), rng),
                     v = random_vector(ks.numel(), rng), r = random_vector(qs.numel(), rng);
  std::vector<float> out(q.size()), dq(q.size()), dk(k.size()), dv(v.size());
  AttentionSaved saved;
  ASSERT_TRUE(attention_forward(f32_view(out.data(), qs), f32_view(q.data(), qs),
                                f32_view(k.data(), ks), f32_view(v.data(), ks), seg.data(), c.mask,
                                scale, &saved)
                  .ok());
  ASSERT_TRUE(attention_backward(f32_view(dq.data(), qs), f32_view(dk.data(), ks),
                                 f32_view(dv.data(), ks), f32_view(r.data(), qs),
                                 f32_view(q.data(), qs), f32_view(k.data(), ks),
                                 f32_view(v.data(), ks), saved)
                  .ok());
  std::vector<double> q64 = to_f64(q), k64 = to_f64(k), v64 = to_f64(v);
  auto loss = [&] { return project(attention_f64(q64, k64, v64, c, scale), r); };
  EXPECT_LT(testing::max_abs_diff(out, attention_f64(q64, k64, v64, c, scale)), 1e-5);
  constexpr size_t kSamples = 48;
  for (auto [analytic, x64] : {std::pair{&dq, &q64}, std::pair{&dk, &k64}, std::pair{&dv, &v64}}) {
    const std::vector<size_t> idx = testing::sample_indices(x64->size(), kSamples, rng);
    EXPECT_TRUE(gradients_match(testing::gather(*analytic, idx),
                                testing::numeric_gradient_at(*x64, loss, idx)));
  }
}

TEST(TrainAttention, SegmentsDoNotSeeEachOther) {
  std::mt19937 rng(22);
  const int64_t t = 8, h = 2, d = 4;
  const Shape qs{t, h, d};
  const std::vector<int32_t> seg = {0, 0, 0, 1, 1, 1, 1, 1};
  const int64_t first_of_second = 3;
  std::vector<float> q = random_vector(qs.numel(), rng), k = random_vector(qs.numel(), rng),
                     v = random_vector(qs.numel(), rng);
  for (AttentionMask mask : {AttentionMask::kCausal, AttentionMask::kFull}) {
    std::vector<float> out0(q.size()), out1(q.size());
    AttentionSaved saved;
    ASSERT_TRUE(attention_forward(f32_view(out0.data(), qs), f32_view(q.data(), qs),
                                  f32_view(k.data(), qs), f32_view(v.data(), qs), seg.data(), mask,
                                  0.5f, &saved)
                    .ok());
    std::vector<float> k2 = k, v2 = v;  // change the first sample's keys and values only
    for (int64_t i = 0; i < first_of_second * h * d; ++i) {
      k2[i] += 1.0f;
      v2[i] -= 3.0f;
    }
    ASSERT_TRUE(attention_forward(f32_view(out1.data(), qs), f32_view(q.data(), qs),
                                  f32_view(k2.data(), qs), f32_view(v2.data(), qs), seg.data(),
                                  mask, 0.5f, &saved)
                    .ok());
    for (int64_t i = first_of_second * h * d; i < qs.numel(); ++i) EXPECT_EQ(out0[i], out1[i]);
    for (int64_t tt = 0; tt < t; ++tt) {  // no probability mass outside the segment
      for (int64_t j = 0; j < t; ++j) {
        if (seg[j] != seg[tt] || (mask == AttentionMask::kCausal && j > tt)) {
          EXPECT_EQ(saved.probs[(1 * t + tt) * t + j], 0.0f);
        }
      }
    }
  }
}

TEST(TrainAttention, ForwardMatchesInferenceOps) {
  std::mt19937 rng(23);
  const int64_t t = 11, h = 4, hkv = 2, d = 8;
  const Shape qs{t, h, d}, ks{t, hkv, d};
  const float scale = 0.35f;
  std::vector<float> q = random_vector(qs.numel(), rng), k = random_vector(ks.numel(), rng),
                     v = random_vector(ks.numel(), rng);
  std::vector<float> out(q.size()), ref(q.size());
  AttentionSaved saved;
  ASSERT_TRUE(attention_forward(f32_view(out.data(), qs), f32_view(q.data(), qs),
                                f32_view(k.data(), ks), f32_view(v.data(), ks), nullptr,
                                AttentionMask::kCausal, scale, &saved)
                  .ok());
  ASSERT_TRUE(cpu::attention_causal(f32_view(ref.data(), qs), f32_view(q.data(), qs),
                                    f32_view(k.data(), ks), f32_view(v.data(), ks), 0, scale)
                  .ok());
  EXPECT_EQ(out, ref);  // the same arithmetic, bit for bit
  // Full attention (no GQA in the vision encoder op): same values up to summation order.
  std::vector<float> kf = random_vector(qs.numel(), rng), vf = random_vector(qs.numel(), rng);
  ASSERT_TRUE(attention_forward(f32_view(out.data(), qs), f32_view(q.data(), qs),
                                f32_view(kf.data(), qs), f32_view(vf.data(), qs), nullptr,
                                AttentionMask::kFull, scale, &saved)
                  .ok());
  ASSERT_TRUE(cpu::attention_full(f32_view(ref.data(), qs), f32_view(q.data(), qs),
                                  f32_view(kf.data(), qs), f32_view(vf.data(), qs), scale)
                  .ok());
  for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], ref[i], 1e-6f) << i;
}

TEST(TrainAttention, BadArguments) {
  std::vector<float> buf(64);
  AttentionSaved saved;
  // H = 3 is no multiple of Hkv = 2.
  Status s =
      attention_forward(f32_view(buf.data(), {2, 3, 2}), f32_view(buf.data() + 12, {2, 3, 2}),
                        f32_view(buf.data() + 24, {2, 2, 2}), f32_view(buf.data() + 32, {2, 2, 2}),
                        nullptr, AttentionMask::kCausal, 1.0f, &saved);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("attention"), std::string::npos);
  // Decreasing segment ids.
  const std::vector<int32_t> seg = {1, 0};
  s = attention_forward(f32_view(buf.data(), {2, 2, 2}), f32_view(buf.data() + 8, {2, 2, 2}),
                        f32_view(buf.data() + 16, {2, 2, 2}), f32_view(buf.data() + 24, {2, 2, 2}),
                        seg.data(), AttentionMask::kCausal, 1.0f, &saved);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("non-decreasing"), std::string::npos) << s.message();
}

// RoPE in float64 with its own tables: x (T, H, D) rotated by pos[t] · theta^(-2i/D).
std::vector<double> rope_f64(const std::vector<double>& x, const std::vector<int64_t>& pos,
                             int64_t h, int64_t d, double theta) {
  std::vector<double> y(x.size());
  const int64_t half = d / 2;
  for (size_t t = 0; t < pos.size(); ++t) {
    for (int64_t hh = 0; hh < h; ++hh) {
      const size_t base = (t * h + hh) * d;
      for (int64_t i = 0; i < half; ++i) {
        const double ang = static_cast<double>(pos[t]) * std::pow(theta, -2.0 * i / d);
        const double x1 = x[base + i], x2 = x[base + i + half];
        y[base + i] = x1 * std::cos(ang) - x2 * std::sin(ang);
        y[base + i + half] = x2 * std::cos(ang) + x1 * std::sin(ang);
      }
    }
  }
  return y;
}

TEST(TrainRope, PositionsRestartPerSegment) {
  const std::vector<int32_t> seg = {0, 0, 0, 4, 4, 5};
  std::vector<int64_t> pos(seg.size());
  ASSERT_TRUE(positions_from_segments(seg.data(), 6, pos.data()).ok());
  EXPECT_EQ(pos, (std::vector<int64_t>{0, 1, 2, 0, 1, 0}));
  ASSERT_TRUE(positions_from_segments(nullptr, 6, pos.data()).ok());
  EXPECT_EQ(pos, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  const std::vector<int32_t> bad = {0, 1, 0};
  EXPECT_EQ(positions_from_segments(bad.data(), 3, pos.data()).code(),
            StatusCode::kInvalidArgument);
}

TEST(TrainRope, GradCheckAndForwardEqualsInference) {
  std::mt19937 rng(24);
  const int64_t t = 7, h = 3, d = 10;
  const double theta = 10000.0;
  const Shape xs{t, h, d};
  const std::vector<int32_t> seg = {0, 0, 0, 0, 1, 1, 1};  // two packed samples
  std::vector<int64_t> pos(static_cast<size_t>(t));
  ASSERT_TRUE(positions_from_segments(seg.data(), t, pos.data()).ok());
  RopeTables tables;
  ASSERT_TRUE(rope_tables(&tables, pos.data(), t, d, theta).ok());
  std::vector<float> x = random_vector(xs.numel(), rng), r = random_vector(xs.numel(), rng);
  std::vector<float> y = x, ref = x;
  ASSERT_TRUE(rope_forward(f32_view(y.data(), xs), tables).ok());
  std::vector<float> cos(static_cast<size_t>(t * d / 2)), sin(cos.size());
  ASSERT_TRUE(cpu::rope_cos_sin(f32_view(cos.data(), {t, d / 2}), f32_view(sin.data(), {t, d / 2}),
                                pos.data(), theta)
                  .ok());
  ASSERT_TRUE(cpu::rope_apply(f32_view(ref.data(), xs), f32_view(cos.data(), {t, d / 2}),
                              f32_view(sin.data(), {t, d / 2}))
                  .ok());
  EXPECT_EQ(y, ref);
  std::vector<float> dx = r;  // dy in, dx out
  ASSERT_TRUE(rope_backward(f32_view(dx.data(), xs), tables).ok());
  std::vector<double> x64 = to_f64(x);
  auto loss = [&] { return project(rope_f64(x64, pos, h, d, theta), r); };
  EXPECT_LT(testing::max_abs_diff(y, rope_f64(x64, pos, h, d, theta)), 1e-5);
  EXPECT_TRUE(gradients_match(dx, numeric_gradient(x64, loss)));
  RopeTables odd;
  EXPECT_EQ(rope_tables(&odd, pos.data(), t, 5, theta).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vila::train
