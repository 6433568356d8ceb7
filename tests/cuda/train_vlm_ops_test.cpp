// The VLM training kernels (backend/cuda/train_vlm_ops.h) against the CPU training ops: LayerNorm
// forward / backward (train/norm.h), GELU (train/activation.h), patch im2col (as the operand of
// train/patch_embed.h), position embeddings and column sums (host loops), spatial-to-channel
// (train/downsample.h) and the media splice (train/media_splice.h). Random inputs, odd shapes,
// outputs poisoned with 0xff bytes (NaN) first. bf16 outputs: within 1e-2 relative (plus a tiny
// absolute floor) of the fp32 oracle; fp32 outputs: within 1e-4 of max(|ref|, rms(ref)); copies
// bit-exact. Skips cleanly without a CUDA build or a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "cuda_test_util.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/memory.h"
#include "backend/cuda/train_ops.h"
#include "backend/cuda/train_vlm_ops.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "train/activation.h"
#include "train/downsample.h"
#include "train/media_splice.h"
#include "train/norm.h"
#include "train/patch_embed.h"
#endif

namespace vila {
namespace {

#ifdef VILA_WITH_CUDA

using testing::download;
using testing::poisoned;
using testing::upload;

constexpr double kF32Tol = 1e-4;   // fp32 outputs, relative to max(|ref|, rms(ref))
constexpr double kBf16Rel = 1e-2;  // bf16 outputs: relative ...
constexpr double kBf16Abs = 1e-5;  // ... plus this absolute floor (values near 0)
std::vector<float> normal(std::mt19937& rng, int64_t n, float mean = 0.0f, float sd = 1.0f) {
  std::normal_distribution<float> dist(mean, sd);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
  return out;
}

std::vector<float> from_bf16(const std::vector<uint16_t>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = bf16_to_f32(v[i]);
  return out;
}

// max_i |got_i - ref_i| / max(|ref_i|, rms(ref)); NaN counts as infinite.
double scaled_err(const std::vector<float>& got, const std::vector<float>& ref) {
  double ss = 0.0;
  for (float r : ref) ss += static_cast<double>(r) * r;
  const double rms = std::sqrt(ss / static_cast<double>(std::max<size_t>(ref.size(), 1)));
  double worst = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = std::fabs(static_cast<double>(got[i]) - ref[i]) /
                     std::max({std::fabs(static_cast<double>(ref[i])), rms, 1e-30});
    if (!(e <= worst)) worst = std::isnan(e) ? INFINITY : e;
  }
  return worst;
}

// Elements of a bf16 result farther than kBf16Rel |ref| + kBf16Abs from the fp32 oracle.
int64_t bf16_misses(const std::vector<uint16_t>& got, const std::vector<float>& ref) {
  int64_t misses = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(static_cast<double>(bf16_to_f32(got[i])) - ref[i]);
    if (!(d <= kBf16Rel * std::fabs(ref[i]) + kBf16Abs)) ++misses;
  }
  return misses;
}

TensorView view(std::vector<float>& v, Shape shape) { return f32_view(v.data(), shape); }

void expect_ok(const Status& s) { ASSERT_TRUE(s.ok()) << s.to_string(); }

