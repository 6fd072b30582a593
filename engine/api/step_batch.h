// The step contract between the scheduler and the engine (see DESIGN.md):
// one forward pass over a flattened mixed batch of prefill chunks and decode
// tokens, with the KV cache addressed through per-sequence block tables.
#pragma once

#include <cstdint>
#include <vector>

namespace muserve {

// One sequence's part of a step.
// Invariants (checked by Backend::Forward, which returns InvalidArgument):
//   query_start + query_len <= StepBatch::tokens.size(), slices tile [0, T) in order;
//   query_len >= 1; context_len >= query_len;
//   the new tokens occupy positions [context_len - query_len, context_len);
//   block_table holds at least ceil(context_len / block_size) valid block ids.
struct StepSequence {
  int32_t query_start = 0;           // first row of this sequence in the step's T tokens
  int32_t query_len = 0;             // number of new tokens this step
  int32_t context_len = 0;           // tokens in the KV cache after this step
  std::vector<int32_t> block_table;  // logical block i -> physical block id
  bool sample = false;               // true when its last new token's logits are needed
};

struct StepBatch {
  std::vector<int32_t> tokens;        // [T] token ids of all new tokens
  std::vector<int32_t> positions;     // [T] absolute position of each new token
  std::vector<int64_t> slot_mapping;  // [T] physical KV slot: block_id * block_size + offset
  std::vector<StepSequence> sequences;

  int32_t num_tokens() const { return static_cast<int32_t>(tokens.size()); }
  int32_t num_sampled() const {
    int32_t n = 0;
    for (const auto& s : sequences) n += s.sample ? 1 : 0;
    return n;
  }
};

}  // namespace muserve
