#include <cmath>

#include "cuda/kernels/device_types.cuh"
#include "cuda/kernels/launch_status.h"
#include "cuda/kernels/paged_attention.h"

namespace muserve::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRowsPerWarp = kMaxTileRows / kWarps;
constexpr unsigned kFullMask = 0xffffffffu;

// What every block of one launch reads; pointers are device memory.
template <class T>
struct KernelParams {
  const T* q;        // [T, num_heads, D]
  const T* k_cache;  // [num_blocks, num_kv_heads, block_size, D]
  const T* v_cache;
  T* out;                       // [T, num_heads, D]
  float* partial_out;           // [num_splits, T, num_heads, D] when num_splits > 1
  float* partial_lse;           // [num_splits, T, num_heads]
  const int32_t* query_start;   // [S + 1]
  const int32_t* context_lens;  // [S]
  const int32_t* block_tables;  // [S, max_blocks]
  const int32_t* tile_sequence;
  const int32_t* tile_query_begin;
  int64_t num_tokens;
  int64_t q_stride;
  int32_t max_blocks;
  int32_t num_heads, num_kv_heads, block_size, sliding_window;
  int32_t tokens_per_tile, num_splits, kv_chunk;
  float scale;
};

__device__ __forceinline__ float WarpMax(float v) {
  for (int offset = 16; offset > 0; offset /= 2)
    v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}
__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

// One block per (tile, KV head, split). Rows r < tile tokens * group: token
// r / group of the tile, query head kv_head * group + r % group; warp w owns
// rows w, w + 4, w + 8, w + 12. Per key tile, lane j scores key j against
// each of its warp's rows, and each lane accumulates output dims
// lane + 32 k. Invariant at the top of the key loop: m[i] is the running max
// of row i's valid scores so far (-inf if none), l[i] the sum of
// exp(score - m[i]), acc[i] the sum of exp(score - m[i]) * v.
template <class T, int D>
__global__ void __launch_bounds__(kThreads) PagedAttentionKernel(KernelParams<T> p) {
  // 16-byte loads of K, V rows; D < 32 or not a multiple of 32 leaves some
  // lanes without an output dimension in the last slot.
  static_assert(D % 8 == 0 && D <= 128);
  constexpr int kDimsPerLane = (D + 31) / 32;
  constexpr int kVec = 16 / sizeof(T);
  __shared__ float q_s[kMaxTileRows][D];
  __shared__ float k_s[kKeyTile][D + 1];  // + 1: lanes read rows, no bank conflicts
  __shared__ float v_s[kKeyTile][D];

  const int tile = blockIdx.x;
  const int kv_head = blockIdx.y;
  const int split = blockIdx.z;
  const int seq = p.tile_sequence[tile];
  const int q_begin = p.tile_query_begin[tile];
  const int q_start = p.query_start[seq];
  const int q_len = p.query_start[seq + 1] - q_start;
  const int context = p.context_lens[seq];
  const int group = p.num_heads / p.num_kv_heads;
  const int tokens = min(p.tokens_per_tile, q_len - q_begin);
  const int rows = tokens * group;
  const int first_pos = context - q_len + q_begin;  // position of the tile's first token
  const int last_pos = first_pos + tokens - 1;

  // Keys any row of the tile attends to, within this split.
  int lo = p.sliding_window > 0 ? max(0, first_pos - p.sliding_window + 1) : 0;
  int hi = last_pos;
  if (p.num_splits > 1) {
    lo = max(lo, split * p.kv_chunk);
    hi = min(hi, (split + 1) * p.kv_chunk - 1);
  }

  for (int e = threadIdx.x; e < rows * D; e += kThreads) {
    const int r = e / D;
    const int64_t t = q_start + q_begin + r / group;
    const int h = kv_head * group + r % group;
    q_s[r][e % D] = ToFloat(p.q[t * p.q_stride + h * D + e % D]);
  }

  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kDimsPerLane];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int k = 0; k < kDimsPerLane; ++k) acc[i][k] = 0.0f;
  }

  const int32_t* block_table = p.block_tables + static_cast<int64_t>(seq) * p.max_blocks;
  for (int base = lo; base <= hi; base += kKeyTile) {
    __syncthreads();  // the previous tile is consumed (first pass: q_s is complete)
    // 16-byte loads: kVec elements of one key's row per thread.
    for (int e = threadIdx.x; e < kKeyTile * D / kVec; e += kThreads) {
      const int j = e / (D / kVec);
      const int d0 = e % (D / kVec) * kVec;
      const int pos = base + j;
      alignas(16) T k_raw[kVec];
      alignas(16) T v_raw[kVec];
      if (pos <= hi) {
        const int64_t block = block_table[pos / p.block_size];
        const int64_t index =
            ((block * p.num_kv_heads + kv_head) * p.block_size + pos % p.block_size) * D + d0;
        *reinterpret_cast<uint4*>(k_raw) = *reinterpret_cast<const uint4*>(p.k_cache + index);
        *reinterpret_cast<uint4*>(v_raw) = *reinterpret_cast<const uint4*>(p.v_cache + index);
      }
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        k_s[j][d0 + i] = pos <= hi ? ToFloat(k_raw[i]) : 0.0f;
        v_s[j][d0 + i] = pos <= hi ? ToFloat(v_raw[i]) : 0.0f;
      }
    }
    __syncthreads();
    const int key = base + lane;
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = warp + kWarps * i;
      if (r >= rows) continue;  // warp-uniform
      const int pos = first_pos + r / group;
      const bool valid =
          key <= hi && key <= pos && (p.sliding_window == 0 || key > pos - p.sliding_window);
      float s = -INFINITY;
      if (valid) {
        float dot = 0.0f;
#pragma unroll 16
        for (int d = 0; d < D; ++d) dot = fmaf(q_s[r][d], k_s[lane][d], dot);
        s = dot * p.scale;
      }
      const float m_new = fmaxf(m[i], WarpMax(s));
      if (m_new == -INFINITY) continue;  // no valid key for this row yet (warp-uniform)
      const float prob = valid ? expf(s - m_new) : 0.0f;
      const float correction = expf(m[i] - m_new);  // 0 when m[i] is -inf
      l[i] = l[i] * correction + WarpSum(prob);
