// Checks a StepBatch against the invariants in step_batch.h before a backend
// touches any state, so a malformed batch can never corrupt the KV cache.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "engine/api/model_config.h"
#include "engine/api/step_batch.h"

namespace muserve::cpu {

// InvalidArgument naming the first broken rule: array sizes, slices that do
// not tile [0, T) in order, query_len < 1, context_len < query_len or beyond
// max_position_embeddings, positions not [context_len - query_len, context_len),
// token ids outside the vocabulary, block tables too short or naming blocks
// outside [0, num_blocks), an attended span (min(context_len, sliding_window))
// larger than the pool, slots outside the pool or not the slot the block
// table gives for the token's position, and a logits buffer whose size is not
// num_sampled * vocab_size.
absl::Status ValidateStepBatch(const StepBatch& batch, const ModelConfig& config,
                               int32_t block_size, int32_t num_blocks, size_t logits_size);

}  // namespace muserve::cpu
