// Element-type conversion of checkpoint tensors on the device, and the
// pseudo-random fill of weights that exist only on the GPU.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "engine/api/dtype.h"

namespace muserve::cuda {

// dst[i] = src[i] as `dst_dtype` for i < elements. src: [elements] of
// `src_dtype` (F32, F16 or BF16); dst: [elements] of `dst_dtype` (F16 or
// BF16), not overlapping src. Bit for bit what the host conversions of
// engine/api/dtype.h give: round to nearest even into the normal and the
// subnormal range, overflow to inf, NaN kept NaN (quiet, payload kept where
// it fits). Same dtypes copy. Device pointers, element-aligned.
absl::Status LaunchConvert(DType src_dtype, const void* src, DType dst_dtype, void* dst,
                           int64_t elements, cudaStream_t stream);

// dst[i] = scale * (2u - 1) for i < elements, with u in [0, 1) from the top
// 24 bits of splitmix64(seed + i * golden ratio): a function of (seed, i)
// alone, so any launch geometry or device gives the same values. Rounded to
// `dtype` (F32, F16 or BF16) to nearest even, so |dst[i]| <= scale rounded.
absl::Status LaunchFillRandom(DType dtype, void* dst, int64_t elements, uint64_t seed, float scale,
                              cudaStream_t stream);

}  // namespace muserve::cuda
