// save_released / load_released (see released_io.h).
#include "train/model/released_io.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "core/mapped_file.h"
#include "format/json_config.h"
#include "format/safetensors.h"

namespace vila::train {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kLlmDir = "llm";
constexpr const char* kVisionDir = "vision_tower";
constexpr const char* kProjectorDir = "mm_projector";
constexpr const char* kTransformersVersion = "4.46.0";
constexpr double kSiglipMeanStd = 0.5;  // SigLIP normalises (x - 0.5) / 0.5
constexpr double kRescale = 1.0 / 255.0;
constexpr int kBicubic = 3;  // PIL resample id

const char* torch_dtype(DType d) {
  return d == DType::kBF16 ? "bfloat16" : d == DType::kF16 ? "float16" : "float32";
}

json id_or_null(int64_t id) { return id >= 0 ? json(id) : json(nullptr); }

json llm_config_json(const LanguageConfig& l, DType dtype) {
  return {{"architectures", {"Qwen2ForCausalLM"}},
          {"model_type", "qwen2"},
          {"attention_dropout", 0.0},
          {"bos_token_id", id_or_null(l.bos_token_id)},
          {"eos_token_id", id_or_null(l.eos_token_id)},
          {"pad_token_id", id_or_null(l.pad_token_id)},
          {"hidden_act", "silu"},
          {"hidden_size", l.hidden},
          {"initializer_range", 0.02},
          {"intermediate_size", l.intermediate},
          {"max_position_embeddings", l.max_position},
          {"max_window_layers", l.layers},
          {"num_attention_heads", l.heads},
          {"num_hidden_layers", l.layers},
          {"num_key_value_heads", l.kv_heads},
          {"rms_norm_eps", l.rms_eps},
          {"rope_scaling", nullptr},
          {"rope_theta", l.rope_theta},
          {"sliding_window", nullptr},
          {"use_sliding_window", false},
          {"tie_word_embeddings", l.tie_word_embeddings},
          {"torch_dtype", torch_dtype(dtype)},
          {"transformers_version", kTransformersVersion},
          {"use_cache", true},
          {"vocab_size", l.vocab}};
}

json vision_config_json(const VisionTowerConfig& v, DType dtype) {
  return {{"architectures", {"SiglipVisionModel"}},
          {"model_type", "siglip_vision_model"},
          {"attention_dropout", 0.0},
          {"hidden_act", "gelu_pytorch_tanh"},
          {"hidden_size", v.hidden},
          {"image_size", v.image_size},
          {"intermediate_size", v.intermediate},
          {"layer_norm_eps", v.layer_norm_eps},
          {"num_attention_heads", v.heads},
          {"num_channels", v.channels},
          {"num_hidden_layers", v.layers},
          {"patch_size", v.patch_size},
          {"torch_dtype", torch_dtype(dtype)},
          {"transformers_version", kTransformersVersion},
          {"vision_use_head", false}};
}

json projector_config_json(const ProjectorConfig& p, DType dtype) {
  return {{"architectures", {"MultimodalProjector"}},
          {"mm_projector_type", p.type},
          {"model_type", "v2l_projector"},
          {"torch_dtype", torch_dtype(dtype)},
          {"transformers_version", kTransformersVersion}};
}

json top_config_json(const VlmConfig& c, const SaveReleasedOptions& o) {
  json llm = llm_config_json(c.llm, o.dtype), vis = vision_config_json(c.vision, o.dtype),
       proj = projector_config_json(c.projector, o.dtype);
  llm["_name_or_path"] = kLlmDir;
  vis["_name_or_path"] = kVisionDir;
  proj["_name_or_path"] = kProjectorDir;
  return {{"architectures", {"LlavaLlamaModel"}},
          {"model_type", "llava_llama"},
          {"chat_template", o.chat_template},
          {"hidden_size", c.llm.hidden},
          {"mm_hidden_size", c.vision.hidden},
          {"mm_projector_type", c.projector.type},
          {"mm_vision_select_layer", c.vision.select_layer},
          {"mm_vision_select_feature", "cls_patch"},  // SigLIP has no CLS token: keep all
          {"mm_use_im_start_end", false},
          {"mm_use_im_patch_token", false},
          {"image_aspect_ratio", "resize"},
          {"dynamic_s2", false},
          {"s2", false},
          {"vision_resolution", -1},
          {"model_dtype", std::string("torch.") + torch_dtype(o.dtype)},
          {"tune_language_model", true},
          {"tune_mm_projector", true},
          {"tune_vision_tower", true},
          {"llm_cfg", llm},
          {"vision_tower_cfg", vis},
          {"mm_projector_cfg", proj},
          {"vila_cpp_train_config", c.to_json()},
          {"transformers_version", kTransformersVersion}};
}

Status write_json(const std::string& path, const json& j) {
  const std::string text = j.dump(2) + "\n";
  return write_file_atomic(path, text.data(), text.size());
}

Status make_dir(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return invalid_argument(path + ": cannot create folder: " + ec.message());
  return ok_status();
}

// One module's model.safetensors from the parameters of that module, in spec order.
Status write_module(const std::string& path, ParamModule module,
                    const std::vector<ParamSpec>& specs, const ParamStore& params, DType dtype) {
  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  std::vector<uint8_t> bytes;
  auto all = params.all();
  for (const ParamSpec& s : specs) {
    if (s.module != module) continue;
    const Param* p = nullptr;
    for (const Param* q : all) {
      if (q->module == s.module && q->name == s.name) p = q;
    }
    const std::string full = std::string(param_module_dir(module)) + "/" + s.name;
    if (p == nullptr) return invalid_argument("save_released: parameter " + full + " is missing");
    if (p->shape != s.shape) {
      return invalid_argument("save_released: parameter " + full + " has shape " +
                              p->shape.to_string() + ", the config needs " + s.shape.to_string());
    }
    bytes.resize(static_cast<size_t>(dtype_bytes(dtype, p->numel())));
    VILA_RETURN_IF_ERROR(convert_from_f32(p->value.data(), dtype, bytes.data(), p->numel()));
    VILA_RETURN_IF_ERROR(writer.add(s.name, dtype, s.shape, bytes.data(), bytes.size()));
  }
  return writer.write(path);
}

Status copy_into(const std::string& src, const std::string& dst_dir) {
  if (!file_exists(src)) return not_found("save_released: tokenizer file " + src + " not found");
  VILA_ASSIGN_OR_RETURN(std::string text, read_text_file(src));
  const std::string dst = path_join(dst_dir, fs::path(src).filename().string());
  return write_file_atomic(dst, text.data(), text.size());
}

Status write_folder(const std::string& root, const VlmConfig& c, const ParamStore& params,
                    const SaveReleasedOptions& o) {
  VILA_ASSIGN_OR_RETURN(std::vector<ParamSpec> specs, param_specs(c));
  const std::string llm = path_join(root, kLlmDir), vis = path_join(root, kVisionDir),
                    proj = path_join(root, kProjectorDir);
  for (const std::string& d : {llm, vis, proj}) VILA_RETURN_IF_ERROR(make_dir(d));
  VILA_RETURN_IF_ERROR(
      write_module(path_join(llm, "model.safetensors"), ParamModule::kLlm, specs, params, o.dtype));
  VILA_RETURN_IF_ERROR(write_module(path_join(vis, "model.safetensors"), ParamModule::kVisionTower,
                                    specs, params, o.dtype));
  VILA_RETURN_IF_ERROR(write_module(path_join(proj, "model.safetensors"), ParamModule::kProjector,
                                    specs, params, o.dtype));
  VILA_RETURN_IF_ERROR(write_json(path_join(llm, "config.json"), llm_config_json(c.llm, o.dtype)));
  json gen = {{"bos_token_id", id_or_null(c.llm.bos_token_id)},
              {"eos_token_id", id_or_null(c.llm.eos_token_id)},
              {"pad_token_id", id_or_null(c.llm.pad_token_id)},
              {"transformers_version", kTransformersVersion}};
  VILA_RETURN_IF_ERROR(write_json(path_join(llm, "generation_config.json"), gen));
  for (const std::string& f : o.tokenizer_files) VILA_RETURN_IF_ERROR(copy_into(f, llm));
  for (const auto& [name, content] : o.llm_files) {
    VILA_RETURN_IF_ERROR(write_file_atomic(path_join(llm, name), content.data(), content.size()));
  }
  VILA_RETURN_IF_ERROR(
      write_json(path_join(vis, "config.json"), vision_config_json(c.vision, o.dtype)));
  const int64_t S = c.vision.image_size;
  json pre = {{"do_convert_rgb", true},
              {"do_normalize", true},
              {"do_rescale", true},
              {"do_resize", true},
              {"image_mean", {kSiglipMeanStd, kSiglipMeanStd, kSiglipMeanStd}},
              {"image_std", {kSiglipMeanStd, kSiglipMeanStd, kSiglipMeanStd}},
              {"image_processor_type", "SiglipImageProcessor"},
              {"processor_class", "SiglipProcessor"},
              {"resample", kBicubic},
              {"rescale_factor", kRescale},
              {"size", {{"height", S}, {"width", S}}}};
  VILA_RETURN_IF_ERROR(write_json(path_join(vis, "preprocessor_config.json"), pre));
  VILA_RETURN_IF_ERROR(
      write_json(path_join(proj, "config.json"), projector_config_json(c.projector, o.dtype)));
  return write_json(path_join(root, "config.json"), top_config_json(c, o));
}

// Replaces `dir` by the complete folder `tmp` (see the header for the order of renames).
Status swap_into_place(const std::string& tmp, const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    if (std::rename(tmp.c_str(), dir.c_str()) != 0) {
      return invalid_argument(dir + ": rename from " + tmp + " failed: " + std::strerror(errno));
    }
    return ok_status();
  }
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
    fs::remove_all(tmp, ec);  // now the old checkpoint
    return ok_status();
  }
  const std::string old = dir + ".old-" + std::to_string(::getpid());
  fs::remove_all(old, ec);
  if (std::rename(dir.c_str(), old.c_str()) != 0) {
    return invalid_argument(dir + ": rename to " + old + " failed: " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), dir.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::rename(old.c_str(), dir.c_str());  // put the old one back
    return invalid_argument(dir + ": rename from " + tmp + " failed: " + why);
  }
  fs::remove_all(old, ec);
  return ok_status();
}

}  // namespace

