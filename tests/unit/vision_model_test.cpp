// Vision side on tiny random checkpoints written here: SigLIP tower, projectors, spatial-to-channel
// layout, chessboard merge/split, dynamic-S2 merge and VisionEncoder paths, each against naive
// double-loop references written independently in this file; load errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "format/safetensors.h"
#include "model/projector.h"
#include "model/s2_merge.h"
#include "model/siglip.h"
#include "model/vision_encoder.h"

namespace vila {
namespace {

namespace fs = std::filesystem;
using Weights = std::map<std::string, std::vector<float>>;

// ---------------------------------------------------------------------------------------------
// Tiny checkpoints
// ---------------------------------------------------------------------------------------------

struct TinyVision {
  int64_t hidden = 16, intermediate = 24, layers = 3, heads = 2, image = 28, patch = 7;
  std::string act = "gelu_pytorch_tanh";
  int64_t select_layer = -2;
  std::string select_feature = "cls_patch";
  std::string projector = "mlp_downsample_2x2_fix";
  bool dynamic_s2 = false;
  std::string scales = "28,56,84";
  int64_t s2_resize_idx = -1;  // s2_resize_output_to_scale_idx
  int64_t llm_hidden = 20;
  std::set<std::string> drop;  // tensors left out
  uint64_t seed = 7;

  int64_t n_scales() const { return dynamic_s2 ? 3 : 1; }
  int64_t mm_hidden() const { return hidden * n_scales(); }
};

Status write_json(const std::string& path, const nlohmann::json& j) {
  const std::string text = j.dump(2);
  return write_file_atomic(path, text.data(), text.size());
}

// Writes config.json, vision_tower/, mm_projector/ under dir; returns every tensor in fp32.
StatusOr<Weights> write_tiny_vision(const std::string& dir, const TinyVision& s) {
  fs::create_directories(dir + "/vision_tower");
  fs::create_directories(dir + "/mm_projector");
  nlohmann::json top = {{"mm_vision_select_layer", s.select_layer},
                        {"mm_vision_select_feature", s.select_feature},
                        {"mm_hidden_size", s.mm_hidden()},
                        {"hidden_size", s.llm_hidden},
                        {"vision_resolution", -1},
                        {"image_aspect_ratio", s.dynamic_s2 ? "dynamic_s2" : "dynamic"},
                        {"dynamic_s2", s.dynamic_s2}};
  if (s.dynamic_s2) {
    top["s2_scales"] = s.scales;
    top["s2_resize_output_to_scale_idx"] = s.s2_resize_idx;
  }
  VILA_RETURN_IF_ERROR(write_json(dir + "/config.json", top));
  VILA_RETURN_IF_ERROR(
      write_json(dir + "/vision_tower/config.json", {{"model_type", "siglip_vision_model"},
                                                     {"hidden_size", s.hidden},
                                                     {"intermediate_size", s.intermediate},
                                                     {"num_hidden_layers", s.layers},
                                                     {"num_attention_heads", s.heads},
                                                     {"image_size", s.image},
                                                     {"patch_size", s.patch},
                                                     {"layer_norm_eps", 1e-6},
                                                     {"hidden_act", s.act},
                                                     {"num_channels", 3}}));
  VILA_RETURN_IF_ERROR(
      write_json(dir + "/mm_projector/config.json",
                 {{"model_type", "v2l_projector"}, {"mm_projector_type", s.projector}}));

  std::mt19937_64 rng(s.seed);
  Weights w;
  SafetensorsWriter vision, proj;
  auto add = [&](SafetensorsWriter& out, const std::string& name, Shape shape, float mean,
                 float stddev) -> Status {
    std::normal_distribution<float> dist(mean, stddev);
    std::vector<float> v(static_cast<size_t>(shape.numel()));
    for (float& x : v) x = dist(rng);
    w[name] = v;
    if (s.drop.count(name)) return ok_status();
    return out.add(name, DType::kF32, shape, v.data(), v.size() * sizeof(float));
  };
  const int64_t C = s.hidden, F = s.intermediate, p = s.patch, g = s.image / s.patch;
  const std::string emb = "vision_model.embeddings.";
  VILA_RETURN_IF_ERROR(add(vision, emb + "patch_embedding.weight", {C, 3, p, p}, 0, 0.2f));
  VILA_RETURN_IF_ERROR(add(vision, emb + "patch_embedding.bias", {C}, 0, 0.2f));
  VILA_RETURN_IF_ERROR(add(vision, emb + "position_embedding.weight", {g * g, C}, 0, 0.5f));
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string pre = "vision_model.encoder.layers." + std::to_string(l) + ".";
    for (const char* ln : {"layer_norm1", "layer_norm2"}) {
      VILA_RETURN_IF_ERROR(add(vision, pre + ln + ".weight", {C}, 1.0f, 0.1f));
      VILA_RETURN_IF_ERROR(add(vision, pre + ln + ".bias", {C}, 0.0f, 0.1f));
    }
    for (const char* proj_name : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      VILA_RETURN_IF_ERROR(
          add(vision, pre + "self_attn." + proj_name + ".weight", {C, C}, 0, 0.3f));
      VILA_RETURN_IF_ERROR(add(vision, pre + "self_attn." + proj_name + ".bias", {C}, 0, 0.1f));
    }
    VILA_RETURN_IF_ERROR(add(vision, pre + "mlp.fc1.weight", {F, C}, 0, 0.3f));
    VILA_RETURN_IF_ERROR(add(vision, pre + "mlp.fc1.bias", {F}, 0, 0.1f));
    VILA_RETURN_IF_ERROR(add(vision, pre + "mlp.fc2.weight", {C, F}, 0, 0.3f));
    VILA_RETURN_IF_ERROR(add(vision, pre + "mlp.fc2.bias", {C}, 0, 0.1f));
  }
  VILA_RETURN_IF_ERROR(add(vision, "vision_model.post_layernorm.weight", {C}, 1.0f, 0.1f));
  VILA_RETURN_IF_ERROR(add(vision, "vision_model.post_layernorm.bias", {C}, 0.0f, 0.1f));

