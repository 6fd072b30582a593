// Workloads from a file of prompts or conversations: JSON Lines, one entry
// per line, or (as ShareGPT is distributed) one JSON array of entries. Each
// entry is one of
//   {"prompt": "text", "max_tokens": 64}                 one Generate call
//   {"messages": [{"role": "user", "content": "..."}, ...]}
//   {"conversations": [{"from": "human", "value": "..."}, ...]}   (ShareGPT)
// A conversation becomes Chat turns: one per user message (roles "user" /
// "human"), with a leading "system" message kept. The recorded reply after a
// user message ("assistant" / "gpt" / "chatgpt" / "bard" / "bing") gives that
// turn's max_tokens, counted with the server's tokenizer; without one (and
// for prompts without "max_tokens") it is drawn from --output-len. The
// model's own replies, not the recorded ones, go into the history.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "bench/loadgen/distribution.h"
#include "bench/loadgen/workload.h"

namespace muserve::loadgen {

// Tokens of `text` as the server's tokenizer counts them.
using TokenCounter = std::function<absl::StatusOr<int32_t>(const std::string& text)>;

struct DatasetOptions {
  std::filesystem::path path;
  LengthDistribution output_len = LengthDistribution::Fixed(128);
  // Entries to read at most (the driver cycles through fewer).
  int64_t max_entries = 1000;
  // Turns are dropped from the end of a conversation (and an entry whose
  // first turn does not fit is skipped) so that prompt plus reply fit.
  int32_t max_context = 0;
  uint64_t seed = 0;
};

// Errors name the file, the line (or array index) and the key at fault.
// Entries without a user message are skipped (ShareGPT has some); it is an
// error when none is left.
absl::StatusOr<Workload> LoadDataset(const DatasetOptions& options, const TokenCounter& count);

}  // namespace muserve::loadgen
