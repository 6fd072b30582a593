// Small helpers for reading tokenizer.json with errors that name the field
// (e.g. "pre_tokenizer.pretokenizers[1].behavior"). Used only while loading.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace muserve::tokenizer_internal {

using Json = nlohmann::json;

// "<path> <problem>" as InvalidArgument.
absl::Status FieldError(absl::string_view path, absl::string_view problem);
// "<path>.type '<type>' is not supported".
absl::Status UnsupportedType(absl::string_view path, absl::string_view type);
// "<path>.<key>".
std::string FieldPath(absl::string_view path, absl::string_view key);

// The object's "type" string (required).
absl::StatusOr<std::string> GetType(const Json& object, absl::string_view path);
// A required string field.
absl::StatusOr<std::string> GetString(const Json& object, absl::string_view key,
                                      absl::string_view path);
// An optional string field: nullopt when absent or null.
absl::StatusOr<std::optional<std::string>> GetOptionalString(const Json& object,
                                                             absl::string_view key,
                                                             absl::string_view path);
// An optional bool field with a default for absent or null.
absl::StatusOr<bool> GetBool(const Json& object, absl::string_view key, absl::string_view path,
                             bool default_value);
// An optional non-negative integer field with a default for absent or null.
absl::StatusOr<int64_t> GetInt(const Json& object, absl::string_view key, absl::string_view path,
                               int64_t default_value);

// A {"String": "..."} or {"Regex": "..."} pattern object.
struct PatternSpec {
  bool is_regex = false;
  std::string text;
};
absl::StatusOr<PatternSpec> GetPattern(const Json& object, absl::string_view key,
                                       absl::string_view path);

// The components of a {"type": "Sequence", "<key>": [...]} object, each
// parsed by `parse(json, path)` with its path ("<path>.<key>[i]") for errors.
template <typename Component, typename ParseFn>
absl::StatusOr<std::vector<std::unique_ptr<Component>>> ParseSequenceItems(const Json& object,
                                                                           absl::string_view key,
                                                                           const std::string& path,
                                                                           ParseFn parse) {
  const std::string items_path = FieldPath(path, key);
  auto it = object.find(std::string(key));
  if (it == object.end() || !it->is_array()) return FieldError(items_path, "must be an array");
  std::vector<std::unique_ptr<Component>> steps;
  for (size_t i = 0; i < it->size(); ++i) {
    absl::StatusOr<std::unique_ptr<Component>> step =
        parse((*it)[i], items_path + "[" + std::to_string(i) + "]");
    if (!step.ok()) return step.status();
    steps.push_back(*std::move(step));
  }
  return steps;
}

}  // namespace muserve::tokenizer_internal
