// The GPU KV cache layout, shared by the cache write and attention kernels.
//
// Per layer, K and V each: [num_blocks, num_kv_heads, block_size, head_dim]
// of the cache dtype (bf16 / f16), row-major. A slot is
// block_id * block_size + offset (the step contract's slot_mapping); within a
// block, one KV head's keys are block_size contiguous rows of head_dim, so
// attention streams a head's block as one contiguous
// block_size * head_dim * 2-byte run (4 KiB for 16 x 128 bf16). This differs
// from the CPU backend's [slots, num_kv_heads * head_dim]; the tests convert.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define MUSERVE_HOST_DEVICE __host__ __device__
#else
#define MUSERVE_HOST_DEVICE
#endif

namespace muserve::cuda {

struct KvCacheLayout {
  int64_t num_kv_heads = 0;
  int64_t block_size = 0;
  int64_t head_dim = 0;

  // Element index of (slot, kv_head, d) in the layer's K (or V) pool.
  MUSERVE_HOST_DEVICE int64_t Index(int64_t slot, int64_t kv_head, int64_t d) const {
    const int64_t block = slot / block_size;
    const int64_t offset = slot % block_size;
    return ((block * num_kv_heads + kv_head) * block_size + offset) * head_dim + d;
  }
  // Elements of one block (all heads) of K or of V.
  MUSERVE_HOST_DEVICE int64_t BlockElements() const { return num_kv_heads * block_size * head_dim; }
};

}  // namespace muserve::cuda
