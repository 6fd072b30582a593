#include "engine/model/generation_config.h"

#include <algorithm>
#include <string>

#include "engine/api/file_util.h"
#include "nlohmann/json.hpp"

namespace muserve {

absl::StatusOr<std::vector<int32_t>> LoadEosTokenIds(const std::filesystem::path& model_dir,
                                                     const ModelConfig& config) {
  std::vector<int32_t> ids;
  auto add = [&ids](int64_t id) {
    const auto token = static_cast<int32_t>(id);  // ParseTokenIdList bounds ids to int32
    if (std::find(ids.begin(), ids.end(), token) == ids.end()) ids.push_back(token);
  };
  for (int64_t id : config.eos_token_ids) add(id);
  const std::filesystem::path path = model_dir / "generation_config.json";
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (absl::IsNotFound(text.status())) return ids;
  if (!text.ok()) return text.status();
  const nlohmann::json json = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(path.string() + ": not a JSON object");
  }
  const auto it = json.find("eos_token_id");
  if (it == json.end()) return ids;
  auto extra = ParseTokenIdList(*it, "generation_config.json", "eos_token_id");
  if (!extra.ok()) return extra.status();
  for (int64_t id : *extra) add(id);
  return ids;
}

}  // namespace muserve
