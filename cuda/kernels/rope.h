// Rotary position embedding of the new tokens' queries and keys, in place.
//
// The inverse frequencies are the CPU backend's (cpu::RopeInverseFrequencies:
// default, linear and llama3 scaling, computed in fp32 as transformers does),
// copied to the device once; the angle pos * inv_freq[i] and its cos / sin
// are computed here in fp32 with the accurate cosf / sinf (angles reach
// positions x 1 rad, far outside the fast intrinsics' range).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "engine/api/dtype.h"

namespace muserve::cuda {

// For each row r < rows, head h < num_heads of x (then of y), i < head_dim / 2,
// with a = x[r, h, i], b = x[r, h, i + head_dim / 2] (rotate_half layout, as
// transformers' Llama and cpu::ApplyRope), c = cos(positions[r] * inv_freq[i]),
// s = sin(...):  a' = a c - b s,  b' = b c + a s  (fp32, rounded to `dtype`).
// x: rows of stride ld_x elements, heads of head_dim contiguous from the row
// start (queries); y: the same for the keys (num_y_heads; y may be nullptr).
// positions: [rows] int32; inv_freq: [head_dim / 2] fp32. Device pointers.
absl::Status LaunchRope(DType dtype, void* x, int64_t ld_x, int64_t num_heads, void* y,
                        int64_t ld_y, int64_t num_y_heads, int64_t head_dim,
                        const int32_t* positions, const float* inv_freq, int64_t rows,
                        cudaStream_t stream);

}  // namespace muserve::cuda
