#include "train/eval_text.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "data/fashion_samples.h"
#include "data/text_sources.h"
#include "runtime/generate.h"
#include "train/plot.h"

namespace vila::train {

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kTextFilePrefix = "text:";
constexpr const char* kQueryPrefix = "This is";
constexpr int kMaxShots = 16;
// Segments of one solved example: its image and its text.
constexpr size_t kSegmentsPerShot = 2;
// The boundary paragraph at the held-out offset may be cut: skip it.
constexpr size_t kBoundaryParagraphs = 1;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<std::string> last_n(std::vector<std::string> docs, int64_t count) {
  if (static_cast<int64_t>(docs.size()) > count) {
    docs.erase(docs.begin(), docs.end() - count);
  }
  return docs;
}

// The t10k image `index` as a grey PNG in `dir` (written once).
StatusOr<std::string> write_fashion_png(const data::FashionSplit& split, int64_t index,
                                        const std::string& dir) {
  if (index < 0 || index >= split.count) {
    return invalid_argument("eval_few_shot: image index " + std::to_string(index) +
                            " outside the split");
  }
  const std::string path = dir + "/" + split.name + "_" + std::to_string(index) + ".png";
  if (std::filesystem::exists(path)) return path;
  Image image(data::kFashionSide, data::kFashionSide);  // (28, 28, 3) uint8
  const uint8_t* grey = split.image(index);
  for (size_t p = 0; p < static_cast<size_t>(data::kFashionSide * data::kFashionSide); ++p) {
    for (size_t c = 0; c < 3; ++c) image.pixels[p * 3 + c] = grey[p];
  }
  VILA_RETURN_IF_ERROR(write_png(image, path));
  return path;
}

// The answer up to and including its first '.', so that a continuation that goes on into a
// made-up next example is judged on its first sentence only.
std::string first_sentence(const std::string& text) {
  const size_t dot = text.find('.');
  return dot == std::string::npos ? text : text.substr(0, dot + 1);
}

}  // namespace

StatusOr<std::vector<std::string>> held_out_text(const std::string& source, int64_t count) {
  if (count <= 0) return invalid_argument("held_out_text: count " + std::to_string(count));
  if (source == "gcide") {
    VILA_ASSIGN_OR_RETURN(std::vector<std::string> head,
                          data::gcide_paragraphs(data::kGcidePath, kGcideHeldOutOffset));
    VILA_ASSIGN_OR_RETURN(
        std::vector<std::string> all,
        data::gcide_paragraphs(data::kGcidePath, kGcideHeldOutOffset + kGcideHeldOutSpan));
    const size_t first = std::min(all.size(), head.size() + kBoundaryParagraphs);
    const size_t end = std::min(all.size(), first + static_cast<size_t>(count));
    if (first == end) return invalid_argument("held_out_text: no GCIDE paragraph after 4 MiB");
    return std::vector<std::string>(all.begin() + static_cast<long>(first),
                                    all.begin() + static_cast<long>(end));
  }
  if (source == "brown") {
    VILA_ASSIGN_OR_RETURN(std::vector<std::string> docs,
                          data::brown_paragraphs(data::kBrownCorpusDir, 0));
    return last_n(std::move(docs), count);
  }
  if (source.rfind(kTextFilePrefix, 0) == 0) {
    const std::string path = source.substr(std::string(kTextFilePrefix).size());
    VILA_ASSIGN_OR_RETURN(std::vector<data::Sample> samples,
                          data::load_text_file(path, data::TextSplit::kParagraphs));
    std::vector<std::string> docs;
    for (const data::Sample& s : samples) {
      if (static_cast<int64_t>(docs.size()) >= count) break;
      docs.push_back(s.segments.empty() ? std::string() : s.segments[0].text);
    }
    return docs;
  }
  return invalid_argument("held_out_text: unknown source '" + source +
                          "' (expected gcide, brown or text:FILE)");
}

StatusOr<TextLossResult> eval_text_loss(LanguageModel& llm, const Tokenizer& tokenizer,
                                        const std::vector<std::string>& documents,
                                        int64_t max_tokens, const EvalProgressFn& progress) {
  if (max_tokens < 2) {
    return invalid_argument("eval_text_loss: max_tokens " + std::to_string(max_tokens) + " < 2");
  }
  const auto t0 = Clock::now();
  TextLossResult result;
  const int64_t n = static_cast<int64_t>(documents.size());
  for (int64_t d = 0; d < n; ++d) {
    // (T) ids: [BOS] text [EOS], as training encodes a text document.
    std::vector<int32_t> ids;
    if (tokenizer.add_bos_token && tokenizer.bos_id) ids.push_back(*tokenizer.bos_id);
    for (int32_t id : tokenizer.encode(documents[static_cast<size_t>(d)])) ids.push_back(id);
    if (tokenizer.eos_id) ids.push_back(*tokenizer.eos_id);
    if (static_cast<int64_t>(ids.size()) > max_tokens) ids.resize(static_cast<size_t>(max_tokens));
    if (ids.size() < 2) continue;
    const PromptInput first{{ids[0]}, {}};
    const std::vector<int32_t> rest(ids.begin() + 1, ids.end());
    VILA_ASSIGN_OR_RETURN(ScoreResult score, score_continuation(llm, tokenizer, first, rest));
    result.documents++;
    result.tokens += static_cast<int64_t>(rest.size());
    result.nats -= score.logprob;
    if (progress) progress(d + 1, n);
  }
  if (result.tokens == 0) {
    return invalid_argument("eval_text_loss: no document encodes to 2 or more ids");
  }
  result.seconds = seconds_since(t0);
  return result;
}

