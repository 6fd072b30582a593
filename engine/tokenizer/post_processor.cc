#include "engine/tokenizer/post_processor.h"

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"

namespace muserve::tokenizer_internal {
namespace {

using Affixes = std::pair<std::vector<int32_t>, std::vector<int32_t>>;

// A template id: an integer naming a token of the vocabulary. Checked here
// because `tokenizers` passes these ids through unchecked, and an id the
// model has no embedding row for must not reach the engine.
absl::StatusOr<int32_t> GetTokenId(const Json& id, const std::string& path,
                                   const IsKnownId& is_known_id) {
  if (!id.is_number_integer()) return FieldError(path, "must hold integers");
  const int64_t value = id.get<int64_t>();
  // Unsigned values past INT64_MAX read back negative, so are rejected too.
  if (value < 0 || value > INT32_MAX || !is_known_id(static_cast<int32_t>(value))) {
    return FieldError(
        path, absl::StrCat("holds ", id.dump(), ", which is not a token id of the vocabulary"));
  }
  return static_cast<int32_t>(value);
}

absl::StatusOr<Affixes> ParseTemplate(const Json& json, const std::string& path,
                                      const IsKnownId& is_known_id) {
  auto single = json.find("single");
  if (single == json.end() || !single->is_array()) {
    return FieldError(FieldPath(path, "single"), "must be an array");
  }
  auto specials = json.find("special_tokens");
  if (specials == json.end() || !specials->is_object()) {
    return FieldError(FieldPath(path, "special_tokens"), "must be an object");
  }
  Affixes affixes;
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const Json& item = (*single)[i];
    const std::string item_path = absl::StrCat(path, ".single[", i, "]");
    if (item.contains("Sequence")) {
      if (seen_sequence) return FieldError(item_path, "repeats the sequence");
      seen_sequence = true;
      continue;
    }
    auto special = item.find("SpecialToken");
    if (special == item.end() || !special->is_object()) {
      return FieldError(item_path, "must be a Sequence or a SpecialToken");
    }
    auto name = GetString(*special, "id", item_path + ".SpecialToken");
    if (!name.ok()) return name.status();
    auto entry = specials->find(*name);
    if (entry == specials->end()) {
      return FieldError(FieldPath(path, "special_tokens"), absl::StrCat("lacks '", *name, "'"));
    }
    auto ids = entry->find("ids");
    if (ids == entry->end() || !ids->is_array()) {
      return FieldError(absl::StrCat(path, ".special_tokens['", *name, "'].ids"),
                        "must be an array");
    }
    for (const Json& id : *ids) {
      absl::StatusOr<int32_t> token_id =
          GetTokenId(id, absl::StrCat(path, ".special_tokens['", *name, "'].ids"), is_known_id);
      if (!token_id.ok()) return token_id.status();
      (seen_sequence ? affixes.second : affixes.first).push_back(*token_id);
    }
  }
  if (!seen_sequence) return FieldError(FieldPath(path, "single"), "lacks the sequence $A");
  return affixes;
}

// BertProcessing / RobertaProcessing: {"cls": ["[CLS]", 101], "sep": [...]}.
absl::StatusOr<Affixes> ParseClsSep(const Json& json, const std::string& path,
                                    const IsKnownId& is_known_id) {
  Affixes affixes;
  for (const char* key : {"cls", "sep"}) {
    auto it = json.find(key);
    if (it == json.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer()) {
      return FieldError(FieldPath(path, key), "must be [token, id]");
    }
    absl::StatusOr<int32_t> token_id = GetTokenId((*it)[1], FieldPath(path, key), is_known_id);
    if (!token_id.ok()) return token_id.status();
    (std::string(key) == "cls" ? affixes.first : affixes.second).push_back(*token_id);
  }
  return affixes;
}

absl::StatusOr<Affixes> ParseAffixes(const Json& json, const std::string& path,
                                     const IsKnownId& is_known_id) {
  absl::StatusOr<std::string> type = GetType(json, path);
  if (!type.ok()) return type.status();
  if (*type == "TemplateProcessing") return ParseTemplate(json, path, is_known_id);
  if (*type == "ByteLevel") return Affixes();
  if (*type == "BertProcessing" || *type == "RobertaProcessing")
    return ParseClsSep(json, path, is_known_id);
  if (*type == "Sequence") {
    auto it = json.find("processors");
    if (it == json.end() || !it->is_array()) {
      return FieldError(FieldPath(path, "processors"), "must be an array");
    }
    // Each processor wraps the output of the previous one.
    Affixes total;
    for (size_t i = 0; i < it->size(); ++i) {
      auto step = ParseAffixes((*it)[i], absl::StrCat(path, ".processors[", i, "]"), is_known_id);
      if (!step.ok()) return step.status();
      total.first.insert(total.first.begin(), step->first.begin(), step->first.end());
      total.second.insert(total.second.end(), step->second.begin(), step->second.end());
    }
    return total;
  }
  return UnsupportedType(path, *type);
}

}  // namespace

void PostProcessor::Apply(std::vector<int32_t>* ids) const {
  ids->insert(ids->begin(), items_[0].begin(), items_[0].end());
  ids->insert(ids->end(), items_[1].begin(), items_[1].end());
}

absl::StatusOr<std::unique_ptr<PostProcessor>> ParsePostProcessor(const Json& json,
                                                                  const std::string& path,
                                                                  const IsKnownId& is_known_id) {
  auto affixes = ParseAffixes(json, path, is_known_id);
  if (!affixes.ok()) return affixes.status();
  return std::make_unique<PostProcessor>(
      std::vector<std::vector<int32_t>>{std::move(affixes->first), std::move(affixes->second)});
}

}  // namespace muserve::tokenizer_internal
