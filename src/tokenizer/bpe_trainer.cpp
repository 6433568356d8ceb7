#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <filesystem>
#include <queue>
#include <set>

#include "core/mapped_file.h"
#include "tokenizer/utf8.h"

namespace vila::tok {

namespace {

using ojson = nlohmann::ordered_json;

// transformers' PRETOKENIZE_REGEX of Qwen2Tokenizer (also in Qwen's tokenizer.json).
constexpr const char* kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr const char* kImStart = "<|im_start|>";
constexpr const char* kImEnd = "<|im_end|>";
constexpr const char* kEndOfText = "<|endoftext|>";
// ChatML with Qwen2's default system prompt (the template of Qwen2 / NVILA tokenizer_config.json).
constexpr const char* kChatMlTemplate =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
constexpr const char* kMergesHeader = "#version: 0.2\n";
// BpeTrainer::add_text pre-tokenises long texts in pieces of about this many bytes.
constexpr size_t kChunkBytes = 1 << 20;

ojson normalizer_json() { return {{"type", "NFC"}}; }

ojson byte_level_json() {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", false},
          {"use_regex", false}};
}

ojson pre_tokenizer_json() {
  ojson split = {{"type", "Split"},
                 {"pattern", {{"Regex", kQwen2Regex}}},
                 {"behavior", "Isolated"},
                 {"invert", false}};
  return {{"type", "Sequence"}, {"pretokenizers", ojson::array({split, byte_level_json()})}};
}

// Byte of each initial id: GPT-2's bytes_to_unicode order (the printable bytes ! .. ~, ¡ .. ¬,
// ® .. ÿ keep their own character and come first, then the other bytes in ascending order).
std::vector<uint8_t> byte_order() {
  std::vector<uint8_t> order;
  std::vector<bool> used(kByteSymbols, false);
  for (auto [lo, hi] : {std::pair{0x21, 0x7E}, std::pair{0xA1, 0xAC}, std::pair{0xAE, 0xFF}}) {
    for (int b = lo; b <= hi; ++b) {
      order.push_back(static_cast<uint8_t>(b));
      used[b] = true;
    }
  }
  for (int b = 0; b < kByteSymbols; ++b) {
    if (!used[b]) order.push_back(static_cast<uint8_t>(b));
  }
  return order;
}

// {token: id} in id order. Appended to the underlying vector: ordered_json's operator[] searches
// linearly, which is quadratic over a whole vocabulary (tokens are unique anyway).
ojson vocab_json(const BpeTrainResult& result) {
  ojson vocab = ojson::object();
  auto& entries = vocab.get_ref<ojson::object_t&>();
  entries.reserve(result.vocab.size());
  for (size_t i = 0; i < result.vocab.size(); ++i) entries.emplace_back(result.vocab[i], i);
  return vocab;
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t pair_left(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t pair_right(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

// Heap entry: the highest count first, then the smallest (left, right) pair.
struct Candidate {
  int64_t count;
  uint64_t pair;
  bool operator<(const Candidate& o) const {
    return count != o.count ? count < o.count : pair > o.pair;
  }
};

// The merge loop over counted words (see the header for the rules).
class MergeState {
 public:
  MergeState(std::vector<Word> words, std::vector<std::string> vocab)
      : words_(std::move(words)), vocab_(std::move(vocab)) {
    for (size_t i = 0; i < vocab_.size(); ++i) ids_.emplace(vocab_[i], static_cast<int32_t>(i));
    for (size_t w = 0; w < words_.size(); ++w) {
      const Word& word = words_[w];
      for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
        const uint64_t key = pair_key(word.symbols[i], word.symbols[i + 1]);
        counts_[key] += word.count;
        where_[key].push_back(static_cast<uint32_t>(w));
      }
    }
    for (const auto& [key, count] : counts_) heap_.push({count, key});
  }

  // Merges until the vocabulary has `target` tokens or no pair reaches `min_count`.
  void run(size_t target, int64_t min_count,
           std::vector<std::pair<std::string, std::string>>* merges) {
    while (vocab_.size() < target && !heap_.empty()) {
      const Candidate top = heap_.top();
      heap_.pop();
      auto it = counts_.find(top.pair);
      const int64_t current = it == counts_.end() ? 0 : it->second;
      if (current != top.count) {  // stale entry: counts only ever go down
        if (current > 0) heap_.push({current, top.pair});
        continue;
      }
      if (current < min_count) break;
      const int32_t a = pair_left(top.pair), b = pair_right(top.pair);
      merges->emplace_back(vocab_[a], vocab_[b]);
      merge(a, b, top.pair);
    }
  }

  std::vector<std::string> take_vocab() { return std::move(vocab_); }

 private:
  void change(int32_t left, int32_t right, int64_t delta, uint32_t word) {
    const uint64_t key = pair_key(left, right);
    counts_[key] += delta;
    if (delta > 0) {
      where_[key].push_back(word);
      touched_.push_back(key);
    }
  }

  void merge(int32_t a, int32_t b, uint64_t key) {
    const std::string merged = vocab_[a] + vocab_[b];
    auto [id_it, is_new] = ids_.emplace(merged, static_cast<int32_t>(vocab_.size()));
    if (is_new) vocab_.push_back(merged);
    const int32_t z = id_it->second;
    std::vector<uint32_t> words = std::move(where_[key]);
    where_.erase(key);
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    touched_.clear();
    for (uint32_t w : words) {
      std::vector<int32_t>& s = words_[w].symbols;
      const int64_t c = words_[w].count;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        if (s[i] != a || s[i + 1] != b) continue;
        if (i > 0) {
          change(s[i - 1], a, -c, w);
          change(s[i - 1], z, c, w);
        }
        s[i] = z;
        s.erase(s.begin() + static_cast<std::ptrdiff_t>(i) + 1);
        if (i + 1 < s.size()) {
          change(b, s[i + 1], -c, w);
          change(z, s[i + 1], c, w);
        }
      }
    }
    counts_.erase(key);
    std::sort(touched_.begin(), touched_.end());
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    for (uint64_t t : touched_) {
      auto it = counts_.find(t);
      if (it != counts_.end() && it->second > 0) heap_.push({it->second, t});
    }
  }

  std::vector<Word> words_;
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<uint64_t, int64_t> counts_;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where_;  // word indices, maybe repeated
  std::priority_queue<Candidate> heap_;
  std::vector<uint64_t> touched_;
};

}  // namespace

StatusOr<BpeTrainer> BpeTrainer::create(BpeTrainerOptions options) {
  std::set<std::string> seen;
  for (const std::string& s : options.special_tokens) {
    if (s.empty()) return invalid_argument("bpe trainer: empty special token");
    if (!utf8_valid(s)) return invalid_argument("bpe trainer: special token is not valid UTF-8");
    if (!seen.insert(s).second) {
      return invalid_argument("bpe trainer: special token '" + s + "' is given twice");
    }
  }
  const int64_t minimum = kByteSymbols + static_cast<int64_t>(options.special_tokens.size());
  if (options.vocab_size < minimum) {
    return invalid_argument("bpe trainer: vocab size " + std::to_string(options.vocab_size) +
                            " is below " + std::to_string(minimum) + " (256 byte tokens + " +
                            std::to_string(options.special_tokens.size()) + " special tokens)");
  }
  if (options.min_frequency < 1) {
    return invalid_argument("bpe trainer: min_frequency " + std::to_string(options.min_frequency) +
                            " must be at least 1");
  }
  BpeTrainer t;
  nlohmann::json norm = normalizer_json();
  nlohmann::json pre = pre_tokenizer_json();
  VILA_ASSIGN_OR_RETURN(t.normalizer_, parse_normalizer(norm, "bpe trainer: normalizer"));
  VILA_ASSIGN_OR_RETURN(t.pre_tokenizer_, parse_pre_tokenizer(pre, "bpe trainer: pre_tokenizer"));
  for (size_t i = 0; i < options.special_tokens.size(); ++i) {
    t.specials_.add(options.special_tokens[i], static_cast<int32_t>(i), false, false, false);
  }
  t.options_ = std::move(options);
  return t;
}

void BpeTrainer::add_text(std::string_view input) {
  std::string owned;
  std::string_view text = input;
  if (!utf8_valid(text)) {
    owned = utf8_lossy(text);
    text = owned;
  }
  std::vector<PreToken> pieces;
  auto count_chunk = [&](std::string_view plain, bool at_origin) {
    pieces.clear();
    pre_tokenizer_.apply(normalizer_.apply(plain), at_origin, &pieces);
    for (PreToken& p : pieces) {
      ++word_counts_[std::move(p.text)];
      ++words_;
    }
  };
  // Long texts go through in chunks (the pre-tokenizer holds every piece of its input at once).
  // A chunk ends right after a '\n' that is followed by a printable ASCII character: the regex
  // always splits there (no alternative matches across "\n" followed by a non-space), and NFC
  // composes nothing across it, so the words are the same as for the whole text.
  auto count = [&](std::string_view plain, bool at_origin) {
    while (plain.size() > kChunkBytes) {
      size_t cut = kChunkBytes;
      while (cut < plain.size() &&
             !(plain[cut - 1] == '\n' && plain[cut] > ' ' && plain[cut] <= '~')) {
        ++cut;
      }
      count_chunk(plain.substr(0, cut), at_origin);
      plain.remove_prefix(cut);
      at_origin = false;
    }
    count_chunk(plain, at_origin);
  };
  if (specials_.empty()) {
    count(text, true);
    return;
  }
  for (const Segment& seg : specials_.split(text)) {
    if (seg.id < 0 && seg.span.second > seg.span.first) {
      count(text.substr(seg.span.first, seg.span.second - seg.span.first), seg.span.first == 0);
    }
  }
}

StatusOr<BpeTrainResult> BpeTrainer::train() const {
  if (word_counts_.empty()) return invalid_argument("bpe trainer: no text to train on");
  const std::vector<uint8_t> order = byte_order();
  std::vector<std::string> vocab;
  std::vector<int32_t> id_of_byte(kByteSymbols);
  for (int32_t id = 0; id < kByteSymbols; ++id) {
    vocab.push_back(byte_to_unicode(order[id]));
    id_of_byte[order[id]] = id;
  }
  // Words in byte order of their text, so that word indices do not depend on hash order.
  std::vector<const std::pair<const std::string, int64_t>*> sorted;
  sorted.reserve(word_counts_.size());
  for (const auto& entry : word_counts_) sorted.push_back(&entry);
  std::sort(sorted.begin(), sorted.end(), [](auto* x, auto* y) { return x->first < y->first; });
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto* entry : sorted) {
    Word w{{}, entry->second};
    const std::string& s = entry->first;
    for (size_t i = 0; i < s.size();) {
      char32_t cp = 0;
      const size_t len = utf8_decode(s, i, &cp);
      const int byte = len == 0 ? -1 : unicode_to_byte(cp);
      if (byte < 0) return internal_error("bpe trainer: pre-token is not byte-level text");
      w.symbols.push_back(id_of_byte[static_cast<size_t>(byte)]);
      i += len;
    }
    words.push_back(std::move(w));
  }

