// SwiGLU's activation: silu(gate) * up, after the gate / up projections.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "engine/api/dtype.h"

namespace muserve::cuda {

// out[r, i] = silu(g) * up[r * ld_in + i] with g = gate[r * ld_in + i] and
// silu(g) = g / (1 + exp(-g)), in fp32 rounded to `dtype` (as cpu::SiluMul).
// For a fused [rows, 2n] gate_up GEMM output: gate = gate_up,
// up = gate_up + n, ld_in = 2n. out: [rows, n] `dtype`, may alias gate when
// ld_in == n. Device pointers.
absl::Status LaunchSiluMul(DType dtype, const void* gate, const void* up, int64_t ld_in,
                           int64_t rows, int64_t n, void* out, cudaStream_t stream);

}  // namespace muserve::cuda
