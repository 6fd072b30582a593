#include "cuda/step_metadata.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "cuda/kernels/paged_attention.h"

namespace muserve::cuda {
namespace {

int64_t Align16(int64_t bytes) { return (bytes + 15) / 16 * 16; }

template <class T>
T* At(std::span<std::byte> out, int64_t offset) {
  return reinterpret_cast<T*>(out.data() + offset);
}

}  // namespace

StepLayout StepLayout::For(int32_t max_tokens, int32_t max_sequences, int32_t max_tiles,
                           int32_t block_stride) {
  StepLayout l;
  l.max_tokens = max_tokens;
  l.max_sequences = max_sequences;
  l.max_tiles = max_tiles;
  l.block_stride = block_stride;
  int64_t at = 0;
  auto take = [&](int64_t& field, int64_t bytes) {
    field = at;
    at += Align16(bytes);
  };
  // The int64 array first: every offset after it stays 16-byte aligned anyway.
  take(l.slots, int64_t{max_tokens} * 8);
  take(l.tokens, int64_t{max_tokens} * 4);
  take(l.positions, int64_t{max_tokens} * 4);
  take(l.query_start, (int64_t{max_sequences} + 1) * 4);
  take(l.context_lens, int64_t{max_sequences} * 4);
  take(l.sample_rows, int64_t{max_sequences} * 4);
  take(l.tile_sequence, int64_t{max_tiles} * 4);
  take(l.tile_query_begin, int64_t{max_tiles} * 4);
  take(l.block_tables, int64_t{max_sequences} * block_stride * 4);
  l.bytes = at;
  return l;
}

int32_t BlockStrideFor(const StepBatch& batch, int32_t block_size) {
  int32_t stride = 1;
  for (const StepSequence& s : batch.sequences)
    stride = std::max(stride, (s.context_len + block_size - 1) / block_size);
  return stride;
}

absl::StatusOr<int32_t> PackStep(const StepBatch& batch, const AttentionPlan& plan,
                                 int32_t padded_sequences, int32_t block_size,
                                 const StepLayout& layout, std::span<std::byte> out) {
  const auto S = static_cast<int32_t>(batch.sequences.size());
  const int32_t T = batch.num_tokens();
  const int32_t padded = std::max(padded_sequences, S);
  // Padding sequences add one token row each.
  const int32_t rows = T + (padded - S);
  if (rows > layout.max_tokens || padded > layout.max_sequences ||
      plan.num_tiles() > layout.max_tiles ||
      BlockStrideFor(batch, block_size) > layout.block_stride ||
      static_cast<int64_t>(out.size()) < layout.bytes)
    return absl::InvalidArgumentError(absl::StrCat(
        "step of ", rows, " token rows, ", padded, " sequences and ", plan.num_tiles(),
        " attention tiles exceeds the step layout (", layout.max_tokens, ", ", layout.max_sequences,
        ", ", layout.max_tiles, ", block stride ", layout.block_stride, ")"));
  int32_t* tokens = At<int32_t>(out, layout.tokens);
  int32_t* positions = At<int32_t>(out, layout.positions);
  int64_t* slots = At<int64_t>(out, layout.slots);
  std::copy(batch.tokens.begin(), batch.tokens.end(), tokens);
  std::copy(batch.positions.begin(), batch.positions.end(), positions);
  std::copy(batch.slot_mapping.begin(), batch.slot_mapping.end(), slots);
  std::fill(tokens + T, tokens + rows, 0);
  std::fill(positions + T, positions + rows, 0);
  std::fill(slots + T, slots + rows, int64_t{-1});

  int32_t* query_start = At<int32_t>(out, layout.query_start);
  int32_t* context_lens = At<int32_t>(out, layout.context_lens);
  int32_t* sample_rows = At<int32_t>(out, layout.sample_rows);
  int32_t* tables = At<int32_t>(out, layout.block_tables);
  int32_t num_sampled = 0;
  for (int32_t s = 0; s < padded; ++s) {
    int32_t* table = tables + static_cast<int64_t>(s) * layout.block_stride;
    if (s < S) {
      const StepSequence& seq = batch.sequences[s];
      query_start[s] = seq.query_start;
      context_lens[s] = seq.context_len;
      const int32_t used = (seq.context_len + block_size - 1) / block_size;
      std::copy_n(seq.block_table.begin(), used, table);
      std::fill(table + used, table + layout.block_stride, 0);
      if (seq.sample) sample_rows[num_sampled++] = seq.query_start + seq.query_len - 1;
    } else {
      // A padding sequence: row T + (s - S), one token, block 0.
      query_start[s] = T + (s - S);
      context_lens[s] = 1;
      std::fill(table, table + layout.block_stride, 0);
      sample_rows[num_sampled++] = T + (s - S);
    }
  }
  query_start[padded] = rows;
  std::copy(plan.tile_sequence.begin(), plan.tile_sequence.end(),
            At<int32_t>(out, layout.tile_sequence));
  std::copy(plan.tile_query_begin.begin(), plan.tile_query_begin.end(),
            At<int32_t>(out, layout.tile_query_begin));
  return num_sampled;
}

}  // namespace muserve::cuda