  const int64_t M = s.mm_hidden(), H = s.llm_hidden;
  auto ln = [&](int i, int64_t width) -> Status {
    VILA_RETURN_IF_ERROR(add(proj, "layers." + std::to_string(i) + ".weight", {width}, 1, 0.1f));
    return add(proj, "layers." + std::to_string(i) + ".bias", {width}, 0, 0.1f);
  };
  auto lin = [&](const std::string& name, int64_t out, int64_t in) -> Status {
    VILA_RETURN_IF_ERROR(add(proj, name + ".weight", {out, in}, 0, 0.3f));
    return add(proj, name + ".bias", {out}, 0, 0.1f);
  };
  if (s.projector == "mlp_downsample" || s.projector == "mlp_downsample_2x2_fix") {
    VILA_RETURN_IF_ERROR(ln(1, 4 * M));
    VILA_RETURN_IF_ERROR(lin("layers.2", H, 4 * M));
    VILA_RETURN_IF_ERROR(lin("layers.4", H, H));
  } else if (s.projector == "mlp_downsample_3x3_fix") {
    VILA_RETURN_IF_ERROR(ln(1, 9 * M));
    VILA_RETURN_IF_ERROR(lin("layers.2", 3 * M, 9 * M));
    VILA_RETURN_IF_ERROR(ln(4, 3 * M));
    VILA_RETURN_IF_ERROR(lin("layers.5", H, 3 * M));
    VILA_RETURN_IF_ERROR(lin("layers.7", H, H));
  } else if (s.projector == "linear") {
    VILA_RETURN_IF_ERROR(lin("layers", H, M));
  } else if (s.projector == "mlp2x_gelu") {
    VILA_RETURN_IF_ERROR(lin("layers.0", H, M));
    VILA_RETURN_IF_ERROR(lin("layers.2", H, H));
  }
  VILA_RETURN_IF_ERROR(vision.write(dir + "/vision_tower/model.safetensors"));
  VILA_RETURN_IF_ERROR(proj.write(dir + "/mm_projector/model.safetensors"));
  return w;
}

std::string temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("vila_vision_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::vector<float> random_pixels(int64_t n, int64_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n * 3 * size * size));
  for (float& x : v) x = dist(rng);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Double references
// ---------------------------------------------------------------------------------------------

using Mat = std::vector<double>;  // row-major (rows, cols)

void ref_layer_norm(Mat& x, int64_t rows, int64_t c, const std::vector<float>& w,
                    const std::vector<float>& b, double eps) {
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < c; ++i) mean += x[r * c + i];
    mean /= c;
    for (int64_t i = 0; i < c; ++i) var += (x[r * c + i] - mean) * (x[r * c + i] - mean);
    var /= c;
    for (int64_t i = 0; i < c; ++i) {
      x[r * c + i] = (x[r * c + i] - mean) / std::sqrt(var + eps) * w[i] + b[i];
    }
  }
}

