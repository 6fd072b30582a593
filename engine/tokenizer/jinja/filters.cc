// Jinja's built-in filters as jinja2 3.1 implements them, with transformers'
// `tojson` (json.dumps with ensure_ascii=False).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <optional>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/jinja/builtins.h"
#include "engine/tokenizer/jinja/digits.h"
#include "engine/tokenizer/jinja/format.h"
#include "engine/tokenizer/jinja/strings.h"

namespace muserve::jinja {
namespace {

std::string Str(const Value& v) { return ToPythonStr(v); }

int64_t Len(const Value& v) {
  if (v.is_string()) return Utf8Length(v.as_string());
  if (v.is_list()) return static_cast<int64_t>(v.as_list().items.size());
  if (v.is_dict() && !v.is_namespace()) return static_cast<int64_t>(v.as_dict().items.size());
  if (v.is_undefined()) return 0;
  ThrowRuntime("object of type '" + v.TypeName() + "' has no len()");
}

// jinja2's _prepare_attribute_parts: `int(part) if part.isdigit() else part`.
Value AttrPathPart(const std::string& part) {
  if (!PyIsDigit(part)) return Value(part);
  const std::optional<DecimalValue> v = PyDecimalValue(part);
  // Superscript or circled digits pass isdigit() but not int().
  if (!v) ThrowRuntime("invalid literal for int() with base 10: '" + part + "'");
  // An index beyond int64 is past the end of every list and string and
  // matches no (string) dict key, exactly as INT64_MAX does.
  return Value(v->fits_int64 ? v->value : INT64_MAX);
}

// Resolves a dotted attribute path ("a.b.0") the way jinja2's
// make_attrgetter does.
Value AttrPath(const Value& v, const Value& path) {
  if (path.is_int()) return GetItem(v, path);
  Value cur = v;
  const std::string p = Str(path);
  size_t start = 0;
  while (true) {
    const size_t dot = p.find('.', start);
    const std::string part =
        p.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    cur = GetItem(cur, AttrPathPart(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// Sort / unique key: lower-cased strings unless case_sensitive.
Value SortKey(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(PyLower(v.as_string()));
  return v;
}

CallArgs Shift(const CallArgs& a, size_t n) {
  CallArgs out;
  if (a.args.size() > n)
    out.args.assign(a.args.begin() + static_cast<std::ptrdiff_t>(n), a.args.end());
  out.kwargs = a.kwargs;
  return out;
}

// select / reject / selectattr / rejectattr.
Value SelectOrReject(const Value& self, CallArgs& a, bool by_attr, bool select) {
  size_t next = 0;
  Value attr;
  if (by_attr) attr = a.Get(next++, "");
  const Value test_name = a.Get(next++, "");
  TestFn test = nullptr;
  if (!test_name.is_undefined()) {
    test = FindTest(Str(test_name));
    if (test == nullptr) ThrowRuntime("No test named '" + Str(test_name) + "'");
  }
  CallArgs test_args = Shift(a, next);
  std::vector<Value> out;
  if (!self.Truthy()) return Value::NewList();  // jinja2: `if value: for item in value`
  for (const Value& item : Iterate(self)) {
    const Value subject = by_attr ? AttrPath(item, attr) : item;
    const bool ok = test ? test(subject, test_args) : subject.Truthy();
    if (ok == select) out.push_back(item);
  }
  return Value::NewList(std::move(out));
}

Value Map(const Value& self, CallArgs& a) {
  std::vector<Value> out;
  if (!self.Truthy()) return Value::NewList();  // jinja2: `if value: for item in value`
  const Value attribute = a.Get(SIZE_MAX, "attribute");
  if (!attribute.is_undefined()) {
    const Value fallback = a.Get(SIZE_MAX, "default");
    for (const Value& item : Iterate(self)) {
      Value v = AttrPath(item, attribute);
      out.push_back(v.is_undefined() && !fallback.is_undefined() ? fallback : v);
    }
    return Value::NewList(std::move(out));
  }
  const Value name = a.Get(0, "");
  if (name.is_undefined()) ThrowRuntime("map requires a filter name or attribute=");
  const FilterFn filter = FindFilter(Str(name));
  if (filter == nullptr) ThrowRuntime("No filter named '" + Str(name) + "'");
  CallArgs rest = Shift(a, 1);
  for (const Value& item : Iterate(self)) out.push_back(filter(item, rest));
  return Value::NewList(std::move(out));
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

Value Indent(const Value& self, CallArgs& a) {
  a.Check("indent", 3, {"width", "first", "blank"});
  const Value width = a.Get(0, "width");
  std::string indention;
  if (width.is_string()) {
    indention = width.as_string();
  } else {
    indention.assign(
        static_cast<size_t>(width.is_undefined() ? 4 : std::max<int64_t>(0, width.ToInt())), ' ');
  }
  if (!self.is_string()) ThrowRuntime("indent: expected a string, got " + self.TypeName());
  std::string s = self.as_string() + "\n";
  CallArgs no_args;
  std::vector<std::string> lines;
  const Value splitlines = StringMethod(s, "splitlines");
  const Value split = splitlines.as_callable().fn(no_args);
  for (const Value& l : split.as_list().items) lines.push_back(l.as_string());
  std::string rv;
  if (a.Get(2, "blank").Truthy()) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + indention : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    if (lines.size() > 1) {
      rv += "\n";
      for (size_t i = 1; i < lines.size(); ++i) {
        if (i > 1) rv += "\n";
        rv += lines[i].empty() ? lines[i] : indention + lines[i];
      }
    }
  }
  if (a.Get(1, "first").Truthy()) rv = indention + rv;
  return Value(rv);
}

Value ToJson(const Value& self, CallArgs& a) {
  a.Check("tojson", 4, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions o;
  o.ensure_ascii = a.Get(0, "ensure_ascii").Truthy();
  const Value indent = a.Get(1, "indent");
  if (indent.is_int()) o.indent = static_cast<int>(std::max<int64_t>(0, indent.as_int()));
  const Value seps = a.Get(2, "separators");
  if (seps.is_list() && seps.as_list().items.size() == 2) {
    o.item_separator = Str(seps.as_list().items[0]);
    o.key_separator = Str(seps.as_list().items[1]);
  }
  o.sort_keys = a.Get(3, "sort_keys").Truthy();
  if (indent.is_string()) ThrowRuntime("tojson: string indents are not supported");
  return Value(JsonDumps(self, o));
}

// Removes underscores placed between digits, as Python's int() and float()
// accept them; nullopt when an underscore is anywhere else.
std::optional<std::string> StripDigitUnderscores(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '_') {
      out.push_back(s[i]);
      continue;
    }
    if (i == 0 || i + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
        !std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      return std::nullopt;
    }
  }
  return out;
}

// Python int(s) for base 10 (s already stripped).
std::optional<int64_t> ParsePythonInt(const std::string& text) {
  auto s = StripDigitUnderscores(text);
  if (!s || s->empty()) return std::nullopt;
  size_t i = (*s)[0] == '+' || (*s)[0] == '-' ? 1 : 0;
  if (i >= s->size()) return std::nullopt;
  for (size_t k = i; k < s->size(); ++k) {
    if (!std::isdigit(static_cast<unsigned char>((*s)[k]))) return std::nullopt;
  }
  errno = 0;
  const long long v = std::strtoll(s->c_str(), nullptr, 10);
  if (errno == ERANGE) ThrowRuntime("integer beyond 64 bits");
  return static_cast<int64_t>(v);
}

// Python float(s) (s already stripped): decimal or exponent forms, inf, nan.
std::optional<double> ParsePythonFloat(const std::string& text) {
  auto s = StripDigitUnderscores(text);
  if (!s || s->empty()) return std::nullopt;
  for (char c : *s) {
    if (c == 'x' || c == 'X' || c == 'p' || c == 'P') return std::nullopt;  // strtod's hex floats
  }
  char* end = nullptr;
  const double d = std::strtod(s->c_str(), &end);
  if (end != s->c_str() + s->size()) return std::nullopt;
  return d;
}

// Python int(float): truncation; Python's unbounded ints beyond 64 bits are
// an error here rather than a wrong number.
int64_t FloatToInt(double d) {
  if (std::isnan(d)) ThrowRuntime("cannot convert float NaN to integer");
  if (!(d > -9.3e18 && d < 9.3e18)) ThrowRuntime("int: value beyond 64 bits");
  return static_cast<int64_t>(d);
}

Value ToInt(const Value& self, CallArgs& a) {
  a.Check("int", 2, {"default", "base"});
  Value fallback = a.Get(0, "default");
  if (fallback.is_undefined()) fallback = Value(0);
  if (self.is_undefined()) ThrowRuntime("int: value is undefined");
  if (self.is_int() || self.is_bool()) return Value(self.ToInt());
  if (self.is_float()) return Value(FloatToInt(self.as_float()));
  if (self.is_string()) {
    const std::string s = PyStrip(self.as_string(), Value(), true, true);
    if (auto i = ParsePythonInt(s)) return Value(*i);
    if (auto d = ParsePythonFloat(s)) return Value(FloatToInt(*d));
  }
  return fallback;
}

Value ToFloat(const Value& self, CallArgs& a) {
  a.Check("float", 1, {"default"});
  Value fallback = a.Get(0, "default");
  if (fallback.is_undefined()) fallback = Value(0.0);
  if (self.is_undefined()) ThrowRuntime("float: value is undefined");
  if (self.is_number()) return Value(self.ToDouble());
  if (self.is_string()) {
    if (auto d = ParsePythonFloat(PyStrip(self.as_string(), Value(), true, true))) return Value(*d);
  }
  return fallback;
}

Value SortFilter(const Value& self, CallArgs& a) {
  a.Check("sort", 3, {"reverse", "case_sensitive", "attribute"});
  const bool reverse = a.Get(0, "reverse").Truthy();
  const bool cs = a.Get(1, "case_sensitive").Truthy();
  const Value attr = a.Get(2, "attribute");
  std::vector<Value> items = Iterate(self);
  auto key = [&](const Value& v) {
    return SortKey(attr.is_undefined() ? v : AttrPath(v, attr), cs);
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    return reverse ? ValueLess(key(y), key(x)) : ValueLess(key(x), key(y));
  });
  return Value::NewList(std::move(items));
}

Value Unique(const Value& self, CallArgs& a) {
  a.Check("unique", 2, {"case_sensitive", "attribute"});
  const bool cs = a.Get(0, "case_sensitive").Truthy();
  const Value attr = a.Get(1, "attribute");
  std::vector<Value> out, seen;
  for (const Value& item : Iterate(self)) {
    Value k = SortKey(attr.is_undefined() ? item : AttrPath(item, attr), cs);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return ValuesEqual(s, k); }))
      continue;
    seen.push_back(k);
    out.push_back(item);
  }
  return Value::NewList(std::move(out));
}

Value MinMax(const Value& self, CallArgs& a, bool is_max) {
  a.Check(is_max ? "max" : "min", 2, {"case_sensitive", "attribute"});
  const bool cs = a.Get(0, "case_sensitive").Truthy();
  const Value attr = a.Get(1, "attribute");
  std::vector<Value> items = Iterate(self);
  if (items.empty()) return Value(Undefined{"no items"});
  auto key = [&](const Value& v) {
    return SortKey(attr.is_undefined() ? v : AttrPath(v, attr), cs);
  };
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    if (is_max ? ValueLess(key(items[best]), key(items[i]))
               : ValueLess(key(items[i]), key(items[best]))) {
      best = i;
    }
  }
  return items[best];
}

