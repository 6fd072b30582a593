// Python semantics of operators, iteration, item and slice access.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/jinja/builtins.h"
#include "engine/tokenizer/jinja/format.h"

namespace muserve::jinja {
namespace {

constexpr size_t kMaxSequenceBytes = 64 << 20;

bool IsAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

[[noreturn]] void TypeError(const std::string& op, const Value& a, const Value& b) {
  ThrowRuntime(absl::StrCat("unsupported operand type(s) for ", op, ": '", a.TypeName(), "' and '",
                            b.TypeName(), "'"));
}

// Python floor division and modulo on integers.
int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// CPython's float_divmod: (floor quotient, remainder with the divisor's sign).
std::pair<double, double> FloatDivMod(double vx, double wx) {
  double mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  double floordiv;
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
  return {floordiv, mod};
}

Value Repeat(const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    if (seq.as_string().size() * static_cast<size_t>(n) > kMaxSequenceBytes) {
      throw JinjaError(JinjaError::Kind::kLimit, "string repetition too large");
    }
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.as_string();
    return Value(std::move(out));
  }
  const auto& items = seq.as_list().items;
  if (items.size() * static_cast<size_t>(n) > kMaxSequenceBytes / 16) {
    throw JinjaError(JinjaError::Kind::kLimit, "list repetition too large");
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::NewList(std::move(out), seq.is_tuple());
}

// Normalizes a Python slice over a sequence of `len` elements into the list of
// indices it selects.
std::vector<int64_t> SliceIndices(int64_t len, const Value* start, const Value* stop,
                                  const Value* step) {
  auto as_index = [](const Value* v) -> std::optional<int64_t> {
    if (v == nullptr || v->is_none() || v->is_undefined()) return std::nullopt;
    if (!v->is_int() && !v->is_bool()) ThrowRuntime("slice indices must be integers or None");
    return v->ToInt();
  };
  const int64_t st = as_index(step).value_or(1);
  if (st == 0) ThrowRuntime("slice step cannot be zero");
  auto clamp = [len, st](std::optional<int64_t> i, bool is_start) -> int64_t {
    if (!i) return st > 0 ? (is_start ? 0 : len) : (is_start ? len - 1 : -1);
    int64_t v = *i;
    if (v < 0) v += len;
    if (st > 0) return std::clamp<int64_t>(v, 0, len);
    return std::clamp<int64_t>(v, -1, len - 1);
  };
  const int64_t b = clamp(as_index(start), true);
  const int64_t e = clamp(as_index(stop), false);
  std::vector<int64_t> out;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(i);
  return out;
}

}  // namespace

bool ValuesEqual(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.ToDouble() == b.ToDouble();
    return a.ToInt() == b.ToInt();
  }
  if (a.is_undefined() || b.is_undefined()) return a.is_undefined() && b.is_undefined();
  if (a.is_none() || b.is_none()) return a.is_none() && b.is_none();
  if (a.is_string() && b.is_string()) return a.as_string() == b.as_string();
  if (a.is_list() && b.is_list()) {
    if (a.is_tuple() != b.is_tuple()) return false;
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!ValuesEqual(x[i], y[i])) return false;
    }
    return true;
  }
  if (a.is_namespace() || b.is_namespace())
    return a.is_dict() && b.is_dict() && &a.as_dict() == &b.as_dict();
  if (a.is_dict() && b.is_dict()) {
    const auto& x = a.as_dict().items;
    const auto& y = b.as_dict().items;
    if (x.size() != y.size()) return false;
    for (const auto& [k, v] : x) {
      const Value* other = b.as_dict().Find(k);
      if (other == nullptr || !ValuesEqual(v, *other)) return false;
    }
    return true;
  }
  if (a.is_callable() && b.is_callable()) return &a.as_callable() == &b.as_callable();
  return false;
}

bool ValueLess(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.ToDouble() < b.ToDouble();
    return a.ToInt() < b.ToInt();
  }
  // UTF-8 byte order equals code point order.
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!ValuesEqual(x[i], y[i])) return ValueLess(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  ThrowRuntime(absl::StrCat("'<' not supported between instances of '", a.TypeName(), "' and '",
                            b.TypeName(), "'"));
}