Mat ref_linear(const Mat& x, int64_t rows, int64_t in, const std::vector<float>& w,
               const std::vector<float>& b, int64_t out) {
  Mat y(static_cast<size_t>(rows * out));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double acc = b[o];
      for (int64_t i = 0; i < in; ++i) acc += x[r * in + i] * w[o * in + i];
      y[r * out + o] = acc;
    }
  }
  return y;
}

double gelu_tanh(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
double gelu_erf(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }

// SigLIP hidden_states[n_run] of one tile (3, S, S).
Mat ref_siglip(const Weights& w, const TinyVision& s, const float* px, int64_t n_run) {
  const int64_t C = s.hidden, p = s.patch, g = s.image / p, P = g * g, H = s.heads, D = C / H;
  const int64_t F = s.intermediate, S = s.image;
  const std::string emb = "vision_model.embeddings.";
  const auto& pw = w.at(emb + "patch_embedding.weight");
  Mat x(static_cast<size_t>(P * C));
  for (int64_t py = 0; py < g; ++py) {
    for (int64_t pxi = 0; pxi < g; ++pxi) {
      for (int64_t co = 0; co < C; ++co) {
        double acc = w.at(emb + "patch_embedding.bias")[co];
        for (int64_t ci = 0; ci < 3; ++ci) {
          for (int64_t ky = 0; ky < p; ++ky) {
            for (int64_t kx = 0; kx < p; ++kx) {
              acc += static_cast<double>(pw[((co * 3 + ci) * p + ky) * p + kx]) *
                     px[(ci * S + py * p + ky) * S + pxi * p + kx];
            }
          }
        }
        x[(py * g + pxi) * C + co] =
            acc + w.at(emb + "position_embedding.weight")[(py * g + pxi) * C + co];
      }
    }
  }
  for (int64_t l = 0; l < n_run; ++l) {
    const std::string pre = "vision_model.encoder.layers." + std::to_string(l) + ".";
    auto W = [&](const std::string& n) -> const std::vector<float>& { return w.at(pre + n); };
    Mat xn = x;
    ref_layer_norm(xn, P, C, W("layer_norm1.weight"), W("layer_norm1.bias"), 1e-6);
    Mat q = ref_linear(xn, P, C, W("self_attn.q_proj.weight"), W("self_attn.q_proj.bias"), C);
    Mat k = ref_linear(xn, P, C, W("self_attn.k_proj.weight"), W("self_attn.k_proj.bias"), C);
    Mat v = ref_linear(xn, P, C, W("self_attn.v_proj.weight"), W("self_attn.v_proj.bias"), C);
    Mat a(static_cast<size_t>(P * C), 0.0);
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t t = 0; t < P; ++t) {
        std::vector<double> sc(static_cast<size_t>(P));
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < P; ++j) {
          double d = 0;
          for (int64_t i = 0; i < D; ++i) d += q[t * C + h * D + i] * k[j * C + h * D + i];
          sc[j] = d / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, sc[j]);
        }
        for (double& e : sc) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j < P; ++j) {
          for (int64_t i = 0; i < D; ++i)
            a[t * C + h * D + i] += sc[j] / sum * v[j * C + h * D + i];
        }
      }
    }
    Mat o = ref_linear(a, P, C, W("self_attn.out_proj.weight"), W("self_attn.out_proj.bias"), C);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    xn = x;
    ref_layer_norm(xn, P, C, W("layer_norm2.weight"), W("layer_norm2.bias"), 1e-6);
    Mat f = ref_linear(xn, P, C, W("mlp.fc1.weight"), W("mlp.fc1.bias"), F);
    for (double& e : f) e = s.act == "gelu" ? gelu_erf(e) : gelu_tanh(e);
    Mat m = ref_linear(f, P, F, W("mlp.fc2.weight"), W("mlp.fc2.bias"), C);
    for (size_t i = 0; i < x.size(); ++i) x[i] += m[i];
  }
  return x;
}