TEST(TrainVlmOpsTest, LayerNormForwardMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(1);
  const float eps = 1e-6f;
  int index = 0;
  double worst_stat = 0.0;
  for (int64_t cols : {8, 24, 96, 1152, 1153}) {
    for (int64_t rows : {1, 7, 300}) {
      const bool bias = index++ % 2 == 0;
      auto x = normal(rng, rows * cols, 0.5f, 2.0f);  // (R, C)
      auto w = normal(rng, cols, 1.0f, 0.2f);         // (C)
      auto b = normal(rng, cols, 0.0f, 0.5f);         // (C)
      std::vector<float> y(x.size());                 // (R, C) oracle
      train::LayerNormSaved saved;
      expect_ok(train::layer_norm_forward(view(y, {rows, cols}), view(x, {rows, cols}),
                                          view(w, {cols}), bias ? view(b, {cols}) : TensorView{},
                                          eps, &saved));
      cuda::DeviceBuffer dx = upload(x), dw = upload(w), db = upload(b);
      cuda::DeviceBuffer dy = poisoned(x.size() * 2), dmean = poisoned(rows * 4),
                         drstd = poisoned(rows * 4);
      expect_ok(cuda::train_layer_norm_forward(
          dy.data(), dmean.as<float>(), drstd.as<float>(), dx.as<float>(), dw.as<float>(),
          bias ? db.as<float>() : nullptr, rows, cols, eps, nullptr));
      EXPECT_EQ(bf16_misses(download<uint16_t>(dy, y.size()), y), 0) << rows << "x" << cols;
      const double e = std::max(scaled_err(download<float>(dmean, rows), saved.mean),
                                scaled_err(download<float>(drstd, rows), saved.rstd));
      EXPECT_LE(e, kF32Tol) << rows << "x" << cols;
      worst_stat = std::max(worst_stat, e);
    }
  }
  std::printf("[ vlmops ] layer norm forward: worst mean/rstd err %.3g\n", worst_stat);
}

// Modes: 0 dx written + dw, db; 1 dx accumulated + dw, db; 2 dx only (frozen); 3 dw only.
TEST(TrainVlmOpsTest, LayerNormBackwardMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(2);
  const float eps = 1e-6f;
  double worst = 0.0;
  for (int64_t cols : {8, 24, 96, 1152, 1153}) {
    for (int64_t rows : {1, 7, 300}) {
      auto x = normal(rng, rows * cols, -0.3f, 1.5f);  // (R, C)
      auto w = normal(rng, cols, 1.0f, 0.2f);          // (C)
      auto g = normal(rng, rows * cols);               // dy (R, C)
      std::vector<float> y(x.size());
      train::LayerNormSaved saved;
      expect_ok(train::layer_norm_forward(view(y, {rows, cols}), view(x, {rows, cols}),
                                          view(w, {cols}), {}, eps, &saved));
      cuda::DeviceBuffer dx_in = upload(x), dw_in = upload(w), ddy = upload(g);
      cuda::DeviceBuffer dmean = upload(saved.mean), drstd = upload(saved.rstd);
      for (int mode = 0; mode < 4; ++mode) {
        const bool want_dx = mode != 3, accumulate = mode == 1, want_dw = mode != 2,
                   want_db = mode < 2;
        auto dx0 = normal(rng, rows * cols);  // (R, C) accumulated onto in mode 1
        auto dw0 = normal(rng, cols), db0 = normal(rng, cols);
        std::vector<float> dx_ref(x.size()), dw_ref = dw0, db_ref = db0;
        train::NormGrads grads{want_dw ? view(dw_ref, {cols}) : TensorView{},
                               want_db ? view(db_ref, {cols}) : TensorView{}};
        expect_ok(train::layer_norm_backward(want_dx ? view(dx_ref, {rows, cols}) : TensorView{},
                                             grads, view(g, {rows, cols}), view(x, {rows, cols}),
                                             view(w, {cols}), saved));
        if (accumulate) {
          for (size_t i = 0; i < dx_ref.size(); ++i) dx_ref[i] += dx0[i];
        }
        cuda::DeviceBuffer ddx = accumulate ? upload(dx0) : poisoned(x.size() * 4);
        cuda::DeviceBuffer ddw = upload(dw0), ddb = upload(db0);
        expect_ok(cuda::train_layer_norm_backward(
            want_dx ? ddx.as<float>() : nullptr, want_dw ? ddw.as<float>() : nullptr,
            want_db ? ddb.as<float>() : nullptr, ddy.as<float>(), dx_in.as<float>(),
            dw_in.as<float>(), dmean.as<float>(), drstd.as<float>(), rows, cols, accumulate,
            nullptr));
        const auto where = ::testing::Message() << rows << "x" << cols << " mode " << mode;
        double e = 0.0;
        if (want_dx) e = std::max(e, scaled_err(download<float>(ddx, x.size()), dx_ref));
        e = std::max(e, scaled_err(download<float>(ddw, cols), dw_ref));  // dw0 if frozen
        e = std::max(e, scaled_err(download<float>(ddb, cols), db_ref));
        EXPECT_LE(e, kF32Tol) << where;
        worst = std::max(worst, e);
      }
    }
  }
  std::printf("[ vlmops ] layer norm backward: worst dx/dw/db err %.3g\n", worst);
}

