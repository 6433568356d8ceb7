// LanguageModel on tiny random checkpoints written here: prefill == token-by-token decode, a
// plain-loop double reference forward, bf16 == rounded fp32, load errors, tied/untied heads,
// chunking, KV cache truncation, sharded checkpoints.
#include "model/llm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "format/safetensors.h"
#include "runtime/kv_cache.h"

namespace vila {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Tiny checkpoints
// ---------------------------------------------------------------------------------------------

struct TinySpec {
  std::string architecture = "Qwen2ForCausalLM";
  int64_t hidden = 32;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  int64_t head_dim = 0;  // 0: not written (default hidden / heads)
  int64_t intermediate = 48;
  int64_t vocab = 61;
  bool tie = false;
  bool attention_bias = false;  // Llama only (Qwen2 always has q/k/v bias)
  bool mlp_bias = false;        // Llama only
  double theta = 10000.0;
  double eps = 1e-6;
  DType dtype = DType::kF32;
  bool round_to_bf16 = false;  // f32 checkpoint holding bf16-representable values
  uint64_t seed = 1;
  nlohmann::json extra_config = nlohmann::json::object();  // merged over config.json
  std::set<std::string> drop;                              // tensors left out
  std::map<std::string, Shape> reshape;                    // tensors written with a wrong shape
  bool write_lm_head_when_tied = false;
  int shards = 1;  // > 1: model-0000k-of-0000n.safetensors + model.safetensors.index.json

