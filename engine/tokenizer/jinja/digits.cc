#include "engine/tokenizer/jinja/digits.h"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <string>

#include "engine/tokenizer/jinja/format.h"

namespace muserve::jinja {
namespace {

// Unicode 14.0 (Python 3.11's unicodedata), generated with
//   [c for c in range(0x110000) if chr(c).isdecimal() and unicodedata.decimal(chr(c)) == 0]
// Every decimal digit is one of these plus 0..9: each script's digits are
// ten consecutive code points (checked over the whole table when generated).
constexpr char32_t kDecimalZeros[] = {
    0x30,    0x660,   0x6F0,   0x7C0,   0x966,   0x9E6,   0xA66,   0xAE6,   0xB66,   0xBE6,
    0xC66,   0xCE6,   0xD66,   0xDE6,   0xE50,   0xED0,   0xF20,   0x1040,  0x1090,  0x17E0,
    0x1810,  0x1946,  0x19D0,  0x1A80,  0x1A90,  0x1B50,  0x1BB0,  0x1C40,  0x1C50,  0xA620,
    0xA8D0,  0xA900,  0xA9D0,  0xA9F0,  0xAA50,  0xABF0,  0xFF10,  0x104A0, 0x10D30, 0x11066,
    0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0,
    0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2,
    0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0};

// Digits that are not decimal (isdigit() but not isdecimal(): superscripts,
// circled and parenthesized digits...), as inclusive ranges, generated with
//   [c for c in range(0x110000) if chr(c).isdigit() and not chr(c).isdecimal()]
constexpr char32_t kOtherDigits[][2] = {
    {0xB2, 0xB3},       {0xB9, 0xB9},       {0x1369, 0x1371},   {0x19DA, 0x19DA},
    {0x2070, 0x2070},   {0x2074, 0x2079},   {0x2080, 0x2089},   {0x2460, 0x2468},
    {0x2474, 0x247C},   {0x2488, 0x2490},   {0x24EA, 0x24EA},   {0x24F5, 0x24FD},
    {0x24FF, 0x24FF},   {0x2776, 0x277E},   {0x2780, 0x2788},   {0x278A, 0x2792},
    {0x10A40, 0x10A43}, {0x10E60, 0x10E68}, {0x11052, 0x1105A}, {0x1F100, 0x1F10A}};

// The decimal value of `c`, or -1 when it is no decimal digit.
int DecimalDigit(char32_t c) {
  if (c >= '0' && c <= '9') return static_cast<int>(c - '0');
  // The last zero not above c; c is its digit when within ten of it.
  const char32_t* it = std::upper_bound(std::begin(kDecimalZeros), std::end(kDecimalZeros), c);
  if (it == std::begin(kDecimalZeros)) return -1;
  const char32_t offset = c - *(it - 1);
  return offset < 10 ? static_cast<int>(offset) : -1;
}

bool IsOtherDigit(char32_t c) {
  for (const auto& range : kOtherDigits) {
    if (c >= range[0] && c <= range[1]) return true;
  }
  return false;
}

}  // namespace

bool PyIsDigit(std::string_view s) {
  const std::u32string cps = DecodeUtf8(s);
  return !cps.empty() && std::all_of(cps.begin(), cps.end(), [](char32_t c) {
    return DecimalDigit(c) >= 0 || IsOtherDigit(c);
  });
}

bool PyIsDecimal(std::string_view s) {
  const std::u32string cps = DecodeUtf8(s);
  return !cps.empty() &&
         std::all_of(cps.begin(), cps.end(), [](char32_t c) { return DecimalDigit(c) >= 0; });
}

std::optional<DecimalValue> PyDecimalValue(std::string_view s) {
  const std::u32string cps = DecodeUtf8(s);
  if (cps.empty()) return std::nullopt;
  DecimalValue result{true, 0};
  for (char32_t c : cps) {
    const int digit = DecimalDigit(c);
    if (digit < 0) return std::nullopt;
    if (result.fits_int64 && (__builtin_mul_overflow(result.value, 10, &result.value) ||
                              __builtin_add_overflow(result.value, digit, &result.value))) {
      result.fits_int64 = false;
    }
  }
  return result;
}

std::optional<int64_t> AsciiDigitsValue(std::string_view s) {
  int64_t value = 0;
  const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || s[0] == '-' || error != std::errc() || end != s.data() + s.size()) {
    return std::nullopt;
  }
  return value;
}

}  // namespace muserve::jinja
