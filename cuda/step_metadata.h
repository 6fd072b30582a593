// The per-step arrays the CUDA forward pass reads on the device (token ids,
// positions, slots, the sequences' lengths and block tables, the attention
// plan's tiles, the sampled rows), packed on the host into one pinned
// buffer so that a step costs one host-to-device copy.
//
// The layout depends only on the capacities it is made for, so a CUDA
// graph captured over one layout reads every later step packed into it: a
// decode graph of B sequences uses StepLayout::For(B, B, B, stride) at
// capture and at every replay, with the batch padded to B sequences (a
// padding sequence decodes token 0 at position 0 from block 0 and writes no
// KV: its slot is -1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/api/step_batch.h"

namespace muserve::cuda {

struct AttentionPlan;

// Byte offsets of each array inside the packed buffer, each 16-byte aligned.
struct StepLayout {
  int32_t max_tokens = 0;     // rows of tokens / positions / slots
  int32_t max_sequences = 0;  // entries of context_lens and sample_rows (+ 1 of query_start)
  int32_t max_tiles = 0;      // entries of the attention plan's tile arrays
  int32_t block_stride = 0;   // block table entries per sequence

  int64_t tokens = 0;            // int32 [max_tokens]
  int64_t positions = 0;         // int32 [max_tokens]
  int64_t slots = 0;             // int64 [max_tokens]
  int64_t query_start = 0;       // int32 [max_sequences + 1]
  int64_t context_lens = 0;      // int32 [max_sequences]
  int64_t sample_rows = 0;       // int32 [max_sequences]: the sampled sequences' last rows
  int64_t tile_sequence = 0;     // int32 [max_tiles]
  int64_t tile_query_begin = 0;  // int32 [max_tiles]
  int64_t block_tables = 0;      // int32 [max_sequences, block_stride]
  int64_t bytes = 0;             // total

  static StepLayout For(int32_t max_tokens, int32_t max_sequences, int32_t max_tiles,
                        int32_t block_stride);
};

// Block table entries a step needs per sequence: the longest table's
// ceil(context_len / block_size).
int32_t BlockStrideFor(const StepBatch& batch, int32_t block_size);

// Packs `batch` (valid: ValidateStepBatch) and its attention `plan` into
// `out` (layout.bytes). Sequences from batch.sequences.size() up to
// `padded_sequences` are padding (see above), as are token rows after the
// batch's up to padded_sequences when padding. InvalidArgument when the
// batch exceeds the layout's capacities. Returns the number of sampled rows.
absl::StatusOr<int32_t> PackStep(const StepBatch& batch, const AttentionPlan& plan,
                                 int32_t padded_sequences, int32_t block_size,
                                 const StepLayout& layout, std::span<std::byte> out);

}  // namespace muserve::cuda