  bool is_qwen2() const { return architecture == "Qwen2ForCausalLM"; }
  int64_t d() const { return head_dim > 0 ? head_dim : hidden / heads; }
  bool qkv_bias() const { return is_qwen2() || attention_bias; }
  bool o_bias() const { return !is_qwen2() && attention_bias; }
  bool ffn_bias() const { return !is_qwen2() && mlp_bias; }
};

// fp32 values of every tensor, exactly as the engine will read them.
struct TinyWeights {
  std::map<std::string, std::vector<float>> t;
  const std::vector<float>& operator[](const std::string& name) const { return t.at(name); }
  bool has(const std::string& name) const { return t.count(name) != 0; }
};

std::string layer_name(int64_t l, const std::string& rest) {
  return "model.layers." + std::to_string(l) + "." + rest;
}

StatusOr<TinyWeights> write_tiny(const std::string& dir, const TinySpec& s) {
  fs::create_directories(dir);
  nlohmann::json cfg = {
      {"architectures", {s.architecture}},
      {"model_type", s.is_qwen2() ? "qwen2" : "llama"},
      {"hidden_size", s.hidden},
      {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.kv_heads},
      {"intermediate_size", s.intermediate},
      {"vocab_size", s.vocab},
      {"rms_norm_eps", s.eps},
      {"rope_theta", s.theta},
      {"max_position_embeddings", 128},
      {"tie_word_embeddings", s.tie},
      {"hidden_act", "silu"},
      {"rope_scaling", nullptr},
      {"torch_dtype", s.dtype == DType::kBF16 ? "bfloat16" : "float32"},
  };
  if (s.head_dim > 0) cfg["head_dim"] = s.head_dim;
  if (!s.is_qwen2()) {
    cfg["attention_bias"] = s.attention_bias;
    cfg["mlp_bias"] = s.mlp_bias;
  }
  cfg.merge_patch(s.extra_config);
  const std::string cfg_text = cfg.dump(2);
  VILA_RETURN_IF_ERROR(
      write_file_atomic(path_join(dir, "config.json"), cfg_text.data(), cfg_text.size()));

  const int64_t C = s.hidden, H = s.heads, Hkv = s.kv_heads, D = s.d(), F = s.intermediate,
                V = s.vocab;
  std::mt19937_64 rng(s.seed);
  std::vector<std::pair<std::string, Shape>> order;  // write order, for sharding
  TinyWeights w;
  auto add = [&](const std::string& name, Shape shape, float mean, float stddev) {
    std::normal_distribution<float> dist(mean, stddev);
    std::vector<float> v(static_cast<size_t>(shape.numel()));
    for (float& x : v) x = dist(rng);
    if (s.dtype == DType::kBF16 || s.round_to_bf16) {
      for (float& x : v) x = bf16_to_f32(f32_to_bf16(x));
    }
    w.t[name] = std::move(v);
    order.emplace_back(name, shape);
  };
  add("model.embed_tokens.weight", {V, C}, 0.0f, 1.0f);
  for (int64_t l = 0; l < s.layers; ++l) {
    add(layer_name(l, "input_layernorm.weight"), {C}, 1.0f, 0.1f);
    add(layer_name(l, "self_attn.q_proj.weight"), {H * D, C}, 0.0f, 0.2f);
    add(layer_name(l, "self_attn.k_proj.weight"), {Hkv * D, C}, 0.0f, 0.2f);
    add(layer_name(l, "self_attn.v_proj.weight"), {Hkv * D, C}, 0.0f, 0.2f);
    add(layer_name(l, "self_attn.o_proj.weight"), {C, H * D}, 0.0f, 0.2f);
    if (s.qkv_bias()) {
      add(layer_name(l, "self_attn.q_proj.bias"), {H * D}, 0.0f, 0.3f);
      add(layer_name(l, "self_attn.k_proj.bias"), {Hkv * D}, 0.0f, 0.3f);
      add(layer_name(l, "self_attn.v_proj.bias"), {Hkv * D}, 0.0f, 0.3f);
    }
    if (s.o_bias()) add(layer_name(l, "self_attn.o_proj.bias"), {C}, 0.0f, 0.3f);
    add(layer_name(l, "post_attention_layernorm.weight"), {C}, 1.0f, 0.1f);
    add(layer_name(l, "mlp.gate_proj.weight"), {F, C}, 0.0f, 0.2f);
    add(layer_name(l, "mlp.up_proj.weight"), {F, C}, 0.0f, 0.2f);
    add(layer_name(l, "mlp.down_proj.weight"), {C, F}, 0.0f, 0.2f);
    if (s.ffn_bias()) {
      add(layer_name(l, "mlp.gate_proj.bias"), {F}, 0.0f, 0.3f);
      add(layer_name(l, "mlp.up_proj.bias"), {F}, 0.0f, 0.3f);
      add(layer_name(l, "mlp.down_proj.bias"), {C}, 0.0f, 0.3f);
    }
  }
  add("model.norm.weight", {C}, 1.0f, 0.1f);
  if (!s.tie || s.write_lm_head_when_tied) add("lm_head.weight", {V, C}, 0.0f, 0.2f);

  // Write, one writer per shard.
  std::vector<SafetensorsWriter> writers(static_cast<size_t>(s.shards));
  nlohmann::json weight_map = nlohmann::json::object();
  auto shard_name = [&](int k) {
    if (s.shards == 1) return std::string("model.safetensors");
    char buf[64];
    std::snprintf(buf, sizeof(buf), "model-%05d-of-%05d.safetensors", k + 1, s.shards);
    return std::string(buf);
  };
  for (size_t i = 0; i < order.size(); ++i) {
    const auto& [name, shape0] = order[i];
    if (s.drop.count(name)) continue;
    Shape shape = shape0;
    std::vector<float> values = w.t[name];
    if (auto it = s.reshape.find(name); it != s.reshape.end()) {
      shape = it->second;
      values.resize(static_cast<size_t>(shape.numel()), 0.5f);
    }
    std::vector<uint8_t> bytes(static_cast<size_t>(dtype_bytes(s.dtype, shape.numel())));
    VILA_RETURN_IF_ERROR(convert_from_f32(values.data(), s.dtype, bytes.data(), shape.numel()));
    const int k = static_cast<int>(i % static_cast<size_t>(s.shards));
    VILA_RETURN_IF_ERROR(
        writers[static_cast<size_t>(k)].add(name, s.dtype, shape, bytes.data(), bytes.size()));
    weight_map[name] = shard_name(k);
  }
  for (int k = 0; k < s.shards; ++k) {
    VILA_RETURN_IF_ERROR(writers[static_cast<size_t>(k)].write(path_join(dir, shard_name(k))));
  }
  if (s.shards > 1) {
    const std::string index =
        nlohmann::json{{"metadata", nlohmann::json::object()}, {"weight_map", weight_map}}.dump();
    VILA_RETURN_IF_ERROR(write_file_atomic(path_join(dir, "model.safetensors.index.json"),
                                           index.data(), index.size()));
  }
  return w;
}

// ---------------------------------------------------------------------------------------------
// Naive reference forward: plain loops, double accumulation, whole sequence at once
// ---------------------------------------------------------------------------------------------

using Mat = std::vector<double>;  // row-major

// y (T, N) = x (T, K) · W (N, K)ᵀ + b
Mat ref_linear(const Mat& x, int64_t t_count, int64_t k, const TinyWeights& w,
               const std::string& base, int64_t n, bool bias) {
  const std::vector<float>& wt = w[base + ".weight"];
  Mat y(static_cast<size_t>(t_count * n));
  for (int64_t t = 0; t < t_count; ++t) {
    for (int64_t j = 0; j < n; ++j) {
      double s = bias ? w[base + ".bias"][j] : 0.0;
      for (int64_t i = 0; i < k; ++i) s += x[t * k + i] * wt[j * k + i];
      y[t * n + j] = s;
    }
  }
  return y;
}

Mat ref_rms_norm(const Mat& x, int64_t t_count, int64_t c, const std::vector<float>& weight,
                 double eps) {
  Mat y(x.size());
  for (int64_t t = 0; t < t_count; ++t) {
    double ss = 0.0;
    for (int64_t i = 0; i < c; ++i) ss += x[t * c + i] * x[t * c + i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(c) + eps);
    for (int64_t i = 0; i < c; ++i) y[t * c + i] = weight[i] * x[t * c + i] * inv;
  }
  return y;
}

// rotate-half RoPE on (T, n_head, D), position = t.
void ref_rope(Mat& x, int64_t t_count, int64_t n_head, int64_t d, double theta) {
  const int64_t half = d / 2;
  for (int64_t t = 0; t < t_count; ++t) {
    for (int64_t h = 0; h < n_head; ++h) {
      double* v = x.data() + (t * n_head + h) * d;
      for (int64_t i = 0; i < half; ++i) {
        const double angle = static_cast<double>(t) / std::pow(theta, 2.0 * i / d);
        const double x1 = v[i], x2 = v[i + half];
        v[i] = x1 * std::cos(angle) - x2 * std::sin(angle);
        v[i + half] = x2 * std::cos(angle) + x1 * std::sin(angle);
      }
    }
  }
}

// logits (T, V) for the whole sequence.
Mat ref_forward(const TinySpec& s, const TinyWeights& w, const std::vector<int32_t>& ids) {
  const int64_t T = static_cast<int64_t>(ids.size());
  const int64_t C = s.hidden, H = s.heads, Hkv = s.kv_heads, D = s.d(), F = s.intermediate,
                V = s.vocab;
  Mat x(static_cast<size_t>(T * C));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < C; ++i) x[t * C + i] = w["model.embed_tokens.weight"][ids[t] * C + i];
  }
  for (int64_t l = 0; l < s.layers; ++l) {
    // attention
    Mat h = ref_rms_norm(x, T, C, w[layer_name(l, "input_layernorm.weight")], s.eps);
    Mat q = ref_linear(h, T, C, w, layer_name(l, "self_attn.q_proj"), H * D, s.qkv_bias());
    Mat k = ref_linear(h, T, C, w, layer_name(l, "self_attn.k_proj"), Hkv * D, s.qkv_bias());
    Mat v = ref_linear(h, T, C, w, layer_name(l, "self_attn.v_proj"), Hkv * D, s.qkv_bias());
    ref_rope(q, T, H, D, s.theta);
    ref_rope(k, T, Hkv, D, s.theta);
    Mat att(static_cast<size_t>(T * H * D), 0.0);
    for (int64_t hh = 0; hh < H; ++hh) {
      const int64_t g = hh / (H / Hkv);
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> p(static_cast<size_t>(t + 1));
        double mx = -1e300;
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0.0;
          for (int64_t i = 0; i < D; ++i) dot += q[(t * H + hh) * D + i] * k[(j * Hkv + g) * D + i];
          p[j] = dot / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, p[j]);
        }
        double sum = 0.0;
        for (double& e : p) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j) {
          for (int64_t i = 0; i < D; ++i) {
            att[(t * H + hh) * D + i] += p[j] / sum * v[(j * Hkv + g) * D + i];
          }
        }
      }
    }
    Mat o = ref_linear(att, T, H * D, w, layer_name(l, "self_attn.o_proj"), C, s.o_bias());
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    // mlp
    h = ref_rms_norm(x, T, C, w[layer_name(l, "post_attention_layernorm.weight")], s.eps);
    Mat g = ref_linear(h, T, C, w, layer_name(l, "mlp.gate_proj"), F, s.ffn_bias());
    Mat u = ref_linear(h, T, C, w, layer_name(l, "mlp.up_proj"), F, s.ffn_bias());
    for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
    Mat dn = ref_linear(g, T, F, w, layer_name(l, "mlp.down_proj"), C, s.ffn_bias());
    for (size_t i = 0; i < x.size(); ++i) x[i] += dn[i];
  }
  Mat h = ref_rms_norm(x, T, C, w["model.norm.weight"], s.eps);
  const std::string head = s.tie ? "model.embed_tokens" : "lm_head";
  return ref_linear(h, T, C, w, head, V, false);
}