Value Sum(const Value& self, CallArgs& a) {
  a.Check("sum", 2, {"attribute", "start"});
  const Value attr = a.Get(0, "attribute");
  Value total = a.Get(1, "start");
  if (total.is_undefined()) total = Value(0);
  for (const Value& item : Iterate(self)) {
    total = BinaryOp("+", total, attr.is_undefined() ? item : AttrPath(item, attr));
  }
  return total;
}

Value Round(const Value& self, CallArgs& a) {
  a.Check("round", 2, {"precision", "method"});
  const Value p = a.Get(0, "precision");
  const int64_t precision = p.is_undefined() ? 0 : p.ToInt();
  const std::string method = a.Get(1, "method").is_undefined() ? "common" : Str(a.Get(1, "method"));
  if (!self.is_number()) ThrowRuntime("round: expected a number");
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = self.ToDouble() * scale;
  double r;
  if (method == "common") {
    r = std::nearbyint(x);  // Python 3 round() rounds half to even
  } else if (method == "ceil") {
    r = std::ceil(x);
  } else if (method == "floor") {
    r = std::floor(x);
  } else {
    ThrowRuntime("method must be 'common', 'ceil' or 'floor'");
  }
  if (method == "common" && (self.is_int() || self.is_bool())) return Value(self.ToInt());
  return Value(r / scale);
}

