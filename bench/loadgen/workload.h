// What a benchmark sends: conversations of one or more turns. A single-prompt
// workload is conversations of one turn each. Every turn of a conversation
// sends the whole history so far (the server keeps no state), which is what
// makes the prefix cache matter for later turns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/loadgen/distribution.h"

namespace muserve::loadgen {

// How a conversation's turns go over the API.
enum class ApiKind {
  // Generate with token ids: the history is the previous prompt ids plus the
  // reply's ids, then this turn's ids (exact lengths; no chat template).
  kGenerateTokens,
  // Generate with a text prompt (single-turn only).
  kGenerateText,
  // Chat: the history is the messages so far, the replies as the model wrote them.
  kChat,
};

struct TurnSpec {
  std::vector<int32_t> token_ids;  // kGenerateTokens
  std::string text;                // kGenerateText: the prompt; kChat: the user message
  int32_t max_tokens = 1;          // >= 1; sent with ignore_eos, so the reply has this many
};

// Invariant: `turns` is non-empty; `system` is set only for kChat.
struct ConversationSpec {
  ApiKind api = ApiKind::kGenerateTokens;
  std::optional<std::string> system;
  std::vector<TurnSpec> turns;
};

struct Workload {
  std::vector<ConversationSpec> conversations;  // non-empty
  std::string description;                      // one line for the report
};

struct SyntheticOptions {
  LengthDistribution input_len = LengthDistribution::Fixed(128);   // per turn
  LengthDistribution output_len = LengthDistribution::Fixed(128);  // per turn
  int32_t turns = 1;
  int64_t conversations = 1;
  // From the server's ModelInfo: prompt ids are drawn uniformly from
  // [0, vocab_size) leaving out `eos_token_ids`, and a whole conversation must
  // fit `max_context` tokens.
  int32_t vocab_size = 0;
  int32_t max_context = 0;
  std::vector<int32_t> eos_token_ids;
  uint64_t seed = 0;
};

// INVALID_ARGUMENT naming --input-len, --output-len or --turns when the
// longest conversation these options can produce would not fit max_context.
absl::StatusOr<Workload> SyntheticWorkload(const SyntheticOptions& options);

}  // namespace muserve::loadgen
