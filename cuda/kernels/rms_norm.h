// Fused residual add + RMSNorm, the join between a layer's sublayers.
//
// The residual stream stays fp32 on the GPU (as the CPU backend keeps all of
// its activations), so that 2 x layers additions of bf16 sublayer outputs do
// not each round the stream to bf16; only what feeds a GEMM is bf16 / f16.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "engine/api/dtype.h"

namespace muserve::cuda {

// For each row r < rows:
//   if add != nullptr: residual[r, :] += fp32(add[r, :])  (written back)
//   out[r, :] = weight * (residual[r, :] * rsqrt(mean(residual[r, :]^2) + eps))
// in fp32, rounded once to `dtype` (LlamaRMSNorm, as cpu::RmsNorm).
// residual: [rows, n] fp32, in/out; add: [rows, n] `dtype` or nullptr (the
// first layer's input norm); weight: [n] `dtype`; out: [rows, n] `dtype`.
// All device pointers; add and out must not alias residual.
absl::Status LaunchAddRmsNorm(DType dtype, float* residual, const void* add, const void* weight,
                              int64_t rows, int64_t n, float eps, void* out, cudaStream_t stream);

}  // namespace muserve::cuda
