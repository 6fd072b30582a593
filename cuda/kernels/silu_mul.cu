#include <algorithm>

#include "cuda/kernels/device_types.cuh"
#include "cuda/kernels/launch_status.h"
#include "cuda/kernels/silu_mul.h"

namespace muserve::cuda {
namespace {

constexpr int kThreads = 256;

// Grid-stride over rows * n elements.
template <class T>
__global__ void SiluMulKernel(const T* gate, const T* up, int64_t ld_in, int64_t rows, int64_t n,
                              T* out) {
  const int64_t total = rows * n;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / n;
    const int64_t i = e % n;
    const float g = ToFloat(gate[r * ld_in + i]);
    const float silu = g / (1.0f + expf(-g));
    out[e] = FromFloat<T>(silu * ToFloat(up[r * ld_in + i]));
  }
}

}  // namespace

absl::Status LaunchSiluMul(DType dtype, const void* gate, const void* up, int64_t ld_in,
                           int64_t rows, int64_t n, void* out, cudaStream_t stream) {
  constexpr const char* kName = "LaunchSiluMul";
  if (absl::Status s = CheckHalfDType(dtype, kName); !s.ok()) return s;
  MUSERVE_KERNEL_ARG(rows >= 0 && n > 0, kName);
  MUSERVE_KERNEL_ARG(ld_in >= n, kName);
  if (rows == 0) return absl::OkStatus();
  const int64_t blocks = std::min<int64_t>(BlocksFor(rows * n, kThreads), 65535);
  DispatchHalfType(dtype, [&](auto t) {
    using T = decltype(t);
    SiluMulKernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        static_cast<const T*>(gate), static_cast<const T*>(up), ld_in, rows, n,
        static_cast<T*>(out));
    return 0;
  });
  return LaunchResult(kName);
}

}  // namespace muserve::cuda
