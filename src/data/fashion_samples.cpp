#include "data/fashion_samples.h"

#include <array>
#include <utility>

#include "data/random.h"

namespace vila::data {

namespace {

constexpr int kMaxFewShot = 16;
constexpr int kYesNo = 2;
enum QuestionKind { kClassYesNo, kCategoryYesNo, kWhichCategory, kQuestionKinds };

constexpr std::array<const char*, 5> kCaptionPrompts = {
    "What is this?", "What is shown in the image?", "What kind of item is this?",
    "Name the item in the picture.", "Describe the image in a few words."};

constexpr std::array<const char*, 3> kComparePrompts = {
    "Are these the same kind of item?", "Do these two images show the same kind of item?",
    "Is the second item the same type as the first?"};

// Yes/no question per category, and the answer to "What category of item is this?".
constexpr std::array<const char*, kFashionCategories> kCategoryQuestions = {
    "Is this worn on the upper body?", "Is this worn on the legs?", "Is this a dress?",
    "Is this footwear?", "Is this a bag?"};
constexpr std::array<const char*, kFashionCategories> kCategoryAnswers = {
    "Clothing for the upper body.", "Clothing for the legs.", "A dress.", "Footwear.", "A bag."};
constexpr const char* kCategoryPrompt = "What category of item is this?";

std::string capitalized(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

// "a trouser", "an ankle boot".
std::string with_article(int label) {
  return std::string(fashion_article(label)) + " " + fashion_noun(label);
}

std::string caption_answer(int label, uint64_t phrasing) {
  switch (phrasing) {
    case 0:
      return capitalized(with_article(label)) + ".";
    case 1:
      return "This is " + with_article(label) + ".";
    case 2:
      return "It is " + with_article(label) + ".";
    default:
      return "The image shows " + with_article(label) + ".";
  }
}
constexpr uint64_t kCaptionAnswerPhrasings = 4;

// Values 0..n-1 in a freshly shuffled order every n draws: each value occurs floor or ceil of
// draws / n times.
class BalancedCycle {
 public:
  BalancedCycle(int n, uint64_t seed) : rng_(seed), order_(static_cast<size_t>(n)) {
    for (int i = 0; i < n; ++i) order_[static_cast<size_t>(i)] = i;
  }
  int next() {
    if (pos_ == 0) rng_.shuffle(order_);
    const int v = order_[pos_];
    pos_ = (pos_ + 1) % order_.size();
    return v;
  }

 private:
  DataRng rng_;
  std::vector<int> order_;
  size_t pos_ = 0;
};

// Stream numbers for derive_seed: one per independent random choice.
enum Stream : uint64_t { kClassStream = 1, kYesNoStream, kKindStream, kPickStream };
// build_fashion_mix: task t uses stream kMixStreamBase + t.
constexpr uint64_t kMixStreamBase = 100;

class Builder {
 public:
  Builder(const FashionSplit& split, FashionTask task, const FashionSampleOptions& options)
      : split_(split),
        task_(task),
        options_(options),
        by_class_(split.indices_by_class()),
        classes_(kFashionClasses, derive_seed(options.seed, kClassStream)),
        yes_no_(kYesNo, derive_seed(options.seed, kYesNoStream)),
        kinds_(kQuestionKinds, derive_seed(options.seed, kKindStream)),
        rng_(derive_seed(options.seed, kPickStream)) {}

  Status check() const {
    for (int c = 0; c < kFashionClasses; ++c) {
      if (by_class_[static_cast<size_t>(c)].size() < 2) {
        return invalid_argument("fashion samples: split '" + split_.name + "' has fewer than 2 " +
                                fashion_class_name(c) + " images");
      }
    }
    if (options_.few_shot_k < 1 || options_.few_shot_k > kMaxFewShot) {
      return invalid_argument("fashion samples: few_shot_k " + std::to_string(options_.few_shot_k) +
                              " is outside [1, " + std::to_string(kMaxFewShot) + "]");
    }
    return ok_status();
  }

  Sample build(size_t number) {
    const int label = classes_.next();
    Sample s;
    s.label = label;
    s.origin = "fashion-mnist/" + split_.name + ":" + fashion_task_name(task_) + ":" +
               std::to_string(number);
    switch (task_) {
      case FashionTask::kCaption:
        caption(label, &s);
        break;
      case FashionTask::kQuestion:
        question(label, &s);
        break;
      case FashionTask::kCompare:
        compare(label, &s);
        break;
      case FashionTask::kFewShot:
        few_shot(label, &s);
        break;
    }
    return s;
  }

 private:
  int64_t pick(int label) {
    const auto& v = by_class_[static_cast<size_t>(label)];
    return v[rng_.below(v.size())];
  }
  // A uniformly drawn value of [0, n) other than `not_this`.
  int other(int n, int not_this) {
    const int v = static_cast<int>(rng_.below(static_cast<uint64_t>(n - 1)));
    return v >= not_this ? v + 1 : v;
  }
  static ImageRef ref(int64_t index) {
    ImageRef r;
    r.index = index;
    return r;
  }
  static void turn(Sample* s, const std::vector<int64_t>& images, std::string question,
                   std::string answer) {
    s->kind = SampleKind::kConversation;
    for (int64_t i : images) s->segments.push_back(Segment::image_of(Role::kUser, ref(i)));
    s->segments.push_back(Segment::text_of(Role::kUser, std::move(question)));
    s->segments.push_back(Segment::text_of(Role::kAssistant, std::move(answer)));
  }

  void caption(int label, Sample* s) {
    const char* prompt = kCaptionPrompts[rng_.below(kCaptionPrompts.size())];
    turn(s, {pick(label)}, prompt, caption_answer(label, rng_.below(kCaptionAnswerPhrasings)));
  }

  void question(int label, Sample* s) {
    const int64_t image = pick(label);
    const int kind = kinds_.next();
    const FashionCategory category = fashion_category(label);
    if (kind == kWhichCategory) {
      turn(s, {image}, kCategoryPrompt, kCategoryAnswers[static_cast<size_t>(category)]);
      return;
    }
    const bool yes = yes_no_.next() == 0;
    if (kind == kClassYesNo) {
      const int asked = yes ? label : other(kFashionClasses, label);
      turn(s, {image}, "Is this " + with_article(asked) + "?",
           (yes ? "Yes, it is " : "No, it is ") + with_article(label) + ".");
      return;
    }
    const int true_category = static_cast<int>(category);
    const int asked = yes ? true_category : other(kFashionCategories, true_category);
    turn(s, {image}, kCategoryQuestions[static_cast<size_t>(asked)], yes ? "Yes." : "No.");
  }

  void compare(int label, Sample* s) {
    const bool same = yes_no_.next() == 0;
    const int64_t first = pick(label);
    int second_label = label;
    int64_t second = first;
    if (same) {
      while (second == first) second = pick(label);
    } else {
      second_label = other(kFashionClasses, label);
      second = pick(second_label);
    }
    const char* prompt = kComparePrompts[rng_.below(kComparePrompts.size())];
    std::string answer = same ? "Yes, both are " + std::string(fashion_plural(label)) + "."
                              : "No, the first is " + with_article(label) + " and the second is " +
                                    with_article(second_label) + ".";
    turn(s, {first, second}, prompt, std::move(answer));
  }

  void few_shot(int label, Sample* s) {
    s->kind = SampleKind::kDocument;
    const int k = options_.few_shot_k;
    const int hint_at = options_.few_shot_include_query_class
                            ? static_cast<int>(rng_.below(static_cast<uint64_t>(k)))
                            : -1;
    for (int i = 0; i < k; ++i) {
      const int c = i == hint_at ? label : static_cast<int>(rng_.below(kFashionClasses));
      s->segments.push_back(Segment::image_of(Role::kDocument, ref(pick(c))));
      s->segments.push_back(Segment::text_of(Role::kDocument, "This is " + with_article(c) + "."));
    }
    s->segments.push_back(Segment::image_of(Role::kDocument, ref(pick(label))));
    s->segments.push_back(
        Segment::text_of(Role::kDocument, "This is " + with_article(label) + "."));
  }

  const FashionSplit& split_;
  FashionTask task_;
  FashionSampleOptions options_;
  std::array<std::vector<int64_t>, kFashionClasses> by_class_;
  BalancedCycle classes_;
  BalancedCycle yes_no_;
  BalancedCycle kinds_;
  DataRng rng_;
};

}  // namespace

const char* fashion_task_name(FashionTask task) {
  switch (task) {
    case FashionTask::kCaption:
      return "caption";
    case FashionTask::kQuestion:
      return "question";
    case FashionTask::kCompare:
      return "compare";
    case FashionTask::kFewShot:
      return "few_shot";
  }
  return "?";
}

StatusOr<FashionTask> parse_fashion_task(const std::string& name) {
  for (FashionTask t : {FashionTask::kCaption, FashionTask::kQuestion, FashionTask::kCompare,
                        FashionTask::kFewShot}) {
    if (name == fashion_task_name(t)) return t;
  }
  return invalid_argument("unknown Fashion-MNIST task '" + name +
                          "' (expected caption, question, compare or few_shot)");
}

StatusOr<std::vector<Sample>> build_fashion_samples(const FashionSplit& split, FashionTask task,
                                                    size_t count,
                                                    const FashionSampleOptions& options) {
  Builder builder(split, task, options);
  VILA_RETURN_IF_ERROR(builder.check());
  std::vector<Sample> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) out.push_back(builder.build(i));
  return out;
}

StatusOr<std::vector<Sample>> build_fashion_mix(const FashionSplit& split, const FashionMix& mix,
                                                const FashionSampleOptions& options) {
  const std::array<std::pair<FashionTask, size_t>, kFashionTasks> parts = {{
      {FashionTask::kCaption, mix.caption},
      {FashionTask::kQuestion, mix.question},
      {FashionTask::kCompare, mix.compare},
      {FashionTask::kFewShot, mix.few_shot},
  }};
  std::vector<Sample> out;
  for (const auto& [task, count] : parts) {
    FashionSampleOptions task_options = options;
    task_options.seed = derive_seed(options.seed, kMixStreamBase + static_cast<uint64_t>(task));
    VILA_ASSIGN_OR_RETURN(std::vector<Sample> samples,
                          build_fashion_samples(split, task, count, task_options));
    for (Sample& s : samples) out.push_back(std::move(s));
  }
  return out;
}

const char* fashion_eval_prompt() { return kCaptionPrompts[0]; }

std::string fashion_eval_answer(int label) { return caption_answer(label, 0); }

}  // namespace vila::data
