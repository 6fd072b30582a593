#include "engine/tokenizer/jinja/format.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace muserve::jinja {
namespace {

// Invalid UTF-8 bytes decode to U+DC80..U+DCFF (Python's "surrogateescape"),
// so decoding and re-encoding preserves them.
constexpr char32_t kEscapeBase = 0xDC00;

void AppendJsonString(std::string_view s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  for (char32_t c : DecodeUtf8(s)) {
    switch (c) {
      case '"':
        out->append("\\\"");
        continue;
      case '\\':
        out->append("\\\\");
        continue;
      case '\n':
        out->append("\\n");
        continue;
      case '\r':
        out->append("\\r");
        continue;
      case '\t':
        out->append("\\t");
        continue;
      case '\b':
        out->append("\\b");
        continue;
      case '\f':
        out->append("\\f");
        continue;
      default:
        break;
    }
    if (c < 0x20 || (ensure_ascii && c > 0x7e)) {
      auto emit = [out](unsigned u) {
        char buf[16];
        std::snprintf(buf, sizeof(buf), "\\u%04x", u & 0xFFFFu);
        out->append(buf);
      };
      if (c >= 0x10000) {
        char32_t v = c - 0x10000;
        emit(0xD800 + (v >> 10));
        emit(0xDC00 + (v & 0x3FF));
      } else {
        emit(static_cast<unsigned>(c));
      }
    } else {
      AppendUtf8(c, out);
    }
  }
  out->push_back('"');
}

std::string JsonFloat(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  return PythonFloatRepr(x);
}

void Dump(const Value& v, const JsonDumpOptions& o, int depth, std::string* out) {
  if (depth > 200) ThrowRuntime("tojson: value nested too deeply");
  if (v.is_none()) {
    out->append("null");
  } else if (v.is_bool()) {
    out->append(v.as_bool() ? "true" : "false");
  } else if (v.is_int()) {
    out->append(std::to_string(v.as_int()));
  } else if (v.is_float()) {
    out->append(JsonFloat(v.as_float()));
  } else if (v.is_string()) {
    AppendJsonString(v.as_string(), o.ensure_ascii, out);
  } else if (v.is_list() || (v.is_dict() && !v.is_namespace())) {
    const bool is_list = v.is_list();
    const std::string item_sep = o.item_separator.value_or(o.indent ? "," : ", ");
    const std::string key_sep = o.key_separator.value_or(": ");
    std::vector<std::pair<const std::string*, const Value*>> entries;
    if (is_list) {
      for (const Value& e : v.as_list().items) entries.emplace_back(nullptr, &e);
    } else {
      for (const auto& [k, e] : v.as_dict().items) entries.emplace_back(&k, &e);
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& a, const auto& b) { return *a.first < *b.first; });
      }
    }
    out->push_back(is_list ? '[' : '{');
    if (entries.empty()) {
      out->push_back(is_list ? ']' : '}');
      return;
    }
    std::string newline;
    if (o.indent) newline = "\n" + std::string(static_cast<size_t>(*o.indent) * (depth + 1), ' ');
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i > 0) out->append(item_sep);
      out->append(newline);
      if (!is_list) {
        AppendJsonString(*entries[i].first, o.ensure_ascii, out);
        out->append(key_sep);
      }
      Dump(*entries[i].second, o, depth + 1, out);
    }
    if (o.indent) out->append("\n" + std::string(static_cast<size_t>(*o.indent) * depth, ' '));
    out->push_back(is_list ? ']' : '}');
  } else {
    ThrowRuntime("Object of type " + v.TypeName() + " is not JSON serializable");
  }
}

std::string ReprString(std::string_view s) {
  const bool use_double =
      s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos;
  const char quote = use_double ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : DecodeUtf8(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out.append("\\n");
    } else if (c == '\r') {
      out.append("\\r");
    } else if (c == '\t') {
      out.append("\\t");
    } else if (c < 0x20 || c == 0x7f) {
      char buf[16];
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      out.append(buf);
    } else {
      AppendUtf8(c, &out);
    }
  }
  out.push_back(quote);
  return out;
}

}  // namespace

std::string PythonFloatRepr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  if (x == 0) return std::signbit(x) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  // sci is "[-]d[.ddd]e[+-]XX".
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp10 = std::stoi(sci.substr(e + 1));
  if (exp10 >= -4 && exp10 < 16) {
    std::string r;
    if (exp10 < 0) {
      r = "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exp10 + 1) {
      r = digits + std::string(static_cast<size_t>(exp10 + 1 - digits.size()), '0') + ".0";
    } else {
      r = digits.substr(0, exp10 + 1) + "." + digits.substr(exp10 + 1);
    }
    return sign + r;
  }
  std::string mant = digits.size() == 1 ? digits : digits.substr(0, 1) + "." + digits.substr(1);
  char ebuf[16];
  std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
  return sign + mant + ebuf;
}

std::string ToPythonStr(const Value& v) {
  if (v.is_undefined()) return "";
  if (v.is_string()) return v.as_string();
  return ToPythonRepr(v);
}

std::string ToPythonRepr(const Value& v) {
  // repr(jinja2.Undefined()), seen when a list holding one is printed.
  if (v.is_undefined()) return "Undefined";
  if (v.is_none()) return "None";
  if (v.is_bool()) return v.as_bool() ? "True" : "False";
  if (v.is_int()) return std::to_string(v.as_int());
  if (v.is_float()) return PythonFloatRepr(v.as_float());
  if (v.is_string()) return ReprString(v.as_string());
  if (v.is_list()) {
    const auto& l = v.as_list();
    std::string out(1, l.is_tuple ? '(' : '[');
    for (size_t i = 0; i < l.items.size(); ++i) {
      if (i > 0) out.append(", ");
      out.append(ToPythonRepr(l.items[i]));
    }
    if (l.is_tuple && l.items.size() == 1) out.push_back(',');
    out.push_back(l.is_tuple ? ')' : ']');
    return out;
  }
  if (v.is_namespace()) return "<Namespace>";
  if (v.is_dict()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, e] : v.as_dict().items) {
      if (!first) out.append(", ");
      first = false;
      out.append(ReprString(k)).append(": ").append(ToPythonRepr(e));
    }
    out.push_back('}');
    return out;
  }
  return "<function " + v.as_callable().name + ">";
}

std::string JsonDumps(const Value& v, const JsonDumpOptions& options) {
  std::string out;
  Dump(v, options, 0, &out);
  return out;
}

std::u32string DecodeUtf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    int len = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    char32_t c = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (int k = 1; ok && k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      ok = (b & 0xC0) == 0x80;
      c = (c << 6) | (b & 0x3F);
    }
    if (ok && len > 1) {
      static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = c >= kMin[len] && c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF);
    }
    if (!ok) {
      out.push_back(kEscapeBase + b0);
      ++i;
      continue;
    }
    out.push_back(c);
    i += len;
  }
  return out;
}

void AppendUtf8(char32_t c, std::string* out) {
  if (c >= kEscapeBase + 0x80 && c <= kEscapeBase + 0xFF) {
    out->push_back(static_cast<char>(c - kEscapeBase));
  } else if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string EncodeUtf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) AppendUtf8(c, &out);
  return out;
}

int64_t Utf8Length(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  // Fast path is exact for valid UTF-8; fall back for anything else.
  if (std::all_of(s.begin(), s.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
    return n;
  }
  return static_cast<int64_t>(DecodeUtf8(s).size());
}

bool IsPythonSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

}  // namespace muserve::jinja
