// Jinja's built-in tests (`x is defined`, `x is string`, ...), as jinja2 3.1
// defines them.
#include <unordered_map>

#include "engine/tokenizer/jinja/builtins.h"
#include "engine/tokenizer/jinja/format.h"
#include "engine/tokenizer/jinja/strings.h"

namespace muserve::jinja {
namespace {

const Value& Arg(const CallArgs& a) {
  if (a.args.empty()) ThrowRuntime("test requires an argument");
  return a.args[0];
}

// jinja2: str(value).islower() / .isupper().
bool AllCased(const Value& v, bool lower) { return PyIsCase(ToPythonStr(v), lower); }

bool SameAs(const Value& a, const Value& b) {
  if (a.is_list() && b.is_list()) return &a.as_list() == &b.as_list();
  if (a.is_dict() && b.is_dict()) return &a.as_dict() == &b.as_dict();
  if (a.is_none() || a.is_bool()) return ValuesEqual(a, b) && a.is_bool() == b.is_bool();
  return false;
}

const std::unordered_map<std::string_view, TestFn>& Tests() {
  static const auto* const kTests = new std::unordered_map<std::string_view, TestFn>{
      {"defined", [](const Value& v, CallArgs&) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, CallArgs&) { return v.is_undefined(); }},
      {"none", [](const Value& v, CallArgs&) { return v.is_none(); }},
      {"boolean", [](const Value& v, CallArgs&) { return v.is_bool(); }},
      {"true", [](const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }},
      {"false", [](const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); }},
      {"integer", [](const Value& v, CallArgs&) { return v.is_int(); }},
      {"float", [](const Value& v, CallArgs&) { return v.is_float(); }},
      {"number", [](const Value& v, CallArgs&) { return v.is_number(); }},
      {"string", [](const Value& v, CallArgs&) { return v.is_string(); }},
      {"mapping", [](const Value& v, CallArgs&) { return v.is_dict() && !v.is_namespace(); }},
      // Jinja's Undefined is iterable (as empty) and has __len__/__getitem__.
      {"iterable",
       [](const Value& v, CallArgs&) {
         return v.is_string() || v.is_list() || (v.is_dict() && !v.is_namespace()) ||
                v.is_undefined();
       }},
      {"sequence",
       [](const Value& v, CallArgs&) {
         return v.is_string() || v.is_list() || (v.is_dict() && !v.is_namespace()) ||
                v.is_undefined();
       }},
      {"callable", [](const Value& v, CallArgs&) { return v.is_callable() || v.is_undefined(); }},
      // jinja2: value % 2 == 1 / value % 2 == 0, with Python's % semantics.
      {"odd",
       [](const Value& v, CallArgs&) { return ValuesEqual(BinaryOp("%", v, Value(2)), Value(1)); }},
      {"even",
       [](const Value& v, CallArgs&) { return ValuesEqual(BinaryOp("%", v, Value(2)), Value(0)); }},
      {"divisibleby",
       [](const Value& v, CallArgs& a) {
         const Value d = Arg(a);
         if (!v.is_number() || !d.is_number()) ThrowRuntime("divisibleby: expected numbers");
         const Value r = BinaryOp("%", v, d);
         return r.ToDouble() == 0;
       }},
      {"eq", [](const Value& v, CallArgs& a) { return ValuesEqual(v, Arg(a)); }},
      {"ne", [](const Value& v, CallArgs& a) { return !ValuesEqual(v, Arg(a)); }},
      {"lt", [](const Value& v, CallArgs& a) { return ValueLess(v, Arg(a)); }},
      {"le", [](const Value& v, CallArgs& a) { return !ValueLess(Arg(a), v); }},
      {"gt", [](const Value& v, CallArgs& a) { return ValueLess(Arg(a), v); }},
      {"ge", [](const Value& v, CallArgs& a) { return !ValueLess(v, Arg(a)); }},
      {"in", [](const Value& v, CallArgs& a) { return Contains(Arg(a), v); }},
      {"sameas", [](const Value& v, CallArgs& a) { return SameAs(v, Arg(a)); }},
      {"lower", [](const Value& v, CallArgs&) { return AllCased(v, true); }},
      {"upper", [](const Value& v, CallArgs&) { return AllCased(v, false); }},
      {"escaped", [](const Value&, CallArgs&) { return false; }},
      {"filter", [](const Value& v,
                    CallArgs&) { return v.is_string() && FindFilter(v.as_string()) != nullptr; }},
      {"test", [](const Value& v,
                  CallArgs&) { return v.is_string() && FindTest(v.as_string()) != nullptr; }},
  };
  return *kTests;
}

}  // namespace

TestFn FindTest(std::string_view name) {
  static const std::pair<std::string_view, std::string_view> kAliases[] = {
      {"equalto", "eq"}, {"==", "eq"}, {"!=", "ne"},          {"<", "lt"}, {"lessthan", "lt"},
      {"<=", "le"},      {">", "gt"},  {"greaterthan", "gt"}, {">=", "ge"}};
  for (const auto& [alias, target] : kAliases) {
    if (name == alias) name = target;
  }
  const auto& tests = Tests();
  auto it = tests.find(name);
  return it == tests.end() ? nullptr : it->second;
}

}  // namespace muserve::jinja