#pragma unroll
      for (int k = 0; k < kDimsPerLane; ++k) acc[i][k] *= correction;
      for (int j = 0; j < kKeyTile; ++j) {
        const float pj = __shfl_sync(kFullMask, prob, j);
#pragma unroll
        for (int k = 0; k < kDimsPerLane; ++k)
          if (D % 32 == 0 || lane + 32 * k < D)
            acc[i][k] = fmaf(pj, v_s[j][lane + 32 * k], acc[i][k]);
      }
      m[i] = m_new;
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = warp + kWarps * i;
    if (r >= rows) continue;
    const int64_t t = q_start + q_begin + r / group;
    const int64_t row = t * p.num_heads + kv_head * group + r % group;
    const float inv_l = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
    if (p.num_splits == 1) {
#pragma unroll
      for (int k = 0; k < kDimsPerLane; ++k)
        if (D % 32 == 0 || lane + 32 * k < D)
          p.out[row * D + lane + 32 * k] = FromFloat<T>(acc[i][k] * inv_l);
    } else {
      const int64_t split_row = split * p.num_tokens * p.num_heads + row;
#pragma unroll
      for (int k = 0; k < kDimsPerLane; ++k)
        if (D % 32 == 0 || lane + 32 * k < D)
          p.partial_out[split_row * D + lane + 32 * k] = acc[i][k] * inv_l;
      if (lane == 0) p.partial_lse[split_row] = l[i] > 0.0f ? m[i] + logf(l[i]) : -INFINITY;
    }
  }
}

// One block of D threads per (token, head) row: merges the splits' normalised
// outputs weighted by exp(lse_s - max lse) (a split with no valid key has
// lse -inf and weight 0).
template <class T, int D>
__global__ void __launch_bounds__(D)
    MergeSplitsKernel(const float* __restrict__ partial_out, const float* __restrict__ partial_lse,
                      int num_splits, int64_t rows, T* __restrict__ out) {
  const int64_t row = blockIdx.x;
  const int d = threadIdx.x;
  float max_lse = -INFINITY;
  for (int s = 0; s < num_splits; ++s) max_lse = fmaxf(max_lse, partial_lse[s * rows + row]);
  float weight_sum = 0.0f, value = 0.0f;
  if (max_lse != -INFINITY) {
    for (int s = 0; s < num_splits; ++s) {
      const float w = expf(partial_lse[s * rows + row] - max_lse);
      weight_sum += w;
      value = fmaf(w, partial_out[(s * rows + row) * D + d], value);
    }
  }
  out[row * D + d] = FromFloat<T>(weight_sum > 0.0f ? value / weight_sum : 0.0f);
}