TEST(TrainVlmOpsTest, GeluMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  for (const auto kind : {cuda::TrainGelu::kTanh, cuda::TrainGelu::kErf}) {
    const auto approx =
        kind == cuda::TrainGelu::kTanh ? train::GeluApprox::kTanh : train::GeluApprox::kErf;
    for (int64_t n : {1, 1000, 12347}) {
      const auto xb = to_bf16(normal(rng, n, 0.0f, 3.0f)), gb = to_bf16(normal(rng, n));
      auto xf = from_bf16(xb), gf = from_bf16(gb);  // (n) oracle inputs: the bf16 values
      std::vector<float> y_ref(xf.size()), dx_ref(xf.size());
      expect_ok(train::gelu_forward(view(y_ref, {1, n}), view(xf, {1, n}), approx));
      expect_ok(
          train::gelu_backward(view(dx_ref, {1, n}), view(gf, {1, n}), view(xf, {1, n}), approx));
      cuda::DeviceBuffer dx_in = upload(xb), ddy = upload(gb);
      cuda::DeviceBuffer dy_out = poisoned(n * 2), ddx = poisoned(n * 2);
      expect_ok(cuda::train_gelu_forward(dy_out.data(), dx_in.data(), n, kind, nullptr));
      expect_ok(cuda::train_gelu_backward(ddx.data(), ddy.data(), dx_in.data(), n, kind, nullptr));
      const auto where = ::testing::Message()
                         << "n " << n << " tanh " << (kind == cuda::TrainGelu::kTanh);
      EXPECT_EQ(bf16_misses(download<uint16_t>(dy_out, n), y_ref), 0) << where;
      const auto dx = download<uint16_t>(ddx, n);
      EXPECT_EQ(bf16_misses(dx, dx_ref), 0) << where;
      // In place (dx aliases dy): the same bits.
      expect_ok(cuda::train_gelu_backward(ddy.data(), ddy.data(), dx_in.data(), n, kind, nullptr));
      EXPECT_EQ(download<uint16_t>(ddy, n), dx) << where;
    }
  }
}