// Literal transcription of VILA's flat_square_2x2 / flat_square_3x3 on x (n=1, w, h, c):
// pad dim 1 then dim 2, view(w, h/k, k*c), permute(1, 0, 2), view(h/k, w/k, k*k*c),
// permute(1, 0, 2). Returns (w/k * h/k, k*k*c) row-major.
Mat ref_flat_square(const Mat& x, int64_t side, int64_t c, int64_t k) {
  const int64_t s = (side + k - 1) / k * k;
  Mat pad(static_cast<size_t>(s * s * c), 0.0);
  for (int64_t a = 0; a < side; ++a) {
    for (int64_t b = 0; b < side; ++b) {
      for (int64_t ch = 0; ch < c; ++ch) pad[(a * s + b) * c + ch] = x[(a * side + b) * c + ch];
    }
  }
  // view (s, s/k, k*c) is the same memory; permute -> y (s/k, s, k*c) contiguous.
  Mat y(pad.size());
  for (int64_t a = 0; a < s; ++a) {
    for (int64_t j = 0; j < s / k; ++j) {
      for (int64_t m = 0; m < k * c; ++m)
        y[(j * s + a) * k * c + m] = pad[(a * (s / k) + j) * k * c + m];
    }
  }
  // view (s/k, s/k, k*k*c) of y; permute -> z (s/k, s/k, k*k*c).
  const int64_t g = s / k, kk = k * k * c;
  Mat z(pad.size());
  for (int64_t j = 0; j < g; ++j) {
    for (int64_t i = 0; i < g; ++i) {
      for (int64_t m = 0; m < kk; ++m) z[(i * g + j) * kk + m] = y[(j * g + i) * kk + m];
    }
  }
  return z;
}

// Projector reference for one item (L, M) -> (L', H).
Mat ref_projector(const Weights& w, const TinyVision& s, const Mat& in, int64_t L, int64_t* l_out) {
  const int64_t M = s.mm_hidden(), H = s.llm_hidden;
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(L))));
  auto W = [&](const std::string& n) -> const std::vector<float>& { return w.at(n); };
  if (s.projector == "linear") {
    *l_out = L;
    return ref_linear(in, L, M, W("layers.weight"), W("layers.bias"), H);
  }
  if (s.projector == "mlp2x_gelu") {
    *l_out = L;
    Mat h = ref_linear(in, L, M, W("layers.0.weight"), W("layers.0.bias"), H);
    for (double& e : h) e = gelu_erf(e);
    return ref_linear(h, L, H, W("layers.2.weight"), W("layers.2.bias"), H);
  }
  const int64_t k = s.projector == "mlp_downsample_3x3_fix" ? 3 : 2;
  Mat x = ref_flat_square(in, side, M, k);
  const int64_t g = (side + k - 1) / k, T = g * g;
  *l_out = T;
  ref_layer_norm(x, T, k * k * M, W("layers.1.weight"), W("layers.1.bias"), 1e-5);
  if (k == 2) {
    Mat h = ref_linear(x, T, 4 * M, W("layers.2.weight"), W("layers.2.bias"), H);
    for (double& e : h) e = gelu_erf(e);
    return ref_linear(h, T, H, W("layers.4.weight"), W("layers.4.bias"), H);
  }
  Mat h = ref_linear(x, T, 9 * M, W("layers.2.weight"), W("layers.2.bias"), 3 * M);
  for (double& e : h) e = gelu_erf(e);
  ref_layer_norm(h, T, 3 * M, W("layers.4.weight"), W("layers.4.bias"), 1e-5);
  Mat h2 = ref_linear(h, T, 3 * M, W("layers.5.weight"), W("layers.5.bias"), H);
  for (double& e : h2) e = gelu_erf(e);
  return ref_linear(h2, T, H, W("layers.7.weight"), W("layers.7.bias"), H);
}

void expect_close(const std::vector<float>& got, const Mat& want, double tol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double max_err = 0, max_ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    max_err = std::max(max_err, std::abs(got[i] - want[i]));
    max_ref = std::max(max_ref, std::abs(want[i]));
  }
  EXPECT_LE(max_err, tol * std::max(1.0, max_ref)) << what << ": max |err| " << max_err;
}

// ---------------------------------------------------------------------------------------------
// Layout pieces
// ---------------------------------------------------------------------------------------------

TEST(SpatialToChannel, HandMadeExamples) {
  // 3x3 map, C = 1, values 1..9; 2x2 pads to 4x4: token (i, j) = [x[2i][2j], x[2i][2j+1],
  // x[2i+1][2j], x[2i+1][2j+1]] (channel = dr*2C + dc*C + c), tokens row-major.
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<float> out(16, -1.0f);
  spatial_to_channel(x.data(), 3, 1, 2, out.data());
  EXPECT_EQ(out, (std::vector<float>{1, 2, 4, 5, 3, 0, 6, 0, 7, 8, 0, 0, 9, 0, 0, 0}));
  // 2x2 map, C = 2: one token [x00 | x01 | x10 | x11].
  const std::vector<float> y = {1, 10, 2, 20, 3, 30, 4, 40};
  std::vector<float> out2(8);
  spatial_to_channel(y.data(), 2, 2, 2, out2.data());
  EXPECT_EQ(out2, (std::vector<float>{1, 10, 2, 20, 3, 30, 4, 40}));
  // 3x3 with k = 3: one token, the whole map row-major.
  std::vector<float> out3(9);
  spatial_to_channel(x.data(), 3, 1, 3, out3.data());
  EXPECT_EQ(out3, x);
}