// ---------------------------------------------------------------------------------------------
// Fixture helpers
// ---------------------------------------------------------------------------------------------

class LlmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = (fs::temp_directory_path() /
             ("vila_llm_test_" + std::string(info->name()) + "_" + std::to_string(::getpid())))
                .string();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string dir(const std::string& name) const { return path_join(root_, name); }

  // Writes `spec` into dir(name) and loads it; fails the test on error.
  std::unique_ptr<LanguageModel> make(const std::string& name, const TinySpec& spec,
                                      TinyWeights* weights = nullptr) {
    StatusOr<TinyWeights> w = write_tiny(dir(name), spec);
    EXPECT_TRUE(w.ok()) << w.status().to_string();
    if (weights != nullptr && w.ok()) *weights = *w;
    StatusOr<std::unique_ptr<LanguageModel>> m = LanguageModel::load(dir(name));
    EXPECT_TRUE(m.ok()) << m.status().to_string();
    return m.ok() ? std::move(m).value() : nullptr;
  }

  // Status of loading `spec` (expected to fail).
  Status load_status(const std::string& name, const TinySpec& spec) {
    StatusOr<TinyWeights> w = write_tiny(dir(name), spec);
    EXPECT_TRUE(w.ok()) << w.status().to_string();
    return LanguageModel::load(dir(name)).status();
  }

  std::string root_;
};

