// data::Sample -> token row with shifted targets and image slots, rendered exactly as inference
// renders a prompt (model/media_prompt.cpp, runtime/chat_template.h).
//
// Conversation (system? (user assistant)+):
//   ids = [BOS if the template wants it] tok(render_user_turn(user_1))  tok(answer_1) eot
//         tok(next_user_turn(user_2)) tok(answer_2) eot ...
//   user_k: its text segments verbatim with "<image>" per image segment, stripped (Python
//   str.strip) as build_prompt does; with image_marker_newline and a one-image sample, "<image>\n".
//   The first turn is one tokenize() call of render_user_turn(user_1), the ids inference feeds the
//   model; later turns are the template's continuation tokenized as they follow end-of-turn.
//   Answers are tokenized alone, as generation produces them after the prompt (vicuna_v1's
//   "ASSISTANT: " space is the answer's leading "▁"); this equals tokenizing the whole rendered
//   conversation at once on the fixtures (tests/train/encode_test.cpp).
//   Trained: answer tokens and the end-of-turn token (eot: "<|im_end|>", "</s>", "<|eot_id|>";
//   eos for the "none" template) so the model learns to stop. A system turn sets qwen2's system
//   prompt (other templates: Unimplemented).
// Document: [BOS if the tokenizer adds one] tok(text run) / image slot ... eos; every text token
// and the eos are trained, no template.
// Image slot: each image token of the rendered text becomes Ti placeholder ids (the image token id;
// the projected rows overwrite them) followed by the ids of "\n" as VILA's BasicImageEncoder
// appends them ([BOS] + tok("\n"): Qwen2 ["\n"], Llama-2 ["<s>", "▁", "\n"]); never trained.
// Inference splices each media item's rows where its <image> token was and then embed("\n"), so
// the row sequence here equals inference's when every image is one tile (several images, "resize",
// or a "dynamic" image no larger than one tile such as Fashion-MNIST's 28 x 28).
//
// targets[t] = ids[t + 1] when token t + 1 is trained, else -100 (train/batch.h); the last token's
// target is always -100, so nothing leaks across packed samples.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/samples.h"
#include "runtime/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/cross_entropy.h"
#include "vision/preprocess.h"

namespace vila::train {

// Target of untrained positions (-100, the loss's ignore index).
constexpr int32_t kIgnoreTarget = kIgnoreIndex;

struct EncodeContext {
  const Tokenizer* tokenizer = nullptr;  // not owned
  ChatTemplate chat_template;
  std::optional<int32_t> image_token_id;  // the placeholder id ("<image>")
  int64_t tokens_per_image = 0;           // Ti, visual rows per image after the projector
  int64_t max_tokens = 0;                 // longer samples are OutOfRange; <= 0: no limit
  // "dynamic" checkpoints (NVILA-Lite) write "<image>\n" per tile when a prompt has one image.
  bool image_marker_newline = false;
};

// The context for a checkpoint: image token "<image>" of the tokenizer (InvalidArgument when it
// has none), Ti = tokens_per_tile(preprocess), image_marker_newline for "dynamic".
StatusOr<EncodeContext> make_encode_context(const Tokenizer& tokenizer,
                                            const ChatTemplate& chat_template,
                                            const PreprocessConfig& preprocess, int64_t max_tokens);

struct EncodedSample {
  std::vector<int32_t> ids;            // (T) input ids, Ti placeholder ids per image
  std::vector<int32_t> targets;        // (T) shifted next-token targets, -100 where untrained
  std::vector<data::ImageRef> images;  // (N) in row order
  std::vector<int64_t> image_rows;     // (N) first of image i's Ti rows in ids
  std::string origin;
  int32_t label = -1;

  int64_t tokens() const { return static_cast<int64_t>(ids.size()); }
};

// Errors: OutOfRange naming sample.origin when longer than max_tokens (the caller skips it);
// InvalidArgument for a context without tokenizer / image token / Ti (when the sample has
// images), a malformed conversation (no assistant turn, turns out of order, image count that
// differs from the rendered <image> tokens) naming the origin; Unimplemented for images in
// assistant or system turns and system prompts of non-qwen2 templates.
StatusOr<EncodedSample> encode_sample(const data::Sample& sample, const EncodeContext& context);

}  // namespace vila::train
