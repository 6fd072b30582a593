#include "cuda/kernels/device_types.cuh"
#include "cuda/kernels/embedding.h"
#include "cuda/kernels/launch_status.h"

namespace muserve::cuda {
namespace {

constexpr int kThreads = 256;

// One block per row; threads stride over the hidden dimension.
template <class T>
__global__ void EmbeddingKernel(const int32_t* __restrict__ tokens, const T* __restrict__ table,
                                int64_t vocab_rows, int64_t hidden, int64_t vocab_begin,
                                float* __restrict__ out) {
  const int64_t r = blockIdx.x;
  const int64_t row = static_cast<int64_t>(tokens[r]) - vocab_begin;
  float* dst = out + r * hidden;
  if (row < 0 || row >= vocab_rows) {
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = 0.0f;
    return;
  }
  const T* src = table + row * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = ToFloat(src[i]);
}

}  // namespace

absl::Status LaunchEmbedding(DType dtype, const int32_t* tokens, int64_t rows, const void* table,
                             int64_t vocab_rows, int64_t hidden, int64_t vocab_begin, float* out,
                             cudaStream_t stream) {
  constexpr const char* kName = "LaunchEmbedding";
  if (absl::Status s = CheckHalfDType(dtype, kName); !s.ok()) return s;
  MUSERVE_KERNEL_ARG(rows >= 0 && rows <= INT32_MAX, kName);
  MUSERVE_KERNEL_ARG(hidden > 0 && vocab_rows > 0, kName);
  if (rows == 0) return absl::OkStatus();
  DispatchHalfType(dtype, [&](auto t) {
    using T = decltype(t);
    EmbeddingKernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        tokens, static_cast<const T*>(table), vocab_rows, hidden, vocab_begin, out);
    return 0;
  });
  return LaunchResult(kName);
}

}  // namespace muserve::cuda
