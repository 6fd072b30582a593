// Python str methods and case mappings shared by attribute lookup (methods.cc)
// and filters (filters.cc). Case mappings cover ASCII only; other characters
// are left unchanged.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/jinja/value.h"

namespace muserve::jinja {

// str.strip / lstrip / rstrip; `chars` undefined or none = Python whitespace.
std::string PyStrip(const std::string& s, const Value& chars, bool left, bool right);
std::string PyUpper(std::string s);
std::string PyLower(std::string s);
std::string PyCapitalize(const std::string& s);
std::string PyTitle(const std::string& s);
// str.islower() / str.isupper(): some cased character and none of the other case.
bool PyIsCase(const std::string& s, bool lower);
std::string PyReplace(const std::string& s, const std::string& old_text,
                      const std::string& new_text, int64_t count);
// str.split(sep, maxsplit); `sep` undefined or none splits on whitespace runs.
std::vector<std::string> PySplit(const std::string& s, const Value& sep, int64_t maxsplit);

// The bound method `obj.name` of a str, dict or list; undefined if none.
Value StringMethod(const std::string& self, const std::string& name);
Value DictMethod(const Value& self, const std::string& name);
Value ListMethod(const Value& self, const std::string& name);

}  // namespace muserve::jinja
