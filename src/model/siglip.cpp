// SigLIP vision encoder forward on the CPU in the llm.c style: one readable sequence of op calls
// per block, shape comments on every tensor. Tiles run one at a time (P rows per GEMM).
//
// Dimension legend
//   N  tiles                 S  image size (pixels)     p  patch size
//   P  patches = (S/p)²      C  hidden size             H  heads, D = C / H head dim
//   F  MLP intermediate      L  layers run (select_layer of hidden_states)
//
// Embeddings (HF SiglipVisionEmbeddings):  x = conv_p×p/stride p(pixels) + bias + pos_emb
// Per layer (HF SiglipEncoderLayer, pre-LN):
//   x += out_proj(MHA(layer_norm1(x)))          softmax(q·kᵀ · D^-0.5) per head, no mask
//   x += fc2(gelu(fc1(layer_norm2(x))))         gelu_pytorch_tanh (or erf for "gelu")
#include "model/siglip.h"

#include <cmath>
#include <string>

#include "core/mapped_file.h"
#include "model/weights.h"
#include "ops/cpu/attention_full.h"
#include "ops/cpu/norm.h"
#include "ops/cpu/op_check.h"
#include "ops/cpu/patch_embed.h"
#include "ops/cpu/vec.h"

namespace vila {

StatusOr<SiglipConfig> parse_siglip_config(const JsonFile& file) {
  const nlohmann::json* j = &file.json;
  if (!j->is_object()) return invalid_argument(file.path + ": expected a JSON object");
  // A full SiglipConfig nests the vision fields under "vision_config".
  if (j->contains("vision_config") && (*j)["vision_config"].is_object()) j = &(*j)["vision_config"];
  SiglipConfig c;
  VILA_ASSIGN_OR_RETURN(c.hidden, json_int_or(file, *j, "hidden_size", c.hidden));
  VILA_ASSIGN_OR_RETURN(c.intermediate, json_int_or(file, *j, "intermediate_size", c.intermediate));
  VILA_ASSIGN_OR_RETURN(c.n_layers, json_int_or(file, *j, "num_hidden_layers", c.n_layers));
  VILA_ASSIGN_OR_RETURN(c.n_heads, json_int_or(file, *j, "num_attention_heads", c.n_heads));
  VILA_ASSIGN_OR_RETURN(c.n_channels, json_int_or(file, *j, "num_channels", c.n_channels));
  VILA_ASSIGN_OR_RETURN(c.image_size, json_int_or(file, *j, "image_size", c.image_size));
  VILA_ASSIGN_OR_RETURN(c.patch_size, json_int_or(file, *j, "patch_size", c.patch_size));
  VILA_ASSIGN_OR_RETURN(c.ln_eps, json_number_or(file, *j, "layer_norm_eps", c.ln_eps));
  VILA_ASSIGN_OR_RETURN(std::string act,
                        json_string_or(file, *j, "hidden_act", "gelu_pytorch_tanh"));
  if (act == "gelu_pytorch_tanh" || act == "gelu_new" || act == "gelu_fast") {
    // transformers' gelu_new / gelu_fast are the same tanh formula up to rounding.
    c.act = cpu::GeluApprox::kTanh;
  } else if (act == "gelu") {
    c.act = cpu::GeluApprox::kErf;
  } else {
    return unimplemented(file.path + ": field 'hidden_act' is '" + act +
                         "' (supported: gelu_pytorch_tanh, gelu)");
  }
  auto positive = [&](const char* field, int64_t v) -> Status {
    if (v <= 0) {
      return invalid_argument(file.path + ": field '" + field + "' must be positive, got " +
                              std::to_string(v));
    }
    return ok_status();
  };
  VILA_RETURN_IF_ERROR(positive("hidden_size", c.hidden));
  VILA_RETURN_IF_ERROR(positive("intermediate_size", c.intermediate));
  VILA_RETURN_IF_ERROR(positive("num_hidden_layers", c.n_layers));
  VILA_RETURN_IF_ERROR(positive("num_attention_heads", c.n_heads));
  VILA_RETURN_IF_ERROR(positive("num_channels", c.n_channels));
  VILA_RETURN_IF_ERROR(positive("patch_size", c.patch_size));
  if (c.hidden % c.n_heads != 0) {
    return invalid_argument(file.path + ": hidden_size " + std::to_string(c.hidden) +
                            " is not a multiple of num_attention_heads " +
                            std::to_string(c.n_heads));
  }
  if (c.image_size < c.patch_size) {
    return invalid_argument(file.path + ": image_size " + std::to_string(c.image_size) +
                            " is smaller than patch_size " + std::to_string(c.patch_size));
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

StatusOr<std::unique_ptr<SiglipTower>> SiglipTower::load(const std::string& vision_dir,
                                                         int64_t select_layer) {
  const std::string config_path = path_join(vision_dir, "config.json");
  VILA_ASSIGN_OR_RETURN(JsonFile config_file, load_json_file(config_path));
  std::unique_ptr<SiglipTower> tower(new SiglipTower());
  tower->dir_ = vision_dir;
  VILA_ASSIGN_OR_RETURN(tower->config_, parse_siglip_config(config_file));
  const int64_t n_states = tower->config_.n_layers + 1;  // embeddings + one per layer
  const int64_t index = select_layer < 0 ? n_states + select_layer : select_layer;
  if (index < 0 || index >= n_states) {
    return invalid_argument(vision_dir + ": mm_vision_select_layer " +
                            std::to_string(select_layer) + " is outside the " +
                            std::to_string(n_states) + " hidden states of a " +
                            std::to_string(tower->config_.n_layers) + "-layer vision tower");
  }
  VILA_ASSIGN_OR_RETURN(tower->checkpoint_, Checkpoint::open_dir(vision_dir));
  VILA_RETURN_IF_ERROR(tower->bind_weights(index));
  return tower;
}

Status SiglipTower::bind_weights(int64_t layers_run) {
  const SiglipConfig& c = config_;
  const Checkpoint& ckpt = *checkpoint_;
  auto tensor = [&](const std::string& name, const Shape& shape) {
    return checkpoint_weight(ckpt, name, shape);
  };
  auto linear = [&](const std::string& base, int64_t out_f, int64_t in_f) {
    return checkpoint_linear(ckpt, base, out_f, in_f, /*has_bias=*/true);
  };

  const int64_t C = c.hidden, F = c.intermediate, p = c.patch_size, P = c.n_patches();
  // Released checkpoints (and VILA's save_pretrained) name tensors "vision_model.*"; transformers 5
  // saves a SiglipVisionModel without that prefix. Accept both.
  const std::string root =
      checkpoint_->has("vision_model.embeddings.patch_embedding.weight") ? "vision_model." : "";
  const std::string emb = root + "embeddings.";
  VILA_ASSIGN_OR_RETURN(weights_.patch_w,
                        tensor(emb + "patch_embedding.weight", {C, c.n_channels, p, p}));
  VILA_ASSIGN_OR_RETURN(weights_.patch_b, tensor(emb + "patch_embedding.bias", {C}));
  VILA_ASSIGN_OR_RETURN(weights_.pos_emb, tensor(emb + "position_embedding.weight", {P, C}));
  weights_.layers.resize(static_cast<size_t>(layers_run));
  for (int64_t l = 0; l < layers_run; ++l) {
    const std::string pre = root + "encoder.layers." + std::to_string(l) + ".";
    SiglipLayerWeights& w = weights_.layers[static_cast<size_t>(l)];
    VILA_ASSIGN_OR_RETURN(w.ln1_w, tensor(pre + "layer_norm1.weight", {C}));
    VILA_ASSIGN_OR_RETURN(w.ln1_b, tensor(pre + "layer_norm1.bias", {C}));
    VILA_ASSIGN_OR_RETURN(w.q, linear(pre + "self_attn.q_proj", C, C));
    VILA_ASSIGN_OR_RETURN(w.k, linear(pre + "self_attn.k_proj", C, C));
    VILA_ASSIGN_OR_RETURN(w.v, linear(pre + "self_attn.v_proj", C, C));
    VILA_ASSIGN_OR_RETURN(w.o, linear(pre + "self_attn.out_proj", C, C));
    VILA_ASSIGN_OR_RETURN(w.ln2_w, tensor(pre + "layer_norm2.weight", {C}));
    VILA_ASSIGN_OR_RETURN(w.ln2_b, tensor(pre + "layer_norm2.bias", {C}));
    VILA_ASSIGN_OR_RETURN(w.fc1, linear(pre + "mlp.fc1", F, C));
    VILA_ASSIGN_OR_RETURN(w.fc2, linear(pre + "mlp.fc2", C, F));
  }
  return ok_status();
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

void SiglipTower::ensure_activations() {
  if (act_.x != nullptr) return;
  const int64_t P = config_.n_patches(), C = config_.hidden, F = config_.intermediate;
  auto floats = [&](int64_t count) {
    return static_cast<float*>(scratch_.alloc(static_cast<size_t>(count) * sizeof(float)));
  };
  act_.x = floats(P * C);
  act_.xn = floats(P * C);
  act_.q = floats(P * C);
  act_.k = floats(P * C);
  act_.v = floats(P * C);
  act_.attn = floats(P * C);
  act_.mlp = floats(P * F);
}

Status SiglipTower::forward(const float* tiles, int64_t n_tiles, float* out) {
  const SiglipConfig& c = config_;
  if (n_tiles < 0) return invalid_argument("siglip forward: n_tiles must be >= 0");
  if (n_tiles > 0 && (tiles == nullptr || out == nullptr)) {
    return invalid_argument("siglip forward: tiles or out is null");
  }
  const int64_t S = c.image_size, P = c.n_patches(), C = c.hidden;
  ensure_activations();
  const float* pos = nullptr;
  std::vector<float> pos_f32;  // pos_emb in fp32, converted once per call
  if (weights_.pos_emb.dtype == DType::kF32) {
    pos = weights_.pos_emb.as<const float>();
  } else {
    pos_f32.resize(static_cast<size_t>(P * C));
    for (int64_t i = 0; i < P * C; ++i) pos_f32[i] = cpu::weight_at(weights_.pos_emb, i);
    pos = pos_f32.data();
  }

  for (int64_t n = 0; n < n_tiles; ++n) {
    const float* pixels = tiles + n * c.n_channels * S * S;  // (3, S, S)
    const TensorView x = f32_view(act_.x, {1, P, C});        // (P, C)
    VILA_RETURN_IF_ERROR(cpu::patch_embed(
        x, TensorView(const_cast<float*>(pixels), DType::kF32, {1, c.n_channels, S, S}),
        weights_.patch_w, weights_.patch_b));
    cpu::vec_axpy_f32(act_.x, 1.0f, pos, P * C);  // x += pos_emb
    for (const SiglipLayerWeights& w : weights_.layers) VILA_RETURN_IF_ERROR(encoder_layer(w));
    std::copy(act_.x, act_.x + P * C, out + n * P * C);
  }
  return ok_status();
}

Status SiglipTower::encoder_layer(const SiglipLayerWeights& w) {
  const SiglipConfig& c = config_;
  const int64_t P = c.n_patches(), C = c.hidden, H = c.n_heads, D = c.head_dim();
  const int64_t F = c.intermediate;
  const auto eps = static_cast<float>(c.ln_eps);
  const auto scale = static_cast<float>(std::pow(static_cast<double>(D), -0.5));

  const TensorView x = f32_view(act_.x, {P, C});        // (P, C) residual
  const TensorView xn = f32_view(act_.xn, {P, C});      // (P, C)
  const TensorView q = f32_view(act_.q, {P, C});        // (P, H*D)
  const TensorView k = f32_view(act_.k, {P, C});        // (P, H*D)
  const TensorView v = f32_view(act_.v, {P, C});        // (P, H*D)
  const TensorView attn = f32_view(act_.attn, {P, C});  // (P, H*D)
  const TensorView mlp = f32_view(act_.mlp, {P, F});    // (P, F)

  // Attention block
  VILA_RETURN_IF_ERROR(cpu::layer_norm(xn, x, w.ln1_w, w.ln1_b, eps));
  VILA_RETURN_IF_ERROR(cpu::linear(q, xn, w.q));
  VILA_RETURN_IF_ERROR(cpu::linear(k, xn, w.k));
  VILA_RETURN_IF_ERROR(cpu::linear(v, xn, w.v));
  VILA_RETURN_IF_ERROR(cpu::attention_full(f32_view(act_.attn, {P, H, D}),
                                           f32_view(act_.q, {P, H, D}), f32_view(act_.k, {P, H, D}),
                                           f32_view(act_.v, {P, H, D}), scale));
  VILA_RETURN_IF_ERROR(cpu::linear(xn, attn, w.o));  // xn (P, C) = out_proj(attn)
  cpu::vec_axpy_f32(act_.x, 1.0f, act_.xn, P * C);   // x += attn_out

  // MLP block
  VILA_RETURN_IF_ERROR(cpu::layer_norm(xn, x, w.ln2_w, w.ln2_b, eps));
  VILA_RETURN_IF_ERROR(cpu::linear(mlp, xn, w.fc1));  // (P, F)
  VILA_RETURN_IF_ERROR(cpu::gelu(mlp, mlp, c.act));
  VILA_RETURN_IF_ERROR(cpu::linear(xn, mlp, w.fc2));  // xn (P, C) = fc2(gelu(fc1))
  cpu::vec_axpy_f32(act_.x, 1.0f, act_.xn, P * C);    // x += mlp_out
  return ok_status();
}

}  // namespace vila
