#include "engine/tokenizer/jinja/strings.h"

#include <locale.h>
#include <wctype.h>

#include <algorithm>
#include <cctype>
#include <clocale>
#include <cwctype>
#include <optional>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/jinja/builtins.h"
#include "engine/tokenizer/jinja/digits.h"
#include "engine/tokenizer/jinja/format.h"

namespace muserve::jinja {
namespace {

std::string ArgString(const Value& v, std::string_view what) {
  if (!v.is_string()) ThrowRuntime(std::string(what) + " must be str, not " + v.TypeName());
  return v.as_string();
}

int64_t ArgInt(const Value& v, int64_t fallback) {
  if (v.is_undefined() || v.is_none()) return fallback;
  if (!v.is_int() && !v.is_bool()) ThrowRuntime("an integer is required, not " + v.TypeName());
  return v.ToInt();
}

bool AllOf(const std::string& s, int (*pred)(int)) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [pred](char c) {
    return static_cast<unsigned char>(c) < 0x80 && pred(static_cast<unsigned char>(c));
  });
}

// str.format with "{}", "{0}" and "{name}" fields (no format specs).
std::string PyFormat(const std::string& f, const CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == '{' && i + 1 < f.size() && f[i + 1] == '{') {
      out.push_back('{');
      ++i;
    } else if (f[i] == '}' && i + 1 < f.size() && f[i + 1] == '}') {
      out.push_back('}');
      ++i;
    } else if (f[i] == '{') {
      const size_t close = f.find('}', i);
      if (close == std::string::npos) ThrowRuntime("Single '{' encountered in format string");
      const std::string field = f.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!.[") != std::string::npos) {
        ThrowRuntime("str.format: format specs and conversions are not supported");
      }
      Value v;
      if (field.empty()) {
        if (auto_index >= a.args.size()) ThrowRuntime("Replacement index out of range");
        v = a.args[auto_index++];
      } else if (const std::optional<DecimalValue> idx = PyDecimalValue(field)) {
        // CPython reads a field of decimal digits (of any script) as an
        // index; one beyond Py_ssize_t is this error, not a lookup.
        if (!idx->fits_int64) ThrowRuntime("Too many decimal digits in format string");
        if (static_cast<uint64_t>(idx->value) >= a.args.size()) {
          ThrowRuntime("Replacement index out of range");
        }
        v = a.args[static_cast<size_t>(idx->value)];
      } else {
        v = a.Get(SIZE_MAX, field);
        if (v.is_undefined()) ThrowRuntime("KeyError: '" + field + "'");
      }
      out += ToPythonStr(v);
      i = close;
    } else if (f[i] == '}') {
      ThrowRuntime("Single '}' encountered in format string");
    } else {
      out.push_back(f[i]);
    }
  }
  return out;
}

Value Method(const std::string& name, Callable fn) { return Value::Function(name, std::move(fn)); }

}  // namespace

std::string PyStrip(const std::string& s, const Value& chars, bool left, bool right) {
  const std::u32string u = DecodeUtf8(s);
  std::u32string set;
  const bool whitespace = chars.is_undefined() || chars.is_none();
  if (!whitespace) set = DecodeUtf8(ArgString(chars, "strip arg"));
  auto strip = [&](char32_t c) {
    return whitespace ? IsPythonSpace(c) : set.find(c) != std::u32string::npos;
  };
  size_t b = 0, e = u.size();
  if (left) {
    while (b < e && strip(u[b])) ++b;
  }
  if (right) {
    while (e > b && strip(u[e - 1])) --e;
  }
  return EncodeUtf8(std::u32string_view(u).substr(b, e - b));
}

namespace {

// Simple (one-to-one) Unicode case mappings from glibc's built-in C.UTF-8
// locale, independent of the process locale; ASCII-only when unavailable.
// Python's one-to-many mappings (e.g. "ß".upper() == "SS") are not applied.
locale_t Utf8Locale() {
  static const locale_t kLocale = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
  return kLocale;
}

char32_t ToUpper(char32_t c) {
  if (c < 0x80) return static_cast<char32_t>(std::toupper(static_cast<int>(c)));
  const locale_t loc = Utf8Locale();
  return loc ? static_cast<char32_t>(towupper_l(static_cast<wint_t>(c), loc)) : c;
}

char32_t ToLower(char32_t c) {
  if (c < 0x80) return static_cast<char32_t>(std::tolower(static_cast<int>(c)));
  const locale_t loc = Utf8Locale();
  return loc ? static_cast<char32_t>(towlower_l(static_cast<wint_t>(c), loc)) : c;
}

bool IsCased(char32_t c) { return ToUpper(c) != c || ToLower(c) != c; }

std::string MapChars(const std::string& s, char32_t (*fn)(char32_t)) {
  std::u32string u = DecodeUtf8(s);
  for (char32_t& c : u) c = fn(c);
  return EncodeUtf8(u);
}

}  // namespace

std::string PyUpper(std::string s) { return MapChars(s, ToUpper); }

std::string PyLower(std::string s) { return MapChars(s, ToLower); }

