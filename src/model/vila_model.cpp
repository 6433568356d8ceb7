#include "model/vila_model.h"

#include <algorithm>

#include "core/mapped_file.h"
#include "format/json_config.h"
#include "format/safetensors.h"
#include "model/vision_cuda.h"

namespace vila {

const char* checkpoint_layout_name(CheckpointLayout layout) {
  return layout == CheckpointLayout::kNvila ? "nvila" : "hf";
}

namespace {

std::string basename_of(std::string path) {
  while (!path.empty() && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The subfolder a sub-config points at: basename of its _name_or_path if that folder exists,
// else the conventional name.
std::string resolve_subdir(const std::string& dir, const nlohmann::json& top,
                           const std::string& cfg_key, const std::string& fallback) {
  const auto it = top.find(cfg_key);
  if (it != top.end() && it->is_object()) {
    const auto name = it->find("_name_or_path");
    if (name != it->end() && name->is_string()) {
      const std::string candidate = path_join(dir, basename_of(name->get<std::string>()));
      if (file_exists(path_join(candidate, "config.json"))) return candidate;
    }
  }
  return path_join(dir, fallback);
}

// Summarises vision_tower/ or mm_projector/ from their config and safetensors headers.
std::optional<SubmoduleSummary> summarize_submodule(const std::string& dir,
                                                    const std::string& type_key) {
  if (!file_exists(path_join(dir, "config.json"))) return std::nullopt;
  SubmoduleSummary summary;
  summary.dir = dir;
  auto config = load_json_file(path_join(dir, "config.json"));
  if (config.ok() && config->json.is_object()) {
    auto type = json_string_or(*config, config->json, type_key, "");
    if (type.ok()) summary.type = *type;
  }
  auto checkpoint = Checkpoint::open_dir(dir);
  if (checkpoint.ok()) {
    summary.parameters = (*checkpoint)->total_parameters();
    const auto names = (*checkpoint)->names();
    if (!names.empty()) {
      auto entry = (*checkpoint)->get(names.front());
      if (entry.ok()) summary.dtype = dtype_name((*entry)->dtype);
    }
  }
  return summary;
}

bool has_tokenizer_files(const std::string& dir) {
  for (const char* name : {"tokenizer.json", "vocab.json", "tokenizer.model"}) {
    if (file_exists(path_join(dir, name))) return true;
  }
  return false;
}

void add_unique(std::vector<int32_t>& ids, int32_t id) {
  if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
}

}  // namespace

VilaModel::VilaModel() = default;
VilaModel::~VilaModel() = default;

void VilaModel::use_cuda_vision(bool on, DType compute, int device) {
  if (cuda_vision_ && (compute != cuda_vision_dtype_ || device != cuda_vision_device_)) {
    cuda_vision_.reset();
  }
  cuda_vision_on_ = on;
  cuda_vision_dtype_ = compute;
  cuda_vision_device_ = device;
}

StatusOr<std::unique_ptr<VilaModel>> VilaModel::load(const std::string& dir,
                                                     const VilaModelOptions& options) {
  auto progress = [&](const std::string& stage, double fraction) {
    if (options.progress) options.progress(stage, fraction);
  };
  auto model = std::make_unique<VilaModel>();
  model->dir_ = dir;

  const std::string top_config_path = path_join(dir, "config.json");
  if (!file_exists(dir)) return not_found(dir + ": no such model folder");
  if (!file_exists(top_config_path)) return not_found(top_config_path + ": no such file");
  VILA_ASSIGN_OR_RETURN(JsonFile top, load_json_file(top_config_path));
  if (!top.json.is_object()) return invalid_argument(top_config_path + ": expected a JSON object");
  progress("config", 1.0);

  std::string config_template_name;
  if (top.json.contains("llm_cfg") || file_exists(path_join(dir, "llm/config.json"))) {
    model->layout_ = CheckpointLayout::kNvila;
    model->llm_dir_ = resolve_subdir(dir, top.json, "llm_cfg", "llm");
    model->vision_tower_ = summarize_submodule(
        resolve_subdir(dir, top.json, "vision_tower_cfg", "vision_tower"), "model_type");
    model->mm_projector_ = summarize_submodule(
        resolve_subdir(dir, top.json, "mm_projector_cfg", "mm_projector"), "mm_projector_type");
    auto name = json_string_or(top, top.json, "chat_template", "");
    if (name.ok()) config_template_name = *name;
  } else if (top.json.contains("text_config") && top.json.contains("vision_config")) {
    return unimplemented(top_config_path +
                         ": single-folder '-hf' NVILA layout (text_config/vision_config) is not "
                         "supported yet; use the released vila-upload layout (llm/, "
                         "vision_tower/, mm_projector/)");
  } else {
    model->layout_ = CheckpointLayout::kHfPlain;
    model->llm_dir_ = dir;
  }

  progress("llm weights", 0.0);
  VILA_ASSIGN_OR_RETURN(model->llm_, LanguageModel::load(model->llm_dir_));
  progress("llm weights", 1.0);

  const std::string tokenizer_dir = has_tokenizer_files(model->llm_dir_) ? model->llm_dir_ : dir;
  VILA_ASSIGN_OR_RETURN(model->tokenizer_, Tokenizer::load_dir(tokenizer_dir));
  progress("tokenizer", 1.0);
  const Tokenizer& tok = *model->tokenizer_;

  // Chat template.
  if (!options.chat_template.empty()) {
    VILA_ASSIGN_OR_RETURN(model->chat_template_.kind,
                          chat_template_from_name(options.chat_template));
  } else {
    ChatTemplateHints hints;
    hints.config_name = config_template_name;
    hints.model_path = dir;
    hints.has_im_start = tok.piece_to_id("<|im_start|>").has_value();
    hints.has_eot_id = tok.piece_to_id("<|eot_id|>").has_value();
    hints.is_sentencepiece = tok.kind() == TokenizerKind::kSentencePiece;
    model->chat_template_.kind = choose_chat_template(hints);
    // VILA renders with the tokenizer's own template when config.json names none: take its
    // default system prompt (NVILA layout only; plain folders use VILA's qwen2 text).
    if (model->layout_ == CheckpointLayout::kNvila && config_template_name.empty() &&
        model->chat_template_.kind == ChatTemplateKind::kQwen2) {
      if (auto system = chatml_default_system_prompt(tok.chat_template_source)) {
        model->chat_template_.system_prompt = *system;
      }
    }
  }

  // Stop tokens: eos, the end-of-turn token of the template, generation_config.json eos ids.
  if (tok.eos_id) add_unique(model->stop_ids_, *tok.eos_id);
  const std::string eot = model->chat_template_.end_of_turn();
  if (!eot.empty()) {
    if (auto id = tok.piece_to_id(eot)) add_unique(model->stop_ids_, *id);
  }
  const std::string gen_config_path = path_join(model->llm_dir_, "generation_config.json");
  if (file_exists(gen_config_path)) {
    VILA_ASSIGN_OR_RETURN(JsonFile gen, load_json_file(gen_config_path));
    const auto it = gen.json.find("eos_token_id");
    if (it != gen.json.end()) {
      if (it->is_number_integer()) add_unique(model->stop_ids_, it->get<int32_t>());
      if (it->is_array()) {
        for (const auto& v : *it) {
          if (v.is_number_integer()) add_unique(model->stop_ids_, v.get<int32_t>());
        }
      }
    }
  }
  model->image_token_id_ = tok.piece_to_id("<image>");
  model->video_token_id_ = tok.piece_to_id("<vila/video>");
  return model;
}

StatusOr<std::vector<int32_t>> VilaModel::encode_prompt(const std::string& prompt, bool raw) const {
  std::vector<int32_t> ids;
  ChatTemplate templ = chat_template_;
  if (raw) templ.kind = ChatTemplateKind::kNone;
  if (templ.prepend_bos()) {
    if (!tokenizer_->bos_id) {
      return invalid_argument(llm_dir_ + ": chat template " + chat_template_name(templ.kind) +
                              " needs a BOS token, none is set");
    }
    ids.push_back(*tokenizer_->bos_id);
  }
  const std::vector<int32_t> body = tokenizer_->encode(templ.render_user_turn(prompt));
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

}  // namespace vila
