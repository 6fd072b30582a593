#include "engine/tokenizer/byte_level.h"

#include <array>

#include "engine/tokenizer/unicode.h"

namespace muserve::tokenizer_internal {
namespace {

struct ByteLevelTables {
  std::array<std::string, 256> byte_to_text;
  std::array<char32_t, 256> byte_to_char{};
  std::array<int, 324> char_to_byte{};  // -1 where the code point is unmapped
  ByteLevelTables() {
    char_to_byte.fill(-1);
    // Printable Latin-1 bytes map to themselves; the rest to 256, 257, ...
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      byte_to_char[b] = printable ? static_cast<char32_t>(b) : next++;
      AppendUtf8(byte_to_char[b], &byte_to_text[b]);
      char_to_byte[byte_to_char[b]] = b;
    }
  }
};

const ByteLevelTables& Tables() {
  static const ByteLevelTables* const tables = new ByteLevelTables();
  return *tables;
}

}  // namespace

std::string BytesToByteLevel(std::string_view bytes) {
  const ByteLevelTables& tables = Tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) out += tables.byte_to_text[static_cast<unsigned char>(c)];
  return out;
}

std::optional<unsigned char> ByteLevelCharToByte(char32_t cp) {
  // Mapped characters are printable Latin-1 (themselves) or 256..323.
  if (cp >= 324) return std::nullopt;
  const int b = Tables().char_to_byte[cp];
  if (b < 0) return std::nullopt;
  return static_cast<unsigned char>(b);
}

}  // namespace muserve::tokenizer_internal
