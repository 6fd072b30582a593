// Paged attention over the fp32 KV cache of one layer.
//
// Cache layout (per layer, for K and for V): [num_blocks * block_size slots,
// num_kv_heads * head_dim] row-major; slot = block_id * block_size + offset.
// A query at position p of a sequence attends to that sequence's keys at
// positions [max(0, p - sliding_window + 1), p], read in increasing position
// order through its block table: the result does not depend on block size,
// physical block order, prefill chunking or the rest of the batch.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "engine/api/step_batch.h"
#include "engine/cpu/kernel_table.h"
#include "engine/cpu/thread_pool.h"

namespace muserve::cpu {

struct AttentionShape {
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t block_size = 0;
  std::optional<int64_t> sliding_window;
};

// Copies the K and V rows of every new token to its slot.
// k, v: [T, kv_heads * head_dim]; k_cache, v_cache: the layer's pools.
void WriteKv(const StepBatch& batch, const AttentionShape& shape, const float* k, const float* v,
             float* k_cache, float* v_cache);

// out[t, h * head_dim ...] = softmax(q_t,h . K^T * scale) V for every new
// token t and head h (GQA: head h reads KV head h / (heads / kv_heads)).
// q: [T, heads * head_dim]; out: same shape. `token_sequence`: at least T
// entries, the index of each token's sequence in batch.sequences. scores:
// per-worker scratch (one vector per pool worker), grown on the calling
// thread when shorter than AttentionScratchFloats(shape, longest attended
// span); reserved up front, PagedAttention does not allocate.
void PagedAttention(ThreadPool& pool, const KernelTable& kernels, const StepBatch& batch,
                    const std::vector<int32_t>& token_sequence, const AttentionShape& shape,
                    const float* q, const float* k_cache, const float* v_cache,
                    std::vector<std::vector<float>>& scores, float* out);

// Scratch floats per worker for queries attending to at most `max_span`
// positions (min(context_len, sliding_window)); SIZE_MAX, which no allocation
// satisfies, if that overflows.
size_t AttentionScratchFloats(const AttentionShape& shape, int64_t max_span);

}  // namespace muserve::cpu
