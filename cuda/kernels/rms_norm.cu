#include "cuda/kernels/device_types.cuh"
#include "cuda/kernels/launch_status.h"
#include "cuda/kernels/rms_norm.h"

namespace muserve::cuda {
namespace {

constexpr int kThreads = 256;

// Sum of `value` over the block (kThreads threads); every thread gets it.
__device__ float BlockSum(float value) {
  __shared__ float warp_sums[kThreads / 32];
  __shared__ float total;
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = value;
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : 0.0f;
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    if (threadIdx.x == 0) total = v;
  }
  __syncthreads();
  return total;
}

// One block per row: pass 1 adds and sums squares, pass 2 normalises (the
// row is re-read from L1/L2, it was just written by this block).
template <class T>
__global__ void AddRmsNormKernel(float* __restrict__ residual, const T* __restrict__ add,
                                 const T* __restrict__ weight, int64_t n, float eps,
                                 T* __restrict__ out) {
  const int64_t r = blockIdx.x;
  float* x = residual + r * n;
  float squares = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    float v = x[i];
    if (add != nullptr) {
      v += ToFloat(add[r * n + i]);
      x[i] = v;
    }
    squares += v * v;
  }
  const float variance = BlockSum(squares) / static_cast<float>(n);
  const float scale = rsqrtf(variance + eps);
  T* o = out + r * n;
  for (int64_t i = threadIdx.x; i < n; i += kThreads)
    o[i] = FromFloat<T>(ToFloat(weight[i]) * (x[i] * scale));
}

}  // namespace

absl::Status LaunchAddRmsNorm(DType dtype, float* residual, const void* add, const void* weight,
                              int64_t rows, int64_t n, float eps, void* out, cudaStream_t stream) {
  constexpr const char* kName = "LaunchAddRmsNorm";
  if (absl::Status s = CheckHalfDType(dtype, kName); !s.ok()) return s;
  MUSERVE_KERNEL_ARG(rows >= 0 && rows <= INT32_MAX, kName);
  MUSERVE_KERNEL_ARG(n > 0, kName);
  MUSERVE_KERNEL_ARG(eps >= 0.0f, kName);
  if (rows == 0) return absl::OkStatus();
  DispatchHalfType(dtype, [&](auto t) {
    using T = decltype(t);
    AddRmsNormKernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        residual, static_cast<const T*>(add), static_cast<const T*>(weight), n, eps,
        static_cast<T*>(out));
    return 0;
  });
  return LaunchResult(kName);
}

}  // namespace muserve::cuda
