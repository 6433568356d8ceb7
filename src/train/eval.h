// Accuracy of a saved model on question-answer sets, through the inference path (VilaModel +
// generate, greedy), so what is measured is what `vila generate --model` answers.
//
// Fashion-MNIST captions: held-out (t10k) images, written as grey PNG files, asked the fixed
// evaluation prompt ("What is this?"); an answer is correct when the only class it names is the
// image's class (class_in_answer). Samples are spread evenly over the classes: sample i takes the
// (i / 10)-th image of class i % 10 in a fixed shuffled order of the split.
// Conversation JSONL: the last assistant turn is the expected answer, everything before it the
// prompt (one user turn with its images); correct when the normalised answer (lower case,
// punctuation and surrounding whitespace dropped) equals the normalised expected one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/fashion_mnist.h"
#include "model/vila_model.h"

namespace vila::train {

struct EvalOptions {
  int64_t samples = 500;        // at most this many questions
  int64_t examples = 4;         // answers kept for display
  int64_t max_new_tokens = 24;  // per answer
  std::string work_dir;         // where the Fashion PNGs are written (created)
  uint64_t seed = 0;
};

struct EvalExample {
  std::string image;  // file
  std::string question;
  std::string expected;  // class name or expected answer
  std::string answer;    // generated
  bool correct = false;
};

struct EvalResult {
  int64_t total = 0;
  int64_t correct = 0;
  std::vector<EvalExample> examples;  // the first `examples` answers
  double seconds = 0;
  double accuracy() const {
    return total > 0 ? static_cast<double>(correct) / static_cast<double>(total) : 0.0;
  }
};

// Called after each answer with (done, total).
using EvalProgressFn = std::function<void(int64_t, int64_t)>;

// The Fashion class an answer names: the label whose noun (fashion_noun, singular or plural)
// appears as whole words, longer nouns first so that "T-shirt" is not read as "shirt"; -1 when it
// names none or more than one class.
int class_in_answer(const std::string& answer);

// InvalidArgument when the model has no vision tower or the split has no images.
StatusOr<EvalResult> eval_fashion(VilaModel& model, const data::FashionSplit& test,
                                  const EvalOptions& options, const EvalProgressFn& progress = {});

// Conversation JSONL (LLaVA or OpenAI form); images resolved against the file's folder.
StatusOr<EvalResult> eval_conversations(VilaModel& model, const std::string& jsonl_path,
                                        const EvalOptions& options,
                                        const EvalProgressFn& progress = {});

// Lower case, ASCII punctuation removed, whitespace runs collapsed and trimmed.
std::string normalize_answer(const std::string& text);

}  // namespace vila::train
