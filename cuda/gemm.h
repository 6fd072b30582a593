// GEMMs of the CUDA backend through cuBLASLt: activations x weight^T with
// bf16 / f16 inputs and fp32 accumulation (CUBLAS_COMPUTE_32F), the layout
// every projection of the layer graph has.
//
// Row-major terms (the project's): out[M, N] = a[M, K] . w[N, K]^T (+ bias),
// where w is a checkpoint matrix as stored, [out_features, in_features]. In
// cuBLASLt's column-major terms that is out^T = w . a^T with w transposed
// (op A = T) and nothing else moved, so no weight is ever re-laid out.
//
// One GemmRunner per stream, used from one thread at a time. Algorithms come
// from cuBLASLt's heuristic and are cached per shape (dtypes, M, N, K, leading
// dimensions, bias, beta, and the pointers' alignments, which decide which
// kernels may run) so that a step's GEMMs cost no heuristic query after the
// first of each shape; the workspace is allocated once, so a GEMM is
// capturable in a CUDA graph once its shape has run outside the capture.
// The cache keeps every shape seen (a few hundred bytes of descriptors
// each): at most the distinct batch sizes times the model's projections.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/api/dtype.h"

namespace muserve::cuda {

struct GemmArgs {
  DType dtype = DType::kBF16;      // a, w and bias: bf16 or f16
  DType out_dtype = DType::kBF16;  // dtype, or F32 (the LM head's logits)
  const void* a = nullptr;         // [M, K] row-major, leading dimension lda (>= K)
  int64_t lda = 0;
  const void* w = nullptr;  // [N, K] row-major, contiguous
  // nullptr or [N] of dtype, added in fp32 before rounding. Only with
  // out_dtype == dtype: cuBLASLt's bias epilogue reads the bias in the
  // output's type, so an F32 output would need an F32 bias (the LM head,
  // the one F32-output GEMM, has none).
  const void* bias = nullptr;
  void* out = nullptr;  // [M, N] row-major, leading dimension ldo (>= N)
  int64_t ldo = 0;
  int64_t m = 0, n = 0, k = 0;
  // out = a . w^T + beta * out (beta 0 or 1; 1 accumulates into out, for a
  // residual add fused into the GEMM). Requires out_dtype == F32 when 1.
  float beta = 0.0f;
};

// The host-side checks of Run: OK, or InvalidArgument "GemmArgs.<field>: ..."
// naming the first bad field (dtypes, null pointers, m >= 0, n and k > 0,
// lda >= k, ldo >= n, beta 0 or 1, beta 1 and bias against out_dtype).
// Pure: no device is touched.
absl::Status ValidateGemmArgs(const GemmArgs& args);

class GemmRunner {
 public:
  // A cuBLASLt handle bound to `stream` and a workspace of workspace_bytes
  // (32 MiB is what cuBLAS recommends for Hopper).
  static absl::StatusOr<std::unique_ptr<GemmRunner>> Create(cudaStream_t stream,
                                                            int64_t workspace_bytes = 32 << 20);
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  // Enqueues one GEMM on the stream. InvalidArgument naming the argument
  // for bad shapes, strides or dtypes (ValidateGemmArgs, nothing enqueued);
  // Internal with cuBLAS's status otherwise. m == 0 is a no-op.
  absl::Status Run(const GemmArgs& args);

 private:
  class Impl;
  explicit GemmRunner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace muserve::cuda
