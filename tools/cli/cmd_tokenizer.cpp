// vila tokenizer train: trains a byte-level BPE tokenizer (tokenizer/bpe_trainer.h) on text files
// and writes tokenizer.json, tokenizer_config.json, vocab.json and merges.txt into a folder that
// `vila tokenize --model DIR`, the training side and HF tokenizers load.
//
// Inputs by file name: *.gz / *.dz are decompressed (e.g. /usr/share/dictd/gcide.dict.dz);
// *.jsonl / *.json are conversation or interleaved records (data/jsonl.h) whose text segments are
// used (images are not opened; records of neither kind are skipped); anything else is UTF-8 text.
#include <cstdio>
#include <string_view>

#include "cli_common.h"
#include "core/mapped_file.h"
#include "data/gzip.h"
#include "data/jsonl.h"
#include "tokenizer/bpe_trainer.h"

namespace vila::cli {

namespace {

// Special tokens when --special is not given: Qwen's chat tokens and VILA's image marker.
const std::vector<std::string> kDefaultSpecials = {"<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                                   "<image>"};

struct TokenizerTrainArgs {
  std::vector<std::string> inputs;
  std::string output;
  int32_t vocab_size = 0;
  std::vector<std::string> specials;
  int64_t min_frequency = 2;
  uint64_t max_bytes = 0;
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Adds the text segments of a JSONL file's records; returns the number of records used.
StatusOr<size_t> add_jsonl(const std::string& path, tok::BpeTrainer* trainer) {
  data::LoadOptions options;
  options.check_images = false;
  data::LoadReport report;
  const data::ImageResolver images{"", false};
  size_t used = 0;
  VILA_RETURN_IF_ERROR(data::for_each_json_record(
      path, options, &report, [&](const nlohmann::json& record, const std::string& where) {
        StatusOr<data::Sample> s = data::conversation_from_json(record, where, images);
        if (!s.ok()) s = data::interleaved_from_json(record, where, images, 0);
        if (!s.ok()) {
          return data::handle_bad_record(
              invalid_argument(where + ": neither a conversation nor an interleaved document"),
              options, &report);
        }
        for (const data::Segment& seg : s->segments) {
          if (!seg.is_image()) trainer->add_text(seg.text);
        }
        ++used;
        return ok_status();
      }));
  if (used == 0) return data::empty_dataset_error(path, report);
  if (report.skipped > 0) {
    std::fprintf(stderr, "note: %s: %zu of %zu records skipped (first: %s)\n", path.c_str(),
                 report.skipped, report.records, report.errors.front().c_str());
  }
  return used;
}

Status add_input(const std::string& path, uint64_t max_bytes, tok::BpeTrainer* trainer) {
  const uint64_t limit = max_bytes == 0 ? UINT64_MAX - 1 : max_bytes;
  if (ends_with(path, ".gz") || ends_with(path, ".dz")) {
    VILA_ASSIGN_OR_RETURN(std::string text, data::read_gzip_prefix(path, limit));
    trainer->add_text(text);
    return ok_status();
  }
  if (ends_with(path, ".jsonl") || ends_with(path, ".json")) {
    return add_jsonl(path, trainer).status();
  }
  VILA_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  if (text.size() > limit) text.resize(limit);
  trainer->add_text(text);
  return ok_status();
}

int run_tokenizer_train(const TokenizerTrainArgs& args) {
  tok::BpeTrainerOptions options;
  options.vocab_size = args.vocab_size;
  options.special_tokens = args.specials.empty() ? kDefaultSpecials : args.specials;
  options.min_frequency = args.min_frequency;
  auto trainer = tok::BpeTrainer::create(options);
  if (!trainer.ok()) return report_error(trainer.status());
  for (const std::string& path : args.inputs) {
    Status s = add_input(path, args.max_bytes, &*trainer);
    if (!s.ok()) return report_error(s);
  }
  auto result = trainer->train();
  if (!result.ok()) return report_error(result.status());
  Status written = tok::write_bpe_tokenizer(*result, args.output);
  if (!written.ok()) return report_error(written);
  if (!result->reached_vocab_size) {
    std::fprintf(stderr,
                 "warning: the text only supports %d tokens (no pair left that occurs at least "
                 "%lld times); asked for %d\n",
                 result->n_tokens(), static_cast<long long>(args.min_frequency), args.vocab_size);
  }
  std::printf(
      "trained %d tokens (%d bytes + %zu merged + %zu special) from %lld words "
      "(%lld distinct): %s\n",
      result->n_tokens(), tok::kByteSymbols, result->vocab.size() - tok::kByteSymbols,
      result->special_tokens.size(), static_cast<long long>(result->words),
      static_cast<long long>(result->unique_words),
      path_join(args.output, "tokenizer.json").c_str());
  return 0;
}

}  // namespace

void add_tokenizer_command(CLI::App& app, int& exit_code) {
  CLI::App* group = app.add_subcommand("tokenizer", "Tokenizer tools");
  group->require_subcommand(1);
  auto args = std::make_shared<TokenizerTrainArgs>();
  CLI::App* cmd = group->add_subcommand(
      "train",
      "Train a byte-level BPE tokenizer (Qwen2 pre-tokenisation) and write tokenizer.json");
  cmd->add_option("--input", args->inputs,
                  "Training text: UTF-8 files, .gz/.dz (decompressed), .jsonl/.json (the text "
                  "of conversation or interleaved records)")
      ->required();
  cmd->add_option("--vocab-size", args->vocab_size,
                  "Total token ids: 256 bytes + merges + special tokens")
      ->required();
  cmd->add_option("--output", args->output, "Folder to write tokenizer.json & co. into")
      ->required();
  cmd->add_option("--special", args->specials,
                  "Special tokens, ids after the vocabulary in this order (default: "
                  "<|endoftext|> <|im_start|> <|im_end|> <image>)");
  cmd->add_option("--min-frequency", args->min_frequency,
                  "Never merge a pair seen fewer times than this")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-bytes", args->max_bytes,
                  "Read at most this many (decompressed) bytes of each text input; 0 is all");
  cmd->callback([args, &exit_code] { exit_code = run_tokenizer_train(*args); });
}

}  // namespace vila::cli
