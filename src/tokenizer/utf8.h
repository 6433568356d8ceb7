// UTF-8 and Unicode helpers shared by the tokenizers (internal to src/tokenizer/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vila::tok {

// Decodes the code point at s[i]. Returns its byte length (1..4), or 0 if the bytes at i are not a
// well-formed UTF-8 sequence (overlong forms, surrogates and values past U+10FFFF are rejected).
size_t utf8_decode(std::string_view s, size_t i, char32_t* cp);
// Byte length of the (well-formed) character starting with `lead`.
inline size_t utf8_len(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}
void utf8_append(std::string& out, char32_t cp);
bool utf8_valid(std::string_view s);
// Rust's String::from_utf8_lossy: every maximal ill-formed subpart becomes U+FFFD.
std::string utf8_lossy(std::string_view s);

// Unicode White_Space (Rust char::is_whitespace, Python str.isspace minus the separators
// 0x1C-0x1F).
bool is_whitespace(char32_t cp);
// A \w character: letters, marks, decimal digits, connector punctuation.
bool is_word_char(char32_t cp);
// Unicode general category N* (Rust char::is_numeric).
bool is_numeric(char32_t cp);

enum class NormForm { kNfc, kNfd, kNfkc, kNfkd };
// Unicode normalisation of valid UTF-8 through utf8proc (ASCII input is returned as is).
std::string normalize(std::string_view s, NormForm form);
// Simple per-code-point lowercase.
std::string lowercase(std::string_view s);

// GPT-2 byte-level alphabet: the UTF-8 string of the character standing for byte b.
const std::string& byte_to_unicode(uint8_t b);
// Inverse: the byte for a code point of that alphabet, or -1.
int unicode_to_byte(char32_t cp);

}  // namespace vila::tok