std::vector<int32_t> test_ids(int64_t n, int64_t vocab, uint32_t seed = 3) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return ids;
}

// Logits of every position from one prefill call.
std::vector<float> prefill_logits(LanguageModel& m, const std::vector<int32_t>& ids) {
  const LlmConfig& c = m.config();
  const auto n = static_cast<int64_t>(ids.size());
  std::vector<float> embeds(static_cast<size_t>(n * c.hidden));
  EXPECT_TRUE(m.embed(ids.data(), n, embeds.data()).ok());
  KvCache cache = m.make_cache(n);
  std::vector<float> logits(static_cast<size_t>(n * c.vocab_size));
  const Status s = m.forward(embeds.data(), n, cache, logits.data(), n);
  EXPECT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(cache.length(), n);
  return logits;
}

// Logits of every position, feeding one token at a time through the cache.
std::vector<float> decode_logits(LanguageModel& m, const std::vector<int32_t>& ids) {
  const LlmConfig& c = m.config();
  const auto n = static_cast<int64_t>(ids.size());
  KvCache cache = m.make_cache(n + 3);
  std::vector<float> embed(static_cast<size_t>(c.hidden));
  std::vector<float> logits(static_cast<size_t>(n * c.vocab_size));
  for (int64_t t = 0; t < n; ++t) {
    EXPECT_TRUE(m.embed(&ids[static_cast<size_t>(t)], 1, embed.data()).ok());
    const Status s = m.forward(embed.data(), 1, cache, logits.data() + t * c.vocab_size, 1);
    EXPECT_TRUE(s.ok()) << s.to_string();
  }
  return logits;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  }
  return m;
}

