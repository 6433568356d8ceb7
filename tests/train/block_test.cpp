// The ops composed: one Qwen2-style decoder block (RMSNorm, q/k/v with bias, RoPE, causal GQA
// attention over two packed samples, o_proj, residual, RMSNorm, SwiGLU MLP, residual) run
// forward and backward through the training ops with the gradient conventions of
// src/train/check.h, and every parameter's gradient and dx checked against central differences
// of a float64 block written out here.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "gradcheck.h"
#include "train/activation.h"
#include "train/attention.h"
#include "train/linear.h"
#include "train/norm.h"
#include "train/packing.h"
#include "train/residual.h"
#include "train/rope.h"

namespace vila::train {
namespace {

using testing::gradients_match;
using testing::numeric_gradient;
using testing::project;
using testing::random_vector;
using testing::to_f64;

constexpr int64_t kT = 7, kC = 8, kH = 4, kHkv = 2, kD = 4, kF = 12;
constexpr float kEps = 1e-6f;
constexpr double kTheta = 10000.0;
const std::vector<int32_t> kSegments = {0, 0, 0, 1, 1, 1, 1};

// Parameter slots: weights (out, in) and biases (out).
enum Param { kLn1, kWq, kBq, kWk, kBk, kWv, kBv, kWo, kLn2, kWg, kWu, kWd, kParamCount };
const int64_t kParamSize[kParamCount] = {kC,       kH* kD* kC,   kH* kD,   kHkv* kD* kC,
                                         kHkv* kD, kHkv* kD* kC, kHkv* kD, kC* kH* kD,
                                         kC,       kF* kC,       kF* kC,   kC* kF};

using Vec = std::vector<double>;

Vec lin64(const Vec& x, const Vec& w, const Vec* b, int64_t in, int64_t out) {
  Vec y(static_cast<size_t>(kT * out));
  for (int64_t t = 0; t < kT; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double s = b != nullptr ? (*b)[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) s += x[t * in + i] * w[o * in + i];
      y[t * out + o] = s;
    }
  return y;
}

Vec rms64(const Vec& x, const Vec& w) {
  Vec y(x.size());
  for (int64_t t = 0; t < kT; ++t) {
    double ss = 0.0;
    for (int64_t i = 0; i < kC; ++i) ss += x[t * kC + i] * x[t * kC + i];
    const double inv = 1.0 / std::sqrt(ss / kC + kEps);
    for (int64_t i = 0; i < kC; ++i) y[t * kC + i] = w[i] * x[t * kC + i] * inv;
  }
  return y;
}

void rope64(Vec& x, int64_t heads, const std::vector<int64_t>& pos) {
  for (int64_t t = 0; t < kT; ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < kD / 2; ++i) {
        const double ang = static_cast<double>(pos[t]) * std::pow(kTheta, -2.0 * i / kD);
        double* v = x.data() + (t * heads + h) * kD;
        const double x1 = v[i], x2 = v[i + kD / 2];
        v[i] = x1 * std::cos(ang) - x2 * std::sin(ang);
        v[i + kD / 2] = x2 * std::cos(ang) + x1 * std::sin(ang);
      }
}

Vec block64(const Vec& x, const std::vector<Vec>& p, const std::vector<int64_t>& pos) {
  const Vec h1 = rms64(x, p[kLn1]);
  Vec q = lin64(h1, p[kWq], &p[kBq], kC, kH * kD);
  Vec k = lin64(h1, p[kWk], &p[kBk], kC, kHkv * kD);
  const Vec v = lin64(h1, p[kWv], &p[kBv], kC, kHkv * kD);
  rope64(q, kH, pos);
  rope64(k, kHkv, pos);
  Vec a(static_cast<size_t>(kT * kH * kD), 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(kD));
  for (int64_t h = 0; h < kH; ++h) {
    const int64_t g = h / (kH / kHkv);
    for (int64_t t = 0; t < kT; ++t) {
      Vec s(static_cast<size_t>(kT), -1e300);
      double mx = -1e300, z = 0.0;
      for (int64_t j = 0; j <= t; ++j) {
        if (kSegments[j] != kSegments[t]) continue;
        double dot = 0.0;
        for (int64_t i = 0; i < kD; ++i)
          dot += q[(t * kH + h) * kD + i] * k[(j * kHkv + g) * kD + i];
        s[j] = dot * scale;
        mx = std::max(mx, s[j]);
      }
      for (int64_t j = 0; j <= t; ++j)
        if (kSegments[j] == kSegments[t]) z += std::exp(s[j] - mx);
      for (int64_t j = 0; j <= t; ++j) {
        if (kSegments[j] != kSegments[t]) continue;
        for (int64_t i = 0; i < kD; ++i)
          a[(t * kH + h) * kD + i] += std::exp(s[j] - mx) / z * v[(j * kHkv + g) * kD + i];
      }
    }
  }
  const Vec o = lin64(a, p[kWo], nullptr, kH * kD, kC);
  Vec x2(x.size());
  for (size_t i = 0; i < x.size(); ++i) x2[i] = x[i] + o[i];
  const Vec h2 = rms64(x2, p[kLn2]);
  const Vec gate = lin64(h2, p[kWg], nullptr, kC, kF), up = lin64(h2, p[kWu], nullptr, kC, kF);
  Vec m(gate.size());
  for (size_t i = 0; i < m.size(); ++i) m[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
  const Vec d = lin64(m, p[kWd], nullptr, kF, kC);
  Vec y(x.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = x2[i] + d[i];
  return y;
}

TensorView mat(std::vector<float>& v, int64_t rows, int64_t cols) {
  return f32_view(v.data(), {rows, cols});
}

TEST(TrainBlock, DecoderBlockGradCheck) {
  std::mt19937 rng(81);
  std::vector<std::vector<float>> p(kParamCount), dp(kParamCount);
  for (int i = 0; i < kParamCount; ++i) {
    const bool norm = i == kLn1 || i == kLn2;
    p[i] = norm ? random_vector(kParamSize[i], rng, 0.8f, 1.2f)
                : random_vector(kParamSize[i], rng, -0.5f, 0.5f);
    dp[i].assign(static_cast<size_t>(kParamSize[i]), 0.0f);
  }
  std::vector<float> x = random_vector(kT * kC, rng), r = random_vector(kT * kC, rng);
  const int64_t qd = kH * kD, kvd = kHkv * kD;
  const LinearPrecision fp32 = precision_preset("fp32").value();
  auto lp = [&](Param w, int64_t out, int64_t in, int b = -1) {
    return LinearParams{mat(p[w], out, in), b < 0 ? TensorView() : f32_view(p[b].data(), {out})};
  };
  auto lg = [&](Param w, int64_t out, int64_t in, int b = -1) {
    return LinearGrads{mat(dp[w], out, in), b < 0 ? TensorView() : f32_view(dp[b].data(), {out})};
  };
  auto buf = [](int64_t n) { return std::vector<float>(static_cast<size_t>(n)); };

  // ---- forward ----
  std::vector<int64_t> pos(kT);
  ASSERT_TRUE(positions_from_segments(kSegments.data(), kT, pos.data()).ok());
  RopeTables rope;
  ASSERT_TRUE(rope_tables(&rope, pos.data(), kT, kD, kTheta).ok());
  std::vector<float> h1 = buf(kT * kC), q = buf(kT * qd), k = buf(kT * kvd), v = buf(kT * kvd),
                     a = buf(kT * qd), o = buf(kT * kC), x2 = buf(kT * kC), h2 = buf(kT * kC),
                     g = buf(kT * kF), u = buf(kT * kF), m = buf(kT * kF), d = buf(kT * kC),
                     y = buf(kT * kC);
  RmsNormSaved n1, n2;
  AttentionSaved att;
  ASSERT_TRUE(
      rms_norm_forward(mat(h1, kT, kC), mat(x, kT, kC), f32_view(p[kLn1].data(), {kC}), kEps, &n1)
          .ok());
  ASSERT_TRUE(
      linear_forward(mat(q, kT, qd), mat(h1, kT, kC), lp(kWq, qd, kC, kBq), fp32.forward).ok());
  ASSERT_TRUE(
      linear_forward(mat(k, kT, kvd), mat(h1, kT, kC), lp(kWk, kvd, kC, kBk), fp32.forward).ok());
  ASSERT_TRUE(
      linear_forward(mat(v, kT, kvd), mat(h1, kT, kC), lp(kWv, kvd, kC, kBv), fp32.forward).ok());
  const Shape qs{kT, kH, kD}, ks{kT, kHkv, kD};
  ASSERT_TRUE(rope_forward(f32_view(q.data(), qs), rope).ok());
  ASSERT_TRUE(rope_forward(f32_view(k.data(), ks), rope).ok());
  ASSERT_TRUE(attention_forward(f32_view(a.data(), qs), f32_view(q.data(), qs),
                                f32_view(k.data(), ks), f32_view(v.data(), ks), kSegments.data(),
                                AttentionMask::kCausal, 1.0f / std::sqrt(static_cast<float>(kD)),
                                &att)
                  .ok());
  ASSERT_TRUE(linear_forward(mat(o, kT, kC), mat(a, kT, qd), lp(kWo, kC, qd), fp32.forward).ok());
  ASSERT_TRUE(add_forward(mat(x2, kT, kC), mat(x, kT, kC), mat(o, kT, kC)).ok());
  ASSERT_TRUE(
      rms_norm_forward(mat(h2, kT, kC), mat(x2, kT, kC), f32_view(p[kLn2].data(), {kC}), kEps, &n2)
          .ok());
  ASSERT_TRUE(linear_forward(mat(g, kT, kF), mat(h2, kT, kC), lp(kWg, kF, kC), fp32.forward).ok());
  ASSERT_TRUE(linear_forward(mat(u, kT, kF), mat(h2, kT, kC), lp(kWu, kF, kC), fp32.forward).ok());
  ASSERT_TRUE(silu_gate_forward(mat(m, kT, kF), mat(g, kT, kF), mat(u, kT, kF)).ok());
  ASSERT_TRUE(linear_forward(mat(d, kT, kC), mat(m, kT, kF), lp(kWd, kC, kF), fp32.forward).ok());
  ASSERT_TRUE(add_forward(mat(y, kT, kC), mat(x2, kT, kC), mat(d, kT, kC)).ok());

  // ---- backward, dy = r ----
  std::vector<float> dx2 = r, dd = buf(kT * kC), dm = buf(kT * kF), dg = buf(kT * kF),
                     du = buf(kT * kF), dh2 = buf(kT * kC), tmp = buf(kT * kC), da = buf(kT * qd),
                     dq = buf(kT * qd), dk = buf(kT * kvd), dv = buf(kT * kvd), dh1 = buf(kT * kC),
                     dx = buf(kT * kC);
  ASSERT_TRUE(add_backward({}, mat(dd, kT, kC), mat(r, kT, kC)).ok());  // dx2 = dy already
  ASSERT_TRUE(linear_backward(mat(dm, kT, kF), lg(kWd, kC, kF), mat(dd, kT, kC), mat(m, kT, kF),
                              lp(kWd, kC, kF), fp32)
                  .ok());
  ASSERT_TRUE(silu_gate_backward(mat(dg, kT, kF), mat(du, kT, kF), mat(dm, kT, kF), mat(g, kT, kF),
                                 mat(u, kT, kF))
                  .ok());
  ASSERT_TRUE(linear_backward(mat(dh2, kT, kC), lg(kWg, kF, kC), mat(dg, kT, kF), mat(h2, kT, kC),
                              lp(kWg, kF, kC), fp32)
                  .ok());
  ASSERT_TRUE(linear_backward(mat(tmp, kT, kC), lg(kWu, kF, kC), mat(du, kT, kF), mat(h2, kT, kC),
                              lp(kWu, kF, kC), fp32)
                  .ok());
  ASSERT_TRUE(accumulate_grad(mat(dh2, kT, kC), mat(tmp, kT, kC)).ok());
  ASSERT_TRUE(rms_norm_backward(mat(tmp, kT, kC), {f32_view(dp[kLn2].data(), {kC}), {}},
                                mat(dh2, kT, kC), mat(x2, kT, kC), f32_view(p[kLn2].data(), {kC}),
                                n2)
                  .ok());
  ASSERT_TRUE(accumulate_grad(mat(dx2, kT, kC), mat(tmp, kT, kC)).ok());
  ASSERT_TRUE(linear_backward(mat(da, kT, qd), lg(kWo, kC, qd), mat(dx2, kT, kC), mat(a, kT, qd),
                              lp(kWo, kC, qd), fp32)
                  .ok());
  ASSERT_TRUE(attention_backward(f32_view(dq.data(), qs), f32_view(dk.data(), ks),
                                 f32_view(dv.data(), ks), f32_view(da.data(), qs),
                                 f32_view(q.data(), qs), f32_view(k.data(), ks),
                                 f32_view(v.data(), ks), att)
                  .ok());
  ASSERT_TRUE(rope_backward(f32_view(dq.data(), qs), rope).ok());
  ASSERT_TRUE(rope_backward(f32_view(dk.data(), ks), rope).ok());
  ASSERT_TRUE(linear_backward(mat(dh1, kT, kC), lg(kWq, qd, kC, kBq), mat(dq, kT, qd),
                              mat(h1, kT, kC), lp(kWq, qd, kC, kBq), fp32)
                  .ok());
  for (auto [w, b, dsrc] : {std::tuple{kWk, kBk, &dk}, std::tuple{kWv, kBv, &dv}}) {
    ASSERT_TRUE(linear_backward(mat(tmp, kT, kC), lg(w, kvd, kC, b), mat(*dsrc, kT, kvd),
                                mat(h1, kT, kC), lp(w, kvd, kC, b), fp32)
                    .ok());
    ASSERT_TRUE(accumulate_grad(mat(dh1, kT, kC), mat(tmp, kT, kC)).ok());
  }
  ASSERT_TRUE(rms_norm_backward(mat(dx, kT, kC), {f32_view(dp[kLn1].data(), {kC}), {}},
                                mat(dh1, kT, kC), mat(x, kT, kC), f32_view(p[kLn1].data(), {kC}),
                                n1)
                  .ok());
  ASSERT_TRUE(accumulate_grad(mat(dx, kT, kC), mat(dx2, kT, kC)).ok());

  // ---- float64 check ----
  Vec x64 = to_f64(x);
  std::vector<Vec> p64(kParamCount);
  for (int i = 0; i < kParamCount; ++i) p64[i] = to_f64(p[i]);
  auto loss = [&] { return project(block64(x64, p64, pos), r); };
  EXPECT_LT(testing::max_abs_diff(y, block64(x64, p64, pos)), 1e-5);
  EXPECT_TRUE(gradients_match(dx, numeric_gradient(x64, loss))) << "dx";
  for (int i = 0; i < kParamCount; ++i) {
    EXPECT_TRUE(gradients_match(dp[i], numeric_gradient(p64[i], loss))) << "param " << i;
  }
}

}  // namespace
}  // namespace vila::train
