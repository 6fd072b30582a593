#include "engine/cpu/step_validation.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace muserve::cpu {
namespace {

absl::Status ValidateSequence(const StepBatch& batch, const StepSequence& s, size_t index,
                              int64_t expected_start, const ModelConfig& config, int32_t block_size,
                              int32_t num_blocks) {
  // The message prefix is only formatted on failure: a valid batch costs no
  // allocation (Forward allocates nothing in steady state).
  auto error = [index](const auto&... parts) {
    return absl::InvalidArgumentError(absl::StrCat("sequence ", index, ": ", parts...));
  };
  if (s.query_start != expected_start)
    return error("query_start ", s.query_start, " does not follow the previous slice (expected ",
                 expected_start, ")");
  if (s.query_len < 1) return error("query_len ", s.query_len, " < 1");
  if (static_cast<int64_t>(s.query_start) + s.query_len > batch.num_tokens())
    return error("slice [", s.query_start, ", ", s.query_start + s.query_len, ") runs past the ",
                 batch.num_tokens(), " tokens");
  if (s.context_len < s.query_len)
    return error("context_len ", s.context_len, " < query_len ", s.query_len);
  if (s.context_len > config.max_position_embeddings)
    return error("context_len ", s.context_len, " exceeds max_position_embeddings ",
                 config.max_position_embeddings);
  const int64_t blocks_needed = (static_cast<int64_t>(s.context_len) + block_size - 1) / block_size;
  if (static_cast<int64_t>(s.block_table.size()) < blocks_needed)
    return error("block table holds ", s.block_table.size(), " blocks, context of ", s.context_len,
                 " tokens needs ", blocks_needed);
  for (int64_t b = 0; b < blocks_needed; ++b) {
    if (s.block_table[b] < 0 || s.block_table[b] >= num_blocks)
      return error("block id ", s.block_table[b], " at logical block ", b,
                   " is outside the pool of ", num_blocks);
  }
  // The keys a query attends to occupy distinct slots, so no valid sequence
  // attends to more positions than the pool holds; the backend's attention
  // scratch is sized on this bound.
  int64_t span = s.context_len;
  if (config.sliding_window) span = std::min(span, *config.sliding_window);
  if (span > static_cast<int64_t>(num_blocks) * block_size)
    return error("attends to ", span, " positions, more than the pool's ",
                 static_cast<int64_t>(num_blocks) * block_size, " slots");
  const int64_t first_position = s.context_len - s.query_len;
  for (int32_t i = 0; i < s.query_len; ++i) {
    const int64_t t = s.query_start + i;
    const int64_t position = first_position + i;
    if (batch.positions[t] != position)
      return error("token ", t, " has position ", batch.positions[t], ", expected ", position);
    if (batch.tokens[t] < 0 || batch.tokens[t] >= config.vocab_size)
      return error("token id ", batch.tokens[t], " at row ", t, " is outside the vocabulary of ",
                   config.vocab_size);
    const int64_t slot = batch.slot_mapping[t];
    if (slot < 0 || slot >= static_cast<int64_t>(num_blocks) * block_size)
      return error("slot ", slot, " of row ", t, " is outside the pool of ",
                   static_cast<int64_t>(num_blocks) * block_size, " slots");
    const int64_t expected_slot =
        static_cast<int64_t>(s.block_table[position / block_size]) * block_size +
        position % block_size;
    if (slot != expected_slot)
      return error("slot ", slot, " of row ", t, " is not the block table's slot ", expected_slot,
                   " for position ", position);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateStepBatch(const StepBatch& batch, const ModelConfig& config,
                               int32_t block_size, int32_t num_blocks, size_t logits_size) {
  const size_t T = batch.tokens.size();
  if (batch.positions.size() != T || batch.slot_mapping.size() != T)
    return absl::InvalidArgumentError(absl::StrCat("step batch has ", T, " tokens but ",
                                                   batch.positions.size(), " positions and ",
                                                   batch.slot_mapping.size(), " slots"));
  int64_t next = 0;
  for (size_t i = 0; i < batch.sequences.size(); ++i) {
    const StepSequence& s = batch.sequences[i];
    if (absl::Status st = ValidateSequence(batch, s, i, next, config, block_size, num_blocks);
        !st.ok())
      return st;
    next += s.query_len;
  }
  if (next != static_cast<int64_t>(T))
    return absl::InvalidArgumentError(
        absl::StrCat("sequence slices cover ", next, " of the ", T, " tokens"));
  const size_t expected_logits = static_cast<size_t>(batch.num_sampled()) * config.vocab_size;
  if (logits_size != expected_logits)
    return absl::InvalidArgumentError(absl::StrCat("logits buffer holds ", logits_size,
                                                   " floats, expected ", batch.num_sampled(), " x ",
                                                   config.vocab_size));
  return absl::OkStatus();
}

}  // namespace muserve::cpu
