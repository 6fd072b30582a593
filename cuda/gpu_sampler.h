// Sampling on the GPU: the logits of a step stay on the device and only the
// chosen tokens (and their logprobs when asked for) come back, a few bytes
// per sequence instead of vocab_size floats.
//
// It reproduces engine/sampling's Sampler (sampler.h) exactly in semantics:
// penalties on the raw logits (repetition over prompt and output tokens,
// then frequency and presence over output tokens), banned tokens masked,
// greedy below kGreedyTemperature (argmax, lowest id on ties), else
// temperature, min_p, top_k, top_p (transformers' warpers: top_k keeps
// ties with the k-th logit, top_p keeps the crossing token, ties at the
// cut by lowest id), then an inverse-CDF draw in token-id order with the
// uniform the engine loop drew from the request's generator (SampleInput),
// and logprobs / top logprobs of log_softmax of the raw logits. The host
// and device differ only in fp32 summation order, so a draw can differ
// where the uniform falls within rounding of a CDF step.
//
// One block per row: a row is read a few times from L2 (max, sums, and ~32
// passes of a bitwise threshold search for top_k / top_p), no sort.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/sampling/sampler.h"

namespace muserve::cuda {

// Not thread-safe: one per stream (its pinned staging is reused per call).
// The kernel is cuda/kernels/sampling_kernel.cuh; the packing of the inputs
// cuda/sampler_pack.h.
class GpuSampler {
 public:
  // Buffers for up to max_rows rows of vocab_size logits and the per-row
  // parameters and penalty lists (grown on demand, outside graph capture).
  static absl::StatusOr<std::unique_ptr<GpuSampler>> Create(int32_t vocab_size, int32_t max_rows,
                                                            cudaStream_t stream);
  ~GpuSampler();
  GpuSampler(const GpuSampler&) = delete;
  GpuSampler& operator=(const GpuSampler&) = delete;

  // Samples row i of `logits` (device, [inputs.size(), vocab_size] fp32,
  // used as scratch) with inputs[i] into out[i]; waits for the stream, so
  // `out` is complete on return. InvalidArgument if inputs and out differ
  // in size or exceed max_rows, or for an input PackSamplerInputs rejects
  // (sampler_pack.h: null params / history, top_logprobs > 20, a sampled
  // row's uniform outside [0, 1)), naming the row and field.
  absl::Status Sample(float* logits, std::span<const SampleInput> inputs,
                      std::span<SampledToken> out);

 private:
  class Impl;
  explicit GpuSampler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace muserve::cuda