double max_abs_diff(const std::vector<float>& a, const Mat& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

TEST_F(LlmTest, PrefillMatchesTokenByTokenDecode) {
  TinySpec spec;
  auto m = make("qwen2", spec);
  ASSERT_NE(m, nullptr);
  const std::vector<int32_t> ids = test_ids(13, spec.vocab);
  const std::vector<float> a = prefill_logits(*m, ids);
  const std::vector<float> b = decode_logits(*m, ids);
  EXPECT_LT(max_abs_diff(a, b), 1e-5);
}

TEST_F(LlmTest, MatchesNaiveReference) {
  struct Case {
    const char* name;
    TinySpec spec;
  };
  std::vector<Case> cases;
  {
    TinySpec s;  // Qwen2, GQA 4/2, q/k/v bias, untied
    cases.push_back({"qwen2_gqa", s});
  }
  {
    TinySpec s;  // Qwen2, tied, MQA, rope theta 1e6, 3 layers
    s.tie = true;
    s.kv_heads = 1;
    s.layers = 3;
    s.theta = 1e6;
    s.seed = 2;
    cases.push_back({"qwen2_tied_mqa", s});
  }
  {
    TinySpec s;  // Llama MHA, no biases, explicit head_dim != hidden / heads
    s.architecture = "LlamaForCausalLM";
    s.kv_heads = 4;
    s.head_dim = 12;
    s.eps = 1e-5;
    s.seed = 3;
    cases.push_back({"llama_head_dim", s});
  }
  {
    TinySpec s;  // Llama with attention_bias (q/k/v/o) and mlp_bias
    s.architecture = "LlamaForCausalLM";
    s.attention_bias = true;
    s.mlp_bias = true;
    s.heads = 8;
    s.kv_heads = 2;
    s.seed = 4;
    cases.push_back({"llama_biases", s});
  }
  for (Case& tc : cases) {
    TinyWeights w;
    auto m = make(tc.name, tc.spec, &w);
    ASSERT_NE(m, nullptr) << tc.name;
    const std::vector<int32_t> ids = test_ids(11, tc.spec.vocab, 5);
    const Mat ref = ref_forward(tc.spec, w, ids);
    EXPECT_LT(max_abs_diff(prefill_logits(*m, ids), ref), 1e-4) << tc.name;
    EXPECT_LT(max_abs_diff(decode_logits(*m, ids), ref), 1e-4) << tc.name;
    m->set_max_chunk(4);  // 11 tokens in chunks of 4, 4, 3
    EXPECT_LT(max_abs_diff(prefill_logits(*m, ids), ref), 1e-4) << tc.name << " chunked";
  }
}

TEST_F(LlmTest, LongerSequenceMatchesReference) {
  // Exercises the GEMM (M > 4) and threaded paths with bigger shapes.
  TinySpec s;
  s.hidden = 128;
  s.heads = 8;
  s.kv_heads = 2;
  s.intermediate = 320;
  s.vocab = 300;
  s.seed = 9;
  TinyWeights w;
  auto m = make("bigger", s, &w);
  ASSERT_NE(m, nullptr);
  const std::vector<int32_t> ids = test_ids(40, s.vocab, 6);
  const Mat ref = ref_forward(s, w, ids);
  EXPECT_LT(max_abs_diff(prefill_logits(*m, ids), ref), 1e-4);
}

TEST_F(LlmTest, Bf16WeightsMatchRoundedF32Weights) {
  TinySpec bf16;
  bf16.dtype = DType::kBF16;
  bf16.hidden = 64;
  bf16.intermediate = 96;
  bf16.seed = 7;
  TinySpec f32 = bf16;
  f32.dtype = DType::kF32;
  f32.round_to_bf16 = true;
  TinyWeights w;
  auto a = make("bf16", bf16, &w);
  auto b = make("f32", f32);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->config().weight_dtype, DType::kBF16);
  EXPECT_EQ(b->config().weight_dtype, DType::kF32);
  const std::vector<int32_t> ids = test_ids(9, bf16.vocab, 8);
  EXPECT_LT(max_abs_diff(prefill_logits(*a, ids), prefill_logits(*b, ids)), 1e-5);  // GEMM path
  EXPECT_LT(max_abs_diff(decode_logits(*a, ids), decode_logits(*b, ids)), 1e-5);    // GEMV path
  EXPECT_LT(max_abs_diff(prefill_logits(*a, ids), ref_forward(bf16, w, ids)), 1e-4);
}

