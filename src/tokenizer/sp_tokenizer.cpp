#include "tokenizer/sp_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <unordered_map>

#include "tokenizer/bpe.h"
#include "tokenizer/hf_pipeline.h"
#include "tokenizer/utf8.h"

namespace vila::tok {

namespace {

constexpr const char* kSpaceMark = "\xE2\x96\x81";  // U+2581

class SpTokenizer : public Tokenizer {
 public:
  SpTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp, BpeModel bpe,
              const std::vector<AddedToken>& added, bool legacy)
      : sp_(std::move(sp)), bpe_(std::move(bpe)), legacy_(legacy) {
    n_tokens_ = sp_->GetPieceSize();
    for (const AddedToken& t : added) {
      if (t.id < 0 || t.content.empty()) continue;
      if (by_id_.count(t.id) || by_content_.count(t.content)) continue;
      by_id_[t.id] = added_.size();
      by_content_.emplace(t.content, t.id);
      added_.push_back(t);
      matcher_.add(t.content, t.id, t.lstrip, t.rstrip, t.single_word);
      n_tokens_ = std::max(n_tokens_, t.id + 1);
    }
    // The decoder of HF's converted Llama tokenizer.json: ▁ -> space, <0xNN> -> bytes, strip the
    // first leading space.
    DecoderStep replace, byte_fallback, fuse, strip;
    replace.type = DecoderStep::kReplace;
    replace.pattern = Pattern::literal(kSpaceMark);
    replace.text = std::string(1, ' ');
    decoder_.steps.push_back(replace);
    byte_fallback.type = DecoderStep::kByteFallback;
    decoder_.steps.push_back(byte_fallback);
    fuse.type = DecoderStep::kFuse;
    decoder_.steps.push_back(fuse);
    strip.type = DecoderStep::kStrip;
    strip.text = std::string(1, ' ');
    strip.start = 1;
    decoder_.steps.push_back(strip);
  }

  TokenizerKind kind() const override { return TokenizerKind::kSentencePiece; }

  std::vector<int32_t> encode(std::string_view input) const override {
    std::vector<int32_t> ids;
    std::string owned;
    std::string_view text = input;
    if (!utf8_valid(text)) {
      owned = utf8_lossy(text);
      text = owned;
    }
    std::string word;
    auto encode_segment = [&](std::string_view s, bool at_origin) {
      if (s.empty()) return;
      word.clear();
      // Spaces to "▁", then the prefix (Prepend normalizer when legacy, Metaspace "first" else).
      for (char c : s) {
        if (c == ' ') {
          word += kSpaceMark;
        } else {
          word += c;
        }
      }
      // HF's Prepend normalizer (legacy) always prepends; Metaspace "first" only at the start of
      // the text and only where no "▁" is there already.
      if (legacy_ || (at_origin && word.rfind(kSpaceMark, 0) != 0)) word.insert(0, kSpaceMark);
      bpe_.tokenize(word, &ids);
    };
    if (matcher_.empty()) {
      encode_segment(text, true);
      return ids;
    }
    for (const Segment& seg : matcher_.split(text)) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
      } else {
        encode_segment(text.substr(seg.span.first, seg.span.second - seg.span.first),
                       seg.span.first == 0);
      }
    }
    return ids;
  }

  std::string token_bytes(int32_t id) const override {
    auto it = by_id_.find(id);
    if (it != by_id_.end()) return added_[it->second].content;
    if (id < 0 || id >= sp_->GetPieceSize()) return "";
    if (sp_->IsControl(id) || sp_->IsUnknown(id)) return sp_->IdToPiece(id);
    return decoder_.token_bytes(sp_->IdToPiece(id));
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
      std::string piece = id_to_piece(id);
      if (!piece.empty()) tokens.push_back(std::move(piece));
    }
    return decoder_.decode(std::move(tokens));
  }

  std::string id_to_piece(int32_t id) const override {
    auto it = by_id_.find(id);
    if (it != by_id_.end()) return added_[it->second].content;
    if (id < 0 || id >= sp_->GetPieceSize()) return "";
    return sp_->IdToPiece(id);
  }

  std::optional<int32_t> piece_to_id(std::string_view piece) const override {
    auto it = by_content_.find(piece);
    if (it != by_content_.end()) return it->second;
    const int id = sp_->PieceToId(piece);
    if (id < 0 || (sp_->IsUnknown(id) && sp_->IdToPiece(id) != piece)) return std::nullopt;
    return id;
  }

  int32_t n_tokens() const override { return n_tokens_; }

  bool is_special(int32_t id) const override {
    auto it = by_id_.find(id);
    if (it != by_id_.end()) return added_[it->second].special;
    if (id < 0 || id >= sp_->GetPieceSize()) return false;
    return sp_->IsControl(id) || sp_->IsUnknown(id);
  }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  BpeModel bpe_;
  bool legacy_;
  std::vector<AddedToken> added_;
  std::unordered_map<int32_t, size_t> by_id_;
  VocabMap by_content_;
  AddedTokenMatcher matcher_;
  Decoder decoder_;
  int32_t n_tokens_ = 0;
};