std::string PyCapitalize(const std::string& s) {
  std::u32string u = DecodeUtf8(s);
  for (size_t i = 0; i < u.size(); ++i) u[i] = i == 0 ? ToUpper(u[i]) : ToLower(u[i]);
  return EncodeUtf8(u);
}

std::string PyTitle(const std::string& s) {
  std::u32string u = DecodeUtf8(s);
  bool prev_cased = false;
  for (char32_t& c : u) {
    const bool cased = IsCased(c);
    if (cased) c = prev_cased ? ToLower(c) : ToUpper(c);
    prev_cased = cased;
  }
  return EncodeUtf8(u);
}

bool PyIsCase(const std::string& s, bool lower) {
  bool cased = false;
  for (char32_t c : DecodeUtf8(s)) {
    const bool is_upper = ToLower(c) != c;
    const bool is_lower = ToUpper(c) != c;
    if (lower ? is_upper : is_lower) return false;
    cased = cased || is_upper || is_lower;
  }
  return cased;
}

std::string PyReplace(const std::string& s, const std::string& old_text,
                      const std::string& new_text, int64_t count) {
  std::string out;
  if (old_text.empty()) {
    // Python inserts `new` between every character (and at both ends).
    const std::u32string u = DecodeUtf8(s);
    int64_t done = 0;
    for (size_t i = 0; i <= u.size(); ++i) {
      if (count < 0 || done < count) {
        out += new_text;
        ++done;
      }
      if (i < u.size()) AppendUtf8(u[i], &out);
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t hit = s.find(old_text, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos).append(new_text);
    pos = hit + old_text.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

std::vector<std::string> PySplit(const std::string& s, const Value& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep.is_undefined() || sep.is_none()) {
    const std::u32string u = DecodeUtf8(s);
    size_t i = 0;
    while (true) {
      while (i < u.size() && IsPythonSpace(u[i])) ++i;
      if (i >= u.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
        size_t e = u.size();
        while (e > i && IsPythonSpace(u[e - 1])) --e;
        out.push_back(EncodeUtf8(std::u32string_view(u).substr(i, e - i)));
        break;
      }
      size_t j = i;
      while (j < u.size() && !IsPythonSpace(u[j])) ++j;
      out.push_back(EncodeUtf8(std::u32string_view(u).substr(i, j - i)));
      i = j;
    }
    return out;
  }
  const std::string d = ArgString(sep, "separator");
  if (d.empty()) ThrowRuntime("empty separator");
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    const size_t hit = s.find(d, pos);
    if (hit == std::string::npos) break;
    out.push_back(s.substr(pos, hit - pos));
    pos = hit + d.size();
  }
  out.push_back(s.substr(pos));
  return out;
}

Value StringMethod(const std::string& self, const std::string& name) {
  auto strip = [&self, &name](bool l, bool r) {
    return Method(name, [self, name, l, r](CallArgs& a) {
      a.Check(name, 1, {});
      return Value(PyStrip(self, a.Get(0, ""), l, r));
    });
  };
  if (name == "strip") return strip(true, true);
  if (name == "lstrip") return strip(true, false);
  if (name == "rstrip") return strip(false, true);
  if (name == "upper") return Method(name, [self](CallArgs&) { return Value(PyUpper(self)); });
  if (name == "lower") return Method(name, [self](CallArgs&) { return Value(PyLower(self)); });
  if (name == "title") return Method(name, [self](CallArgs&) { return Value(PyTitle(self)); });
  if (name == "capitalize") {
    return Method(name, [self](CallArgs&) { return Value(PyCapitalize(self)); });
  }
  if (name == "startswith" || name == "endswith") {
    const bool starts = name == "startswith";
    return Method(name, [self, starts](CallArgs& a) {
      a.Check(starts ? "startswith" : "endswith", 1, {});
      const Value p = a.Get(0, "");
      std::vector<Value> options = p.is_tuple() ? p.as_list().items : std::vector<Value>{p};
      for (const Value& o : options) {
        const std::string x = ArgString(o, "prefix");
        if (x.size() <= self.size() &&
            (starts ? self.compare(0, x.size(), x) == 0
                    : self.compare(self.size() - x.size(), x.size(), x) == 0)) {
          return Value(true);
        }
      }
      return Value(false);
    });
  }
  if (name == "split") {
    return Method(name, [self](CallArgs& a) {
      a.Check("split", 2, {"sep", "maxsplit"});
      std::vector<Value> parts;
      for (auto& p : PySplit(self, a.Get(0, "sep"), ArgInt(a.Get(1, "maxsplit"), -1))) {
        parts.emplace_back(std::move(p));
      }
      return Value::NewList(std::move(parts));
    });
  }
  if (name == "splitlines") {
    return Method(name, [self](CallArgs& a) {
      a.Check("splitlines", 1, {"keepends"});
      const bool keep = a.Get(0, "keepends").Truthy();
      std::vector<Value> lines;
      size_t pos = 0;
      while (pos < self.size()) {
        size_t nl = self.find_first_of("\r\n", pos);
        if (nl == std::string::npos) {
          lines.emplace_back(self.substr(pos));
          break;
        }
        size_t end =
            nl + ((self[nl] == '\r' && nl + 1 < self.size() && self[nl + 1] == '\n') ? 2 : 1);
        lines.emplace_back(self.substr(pos, (keep ? end : nl) - pos));
        pos = end;
      }
      return Value::NewList(std::move(lines));
    });
  }
  if (name == "replace") {
    return Method(name, [self](CallArgs& a) {
      a.Check("replace", 3, {});
      return Value(PyReplace(self, ArgString(a.Get(0, ""), "old"), ArgString(a.Get(1, ""), "new"),
                             ArgInt(a.Get(2, ""), -1)));
    });
  }
  if (name == "find" || name == "rfind" || name == "count" || name == "index") {
    return Method(name, [self, name](CallArgs& a) {
      a.Check(name, 1, {});
      const std::string x = ArgString(a.Get(0, ""), "sub");
      if (name == "count") {
        if (x.empty()) return Value(Utf8Length(self) + 1);
        int64_t n = 0;
        for (size_t p = self.find(x); p != std::string::npos; p = self.find(x, p + x.size())) ++n;
        return Value(n);
      }
      const size_t p = name == "rfind" ? self.rfind(x) : self.find(x);
      if (p == std::string::npos) {
        if (name == "index") ThrowRuntime("substring not found");
        return Value(-1);
      }
      return Value(Utf8Length(std::string_view(self).substr(0, p)));
    });
  }
  if (name == "join") {
    return Method(name, [self](CallArgs& a) {
      a.Check("join", 1, {});
      std::string out;
      bool first = true;
      for (const Value& v : Iterate(a.Get(0, ""))) {
        if (!first) out += self;
        first = false;
        out += ArgString(v, "sequence item");
      }
      return Value(std::move(out));
    });
  }
  if (name == "format") {
    return Method(name, [self](CallArgs& a) { return Value(PyFormat(self, a)); });
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const bool prefix = name == "removeprefix";
    return Method(name, [self, prefix](CallArgs& a) {
      const std::string x = ArgString(a.Get(0, ""), "affix");
      if (prefix && self.compare(0, x.size(), x) == 0) return Value(self.substr(x.size()));
      if (!prefix && x.size() <= self.size() &&
          self.compare(self.size() - x.size(), x.size(), x) == 0) {
        return Value(self.substr(0, self.size() - x.size()));
      }
      return Value(self);
    });
  }
  // isnumeric() is also true for numerals that are no digits ("½", "三");
  // those are treated as non-numeric here.
  if (name == "isdigit" || name == "isnumeric") {
    return Method(name, [self](CallArgs&) { return Value(PyIsDigit(self)); });
  }
  if (name == "isdecimal") {
    return Method(name, [self](CallArgs&) { return Value(PyIsDecimal(self)); });
  }
  int (*pred)(int) = name == "isalpha"   ? ::isalpha
                     : name == "isalnum" ? ::isalnum
                     : name == "isspace" ? ::isspace
                                         : nullptr;
  if (pred != nullptr) {
    return Method(name, [self, pred](CallArgs&) { return Value(AllOf(self, pred)); });
  }
  if (name == "islower" || name == "isupper") {
    const bool lower = name == "islower";
    return Method(name, [self, lower](CallArgs&) { return Value(PyIsCase(self, lower)); });
  }
  return Value(Undefined{name});
}

Value DictMethod(const Value& self, const std::string& name) {
  if (name == "items" || name == "keys" || name == "values") {
    return Method(name, [self, name](CallArgs& a) {
      a.Check(name, 0, {});
      std::vector<Value> out;
      for (const auto& [k, v] : self.as_dict().items) {
        if (name == "items") {
          out.push_back(Value::NewList({Value(k), v}, /*is_tuple=*/true));
        } else {
          out.push_back(name == "keys" ? Value(k) : v);
        }
      }
      return Value::NewList(std::move(out));
    });
  }
  if (name == "get") {
    return Method(name, [self](CallArgs& a) {
      a.Check("get", 2, {});
      const Value key = a.Get(0, "");
      if (key.is_string()) {
        if (const Value* v = self.as_dict().Find(key.as_string())) return *v;
      }
      const Value fallback = a.Get(1, "");
      return fallback.is_undefined() ? Value::None() : fallback;
    });
  }
  return Value(Undefined{name});
}

Value ListMethod(const Value& self, const std::string& name) {
  if (name == "index" || name == "count") {
    return Method(name, [self, name](CallArgs& a) {
      a.Check(name, 1, {});
      const Value x = a.Get(0, "");
      int64_t n = 0;
      const auto& items = self.as_list().items;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!ValuesEqual(items[i], x)) continue;
        if (name == "index") return Value(static_cast<int64_t>(i));
        ++n;
      }
      if (name == "index") ThrowRuntime(ToPythonRepr(x) + " is not in list");
      return Value(n);
    });
  }
  return Value(Undefined{name});
}

}  // namespace muserve::jinja
