#include "runtime/chat_template.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

namespace vila {

namespace {
constexpr std::string_view kQwen2System = "You are a helpful assistant";
constexpr std::string_view kVicunaSystem =
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user's questions.";
constexpr std::string_view kLlama3System =
    "You are a helpful language and vision assistant. You are able to understand the visual "
    "content that the user provides, and assist the user with a variety of tasks using natural "
    "language.";

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}
}  // namespace

std::string ChatTemplate::render_user_turn(std::string_view user_message) const {
  std::string out;
  switch (kind) {
    case ChatTemplateKind::kNone:
      out = user_message;
      break;
    case ChatTemplateKind::kQwen2:
      out.append("<|im_start|>system\n")
          .append(system_prompt.empty() ? std::string(kQwen2System) : system_prompt)
          .append("<|im_end|>\n");
      out.append("<|im_start|>user\n").append(user_message).append("<|im_end|>\n");
      out.append("<|im_start|>assistant\n");
      break;
    case ChatTemplateKind::kVicunaV1:
      // SeparatorStyle.TWO: system + " " + "USER: " + msg + " " + "ASSISTANT:"
      out.append(kVicunaSystem).append(" USER: ").append(user_message).append(" ASSISTANT:");
      break;
    case ChatTemplateKind::kLlama3:
      out.append("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n");
      out.append(kLlama3System).append("<|eot_id|>");
      out.append("<|start_header_id|>user<|end_header_id|>\n\n").append(user_message);
      out.append("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
      break;
  }
  return out;
}

std::string ChatTemplate::end_of_turn() const {
  switch (kind) {
    case ChatTemplateKind::kQwen2:
      return "<|im_end|>";
    case ChatTemplateKind::kVicunaV1:
      return "</s>";
    case ChatTemplateKind::kLlama3:
      return "<|eot_id|>";
    case ChatTemplateKind::kNone:
      return "";
  }
  return "";
}

const char* chat_template_name(ChatTemplateKind kind) {
  switch (kind) {
    case ChatTemplateKind::kNone:
      return "none";
    case ChatTemplateKind::kQwen2:
      return "qwen2";
    case ChatTemplateKind::kVicunaV1:
      return "vicuna_v1";
    case ChatTemplateKind::kLlama3:
      return "llama_3";
  }
  return "none";
}

StatusOr<ChatTemplateKind> chat_template_from_name(std::string_view name) {
  const std::string n = lower(name);
  if (n == "qwen2" || n == "qwen" || n == "chatml") return ChatTemplateKind::kQwen2;
  if (n == "vicuna_v1" || n == "v1" || n == "vicuna") return ChatTemplateKind::kVicunaV1;
  if (n == "llama_3" || n == "llama3" || n == "llama-3") return ChatTemplateKind::kLlama3;
  if (n == "none" || n == "raw" || n == "plain") return ChatTemplateKind::kNone;
  return invalid_argument("unknown chat template '" + std::string(name) +
                          "' (expected qwen2, vicuna_v1, llama_3 or none)");
}

ChatTemplateKind choose_chat_template(const ChatTemplateHints& hints) {
  if (!hints.config_name.empty()) {
    auto named = chat_template_from_name(hints.config_name);
    if (named.ok()) return *named;
  }
  // VILA's CONVERSATION_MODE_MAPPING, matched on the lower-cased model path.
  struct PathRule {
    std::string_view needle;
    ChatTemplateKind kind;
  };
  static constexpr std::array<PathRule, 5> kPathRules = {{
      {"vila1.5-3b", ChatTemplateKind::kVicunaV1},
      {"vila1.5-8b", ChatTemplateKind::kLlama3},
      {"vila1.5-13b", ChatTemplateKind::kVicunaV1},
      {"llama-3", ChatTemplateKind::kLlama3},
      {"llama3", ChatTemplateKind::kLlama3},
  }};
  const std::string path = lower(hints.model_path);
  for (const PathRule& rule : kPathRules) {
    if (path.find(rule.needle) != std::string::npos) return rule.kind;
  }
  if (hints.has_im_start) return ChatTemplateKind::kQwen2;
  if (hints.has_eot_id) return ChatTemplateKind::kLlama3;
  if (hints.is_sentencepiece) return ChatTemplateKind::kVicunaV1;
  return ChatTemplateKind::kNone;
}

std::optional<std::string> chatml_default_system_prompt(std::string_view jinja_source) {
  // In the template source the newline is the two characters '\' 'n' of a jinja string literal.
  constexpr std::string_view kOpen = "<|im_start|>system\\n";
  constexpr std::string_view kClose = "<|im_end|>";
  const size_t open = jinja_source.find(kOpen);
  if (open == std::string_view::npos) return std::nullopt;
  const size_t begin = open + kOpen.size();
  const size_t close = jinja_source.find(kClose, begin);
  if (close == std::string_view::npos) return std::nullopt;
  const std::string_view prompt = jinja_source.substr(begin, close - begin);
  // A template that inserts the caller's system message ("' + message['content'] + '") has no
  // literal default here.
  if (prompt.find_first_of("'\"{}+") != std::string_view::npos) return std::nullopt;
  return std::string(prompt);
}

}  // namespace vila
