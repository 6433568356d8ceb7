#include "model/random_checkpoint.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "core/mapped_file.h"
#include "format/safetensors.h"

namespace vila {

StatusOr<RandomLlmSpec> random_llm_preset(const std::string& name) {
  RandomLlmSpec s;
  if (name == "qwen2-0.5b") return s;
  if (name == "qwen2-1.5b") {
    s.hidden = 1536, s.layers = 28, s.heads = 12, s.kv_heads = 2, s.intermediate = 8960;
    return s;
  }
  if (name == "qwen2-7b") {
    s.hidden = 3584, s.layers = 28, s.heads = 28, s.kv_heads = 4, s.intermediate = 18944;
    s.vocab = 152064, s.tie_embeddings = false;
    return s;
  }
  if (name == "tiny") {
    s.hidden = 64, s.layers = 2, s.heads = 4, s.kv_heads = 2, s.intermediate = 128;
    s.vocab = 512, s.max_position = 2048;
    return s;
  }
  return invalid_argument("unknown model preset '" + name +
                          "' (expected qwen2-0.5b, qwen2-1.5b, qwen2-7b or tiny)");
}

namespace {
class TensorFactory {
 public:
  TensorFactory(SafetensorsWriter& writer, DType dtype, uint64_t seed)
      : writer_(writer), dtype_(dtype), rng_(seed) {}

  Status add(const std::string& name, Shape shape, float mean, float stddev) {
    std::normal_distribution<float> dist(mean, stddev);
    std::vector<float> values(static_cast<size_t>(shape.numel()));
    for (float& v : values) v = stddev > 0 ? dist(rng_) : mean;
    std::vector<uint8_t> bytes(static_cast<size_t>(dtype_bytes(dtype_, shape.numel())));
    VILA_RETURN_IF_ERROR(convert_from_f32(values.data(), dtype_, bytes.data(), shape.numel()));
    return writer_.add(name, dtype_, shape, bytes.data(), bytes.size());
  }

 private:
  SafetensorsWriter& writer_;
  DType dtype_;
  std::mt19937 rng_;
};
}  // namespace

Status write_random_llm(const std::string& dir, const RandomLlmSpec& spec) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return invalid_argument(dir + ": cannot create folder: " + ec.message());
  const int64_t head_dim = spec.hidden / spec.heads;
  const bool qwen2 = spec.architecture == "Qwen2ForCausalLM";
  nlohmann::json config = {
      {"architectures", {spec.architecture}},
      {"model_type", qwen2 ? "qwen2" : "llama"},
      {"hidden_size", spec.hidden},
      {"num_hidden_layers", spec.layers},
      {"num_attention_heads", spec.heads},
      {"num_key_value_heads", spec.kv_heads},
      {"intermediate_size", spec.intermediate},
      {"vocab_size", spec.vocab},
      {"max_position_embeddings", spec.max_position},
      {"rope_theta", spec.rope_theta},
      {"rms_norm_eps", spec.rms_eps},
      {"tie_word_embeddings", spec.tie_embeddings},
      {"hidden_act", "silu"},
      {"torch_dtype", dtype_name(spec.dtype) == std::string("bf16") ? "bfloat16" : "float32"},
  };
  const std::string text = config.dump(2);
  VILA_RETURN_IF_ERROR(write_file_atomic(path_join(dir, "config.json"), text.data(), text.size()));

  SafetensorsWriter writer;
  TensorFactory f(writer, spec.dtype, spec.seed);
  const int64_t C = spec.hidden, F = spec.intermediate, Hq = spec.heads * head_dim,
                Hkv = spec.kv_heads * head_dim;
  VILA_RETURN_IF_ERROR(f.add("model.embed_tokens.weight", {spec.vocab, C}, 0, 0.02f));
  for (int64_t l = 0; l < spec.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    VILA_RETURN_IF_ERROR(f.add(p + "input_layernorm.weight", {C}, 1, 0));
    VILA_RETURN_IF_ERROR(f.add(p + "self_attn.q_proj.weight", {Hq, C}, 0, 0.02f));
    VILA_RETURN_IF_ERROR(f.add(p + "self_attn.k_proj.weight", {Hkv, C}, 0, 0.02f));
    VILA_RETURN_IF_ERROR(f.add(p + "self_attn.v_proj.weight", {Hkv, C}, 0, 0.02f));
    if (qwen2) {
      VILA_RETURN_IF_ERROR(f.add(p + "self_attn.q_proj.bias", {Hq}, 0, 0.02f));
      VILA_RETURN_IF_ERROR(f.add(p + "self_attn.k_proj.bias", {Hkv}, 0, 0.02f));
      VILA_RETURN_IF_ERROR(f.add(p + "self_attn.v_proj.bias", {Hkv}, 0, 0.02f));
    }
    VILA_RETURN_IF_ERROR(f.add(p + "self_attn.o_proj.weight", {C, Hq}, 0, 0.02f));
    VILA_RETURN_IF_ERROR(f.add(p + "post_attention_layernorm.weight", {C}, 1, 0));
    VILA_RETURN_IF_ERROR(f.add(p + "mlp.gate_proj.weight", {F, C}, 0, 0.02f));
    VILA_RETURN_IF_ERROR(f.add(p + "mlp.up_proj.weight", {F, C}, 0, 0.02f));
    VILA_RETURN_IF_ERROR(f.add(p + "mlp.down_proj.weight", {C, F}, 0, 0.02f));
  }
  VILA_RETURN_IF_ERROR(f.add("model.norm.weight", {C}, 1, 0));
  if (!spec.tie_embeddings)
    VILA_RETURN_IF_ERROR(f.add("lm_head.weight", {spec.vocab, C}, 0, 0.02f));
  return writer.write(path_join(dir, "model.safetensors"));
}

}  // namespace vila
