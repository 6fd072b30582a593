// Python-compatible text formatting of interpreter values: str(), repr(),
// float repr, json.dumps (as transformers' `tojson` filter calls it), and the
// UTF-8 helpers that make string lengths and slices count code points.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/jinja/value.h"

namespace muserve::jinja {

// Python's repr(float): shortest round-trip digits, exponent form outside
// 1e-4 <= |x| < 1e16 ("1.0", "2.5", "1e+16", "1e-05", "inf", "nan").
std::string PythonFloatRepr(double x);

// str(value) as Jinja renders it into the output; undefined renders as "".
std::string ToPythonStr(const Value& v);
// repr(value): strings quoted as Python does; undefined is "Undefined".
std::string ToPythonRepr(const Value& v);

struct JsonDumpOptions {
  std::optional<int> indent;
  bool sort_keys = false;
  bool ensure_ascii = false;
  std::optional<std::string> item_separator;
  std::optional<std::string> key_separator;
};
// json.dumps(value, ...). Undefined and callables are not serializable.
std::string JsonDumps(const Value& v, const JsonDumpOptions& options);

// UTF-8 <-> code points. Invalid bytes decode as U+FFFD-free raw values so a
// round trip preserves the original bytes.
std::u32string DecodeUtf8(std::string_view s);
std::string EncodeUtf8(std::u32string_view s);
void AppendUtf8(char32_t c, std::string* out);
// Number of code points (Python len(str)).
int64_t Utf8Length(std::string_view s);

// Python str.isspace() for one code point.
bool IsPythonSpace(char32_t c);

}  // namespace muserve::jinja
