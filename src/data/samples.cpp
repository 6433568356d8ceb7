#include "data/samples.h"

#include <utility>

namespace vila::data {

namespace {

using nlohmann::json;

constexpr const char* kImageMarker = "<image>";

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::kSystem:
      return "system";
    case Role::kUser:
      return "user";
    case Role::kAssistant:
      return "assistant";
    case Role::kDocument:
      return "document";
  }
  return "?";
}

StatusOr<Role> parse_role(std::string_view name) {
  for (Role r : {Role::kSystem, Role::kUser, Role::kAssistant, Role::kDocument}) {
    if (name == role_name(r)) return r;
  }
  return invalid_argument("unknown role '" + std::string(name) +
                          "' (expected system, user, assistant or document)");
}

Segment Segment::text_of(Role role, std::string text) {
  Segment s;
  s.kind = Kind::kText;
  s.role = role;
  s.text = std::move(text);
  return s;
}

Segment Segment::image_of(Role role, ImageRef image) {
  Segment s;
  s.kind = Kind::kImage;
  s.role = role;
  s.image = std::move(image);
  return s;
}

size_t Sample::image_count() const {
  size_t n = 0;
  for (const Segment& s : segments) n += s.is_image() ? 1 : 0;
  return n;
}

std::string Sample::flat_text() const {
  std::string out;
  for (const Segment& s : segments) out += s.is_image() ? std::string(kImageMarker) : s.text;
  return out;
}

json sample_to_json(const Sample& sample) {
  json segs = json::array();
  for (const Segment& s : sample.segments) {
    json o = {{"role", role_name(s.role)}};
    if (s.is_image()) {
      o["image"] = s.image.in_memory() ? json(s.image.index) : json(s.image.path);
    } else {
      o["text"] = s.text;
    }
    segs.push_back(std::move(o));
  }
  return {{"kind", sample.kind == SampleKind::kConversation ? "conversation" : "document"},
          {"origin", sample.origin},
          {"label", sample.label},
          {"segments", std::move(segs)}};
}

StatusOr<Sample> sample_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) return invalid_argument(where + ": a sample must be an object");
  Sample out;
  auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string()) {
    return invalid_argument(where + ": field 'kind' missing or not a string");
  }
  if (*kind == "conversation") {
    out.kind = SampleKind::kConversation;
  } else if (*kind == "document") {
    out.kind = SampleKind::kDocument;
  } else {
    return invalid_argument(where + ": field 'kind' is '" + kind->get<std::string>() +
                            "' (expected conversation or document)");
  }
  if (auto o = j.find("origin"); o != j.end() && o->is_string()) out.origin = o->get<std::string>();
  if (auto l = j.find("label"); l != j.end() && l->is_number_integer()) {
    out.label = l->get<int32_t>();
  }
  auto segs = j.find("segments");
  if (segs == j.end() || !segs->is_array()) {
    return invalid_argument(where + ": field 'segments' missing or not an array");
  }
  for (size_t i = 0; i < segs->size(); ++i) {
    const json& s = (*segs)[i];
    const std::string swhere = where + ": segments[" + std::to_string(i) + "]";
    if (!s.is_object() || !s.contains("role") || !s["role"].is_string()) {
      return invalid_argument(swhere + ": needs a string 'role'");
    }
    auto role = parse_role(s["role"].get<std::string>());
    if (!role.ok()) return role.status().with_context(swhere);
    if (auto t = s.find("text"); t != s.end() && t->is_string()) {
      out.segments.push_back(Segment::text_of(*role, t->get<std::string>()));
    } else if (auto im = s.find("image"); im != s.end() && (im->is_string() || im->is_number())) {
      ImageRef ref;
      if (im->is_string()) {
        ref.path = im->get<std::string>();
      } else if (im->is_number_integer() && im->get<int64_t>() >= 0) {
        ref.index = im->get<int64_t>();
      } else {
        return invalid_argument(swhere + ": 'image' must be a path or a non-negative index");
      }
      out.segments.push_back(Segment::image_of(*role, std::move(ref)));
    } else {
      return invalid_argument(swhere + ": needs a string 'text' or an 'image'");
    }
  }
  return out;
}

}  // namespace vila::data
