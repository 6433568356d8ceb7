// Two measurements of a saved model through the inference path (VilaModel / LanguageModel), for
// the experiments of docs/experiments.md:
//
// Text-only loss: the mean next-token cross-entropy, in nats per token, of held-out text
// documents. A document is encoded with the model's own tokenizer as training encodes a text
// document (BOS when the tokenizer adds one, the text, EOS); every id after the first is
// predicted from the ids before it:
//   loss = -(1 / N) * sum over documents d, positions t >= 1 of log softmax(logits_{t-1})[id_t]
// (N = the number of predicted ids over all documents; logits over the model's vocab_size).
// Documents longer than max_tokens ids are cut to their first max_tokens ids.
//
// Few-shot accuracy: held-out (t10k) Fashion-MNIST documents built like the training kFewShot
// documents (data/fashion_samples.h): k solved examples "[image] This is a <class>." then the
// query image, rendered as a raw interleaved prompt (no chat template) with one <image> marker per
// image, "<image>This is a trouser.<image>This is" -- the query's text is cut after "This is" so
// that the article ("a" / "an") does not give the class away. Greedy continuation; correct when
// the answer up to its first '.' names the query's class (class_in_answer). k = 0 is the query
// alone. With include_query_class one of the k examples shows the query's class (the hint).
//
// Held-out text: "gcide" takes GCIDE paragraphs that start after the first kGcideHeldOutOffset
// bytes of the dictionary (training reads max(1 MiB, 400 * text_samples) bytes from the start,
// so runs with text_samples < 10,000 never see them); "brown" the last paragraphs of the Brown
// corpus; "text:FILE" the paragraphs of a file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/fashion_mnist.h"
#include "data/samples.h"
#include "model/llm.h"
#include "model/vila_model.h"
#include "tokenizer/tokenizer.h"
#include "train/eval.h"

namespace vila::train {

// GCIDE bytes (decompressed) skipped before the held-out paragraphs, and how many bytes after
// that offset are read.
constexpr uint64_t kGcideHeldOutOffset = uint64_t{4} << 20;
constexpr uint64_t kGcideHeldOutSpan = uint64_t{2} << 20;

struct TextLossResult {
  int64_t documents = 0;
  int64_t tokens = 0;  // predicted ids
  double nats = 0;     // sum of -log p over the predicted ids
  double seconds = 0;
  double mean() const { return tokens > 0 ? nats / static_cast<double>(tokens) : 0.0; }
};

// At most `count` held-out documents of `source`: "gcide", "brown" or "text:FILE" (see above).
// InvalidArgument for another source; NotFound / DataLoss from the corpus readers.
StatusOr<std::vector<std::string>> held_out_text(const std::string& source, int64_t count);

// The loss above over `documents` (documents that encode to fewer than 2 ids are skipped).
// InvalidArgument when max_tokens < 2 or no document has 2 ids.
StatusOr<TextLossResult> eval_text_loss(LanguageModel& llm, const Tokenizer& tokenizer,
                                        const std::vector<std::string>& documents,
                                        int64_t max_tokens = 512,
                                        const EvalProgressFn& progress = {});

// A few-shot document as a prompt: the text with "<image>" per image segment, the image files in
// the same order, the query's class and the withheld answer text.
struct FewShotPrompt {
  std::string prompt;               // "<image>This is a bag.<image>This is"
  std::vector<std::string> images;  // one file per <image>, in order
  int label = -1;
  std::string expected;  // " a trouser." (what follows the prompt in the document)
};

// Renders a kFewShot document (data::build_fashion_samples) without its answer: every segment in
// order, the last text segment cut after its prefix "This is". `image_path` gives the file of an
// image segment. InvalidArgument when the sample does not end with an image and a text segment
// starting with "This is".
using ImagePathFn = std::function<StatusOr<std::string>(const data::ImageRef&)>;
StatusOr<FewShotPrompt> render_few_shot(const data::Sample& sample, const ImagePathFn& image_path);

struct FewShotOptions {
  int shots = 4;                     // k in [0, 16]
  bool include_query_class = false;  // one example shows the query's class
  int64_t samples = 200;
  int64_t examples = 4;
  int64_t max_new_tokens = 8;
  std::string work_dir;  // where the t10k images are written as PNG (created)
  uint64_t seed = 0;
};

// Accuracy on `samples` held-out few-shot documents of `test` (classes balanced as the builder
// balances them). InvalidArgument when the model has no vision tower or shots is out of range.
StatusOr<EvalResult> eval_few_shot(VilaModel& model, const data::FashionSplit& test,
                                   const FewShotOptions& options,
                                   const EvalProgressFn& progress = {});

}  // namespace vila::train
