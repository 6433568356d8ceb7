#include "data/jsonl.h"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string_view>
#include <utility>

#include "core/mapped_file.h"

namespace vila::data {

namespace {

using nlohmann::json;

constexpr std::string_view kImageMarker = "<image>";
// What a literal marker inside an interleaved document's text becomes (as VILA's MMC4 loader).
constexpr std::string_view kEscapedMarker = "<IMAGE>";

StatusOr<json> parse_json(std::string_view text, const std::string& where) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    return invalid_argument(where + ": malformed JSON at byte " + std::to_string(e.byte));
  } catch (const std::exception& e) {
    return invalid_argument(where + ": malformed JSON: " + e.what());
  }
}

bool is_blank(std::string_view s) {
  return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos;
}

std::string folder_of(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

const json* find_field(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

// The paths of a field that is a string or an array of strings (absent: none).
StatusOr<std::vector<std::string>> string_list(const json& obj, const char* key,
                                               const std::string& where) {
  std::vector<std::string> out;
  const json* v = find_field(obj, key);
  if (v == nullptr) return out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
    return out;
  }
  if (!v->is_array()) {
    return invalid_argument(where + ": field '" + key + "' must be a string or a list of strings");
  }
  for (const json& e : *v) {
    if (!e.is_string()) {
      return invalid_argument(where + ": field '" + key + "' must hold only strings");
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

// Builds the segments of one conversation: text with <image> markers becomes text segments and
// image placeholders, filled from the record's image list at the end.
class ConversationBuilder {
 public:
  ConversationBuilder(const std::string& where, const ImageResolver& images)
      : where_(where), images_(images) {}

  // Text of one turn; markers become placeholders.
  void add_text(Role role, std::string_view text) {
    size_t pos = 0;
    for (;;) {
      const size_t marker = text.find(kImageMarker, pos);
      std::string_view piece = text.substr(
          pos, marker == std::string_view::npos ? std::string_view::npos : marker - pos);
      if (pos > 0 && !piece.empty() && piece.front() == '\n') piece.remove_prefix(1);
      if (marker != std::string_view::npos && !piece.empty() && piece.back() == '\n') {
        piece.remove_suffix(1);
      }
      if (!piece.empty()) segments_.push_back(Segment::text_of(role, std::string(piece)));
      if (marker == std::string_view::npos) break;
      placeholders_.push_back(segments_.size());
      segments_.push_back(Segment::image_of(role, ImageRef{}));
      pos = marker + kImageMarker.size();
    }
  }

  // An image given as a content part (OpenAI form).
  Status add_image(Role role, const std::string& path) {
    VILA_ASSIGN_OR_RETURN(std::string resolved, images_.resolve(path, where_));
    ImageRef ref;
    ref.path = std::move(resolved);
    segments_.push_back(Segment::image_of(role, std::move(ref)));
    return ok_status();
  }

  // Places the record's listed images at the markers (or first in the first user turn) and
  // checks the result.
  StatusOr<Sample> finish(const std::vector<std::string>& listed) {
    std::vector<ImageRef> refs;
    for (const std::string& p : listed) {
      VILA_ASSIGN_OR_RETURN(std::string resolved, images_.resolve(p, where_));
      ImageRef ref;
      ref.path = std::move(resolved);
      refs.push_back(std::move(ref));
    }
    if (!placeholders_.empty()) {
      if (placeholders_.size() != refs.size()) {
        return invalid_argument(where_ + ": " + std::to_string(placeholders_.size()) +
                                " <image> marker(s) but " + std::to_string(refs.size()) +
                                " image(s) listed");
      }
      for (size_t i = 0; i < refs.size(); ++i) segments_[placeholders_[i]].image = refs[i];
    } else if (!refs.empty()) {
      auto first_user = std::find_if(segments_.begin(), segments_.end(),
                                     [](const Segment& s) { return s.role == Role::kUser; });
      if (first_user == segments_.end()) {
        return invalid_argument(where_ + ": images are listed but there is no user turn");
      }
      std::vector<Segment> leading;
      leading.reserve(refs.size());
      for (ImageRef& r : refs) leading.push_back(Segment::image_of(Role::kUser, std::move(r)));
      segments_.insert(first_user, leading.begin(), leading.end());
    }
    bool has_answer = false;
    for (const Segment& s : segments_) {
      if (s.is_image() && s.role == Role::kAssistant) {
        return invalid_argument(where_ + ": an image in an assistant turn");
      }
      has_answer |= !s.is_image() && s.role == Role::kAssistant && !s.text.empty();
    }
    if (!has_answer) return invalid_argument(where_ + ": no assistant turn with text");
    Sample sample;
    sample.kind = SampleKind::kConversation;
    sample.origin = where_;
    sample.segments = std::move(segments_);
    return sample;
  }

 private:
  const std::string& where_;
  const ImageResolver& images_;
  std::vector<Segment> segments_;
  std::vector<size_t> placeholders_;  // indices into segments_
};

StatusOr<Role> llava_role(const std::string& from, const std::string& where) {
  if (from == "human" || from == "user") return Role::kUser;
  if (from == "gpt" || from == "assistant") return Role::kAssistant;
  if (from == "system") return Role::kSystem;
  return invalid_argument(where + ": unknown speaker '" + from +
                          "' (expected human, gpt, user, assistant or system)");
}

StatusOr<Sample> llava_conversation(const json& record, const json& turns, const std::string& where,
                                    const ImageResolver& images) {
  if (record.contains("image") && record.contains("images")) {
    return invalid_argument(where + ": both 'image' and 'images' are given");
  }
  VILA_ASSIGN_OR_RETURN(std::vector<std::string> listed,
                        string_list(record, record.contains("images") ? "images" : "image", where));
  if (!turns.is_array() || turns.empty()) {
    return invalid_argument(where + ": field 'conversations' must be a non-empty list");
  }
  ConversationBuilder builder(where, images);
  for (size_t i = 0; i < turns.size(); ++i) {
    const json& t = turns[i];
    const std::string twhere = where + ": conversations[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("from") || !t["from"].is_string() || !t.contains("value") ||
        !t["value"].is_string()) {
      return invalid_argument(twhere + " needs string fields 'from' and 'value'");
    }
    VILA_ASSIGN_OR_RETURN(Role role, llava_role(t["from"].get<std::string>(), twhere));
    builder.add_text(role, t["value"].get<std::string>());
  }
  return builder.finish(listed);
}

// The path of an OpenAI-style image part.
StatusOr<std::string> image_part_path(const json& part, const std::string& where) {
  for (const char* key : {"image", "path"}) {
    if (const json* v = find_field(part, key); v != nullptr && v->is_string()) {
      return v->get<std::string>();
    }
  }
  if (const json* v = find_field(part, "image_url"); v != nullptr) {
    if (v->is_string()) return v->get<std::string>();
    if (v->is_object() && v->contains("url") && (*v)["url"].is_string()) {
      return (*v)["url"].get<std::string>();
    }
  }
  return invalid_argument(where + ": an image part needs 'image', 'path' or 'image_url'");
}

StatusOr<Sample> openai_conversation(const json& record, const json& messages,
                                     const std::string& where, const ImageResolver& images) {
  VILA_ASSIGN_OR_RETURN(std::vector<std::string> listed, string_list(record, "images", where));
  if (!messages.is_array() || messages.empty()) {
    return invalid_argument(where + ": field 'messages' must be a non-empty list");
  }
  ConversationBuilder builder(where, images);
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string mwhere = where + ": messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return invalid_argument(mwhere + " needs a string field 'role'");
    }
    const std::string role_text = m["role"].get<std::string>();
    if (role_text == "document") return invalid_argument(mwhere + ": unknown role 'document'");
    auto role = parse_role(role_text);
    if (!role.ok()) return role.status().with_context(mwhere);
    const json* content = find_field(m, "content");
    if (content == nullptr) continue;
    if (content->is_string()) {
      builder.add_text(*role, content->get<std::string>());
      continue;
    }
    if (!content->is_array()) {
      return invalid_argument(mwhere + ": 'content' must be a string or a list of parts");
    }
    for (size_t k = 0; k < content->size(); ++k) {
      const json& part = (*content)[k];
      const std::string pwhere = mwhere + ".content[" + std::to_string(k) + "]";
      const json* type = part.is_object() ? find_field(part, "type") : nullptr;
      if (type == nullptr || !type->is_string()) {
        return invalid_argument(pwhere + " needs a string field 'type'");
      }
      if (*type == "text") {
        const json* text = find_field(part, "text");
        if (text == nullptr || !text->is_string()) {
          return invalid_argument(pwhere + ": a text part needs a string 'text'");
        }
        builder.add_text(*role, text->get<std::string>());
      } else if (*type == "image" || *type == "image_url") {
        VILA_ASSIGN_OR_RETURN(std::string path, image_part_path(part, pwhere));
        VILA_RETURN_IF_ERROR(builder.add_image(*role, path));
      } else {
        return invalid_argument(pwhere + ": unknown part type '" + type->get<std::string>() + "'");
      }
    }
  }
  return builder.finish(listed);
}

template <typename Convert>
StatusOr<std::vector<Sample>> load_records(const std::string& path, const LoadOptions& options,
                                           LoadReport* report, Convert convert) {
  LoadReport local;
  LoadReport* r = report != nullptr ? report : &local;
  ImageResolver images{options.image_root.empty() ? folder_of(path) : options.image_root,
                       options.check_images};
  std::vector<Sample> samples;
  VILA_RETURN_IF_ERROR(for_each_json_record(
      path, options, r, [&](const json& record, const std::string& where) -> Status {
        StatusOr<Sample> s = convert(record, where, images);
        if (!s.ok()) return handle_bad_record(s.status(), options, r);
        samples.push_back(std::move(s).value());
        ++r->loaded;
        return ok_status();
      }));
  if (samples.empty()) return empty_dataset_error(path, *r);
  return samples;
}

}  // namespace

