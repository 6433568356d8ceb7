// Conversation templates as VILA writes them (llava/conversation.py and
// llava/model/language_model/chat_templates/qwen2.jinja). Only the single user turn followed by an
// open assistant turn is needed for generate/score.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vila {

enum class ChatTemplateKind {
  kNone,      // raw prompt, nothing added
  kQwen2,     // <|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\n...
  kVicunaV1,  // "A chat between a curious user ... USER: {msg} ASSISTANT:" (BOS prepended)
  kLlama3,    // <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n...
};

struct ChatTemplate {
  ChatTemplateKind kind = ChatTemplateKind::kNone;
  // qwen2 only: the system prompt; empty means VILA's qwen2.jinja "You are a helpful assistant".
  std::string system_prompt;
  // Render the prompt for one user message with the assistant turn opened.
  std::string render_user_turn(std::string_view user_message) const;
  // Whether the tokenizer's BOS id goes in front of the rendered text (vicuna_v1: Llama-2's
  // tokenizer adds <s>; llama_3 writes <|begin_of_text|> in the text itself).
  bool prepend_bos() const { return kind == ChatTemplateKind::kVicunaV1; }
  // Text of the end-of-turn marker that closes the assistant's answer ("<|im_end|>", "</s>",
  // "<|eot_id|>"); empty for kNone.
  std::string end_of_turn() const;
};

const char* chat_template_name(ChatTemplateKind kind);
// "qwen2", "vicuna_v1" (or "v1"), "llama_3" (or "llama3"), "none"/"raw".
StatusOr<ChatTemplateKind> chat_template_from_name(std::string_view name);

// VILA's choice of conversation mode, in order: an explicit name in the top-level config
// ("chat_template" / "conv_mode"), VILA's CONVERSATION_MODE_MAPPING on the model path
// ("vila1.5-3b" -> vicuna_v1, "llama-3"/"llama3"/"vila1.5-8b" -> llama_3), then the tokenizer:
// <|im_start|> present -> qwen2, <|eot_id|> present -> llama_3, SentencePiece Llama -> vicuna_v1.
struct ChatTemplateHints {
  std::string config_name;  // from config.json, may be empty
  std::string model_path;
  bool has_im_start = false;
  bool has_eot_id = false;
  bool is_sentencepiece = false;
};
ChatTemplateKind choose_chat_template(const ChatTemplateHints& hints);

// The default system prompt a ChatML (Qwen) jinja template writes when the conversation has none,
// read from its '<|im_start|>system\n...<|im_end|>' literal; nullopt if there is none. VILA renders
// NVILA prompts with the tokenizer's template when config.json names no chat_template, so a
// template saying "You are a helpful assistant." (with the period) changes the prompt tokens.
std::optional<std::string> chatml_default_system_prompt(std::string_view jinja_source);

}  // namespace vila
