// Training and evaluation samples built from Fashion-MNIST (data/fashion_mnist.h).
//
// Four tasks, each deterministic for (split, task, count, options):
//  kCaption   conversation: user [image] "What is this?" (one of several phrasings) ->
//             assistant "A trouser." / "This is a trouser." / ...
//  kQuestion  conversation: yes/no and category questions the label answers: "Is this a
//             sneaker?" (the asked class is the true one half of the time), "Is this footwear?",
//             "What category of item is this?" -> "Footwear." (colour, material, ... are not in
//             a grey 28 x 28 label-only dataset, so they are never asked).
//  kCompare   conversation: user [image][image] "Are these the same kind of item?" -> "Yes, both
//             are sneakers." / "No, the first is a bag and the second is a coat." (same class
//             half of the time).
//  kFewShot   document (pretraining style, every text token trained): k examples
//             [image] "This is a trouser." then the query [image] "This is a <class>.". The
//             final text segment is the answer an evaluation withholds.
//
// Balance: the query class of sample i cycles through the 10 classes in a freshly shuffled order
// every 10 samples, so every class occurs floor(count/10) or ceil(count/10) times; yes/no
// answers alternate the same way. Images are drawn uniformly from the query class. Image
// segments reference the split's images by index (ImageRef::index); Sample::label is the query
// image's class. Samples of the training split only use training images (and held-out only
// held-out ones), so the file split stays the train / held-out split.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/fashion_mnist.h"
#include "data/samples.h"

namespace vila::data {

enum class FashionTask { kCaption, kQuestion, kCompare, kFewShot };
constexpr int kFashionTasks = 4;

// "caption", "question", "compare", "few_shot".
const char* fashion_task_name(FashionTask task);
StatusOr<FashionTask> parse_fashion_task(const std::string& name);

struct FashionSampleOptions {
  uint64_t seed = 0;
  // kFewShot: number of solved examples before the query.
  int few_shot_k = 3;
  // kFewShot: make one of the examples show the query's class (an in-context hint); otherwise
  // the examples' classes are drawn independently of the query.
  bool few_shot_include_query_class = false;
};

// `count` samples of one task. InvalidArgument when the split lacks images of some class or the
// options are out of range (few_shot_k in [1, 16]).
StatusOr<std::vector<Sample>> build_fashion_samples(const FashionSplit& split, FashionTask task,
                                                    size_t count,
                                                    const FashionSampleOptions& options);

// Per-task counts of a mixed set.
struct FashionMix {
  size_t caption = 0;
  size_t question = 0;
  size_t compare = 0;
  size_t few_shot = 0;
};

// The tasks' samples concatenated in the order caption, question, compare, few_shot, each task
// with its own seed derived from options.seed (shuffle them with data/sample_order.h).
StatusOr<std::vector<Sample>> build_fashion_mix(const FashionSplit& split, const FashionMix& mix,
                                                const FashionSampleOptions& options);

// The fixed caption prompt used for evaluation ("What is this?"), and the answer text of a
// label in the evaluation phrasing ("A trouser.").
const char* fashion_eval_prompt();
std::string fashion_eval_answer(int label);

}  // namespace vila::data
