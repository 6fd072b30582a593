#include "cuda/kernels/device_types.cuh"
#include "cuda/kernels/launch_status.h"
#include "cuda/kernels/rope.h"

namespace muserve::cuda {
namespace {

constexpr int kThreads = 128;

// One block per row. The row's cos / sin are computed once into shared
// memory (dynamic, head_dim / 2 of each), then every (head, i) pair of x
// and y is rotated by one thread.
template <class T>
__global__ void RopeKernel(T* __restrict__ x, int64_t ld_x, int num_heads, T* __restrict__ y,
                           int64_t ld_y, int num_y_heads, int head_dim,
                           const int32_t* __restrict__ positions,
                           const float* __restrict__ inv_freq) {
  extern __shared__ float cos_sin[];  // [2, head_dim / 2]
  const int half = head_dim / 2;
  const int64_t r = blockIdx.x;
  const float pos = static_cast<float>(positions[r]);
  for (int i = threadIdx.x; i < half; i += kThreads) {
    const float angle = pos * inv_freq[i];
    cos_sin[i] = cosf(angle);
    cos_sin[half + i] = sinf(angle);
  }
  __syncthreads();
  const int pairs_x = num_heads * half;
  const int pairs = pairs_x + num_y_heads * half;
  for (int p = threadIdx.x; p < pairs; p += kThreads) {
    const bool in_x = p < pairs_x;
    const int q = in_x ? p : p - pairs_x;
    const int h = q / half;
    const int i = q % half;
    T* v = in_x ? x + r * ld_x + h * head_dim : y + r * ld_y + h * head_dim;
    const float c = cos_sin[i];
    const float s = cos_sin[half + i];
    const float a = ToFloat(v[i]);
    const float b = ToFloat(v[i + half]);
    // The CPU's operation order: products rounded to fp32, then one add each
    // (no fused multiply-add, which would round differently).
    const float a_cos = __fmul_rn(a, c);
    const float b_sin = __fmul_rn(b, s);
    const float b_cos = __fmul_rn(b, c);
    const float a_sin = __fmul_rn(a, s);
    v[i] = FromFloat<T>(__fadd_rn(a_cos, -b_sin));
    v[i + half] = FromFloat<T>(__fadd_rn(b_cos, a_sin));
  }
}

}  // namespace

absl::Status LaunchRope(DType dtype, void* x, int64_t ld_x, int64_t num_heads, void* y,
                        int64_t ld_y, int64_t num_y_heads, int64_t head_dim,
                        const int32_t* positions, const float* inv_freq, int64_t rows,
                        cudaStream_t stream) {
  constexpr const char* kName = "LaunchRope";
  if (absl::Status s = CheckHalfDType(dtype, kName); !s.ok()) return s;
  MUSERVE_KERNEL_ARG(rows >= 0 && rows <= INT32_MAX, kName);
  MUSERVE_KERNEL_ARG(head_dim > 0 && head_dim % 2 == 0 && head_dim <= 1024, kName);
  MUSERVE_KERNEL_ARG(num_heads >= 0 && num_y_heads >= 0, kName);
  MUSERVE_KERNEL_ARG((num_heads + num_y_heads) * head_dim <= INT32_MAX, kName);
  MUSERVE_KERNEL_ARG(ld_x >= num_heads * head_dim, kName);
  MUSERVE_KERNEL_ARG(y == nullptr ? num_y_heads == 0 : ld_y >= num_y_heads * head_dim, kName);
  if (rows == 0 || num_heads + num_y_heads == 0) return absl::OkStatus();
  const size_t shared_bytes = static_cast<size_t>(head_dim) * sizeof(float);
  DispatchHalfType(dtype, [&](auto t) {
    using T = decltype(t);
    RopeKernel<T><<<static_cast<unsigned>(rows), kThreads, shared_bytes, stream>>>(
        static_cast<T*>(x), ld_x, static_cast<int>(num_heads), static_cast<T*>(y), ld_y,
        static_cast<int>(num_y_heads), static_cast<int>(head_dim), positions, inv_freq);
    return 0;
  });
  return LaunchResult(kName);
}

}  // namespace muserve::cuda
