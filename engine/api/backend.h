// Backend: runs the model's forward pass over a StepBatch. Implementations:
// CpuBackend (engine/cpu) and CudaBackend (cuda/). A backend owns the weights
// and the paged KV cache memory; the scheduler owns the block bookkeeping.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "engine/api/model_config.h"
#include "engine/api/step_batch.h"

namespace muserve {

// Shape of the paged KV cache: per layer, num_blocks blocks of block_size
// tokens, each token holding K and V for every KV head.
struct KvCacheGeometry {
  int32_t block_size = 16;
  int32_t num_blocks = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual const ModelConfig& config() const = 0;
  virtual KvCacheGeometry kv_cache() const = 0;
  // The most tokens one Forward accepts (buffers are sized for it at start-up).
  virtual int32_t max_num_batched_tokens() const = 0;

  // Runs one forward pass: writes K/V of every new token to its slot, and the
  // logits of each sequence with `sample == true`, in sequence order, into
  // `logits` as [batch.num_sampled() x config().vocab_size] row-major fp32.
  // Returns InvalidArgument (and writes nothing) if the batch breaks the
  // StepBatch invariants or `logits` has the wrong size.
  virtual absl::Status Forward(const StepBatch& batch, std::span<float> logits) = 0;
};

}  // namespace muserve
