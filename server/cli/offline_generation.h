// Offline, in-process generation of one sequence: what `muserve generate`
// runs. It drives a Backend directly with a trivial block allocation (the
// sequence owns blocks 0..n-1); serving goes through the scheduler instead.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/sampling/sampler.h"
#include "engine/tokenizer/tokenizer.h"

namespace muserve::cli {

struct OfflineGenerationOptions {
  std::filesystem::path model_dir;
  std::string prompt;
  // Render the prompt as one user message through the chat template.
  bool chat = false;
  std::optional<std::string> system_prompt;            // only with chat
  std::optional<std::filesystem::path> chat_template;  // overrides tokenizer_config.json's
  int32_t max_tokens = 128;
  SamplingParams sampling;
  int32_t num_threads = 1;
  int32_t block_size = 16;
  // Prompt tokens per forward pass while prefilling.
  int32_t prefill_chunk = 512;
};

struct OfflineGenerationResult {
  std::vector<TokenId> prompt_ids;
  std::vector<TokenId> output_ids;
  std::string text;
  bool stopped_on_eos = false;
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// Generates up to max_tokens tokens, calling `on_text` with each piece of
// newly final text as it is produced. Errors name the offending file or flag.
absl::StatusOr<OfflineGenerationResult> RunOfflineGeneration(
    const OfflineGenerationOptions& options, const std::function<void(std::string_view)>& on_text);

}  // namespace muserve::cli