TEST(SpatialToChannel, MatchesVilaFlatSquareViewPermute) {
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  for (auto [side, c, k] : {std::tuple<int64_t, int64_t, int64_t>{5, 3, 2},
                            {4, 2, 2},
                            {4, 2, 3},
                            {7, 3, 3},
                            {6, 1, 3},
                            {32, 2, 2},
                            {32, 1, 3}}) {
    std::vector<float> x(static_cast<size_t>(side * side * c));
    for (float& v : x) v = dist(rng);
    const int64_t g = (side + k - 1) / k;
    std::vector<float> out(static_cast<size_t>(g * g * k * k * c));
    spatial_to_channel(x.data(), side, c, k, out.data());
    const Mat want = ref_flat_square(Mat(x.begin(), x.end()), side, c, k);
    ASSERT_EQ(out.size(), want.size());
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_EQ(out[i], want[i]) << "side " << side << " k " << k << " at " << i;
    }
  }
}

TEST(Chessboard, MergeSplitRoundTrip) {
  const int64_t n_h = 2, n_w = 3, g = 4, c = 3;
  std::vector<float> tiles(static_cast<size_t>(n_h * n_w * g * g * c));
  for (size_t i = 0; i < tiles.size(); ++i) tiles[i] = static_cast<float>(i);
  std::vector<float> map(tiles.size()), back(tiles.size());
  merge_chessboard(tiles.data(), n_h, n_w, g, c, map.data());
  // map[Y, X] = tile (Y/g)*n_w + X/g, token (Y%g)*g + X%g.
  for (int64_t y = 0; y < n_h * g; ++y) {
    for (int64_t x = 0; x < n_w * g; ++x) {
      for (int64_t ch = 0; ch < c; ++ch) {
        const int64_t tile = (y / g) * n_w + x / g, tok = (y % g) * g + x % g;
        ASSERT_EQ(map[(y * n_w * g + x) * c + ch], tiles[(tile * g * g + tok) * c + ch]);
      }
    }
  }
  split_chessboard(map.data(), n_h, n_w, g, c, back.data());
  EXPECT_EQ(back, tiles);
  EXPECT_EQ(s2_tile_count({448, 896, 1344}, 3, 4), 17);
  EXPECT_EQ(s2_tile_count({448, 896, 1344}, 3, 3), 14);
}

// ---------------------------------------------------------------------------------------------
// SigLIP
// ---------------------------------------------------------------------------------------------

TEST(Siglip, MatchesReferenceForEverySelectLayer) {
  for (const std::string act : {"gelu_pytorch_tanh", "gelu"}) {
    TinyVision s;
    s.act = act;
    const std::string dir = temp_dir("siglip_" + act);
    auto w = write_tiny_vision(dir, s);
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    const auto px = random_pixels(2, s.image, 3);
    for (int64_t select : {-2, -1, 0, 1, -4}) {
      auto tower = SiglipTower::load(dir + "/vision_tower", select);
      ASSERT_TRUE(tower.ok()) << tower.status().to_string();
      const int64_t n_run = select < 0 ? s.layers + 1 + select : select;
      EXPECT_EQ((*tower)->layers_run(), n_run);
      const int64_t P = (*tower)->tokens(), C = s.hidden;
      std::vector<float> out(static_cast<size_t>(2 * P * C));
      ASSERT_TRUE((*tower)->forward(px.data(), 2, out.data()).ok());
      for (int64_t n = 0; n < 2; ++n) {
        const Mat want = ref_siglip(*w, s, px.data() + n * 3 * s.image * s.image, n_run);
        expect_close(std::vector<float>(out.begin() + n * P * C, out.begin() + (n + 1) * P * C),
                     want, 2e-5, act + " select " + std::to_string(select));
      }
    }
    auto bad = SiglipTower::load(dir + "/vision_tower", -5);
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(SiglipTower::load(dir + "/vision_tower", 4).status().code(),
              StatusCode::kInvalidArgument);
  }
}

// ---------------------------------------------------------------------------------------------
// VisionEncoder paths
// ---------------------------------------------------------------------------------------------

