// Saving and loading a trainable VLM in the released NVILA layout ("vila-upload"), the folder
// VilaModel::load (model/vila_model.h) and transformers read:
//   DIR/config.json                      top config: llm_cfg, vision_tower_cfg, mm_projector_cfg,
//                                        mm_hidden_size, mm_vision_select_layer, chat_template...
//   DIR/llm/{config.json, generation_config.json, model.safetensors, tokenizer files}
//   DIR/vision_tower/{config.json, preprocessor_config.json, model.safetensors}
//   DIR/mm_projector/{config.json, model.safetensors}
// Weights are stored as fp32 (default: inference then matches training exactly) or bf16 / f16.
//
// Crash safety: the whole folder is first written as `DIR.tmp-<pid>` (each file itself through a
// temporary name + rename). Only when it is complete does it replace DIR: by an atomic exchange of
// the two names (renameat2 RENAME_EXCHANGE) when the file system supports it, after which the old
// folder (now under the temporary name) is removed; otherwise DIR is first renamed to
// `DIR.old-<pid>`, the new folder renamed to DIR, and the old one removed. So at every moment a
// complete checkpoint exists: DIR, or (only between the two renames of the fallback) DIR.old-<pid>.
// A save that fails leaves DIR untouched and removes its temporary folder.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "train/model/vlm_config.h"
#include "train/params.h"

namespace vila::train {

struct SaveReleasedOptions {
  DType dtype = DType::kF32;  // stored weight dtype: kF32, kBF16 or kF16
  // Tokenizer files copied into llm/ (e.g. tokenizer.json, tokenizer_config.json, or vocab.json +
  // merges.txt + added_tokens.json ...); see tokenizer_files_in.
  std::vector<std::string> tokenizer_files;
  // Extra files written into llm/ as (file name, content), e.g. a tokenizer.json made in memory.
  std::vector<std::pair<std::string, std::string>> llm_files;
  std::string chat_template = "qwen2";  // top config "chat_template"
};

// The tokenizer files present in `dir` (tokenizer.json, tokenizer_config.json, vocab.json,
// merges.txt, added_tokens.json, special_tokens_map.json, tokenizer.model), as paths.
std::vector<std::string> tokenizer_files_in(const std::string& dir);

// Writes `params` (every parameter of param_specs(config)) to `dir` as described at the top.
// InvalidArgument naming a parameter that is missing from `params` or mis-shaped; NotFound naming
// a tokenizer file that does not exist.
Status save_released(const std::string& dir, const VlmConfig& config, const ParamStore& params,
                     const SaveReleasedOptions& options = {});

// The VlmConfig of a released folder (its llm/, vision_tower/, mm_projector/ config.json files
// and the top config.json). Unimplemented for an architecture this engine does not train.
StatusOr<VlmConfig> read_released_config(const std::string& dir);

// Reads the config (into *config when non-null), registers its parameters in `params`
// (register_params) and fills their values from the weights (f32, bf16 or f16). NotFound naming
// the folder and tensor for a missing tensor; InvalidArgument naming tensor, file and both shapes
// for a wrong shape.
Status load_released(const std::string& dir, ParamStore& params, VlmConfig* config);

}  // namespace vila::train