bool Contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (!item.is_string()) {
      ThrowRuntime("'in <string>' requires string as left operand, not " + item.TypeName());
    }
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_list()) {
    for (const Value& v : container.as_list().items) {
      if (ValuesEqual(v, item)) return true;
    }
    return false;
  }
  if (container.is_dict() && !container.is_namespace()) {
    if ((item.is_list() && !item.is_tuple()) || item.is_dict()) {
      ThrowRuntime("unhashable type: '" + item.TypeName() + "'");
    }
    return item.is_string() && container.as_dict().Find(item.as_string()) != nullptr;
  }
  if (container.is_undefined()) return false;
  ThrowRuntime("argument of type '" + container.TypeName() + "' is not iterable");
}

Value BinaryOp(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value(ToPythonStr(a) + ToPythonStr(b));
  if (op == "%" && a.is_string()) {
    // printf-style formatting: %s, %d, %r, %f, %% with a value or tuple.
    std::vector<Value> args = b.is_tuple() ? b.as_list().items : std::vector<Value>{b};
    std::string out;
    size_t next = 0;
    const std::string& f = a.as_string();
    for (size_t i = 0; i < f.size(); ++i) {
      if (f[i] != '%') {
        out.push_back(f[i]);
        continue;
      }
      if (++i >= f.size()) ThrowRuntime("incomplete format");
      const char c = f[i];
      if (c == '%') {
        out.push_back('%');
        continue;
      }
      if (next >= args.size()) ThrowRuntime("not enough arguments for format string");
      const Value& v = args[next++];
      if (c == 's') {
        out += ToPythonStr(v);
      } else if (c == 'r') {
        out += ToPythonRepr(v);
      } else if ((c == 'd' || c == 'i') && v.is_number()) {
        out += std::to_string(v.is_float() ? static_cast<int64_t>(v.as_float()) : v.ToInt());
      } else {
        ThrowRuntime(absl::StrCat("unsupported format character '", std::string(1, c), "'"));
      }
    }
    // Python treats a non-tuple argument with __getitem__ (list, dict, and
    // jinja2's Undefined) as a mapping, which need not be consumed.
    const bool mapping = !b.is_tuple() && (b.is_list() || b.is_dict() || b.is_undefined());
    if (next < args.size() && !mapping) {
      ThrowRuntime("not all arguments converted during string formatting");
    }
    return Value(std::move(out));
  }
  if (a.is_undefined() || b.is_undefined()) {
    const Value& u = a.is_undefined() ? a : b;
    ThrowRuntime(u.as_undefined().name.empty() ? "undefined value used in an expression"
                                               : "'" + u.as_undefined().name + "' is undefined");
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      std::vector<Value> items = a.as_list().items;
      items.insert(items.end(), b.as_list().items.begin(), b.as_list().items.end());
      return Value::NewList(std::move(items), a.is_tuple());
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return Repeat(a, b.ToInt());
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return Repeat(b, a.ToInt());
  }
  if (!a.is_number() || !b.is_number()) TypeError(op, a, b);
  const bool floats = a.is_float() || b.is_float();
  if (op == "/") {
    if (b.ToDouble() == 0) ThrowRuntime("division by zero");
    return Value(a.ToDouble() / b.ToDouble());
  }
  if (floats) {
    const double x = a.ToDouble(), y = b.ToDouble();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "**") {
      if (x == 0 && y < 0) ThrowRuntime("0.0 cannot be raised to a negative power");
      if (x < 0 && y != std::floor(y)) ThrowRuntime("complex results are not supported");
      const double r = std::pow(x, y);
      if (std::isinf(r) && std::isfinite(x) && std::isfinite(y))
        ThrowRuntime("Numerical result out of range");
      return Value(r);
    }
    if (y == 0) ThrowRuntime("float division by zero");
    const auto [q, m] = FloatDivMod(x, y);
    if (op == "//") return Value(q);
    if (op == "%") return Value(m);
  } else {
    const int64_t x = a.ToInt(), y = b.ToInt();
    int64_t r = 0;
    if (op == "+" && !__builtin_add_overflow(x, y, &r)) return Value(r);
    if (op == "-" && !__builtin_sub_overflow(x, y, &r)) return Value(r);
    if (op == "*" && !__builtin_mul_overflow(x, y, &r)) return Value(r);
    if (op == "**") {
      if (y < 0) {
        if (x == 0) ThrowRuntime("0.0 cannot be raised to a negative power");
        return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
      }
      int64_t acc = 1;
      for (int64_t i = 0; i < y; ++i) {
        if (__builtin_mul_overflow(acc, x, &acc)) ThrowRuntime("integer overflow in '**'");
      }
      return Value(acc);
    }
    if (op == "//" || op == "%") {
      if (y == 0) ThrowRuntime("integer division or modulo by zero");
      const int64_t q = FloorDiv(x, y);
      return op == "//" ? Value(q) : Value(x - q * y);
    }
    ThrowRuntime("integer overflow in '" + op + "'");
  }
  TypeError(op, a, b);
}

