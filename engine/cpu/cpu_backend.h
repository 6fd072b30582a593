// CpuBackend: the model's forward pass on the CPU, fp32 arithmetic over
// F32/F16/BF16 weights that stay in the mmapped checkpoint (converted on the
// fly inside the kernels). It is also the reference the CUDA backend is
// tested against, so its results are deterministic:
//  - every output element is computed by one fixed sequence of operations,
//    whatever the batch composition, the chunking of a prefill, the block
//    size, the physical block order or the thread count; a sequence's logits
//    are therefore bit-identical alone or inside any mixed batch.
// It also runs one rank of a tensor-parallel group (CreateRank): the rank's
// slices of the weights (engine/model/shard.h), its own KV heads, and the
// group's collectives inside Forward. A group's results are deterministic
// for its size, but differ from one rank's in the last bits (partial sums of
// the o and down projections are added in a different grouping).
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/statusor.h"
#include "engine/api/backend.h"
#include "engine/model/weights.h"
#include "engine/parallel/communicator.h"

namespace muserve {

struct CpuBackendOptions {
  int32_t num_threads = 1;
  int32_t block_size = 16;
  // Number of KV blocks in the pool; each holds block_size tokens of K and V
  // (fp32) for every layer and KV head.
  int32_t num_blocks = 0;
  // Most tokens (summed query_len) one Forward step may carry. Every per-step
  // buffer (activations, attention scratch) is allocated for it in Create, so
  // that Forward never allocates; a larger step is InvalidArgument.
  // Activations take 4 * (3 * hidden + 2 * q_size + 2 * kv_size +
  // 2 * intermediate + head_dim) bytes per token (TinyLlama-1.1B: 86 KiB, so
  // 690 MiB of address space at 8192; pages are committed as rows are used).
  int32_t max_num_batched_tokens = 8192;

  absl::Status Validate() const;
};

// Bytes of fp32 KV cache one token occupies across all layers, for a config
// that passed Validate(), on each rank of a tensor-parallel group of
// `tensor_parallel_size` (valid for the config: see shard.h), which holds
// only its share of the KV heads (at least one); saturates at INT64_MAX
// (which no pool can hold) if the product overflows.
int64_t CpuKvBytesPerToken(const ModelConfig& config, int32_t tensor_parallel_size = 1);

class CpuBackend final : public Backend {
 public:
  // Takes ownership of the loaded model (its mapped checkpoint backs the
  // weights). Allocates the KV pool and every per-step buffer up front:
  // ResourceExhausted if they do not fit in memory.
  static absl::StatusOr<std::unique_ptr<CpuBackend>> Create(LoadedModel model,
                                                            const CpuBackendOptions& options);
  // Rank communicator.rank() of a tensor-parallel group of
  // communicator.size(): its slices of `model`, its own KV pool of
  // options.num_blocks blocks over its KV heads, and its own
  // options.num_threads threads. `model` (whose mapping the group's ranks
  // share) and `communicator` must outlive the backend. Every rank of the
  // group must be given the same batches, each rank's Forward on its own
  // thread. Rank 0 writes the full logits (the vocabulary slices are
  // gathered to it); the other ranks check the size of `logits` as rank 0
  // does, so that they accept or reject a batch alike, but never read or
  // write its elements (they may be given rank 0's own buffer). InvalidArgument when the model does
  // not split over the group's size (the message names the size at fault).
  static absl::StatusOr<std::unique_ptr<CpuBackend>> CreateRank(const LoadedModel& model,
                                                                Communicator& communicator,
                                                                const CpuBackendOptions& options);
  ~CpuBackend() override;

  const ModelConfig& config() const override;
  KvCacheGeometry kv_cache() const override;
  int32_t max_num_batched_tokens() const override;
  // Performs no heap allocation for a valid batch: every buffer comes from
  // Create (only error paths allocate, for their messages). A rank of a group
  // is the exception: it grows its logits buffers to the most sampled rows
  // seen so far.
  absl::Status Forward(const StepBatch& batch, std::span<float> logits) override;

 private:
  class Impl;
  explicit CpuBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace muserve