Value Items(const Value& self, CallArgs&) {
  if (self.is_undefined()) return Value::NewList();
  if (!self.is_dict() || self.is_namespace())
    ThrowRuntime("items: can only get item pairs from a mapping");
  CallArgs none;
  return DictMethod(self, "items").as_callable().fn(none);
}

Value DictSort(const Value& self, CallArgs& a) {
  a.Check("dictsort", 3, {"case_sensitive", "by", "reverse"});
  Value items = Items(self, a);
  const bool cs = a.Get(0, "case_sensitive").Truthy();
  const size_t pos = Str(a.Get(1, "by")) == "value" ? 1 : 0;
  const bool reverse = a.Get(2, "reverse").Truthy();
  auto& v = items.as_list().items;
  std::stable_sort(v.begin(), v.end(), [&](const Value& x, const Value& y) {
    const Value kx = SortKey(x.as_list().items[pos], cs), ky = SortKey(y.as_list().items[pos], cs);
    return reverse ? ValueLess(ky, kx) : ValueLess(kx, ky);
  });
  return items;
}

Value JinjaTitle(const Value& self, CallArgs&) {
  // "".join(w[0].upper() + w[1:].lower() for w in re.split(r"([-\s\(\{\[\<]+)", s) if w)
  std::string out;
  bool word_start = true;
  for (char32_t c : DecodeUtf8(Str(self))) {
    std::string ch;
    AppendUtf8(c, &ch);
    const bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || IsPythonSpace(c);
    if (sep) {
      out += ch;
    } else {
      out += word_start ? PyUpper(ch) : PyLower(ch);
    }
    word_start = sep;
  }
  return Value(out);
}

