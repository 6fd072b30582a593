// Gathering the sampled rows before the final norm and LM head: the engine
// computes logits only for the last new token of each sampled sequence.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"

namespace muserve::cuda {

// out[r, :] = in[rows[r], :] for r < num_rows; rows of `row_bytes` bytes
// (a multiple of 4), in: [*, row_bytes] with rows[r] in range (the caller's
// invariant: sampled rows index the step's tokens). rows: [num_rows] int32.
// Device pointers; out must not overlap in.
absl::Status LaunchGatherRows(const void* in, int64_t row_bytes, const int32_t* rows,
                              int64_t num_rows, void* out, cudaStream_t stream);

}  // namespace muserve::cuda
