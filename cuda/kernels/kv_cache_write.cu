#include "cuda/kernels/device_types.cuh"
#include "cuda/kernels/kv_cache_write.h"
#include "cuda/kernels/launch_status.h"

namespace muserve::cuda {
namespace {

constexpr int kThreads = 128;

// One block per token; threads stride over kv_heads * head_dim elements.
template <class T>
__global__ void KvCacheWriteKernel(const T* __restrict__ k, int64_t ld_k, const T* __restrict__ v,
                                   int64_t ld_v, const int64_t* __restrict__ slot_mapping,
                                   KvCacheLayout layout, T* __restrict__ k_cache,
                                   T* __restrict__ v_cache) {
  const int64_t t = blockIdx.x;
  const int64_t slot = slot_mapping[t];
  if (slot < 0) return;
  const int64_t width = layout.num_kv_heads * layout.head_dim;
  for (int64_t e = threadIdx.x; e < width; e += kThreads) {
    const int64_t index = layout.Index(slot, e / layout.head_dim, e % layout.head_dim);
    k_cache[index] = k[t * ld_k + e];
    v_cache[index] = v[t * ld_v + e];
  }
}

}  // namespace

absl::Status LaunchKvCacheWrite(DType dtype, const void* k, int64_t ld_k, const void* v,
                                int64_t ld_v, const int64_t* slot_mapping, int64_t rows,
                                const KvCacheLayout& layout, void* k_cache, void* v_cache,
                                cudaStream_t stream) {
  constexpr const char* kName = "LaunchKvCacheWrite";
  if (absl::Status s = CheckHalfDType(dtype, kName); !s.ok()) return s;
  MUSERVE_KERNEL_ARG(rows >= 0 && rows <= INT32_MAX, kName);
  MUSERVE_KERNEL_ARG(layout.num_kv_heads > 0 && layout.block_size > 0 && layout.head_dim > 0,
                     kName);
  MUSERVE_KERNEL_ARG(ld_k >= layout.num_kv_heads * layout.head_dim, kName);
  MUSERVE_KERNEL_ARG(ld_v >= layout.num_kv_heads * layout.head_dim, kName);
  if (rows == 0) return absl::OkStatus();
  DispatchHalfType(dtype, [&](auto t) {
    using T = decltype(t);
    KvCacheWriteKernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        static_cast<const T*>(k), ld_k, static_cast<const T*>(v), ld_v, slot_mapping, layout,
        static_cast<T*>(k_cache), static_cast<T*>(v_cache));
    return 0;
  });
  return LaunchResult(kName);
}

}  // namespace muserve::cuda