std::vector<Value> Iterate(const Value& v) {
  if (v.is_list()) return v.as_list().items;
  if (v.is_dict() && !v.is_namespace()) {
    std::vector<Value> keys;
    for (const auto& [k, e] : v.as_dict().items) keys.emplace_back(k);
    return keys;
  }
  if (v.is_string()) {
    std::vector<Value> chars;
    for (char32_t c : DecodeUtf8(v.as_string())) {
      std::string s;
      AppendUtf8(c, &s);
      chars.emplace_back(std::move(s));
    }
    return chars;
  }
  if (v.is_undefined()) return {};
  ThrowRuntime("'" + v.TypeName() + "' object is not iterable");
}

Value GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) {
    ThrowRuntime(obj.as_undefined().name.empty()
                     ? "cannot index an undefined value"
                     : "'" + obj.as_undefined().name + "' is undefined");
  }
  if (obj.is_dict() && !obj.is_namespace() && key.is_string()) {
    if (const Value* v = obj.as_dict().Find(key.as_string())) return *v;
  } else if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.ToInt();
    if (obj.is_list()) {
      const int64_t n = static_cast<int64_t>(obj.as_list().items.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.as_list().items[static_cast<size_t>(i)];
    } else if (IsAscii(obj.as_string())) {
      const int64_t n = static_cast<int64_t>(obj.as_string().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value(std::string(1, obj.as_string()[static_cast<size_t>(i)]));
    } else {
      const std::u32string s = DecodeUtf8(obj.as_string());
      const int64_t n = static_cast<int64_t>(s.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value(EncodeUtf8(s.substr(static_cast<size_t>(i), 1)));
    }
  }
  if (key.is_string()) {
    Value attr = GetAttr(obj, key.as_string());
    if (!attr.is_undefined()) return attr;
  }
  return Value(Undefined{ToPythonStr(key)});
}

Value GetSlice(const Value& obj, const Value* start, const Value* stop, const Value* step) {
  if (obj.is_list()) {
    const auto& items = obj.as_list().items;
    std::vector<Value> out;
    for (int64_t i : SliceIndices(static_cast<int64_t>(items.size()), start, stop, step)) {
      out.push_back(items[static_cast<size_t>(i)]);
    }
    return Value::NewList(std::move(out), obj.is_tuple());
  }
  if (obj.is_string()) {
    const std::u32string s = DecodeUtf8(obj.as_string());
    std::u32string out;
    for (int64_t i : SliceIndices(static_cast<int64_t>(s.size()), start, stop, step)) {
      out.push_back(s[static_cast<size_t>(i)]);
    }
    return Value(EncodeUtf8(out));
  }
  if (obj.is_undefined()) ThrowRuntime("cannot slice an undefined value");
  // jinja2 compiles slices to plain Python subscripts (bypassing the
  // environment's getitem), so slicing anything else is a TypeError.
  ThrowRuntime("'" + obj.TypeName() + "' object is not subscriptable");
}

}  // namespace muserve::jinja