TEST(VisionEncoder, PerTileProjectorTypesMatchReference) {
  for (const std::string type : {"mlp_downsample", "mlp_downsample_2x2_fix",
                                 "mlp_downsample_3x3_fix", "linear", "mlp2x_gelu"}) {
    TinyVision s;
    s.projector = type;
    s.image = 35;  // 5x5 tokens: odd side, so 2x2 pads to 6x6 and 3x3 pads to 6x6
    const std::string dir = temp_dir("proj_" + type);
    auto w = write_tiny_vision(dir, s);
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    auto enc = VisionEncoder::load(dir);
    ASSERT_TRUE(enc.ok()) << type << ": " << enc.status().to_string();
    ImageTiles tiles;
    tiles.n_tiles = 2;
    tiles.size = s.image;
    tiles.pixels = random_pixels(2, s.image, 11);
    int64_t n_tokens = 0;
    auto out = (*enc)->encode(tiles, &n_tokens);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    Mat want;
    int64_t lp = 0;
    for (int64_t n = 0; n < 2; ++n) {
      const Mat f = ref_siglip(*w, s, tiles.pixels.data() + n * 3 * s.image * s.image, 2);
      const Mat p = ref_projector(*w, s, f, 25, &lp);
      want.insert(want.end(), p.begin(), p.end());
    }
    EXPECT_EQ(n_tokens, 2 * lp) << type;
    EXPECT_EQ((*enc)->tokens_per_tile(), lp) << type;
    expect_close(*out, want, 5e-5, type);
  }
}

// Independent S2 reference: per output position, area window over the scale's merged map,
// looked up tile by tile; projector per block; blocks placed in the (rows*g', cols*g') raster.
Mat ref_dynamic_s2(const Weights& w, const TinyVision& s, const std::vector<float>& px,
                   int64_t rows, int64_t cols, int64_t* n_tokens) {
  const int64_t g = s.image / s.patch, L = g * g, C = s.hidden, K = 3, H = s.llm_hidden;
  const int64_t n_tiles = 1 + 4 + rows * cols;
  std::vector<Mat> feats;
  for (int64_t t = 0; t < n_tiles; ++t) {
    feats.push_back(ref_siglip(w, s, px.data() + t * 3 * s.image * s.image, 2));
  }
  const int64_t idx = s.s2_resize_idx < 0 ? s.s2_resize_idx + K : s.s2_resize_idx;
  const int64_t orows = idx == 2   ? rows
                        : idx == 1 ? 2
                                   : 1,
                ocols = idx == 2   ? cols
                        : idx == 1 ? 2
                                   : 1;
  const int64_t out_h = orows * g, out_w = ocols * g;
  auto concat_at = [&](int64_t Y, int64_t X, int64_t ch) {  // ch in [0, K*C)
    const int64_t sc = ch / C, c = ch % C;
    const int64_t base = sc == 0 ? 0 : sc == 1 ? 1 : 5;
    const int64_t mh = sc == 0 ? 1 : sc == 1 ? 2 : rows, mw = sc == 0 ? 1 : sc == 1 ? 2 : cols;
    const int64_t in_h = mh * g, in_w = mw * g;
    const auto y0 = static_cast<int64_t>(std::floor(double(Y) * in_h / out_h));
    const auto y1 = static_cast<int64_t>(std::ceil(double(Y + 1) * in_h / out_h));
    const auto x0 = static_cast<int64_t>(std::floor(double(X) * in_w / out_w));
    const auto x1 = static_cast<int64_t>(std::ceil(double(X + 1) * in_w / out_w));
    double sum = 0;
    for (int64_t y = y0; y < y1; ++y) {
      for (int64_t x = x0; x < x1; ++x) {
        sum += feats[base + (y / g) * mw + x / g][((y % g) * g + x % g) * C + c];
      }
    }
    return sum / double((y1 - y0) * (x1 - x0));
  };
  Mat out;
  int64_t lp = 0, gp = 0;
  std::vector<Mat> projected;
  for (int64_t bi = 0; bi < orows; ++bi) {
    for (int64_t bj = 0; bj < ocols; ++bj) {
      Mat block(static_cast<size_t>(L * K * C));
      for (int64_t r = 0; r < g; ++r) {
        for (int64_t c = 0; c < g; ++c) {
          for (int64_t ch = 0; ch < K * C; ++ch) {
            block[(r * g + c) * K * C + ch] = concat_at(bi * g + r, bj * g + c, ch);
          }
        }
      }
      projected.push_back(ref_projector(w, s, block, L, &lp));
    }
  }
  gp = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(lp))));
  out.assign(static_cast<size_t>(orows * ocols * lp * H), 0.0);
  for (int64_t bi = 0; bi < orows; ++bi) {
    for (int64_t bj = 0; bj < ocols; ++bj) {
      for (int64_t r = 0; r < gp; ++r) {
        for (int64_t c = 0; c < gp; ++c) {
          for (int64_t h = 0; h < H; ++h) {
            out[((bi * gp + r) * ocols * gp + bj * gp + c) * H + h] =
                projected[bi * ocols + bj][(r * gp + c) * H + h];
          }
        }
      }
    }
  }
  *n_tokens = orows * ocols * lp;
  return out;
}