// Rows of cols are patches (i, py, px), columns (c, ky, kx): bit-exact against a host gather, and
// cols · Wᵀ against train::patch_embed_forward (fp32 conv) within bf16 rounding.
TEST(TrainVlmOpsTest, PatchIm2colIsThePatchEmbedOperand) {
  VILA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(4);
  struct Case {
    int64_t n, cin, s, p;
  };
  constexpr int64_t kOutChannels = 16;
  for (const Case cs : {Case{2, 3, 28, 7}, {2, 3, 8, 2}, {2, 3, 448, 14}, {3, 1, 30, 7}}) {
    const int64_t grid = cs.s / cs.p, n_patch = grid * grid, k = cs.cin * cs.p * cs.p;
    auto pixels = normal(rng, cs.n * cs.cin * cs.s * cs.s);    // (N, Cin, S, S)
    auto weight = normal(rng, kOutChannels * k, 0.0f, 0.05f);  // (C, Cin, p, p)
    cuda::DeviceBuffer dpix = upload(pixels), dcols = poisoned(cs.n * n_patch * k * 2);
    expect_ok(cuda::train_patch_im2col(dcols.data(), dpix.as<float>(), cs.n, cs.cin, cs.s, cs.p,
                                       nullptr));
    const auto cols = download<uint16_t>(dcols, cs.n * n_patch * k);  // (N·P, K) bf16
    int64_t wrong = 0;
    for (int64_t row = 0; row < cs.n * n_patch; ++row) {
      const int64_t img = row / n_patch, py = row % n_patch / grid, px = row % grid;
      for (int64_t col = 0; col < k; ++col) {
        const int64_t c = col / (cs.p * cs.p), ky = col / cs.p % cs.p, kx = col % cs.p;
        const float v =
            pixels[((img * cs.cin + c) * cs.s + py * cs.p + ky) * cs.s + px * cs.p + kx];
        if (cols[row * k + col] != f32_to_bf16(v)) ++wrong;
      }
    }
    EXPECT_EQ(wrong, 0) << "S " << cs.s << " p " << cs.p;
    std::vector<float> emb_ref(cs.n * n_patch * kOutChannels);  // (N, P, C) oracle
    expect_ok(train::patch_embed_forward(view(emb_ref, {cs.n, n_patch, kOutChannels}),
                                         view(pixels, {cs.n, cs.cin, cs.s, cs.s}),
                                         view(weight, {kOutChannels, cs.cin, cs.p, cs.p}), {}));
    double num = 0.0, den = 0.0;
    for (int64_t row = 0; row < cs.n * n_patch; ++row) {
      for (int64_t o = 0; o < kOutChannels; ++o) {
        double s = 0.0;
        for (int64_t col = 0; col < k; ++col) {
          s += static_cast<double>(bf16_to_f32(cols[row * k + col])) * weight[o * k + col];
        }
        const double r = emb_ref[row * kOutChannels + o];
        num += (s - r) * (s - r);
        den += r * r;
      }
    }
    EXPECT_LE(std::sqrt(num / den), kBf16Rel) << "S " << cs.s << " p " << cs.p;
  }
}

TEST(TrainVlmOpsTest, PositionAddAndBackwardMatchHost) {
  VILA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(5);
  struct Case {
    int64_t n, p, c;
  };
  for (const Case cs : {Case{1, 7, 3}, {3, 49, 24}, {2, 1024, 1152}}) {
    const int64_t per_image = cs.p * cs.c;
    auto x = normal(rng, cs.n * per_image);  // (N, P, C)
    auto pos = normal(rng, per_image);       // (P, C)
    auto dpos0 = normal(rng, per_image);     // (P, C) accumulated onto
    std::vector<float> x_ref = x, dpos_ref = dpos0;
    for (int64_t e = 0; e < per_image; ++e) {
      float s = 0.0f;
      for (int64_t i = 0; i < cs.n; ++i) {
        x_ref[i * per_image + e] += pos[e];
        s += x[i * per_image + e];  // dx: the same values, reused
      }
      dpos_ref[e] += s;
    }
    cuda::DeviceBuffer dx = upload(x), dpos = upload(pos), dgrad = upload(x), ddpos = upload(dpos0);
    expect_ok(
        cuda::train_add_position(dx.as<float>(), dpos.as<float>(), cs.n, cs.p, cs.c, nullptr));
    expect_ok(cuda::train_position_backward(ddpos.as<float>(), dgrad.as<float>(), cs.n, cs.p, cs.c,
                                            nullptr));
    EXPECT_EQ(download<float>(dx, x.size()), x_ref) << cs.n << "x" << cs.p << "x" << cs.c;
    EXPECT_LE(scaled_err(download<float>(ddpos, per_image), dpos_ref), 1e-6);
  }
}

