// Value: the dynamic value type of the Jinja interpreter, modelled on the
// Python objects that jinja2 templates see (str, int, float, bool, None, list,
// tuple, dict, namespace, callables) plus Jinja's default `Undefined`.
//
// Lists, dicts and namespaces are shared by reference, as in Python, so that
// `{% set ns.x = 1 %}` is visible through every alias of `ns`. Dicts keep
// insertion order (Python 3.7+ semantics) and have string keys only: chat
// template inputs are JSON, and templates never build non-string keys.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "nlohmann/json.hpp"

namespace muserve::jinja {

// Raised inside the interpreter and turned into an absl::Status at the public
// boundary (Template::Compile / Template::Render); never escapes jinja/.
class JinjaError : public std::runtime_error {
 public:
  enum class Kind { kSyntax, kUnsupported, kRuntime, kRaised, kLimit };
  JinjaError(Kind kind, std::string message)
      : std::runtime_error(std::move(message)), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

[[noreturn]] void ThrowRuntime(const std::string& message);

class Value;
struct ListData;
struct DictData;
struct CallArgs;

struct Undefined {
  std::string name;  // what was looked up, for error messages
};
struct NoneType {};
using Callable = std::function<Value(CallArgs&)>;
struct CallableData {
  std::string name;
  Callable fn;
};

class Value {
 public:
  using ListPtr = std::shared_ptr<ListData>;
  using DictPtr = std::shared_ptr<DictData>;
  using CallablePtr = std::shared_ptr<CallableData>;

  Value() : v_(Undefined{}) {}
  Value(Undefined u) : v_(std::move(u)) {}       // NOLINT: implicit by design
  Value(NoneType) : v_(NoneType{}) {}            // NOLINT
  Value(bool b) : v_(b) {}                       // NOLINT
  Value(int64_t i) : v_(i) {}                    // NOLINT
  Value(int i) : v_(static_cast<int64_t>(i)) {}  // NOLINT
  Value(double d) : v_(d) {}                     // NOLINT
  Value(std::string s) : v_(std::move(s)) {}     // NOLINT
  Value(const char* s) : v_(std::string(s)) {}   // NOLINT
  Value(ListPtr l) : v_(std::move(l)) {}         // NOLINT
  Value(DictPtr d) : v_(std::move(d)) {}         // NOLINT
  Value(CallablePtr c) : v_(std::move(c)) {}     // NOLINT

  static Value None() { return Value(NoneType{}); }
  static Value NewList(std::vector<Value> items = {}, bool is_tuple = false);
  static Value NewDict(bool is_namespace = false);
  static Value Function(std::string name, Callable fn);
  // From nlohmann::json or nlohmann::ordered_json; the latter keeps object
  // key order, which `tojson` and dict iteration expose.
  template <typename Json>
  static Value FromJson(const Json& j);

  bool is_undefined() const { return std::holds_alternative<Undefined>(v_); }
  bool is_none() const { return std::holds_alternative<NoneType>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_float() const { return std::holds_alternative<double>(v_); }
  // Python's numbers.Number includes bool.
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_list() const { return std::holds_alternative<ListPtr>(v_); }
  bool is_dict() const { return std::holds_alternative<DictPtr>(v_); }
  bool is_callable() const { return std::holds_alternative<CallablePtr>(v_); }
  bool is_namespace() const;
  bool is_tuple() const;

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  ListData& as_list() const { return *std::get<ListPtr>(v_); }
  DictData& as_dict() const { return *std::get<DictPtr>(v_); }
  const CallableData& as_callable() const { return *std::get<CallablePtr>(v_); }
  const Undefined& as_undefined() const { return std::get<Undefined>(v_); }
  const ListPtr& list_ptr() const { return std::get<ListPtr>(v_); }

  // Integer value of an int or bool (Python: bool is a subclass of int).
  int64_t ToInt() const { return is_bool() ? (as_bool() ? 1 : 0) : as_int(); }
  // Numeric value of an int, bool or float.
  double ToDouble() const;

  // Python truthiness.
  bool Truthy() const;
  // Python type name ("str", "int", ...), for error messages.
  std::string TypeName() const;

 private:
  std::variant<Undefined, NoneType, bool, int64_t, double, std::string, ListPtr, DictPtr,
               CallablePtr>
      v_;
};

struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;
};

// An insertion-ordered string-keyed dict. Namespaces are dicts whose entries
// are read and written as attributes.
struct DictData {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;

  const Value* Find(std::string_view key) const;
  void Set(const std::string& key, Value value);
};

struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;

  // Python-style parameter binding: positional index `pos` or keyword `name`.
  // Returns the undefined value when neither was passed.
  Value Get(size_t pos, std::string_view name) const;
  // Fails when more positional arguments than `max_positional` were passed or
  // a keyword outside `names` was used; `what` names the callee.
  void Check(std::string_view what, size_t max_positional,
             std::initializer_list<std::string_view> names) const;
};

template <typename Json>
Value Value::FromJson(const Json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::boolean:
      return Value(j.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const uint64_t u = j.template get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value(j.template get<double>());
    case nlohmann::json::value_t::string:
      return Value(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(FromJson(e));
      return NewList(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Value d = NewDict();
      for (const auto& [k, e] : j.items()) d.as_dict().items.emplace_back(k, FromJson(e));
      return d;
    }
    default:
      return Value::None();
  }
}

}  // namespace muserve::jinja
