// Attribute lookup and the global functions of transformers' chat template
// environment.
#include <ctime>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/jinja/builtins.h"
#include "engine/tokenizer/jinja/format.h"
#include "engine/tokenizer/jinja/strings.h"

namespace muserve::jinja {
namespace {

// jinja2.sandbox.MAX_RANGE.
constexpr int64_t kMaxRange = 100000;

bool IsPythonDictAttribute(const std::string& name) {
  static const char* const kNames[] = {"clear", "copy",    "fromkeys",   "get",    "items", "keys",
                                       "pop",   "popitem", "setdefault", "update", "values"};
  for (const char* n : kNames) {
    if (name == n) return true;
  }
  return false;
}

Value Range(CallArgs& a) {
  a.Check("range", 3, {});
  for (const Value& v : a.args) {
    if (!v.is_int() && !v.is_bool()) ThrowRuntime("range() arguments must be integers");
  }
  int64_t start = 0, stop = 0, step = 1;
  if (a.args.size() == 1) {
    stop = a.args[0].ToInt();
  } else if (a.args.size() >= 2) {
    start = a.args[0].ToInt();
    stop = a.args[1].ToInt();
    if (a.args.size() == 3) step = a.args[2].ToInt();
  } else {
    ThrowRuntime("range expected at least 1 argument, got 0");
  }
  if (step == 0) ThrowRuntime("range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (static_cast<int64_t>(out.size()) >= kMaxRange) {
      throw JinjaError(
          JinjaError::Kind::kLimit,
          absl::StrCat("Range too big. The sandbox blocks ranges larger than MAX_RANGE (",
                       kMaxRange, ")."));
    }
    out.emplace_back(i);
  }
  return Value::NewList(std::move(out));
}

Value MakeDict(CallArgs& a, bool is_namespace) {
  Value d = Value::NewDict(is_namespace);
  if (a.args.size() > 1) ThrowRuntime("expected at most 1 positional argument");
  if (!a.args.empty()) {
    const Value& src = a.args[0];
    if (!src.is_dict()) ThrowRuntime("expected a dict as positional argument");
    for (const auto& [k, v] : src.as_dict().items) d.as_dict().Set(k, v);
  }
  for (const auto& [k, v] : a.kwargs) d.as_dict().Set(k, v);
  if (is_namespace) {
    for (const auto& [k, v] : d.as_dict().items) {
      if (!k.empty() && k[0] == '_') {
        ThrowRuntime(
            "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" +
            k + "'. Please rename the attribute.");
      }
    }
  }
  return d;
}

Value StrftimeNow(CallArgs& a) {
  a.Check("strftime_now", 1, {});
  const Value f = a.Get(0, "format");
  if (!f.is_string()) ThrowRuntime("strftime_now() argument must be str");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::string buf(256 + f.as_string().size() * 8, '\0');
  const size_t n = std::strftime(buf.data(), buf.size(), f.as_string().c_str(), &local);
  buf.resize(n);
  return Value(std::move(buf));
}

}  // namespace

Value GetAttr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) {
    ThrowRuntime(obj.as_undefined().name.empty()
                     ? "cannot read attribute '" + name + "' of an undefined value"
                     : "'" + obj.as_undefined().name + "' is undefined");
  }
  if (obj.is_namespace()) {
    if (const Value* v = obj.as_dict().Find(name)) return *v;
    return Value(Undefined{name});
  }
  if (obj.is_dict()) {
    if (IsPythonDictAttribute(name)) return DictMethod(obj, name);
    if (const Value* v = obj.as_dict().Find(name)) return *v;
    return Value(Undefined{name});
  }
  if (obj.is_string()) return StringMethod(obj.as_string(), name);
  if (obj.is_list() && !obj.is_tuple()) return ListMethod(obj, name);
  return Value(Undefined{name});
}

void AddGlobals(DictData* globals) {
  globals->Set("range", Value::Function("range", Range));
  globals->Set("dict", Value::Function("dict", [](CallArgs& a) { return MakeDict(a, false); }));
  globals->Set("namespace",
               Value::Function("namespace", [](CallArgs& a) { return MakeDict(a, true); }));
  globals->Set("raise_exception", Value::Function("raise_exception", [](CallArgs& a) -> Value {
                 throw JinjaError(JinjaError::Kind::kRaised, ToPythonStr(a.Get(0, "message")));
               }));
  globals->Set("strftime_now", Value::Function("strftime_now", StrftimeNow));
}

}  // namespace muserve::jinja