TEST(TrainVlmOpsTest, ColumnSumsMatchHost) {
  VILA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(6);
  double worst = 0.0;
  for (int64_t rows : {1, 7, 300, 2000}) {  // 2000: several row chunks (atomicAdd)
    for (int64_t n : {1, 33, 1152}) {
      auto in = normal(rng, rows * n);  // (R, N)
      auto out0 = normal(rng, n);       // (N) accumulated onto
      std::vector<float> ref(out0.size());
      for (int64_t c = 0; c < n; ++c) {
        double s = out0[c];
        for (int64_t r = 0; r < rows; ++r) s += in[r * n + c];
        ref[c] = static_cast<float>(s);
      }
      cuda::DeviceBuffer din = upload(in), dout = upload(out0);
      expect_ok(
          cuda::train_column_sum_add_f32(dout.as<float>(), din.as<float>(), rows, n, nullptr));
      const double e = scaled_err(download<float>(dout, n), ref);
      EXPECT_LE(e, kF32Tol) << rows << "x" << n;
      worst = std::max(worst, e);
      // The bf16 form (bias gradients from bf16 dy): the same sums of the rounded inputs.
      const std::vector<uint16_t> in16 = to_bf16(in);
      std::vector<float> ref16(out0.size());
      for (int64_t c = 0; c < n; ++c) {
        double s = out0[c];
        for (int64_t r = 0; r < rows; ++r) s += bf16_to_f32(in16[r * n + c]);
        ref16[c] = static_cast<float>(s);
      }
      cuda::DeviceBuffer din16 = upload(in16), dout16 = upload(out0);
      expect_ok(cuda::train_column_sum_add(dout16.as<float>(), din16.data(), rows, n, nullptr));
      EXPECT_LE(scaled_err(download<float>(dout16, n), ref16), kF32Tol) << rows << "x" << n;
    }
  }
  std::printf("[ vlmops ] column sum: worst err %.3g\n", worst);
}

TEST(TrainVlmOpsTest, SpaceToChannelMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(7);
  constexpr int64_t kItems = 2;
  for (int64_t s : {4, 5, 7, 32}) {
    for (int64_t k : {2, 3}) {
      for (int64_t c : {3, 24}) {
        const int64_t g = (s + k - 1) / k, out_cols = k * k * c;
        auto x = normal(rng, kItems * s * s * c);            // (items, s², C)
        auto dout = normal(rng, kItems * g * g * out_cols);  // (items, g², k²C)
        std::vector<float> out_ref(dout.size()), dx_ref(x.size());
        expect_ok(train::spatial_to_channel_forward(view(out_ref, {kItems, g * g, out_cols}),
                                                    view(x, {kItems, s * s, c}), k));
        expect_ok(train::spatial_to_channel_backward(view(dx_ref, {kItems, s * s, c}),
                                                     view(dout, {kItems, g * g, out_cols}), k));
        cuda::DeviceBuffer dx_in = upload(x), ddout = upload(dout);
        cuda::DeviceBuffer dout_gpu = poisoned(dout.size() * 4), ddx = poisoned(x.size() * 4);
        expect_ok(cuda::train_space_to_channel(dout_gpu.as<float>(), dx_in.as<float>(), kItems, s,
                                               c, k, nullptr));
        expect_ok(cuda::train_space_to_channel_backward(ddx.as<float>(), ddout.as<float>(), kItems,
                                                        s, c, k, nullptr));
        EXPECT_EQ(download<float>(dout_gpu, dout.size()), out_ref) << s << " " << k << " " << c;
        EXPECT_EQ(download<float>(ddx, x.size()), dx_ref) << s << " " << k << " " << c;
      }
    }
  }
}

