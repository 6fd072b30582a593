// Writing the new tokens' keys and values into the paged cache
// (layout: kv_cache_layout.h) through the step's slot mapping.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "cuda/kernels/kv_cache_layout.h"
#include "engine/api/dtype.h"

namespace muserve::cuda {

// For each token t < rows with slot_mapping[t] >= 0, and kv head h, d < head_dim:
//   k_cache[layout.Index(slot, h, d)] = k[t * ld_k + h * head_dim + d], same for v.
// A negative slot is skipped (a padding row of a fixed-size batch, such as a
// CUDA graph's). k, v: [rows] rows of stride ld_k / ld_v `dtype`; slot_mapping:
// [rows] int64; k_cache, v_cache: the layer's pools. Device pointers.
absl::Status LaunchKvCacheWrite(DType dtype, const void* k, int64_t ld_k, const void* v,
                                int64_t ld_v, const int64_t* slot_mapping, int64_t rows,
                                const KvCacheLayout& layout, void* k_cache, void* v_cache,
                                cudaStream_t stream);

}  // namespace muserve::cuda
