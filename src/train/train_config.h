// `vila train --config FILE`: the whole description of a training run, read from JSON or YAML
// (YAML is converted to JSON first, so both spell the same keys). Every field has a default; an
// unknown key, a wrong type or a value out of range is InvalidArgument naming the file and the
// field ("run.yaml: optimizer.lr: must be > 0").
//
//   model:      preset "fashion" | "tiny" (train/model/vlm_config.h), or init_from: a released
//               checkpoint folder to fine-tune; overrides of single geometry fields by name.
//   tokenizer:  path to a tokenizer.json, or "train": a byte-level BPE of vocab_size trained on
//               the run's own text (vila tokenizer train's code).
//   data:       fashion: {caption, question, compare, few_shot} sample counts from the
//               Fashion-MNIST training split; jsonl: [{path, format: llava|openai|mmc4,
//               image_root}]; text: gcide | brown | a file path, with text_samples; seed.
//   stage:      align | pretrain | sft (VILA's stages: which modules train, see stage_modules);
//               freeze / unfreeze: module names applied after the stage.
//   optimizer:  lr, beta1, beta2, eps, weight_decay, state_format (f32 | bf16 | i8_block).
//   schedule:   name (cosine | linear | constant), warmup_ratio, min_lr_ratio.
//   steps (optimizer steps; 0: as many as fit in `minutes`), minutes (wall-clock budget, 0: none),
//   batch_tokens (tokens per micro-batch), grad_accum, clip_grad_norm (0: off), precision
//   (fp32 | bf16: the Linear GEMM preset), seed, device (cpu | cuda), deterministic (cuda: bitwise
//   reproducible attention backward too, slower).
//   checkpoint: every (steps), keep (newest N kept), on_nan (stop | skip).
//   eval:       every (steps), samples (held-out Fashion-MNIST captions), examples (printed).
//   output:     the run folder (metrics.jsonl, checkpoints, model/, curves).
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "train/params.h"

namespace vila::train {

// VILA's training stages (NVILA paper, section 2.2 / VILA's scripts):
//   kAlign     stage 1, projector only (vision tower and LLM frozen)
//   kPretrain  stage 2, projector + LLM on interleaved data (vision tower frozen)
//   kSft       stage 3, everything, vision tower included
enum class TrainStage { kAlign, kPretrain, kSft };
const char* train_stage_name(TrainStage stage);
StatusOr<TrainStage> parse_train_stage(std::string_view name);
// Trainable flag per module (indexed by ParamModule) for a stage.
std::array<bool, kParamModules> stage_modules(TrainStage stage);

struct JsonlSource {
  std::string path;
  std::string format = "llava";  // llava | openai | mmc4
  std::string image_root;        // empty: the file's folder
};

struct TrainConfig {
  std::string source;  // the config file, for messages

  // model
  std::string model_preset = "fashion";
  std::string init_from;           // released checkpoint folder, or empty
  nlohmann::json model_overrides;  // object of geometry fields, or null

  // tokenizer
  std::string tokenizer = "train";  // "train" or a tokenizer.json path
  int64_t tokenizer_vocab = 512;

  // data
  int64_t fashion_caption = 0, fashion_question = 0, fashion_compare = 0, fashion_few_shot = 0;
  std::vector<JsonlSource> jsonl;
  std::string text;  // "", "gcide", "brown" or a file path
  int64_t text_samples = 0;
  uint64_t data_seed = 0;

  // what trains
  TrainStage stage = TrainStage::kSft;
  std::vector<std::string> freeze, unfreeze;

  // optimizer and schedule
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  std::string state_format = "f32";
  std::string schedule = "cosine";
  double warmup_ratio = 0.03, min_lr_ratio = 0.0;

  // loop
  int64_t steps = 0;
  double minutes = 0;
  int64_t batch_tokens = 1024;
  int64_t grad_accum = 1;
  double clip_grad_norm = 1.0;
  std::string precision = "fp32";
  uint64_t seed = 0;
  std::string device = "cpu";
  // cuda: also the attention backward without atomics (the materialised one instead of
  // FlashAttention-2, slower), so that a run, and a --resume, is bitwise reproducible at every
  // head dim (the rest of the CUDA step always is; the CPU step always is).
  bool deterministic = false;

  // checkpoints
  int64_t checkpoint_every = 0;  // 0: only at the end
  int64_t checkpoint_keep = 2;
  std::string on_nan = "stop";  // stop | skip

  // evaluation
  int64_t eval_every = 0;
  int64_t eval_samples = 500;
  int64_t eval_examples = 4;

  std::string output = "runs/train";

  // Trainable flag per module after stage, freeze and unfreeze.
  StatusOr<std::array<bool, kParamModules>> trainable_modules() const;

  nlohmann::json to_json() const;
};

// Parses a config object; `source` names it in messages. Unknown keys are errors.
StatusOr<TrainConfig> train_config_from_json(const nlohmann::json& j, const std::string& source);
// Reads a .json, .yaml or .yml file (by extension; other names are tried as JSON).
StatusOr<TrainConfig> load_train_config(const std::string& path);
// YAML text to JSON (scalars typed as YAML 1.2 core: true/false, null, ints, floats, strings).
StatusOr<nlohmann::json> yaml_to_json(const std::string& text, const std::string& source);

}  // namespace vila::train
