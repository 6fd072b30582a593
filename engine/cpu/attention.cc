#include "engine/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace muserve::cpu {

void WriteKv(const StepBatch& batch, const AttentionShape& shape, const float* k, const float* v,
             float* k_cache, float* v_cache) {
  const int64_t kv_size = shape.num_kv_heads * shape.head_dim;
  for (int64_t t = 0; t < batch.num_tokens(); ++t) {
    const int64_t slot = batch.slot_mapping[t];
    std::memcpy(k_cache + slot * kv_size, k + t * kv_size, kv_size * sizeof(float));
    std::memcpy(v_cache + slot * kv_size, v + t * kv_size, kv_size * sizeof(float));
  }
}

namespace {

// The heads of one KV-head group for one token: scores against the cached
// keys in position order (block by block, all heads of the group at once),
// softmax per head, then the values accumulated in position order.
// scores: [group * (count + 1)] scratch.
void AttendGroup(const KernelTable& kernels, const StepSequence& seq, int64_t position,
                 const AttentionShape& shape, int64_t kv_head, const float* q, const float* k_cache,
                 const float* v_cache, float scale, float* scores, float* out) {
  const int64_t kv_size = shape.num_kv_heads * shape.head_dim;
  const int64_t hd = shape.head_dim;
  const int64_t group = shape.num_heads / shape.num_kv_heads;
  const int64_t bs = shape.block_size;
  int64_t first = 0;
  if (shape.sliding_window) first = std::max<int64_t>(0, position - *shape.sliding_window + 1);
  const int64_t count = position + 1 - first;
  // Calls fn(j, row offset of position j's slot, n) for runs of n positions
  // that are contiguous in one block, in increasing position order.
  auto for_each_run = [&](auto fn) {
    for (int64_t j = first; j <= position;) {
      const int64_t offset = j % bs;
      const int64_t n = std::min(bs - offset, position + 1 - j);
      fn(j, (static_cast<int64_t>(seq.block_table[j / bs]) * bs + offset) * kv_size, n);
      j += n;
    }
  };
  for_each_run([&](int64_t j, int64_t row, int64_t n) {
    kernels.strided_dot(q, hd, group, k_cache + row + kv_head * hd, kv_size, n, hd,
                        scores + (j - first), count);
  });
  for (int64_t h = 0; h < group; ++h) {
    float* s = scores + h * count;
    float max_score = -INFINITY;
    for (int64_t j = 0; j < count; ++j) {
      s[j] *= scale;
      max_score = std::max(max_score, s[j]);
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < count; ++j) {
      s[j] = std::exp(s[j] - max_score);
      sum += s[j];
    }
    for (int64_t j = 0; j < count; ++j) s[j] /= sum;
  }
  float* column = scores + group * count;  // one position's probabilities, per head
  std::fill(out, out + group * hd, 0.0f);
  for_each_run([&](int64_t j, int64_t row, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t h = 0; h < group; ++h) column[h] = scores[h * count + (j - first) + i];
      kernels.rank1_update(column, group, v_cache + row + i * kv_size + kv_head * hd, out, hd, hd);
    }
  });
}

}  // namespace

size_t AttentionScratchFloats(const AttentionShape& shape, int64_t max_span) {
  // AttendGroup's layout: [group][count] probabilities plus a [group] column.
  const int64_t group = shape.num_heads / shape.num_kv_heads;
  int64_t floats = 0;
  if (__builtin_mul_overflow(group, max_span + 1, &floats)) return SIZE_MAX;
  return static_cast<size_t>(floats);
}

void PagedAttention(ThreadPool& pool, const KernelTable& kernels, const StepBatch& batch,
                    const std::vector<int32_t>& token_sequence, const AttentionShape& shape,
                    const float* q, const float* k_cache, const float* v_cache,
                    std::vector<std::vector<float>>& scores, float* out) {
  const int64_t kv_heads = shape.num_kv_heads;
  const int64_t group = shape.num_heads / kv_heads;
  const int64_t q_size = shape.num_heads * shape.head_dim;
  // transformers: scaling = head_dim ** -0.5 (a python float, applied in fp32).
  const float scale = static_cast<float>(std::pow(static_cast<double>(shape.head_dim), -0.5));
  int64_t max_span = 0;
  for (const auto& s : batch.sequences) {
    int64_t span = s.context_len;
    if (shape.sliding_window) span = std::min(span, *shape.sliding_window);
    max_span = std::max(max_span, span);
  }
  // Grown here, on the calling thread, so that no worker allocates.
  const size_t scratch = AttentionScratchFloats(shape, max_span);
  for (std::vector<float>& sc : scores)
    if (sc.size() < scratch) sc.resize(scratch);
  pool.ParallelFor(batch.num_tokens() * kv_heads, [&](int worker, int64_t begin, int64_t end) {
    std::vector<float>& sc = scores[worker];
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i / kv_heads;
      const int64_t g = i % kv_heads;
      const StepSequence& seq = batch.sequences[token_sequence[t]];
      const int64_t offset = t * q_size + g * group * shape.head_dim;
      AttendGroup(kernels, seq, batch.positions[t], shape, g, q + offset, k_cache, v_cache, scale,
                  sc.data(), out + offset);
    }
  });
}

}  // namespace muserve::cpu