TEST(TrainVlmOpsTest, SpliceRowsMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(8);
  constexpr int64_t kTokens = 50, kFeatures = 13;
  for (int64_t c : {24, 1153}) {
    std::vector<int64_t> perm(kTokens);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    const std::vector<int64_t> rows64(perm.begin(), perm.begin() + kFeatures);
    const std::vector<int32_t> rows32(rows64.begin(), rows64.end());
    auto x = normal(rng, kTokens * c);        // (T, C)
    auto feats = normal(rng, kFeatures * c);  // (n, C)
    auto dx = normal(rng, kTokens * c);       // (T, C)
    std::vector<float> x_ref = x, dx_ref = dx, dfeats_ref(feats.size());
    expect_ok(train::media_splice_forward(view(x_ref, {kTokens, c}), view(feats, {kFeatures, c}),
                                          rows64.data(), kFeatures));
    expect_ok(train::media_splice_backward(view(dfeats_ref, {kFeatures, c}),
                                           view(dx_ref, {kTokens, c}), rows64.data(), kFeatures));
    cuda::DeviceBuffer dx_gpu = upload(x), dfeats_in = upload(feats), drows = upload(rows32);
    cuda::DeviceBuffer ddx = upload(dx), ddfeats = poisoned(feats.size() * 4);
    expect_ok(cuda::train_splice_rows(dx_gpu.as<float>(), dfeats_in.as<float>(),
                                      drows.as<int32_t>(), kFeatures, c, nullptr));
    expect_ok(cuda::train_splice_rows_backward(ddfeats.as<float>(), ddx.as<float>(),
                                               drows.as<int32_t>(), kFeatures, c, nullptr));
    EXPECT_EQ(download<float>(dx_gpu, x.size()), x_ref) << "C " << c;
    EXPECT_EQ(download<float>(ddfeats, feats.size()), dfeats_ref) << "C " << c;
    EXPECT_EQ(download<float>(ddx, dx.size()), dx_ref) << "C " << c;
    // No images: a no-op.
    expect_ok(cuda::train_splice_rows(dx_gpu.as<float>(), nullptr, nullptr, 0, c, nullptr));
  }
}

// Bad arguments are refused before any launch (no GPU needed).
TEST(TrainVlmOpsTest, BadArgumentsAreInvalid) {
  float f = 0.0f;
  const auto invalid = [](const Status& s) { return s.code() == StatusCode::kInvalidArgument; };
  EXPECT_TRUE(invalid(cuda::train_gelu_forward(&f, &f, -1, cuda::TrainGelu::kErf, nullptr)));
  EXPECT_TRUE(
      invalid(cuda::train_gelu_backward(nullptr, &f, &f, 4, cuda::TrainGelu::kTanh, nullptr)));
  EXPECT_TRUE(
      invalid(cuda::train_layer_norm_forward(&f, &f, &f, &f, &f, nullptr, 2, 0, 1e-6f, nullptr)));
  EXPECT_TRUE(invalid(
      cuda::train_layer_norm_backward(&f, &f, &f, &f, &f, &f, &f, &f, 2, 16385, false, nullptr)));
  EXPECT_TRUE(invalid(cuda::train_patch_im2col(&f, &f, 1, 3, 13, 14, nullptr)));
  EXPECT_TRUE(invalid(cuda::train_space_to_channel(&f, &f, 1, 4, 3, 0, nullptr)));
  EXPECT_TRUE(invalid(cuda::train_column_sum_add_f32(&f, nullptr, 3, 3, nullptr)));
  EXPECT_TRUE(invalid(cuda::train_splice_rows(&f, &f, nullptr, 2, 3, nullptr)));
}

