#include "tokenizer/bpe.h"

#include <cstdio>
#include <queue>

#include "tokenizer/utf8.h"

namespace vila::tok {

namespace {

constexpr size_t kMaxCachedWordBytes = 256;  // as HF: longer words are not cached
constexpr size_t kMaxCacheEntries = 200000;  // the cache is simply cleared when it gets this big

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

std::string byte_piece(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
  return buf;
}

}  // namespace

StatusOr<BpeModel> BpeModel::build(VocabMap vocab,
                                   const std::vector<std::pair<std::string, std::string>>& merges,
                                   BpeOptions opts, const std::string& where) {
  BpeModel m;
  int32_t max_id = -1;
  for (const auto& [piece, id] : vocab) {
    if (id < 0) return invalid_argument(where + ": vocab id of '" + piece + "' is negative");
    max_id = std::max(max_id, id);
  }
  m.pieces_.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [piece, id] : vocab) m.pieces_[id] = piece;
  m.vocab_ = std::move(vocab);
  m.merges_.reserve(merges.size());
  const size_t prefix_len = opts.continuing_subword_prefix.size();
  std::string merged;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = m.vocab_.find(a);
    auto ib = m.vocab_.find(b);
    if (ia == m.vocab_.end() || ib == m.vocab_.end()) {
      return invalid_argument(where + ": merges[" + std::to_string(rank) + "] '" + a + " " + b +
                              "' names a token that is not in the vocabulary");
    }
    merged.assign(a);
    if (b.size() >= prefix_len) merged.append(b, prefix_len, std::string::npos);
    auto im = m.vocab_.find(merged);
    if (im == m.vocab_.end()) {
      return invalid_argument(where + ": merges[" + std::to_string(rank) + "] '" + a + " " + b +
                              "' makes '" + merged + "', which is not in the vocabulary");
    }
    // As HF (collect into a map): a repeated pair keeps its last rank.
    m.merges_[pair_key(ia->second, ib->second)] = {static_cast<int32_t>(rank), im->second};
  }
  if (opts.unk_token) {
    auto it = m.vocab_.find(*opts.unk_token);
    if (it == m.vocab_.end()) {
      return invalid_argument(where + ": unk_token '" + *opts.unk_token +
                              "' is not in the vocabulary");
    }
    m.unk_id_ = it->second;
  }
  m.opts_ = std::move(opts);
  return m;
}

const std::string& BpeModel::piece(int32_t id) const {
  static const std::string kEmpty;
  if (id < 0 || id >= size()) return kEmpty;
  return pieces_[id];
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (opts_.ignore_merges) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() < kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out->size();
  merge_word(word, out);
  if (cacheable) {
    std::vector<int32_t> ids(out->begin() + static_cast<std::ptrdiff_t>(first), out->end());
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::move(ids));
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>* out) const {
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    if (n > 0) symbols.back().next = n;
    symbols.push_back({id, n - 1, -1, true});
  };

  // Initial symbols: one per character (HF merge_word), with prefix/suffix, byte fallback and
  // (fused) unknowns.
  int32_t pending_unk = -1;  // a (fused) unknown not yet added
  std::string buf;
  size_t i = 0;
  while (i < word.size()) {
    size_t len = utf8_len(static_cast<unsigned char>(word[i]));
    if (i + len > word.size()) len = word.size() - i;
    const bool is_first = i == 0;
    const bool is_last = i + len == word.size();
    std::string_view s = word.substr(i, len);
    if ((!is_first && !opts_.continuing_subword_prefix.empty()) ||
        (is_last && !opts_.end_of_word_suffix.empty())) {
      buf.clear();
      if (!is_first) buf += opts_.continuing_subword_prefix;
      buf += s;
      if (is_last) buf += opts_.end_of_word_suffix;
      s = buf;
    }
    i += len;
    auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      if (pending_unk >= 0) add(pending_unk);
      pending_unk = -1;
      add(it->second);
      continue;
    }
    if (opts_.byte_fallback) {
      std::vector<int32_t> bytes;
      bool all = true;
      for (unsigned char c : s) {
        auto bt = vocab_.find(byte_piece(c));
        if (bt == vocab_.end()) {
          all = false;
          break;
        }
        bytes.push_back(bt->second);
      }
      if (all) {
        // HF adds byte tokens without flushing a pending unk first (it stays pending).
        for (int32_t b : bytes) add(b);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk >= 0 && !opts_.fuse_unk) add(pending_unk);
      pending_unk = *unk_id_;
    }
  }
  if (pending_unk >= 0) add(pending_unk);

  // Merge loop: always apply the best-ranked pair, leftmost first (HF Word::merge_all).
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push_pair = [&](int32_t pos) {
    const int32_t next = symbols[pos].next;
    if (next < 0) return;
    auto it = merges_.find(pair_key(symbols[pos].id, symbols[next].id));
    if (it != merges_.end()) queue.push({it->second.first, pos, it->second.second});
  };
  for (int32_t p = 0; p + 1 < static_cast<int32_t>(symbols.size()); ++p) push_pair(p);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    const int32_t next = left.next;
    auto it = merges_.find(pair_key(left.id, symbols[next].id));
    if (it == merges_.end() || it->second.second != top.new_id) continue;
    left.id = top.new_id;
    left.next = symbols[next].next;
    symbols[next].alive = false;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  for (const Symbol& s : symbols) {
    if (s.alive) out->push_back(s.id);
  }
}

}  // namespace vila::tok