// The BPE that HF builds from a SentencePiece model: vocabulary = pieces by id; merges = for every
// piece (in id order), each split into two pieces that are both in the vocabulary (ordered by the
// ids of left then right), all sorted by the piece's score, best first (a stable sort, as
// Python's).
StatusOr<BpeModel> bpe_from_sentencepiece(const sentencepiece::SentencePieceProcessor& sp,
                                          const std::string& path) {
  VocabMap vocab;
  const int n = sp.GetPieceSize();
  std::vector<std::string> pieces(static_cast<size_t>(n));
  for (int id = 0; id < n; ++id) {
    pieces[static_cast<size_t>(id)] = sp.IdToPiece(id);
    vocab.emplace(pieces[static_cast<size_t>(id)], id);
  }
  struct Merge {
    int32_t left, right;
    float score;
  };
  std::vector<Merge> merges;
  std::vector<Merge> local;
  for (int id = 0; id < n; ++id) {
    const std::string& piece = pieces[static_cast<size_t>(id)];
    local.clear();
    for (size_t cut = 1; cut < piece.size(); ++cut) {
      if ((static_cast<unsigned char>(piece[cut]) & 0xC0) == 0x80) continue;  // mid code point
      auto l = vocab.find(std::string_view(piece).substr(0, cut));
      auto r = vocab.find(std::string_view(piece).substr(cut));
      if (l != vocab.end() && r != vocab.end())
        local.push_back({l->second, r->second, sp.GetScore(id)});
    }
    std::sort(local.begin(), local.end(), [](const Merge& a, const Merge& b) {
      return a.left != b.left ? a.left < b.left : a.right < b.right;
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(),
                   [](const Merge& a, const Merge& b) { return a.score > b.score; });
  std::vector<std::pair<std::string, std::string>> merge_strings;
  merge_strings.reserve(merges.size());
  for (const Merge& m : merges) {
    merge_strings.emplace_back(pieces[static_cast<size_t>(m.left)],
                               pieces[static_cast<size_t>(m.right)]);
  }
  BpeOptions opts;
  for (int id = 0; id < n; ++id) {
    if (sp.IsUnknown(id)) opts.unk_token = pieces[static_cast<size_t>(id)];
    if (sp.IsByte(id)) opts.byte_fallback = true;
  }
  opts.fuse_unk = true;
  return BpeModel::build(std::move(vocab), merge_strings, opts, path);
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> load_sentencepiece(const std::string& path,
                                                        const std::vector<AddedToken>& added,
                                                        bool legacy) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->Load(path);
  if (!status.ok()) {
    return invalid_argument(path + ": not a SentencePiece model: " + status.ToString());
  }
  VILA_ASSIGN_OR_RETURN(BpeModel bpe, bpe_from_sentencepiece(*sp, path));
  return std::unique_ptr<Tokenizer>(new SpTokenizer(std::move(sp), std::move(bpe), added, legacy));
}

}  // namespace vila::tok
