#include <algorithm>

#include "absl/strings/str_cat.h"
#include "cuda/kernels/paged_attention.h"

namespace muserve::cuda {

absl::Status AttentionDims::Validate() const {
  if (num_kv_heads < 1 || num_heads < num_kv_heads || num_heads % num_kv_heads != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "attention: num_heads ", num_heads, " is not a multiple of num_kv_heads ", num_kv_heads));
  if (group() > kMaxTileRows)
    return absl::InvalidArgumentError(
        absl::StrCat("attention: ", group(), " query heads per KV head, more than ", kMaxTileRows));
  if (head_dim != 16 && head_dim != 24 && head_dim != 32 && head_dim != 64 && head_dim != 128)
    return absl::InvalidArgumentError(
        absl::StrCat("attention: head_dim must be 16, 24, 32, 64 or 128, got ", head_dim));
  if (block_size < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("attention: block_size must be >= 1, got ", block_size));
  if (sliding_window < 0)
    return absl::InvalidArgumentError(
        absl::StrCat("attention: sliding_window must be >= 0, got ", sliding_window));
  return absl::OkStatus();
}

int64_t AttentionPlan::WorkspaceBytes(int64_t num_tokens, const AttentionDims& dims) const {
  if (num_splits <= 1) return 0;
  const int64_t rows = num_tokens * dims.num_heads;
  return num_splits * rows * (dims.head_dim + 1) * static_cast<int64_t>(sizeof(float));
}

absl::StatusOr<AttentionPlan> PlanPagedAttention(std::span<const int32_t> query_lens,
                                                 std::span<const int32_t> context_lens,
                                                 const AttentionDims& dims, int32_t num_sms,
                                                 int32_t max_splits, int32_t min_chunk) {
  if (absl::Status s = dims.Validate(); !s.ok()) return s;
  if (query_lens.size() != context_lens.size())
    return absl::InvalidArgumentError(absl::StrCat("attention plan: ", query_lens.size(),
                                                   " query_lens but ", context_lens.size(),
                                                   " context_lens"));
  if (max_splits < 1 || min_chunk < kKeyTile)
    return absl::InvalidArgumentError("attention plan: max_splits >= 1 and min_chunk >= 32");
  AttentionPlan plan;
  plan.tokens_per_tile = std::max(1, kMaxTileRows / dims.group());
  int64_t max_span = 0;
  for (size_t s = 0; s < query_lens.size(); ++s) {
    const int32_t q = query_lens[s];
    const int32_t c = context_lens[s];
    if (q < 1 || c < q)
      return absl::InvalidArgumentError(absl::StrCat("attention plan: sequence ", s,
                                                     " has query_len ", q, " and context_len ", c,
                                                     "; need 1 <= query_len <= context_len"));
    for (int32_t b = 0; b < q; b += plan.tokens_per_tile) {
      plan.tile_sequence.push_back(static_cast<int32_t>(s));
      plan.tile_query_begin.push_back(b);
    }
    // Key positions a tile may touch span at most the whole context.
    max_span = std::max<int64_t>(max_span, c);
  }
  const int64_t blocks = static_cast<int64_t>(plan.num_tiles()) * dims.num_kv_heads;
  const int64_t target = 2 * static_cast<int64_t>(std::max(num_sms, 1));
  if (blocks < target && max_span >= 2 * static_cast<int64_t>(min_chunk)) {
    const int64_t want =
        std::min<int64_t>({(target + blocks - 1) / blocks, max_splits, max_span / min_chunk});
    int64_t chunk = (max_span + want - 1) / want;
    chunk = (chunk + kKeyTile - 1) / kKeyTile * kKeyTile;
    plan.kv_chunk = static_cast<int32_t>(chunk);
    plan.num_splits = static_cast<int32_t>((max_span + chunk - 1) / chunk);
  }
  return plan;
}

absl::StatusOr<AttentionPlan> PlanFixedDecode(int32_t num_sequences, int32_t max_span,
                                              const AttentionDims& dims, int32_t num_sms,
                                              int32_t max_splits, int32_t min_chunk) {
  if (num_sequences < 1 || max_span < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("decode plan: num_sequences and max_span must be >= 1, got ", num_sequences,
                     " and ", max_span));
  // The plan of num_sequences decodes that all attend to max_span keys.
  const std::vector<int32_t> query_lens(static_cast<size_t>(num_sequences), 1);
  const std::vector<int32_t> context_lens(static_cast<size_t>(num_sequences), max_span);
  return PlanPagedAttention(query_lens, context_lens, dims, num_sms, max_splits, min_chunk);
}

}  // namespace muserve::cuda
