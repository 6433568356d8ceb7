#include "data/text_sources.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <utility>

#include "core/mapped_file.h"
#include "data/gzip.h"
#include "tokenizer/utf8.h"

namespace vila::data {

namespace {

constexpr std::string_view kSpaces = " \t\r\n\f\v";
// Brown corpus file names: 'c', a genre letter a..r, two digits.
constexpr size_t kBrownNameLength = 4;

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(kSpaces);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpaces) - b + 1);
}

// Calls fn(line, line_number) for each line (without '\n' or a trailing '\r').
template <typename Fn>
void for_each_line(std::string_view text, Fn fn) {
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = eol + 1;
    fn(line, ++line_no);
  }
}

// Paragraphs (runs of non-blank lines) of `text`, each as its list of lines.
std::vector<std::vector<std::string_view>> paragraphs_of(std::string_view text) {
  std::vector<std::vector<std::string_view>> out(1);
  for_each_line(text, [&](std::string_view line, size_t) {
    if (trim(line).empty()) {
      if (!out.back().empty()) out.emplace_back();
    } else {
      out.back().push_back(line);
    }
  });
  if (out.back().empty()) out.pop_back();
  return out;
}

// Words separated by single spaces.
std::string collapse_spaces(std::string_view s) {
  std::string out;
  size_t pos = 0;
  while ((pos = s.find_first_not_of(kSpaces, pos)) != std::string_view::npos) {
    const size_t end = std::min(s.find_first_of(kSpaces, pos), s.size());
    if (!out.empty()) out += ' ';
    out.append(s.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

// A GCIDE entry starts with an unindented line "Headword \pro*nun"ci*a`tion\, ...".
bool is_gcide_headword(std::string_view line) {
  return !line.empty() && kSpaces.find(line[0]) == std::string_view::npos &&
         line.find(" \\") != std::string_view::npos;
}

// Removes GCIDE's source tags: bracket groups naming where an entry came from ("[1913 Webster]",
// "[Webster 1913 Suppl.]", "[WordNet 1.5 +PJC]", "[PJC]"). Other brackets are kept: they are the
// dictionary's ASCII spelling of accented letters ("Ph[oe]nician") or usage labels ("[Obs.]").
void strip_source_tags(std::string* s) {
  constexpr std::array<std::string_view, 3> kSources = {"Webster", "WordNet", "PJC"};
  std::string out;
  size_t pos = 0;
  for (;;) {
    const size_t open = s->find('[', pos);
    const size_t close = open == std::string::npos ? open : s->find(']', open);
    if (close == std::string::npos) break;
    const std::string_view inner(s->data() + open, close - open);
    const bool source = std::any_of(kSources.begin(), kSources.end(), [&](std::string_view k) {
      return inner.find(k) != std::string_view::npos;
    });
    out.append(*s, pos, (source ? open : close + 1) - pos);
    pos = close + 1;
  }
  out.append(*s, pos, std::string::npos);
  *s = std::move(out);
}

// One Brown sentence line "The/at jury/nn ./." -> "The jury."
void append_brown_sentence(std::string_view line, std::string* out) {
  bool glue_next = out->empty();  // no space before the next word
  size_t pos = 0;
  while ((pos = line.find_first_not_of(kSpaces, pos)) != std::string_view::npos) {
    const size_t end = std::min(line.find_first_of(kSpaces, pos), line.size());
    std::string_view token = line.substr(pos, end - pos);
    pos = end;
    const size_t slash = token.rfind('/');
    std::string_view word =
        slash == std::string_view::npos || slash == 0 ? token : token.substr(0, slash);
    bool glue_before = false, glue_after = false;
    std::string_view text = word;
    if (word == "``") {
      text = "\"";
      glue_after = true;
    } else if (word == "''") {
      text = "\"";
      glue_before = true;
    } else if (word == "(" || word == "[") {
      glue_after = true;
    } else if (word == "," || word == "." || word == ";" || word == ":" || word == "!" ||
               word == "?" || word == ")" || word == "]" || word == "'" || word == "n't" ||
               word == "'s") {
      glue_before = true;
    }
    if (!glue_before && !glue_next) *out += ' ';
    out->append(text);
    glue_next = glue_after;
  }
}

}  // namespace

StatusOr<std::vector<std::string>> split_documents(std::string_view text, TextSplit split,
                                                   const std::string& where,
                                                   const LoadOptions& options, LoadReport* report) {
  std::vector<std::string> docs;
  std::string current;
  Status status;
  auto flush = [&] {
    if (!current.empty()) {
      docs.push_back(std::move(current));
      ++report->records;
    }
    current.clear();
  };
  for_each_line(text, [&](std::string_view line, size_t line_no) {
    if (!status.ok()) return;
    if (trim(line).empty()) {
      flush();
      return;
    }
    if (!tok::utf8_valid(line)) {
      ++report->records;
      status = handle_bad_record(
          invalid_argument(where + ":" + std::to_string(line_no) + ": the line is not valid UTF-8"),
          options, report);
      return;
    }
    if (split == TextSplit::kLines) {
      current.assign(line);
      flush();
    } else {
      if (!current.empty()) current += '\n';
      current.append(line);
    }
  });
  VILA_RETURN_IF_ERROR(status);
  flush();
  return docs;
}

std::vector<Sample> text_samples(std::vector<std::string> documents,
                                 const std::string& origin_prefix) {
  std::vector<Sample> out;
  out.reserve(documents.size());
  for (size_t i = 0; i < documents.size(); ++i) {
    Sample s;
    s.kind = SampleKind::kDocument;
    s.origin = origin_prefix + "#" + std::to_string(i);
    s.segments.push_back(Segment::text_of(Role::kDocument, std::move(documents[i])));
    out.push_back(std::move(s));
  }
  return out;
}

StatusOr<std::vector<Sample>> load_text_file(const std::string& path, TextSplit split,
                                             const LoadOptions& options, LoadReport* report) {
  LoadReport local;
  LoadReport* r = report != nullptr ? report : &local;
  VILA_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  VILA_ASSIGN_OR_RETURN(std::vector<std::string> docs,
                        split_documents(text, split, path, options, r));
  if (docs.empty()) return empty_dataset_error(path, *r);
  r->loaded += docs.size();
  return text_samples(std::move(docs), path);
}

StatusOr<std::vector<std::string>> gcide_paragraphs(const std::string& path, uint64_t max_bytes) {
  const uint64_t limit = max_bytes == 0 ? UINT64_MAX - 1 : max_bytes;
  VILA_ASSIGN_OR_RETURN(std::string text, read_gzip_prefix(path, limit));
  const bool truncated = text.size() == limit;
  std::vector<std::vector<std::string_view>> paragraphs = paragraphs_of(text);
  if (truncated && !paragraphs.empty()) paragraphs.pop_back();  // may be cut short
  std::vector<std::string> out;
  bool in_entries = false;
  for (const auto& lines : paragraphs) {
    in_entries = in_entries || is_gcide_headword(lines.front());
    if (!in_entries) continue;
    std::string joined;
    for (std::string_view line : lines) joined.append(line).append(" ");
    strip_source_tags(&joined);
    std::erase_if(joined, [](char c) { return c == '{' || c == '}'; });
    std::string para = collapse_spaces(joined);
    if (para.size() >= kMinParagraphChars) out.push_back(std::move(para));
  }
  if (out.empty()) return data_loss(path + ": no dictionary entries found");
  return out;
}

StatusOr<std::vector<std::string>> brown_paragraphs(const std::string& dir, size_t max_files) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() == kBrownNameLength && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'r' &&
        std::isdigit(static_cast<unsigned char>(name[2])) != 0 &&
        std::isdigit(static_cast<unsigned char>(name[3])) != 0) {
      files.push_back(entry.path().string());
    }
  }
  if (ec || files.empty()) return not_found(dir + ": no Brown corpus files (ca01 ... cr09)");
  std::sort(files.begin(), files.end());
  if (max_files > 0 && files.size() > max_files) files.resize(max_files);
  std::vector<std::string> out;
  for (const std::string& file : files) {
    VILA_ASSIGN_OR_RETURN(std::string text, read_text_file(file));
    for (const auto& lines : paragraphs_of(text)) {
      std::string para;
      for (std::string_view line : lines) append_brown_sentence(line, &para);
      if (!para.empty()) out.push_back(std::move(para));
    }
  }
  return out;
}

}  // namespace vila::data
