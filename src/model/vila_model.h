// VilaModel: a whole checkpoint folder as users point at it.
//
// Layouts:
//  - NVILA / VILA1.5 "vila-upload": config.json with llm_cfg / vision_tower_cfg / mm_projector_cfg
//    and subfolders llm/, vision_tower/, mm_projector/ (the subfolder names come from each
//    sub-config's _name_or_path basename).
//  - a plain Hugging Face LLM folder (Qwen2ForCausalLM / LlamaForCausalLM).
// Images run through the vision tower and projector in build_prompt: on the CPU (VisionEncoder,
// the fp32 oracle) or, after use_cuda_vision, on the GPU (CudaVisionEncoder, created once from the
// CPU encoder's weights and cached).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "model/llm.h"
#include "model/vision_encoder.h"
#include "runtime/chat_template.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"
#include "vision/image.h"
#include "vision/preprocess.h"

namespace vila {

enum class CheckpointLayout { kNvila, kHfPlain };
const char* checkpoint_layout_name(CheckpointLayout layout);

// A sub-module of an NVILA checkpoint that this build does not run yet, summarised for `info`.
struct SubmoduleSummary {
  std::string dir;         // absolute or as given
  std::string type;        // model_type / mm_projector_type
  int64_t parameters = 0;  // from the safetensors headers
  std::string dtype;       // dtype of the first tensor
};

// Called as loading proceeds: stage name and fraction done in [0, 1].
using LoadProgressFn = std::function<void(const std::string& stage, double fraction)>;

struct VilaModelOptions {
  std::string chat_template;  // force a template by name; empty: choose as VILA does
  LoadProgressFn progress;
};

// A prompt with its images turned into LLM input rows (see build_prompt).
struct MediaPrompt {
  PromptInput input;                  // ids (media ids in place) + spliced embeddings
  std::vector<int64_t> image_tokens;  // visual tokens per image (all of its media items)
  // Per media item in prompt order: first row in input.embeds and number of visual rows.
  std::vector<std::pair<int64_t, int64_t>> media_rows;
  std::string message;                // the user message after VILA's rules (<image> markers)
  double preprocess_ms = 0;           // decode + resize + tiles + normalise
  double vision_ms = 0;               // SigLIP
  double projector_ms = 0;            // S2 merge + projector
  std::string vision_device = "cpu";  // where the vision tower ran: "cpu" or "cuda"
};

class CudaVisionEncoder;  // model/vision_cuda.h

class VilaModel {
 public:
  VilaModel();
  ~VilaModel();
  VilaModel(const VilaModel&) = delete;
  VilaModel& operator=(const VilaModel&) = delete;

  static StatusOr<std::unique_ptr<VilaModel>> load(const std::string& dir,
                                                   const VilaModelOptions& options = {});

  LanguageModel& llm() { return *llm_; }
  const LanguageModel& llm() const { return *llm_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const ChatTemplate& chat_template() const { return chat_template_; }
  CheckpointLayout layout() const { return layout_; }
  const std::string& dir() const { return dir_; }
  const std::string& llm_dir() const { return llm_dir_; }
  // Ids that end generation: eos, the template's end-of-turn token, generation_config eos ids.
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
  std::optional<int32_t> image_token_id() const { return image_token_id_; }
  std::optional<int32_t> video_token_id() const { return video_token_id_; }
  const std::optional<SubmoduleSummary>& vision_tower() const { return vision_tower_; }
  const std::optional<SubmoduleSummary>& mm_projector() const { return mm_projector_; }
  // Maximum positions (llm config max_position_embeddings).
  int64_t context_length() const { return llm_->config().max_position; }

  // Token ids of `prompt` as the user turn of the chat template (or raw when `raw`): template
  // text tokenized with special tokens matched, BOS prepended where the template wants it.
  StatusOr<std::vector<int32_t>> encode_prompt(const std::string& prompt, bool raw) const;

  // The prompt with images, as VILA's generate_content assembles it: `<image>` markers in
  // `prompt` place `image_paths` in order (no marker: the images come first); the user message is
  // the concatenation of its parts, stripped; each media item's rows replace its <image> token and
  // are followed by the embedding of "\n". One image is tiled as the checkpoint says (dynamic_s2,
  // dynamic + thumbnail with "<image>\n" per tile in the text, or resize); several images each go
  // through the single-tile path. Without images this is encode_prompt (no embeddings).
  StatusOr<MediaPrompt> build_prompt(const std::string& prompt,
                                     const std::vector<std::string>& image_paths, bool raw,
                                     const ImageLoadOptions& image_options = {});

  // Runs the vision tower and projector of later build_prompt calls on CUDA device `device` in
  // `compute` (kBF16 or kF16; weights and GEMM inputs 16-bit, fp32 accumulation, as the GPU LLM
  // engine), or back on the CPU with on = false. The GPU encoder is created on the first prompt
  // with images (Unimplemented from build_prompt in a build without CUDA or without a GPU) and
  // kept; changing dtype or device recreates it. The rows match the CPU's within the 16-bit
  // tolerance (tests/cuda/vision_prompt_test.cpp).
  void use_cuda_vision(bool on, DType compute = DType::kBF16, int device = 0);
  bool cuda_vision() const { return cuda_vision_on_; }

 private:
  std::string dir_;
  std::string llm_dir_;
  CheckpointLayout layout_ = CheckpointLayout::kHfPlain;
  std::unique_ptr<LanguageModel> llm_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ChatTemplate chat_template_;
  std::vector<int32_t> stop_ids_;
  std::optional<int32_t> image_token_id_;
  std::optional<int32_t> video_token_id_;
  std::optional<SubmoduleSummary> vision_tower_;
  std::optional<SubmoduleSummary> mm_projector_;
  // Loaded on the first prompt with images.
  std::unique_ptr<VisionEncoder> vision_;
  std::optional<PreprocessConfig> preprocess_;
  // use_cuda_vision: settings, and the encoder made from vision_ on first use.
  bool cuda_vision_on_ = false;
  DType cuda_vision_dtype_ = DType::kBF16;
  int cuda_vision_device_ = 0;
  std::unique_ptr<CudaVisionEncoder> cuda_vision_;
};

}  // namespace vila
