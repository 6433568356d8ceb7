// encode_sample: conversations through the chat template, documents verbatim, images expanded to
// Ti placeholder rows + "\n" (see encode.h for the layout).
#include "train/encode.h"

#include <string_view>
#include <utility>

namespace vila::train {

namespace {

constexpr std::string_view kImageMarker = "<image>";
constexpr std::string_view kImagePiece = "<image>";

// Python's str.strip() over ASCII whitespace, as build_prompt strips the user message.
std::string strip(const std::string& s) {
  constexpr const char* kSpace = " \t\n\r\f\v";
  const size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

// The text of a later user turn as it follows the previous answer's end-of-turn marker
// (VILA's conversation.py / qwen2.jinja continued past the first exchange).
std::string render_next_user_turn(ChatTemplateKind kind, const std::string& message) {
  switch (kind) {
    case ChatTemplateKind::kQwen2:
      return "\n<|im_start|>user\n" + message + "<|im_end|>\n<|im_start|>assistant\n";
    case ChatTemplateKind::kVicunaV1:
      return "USER: " + message + " ASSISTANT:";
    case ChatTemplateKind::kLlama3:
      return "<|start_header_id|>user<|end_header_id|>\n\n" + message +
             "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
    case ChatTemplateKind::kNone:
      return message;
  }
  return message;
}

// A run of consecutive segments with the same role.
struct Turn {
  data::Role role = data::Role::kUser;
  std::vector<const data::Segment*> segments;
  size_t images() const {
    size_t n = 0;
    for (const data::Segment* s : segments) n += s->is_image() ? 1 : 0;
    return n;
  }
  std::string text() const {
    std::string out;
    for (const data::Segment* s : segments) {
      if (!s->is_image()) out += s->text;
    }
    return out;
  }
};

std::vector<Turn> group_turns(const data::Sample& sample) {
  std::vector<Turn> turns;
  for (const data::Segment& seg : sample.segments) {
    if (turns.empty() || turns.back().role != seg.role) turns.push_back({seg.role, {}});
    turns.back().segments.push_back(&seg);
  }
  return turns;
}

// The row being built: ids, whether each is trained, image slots.
class RowBuilder {
 public:
  RowBuilder(const EncodeContext& ctx, std::vector<int32_t> newline)
      : ctx_(ctx), newline_(std::move(newline)) {}

  void token(int32_t id, bool trained) {
    out_.ids.push_back(id);
    trained_.push_back(trained ? 1 : 0);
  }
  // Trained or untrained text ids; an image id among them is an error (the caller checked).
  void text(const std::vector<int32_t>& ids, bool trained) {
    for (int32_t id : ids) token(id, trained);
  }
  // Ti placeholder rows of `image` then the encoder's "\n" ids, all untrained.
  void image(const data::ImageRef& image) {
    out_.images.push_back(image);
    out_.image_rows.push_back(out_.tokens());
    for (int64_t j = 0; j < ctx_.tokens_per_image; ++j) token(*ctx_.image_token_id, false);
    for (int32_t id : newline_) token(id, false);
  }
  // Untrained prompt ids: each image token becomes the next image of `images`.
  Status prompt(const std::vector<int32_t>& ids, const std::vector<const data::ImageRef*>& images,
                const std::string& where) {
    size_t next = 0;
    for (int32_t id : ids) {
      if (ctx_.image_token_id && id == *ctx_.image_token_id) {
        if (next == images.size()) {
          return invalid_argument("encode: " + where + ": the text has more <image> tokens than " +
                                  std::to_string(images.size()) + " image(s)");
        }
        image(*images[next++]);
      } else {
        token(id, false);
      }
    }
    if (next != images.size()) {
      return invalid_argument("encode: " + where + ": " + std::to_string(images.size()) +
                              " image(s) but " + std::to_string(next) +
                              " <image> token(s) in the rendered text");
    }
    return ok_status();
  }

  EncodedSample finish() && {
    const size_t t_count = out_.ids.size();
    out_.targets.assign(t_count, kIgnoreTarget);
    for (size_t t = 0; t + 1 < t_count; ++t) {
      if (trained_[t + 1]) out_.targets[t] = out_.ids[t + 1];
    }
    return std::move(out_);
  }

 private:
  const EncodeContext& ctx_;
  std::vector<int32_t> newline_;
  EncodedSample out_;
  std::vector<uint8_t> trained_;  // (T) 1 where the token is a target
};

Status check_no_image_token(const std::vector<int32_t>& ids, const EncodeContext& ctx,
                            const std::string& where) {
  if (!ctx.image_token_id) return ok_status();
  for (int32_t id : ids) {
    if (id == *ctx.image_token_id) {
      return invalid_argument("encode: " + where + ": trained text contains the image token " +
                              std::string(kImagePiece));
    }
  }
  return ok_status();
}

// The single id of the end-of-turn marker (eos for the "none" template).
StatusOr<int32_t> end_of_turn_id(const EncodeContext& ctx, const std::string& where) {
  const std::string eot = ctx.chat_template.end_of_turn();
  if (eot.empty()) {
    if (!ctx.tokenizer->eos_id) {
      return invalid_argument("encode: " + where +
                              ": chat template none ends answers with eos, the tokenizer has none");
    }
    return *ctx.tokenizer->eos_id;
  }
  const std::vector<int32_t> ids = ctx.tokenizer->encode(eot);
  if (ids.size() != 1) {
    return invalid_argument("encode: " + where + ": the end-of-turn marker " + eot + " is " +
                            std::to_string(ids.size()) + " tokens, not one special token");
  }
  return ids[0];
}

StatusOr<EncodedSample> encode_conversation(const data::Sample& sample, const EncodeContext& ctx,
                                            RowBuilder row) {
  const std::string& where = sample.origin;
  std::vector<Turn> turns = group_turns(sample);
  ChatTemplate templ = ctx.chat_template;
  size_t k = 0;
  if (k < turns.size() && turns[k].role == data::Role::kSystem) {
    if (turns[k].images() > 0) {
      return unimplemented("encode: " + where + ": images in a system turn");
    }
    if (templ.kind != ChatTemplateKind::kQwen2) {
      return unimplemented("encode: " + where + ": a system prompt with chat template " +
                           chat_template_name(templ.kind) + " (only qwen2 takes one)");
    }
    templ.system_prompt = turns[k].text();
    ++k;
  }
  VILA_ASSIGN_OR_RETURN(const int32_t eot_id, end_of_turn_id(ctx, where));
  const std::string eot_text = templ.end_of_turn();
  const bool single_image = sample.image_count() == 1;
  size_t answers = 0;
  for (; k < turns.size(); k += 2) {
    const Turn& user = turns[k];
    if (user.role != data::Role::kUser || k + 1 >= turns.size() ||
        turns[k + 1].role != data::Role::kAssistant) {
      return invalid_argument("encode: " + where + ": turn " + std::to_string(k) + " (" +
                              data::role_name(user.role) +
                              ") is not a user turn followed by an assistant turn");
    }
    // The user message as build_prompt writes it.
    std::string message;
    std::vector<const data::ImageRef*> images;
    for (const data::Segment* seg : user.segments) {
      if (!seg->is_image()) {
        message += seg->text;
        continue;
      }
      images.push_back(&seg->image);
      message.append(kImageMarker);
      if (ctx.image_marker_newline && single_image) message.append("\n");
    }
    message = strip(message);
    std::vector<int32_t> prompt;
    if (answers == 0) {
      if (templ.prepend_bos()) {
        if (!ctx.tokenizer->bos_id) {
          return invalid_argument(std::string("encode: chat template ") +
                                  chat_template_name(templ.kind) + " needs a BOS token, none set");
        }
        prompt.push_back(*ctx.tokenizer->bos_id);
      }
      const std::vector<int32_t> body = ctx.tokenizer->encode(templ.render_user_turn(message));
      prompt.insert(prompt.end(), body.begin(), body.end());
    } else {
      // Tokenized as it follows the end-of-turn marker (special-token split, no text-start prefix).
      prompt = ctx.tokenizer->encode(eot_text + render_next_user_turn(templ.kind, message));
      if (!eot_text.empty()) {
        if (prompt.empty() || prompt[0] != eot_id) {
          return internal_error("encode: " + where + ": " + eot_text +
                                " did not tokenize to its own id before the next turn");
        }
        prompt.erase(prompt.begin());
      }
    }
    VILA_RETURN_IF_ERROR(row.prompt(prompt, images, where));

    const Turn& assistant = turns[k + 1];
    if (assistant.images() > 0) {
      return unimplemented("encode: " + where + ": images in an assistant turn");
    }
    const std::vector<int32_t> answer = ctx.tokenizer->encode(assistant.text());
    VILA_RETURN_IF_ERROR(check_no_image_token(answer, ctx, where));
    row.text(answer, /*trained=*/true);
    row.token(eot_id, /*trained=*/true);
    ++answers;
  }
  if (answers == 0) {
    return invalid_argument("encode: " + where + ": a conversation without an assistant turn");
  }
  return std::move(row).finish();
}

StatusOr<EncodedSample> encode_document(const data::Sample& sample, const EncodeContext& ctx,
                                        RowBuilder row) {
  const std::string& where = sample.origin;
  const Tokenizer& tok = *ctx.tokenizer;
  if (!tok.eos_id) {
    return invalid_argument("encode: " + where +
                            ": a document ends with eos, the tokenizer has none");
  }
  if (tok.add_bos_token && tok.bos_id) row.token(*tok.bos_id, /*trained=*/false);
  std::string run;  // consecutive text segments are tokenized together
  auto flush_text = [&]() -> Status {
    if (run.empty()) return ok_status();
    const std::vector<int32_t> ids = tok.encode(run);
    run.clear();
    VILA_RETURN_IF_ERROR(check_no_image_token(ids, ctx, where));
    row.text(ids, /*trained=*/true);
    return ok_status();
  };
  for (const data::Segment& seg : sample.segments) {
    if (seg.role != data::Role::kDocument) {
      return invalid_argument("encode: " + where + ": a document segment with role " +
                              data::role_name(seg.role));
    }
    if (!seg.is_image()) {
      run += seg.text;
      continue;
    }
    VILA_RETURN_IF_ERROR(flush_text());
    row.image(seg.image);
  }
  VILA_RETURN_IF_ERROR(flush_text());
  row.token(*tok.eos_id, /*trained=*/true);
  return std::move(row).finish();
}

}  // namespace

StatusOr<EncodeContext> make_encode_context(const Tokenizer& tokenizer,
                                            const ChatTemplate& chat_template,
                                            const PreprocessConfig& preprocess,
                                            int64_t max_tokens) {
  EncodeContext ctx;
  ctx.tokenizer = &tokenizer;
  ctx.chat_template = chat_template;
  ctx.image_token_id = tokenizer.piece_to_id(kImagePiece);
  if (!ctx.image_token_id) {
    return invalid_argument("encode: the tokenizer has no " + std::string(kImagePiece) + " token");
  }
  ctx.tokens_per_image = tokens_per_tile(preprocess);
  ctx.max_tokens = max_tokens;
  ctx.image_marker_newline = preprocess.image_aspect_ratio == "dynamic";
  return ctx;
}

StatusOr<EncodedSample> encode_sample(const data::Sample& sample, const EncodeContext& ctx) {
  if (ctx.tokenizer == nullptr) return invalid_argument("encode: the context has no tokenizer");
  if (sample.image_count() > 0) {
    if (!ctx.image_token_id) {
      return invalid_argument("encode: " + sample.origin + " has images but the tokenizer has no " +
                              std::string(kImagePiece) + " token");
    }
    if (ctx.tokens_per_image <= 0) {
      return invalid_argument("encode: tokens_per_image must be positive, got " +
                              std::to_string(ctx.tokens_per_image));
    }
  }
  // BasicImageEncoder's end tokens: tokenizer("\n").input_ids, special tokens included.
  std::vector<int32_t> newline;
  if (ctx.tokenizer->add_bos_token && ctx.tokenizer->bos_id) {
    newline.push_back(*ctx.tokenizer->bos_id);
  }
  for (int32_t id : ctx.tokenizer->encode("\n")) newline.push_back(id);
  RowBuilder row(ctx, std::move(newline));

  EncodedSample out;
  if (sample.kind == data::SampleKind::kDocument) {
    VILA_ASSIGN_OR_RETURN(out, encode_document(sample, ctx, std::move(row)));
  } else {
    VILA_ASSIGN_OR_RETURN(out, encode_conversation(sample, ctx, std::move(row)));
  }
  if (ctx.max_tokens > 0 && out.tokens() > ctx.max_tokens) {
    return out_of_range("encode: " + sample.origin + " is " + std::to_string(out.tokens()) +
                        " tokens, more than max_tokens " + std::to_string(ctx.max_tokens));
  }
  out.origin = sample.origin;
  out.label = sample.label;
  return out;
}

}  // namespace vila::train
