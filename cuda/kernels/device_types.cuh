// Device-side element types of the kernels and their fp32 conversions.
// Activations, weights and the KV cache are bf16 or f16 (engine's DType);
// every kernel computes in fp32 and rounds once, to nearest even, on store.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/api/dtype.h"

namespace muserve::cuda {

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }

template <class T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float x) {
  return __float2half_rn(x);
}

// Calls fn(T{}) with T the device type of `dtype` (bf16 or f16; the caller
// has checked it with CheckHalfDType).
template <class Fn>
auto DispatchHalfType(DType dtype, Fn fn) {
  if (dtype == DType::kBF16) return fn(__nv_bfloat16{});
  return fn(__half{});
}

}  // namespace muserve::cuda
