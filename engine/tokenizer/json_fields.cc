#include "engine/tokenizer/json_fields.h"

#include "absl/strings/str_cat.h"

namespace muserve::tokenizer_internal {

absl::Status FieldError(absl::string_view path, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(path, " ", problem));
}

absl::Status UnsupportedType(absl::string_view path, absl::string_view type) {
  return absl::InvalidArgumentError(
      absl::StrCat(FieldPath(path, "type"), " '", type, "' is not supported"));
}

std::string FieldPath(absl::string_view path, absl::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}

absl::StatusOr<std::string> GetType(const Json& object, absl::string_view path) {
  if (!object.is_object()) return FieldError(path, "must be an object");
  return GetString(object, "type", path);
}

absl::StatusOr<std::string> GetString(const Json& object, absl::string_view key,
                                      absl::string_view path) {
  auto it = object.find(std::string(key));
  if (it == object.end() || !it->is_string()) {
    return FieldError(FieldPath(path, key), "must be a string");
  }
  return it->get<std::string>();
}

absl::StatusOr<std::optional<std::string>> GetOptionalString(const Json& object,
                                                             absl::string_view key,
                                                             absl::string_view path) {
  auto it = object.find(std::string(key));
  if (it == object.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return FieldError(FieldPath(path, key), "must be a string or null");
  return std::optional<std::string>(it->get<std::string>());
}

absl::StatusOr<bool> GetBool(const Json& object, absl::string_view key, absl::string_view path,
                             bool default_value) {
  auto it = object.find(std::string(key));
  if (it == object.end() || it->is_null()) return default_value;
  if (!it->is_boolean()) return FieldError(FieldPath(path, key), "must be a boolean");
  return it->get<bool>();
}

absl::StatusOr<int64_t> GetInt(const Json& object, absl::string_view key, absl::string_view path,
                               int64_t default_value) {
  auto it = object.find(std::string(key));
  if (it == object.end() || it->is_null()) return default_value;
  if (!it->is_number_integer() || it->get<int64_t>() < 0) {
    return FieldError(FieldPath(path, key), "must be a non-negative integer");
  }
  return it->get<int64_t>();
}

absl::StatusOr<PatternSpec> GetPattern(const Json& object, absl::string_view key,
                                       absl::string_view path) {
  const std::string field = FieldPath(path, key);
  auto it = object.find(std::string(key));
  if (it == object.end() || !it->is_object() || it->size() != 1) {
    return FieldError(field, "must be {\"String\": ...} or {\"Regex\": ...}");
  }
  if (auto s = it->find("String"); s != it->end() && s->is_string()) {
    return PatternSpec{false, s->get<std::string>()};
  }
  if (auto r = it->find("Regex"); r != it->end() && r->is_string()) {
    return PatternSpec{true, r->get<std::string>()};
  }
  return FieldError(field, "must be {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace muserve::tokenizer_internal
