// SentencePiece tokenizer.model through libsentencepiece (HF's slow LlamaTokenizer, legacy mode).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/tokenizer.h"

namespace vila::tok {

// Loads `path` (a serialized ModelProto) and encodes as Hugging Face's LlamaTokenizer does after
// converting the model (transformers' LlamaConverter / SentencePieceExtractor): a BPE over the
// SentencePiece pieces whose merges are every split of a piece into two pieces, ordered by the
// piece's score; byte fallback; unk fused. `added` are matched in the raw text first (longest match
// first, with lstrip / rstrip / single_word). Spaces become "▁"; the "▁" prefix goes in front of
// every text segment when `legacy` (HF's Prepend normalizer), else only in front of the segment
// that starts the text and only where no "▁" is there already (Metaspace, prepend_scheme "first").
StatusOr<std::unique_ptr<Tokenizer>> load_sentencepiece(const std::string& path,
                                                        const std::vector<AddedToken>& added,
                                                        bool legacy);

}  // namespace vila::tok
