// Paged attention over the GPU KV cache (kv_cache_layout.h) for a mixed
// varlen batch: prefill chunks (causal within the chunk, over all earlier
// context) and decode tokens, GQA, head_dim 64 or 128 (16, 24 and 32 too, for
// small test models), optional sliding window.
//
// Plan, then run (as flashinfer): PlanPagedAttention works on the host from
// the step's per-sequence lengths and fixes the launch shape: tiles of up to
// tokens_per_tile consecutive new tokens of one sequence, times the KV heads,
// times num_splits ranges of kv_chunk key positions. One thread block per
// (tile, KV head, split) stages 32 keys and values at a time in shared memory,
// shared by the tile's tokens and by the group's query heads, and keeps each
// query row's running max, sum and output in registers (online softmax, fp32).
// With one split the block writes the output; with several (long decodes,
// too few tiles to fill the GPU) each split writes a normalised partial
// output and its log-sum-exp to the workspace, and a reduction kernel merges
// them. The result, up to fp32 rounding order, is cpu::PagedAttention's: a
// query at position p attends to its sequence's keys at positions
// [max(0, p - sliding_window + 1), p].
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cuda/kernels/kv_cache_layout.h"
#include "engine/api/dtype.h"

namespace muserve::cuda {

// Query rows one thread block holds: tokens_per_tile * group <= kMaxTileRows.
inline constexpr int32_t kMaxTileRows = 16;
// Keys staged in shared memory per step of the key loop.
inline constexpr int32_t kKeyTile = 32;

struct AttentionDims {
  int32_t num_heads = 0;       // query heads (this rank's)
  int32_t num_kv_heads = 0;    // divides num_heads; group = num_heads / num_kv_heads <= 16
  int32_t head_dim = 0;        // 16, 24, 32, 64 or 128
  int32_t block_size = 0;      // KV cache block, tokens
  int32_t sliding_window = 0;  // 0: full attention

  absl::Status Validate() const;
  int32_t group() const { return num_heads / num_kv_heads; }
};

// The launch shape of one step. tile_sequence / tile_query_begin are to be
// copied to the device as given (int32 each, num_tiles() entries).
struct AttentionPlan {
  int32_t tokens_per_tile = 1;
  std::vector<int32_t> tile_sequence;     // [tiles] index of the tile's sequence
  std::vector<int32_t> tile_query_begin;  // [tiles] first new token of the tile, within its query
  int32_t num_splits = 1;                 // key ranges per (tile, KV head)
  int32_t kv_chunk = 0;  // key positions per split, a multiple of kKeyTile (num_splits > 1)

  int32_t num_tiles() const { return static_cast<int32_t>(tile_sequence.size()); }
  // Workspace bytes LaunchPagedAttention needs for `num_tokens` new tokens
  // (0 with one split): fp32 partial outputs and log-sum-exps per split.
  int64_t WorkspaceBytes(int64_t num_tokens, const AttentionDims& dims) const;
};

// Plans a step: query_lens[s] new tokens of sequence s, context_lens[s]
// tokens in its KV after the step (>= query_lens[s]). Splits the keys when the
// tiles times KV heads would occupy fewer than `num_sms` blocks (2 per SM is
// the aim) and the longest attended span is at least 2 * min_chunk positions;
// max_splits caps the workspace. InvalidArgument on bad lengths or dims.
absl::StatusOr<AttentionPlan> PlanPagedAttention(std::span<const int32_t> query_lens,
                                                 std::span<const int32_t> context_lens,
                                                 const AttentionDims& dims, int32_t num_sms,
                                                 int32_t max_splits = 32, int32_t min_chunk = 256);

// The plan of a decode-only step of `num_sequences` sequences whose attended
// spans are at most max_span positions, fixed whatever their actual lengths,
// for a CUDA graph captured once and replayed every step: one tile per
// sequence, and the split count PlanPagedAttention would choose for
// max_span (splits past a sequence's context find no key and weigh 0 in the
// merge). InvalidArgument on bad arguments.
absl::StatusOr<AttentionPlan> PlanFixedDecode(int32_t num_sequences, int32_t max_span,
                                              const AttentionDims& dims, int32_t num_sms,
                                              int32_t max_splits = 32, int32_t min_chunk = 256);

struct PagedAttentionArgs {
  DType dtype = DType::kBF16;  // q, caches and out
  AttentionDims dims;
  // The caches: [num_blocks, num_kv_heads, block_size, head_dim], 16-byte aligned.
  const void* k_cache = nullptr;
  const void* v_cache = nullptr;
  const void* q = nullptr;  // [T, num_heads, head_dim], rows q_stride apart
  int64_t q_stride = 0;     // elements between tokens' rows of q; 0: num_heads * head_dim
  void* out = nullptr;      // [T, num_heads, head_dim]
  int64_t num_tokens = 0;   // T
  const int32_t* query_start = nullptr;   // [S + 1] prefix sums of query_lens (device)
  const int32_t* context_lens = nullptr;  // [S] (device)
  const int32_t* block_tables = nullptr;  // [S, max_blocks_per_sequence] block ids (device)
  int32_t max_blocks_per_sequence = 0;
  const int32_t* tile_sequence = nullptr;     // the plan's, on the device
  const int32_t* tile_query_begin = nullptr;  // the plan's, on the device
  void* workspace = nullptr;  // plan.WorkspaceBytes(num_tokens, dims) bytes (device)
};

// Runs `plan` (from PlanPagedAttention with the same lengths and dims).
absl::Status LaunchPagedAttention(const PagedAttentionArgs& args, const AttentionPlan& plan,
                                  cudaStream_t stream);

}  // namespace muserve::cuda
