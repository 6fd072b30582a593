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

// engine/sampling/sampler.h; a backend that samples on its device needs them.
struct SampleInput;
struct SampledToken;

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

  // True for a backend that samples where its logits are (CudaBackend): the
  // engine loop then calls ForwardSample instead of Forward and a host
  // Sampler, so that logits never travel to the host.
  virtual bool samples_on_device() const { return false; }
  // Forward, then samples the logits row of the i-th sampled sequence with
  // inputs[i] into out[i] (both of batch.num_sampled() elements), with
  // Sampler's semantics. Only for samples_on_device(); others return
  // Unimplemented.
  virtual absl::Status ForwardSample(const StepBatch& batch, std::span<const SampleInput> inputs,
                                     std::span<SampledToken> out) {
    (void)batch;
    (void)inputs;
    (void)out;
    return absl::UnimplementedError("this backend samples on the host: call Forward");
  }
};

}  // namespace muserve