TEST(VisionEncoder, DynamicS2MatchesReference) {
  for (const std::string type : {"mlp_downsample_2x2_fix", "mlp_downsample_3x3_fix"}) {
    TinyVision s;
    s.dynamic_s2 = true;
    s.projector = type;
    const std::string dir = temp_dir("s2_" + type);
    auto w = write_tiny_vision(dir, s);
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    auto enc = VisionEncoder::load(dir);
    ASSERT_TRUE(enc.ok()) << enc.status().to_string();
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{2, 3}, {3, 2}}) {
      ImageTiles tiles;
      tiles.rows = rows;
      tiles.cols = cols;
      tiles.n_tiles = 1 + 4 + rows * cols;
      tiles.size = s.image;
      tiles.pixels = random_pixels(tiles.n_tiles, s.image, 17 + rows);
      int64_t n_tokens = 0, want_tokens = 0;
      auto out = (*enc)->encode(tiles, &n_tokens);
      ASSERT_TRUE(out.ok()) << out.status().to_string();
      const Mat want = ref_dynamic_s2(*w, s, tiles.pixels, rows, cols, &want_tokens);
      EXPECT_EQ(n_tokens, want_tokens);
      expect_close(*out, want, 5e-5,
                   type + " grid " + std::to_string(rows) + "x" + std::to_string(cols));
    }
    // No grid (multi-image / video frame): features repeated 3x along channels.
    ImageTiles one;
    one.n_tiles = 1;
    one.size = s.image;
    one.pixels = random_pixels(1, s.image, 99);
    int64_t n_tokens = 0, lp = 0;
    auto out = (*enc)->encode(one, &n_tokens);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    const Mat f = ref_siglip(*w, s, one.pixels.data(), 2);
    Mat rep;
    for (int64_t t = 0; t < 16; ++t) {
      for (int k = 0; k < 3; ++k)
        rep.insert(rep.end(), f.begin() + t * 16, f.begin() + (t + 1) * 16);
    }
    const Mat want = ref_projector(*w, s, rep, 16, &lp);
    EXPECT_EQ(n_tokens, lp);
    expect_close(*out, want, 5e-5, type + " no grid");
    // A wrong tile count for the grid is rejected.
    ImageTiles bad = one;
    bad.rows = 3;
    bad.cols = 3;
    EXPECT_EQ((*enc)->encode(bad, &n_tokens).status().code(), StatusCode::kInvalidArgument);
  }
}

// s2_resize_output_to_scale_idx other than the last scale (VILA's default when the field is
// absent is 0): every scale is resized to that scale's map and split into its block grid.
TEST(VisionEncoder, DynamicS2ResizeToEarlierScale) {
  for (int64_t idx : {0, 1, -2}) {
    TinyVision s;
    s.dynamic_s2 = true;
    s.s2_resize_idx = idx;
    s.scales = "84,28,56";  // sorted on load, as VisionTowerDynamicS2 does
    const std::string dir = temp_dir("s2_idx" + std::to_string(idx));
    auto w = write_tiny_vision(dir, s);
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    auto enc = VisionEncoder::load(dir);
    ASSERT_TRUE(enc.ok()) << enc.status().to_string();
    ImageTiles tiles;
    tiles.rows = 3, tiles.cols = 2, tiles.size = s.image, tiles.n_tiles = 11;
    tiles.pixels = random_pixels(11, s.image, 23);
    int64_t n_tokens = 0, want_tokens = 0;
    auto out = (*enc)->encode(tiles, &n_tokens);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    const Mat want = ref_dynamic_s2(*w, s, tiles.pixels, 3, 2, &want_tokens);
    EXPECT_EQ(n_tokens, want_tokens);
    EXPECT_EQ(n_tokens, (idx == 0 ? 1 : 4) * 4);
    expect_close(*out, want, 5e-5, "resize idx " + std::to_string(idx));
  }
}

