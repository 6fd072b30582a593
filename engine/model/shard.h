// Megatron-style sharding of a Llama-family model over tensor-parallel ranks.
//
//   q/k/v, gate/up   split by output features (heads, intermediate): each rank
//                    owns whole heads, a contiguous row range of the
//                    checkpoint's [out, in] matrix; q/k/v biases follow;
//   o, down          split by input features: a column range of [out, in],
//                    so each rank computes a partial sum that the ranks
//                    all-reduce;
//   embedding, head  split by vocabulary (row ranges): each rank embeds the
//                    tokens of its range (zero rows elsewhere, then an
//                    all-reduce) and computes the logits of its range (then
//                    an all-gather);
//   norms            replicated.
// With fewer KV heads than ranks, each KV head is replicated on
// size / num_key_value_heads consecutive ranks, whose query heads all belong
// to that KV head's group.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/api/model_config.h"
#include "engine/model/weights.h"

namespace muserve {

// One rank's share of a model, as ranges of heads, intermediate features and
// vocabulary. Invariant (from ValidateTensorParallelSize): every range is
// non-empty and the ranks' ranges tile the whole (KV heads may be shared).
struct ShardLayout {
  int32_t rank = 0;
  int32_t size = 1;
  int64_t head_begin = 0, num_heads = 0;  // query heads
  int64_t kv_head_begin = 0, num_kv_heads = 0;
  int64_t intermediate_begin = 0, intermediate_size = 0;
  int64_t vocab_begin = 0, vocab_size = 0;

  // `full` with this rank's head, KV-head, intermediate and vocabulary counts:
  // the shapes of the rank's layer graph.
  ModelConfig LocalConfig(const ModelConfig& full) const;
};

// OK when `config` (validated) can be split over `size` ranks; otherwise
// InvalidArgument naming the size that does not divide ("num_attention_heads
// 14 is not divisible by tensor_parallel_size 4").
absl::Status ValidateTensorParallelSize(const ModelConfig& config, int32_t size);

// Rank `rank`'s layout; the errors of ValidateTensorParallelSize.
absl::StatusOr<ShardLayout> MakeShardLayout(const ModelConfig& config, int32_t rank, int32_t size);

// One rank's weights. Row ranges are views into the checkpoint mapping (no
// copy); column ranges (o, down) are copied row by row into `storage`, in the
// checkpoint's dtype: a rank reads only its own slices, and the full matrix is
// never materialised. `weights` has the local shapes of layout.LocalConfig()
// and points into the mapping and into `storage`: it stays valid while both
// live (moving a ShardWeights keeps the storage's heap blocks in place).
struct ShardWeights {
  ModelWeights weights;
  std::vector<std::vector<std::byte>> storage;
};

// `full` are the bound weights of the whole model (BindWeights).
absl::StatusOr<ShardWeights> ShardModelWeights(const ModelConfig& config, const ModelWeights& full,
                                               const ShardLayout& layout);

}  // namespace muserve