template <class T, int D>
absl::Status Launch(const PagedAttentionArgs& args, const AttentionPlan& plan,
                    cudaStream_t stream) {
  KernelParams<T> p;
  p.q = static_cast<const T*>(args.q);
  p.k_cache = static_cast<const T*>(args.k_cache);
  p.v_cache = static_cast<const T*>(args.v_cache);
  p.out = static_cast<T*>(args.out);
  const int64_t rows = args.num_tokens * args.dims.num_heads;
  p.partial_out = static_cast<float*>(args.workspace);
  p.partial_lse = p.partial_out == nullptr ? nullptr : p.partial_out + plan.num_splits * rows * D;
  p.query_start = args.query_start;
  p.context_lens = args.context_lens;
  p.block_tables = args.block_tables;
  p.tile_sequence = args.tile_sequence;
  p.tile_query_begin = args.tile_query_begin;
  p.num_tokens = args.num_tokens;
  p.q_stride = args.q_stride > 0 ? args.q_stride : int64_t{args.dims.num_heads} * D;
  p.max_blocks = args.max_blocks_per_sequence;
  p.num_heads = args.dims.num_heads;
  p.num_kv_heads = args.dims.num_kv_heads;
  p.block_size = args.dims.block_size;
  p.sliding_window = args.dims.sliding_window;
  p.tokens_per_tile = plan.tokens_per_tile;
  p.num_splits = plan.num_splits;
  p.kv_chunk = plan.kv_chunk;
  // transformers: scaling = head_dim ** -0.5 (a python float, applied in fp32).
  p.scale = static_cast<float>(std::pow(static_cast<double>(D), -0.5));
  const dim3 grid(static_cast<unsigned>(plan.num_tiles()),
                  static_cast<unsigned>(args.dims.num_kv_heads),
                  static_cast<unsigned>(plan.num_splits));
  PagedAttentionKernel<T, D><<<grid, kThreads, 0, stream>>>(p);
  if (absl::Status s = LaunchResult("PagedAttentionKernel"); !s.ok()) return s;
  if (plan.num_splits == 1) return absl::OkStatus();
  MergeSplitsKernel<T, D><<<static_cast<unsigned>(rows), D, 0, stream>>>(
      p.partial_out, p.partial_lse, plan.num_splits, rows, p.out);
  return LaunchResult("MergeSplitsKernel");
}

}  // namespace

absl::Status LaunchPagedAttention(const PagedAttentionArgs& args, const AttentionPlan& plan,
                                  cudaStream_t stream) {
  constexpr const char* kName = "LaunchPagedAttention";
  if (absl::Status s = CheckHalfDType(args.dtype, kName); !s.ok()) return s;
  if (absl::Status s = args.dims.Validate(); !s.ok()) return s;
  MUSERVE_KERNEL_ARG(args.num_tokens >= 0 && args.num_tokens * args.dims.num_heads <= INT32_MAX,
                     kName);
  MUSERVE_KERNEL_ARG(args.max_blocks_per_sequence > 0, kName);
  MUSERVE_KERNEL_ARG(
      args.q_stride == 0 || args.q_stride >= int64_t{args.dims.num_heads} * args.dims.head_dim,
      kName);
  // The caches are read 16 bytes at a time (cudaMalloc gives 256).
  MUSERVE_KERNEL_ARG(reinterpret_cast<uintptr_t>(args.k_cache) % 16 == 0, kName);
  MUSERVE_KERNEL_ARG(reinterpret_cast<uintptr_t>(args.v_cache) % 16 == 0, kName);
  MUSERVE_KERNEL_ARG(plan.tile_sequence.size() == plan.tile_query_begin.size(), kName);
  MUSERVE_KERNEL_ARG(
      plan.tokens_per_tile >= 1 && plan.tokens_per_tile * args.dims.group() <= kMaxTileRows, kName);
  MUSERVE_KERNEL_ARG(plan.num_splits >= 1 && plan.num_splits <= 65535, kName);
  MUSERVE_KERNEL_ARG(plan.num_splits == 1 || (plan.kv_chunk > 0 && args.workspace != nullptr),
                     kName);
  if (plan.num_tiles() == 0 || args.num_tokens == 0) return absl::OkStatus();
  return DispatchHalfType(args.dtype, [&](auto t) {
    using T = decltype(t);
    switch (args.dims.head_dim) {
      case 16:
        return Launch<T, 16>(args, plan, stream);
      case 24:
        return Launch<T, 24>(args, plan, stream);
      case 32:
        return Launch<T, 32>(args, plan, stream);
      case 64:
        return Launch<T, 64>(args, plan, stream);
      default:  // 128 (AttentionDims::Validate)
        return Launch<T, 128>(args, plan, stream);
    }
  });
}

}  // namespace muserve::cuda