// Times the big shapes of one NVILA-Lite-2B step's SigLIP-so400m tower on one stream (cudaEvents):
// 10 tiles x 1024 patches = 10240 rows of 1152, MLP 4304; the projector's LayerNorm (2560, 4608).
TEST(TrainVlmOpsTest, Timing) {
  VILA_SKIP_WITHOUT_GPU();
  constexpr int64_t kRows = 10240, kCols = 1152, kMlp = 4304;
  constexpr int64_t kProjRows = kRows / 4, kProjCols = kCols * 4;  // 2x2 spatial-to-channel
  constexpr int kIters = 20;
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.ok());
  void* st = stream->handle();
  const int64_t n_act = kRows * kCols, n_mlp = kRows * kMlp;
  auto f1 = cuda::DeviceBuffer::create(n_act * 4), f2 = cuda::DeviceBuffer::create(n_act * 4),
       f3 = cuda::DeviceBuffer::create(n_act * 4), h1 = cuda::DeviceBuffer::create(n_mlp * 2),
       h2 = cuda::DeviceBuffer::create(n_mlp * 2), h3 = cuda::DeviceBuffer::create(n_mlp * 2),
       vec = cuda::DeviceBuffer::create(kRows * 4 * 4 + kProjCols * 4 * 4);
  ASSERT_TRUE(f1.ok() && f2.ok() && f3.ok() && h1.ok() && h2.ok() && h3.ok() && vec.ok());
  for (const auto* b : {&*f1, &*f2, &*f3, &*vec, &*h1, &*h2, &*h3}) {
    ASSERT_TRUE(cuda::memset_device(b->data(), 0, b->bytes(), nullptr).ok());
  }
  float* stats = vec->as<float>();  // mean (R), rstd (R), w (C'), b (C'), dw (C'), db (C')
  float *mean = stats, *rstd = stats + kRows, *w = stats + 2 * kRows, *b = w + kProjCols,
        *dw = b + kProjCols, *db = dw + kProjCols;
  float *x = f1->as<float>(), *dy = f2->as<float>(), *dx = f3->as<float>();
  struct Op {
    const char* name;
    double bytes;  // moved per call (the minimum)
    std::function<Status()> run;
  };
  const std::vector<Op> ops = {
      {"layer_norm_forward", n_act * 6.0,
       [&] {
         return cuda::train_layer_norm_forward(h1->data(), mean, rstd, x, w, b, kRows, kCols, 1e-6f,
                                               st);
       }},
      {"layer_norm_backward acc", n_act * 16.0,
       [&] {
         return cuda::train_layer_norm_backward(dx, dw, db, dy, x, w, mean, rstd, kRows, kCols,
                                                /*accumulate=*/true, st);
       }},
      {"layer_norm_backward 4608", n_act * 12.0,
       [&] {
         return cuda::train_layer_norm_backward(dx, dw, db, dy, x, w, mean, rstd, kProjRows,
                                                kProjCols, false, st);
       }},
      {"gelu_forward (R x 4304)", n_mlp * 4.0,
       [&] {
         return cuda::train_gelu_forward(h2->data(), h1->data(), n_mlp, cuda::TrainGelu::kTanh, st);
       }},
      {"gelu_backward in place", n_mlp * 6.0,
       [&] {
         return cuda::train_gelu_backward(h3->data(), h3->data(), h1->data(), n_mlp,
                                          cuda::TrainGelu::kTanh, st);
       }},
      {"column_sum_add bf16 4304", n_mlp * 2.0,
       [&] { return cuda::train_column_sum_add(db, h1->data(), kRows, kMlp, st); }},
      {"column_sum_add bf16 1152", n_act * 2.0,
       [&] { return cuda::train_column_sum_add(db, h1->data(), kRows, kCols, st); }},
      {"column_sum_add_f32 1152", n_act * 4.0,
       [&] { return cuda::train_column_sum_add_f32(db, dy, kRows, kCols, st); }},
      {"f32_to_bf16 (R x 1152)", n_act * 6.0,
       [&] { return cuda::train_f32_to_bf16(h1->data(), x, n_act, st); }},
      {"bf16_to_f32 (R x 1152)", n_act * 6.0,
       [&] { return cuda::train_bf16_to_f32(dx, h1->data(), n_act, st); }},
      {"space_to_channel k2", n_act * 8.0,
       [&] { return cuda::train_space_to_channel(dx, x, kRows / 1024, 32, kCols, 2, st); }},
  };
  for (const Op& op : ops) {
    const double ms = testing::time_ms(static_cast<cudaStream_t>(st), kIters, op.run);
    std::printf("[ vlmops ] %-26s %8.4f ms  %7.0f GB/s\n", op.name, ms, op.bytes / ms * 1e-6);
  }
}

#else

TEST(TrainVlmOpsTest, SkippedWithoutCuda) { GTEST_SKIP() << "no CUDA build"; }

#endif

}  // namespace
}  // namespace vila