TEST_F(LlmTest, TiedAndUntiedHeads) {
  TinySpec tied;
  tied.tie = true;
  tied.write_lm_head_when_tied = true;  // present but ignored, as in HF
  TinySpec untied = tied;
  untied.tie = false;
  TinyWeights wt, wu;
  auto mt = make("tied", tied, &wt);
  auto mu = make("untied", untied, &wu);
  ASSERT_NE(mt, nullptr);
  ASSERT_NE(mu, nullptr);
  const std::vector<int32_t> ids = test_ids(6, tied.vocab, 10);
  const std::vector<float> lt = prefill_logits(*mt, ids);
  const std::vector<float> lu = prefill_logits(*mu, ids);
  EXPECT_LT(max_abs_diff(lt, ref_forward(tied, wt, ids)), 1e-4);
  EXPECT_LT(max_abs_diff(lu, ref_forward(untied, wu, ids)), 1e-4);
  EXPECT_GT(max_abs_diff(lt, lu), 0.1);  // the heads really differ
  EXPECT_EQ(mt->weights().output.weight.data, mt->weights().token_embd.data);
  // The tied model counts the shared table once.
  EXPECT_EQ(mu->parameter_count() - mt->parameter_count(), tied.vocab * tied.hidden);

  TinySpec tied_only = tied;  // tied without lm_head.weight in the file
  tied_only.write_lm_head_when_tied = false;
  auto m2 = make("tied_only", tied_only);
  ASSERT_NE(m2, nullptr);
  EXPECT_LT(max_abs_diff(prefill_logits(*m2, ids), lt), 1e-6);
}

TEST_F(LlmTest, ParameterCountAndConfig) {
  TinySpec s;
  s.extra_config = {{"num_key_value_heads", nullptr}, {"rope_theta", nullptr}};
  s.kv_heads = 4;  // what the default (= heads) gives
  auto m = make("defaults", s);
  ASSERT_NE(m, nullptr);
  const LlmConfig& c = m->config();
  EXPECT_EQ(c.arch, LlmArch::kQwen2);
  EXPECT_EQ(c.arch_name, "Qwen2ForCausalLM");
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.mlp_bias);
  const int64_t C = 32, D = 8, H = 4, F = 48, V = 61;
  const int64_t per_layer = 2 * C + (H * D * C + H * D) * 3 + C * H * D + 3 * F * C;
  EXPECT_EQ(m->parameter_count(), 2 * V * C + C + 2 * per_layer);
}

TEST_F(LlmTest, ShardedCheckpoint) {
  TinySpec s;
  s.shards = 3;
  TinyWeights w;
  auto m = make("sharded", s, &w);
  ASSERT_NE(m, nullptr);
  const std::vector<int32_t> ids = test_ids(5, s.vocab, 12);
  EXPECT_LT(max_abs_diff(prefill_logits(*m, ids), ref_forward(s, w, ids)), 1e-4);
}

TEST_F(LlmTest, PartialLogitsAcrossChunks) {
  TinySpec s;
  auto m = make("partial", s);
  ASSERT_NE(m, nullptr);
  const int64_t n = 10, V = s.vocab;
  const std::vector<int32_t> ids = test_ids(n, V, 13);
  const std::vector<float> all = prefill_logits(*m, ids);
  m->set_max_chunk(3);
  for (int64_t n_logits : {0, 1, 4, 10}) {
    std::vector<float> embeds(static_cast<size_t>(n * s.hidden));
    ASSERT_TRUE(m->embed(ids.data(), n, embeds.data()).ok());
    KvCache cache = m->make_cache(n);
    std::vector<float> logits(static_cast<size_t>(std::max<int64_t>(n_logits, 1) * V), 7.0f);
    ASSERT_TRUE(
        m->forward(embeds.data(), n, cache, n_logits ? logits.data() : nullptr, n_logits).ok());
    for (int64_t r = 0; r < n_logits; ++r) {
      for (int64_t j = 0; j < V; ++j) {
        ASSERT_NEAR(logits[r * V + j], all[(n - n_logits + r) * V + j], 1e-5) << n_logits;
      }
    }
  }
}

