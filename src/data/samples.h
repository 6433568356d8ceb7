// The in-memory training sample every data source produces (conversation JSONL, interleaved
// documents, plain text, the Fashion-MNIST builders): an ordered list of segments, each a piece
// of text or an image reference, each with a role.
//
// Roles: kSystem / kUser / kAssistant are turns of a conversation (rendered through the model's
// chat template; only assistant tokens are trained); kDocument is free text of a pretraining
// document (interleaved or text only: no template, every text token is trained). Images are never
// trained; an image segment carries the role of the turn it sits in.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vila::data {

enum class Role { kSystem, kUser, kAssistant, kDocument };

// "system", "user", "assistant", "document".
const char* role_name(Role role);
// The inverse of role_name; InvalidArgument naming the value otherwise.
StatusOr<Role> parse_role(std::string_view name);

// Where an image comes from: exactly one of the two is set. `path` is a file (JSONL sources,
// resolved against the image folder at load time); `index` is a row of an in-memory image table
// that the source documents (Fashion-MNIST: the image's index in its split).
struct ImageRef {
  std::string path;
  int64_t index = -1;
  bool in_memory() const { return index >= 0; }
};

struct Segment {
  enum class Kind { kText, kImage };
  Kind kind = Kind::kText;
  Role role = Role::kDocument;
  std::string text;  // kText
  ImageRef image;    // kImage

  static Segment text_of(Role role, std::string text);
  static Segment image_of(Role role, ImageRef image);
  bool is_image() const { return kind == Kind::kImage; }
};

enum class SampleKind { kConversation, kDocument };

struct Sample {
  SampleKind kind = SampleKind::kConversation;
  std::vector<Segment> segments;
  // Where it came from, for messages: "data.jsonl:12", "fashion-mnist/train:caption:3".
  std::string origin;
  // Class index when the source has one (Fashion-MNIST: the label the answer names), else -1.
  int32_t label = -1;

  size_t image_count() const;
  // The text of all segments with `<image>` for each image, roles ignored (debugging, tests).
  std::string flat_text() const;
};

// {"kind": "conversation"|"document", "origin": ..., "label": n, "segments": [{"role": ...,
// "text": ...} | {"role": ..., "image": path | index}]}: a stable dump for inspection and golden
// files; sample_from_json reads it back (InvalidArgument naming the field).
nlohmann::json sample_to_json(const Sample& sample);
StatusOr<Sample> sample_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace vila::data
