// Patch embedding and the projector's spatial-to-channel downsample: finite-difference
// gradients against float64 references and equality with the inference code.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "gradcheck.h"
#include "model/projector.h"
#include "ops/cpu/patch_embed.h"
#include "train/downsample.h"
#include "train/patch_embed.h"

namespace vila::train {
namespace {

using testing::gradients_match;
using testing::numeric_gradient;
using testing::project;
using testing::random_vector;
using testing::to_f64;

struct PatchCase {
  int64_t n, cin, hp, wp, c, p;
};

// Direct strided convolution in float64: out (N, gh·gw, C).
std::vector<double> patch_embed_f64(const std::vector<double>& px, const std::vector<double>& w,
                                    const std::vector<double>& b, const PatchCase& pc) {
  const int64_t gh = pc.hp / pc.p, gw = pc.wp / pc.p;
  std::vector<double> out(static_cast<size_t>(pc.n * gh * gw * pc.c));
  for (int64_t img = 0; img < pc.n; ++img)
    for (int64_t py = 0; py < gh; ++py)
      for (int64_t pxx = 0; pxx < gw; ++pxx)
        for (int64_t co = 0; co < pc.c; ++co) {
          double s = b[co];
          for (int64_t ci = 0; ci < pc.cin; ++ci)
            for (int64_t ky = 0; ky < pc.p; ++ky)
              for (int64_t kx = 0; kx < pc.p; ++kx) {
                const int64_t yy = py * pc.p + ky, xx = pxx * pc.p + kx;
                s += w[((co * pc.cin + ci) * pc.p + ky) * pc.p + kx] *
                     px[((img * pc.cin + ci) * pc.hp + yy) * pc.wp + xx];
              }
          out[((img * gh + py) * gw + pxx) * pc.c + co] = s;
        }
  return out;
}

TEST(TrainPatchEmbed, GradCheckAndForwardEqualsInference) {
  std::mt19937 rng(41);
  // 7 x 10 pixels with p = 3: a trailing row and column that no patch covers.
  for (const PatchCase& pc : {PatchCase{2, 3, 7, 10, 4, 3}, PatchCase{1, 1, 4, 4, 5, 2}}) {
    SCOPED_TRACE(::testing::Message() << pc.hp << " x " << pc.wp << " p " << pc.p);
    const Shape pxs{pc.n, pc.cin, pc.hp, pc.wp}, ws{pc.c, pc.cin, pc.p, pc.p};
    const int64_t n_patch = (pc.hp / pc.p) * (pc.wp / pc.p);
    const Shape outs{pc.n, n_patch, pc.c};
    std::vector<float> px = random_vector(pxs.numel(), rng), w = random_vector(ws.numel(), rng),
                       b = random_vector(pc.c, rng), r = random_vector(outs.numel(), rng);
    std::vector<float> out(static_cast<size_t>(outs.numel())), ref(out.size());
    ASSERT_TRUE(patch_embed_forward(f32_view(out.data(), outs), f32_view(px.data(), pxs),
                                    f32_view(w.data(), ws), f32_view(b.data(), {pc.c}))
                    .ok());
    ASSERT_TRUE(cpu::patch_embed(f32_view(ref.data(), outs), f32_view(px.data(), pxs),
                                 f32_view(w.data(), ws), f32_view(b.data(), {pc.c}))
                    .ok());
    EXPECT_EQ(out, ref);
    std::vector<float> dpx(px.size(), 9.0f), dw(w.size(), 0.0f), db(b.size(), 0.0f);
    ASSERT_TRUE(patch_embed_backward(f32_view(dpx.data(), pxs),
                                     {f32_view(dw.data(), ws), f32_view(db.data(), {pc.c})},
                                     f32_view(r.data(), outs), f32_view(px.data(), pxs),
                                     f32_view(w.data(), ws))
                    .ok());
    std::vector<double> px64 = to_f64(px), w64 = to_f64(w), b64 = to_f64(b);
    auto loss = [&] { return project(patch_embed_f64(px64, w64, b64, pc), r); };
    EXPECT_LT(testing::max_abs_diff(out, patch_embed_f64(px64, w64, b64, pc)), 1e-5);
    EXPECT_TRUE(gradients_match(dpx, numeric_gradient(px64, loss))) << "dpixels";
    EXPECT_TRUE(gradients_match(dw, numeric_gradient(w64, loss))) << "dW";
    EXPECT_TRUE(gradients_match(db, numeric_gradient(b64, loss))) << "db";
  }
}

// Independent float64 spatial-to-channel: for every output element, find its source pixel.
std::vector<double> stc_f64(const std::vector<double>& x, int64_t items, int64_t s, int64_t c,
                            int64_t k) {
  const int64_t g = (s + k - 1) / k, width = k * k * c;
  std::vector<double> out(static_cast<size_t>(items * g * g * width), 0.0);
  for (int64_t it = 0; it < items; ++it)
    for (int64_t tok = 0; tok < g * g; ++tok)
      for (int64_t e = 0; e < width; ++e) {
        const int64_t sub = e / c, ch = e % c;  // sub = dr·k + dc
        const int64_t row = (tok / g) * k + sub / k, col = (tok % g) * k + sub % k;
        if (row < s && col < s) {
          out[(it * g * g + tok) * width + e] = x[((it * s + row) * s + col) * c + ch];
        }
      }
  return out;
}

TEST(TrainDownsample, GradCheckAndForwardEqualsProjectorCode) {
  std::mt19937 rng(42);
  struct Case {
    int64_t items, side, c, k;
  };
  // 5 x 5 with k = 2 and 4 x 4 with k = 3 pad; 6 x 6 with k = 3 does not.
  for (const Case& tc : {Case{2, 5, 3, 2}, Case{1, 4, 2, 3}, Case{1, 6, 1, 3}}) {
    SCOPED_TRACE(::testing::Message() << tc.side << " x " << tc.side << " k " << tc.k);
    const int64_t g_tokens = spatial_to_channel_tokens(tc.side, tc.k);
    const Shape xs{tc.items, tc.side * tc.side, tc.c}, outs{tc.items, g_tokens, tc.k * tc.k * tc.c};
    std::vector<float> x = random_vector(xs.numel(), rng), r = random_vector(outs.numel(), rng);
    std::vector<float> out(static_cast<size_t>(outs.numel()), 5.0f), dx(x.size(), 5.0f);
    ASSERT_TRUE(
        spatial_to_channel_forward(f32_view(out.data(), outs), f32_view(x.data(), xs), tc.k).ok());
    std::vector<float> ref(out.size());
    for (int64_t it = 0; it < tc.items; ++it) {  // the projector's own function, item by item
      spatial_to_channel(x.data() + it * xs[1] * tc.c, tc.side, tc.c, tc.k,
                         ref.data() + it * outs[1] * outs[2]);
    }
    EXPECT_EQ(out, ref);
    ASSERT_TRUE(
        spatial_to_channel_backward(f32_view(dx.data(), xs), f32_view(r.data(), outs), tc.k).ok());
    std::vector<double> x64 = to_f64(x);
    auto loss = [&] { return project(stc_f64(x64, tc.items, tc.side, tc.c, tc.k), r); };
    EXPECT_EQ(testing::max_abs_diff(out, stc_f64(x64, tc.items, tc.side, tc.c, tc.k)), 0.0);
    EXPECT_TRUE(gradients_match(dx, numeric_gradient(x64, loss)));
  }
  std::vector<float> buf(64);
  const Status s = spatial_to_channel_forward(f32_view(buf.data(), {1, 4, 12}),
                                              f32_view(buf.data(), {1, 5, 3}), 2);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("square"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace vila::train
