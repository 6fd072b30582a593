#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda/cuda_status.h"
#include "cuda/kernels/convert.h"
#include "cuda/kernels/launch_status.h"

namespace muserve::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

// The conversions of engine/api/dtype.h on bits, ported as they are, so the
// device rounds every value (NaN payloads, subnormals, ties) as the host
// does. The float arithmetic is spelled with __fmul_rn / __fadd_rn so that
// no contraction into an FMA changes a rounding.
__device__ __forceinline__ float Bf16BitsToF32(uint16_t bits) {
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}

__device__ __forceinline__ uint16_t F32ToBf16Bits(float value) {
  uint32_t bits = __float_as_uint(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

__device__ __forceinline__ float F16BitsToF32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    const float magnitude = __fmul_rn(static_cast<float>(mantissa), 0x1p-24f);
    return __uint_as_float(sign | __float_as_uint(magnitude));
  }
  if (exponent == 0x1f) {
    const uint32_t quiet = mantissa != 0 ? 0x00400000u : 0u;
    return __uint_as_float(sign | 0x7f800000u | quiet | (mantissa << 13));
  }
  return __uint_as_float(sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13));
}

__device__ __forceinline__ uint16_t F32ToF16Bits(float value) {
  const float scale_to_inf = 0x1.0p+112f;
  const float scale_to_zero = 0x1.0p-110f;
  float base = __fmul_rn(__fmul_rn(fabsf(value), scale_to_inf), scale_to_zero);
  const uint32_t w = __float_as_uint(value);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xff000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = __fadd_rn(__uint_as_float((bias >> 1) + 0x07800000u), base);
  const uint32_t result_bits = __float_as_uint(base);
  const uint32_t exp_bits = (result_bits >> 13) & 0x00007c00u;
  const uint32_t mantissa_bits = result_bits & 0x00000fffu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

// Element types by their storage: float for F32, uint16_t bits for the halves.
template <DType D>
struct Storage {
  using Type = uint16_t;
};
template <>
struct Storage<DType::kF32> {
  using Type = float;
};

template <DType D>
__device__ __forceinline__ float LoadAsF32(typename Storage<D>::Type x) {
  if constexpr (D == DType::kF32) {
    return x;
  } else if constexpr (D == DType::kBF16) {
    return Bf16BitsToF32(x);
  } else {
    return F16BitsToF32(x);
  }
}

template <DType D>
__device__ __forceinline__ typename Storage<D>::Type StoreFromF32(float x) {
  if constexpr (D == DType::kF32) {
    return x;
  } else if constexpr (D == DType::kBF16) {
    return F32ToBf16Bits(x);
  } else {
    return F32ToF16Bits(x);
  }
}

// Grid-stride over the elements. Every conversion goes through fp32, which
// holds bf16 and f16 exactly, so a half -> half conversion is the host's
// F32ToX(XToF32(x)).
template <DType Src, DType Dst>
__global__ void ConvertKernel(const typename Storage<Src>::Type* src,
                              typename Storage<Dst>::Type* dst, int64_t elements) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < elements;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = StoreFromF32<Dst>(LoadAsF32<Src>(src[i]));
  }
}

template <DType Src, DType Dst>
void LaunchConvertKernel(const void* src, void* dst, int64_t elements, cudaStream_t stream) {
  const int64_t blocks = std::min(BlocksFor(elements, kThreads), kMaxBlocks);
  ConvertKernel<Src, Dst><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      static_cast<const typename Storage<Src>::Type*>(src),
      static_cast<typename Storage<Dst>::Type*>(dst), elements);
}

template <DType Dst>
void LaunchConvertTo(DType src_dtype, const void* src, void* dst, int64_t elements,
                     cudaStream_t stream) {
  switch (src_dtype) {
    case DType::kF32:
      return LaunchConvertKernel<DType::kF32, Dst>(src, dst, elements, stream);
    case DType::kF16:
      return LaunchConvertKernel<DType::kF16, Dst>(src, dst, elements, stream);
    case DType::kBF16:
      return LaunchConvertKernel<DType::kBF16, Dst>(src, dst, elements, stream);
  }
}

__device__ __forceinline__ uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

template <DType D>
__global__ void FillRandomKernel(typename Storage<D>::Type* dst, int64_t elements, uint64_t seed,
                                 float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < elements;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t bits = SplitMix64(seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ull);
    // u = top 24 bits / 2^24 and 2u - 1 are exact in fp32; one rounding in
    // the product, one in the store.
    const float u = __fmul_rn(static_cast<float>(bits >> 40), 0x1p-24f);
    const float unit = __fadd_rn(__fmul_rn(2.0f, u), -1.0f);
    dst[i] = StoreFromF32<D>(__fmul_rn(scale, unit));
  }
}

template <DType D>
void LaunchFillRandomKernel(void* dst, int64_t elements, uint64_t seed, float scale,
                            cudaStream_t stream) {
  const int64_t blocks = std::min(BlocksFor(elements, kThreads), kMaxBlocks);
  FillRandomKernel<D><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      static_cast<typename Storage<D>::Type*>(dst), elements, seed, scale);
}

}  // namespace

absl::Status LaunchConvert(DType src_dtype, const void* src, DType dst_dtype, void* dst,
                           int64_t elements, cudaStream_t stream) {
  constexpr const char* kName = "LaunchConvert";
  if (absl::Status s = CheckHalfDType(dst_dtype, kName); !s.ok()) return s;
  MUSERVE_KERNEL_ARG(elements >= 0, kName);
  if (elements == 0) return absl::OkStatus();
  MUSERVE_KERNEL_ARG(src != nullptr && dst != nullptr, kName);
  if (src_dtype == dst_dtype) {
    return ToStatus(cudaMemcpyAsync(dst, src, static_cast<size_t>(elements) * DTypeSize(dst_dtype),
                                    cudaMemcpyDeviceToDevice, stream),
                    "LaunchConvert: cudaMemcpyAsync");
  }
  if (dst_dtype == DType::kBF16) {
    LaunchConvertTo<DType::kBF16>(src_dtype, src, dst, elements, stream);
  } else {
    LaunchConvertTo<DType::kF16>(src_dtype, src, dst, elements, stream);
  }
  return LaunchResult(kName);
}

absl::Status LaunchFillRandom(DType dtype, void* dst, int64_t elements, uint64_t seed, float scale,
                              cudaStream_t stream) {
  constexpr const char* kName = "LaunchFillRandom";
  MUSERVE_KERNEL_ARG(elements >= 0, kName);
  MUSERVE_KERNEL_ARG(std::isfinite(scale) && scale >= 0.0f, kName);
  if (elements == 0) return absl::OkStatus();
  MUSERVE_KERNEL_ARG(dst != nullptr, kName);
  switch (dtype) {
    case DType::kF32:
      LaunchFillRandomKernel<DType::kF32>(dst, elements, seed, scale, stream);
      break;
    case DType::kF16:
      LaunchFillRandomKernel<DType::kF16>(dst, elements, seed, scale, stream);
      break;
    case DType::kBF16:
      LaunchFillRandomKernel<DType::kBF16>(dst, elements, seed, scale, stream);
      break;
  }
  return LaunchResult(kName);
}

}  // namespace muserve::cuda
