#include "train/train_data.h"

#include <filesystem>

#include "data/fashion_samples.h"
#include "data/jsonl.h"
#include "data/text_sources.h"
#include "tokenizer/bpe_trainer.h"

namespace vila::train {

namespace {

// Copies of the chat template's text counted for the tokenizer (enough to win every merge).
constexpr int64_t kTemplateCountCap = 5000;

// Text documents of the `text` source: "gcide", "brown" or a file path.
StatusOr<std::vector<data::Sample>> text_source(const TrainConfig& config,
                                                data::LoadReport* report) {
  std::vector<data::Sample> docs;
  if (config.text == "gcide") {
    // ~1 KB per 10 paragraphs is plenty: read only what the requested count needs.
    const uint64_t bytes =
        std::max<uint64_t>(1 << 20, static_cast<uint64_t>(config.text_samples) * 400);
    VILA_ASSIGN_OR_RETURN(std::vector<std::string> paras,
                          data::gcide_paragraphs(data::kGcidePath, bytes));
    docs = data::text_samples(std::move(paras), "gcide");
  } else if (config.text == "brown") {
    VILA_ASSIGN_OR_RETURN(std::vector<std::string> paras,
                          data::brown_paragraphs(data::kBrownCorpusDir, 0));
    docs = data::text_samples(std::move(paras), "brown");
  } else {
    data::LoadOptions options;
    VILA_ASSIGN_OR_RETURN(
        docs, data::load_text_file(config.text, data::TextSplit::kParagraphs, options, report));
  }
  if (config.text_samples > 0 && docs.size() > static_cast<size_t>(config.text_samples)) {
    docs.resize(static_cast<size_t>(config.text_samples));
  }
  return docs;
}

}  // namespace

StatusOr<RunSamples> load_run_samples(const TrainConfig& config) {
  RunSamples run;
  const data::FashionMix mix{
      static_cast<size_t>(config.fashion_caption), static_cast<size_t>(config.fashion_question),
      static_cast<size_t>(config.fashion_compare), static_cast<size_t>(config.fashion_few_shot)};
  if (mix.caption + mix.question + mix.compare + mix.few_shot > 0) {
    VILA_ASSIGN_OR_RETURN(data::FashionSplit split,
                          data::load_fashion_split(data::kFashionMnistDir, "train"));
    run.fashion = std::make_unique<data::FashionSplit>(std::move(split));
    data::FashionSampleOptions options;
    options.seed = config.data_seed;
    VILA_ASSIGN_OR_RETURN(run.samples, data::build_fashion_mix(*run.fashion, mix, options));
  }
  for (const JsonlSource& source : config.jsonl) {
    data::LoadOptions options;
    options.image_root = source.image_root;
    data::LoadReport report;
    StatusOr<std::vector<data::Sample>> loaded =
        source.format == "mmc4" ? data::load_interleaved(source.path, options, &report)
                                : data::load_conversations(source.path, options, &report);
    if (!loaded.ok()) return loaded.status();
    run.report.merge(report);
    for (data::Sample& s : *loaded) run.samples.push_back(std::move(s));
  }
  if (!config.text.empty()) {
    VILA_ASSIGN_OR_RETURN(std::vector<data::Sample> docs, text_source(config, &run.report));
    for (data::Sample& s : docs) run.samples.push_back(std::move(s));
  }
  if (run.samples.empty()) {
    return invalid_argument(config.source + ": the configured data gives no samples");
  }
  return run;
}

Status train_run_tokenizer(const std::vector<data::Sample>& samples, int64_t vocab_size,
                           const std::string& dir) {
  tok::BpeTrainerOptions options;
  options.vocab_size = static_cast<int32_t>(vocab_size);
  options.special_tokens = run_special_tokens();
  VILA_ASSIGN_OR_RETURN(tok::BpeTrainer trainer, tok::BpeTrainer::create(options));
  int64_t conversations = 0;
  for (const data::Sample& s : samples) {
    for (const data::Segment& seg : s.segments) {
      if (!seg.is_image()) trainer.add_text(seg.text);
    }
    conversations += s.kind == data::SampleKind::kConversation ? 1 : 0;
  }
  // The chat template's own text (system prompt, role names) is read in every conversation, so it
  // counts as often as conversations occur: it then merges into a few tokens, and every sample
  // gets shorter. (Special tokens are cut out before counting.)
  ChatTemplate chat;
  chat.kind = ChatTemplateKind::kQwen2;
  const std::string frame = chat.render_user_turn("") + chat.end_of_turn() + "\n";
  for (int64_t i = 0; i < std::min<int64_t>(conversations, kTemplateCountCap); ++i) {
    trainer.add_text(frame);
  }
  VILA_ASSIGN_OR_RETURN(tok::BpeTrainResult result, trainer.train());
  return tok::write_bpe_tokenizer(result, dir);
}

RunImageSource::RunImageSource(const data::FashionSplit* fashion, const PreprocessConfig& config)
    : config_(config), files_("", config) {
  if (fashion != nullptr) fashion_ = std::make_unique<FashionImageSource>(*fashion, config);
}

StatusOr<std::vector<float>> RunImageSource::tile(const data::ImageRef& image,
                                                  const std::string& origin) const {
  if (image.in_memory()) {
    if (!fashion_) {
      return invalid_argument(origin + ": an in-memory image but no Fashion-MNIST split loaded");
    }
    return fashion_->tile(image, origin);
  }
  return files_.tile(image, origin);
}

StatusOr<std::vector<EncodedSample>> encode_all(const std::vector<data::Sample>& samples,
                                                const EncodeContext& context, SkipCounters* skips) {
  std::vector<EncodedSample> out;
  out.reserve(samples.size());
  Status first_error = ok_status();
  for (const data::Sample& s : samples) {
    StatusOr<EncodedSample> e = encode_sample(s, context);
    if (e.ok()) {
      out.push_back(std::move(*e));
      continue;
    }
    if (first_error.ok()) first_error = e.status();
    if (e.status().code() == StatusCode::kOutOfRange) {
      ++skips->too_long;
    } else {
      ++skips->other;
    }
    if (skips->messages.size() < 8) skips->messages.push_back(e.status().message());
  }
  if (out.empty()) {
    return invalid_argument("no sample could be encoded (" + std::to_string(samples.size()) +
                            " samples; first error: " + first_error.message() + ")");
  }
  return out;
}

nlohmann::json StreamState::to_json() const {
  return {{"loader", loader.to_json()}, {"carried", carried}};
}

StatusOr<StreamState> StreamState::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("loader") || !j.contains("carried") ||
      !j["carried"].is_number_integer()) {
    return invalid_argument(where + ": data stream state needs 'loader' and 'carried'");
  }
  StreamState s;
  VILA_ASSIGN_OR_RETURN(s.loader, data::LoaderState::from_json(j["loader"], where + ".loader"));
  s.carried = j["carried"].get<int64_t>();
  return s;
}

