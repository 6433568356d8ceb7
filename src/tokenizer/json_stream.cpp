#include "tokenizer/json_stream.h"

#include <cstdint>

namespace vila::tok {

namespace {

using nlohmann::json;

// Builds a DOM like nlohmann's own SAX DOM parser, except inside model.vocab / model.merges.
class Handler : public nlohmann::json_sax<json> {
 public:
  Handler(TokenizerJsonParts* out, const std::string& name) : out_(out), name_(name) {}

  const std::string& error() const { return error_; }

  bool null() override { return value(json(nullptr)); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override {
    if (mode_ == kVocab) return vocab_id(v);
    return value(json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == kVocab) {
      return vocab_id(v > static_cast<number_unsigned_t>(INT64_MAX) ? -1 : static_cast<int64_t>(v));
    }
    return value(json(v));
  }
  bool number_float(number_float_t v, const string_t&) override { return value(json(v)); }
  bool binary(binary_t& v) override { return value(json(std::move(v))); }

  bool string(string_t& v) override {
    if (mode_ == kMerges) {
      if (merge_level_ == 1) {
        merge_parts_.push_back(std::move(v));
        return true;
      }
      const size_t sp = v.find(' ');
      if (sp == std::string::npos || v.find(' ', sp + 1) != std::string::npos) return bad_merge();
      out_->merges.emplace_back(v.substr(0, sp), v.substr(sp + 1));
      return true;
    }
    return value(json(std::move(v)));
  }

  bool key(string_t& k) override {
    if (mode_ == kVocab) {
      vocab_key_ = std::move(k);
      return true;
    }
    expect_ = kNone;
    if (stack_.size() == 1) root_key_ = k;
    if (stack_.size() == 2 && model_ == stack_.back()) {
      if (k == "vocab") expect_ = kVocab;
      if (k == "merges") expect_ = kMerges;
    }
    pending_ = &(*stack_.back())[k];
    return true;
  }

  bool start_object(std::size_t) override {
    if (mode_ == kVocab) return bad_vocab();
    if (mode_ == kMerges) return bad_merge();
    const Mode expected = expect_;
    expect_ = kNone;
    if (expected == kVocab) {
      mode_ = kVocab;
      out_->has_vocab = true;
      out_->vocab.clear();
      out_->vocab.reserve(1 << 17);
      return true;
    }
    json* v = place(json(json::value_t::object));
    if (stack_.size() == 1 && root_key_ == "model" && model_ == nullptr) model_ = v;
    stack_.push_back(v);
    return true;
  }

  bool end_object() override {
    if (mode_ == kVocab) {
      mode_ = kNone;
      return true;
    }
    stack_.pop_back();
    return true;
  }

  bool start_array(std::size_t) override {
    if (mode_ == kVocab) return bad_vocab();
    if (mode_ == kMerges) {
      if (merge_level_ == 1) return bad_merge();
      merge_level_ = 1;
      merge_parts_.clear();
      return true;
    }
    const Mode expected = expect_;
    expect_ = kNone;
    if (expected == kMerges) {
      mode_ = kMerges;
      merge_level_ = 0;
      out_->has_merges = true;
      out_->merges.clear();
      return true;
    }
    stack_.push_back(place(json(json::value_t::array)));
    return true;
  }

  bool end_array() override {
    if (mode_ == kMerges) {
      if (merge_level_ == 0) {
        mode_ = kNone;
        return true;
      }
      merge_level_ = 0;
      if (merge_parts_.size() != 2) return bad_merge();
      out_->merges.emplace_back(std::move(merge_parts_[0]), std::move(merge_parts_[1]));
      return true;
    }
    stack_.pop_back();
    return true;
  }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    error_ = name_ + ": malformed JSON at byte " + std::to_string(position) + ": " + ex.what();
    return false;
  }

 private:
  enum Mode { kNone, kVocab, kMerges };

  // Stores a value where the DOM expects it (root, array element or pending object member).
  json* place(json&& v) {
    if (stack_.empty()) {
      out_->rest = std::move(v);
      return &out_->rest;
    }
    json* top = stack_.back();
    if (top->is_array()) {
      top->push_back(std::move(v));
      return &top->back();
    }
    *pending_ = std::move(v);
    return pending_;
  }

  bool value(json&& v) {
    if (mode_ == kVocab) return bad_vocab();
    if (mode_ == kMerges) return bad_merge();
    expect_ = kNone;
    place(std::move(v));
    return true;
  }

  bool vocab_id(int64_t id) {
    if (id < 0 || id > INT32_MAX) {
      error_ = name_ + ": model.vocab['" + vocab_key_ + "'] is out of range";
      return false;
    }
    out_->vocab.insert_or_assign(std::move(vocab_key_), static_cast<int32_t>(id));  // last wins
    return true;
  }

  bool bad_vocab() {
    error_ = name_ + ": model.vocab['" + vocab_key_ + "'] must be an integer id";
    return false;
  }

  bool bad_merge() {
    error_ = name_ + ": model.merges[" + std::to_string(out_->merges.size()) +
             "] must be \"a b\" or [\"a\", \"b\"]";
    return false;
  }

  TokenizerJsonParts* out_;
  const std::string& name_;
  std::string error_;
  std::vector<json*> stack_;
  json* pending_ = nullptr;
  json* model_ = nullptr;
  std::string root_key_;
  Mode expect_ = kNone;  // the next value is model.vocab / model.merges
  Mode mode_ = kNone;    // streaming model.vocab / model.merges
  std::string vocab_key_;
  int merge_level_ = 0;  // 1 inside a ["a", "b"] pair
  std::vector<std::string> merge_parts_;
};

}  // namespace

StatusOr<TokenizerJsonParts> parse_tokenizer_json(std::string_view text, const std::string& name) {
  TokenizerJsonParts parts;
  Handler handler(&parts, name);
  bool ok;
  try {
    ok = json::sax_parse(text.begin(), text.end(), &handler);
  } catch (const std::exception& e) {  // defensive: the handler itself does not throw
    return invalid_argument(name + ": malformed JSON: " + e.what());
  }
  if (!ok) {
    return invalid_argument(handler.error().empty() ? name + ": malformed JSON" : handler.error());
  }
  return parts;
}

}  // namespace vila::tok
