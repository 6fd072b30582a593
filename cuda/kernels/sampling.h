// The sampling kernel of GpuSampler (cuda/gpu_sampler.h): one block per row
// samples a token from the row's fp32 logits as engine/sampling's Sampler
// does, with the row's parameters and lists packed by PackSamplerInputs.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "cuda/sampler_pack.h"

namespace muserve::cuda {

// For each row r < rows: samples logits[r, :] ([rows, vocab_size] fp32,
// device; penalties and bans are written into it) with params[r] into
// results[r]. `lists` is SamplerPack::lists on the device; `saved` has
// SamplerPack::saved_floats floats of scratch. All device pointers.
absl::Status LaunchSampleRows(float* logits, int32_t rows, int32_t vocab_size,
                              const SamplerRowParams* params, const int32_t* lists, float* saved,
                              SamplerRowResult* results, cudaStream_t stream);

}  // namespace muserve::cuda