std::vector<std::string> tokenizer_files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                           "added_tokens.json", "special_tokens_map.json", "tokenizer.model"}) {
    const std::string p = path_join(dir, name);
    if (file_exists(p)) out.push_back(p);
  }
  return out;
}

Status save_released(const std::string& dir, const VlmConfig& config, const ParamStore& params,
                     const SaveReleasedOptions& options) {
  VILA_RETURN_IF_ERROR(config.validate());
  if (options.dtype != DType::kF32 && options.dtype != DType::kBF16 &&
      options.dtype != DType::kF16) {
    return invalid_argument(std::string("save_released: dtype ") + dtype_name(options.dtype) +
                            " (expected f32, bf16 or f16)");
  }
  std::string target = dir;
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  const std::string tmp = target + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  Status st = write_folder(tmp, config, params, options);
  if (st.ok()) st = swap_into_place(tmp, target);
  if (!st.ok()) fs::remove_all(tmp, ec);
  return st;
}

StatusOr<VlmConfig> read_released_config(const std::string& dir) {
  VlmConfig c;
  VILA_ASSIGN_OR_RETURN(JsonFile top, load_json_file(path_join(dir, "config.json")));
  VILA_ASSIGN_OR_RETURN(c.vision.select_layer,
                        json_int_or(top, top.json, "mm_vision_select_layer", -2));
  VILA_ASSIGN_OR_RETURN(std::string feature,
                        json_string_or(top, top.json, "mm_vision_select_feature", "patch"));
  if (feature != "cls_patch") {
    return unimplemented(top.path + ": field 'mm_vision_select_feature' is '" + feature +
                         "' (training supports cls_patch: every SigLIP token)");
  }

  VILA_ASSIGN_OR_RETURN(JsonFile lf,
                        load_json_file(path_join(path_join(dir, kLlmDir), "config.json")));
  const json& lj = lf.json;
  VILA_ASSIGN_OR_RETURN(std::string model_type, json_string_or(lf, lj, "model_type", ""));
  if (model_type != "qwen2") {
    return unimplemented(lf.path + ": field 'model_type' is '" + model_type +
                         "' (training supports qwen2)");
  }
  LanguageConfig& l = c.llm;
  VILA_ASSIGN_OR_RETURN(l.hidden, json_int(lf, lj, "hidden_size"));
  VILA_ASSIGN_OR_RETURN(l.layers, json_int(lf, lj, "num_hidden_layers"));
  VILA_ASSIGN_OR_RETURN(l.heads, json_int(lf, lj, "num_attention_heads"));
  VILA_ASSIGN_OR_RETURN(l.kv_heads, json_int_or(lf, lj, "num_key_value_heads", l.heads));
  VILA_ASSIGN_OR_RETURN(l.intermediate, json_int(lf, lj, "intermediate_size"));
  VILA_ASSIGN_OR_RETURN(l.vocab, json_int(lf, lj, "vocab_size"));
  VILA_ASSIGN_OR_RETURN(l.max_position, json_int_or(lf, lj, "max_position_embeddings", 32768));
  VILA_ASSIGN_OR_RETURN(l.rope_theta, json_number_or(lf, lj, "rope_theta", 10000.0));
  VILA_ASSIGN_OR_RETURN(l.rms_eps, json_number_or(lf, lj, "rms_norm_eps", 1e-6));
  VILA_ASSIGN_OR_RETURN(l.tie_word_embeddings, json_bool_or(lf, lj, "tie_word_embeddings", false));
  l.qkv_bias = true;
  for (auto [key, dst] :
       {std::pair{"bos_token_id", &l.bos_token_id}, std::pair{"eos_token_id", &l.eos_token_id},
        std::pair{"pad_token_id", &l.pad_token_id}}) {
    auto it = lj.find(key);
    *dst = it != lj.end() && it->is_number_integer() ? it->get<int64_t>() : -1;
  }

  VILA_ASSIGN_OR_RETURN(JsonFile vf,
                        load_json_file(path_join(path_join(dir, kVisionDir), "config.json")));
  const json& vj = vf.json;
  VisionTowerConfig& v = c.vision;
  VILA_ASSIGN_OR_RETURN(v.image_size, json_int(vf, vj, "image_size"));
  VILA_ASSIGN_OR_RETURN(v.patch_size, json_int(vf, vj, "patch_size"));
  VILA_ASSIGN_OR_RETURN(v.channels, json_int_or(vf, vj, "num_channels", 3));
  VILA_ASSIGN_OR_RETURN(v.hidden, json_int(vf, vj, "hidden_size"));
  VILA_ASSIGN_OR_RETURN(v.layers, json_int(vf, vj, "num_hidden_layers"));
  VILA_ASSIGN_OR_RETURN(v.heads, json_int(vf, vj, "num_attention_heads"));
  VILA_ASSIGN_OR_RETURN(v.intermediate, json_int(vf, vj, "intermediate_size"));
  VILA_ASSIGN_OR_RETURN(v.layer_norm_eps, json_number_or(vf, vj, "layer_norm_eps", 1e-6));
  VILA_ASSIGN_OR_RETURN(std::string act, json_string_or(vf, vj, "hidden_act", "gelu_pytorch_tanh"));
  if (act != "gelu_pytorch_tanh") {
    return unimplemented(vf.path + ": field 'hidden_act' is '" + act +
                         "' (training supports gelu_pytorch_tanh)");
  }

  VILA_ASSIGN_OR_RETURN(JsonFile pf,
                        load_json_file(path_join(path_join(dir, kProjectorDir), "config.json")));
  VILA_ASSIGN_OR_RETURN(c.projector.type, json_string(pf, pf.json, "mm_projector_type"));
  Status st = c.validate();
  if (!st.ok()) return Status(st.code(), dir + ": " + st.message());
  return c;
}

Status load_released(const std::string& dir, ParamStore& params, VlmConfig* config) {
  VILA_ASSIGN_OR_RETURN(VlmConfig c, read_released_config(dir));
  VILA_RETURN_IF_ERROR(register_params(c, params));
  VILA_ASSIGN_OR_RETURN(std::vector<ParamSpec> specs, param_specs(c));
  for (ParamModule module :
       {ParamModule::kVisionTower, ParamModule::kProjector, ParamModule::kLlm}) {
    VILA_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> ckpt,
                          Checkpoint::open_dir(path_join(dir, param_module_dir(module))));
    for (const ParamSpec& s : specs) {
      if (s.module != module) continue;
      VILA_ASSIGN_OR_RETURN(const SafetensorsEntry* e, ckpt->get(s.name, s.shape));
      Param* p = params.find(module, s.name);
      VILA_RETURN_IF_ERROR(convert_to_f32(e->dtype, e->data, p->value.data(), p->numel())
                               .with_context(e->file + ": tensor '" + s.name + "'"));
    }
  }
  if (config != nullptr) *config = c;
  return ok_status();
}

}  // namespace vila::train
