// Embedding gather: the first activations of a step, written into the fp32
// residual stream.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "engine/api/dtype.h"

namespace muserve::cuda {

// out[r, :] = fp32(table[tokens[r] - vocab_begin, :]) for r < rows, or zeros
// when tokens[r] is outside [vocab_begin, vocab_begin + vocab_rows): a
// tensor-parallel rank embeds only its vocabulary range and the ranks' rows
// are summed (as cpu::Embed).
// tokens: [rows] int32; table: [vocab_rows, hidden] `dtype` (bf16 / f16),
// row-major; out: [rows, hidden] fp32. All device pointers.
absl::Status LaunchEmbedding(DType dtype, const int32_t* tokens, int64_t rows, const void* table,
                             int64_t vocab_rows, int64_t hidden, int64_t vocab_begin, float* out,
                             cudaStream_t stream);

}  // namespace muserve::cuda
