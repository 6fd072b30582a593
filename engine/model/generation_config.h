// The model's end-of-sequence token ids: config.json's eos_token_id plus
// generation_config.json's, which instruction-tuned checkpoints use to list
// every end-of-turn token (Llama 3.1: <|eot_id|> and <|eom_id|> besides
// <|end_of_text|>).
#pragma once

#include <filesystem>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/api/model_config.h"

namespace muserve {

// In first-seen order without duplicates. generation_config.json is optional;
// a malformed one is InvalidArgument naming the file and field.
absl::StatusOr<std::vector<int32_t>> LoadEosTokenIds(const std::filesystem::path& model_dir,
                                                     const ModelConfig& config);

}  // namespace muserve
