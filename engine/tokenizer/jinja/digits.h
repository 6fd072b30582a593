// Python's notion of a digit string, for the places where jinja2 or Python
// turn text into an index: attribute paths (`map(attribute="items.0")`, where
// make_attrgetter does `int(part) if part.isdigit()`), str.format field
// numbers, and the str.isdigit() / str.isdecimal() methods. Python counts the
// digits of every script ("٣".isdigit() is True and int("٣") == 3), so ASCII
// <cctype> tests are not enough, and on bytes >= 0x80 they are undefined.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace muserve::jinja {

// str.isdigit(): non-empty, every code point a Unicode digit (decimal digits
// plus superscripts, circled digits...). Invalid UTF-8 is never a digit.
bool PyIsDigit(std::string_view s);
// str.isdecimal(): non-empty, every code point a decimal digit of some script.
bool PyIsDecimal(std::string_view s);

// int(s) for a string that isdecimal(); nullopt for any other string (which
// int() would reject, or which has no digits at all).
struct DecimalValue {
  bool fits_int64;  // false: Python's int is exact, int64 is not
  int64_t value;    // meaningful only when fits_int64
};
std::optional<DecimalValue> PyDecimalValue(std::string_view s);

// The value of a run of ASCII digits, as the lexer produces for integer
// literals; nullopt when `s` has any other byte or does not fit in int64.
std::optional<int64_t> AsciiDigitsValue(std::string_view s);

}  // namespace muserve::jinja