StatusOr<BatchStream> BatchStream::create(const std::vector<EncodedSample>* samples,
                                          const ImageSource* images, const BatchOptions& options,
                                          uint64_t seed) {
  BatchStream stream;
  stream.samples_ = samples;
  stream.images_ = images;
  stream.options_ = options;
  VILA_ASSIGN_OR_RETURN(data::SampleOrder order, data::SampleOrder::create(samples->size(), seed));
  stream.order_.emplace(std::move(order));
  VILA_ASSIGN_OR_RETURN(BatchBuilder builder, BatchBuilder::create(options, images));
  stream.builder_.emplace(std::move(builder));
  return stream;
}

Status BatchStream::restore(const StreamState& state) {
  VILA_ASSIGN_OR_RETURN(data::SampleOrder order,
                        data::SampleOrder::restore(state.loader, samples_->size()));
  if (state.carried < -1 || state.carried >= static_cast<int64_t>(samples_->size())) {
    return invalid_argument("data stream state: carried sample " + std::to_string(state.carried) +
                            " is outside the dataset");
  }
  order_.emplace(std::move(order));
  VILA_ASSIGN_OR_RETURN(BatchBuilder builder, BatchBuilder::create(options_, images_));
  builder_.emplace(std::move(builder));
  carried_ = state.carried;
  if (carried_ >= 0) {
    VILA_RETURN_IF_ERROR(builder_->add((*samples_)[static_cast<size_t>(carried_)]).status());
  }
  return ok_status();
}

StatusOr<PackedBatch> BatchStream::next() {
  // Bounded: a whole epoch of samples that all get skipped is an error, not a hang.
  for (size_t tries = 0; tries < 2 * samples_->size() + 2; ++tries) {
    const auto index = static_cast<int64_t>(order_->next());
    VILA_ASSIGN_OR_RETURN(std::optional<PackedBatch> closed,
                          builder_->add((*samples_)[static_cast<size_t>(index)]));
    if (closed) {
      carried_ = builder_->pending_tokens() > 0 ? index : -1;
      return std::move(*closed);
    }
    carried_ = -1;
  }
  return invalid_argument(
      "every sample of the dataset was skipped (" + std::to_string(builder_->skips().total()) +
      " skips; first: " +
      (builder_->skips().messages.empty() ? std::string("?") : builder_->skips().messages[0]) +
      ")");
}

StreamState BatchStream::state() const {
  // The open batch holds samples taken since the last closed batch; `carried` is the only one
  // (a batch closes as soon as one sample does not fit, so the open batch has exactly it).
  return {order_->state(), carried_};
}

}  // namespace vila::train