StatusOr<FewShotPrompt> render_few_shot(const data::Sample& sample, const ImagePathFn& image_path) {
  const auto& segs = sample.segments;
  const std::string query_prefix = kQueryPrefix;
  if (segs.size() < kSegmentsPerShot || !segs[segs.size() - 2].is_image() ||
      segs.back().is_image() || segs.back().text.rfind(query_prefix, 0) != 0) {
    return invalid_argument("render_few_shot: " + sample.origin +
                            ": expected a document ending with an image and \"This is ...\"");
  }
  FewShotPrompt out;
  out.label = sample.label;
  for (size_t i = 0; i + 1 < segs.size(); ++i) {
    if (segs[i].is_image()) {
      VILA_ASSIGN_OR_RETURN(std::string path, image_path(segs[i].image));
      out.images.push_back(std::move(path));
      out.prompt += "<image>";
    } else {
      out.prompt += segs[i].text;
    }
  }
  out.prompt += query_prefix;
  out.expected = segs.back().text.substr(query_prefix.size());
  return out;
}

StatusOr<EvalResult> eval_few_shot(VilaModel& model, const data::FashionSplit& test,
                                   const FewShotOptions& options, const EvalProgressFn& progress) {
  if (options.shots < 0 || options.shots > kMaxShots) {
    return invalid_argument("eval_few_shot: shots " + std::to_string(options.shots) +
                            " outside [0, 16]");
  }
  if (!model.vision_tower()) {
    return invalid_argument(model.dir() + ": eval_few_shot needs a model with a vision tower");
  }
  if (options.samples <= 0) {
    return invalid_argument("eval_few_shot: samples " + std::to_string(options.samples));
  }
  std::error_code ec;
  std::filesystem::create_directories(options.work_dir, ec);
  if (ec) return data_loss(options.work_dir + ": cannot create: " + ec.message());

  // k = 0: documents of one shot with the shot dropped (the query is drawn the same way).
  data::FashionSampleOptions build;
  build.seed = options.seed;
  build.few_shot_k = std::max(options.shots, 1);
  build.few_shot_include_query_class = options.include_query_class && options.shots > 0;
  VILA_ASSIGN_OR_RETURN(std::vector<data::Sample> docs,
                        data::build_fashion_samples(test, data::FashionTask::kFewShot,
                                                    static_cast<size_t>(options.samples), build));
  const ImagePathFn path_of = [&](const data::ImageRef& ref) -> StatusOr<std::string> {
    if (!ref.in_memory()) return ref.path;
    return write_fashion_png(test, ref.index, options.work_dir);
  };

  const auto t0 = Clock::now();
  EvalResult result;
  const int64_t n = static_cast<int64_t>(docs.size());
  for (int64_t i = 0; i < n; ++i) {
    data::Sample& doc = docs[static_cast<size_t>(i)];
    if (options.shots == 0) {
      doc.segments.erase(doc.segments.begin(),
                         doc.segments.begin() + static_cast<long>(kSegmentsPerShot));
    }
    VILA_ASSIGN_OR_RETURN(FewShotPrompt fs, render_few_shot(doc, path_of));
    VILA_ASSIGN_OR_RETURN(MediaPrompt prompt, model.build_prompt(fs.prompt, fs.images, true));
    GenerateOptions gen;
    gen.max_new_tokens = options.max_new_tokens;
    gen.sampling.temperature = 0.0f;  // greedy
    gen.stop_ids = model.stop_ids();
    VILA_ASSIGN_OR_RETURN(GenerateResult answer,
                          generate(model.llm(), model.tokenizer(), prompt.input, gen));
    const std::string sentence = first_sentence(answer.text);
    const bool correct = class_in_answer(sentence) == fs.label;
    result.total++;
    result.correct += correct ? 1 : 0;
    if (static_cast<int64_t>(result.examples.size()) < options.examples) {
      result.examples.push_back(
          {fs.images.back(), fs.prompt, data::fashion_class_name(fs.label), answer.text, correct});
    }
    if (progress) progress(i + 1, n);
  }
  result.seconds = seconds_since(t0);
  return result;
}

}  // namespace vila::train