  BpeTrainResult result;
  result.words = words_;
  result.unique_words = static_cast<int64_t>(words.size());
  result.special_tokens = options_.special_tokens;
  const size_t target = static_cast<size_t>(options_.vocab_size) - options_.special_tokens.size();
  MergeState state(std::move(words), std::move(vocab));
  state.run(target, options_.min_frequency, &result.merges);
  result.vocab = state.take_vocab();
  result.reached_vocab_size = result.n_tokens() == options_.vocab_size;
  return result;
}

std::string bpe_tokenizer_json(const BpeTrainResult& result) {
  ojson added = ojson::array();
  const auto base = static_cast<int32_t>(result.vocab.size());
  for (size_t i = 0; i < result.special_tokens.size(); ++i) {
    added.push_back({{"id", base + static_cast<int32_t>(i)},
                     {"content", result.special_tokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  ojson vocab = vocab_json(result);
  ojson merges = ojson::array();
  for (const auto& [a, b] : result.merges) merges.push_back({a, b});
  ojson model = {{"type", "BPE"},
                 {"dropout", nullptr},
                 {"unk_token", nullptr},
                 {"continuing_subword_prefix", ""},
                 {"end_of_word_suffix", ""},
                 {"fuse_unk", false},
                 {"byte_fallback", false},
                 {"ignore_merges", false},
                 {"vocab", std::move(vocab)},
                 {"merges", std::move(merges)}};
  ojson j = {{"version", "1.0"},
             {"truncation", nullptr},
             {"padding", nullptr},
             {"added_tokens", std::move(added)},
             {"normalizer", normalizer_json()},
             {"pre_tokenizer", pre_tokenizer_json()},
             {"post_processor", byte_level_json()},
             {"decoder", byte_level_json()},
             {"model", std::move(model)}};
  return j.dump(2) + "\n";
}

std::string bpe_tokenizer_config_json(const BpeTrainResult& result) {
  const auto& specials = result.special_tokens;
  auto has = [&](const char* t) {
    return std::find(specials.begin(), specials.end(), t) != specials.end();
  };
  ojson decoder = ojson::object();
  const auto base = static_cast<int32_t>(result.vocab.size());
  for (size_t i = 0; i < specials.size(); ++i) {
    decoder[std::to_string(base + static_cast<int32_t>(i))] = {
        {"content", specials[i]}, {"lstrip", false},      {"normalized", false},
        {"rstrip", false},        {"single_word", false}, {"special", true}};
  }
  const ojson eos = has(kImEnd) ? ojson(kImEnd) : has(kEndOfText) ? ojson(kEndOfText) : ojson();
  const ojson pad = has(kEndOfText) ? ojson(kEndOfText) : ojson();
  ojson j = {{"add_bos_token", false},
             {"add_prefix_space", false},
             {"added_tokens_decoder", std::move(decoder)},
             {"additional_special_tokens", specials},
             {"bos_token", nullptr}};
  if (has(kImStart) && has(kImEnd)) j["chat_template"] = kChatMlTemplate;
  j["clean_up_tokenization_spaces"] = false;
  j["eos_token"] = eos;
  j["errors"] = "replace";
  j["pad_token"] = pad;
  j["split_special_tokens"] = false;
  // Qwen2TokenizerFast defaults unk / eos / pad to <|endoftext|> and would add it if missing.
  j["tokenizer_class"] = has(kEndOfText) ? "Qwen2Tokenizer" : "PreTrainedTokenizerFast";
  j["unk_token"] = nullptr;
  return j.dump(2) + "\n";
}

Status write_bpe_tokenizer(const BpeTrainResult& result, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return invalid_argument(dir + ": cannot create the folder (" + ec.message() + ")");
  const ojson vocab = vocab_json(result);
  std::string merges = kMergesHeader;
  for (const auto& [a, b] : result.merges) merges.append(a).append(" ").append(b).append("\n");
  const std::pair<const char*, std::string> files[] = {
      {"tokenizer.json", bpe_tokenizer_json(result)},
      {"tokenizer_config.json", bpe_tokenizer_config_json(result)},
      {"vocab.json", vocab.dump() + "\n"},
      {"merges.txt", merges},
  };
  for (const auto& [name, text] : files) {
    VILA_RETURN_IF_ERROR(write_file_atomic(path_join(dir, name), text.data(), text.size()));
  }
  return ok_status();
}

}  // namespace vila::tok