StatusOr<std::string> ImageResolver::resolve(const std::string& path,
                                             const std::string& where) const {
  if (path.empty()) return invalid_argument(where + ": empty image path");
  for (std::string_view remote : {"http://", "https://", "data:"}) {
    if (path.compare(0, remote.size(), remote) == 0) {
      return invalid_argument(where + ": image '" + path.substr(0, 64) +
                              "': remote and inline images are not supported (use a local file)");
    }
  }
  constexpr std::string_view kFileScheme = "file://";
  std::string p = path.compare(0, kFileScheme.size(), kFileScheme) == 0
                      ? path.substr(kFileScheme.size())
                      : path;
  if (p.empty()) return invalid_argument(where + ": empty image path '" + path + "'");
  if (!root.empty() && p.front() != '/') p = path_join(root, p);
  if (check && !file_exists(p)) {
    return not_found(where + ": image '" + path + "' not found (" + p + ")");
  }
  return p;
}

Status for_each_json_record(const std::string& path, const LoadOptions& options, LoadReport* report,
                            const std::function<Status(const json&, const std::string&)>& fn) {
  VILA_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    VILA_ASSIGN_OR_RETURN(json array, parse_json(text, path));
    for (size_t i = 0; i < array.size(); ++i) {
      ++report->records;
      VILA_RETURN_IF_ERROR(fn(array[i], path + ": item " + std::to_string(i)));
    }
    return ok_status();
  }
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (is_blank(line)) continue;
    ++report->records;
    const std::string where = path + ":" + std::to_string(line_no);
    StatusOr<json> record = parse_json(line, where);
    if (!record.ok()) {
      VILA_RETURN_IF_ERROR(handle_bad_record(record.status(), options, report));
      continue;
    }
    VILA_RETURN_IF_ERROR(fn(*record, where));
  }
  return ok_status();
}

