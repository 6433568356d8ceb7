#include "train/eval.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>

#include "data/fashion_samples.h"
#include "data/jsonl.h"
#include "data/random.h"
#include "runtime/generate.h"
#include "train/plot.h"

namespace vila::train {

namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; }

// Finds `word` in `text` as whole words; blanks the hits out of `text` so that a shorter noun
// inside it ("shirt" in "t-shirt") is not found again.
bool take_word(std::string* text, const std::string& word) {
  bool found = false;
  for (size_t pos = text->find(word); pos != std::string::npos; pos = text->find(word, pos + 1)) {
    const size_t end = pos + word.size();
    const bool left_ok = pos == 0 || !is_word_char((*text)[pos - 1]);
    const bool right_ok = end >= text->size() || !is_word_char((*text)[end]);
    if (left_ok && right_ok) {
      std::fill(text->begin() + static_cast<long>(pos), text->begin() + static_cast<long>(end),
                ' ');
      found = true;
    }
  }
  return found;
}

StatusOr<std::string> answer(VilaModel& model, const std::string& question,
                             const std::vector<std::string>& images, int64_t max_new_tokens) {
  VILA_ASSIGN_OR_RETURN(MediaPrompt prompt, model.build_prompt(question, images, /*raw=*/false));
  GenerateOptions options;
  options.max_new_tokens = max_new_tokens;
  options.sampling.temperature = 0.0f;  // greedy
  options.stop_ids = model.stop_ids();
  VILA_ASSIGN_OR_RETURN(GenerateResult result,
                        generate(model.llm(), model.tokenizer(), prompt.input, options));
  return result.text;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

std::string normalize_answer(const std::string& text) {
  std::string out;
  bool space = false;
  for (char c : lower(text)) {
    if (std::ispunct(static_cast<unsigned char>(c))) continue;
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

int class_in_answer(const std::string& answer) {
  // Longest nouns first: "ankle boot" before "boot"-like parts, "t-shirt/top" before "shirt".
  std::vector<int> order(data::kFashionClasses);
  for (int i = 0; i < data::kFashionClasses; ++i) order[static_cast<size_t>(i)] = i;
  std::sort(order.begin(), order.end(), [](int a, int b) {
    return std::string(data::fashion_noun(a)).size() > std::string(data::fashion_noun(b)).size();
  });
  std::string text = lower(answer);
  int found = -1;
  for (int label : order) {
    const std::string singular = lower(data::fashion_noun(label));
    const std::string plural = lower(data::fashion_plural(label));
    bool hit = take_word(&text, plural);
    hit = take_word(&text, singular) || hit;
    // "T-shirt/top" also answers as "T-shirt" or "top".
    if (label == 0) {
      hit = take_word(&text, "t-shirts") || take_word(&text, "t-shirt") || hit;
      hit = take_word(&text, "tops") || take_word(&text, "top") || hit;
    }
    if (hit) {
      if (found >= 0) return -1;
      found = label;
    }
  }
  return found;
}

StatusOr<EvalResult> eval_fashion(VilaModel& model, const data::FashionSplit& test,
                                  const EvalOptions& options, const EvalProgressFn& progress) {
  if (test.count == 0) return invalid_argument("eval: the Fashion-MNIST split has no images");
  if (!model.vision_tower()) {
    return invalid_argument(model.dir() + ": eval needs a model with a vision tower");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.work_dir, ec);
  if (ec) return data_loss(options.work_dir + ": cannot create: " + ec.message());

  // Per class, the split's images in a fixed shuffled order.
  std::vector<std::vector<int64_t>> by_class(data::kFashionClasses);
  for (int64_t i = 0; i < test.count; ++i)
    by_class[test.labels[static_cast<size_t>(i)]].push_back(i);
  data::DataRng rng(options.seed ^ 0x65766131ULL);
  for (auto& v : by_class) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
  }
  const auto t0 = Clock::now();
  EvalResult result;
  const int64_t n = std::min<int64_t>(options.samples, test.count);
  for (int64_t i = 0; i < n; ++i) {
    const int label = static_cast<int>(i % data::kFashionClasses);
    const auto& pool = by_class[static_cast<size_t>(label)];
    if (pool.empty()) continue;
    const int64_t index = pool[static_cast<size_t>(i / data::kFashionClasses) % pool.size()];
    Image image(data::kFashionSide, data::kFashionSide);
    const uint8_t* grey = test.image(index);
    constexpr size_t kPixels = static_cast<size_t>(data::kFashionSide) * data::kFashionSide;
    for (size_t p = 0; p < kPixels; ++p) {
      for (int c = 0; c < 3; ++c) image.pixels[p * 3 + static_cast<size_t>(c)] = grey[p];
    }
    const std::string path =
        options.work_dir + "/" + test.name + "_" + std::to_string(index) + ".png";
    VILA_RETURN_IF_ERROR(write_png(image, path));
    VILA_ASSIGN_OR_RETURN(std::string text, answer(model, data::fashion_eval_prompt(), {path},
                                                   options.max_new_tokens));
    const bool correct = class_in_answer(text) == label;
    result.total++;
    result.correct += correct ? 1 : 0;
    if (static_cast<int64_t>(result.examples.size()) < options.examples) {
      result.examples.push_back(
          {path, data::fashion_eval_prompt(), data::fashion_class_name(label), text, correct});
    }
    if (progress) progress(i + 1, n);
  }
  result.seconds = seconds_since(t0);
  return result;
}

StatusOr<EvalResult> eval_conversations(VilaModel& model, const std::string& jsonl_path,
                                        const EvalOptions& options,
                                        const EvalProgressFn& progress) {
  data::LoadReport report;
  VILA_ASSIGN_OR_RETURN(std::vector<data::Sample> samples,
                        data::load_conversations(jsonl_path, {}, &report));
  const auto t0 = Clock::now();
  EvalResult result;
  const int64_t n = std::min<int64_t>(options.samples, static_cast<int64_t>(samples.size()));
  for (int64_t i = 0; i < n; ++i) {
    const data::Sample& s = samples[static_cast<size_t>(i)];
    // The last assistant text is the expected answer; the user text before it the question.
    std::string question, expected;
    std::vector<std::string> images;
    for (const data::Segment& seg : s.segments) {
      if (seg.role == data::Role::kAssistant && !seg.is_image()) {
        expected = seg.text;
      } else if (seg.role == data::Role::kUser) {
        if (seg.is_image()) {
          images.push_back(seg.image.path);
          question += "<image>";
        } else if (expected.empty()) {
          question += seg.text;
        }
      }
    }
    VILA_ASSIGN_OR_RETURN(std::string text,
                          answer(model, question, images, options.max_new_tokens));
    const bool correct = normalize_answer(text) == normalize_answer(expected);
    result.total++;
    result.correct += correct ? 1 : 0;
    if (static_cast<int64_t>(result.examples.size()) < options.examples) {
      result.examples.push_back(
          {images.empty() ? "" : images[0], question, expected, text, correct});
    }
    if (progress) progress(i + 1, n);
  }
  result.seconds = seconds_since(t0);
  return result;
}

}  // namespace vila::train
