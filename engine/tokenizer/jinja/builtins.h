// Built-in filters, tests, global functions and the attribute / item lookup
// rules of jinja2's ImmutableSandboxedEnvironment, with transformers' chat
// template additions (`tojson` with ensure_ascii=False, `raise_exception`,
// `strftime_now`, `namespace`, `dict`).
#pragma once

#include <string>
#include <string_view>

#include "engine/tokenizer/jinja/value.h"

namespace muserve::jinja {

using FilterFn = Value (*)(const Value& self, CallArgs& args);
using TestFn = bool (*)(const Value& self, CallArgs& args);

// nullptr when there is no such filter / test.
FilterFn FindFilter(std::string_view name);
TestFn FindTest(std::string_view name);

// `obj.name`: Python attribute first (str / dict / list methods, namespace
// attributes), then item; undefined when neither exists. Reading an attribute
// of an undefined value is an error, as with jinja2's default Undefined.
Value GetAttr(const Value& obj, const std::string& name);
// `obj[key]`: item first, then attribute; undefined when missing or out of range.
Value GetItem(const Value& obj, const Value& key);
// `obj[start:stop:step]` for strings, lists and tuples (null = omitted).
Value GetSlice(const Value& obj, const Value* start, const Value* stop, const Value* step);

// Python semantics for operators used by templates.
bool ValuesEqual(const Value& a, const Value& b);
// a < b; throws for unorderable types.
bool ValueLess(const Value& a, const Value& b);
bool Contains(const Value& container, const Value& item);
Value BinaryOp(const std::string& op, const Value& a, const Value& b);
// Items produced by `for x in value`.
std::vector<Value> Iterate(const Value& v);

// Globals every template sees: range, dict, namespace, raise_exception,
// strftime_now.
void AddGlobals(DictData* globals);

}  // namespace muserve::jinja