Value Reverse(const Value& self, CallArgs&) {
  if (self.is_string()) {
    std::u32string u = DecodeUtf8(self.as_string());
    std::reverse(u.begin(), u.end());
    return Value(EncodeUtf8(u));
  }
  std::vector<Value> items = Iterate(self);
  std::reverse(items.begin(), items.end());
  return Value::NewList(std::move(items));
}

const std::unordered_map<std::string_view, FilterFn>& Filters() {
  static const auto* const kFilters = new std::unordered_map<std::string_view, FilterFn>{
      {"abs",
       [](const Value& v, CallArgs&) -> Value {
         if (v.is_float()) return Value(std::fabs(v.as_float()));
         if (v.is_number()) return Value(std::abs(v.ToInt()));
         ThrowRuntime("bad operand type for abs(): '" + v.TypeName() + "'");
       }},
      {"attr", [](const Value& v, CallArgs& a) { return GetAttr(v, Str(a.Get(0, "name"))); }},
      {"capitalize", [](const Value& v, CallArgs&) { return Value(PyCapitalize(Str(v))); }},
      {"count", [](const Value& v, CallArgs&) { return Value(Len(v)); }},
      {"d",
       [](const Value& v, CallArgs& a) {
         const Value fallback = a.Get(0, "default_value");
         const bool boolean = a.Get(1, "boolean").Truthy();
         if (v.is_undefined() || (boolean && !v.Truthy()))
           return fallback.is_undefined() ? Value("") : fallback;
         return v;
       }},
      {"dictsort", DictSort},
      {"e", [](const Value& v, CallArgs&) { return Value(HtmlEscape(Str(v))); }},
      {"first",
       [](const Value& v, CallArgs&) {
         std::vector<Value> items = Iterate(v);
         return items.empty() ? Value(Undefined{"first"}) : items.front();
       }},
      {"float", ToFloat},
      {"format",
       [](const Value& v, CallArgs& a) {
         return BinaryOp("%", Value(Str(v)), Value::NewList(a.args, /*is_tuple=*/true));
       }},
      {"int", ToInt},
      {"items", Items},
      {"indent", Indent},
      {"join",
       [](const Value& v, CallArgs& a) {
         a.Check("join", 2, {"d", "attribute"});
         const std::string sep = a.Get(0, "d").is_undefined() ? "" : Str(a.Get(0, "d"));
         const Value attr = a.Get(1, "attribute");
         std::string out;
         bool first = true;
         for (const Value& item : Iterate(v)) {
           if (!first) out += sep;
           first = false;
           out += Str(attr.is_undefined() ? item : AttrPath(item, attr));
         }
         return Value(out);
       }},
      {"last",
       [](const Value& v, CallArgs&) {
         std::vector<Value> items = Iterate(v);
         return items.empty() ? Value(Undefined{"last"}) : items.back();
       }},
      {"length", [](const Value& v, CallArgs&) { return Value(Len(v)); }},
      {"list", [](const Value& v, CallArgs&) { return Value::NewList(Iterate(v)); }},
      {"lower", [](const Value& v, CallArgs&) { return Value(PyLower(Str(v))); }},
      {"map", Map},
      {"max", [](const Value& v, CallArgs& a) { return MinMax(v, a, true); }},
      {"min", [](const Value& v, CallArgs& a) { return MinMax(v, a, false); }},
      {"reject", [](const Value& v, CallArgs& a) { return SelectOrReject(v, a, false, false); }},
      {"rejectattr", [](const Value& v, CallArgs& a) { return SelectOrReject(v, a, true, false); }},
      {"replace",
       [](const Value& v, CallArgs& a) {
         a.Check("replace", 3, {"old", "new", "count"});
         const Value count = a.Get(2, "count");
         return Value(PyReplace(Str(v), Str(a.Get(0, "old")), Str(a.Get(1, "new")),
                                count.is_undefined() || count.is_none() ? -1 : count.ToInt()));
       }},
      {"reverse", Reverse},
      {"round", Round},
      {"safe", [](const Value& v, CallArgs&) { return v; }},
      {"select", [](const Value& v, CallArgs& a) { return SelectOrReject(v, a, false, true); }},
      {"selectattr", [](const Value& v, CallArgs& a) { return SelectOrReject(v, a, true, true); }},
      {"sort", SortFilter},
      {"string", [](const Value& v, CallArgs&) { return Value(Str(v)); }},
      {"sum", Sum},
      {"title", JinjaTitle},
      {"tojson", ToJson},
      {"trim",
       [](const Value& v, CallArgs& a) {
         a.Check("trim", 1, {"chars"});
         return Value(PyStrip(Str(v), a.Get(0, "chars"), true, true));
       }},
      {"unique", Unique},
      {"upper", [](const Value& v, CallArgs&) { return Value(PyUpper(Str(v))); }},
      {"wordcount",
       [](const Value& v, CallArgs&) {
         int64_t n = 0;
         bool in_word = false;
         for (char c : Str(v)) {
           const bool w = std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                          static_cast<unsigned char>(c) >= 0x80;
           n += w && !in_word;
           in_word = w;
         }
         return Value(n);
       }},
  };
  return *kFilters;
}

}  // namespace

FilterFn FindFilter(std::string_view name) {
  if (name == "default") name = "d";
  if (name == "escape" || name == "forceescape") name = "e";
  const auto& filters = Filters();
  auto it = filters.find(name);
  return it == filters.end() ? nullptr : it->second;
}

}  // namespace muserve::jinja