StatusOr<Sample> conversation_from_json(const json& record, const std::string& where,
                                        const ImageResolver& images) {
  if (!record.is_object()) return invalid_argument(where + ": a record must be a JSON object");
  if (const json* turns = find_field(record, "conversations")) {
    return llava_conversation(record, *turns, where, images);
  }
  if (const json* messages = find_field(record, "messages")) {
    return openai_conversation(record, *messages, where, images);
  }
  return invalid_argument(where + ": neither 'conversations' nor 'messages' is present");
}

StatusOr<Sample> interleaved_from_json(const json& record, const std::string& where,
                                       const ImageResolver& images, size_t max_images) {
  if (!record.is_object()) return invalid_argument(where + ": a record must be a JSON object");
  const json* texts = find_field(record, "text_list");
  if (texts == nullptr || !texts->is_array() || texts->empty()) {
    return invalid_argument(where + ": field 'text_list' must be a non-empty list of strings");
  }
  std::vector<std::string> sentences;
  for (const json& t : *texts) {
    if (!t.is_string()) return invalid_argument(where + ": 'text_list' must hold only strings");
    std::string s = t.get<std::string>();
    for (size_t p = s.find(kImageMarker); p != std::string::npos; p = s.find(kImageMarker, p)) {
      s.replace(p, kImageMarker.size(), kEscapedMarker);
    }
    sentences.push_back(std::move(s));
  }
  // (sentence index, resolved path), in image_info order.
  std::vector<std::pair<size_t, std::string>> placed;
  const json* infos = find_field(record, "image_info");
  if (infos != nullptr && !infos->is_array()) {
    return invalid_argument(where + ": field 'image_info' must be a list");
  }
  for (size_t i = 0; infos != nullptr && i < infos->size(); ++i) {
    if (max_images > 0 && placed.size() == max_images) break;
    const json& info = (*infos)[i];
    const std::string iwhere = where + ": image_info[" + std::to_string(i) + "]";
    const json* name = info.is_object() ? find_field(info, "image_name") : nullptr;
    const json* index = info.is_object() ? find_field(info, "matched_text_index") : nullptr;
    if (name == nullptr || !name->is_string() || index == nullptr || !index->is_number_integer()) {
      return invalid_argument(iwhere +
                              " needs a string 'image_name' and an integer 'matched_text_index'");
    }
    const int64_t at = index->get<int64_t>();
    if (at < 0 || at >= static_cast<int64_t>(sentences.size())) {
      return invalid_argument(iwhere + ": matched_text_index " + std::to_string(at) +
                              " is outside text_list (" + std::to_string(sentences.size()) +
                              " sentences)");
    }
    VILA_ASSIGN_OR_RETURN(std::string path, images.resolve(name->get<std::string>(), iwhere));
    placed.emplace_back(static_cast<size_t>(at), std::move(path));
  }
  std::stable_sort(placed.begin(), placed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  Sample sample;
  sample.kind = SampleKind::kDocument;
  sample.origin = where;
  std::string text;  // sentences since the last image, joined by spaces
  auto flush = [&] {
    if (!text.empty()) sample.segments.push_back(Segment::text_of(Role::kDocument, text));
    text.clear();
  };
  size_t next = 0;
  for (size_t s = 0; s < sentences.size(); ++s) {
    if (next < placed.size() && placed[next].first == s) {
      flush();
      for (; next < placed.size() && placed[next].first == s; ++next) {
        ImageRef ref;
        ref.path = std::move(placed[next].second);
        sample.segments.push_back(Segment::image_of(Role::kDocument, std::move(ref)));
      }
    } else if (!text.empty()) {
      text += ' ';
    }
    text += sentences[s];
  }
  flush();
  return sample;
}

StatusOr<std::vector<Sample>> load_conversations(const std::string& path,
                                                 const LoadOptions& options, LoadReport* report) {
  return load_records(
      path, options, report,
      [](const json& record, const std::string& where, const ImageResolver& images) {
        return conversation_from_json(record, where, images);
      });
}

StatusOr<std::vector<Sample>> load_interleaved(const std::string& path, const LoadOptions& options,
                                               LoadReport* report) {
  const size_t max_images = options.max_images_per_document;
  return load_records(
      path, options, report,
      [max_images](const json& record, const std::string& where, const ImageResolver& images) {
        return interleaved_from_json(record, where, images, max_images);
      });
}

}  // namespace vila::data
