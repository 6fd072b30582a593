// UTF-8 and Unicode helpers shared by the tokenizer's components. Everything
// here works on UTF-8 byte strings; code points are char32_t.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "engine/api/absl_string_view.h"

namespace muserve::tokenizer_internal {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Decodes the code point starting at `*pos` (< text.size()) and advances
// `*pos` past it. Where `text` is not valid UTF-8 there, returns U+FFFD and
// skips the maximal invalid subpart (one byte, or the valid start of a
// truncated sequence), the unit String::from_utf8_lossy replaces.
char32_t NextCodePoint(std::string_view text, size_t* pos);

// Length in bytes of the UTF-8 sequence whose lead byte is `lead` (1 for
// anything that is not a valid lead byte).
size_t Utf8SequenceLength(unsigned char lead);

void AppendUtf8(char32_t cp, std::string* out);

// Bytes -> text the way Rust's String::from_utf8_lossy does (and therefore
// `tokenizers`): each maximal invalid subsequence becomes one U+FFFD.
std::string LossyUtf8(std::string_view bytes);

bool IsValidUtf8(std::string_view bytes);

// Rust's char::is_whitespace (the Unicode White_Space property).
bool IsWhitespace(char32_t cp);
// Rust's char::is_alphanumeric (letters and numbers, by general category).
bool IsAlphanumeric(char32_t cp);

// Unicode normalization forms via utf8proc. Input must be valid UTF-8.
enum class NormalizationForm { kNfc, kNfd, kNfkc, kNfkd };
std::string Normalize(std::string_view text, NormalizationForm form);
std::string ToLowercase(std::string_view text);

}  // namespace muserve::tokenizer_internal