TEST_F(LlmTest, KvCacheTruncateAndReset) {
  TinySpec s;
  auto m = make("cache", s);
  ASSERT_NE(m, nullptr);
  const int64_t V = s.vocab, C = s.hidden;
  const std::vector<int32_t> ids = test_ids(8, V, 14);
  const std::vector<float> all = prefill_logits(*m, ids);

  KvCache cache = m->make_cache(8);
  EXPECT_EQ(cache.capacity(), 8);
  EXPECT_EQ(cache.length(), 0);
  EXPECT_EQ(cache.n_layers(), s.layers);
  std::vector<float> embeds(static_cast<size_t>(8 * C));
  ASSERT_TRUE(m->embed(ids.data(), 8, embeds.data()).ok());
  std::vector<float> logits(static_cast<size_t>(8 * V));
  ASSERT_TRUE(m->forward(embeds.data(), 6, cache, logits.data(), 1).ok());
  EXPECT_EQ(cache.length(), 6);
  // Roll back to 3 positions and run 3..7 again: same logits as one pass.
  ASSERT_TRUE(cache.truncate(3).ok());
  EXPECT_EQ(cache.truncate(4).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(m->forward(embeds.data() + 3 * C, 5, cache, logits.data(), 5).ok());
  for (int64_t i = 0; i < 5 * V; ++i) ASSERT_NEAR(logits[i], all[3 * V + i], 1e-5);
  // Full: one more position overflows and leaves the cache as it was.
  const Status overflow = m->forward(embeds.data(), 1, cache, logits.data(), 1);
  EXPECT_EQ(overflow.code(), StatusCode::kOutOfRange) << overflow.to_string();
  EXPECT_NE(overflow.message().find("capacity 8"), std::string::npos) << overflow.message();
  EXPECT_EQ(cache.length(), 8);
  cache.reset();
  EXPECT_EQ(cache.length(), 0);
  ASSERT_TRUE(m->forward(embeds.data(), 8, cache, logits.data(), 8).ok());
  for (int64_t i = 0; i < 8 * V; ++i) ASSERT_NEAR(logits[i], all[i], 1e-5);

  EXPECT_EQ(KvCache::create(2, 0, 1, 4).status().code(), StatusCode::kInvalidArgument);
  KvCache wrong(1, 8, 2, 8);  // wrong layer count for this model
  EXPECT_EQ(m->forward(embeds.data(), 1, wrong, logits.data(), 1).code(),
            StatusCode::kInvalidArgument);
}

TEST_F(LlmTest, EmbedAndForwardArgumentErrors) {
  TinySpec s;
  auto m = make("args", s);
  ASSERT_NE(m, nullptr);
  std::vector<float> out(static_cast<size_t>(2 * s.hidden));
  const int32_t bad[] = {1, static_cast<int32_t>(s.vocab)};
  const Status e = m->embed(bad, 2, out.data());
  EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(e.message().find("61"), std::string::npos) << e.message();
  KvCache cache = m->make_cache(4);
  std::vector<float> logits(static_cast<size_t>(s.vocab));
  EXPECT_EQ(m->forward(out.data(), 0, cache, logits.data(), 0).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(m->forward(out.data(), 1, cache, logits.data(), 2).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(m->forward(out.data(), 5, cache, logits.data(), 1).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(cache.length(), 0);
}

TEST_F(LlmTest, MissingTensorIsNamed) {
  TinySpec s;
  s.drop = {"model.layers.1.mlp.up_proj.weight"};
  const Status st = load_status("missing", s);
  EXPECT_EQ(st.code(), StatusCode::kNotFound) << st.to_string();
  EXPECT_NE(st.message().find("model.layers.1.mlp.up_proj.weight"), std::string::npos)
      << st.message();

  TinySpec b;
  b.drop = {"model.layers.0.self_attn.k_proj.bias"};  // Qwen2 needs q/k/v biases
  const Status sb = load_status("missing_bias", b);
  EXPECT_EQ(sb.code(), StatusCode::kNotFound) << sb.to_string();
  EXPECT_NE(sb.message().find("model.layers.0.self_attn.k_proj.bias"), std::string::npos);

  TinySpec u;  // untied without lm_head
  u.drop = {"lm_head.weight"};
  const Status su = load_status("missing_head", u);
  EXPECT_EQ(su.code(), StatusCode::kNotFound) << su.to_string();
  EXPECT_NE(su.message().find("lm_head.weight"), std::string::npos) << su.message();
}

TEST_F(LlmTest, WrongShapeIsNamed) {
  TinySpec s;
  s.reshape = {{"model.layers.0.self_attn.k_proj.weight", Shape{17, 32}}};
  const Status st = load_status("shape", s);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("model.layers.0.self_attn.k_proj.weight"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("model.safetensors"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("[17, 32]"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("[16, 32]"), std::string::npos) << st.message();
}

TEST_F(LlmTest, UnknownArchitecture) {
  TinySpec s;
  s.extra_config = {{"architectures", {"FooForCausalLM"}}};
  const Status st = load_status("foo", s);
  EXPECT_EQ(st.code(), StatusCode::kUnimplemented);
  EXPECT_EQ(st.message(), path_join(dir("foo"), "config.json") +
                              ": unknown architecture 'FooForCausalLM' (supported: "
                              "Qwen2ForCausalLM, LlamaForCausalLM)");

  TinySpec t;  // no architectures: model_type decides
  t.extra_config = {{"architectures", nullptr}, {"model_type", "mistral"}};
  const Status st2 = load_status("mistral", t);
  EXPECT_EQ(st2.code(), StatusCode::kUnimplemented);
  EXPECT_NE(st2.message().find("unknown model_type 'mistral'"), std::string::npos) << st2.message();

  TinySpec l;
  l.extra_config = {{"architectures", nullptr}, {"model_type", "qwen2"}};
  auto m = make("by_type", l);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->config().arch, LlmArch::kQwen2);
}

TEST_F(LlmTest, UnsupportedConfigFieldsAreNamed) {
  TinySpec rs;
  rs.extra_config = {{"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}};
  Status st = load_status("rope_scaling", rs);
  EXPECT_EQ(st.code(), StatusCode::kUnimplemented);
  EXPECT_NE(st.message().find("'rope_scaling'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("config.json"), std::string::npos) << st.message();

  TinySpec rd;  // a default-type rope_scaling is plain RoPE
  rd.extra_config = {{"rope_scaling", {{"rope_type", "default"}}}};
  EXPECT_TRUE(load_status("rope_default", rd).ok());

  TinySpec act;
  act.extra_config = {{"hidden_act", "gelu"}};
  st = load_status("act", act);
  EXPECT_EQ(st.code(), StatusCode::kUnimplemented);
  EXPECT_NE(st.message().find("'hidden_act'"), std::string::npos) << st.message();

  TinySpec sw;
  sw.extra_config = {{"use_sliding_window", true}};
  st = load_status("sliding", sw);
  EXPECT_EQ(st.code(), StatusCode::kUnimplemented);
  EXPECT_NE(st.message().find("'use_sliding_window'"), std::string::npos) << st.message();

  TinySpec gq;
  gq.extra_config = {{"num_key_value_heads", 3}};
  st = load_status("gqa", gq);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("num_key_value_heads"), std::string::npos) << st.message();

  TinySpec missing;
  missing.extra_config = {{"hidden_size", nullptr}};  // merge_patch: null deletes the key
  st = load_status("no_hidden", missing);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("'hidden_size'"), std::string::npos) << st.message();
}

TEST(KvCache, LayoutAndRoom) {
  StatusOr<KvCache> c = KvCache::create(3, 10, 2, 4);
  ASSERT_TRUE(c.ok());
  KvCache cache = std::move(c).value();
  EXPECT_EQ(cache.k(1).shape, (Shape{10, 2, 4}));
  EXPECT_EQ(cache.k(1).f32() - cache.k(0).f32(), 10 * 2 * 4);
  EXPECT_NE(cache.k(2).f32(), cache.v(2).f32());
  EXPECT_EQ(cache.v(0).f32()[0], 0.0f);  // zero-initialised
  EXPECT_TRUE(cache.check_room(10).ok());
  EXPECT_EQ(cache.check_room(11).code(), StatusCode::kOutOfRange);
  cache.commit(4);
  EXPECT_EQ(cache.length(), 4);
  EXPECT_EQ(cache.remaining(), 6);
  EXPECT_EQ(cache.check_room(7).code(), StatusCode::kOutOfRange);
  EXPECT_GE(cache.bytes(), static_cast<size_t>(2 * 3 * 10 * 2 * 4 * 4));
}

}  // namespace
}  // namespace vila
