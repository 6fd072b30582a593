// GPT-2's reversible byte <-> printable-character map used by ByteLevel
// pre-tokenizers and decoders: every byte has a visible code point, so BPE
// vocabularies never contain raw control bytes or spaces.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace muserve::tokenizer_internal {

// Maps each byte of `bytes` to its character, UTF-8 encoded.
std::string BytesToByteLevel(std::string_view bytes);
// The byte a code point stands for, if it is one of the 256 mapped characters.
std::optional<unsigned char> ByteLevelCharToByte(char32_t cp);

}  // namespace muserve::tokenizer_internal
