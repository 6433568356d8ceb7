// Loaders for JSON-lines training data (one JSON object per line; a file whose first character
// is '[' is read as one JSON array of such objects, LLaVA's usual .json form). Bad records follow
// LoadOptions (data/load_options.h); blank lines are ignored.
//
// (a) Conversations, two forms:
//   LLaVA:  {"image": "a.jpg" | ["a.jpg", ...], "images": [...], "conversations": [
//              {"from": "human" | "user" | "gpt" | "assistant" | "system", "value":
//              "<image>\n..."}]}
//   OpenAI: {"images": [...], "messages": [{"role": "system" | "user" | "assistant",
//              "content": "text with <image>" | [{"type": "text", "text": ...},
//              {"type": "image", "image" | "path": "a.jpg"}, {"type": "image_url", "image_url":
//              {"url": "a.jpg"} | "a.jpg"}]}]}
//   `<image>` markers in text place the listed images in order; their count must equal the number
//   of listed images. With no marker at all, the images go first in the first user turn (VILA's
//   order). One newline right after or right before a marker is dropped ("<image>\n" is LLaVA's
//   spelling of "the image, then the text"; the vision encoder appends its own "\n"), other text
//   is kept verbatim. Images may only sit in user / system turns. A conversation needs at least
//   one assistant turn with text. Image paths: relative ones are resolved against
//   LoadOptions::image_root (default: the data file's folder), "file://" is stripped, remote
//   (http, https) and inline (data:) images are refused.
// (b) Interleaved documents, MMC4's schema (github.com/allenai/mmc4, README "Documents"):
//   {"text_list": [sentence, ...], "image_info": [{"image_name": "x.jpg",
//    "matched_text_index": i, ...}, ...], ...}. Used: text_list, image_info[].image_name and
//   .matched_text_index (must index text_list); ignored: url, raw_url, matched_sim,
//   face_detections, similarity_matrix, could_have_url_duplicate. As VILA's MMC4 loader does:
//   the first max_images_per_document images are kept, each goes right before its matched
//   sentence (images of one sentence in image_info order), sentences are joined by one space
//   except next to an image, and a literal "<image>" in a sentence becomes "<IMAGE>". A document
//   without image_info is text only.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/load_options.h"
#include "data/samples.h"

namespace vila::data {

// Calls `fn(record, where)` for each record of a JSONL file (or JSON array file), `where` being
// "path:line" (or "path: item i"). A line that is not valid JSON is a bad record under `options`.
// A non-OK status from `fn` is returned as is (fn applies the policy itself).
Status for_each_json_record(
    const std::string& path, const LoadOptions& options, LoadReport* report,
    const std::function<Status(const nlohmann::json&, const std::string&)>& fn);

// Resolves image paths of records: relative to `root`; checks existence when `check` is set.
struct ImageResolver {
  std::string root;
  bool check = true;
  // The resolved path, or an error naming `where` and the image (NotFound / InvalidArgument).
  StatusOr<std::string> resolve(const std::string& path, const std::string& where) const;
};

// One record of each kind; errors are InvalidArgument / NotFound prefixed with `where`.
StatusOr<Sample> conversation_from_json(const nlohmann::json& record, const std::string& where,
                                        const ImageResolver& images);
StatusOr<Sample> interleaved_from_json(const nlohmann::json& record, const std::string& where,
                                       const ImageResolver& images, size_t max_images);

// Whole files. `report` (optional) receives the counts and first messages.
StatusOr<std::vector<Sample>> load_conversations(const std::string& path,
                                                 const LoadOptions& options = {},
                                                 LoadReport* report = nullptr);
StatusOr<std::vector<Sample>> load_interleaved(const std::string& path,
                                               const LoadOptions& options = {},
                                               LoadReport* report = nullptr);

}  // namespace vila::data
