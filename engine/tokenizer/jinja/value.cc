#include "engine/tokenizer/jinja/value.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace muserve::jinja {

void ThrowRuntime(const std::string& message) {
  throw JinjaError(JinjaError::Kind::kRuntime, message);
}

Value Value::NewList(std::vector<Value> items, bool is_tuple) {
  auto data = std::make_shared<ListData>();
  data->items = std::move(items);
  data->is_tuple = is_tuple;
  return Value(std::move(data));
}

Value Value::NewDict(bool is_namespace) {
  auto data = std::make_shared<DictData>();
  data->is_namespace = is_namespace;
  return Value(std::move(data));
}

Value Value::Function(std::string name, Callable fn) {
  auto data = std::make_shared<CallableData>();
  data->name = std::move(name);
  data->fn = std::move(fn);
  return Value(std::move(data));
}

bool Value::is_namespace() const { return is_dict() && as_dict().is_namespace; }
bool Value::is_tuple() const { return is_list() && as_list().is_tuple; }

double Value::ToDouble() const {
  if (is_float()) return as_float();
  return static_cast<double>(ToInt());
}

bool Value::Truthy() const {
  if (is_undefined() || is_none()) return false;
  if (is_bool()) return as_bool();
  if (is_int()) return as_int() != 0;
  if (is_float()) return as_float() != 0.0;
  if (is_string()) return !as_string().empty();
  if (is_list()) return !as_list().items.empty();
  if (is_namespace()) return true;
  if (is_dict()) return !as_dict().items.empty();
  return true;
}

std::string Value::TypeName() const {
  if (is_undefined()) return "Undefined";
  if (is_none()) return "NoneType";
  if (is_bool()) return "bool";
  if (is_int()) return "int";
  if (is_float()) return "float";
  if (is_string()) return "str";
  if (is_tuple()) return "tuple";
  if (is_list()) return "list";
  if (is_namespace()) return "Namespace";
  if (is_dict()) return "dict";
  return "function";
}

const Value* DictData::Find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void DictData::Set(const std::string& key, Value value) {
  for (auto& [k, v] : items) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(key, std::move(value));
}

Value CallArgs::Get(size_t pos, std::string_view name) const {
  if (pos < args.size()) return args[pos];
  for (const auto& [k, v] : kwargs) {
    if (k == name) return v;
  }
  return Value();
}

void CallArgs::Check(std::string_view what, size_t max_positional,
                     std::initializer_list<std::string_view> names) const {
  if (args.size() > max_positional) {
    ThrowRuntime(absl::StrCat(std::string(what), "() takes at most ", max_positional,
                              " positional arguments but ", args.size(), " were given"));
  }
  for (const auto& [k, v] : kwargs) {
    bool known = false;
    for (std::string_view n : names) known = known || n == k;
    if (!known)
      ThrowRuntime(
          absl::StrCat(std::string(what), "() got an unexpected keyword argument '", k, "'"));
  }
}

}  // namespace muserve::jinja