TEST(VisionEncoder, DynamicS2TokenCountFor32x32Tiles) {
  TinyVision s;
  s.hidden = 8, s.intermediate = 8, s.heads = 2, s.layers = 2, s.image = 64, s.patch = 2;
  s.llm_hidden = 8;
  s.dynamic_s2 = true;
  s.scales = "64,128,192";
  s.projector = "mlp_downsample";
  const std::string dir = temp_dir("s2_count");
  ASSERT_TRUE(write_tiny_vision(dir, s).ok());
  auto enc = VisionEncoder::load(dir);
  ASSERT_TRUE(enc.ok()) << enc.status().to_string();
  EXPECT_EQ((*enc)->tower_tokens(), 1024);
  EXPECT_EQ((*enc)->tokens_per_tile(), 256);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{3, 4}, {3, 3}}) {
    ImageTiles tiles;
    tiles.rows = rows, tiles.cols = cols, tiles.size = 64;
    tiles.n_tiles = 5 + rows * cols;
    tiles.pixels = random_pixels(tiles.n_tiles, 64, 5);
    int64_t n_tokens = 0;
    auto out = (*enc)->encode(tiles, &n_tokens);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    EXPECT_EQ(n_tokens, rows * cols * 256);
    EXPECT_EQ(out->size(), static_cast<size_t>(n_tokens * 8));
    for (float v : *out) ASSERT_TRUE(std::isfinite(v));
  }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

TEST(VisionEncoder, LoadErrorsNameTheCulprit) {
  {
    TinyVision s;
    s.drop = {"vision_model.encoder.layers.1.mlp.fc2.bias"};
    const std::string dir = temp_dir("err_missing");
    ASSERT_TRUE(write_tiny_vision(dir, s).ok());
    auto enc = VisionEncoder::load(dir);
    ASSERT_EQ(enc.status().code(), StatusCode::kNotFound);
    EXPECT_NE(enc.status().message().find("vision_model.encoder.layers.1.mlp.fc2.bias"),
              std::string::npos)
        << enc.status().message();
  }
  {  // a tensor of a layer past the selected one is never needed
    TinyVision s;
    s.drop = {"vision_model.encoder.layers.2.mlp.fc2.bias"};
    const std::string dir = temp_dir("err_unused");
    ASSERT_TRUE(write_tiny_vision(dir, s).ok());
    EXPECT_TRUE(VisionEncoder::load(dir).ok());
  }
  {
    TinyVision s;
    s.drop = {"layers.4.weight"};
    const std::string dir = temp_dir("err_proj_missing");
    ASSERT_TRUE(write_tiny_vision(dir, s).ok());
    auto enc = VisionEncoder::load(dir);
    ASSERT_EQ(enc.status().code(), StatusCode::kNotFound);
    EXPECT_NE(enc.status().message().find("layers.4.weight"), std::string::npos);
  }
  {
    TinyVision s;
    s.projector = "mlp_fancy";
    const std::string dir = temp_dir("err_type");
    ASSERT_TRUE(write_tiny_vision(dir, s).ok());
    auto enc = VisionEncoder::load(dir);
    ASSERT_EQ(enc.status().code(), StatusCode::kUnimplemented);
    EXPECT_NE(enc.status().message().find("mm_projector/config.json"), std::string::npos)
        << enc.status().message();
    EXPECT_NE(enc.status().message().find("mlp_fancy"), std::string::npos);
  }
  {
    TinyVision s;
    const std::string dir = temp_dir("err_resolution");
    ASSERT_TRUE(write_tiny_vision(dir, s).ok());
    nlohmann::json top = {{"mm_vision_select_layer", -2},
                          {"mm_hidden_size", 16},
                          {"hidden_size", 20},
                          {"vision_resolution", 56},
                          {"mm_vision_select_feature", "cls_patch"}};
    ASSERT_TRUE(write_json(dir + "/config.json", top).ok());
    // Ignored at inference, as VILA does (it only resizes position embeddings for training).
    auto enc = VisionEncoder::load(dir);
    EXPECT_TRUE(enc.ok()) << enc.status().to_string();
    top["vision_resolution"] = -1;
    top["mm_vision_select_layer"] = -7;
    ASSERT_TRUE(write_json(dir + "/config.json", top).ok());
    EXPECT_EQ(VisionEncoder::load(dir).status().code(), StatusCode::kInvalidArgument);
    top["mm_vision_select_layer"] = -2;
    top["mm_hidden_size"] = 48;  // not 16 x 1 scale
    ASSERT_TRUE(write_json(dir + "/config.json", top).ok());
    auto bad_hidden = VisionEncoder::load(dir);
    ASSERT_EQ(bad_hidden.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(bad_hidden.status().message().find("mm_hidden_size"), std::string::npos);
  }
}

}  // namespace
}  // namespace vila
