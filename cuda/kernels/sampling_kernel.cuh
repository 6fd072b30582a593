// The sampling kernel, a template on its block size so that it also runs
// under tests/testing/cuda_emulation.h (a host emulation of a block, for the
// tests that run without a device). One block of kThreads per row, following Sampler::Sample step
// by step:
//   1. log_softmax of the raw logits (max, then a double sum of exps) and the
//      top_logprobs most likely tokens by rounds of block argmax;
//   2. bans, then the penalties in place (pre-penalty values kept in `saved`);
//   3. greedy: block argmax; else the scaled logits l / T are recomputed on
//      the fly (the row keeps the penalised logits, which the chosen token's
//      logprob needs) and the cuts are found without sorting: top_k's k-th
//      largest and top_p's crossing value by a bitwise search over
//      order-preserving keys, one block reduction per bit;
//   4. an inverse-CDF draw in id order: each thread owns a contiguous chunk,
//      a block scan of the chunk sums gives each its starting mass.
// exp is the host's ExpNonPositive operation for operation (no contraction),
// so weights equal the host's bit for bit; sums differ only in order.
// Every reduction has a fixed order: results do not vary between runs.
#pragma once

#include <climits>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/sampler_pack.h"

namespace muserve::cuda::sampling_kernel {

// Warps of the largest block (1024 threads): the reductions' scratch.
constexpr int kMaxWarps = 32;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float NegInf() { return -INFINITY; }

// NaN counts as masked, as the host's Logit().
__device__ __forceinline__ float Logit(float v) { return v != v ? NegInf() : v; }

// engine/sampling/fast_exp.h's ExpNonPositive with every operation rounded
// separately (the host library is built with -ffp-contract=off).
__device__ __forceinline__ float ExpNonPositive(float x) {
  const unsigned keep = x >= -87.0f ? 0xffffffffu : 0u;
  x = __uint_as_float((__float_as_uint(x) & keep) | (__float_as_uint(-87.0f) & ~keep));
  const int n = __float2int_rz(__fsub_rn(__fmul_rn(x, 1.44269504088896341f), 0.5f));
  const float nf = __int2float_rn(n);
  float r = __fsub_rn(x, __fmul_rn(nf, 0.693359375f));
  r = __fsub_rn(r, __fmul_rn(nf, -2.12194440e-4f));
  float p = 1.9875691500e-4f;
  p = __fadd_rn(__fmul_rn(p, r), 1.3981999507e-3f);
  p = __fadd_rn(__fmul_rn(p, r), 8.3334519073e-3f);
  p = __fadd_rn(__fmul_rn(p, r), 4.1665795894e-2f);
  p = __fadd_rn(__fmul_rn(p, r), 1.6666665459e-1f);
  p = __fadd_rn(__fmul_rn(p, r), 5.0000001201e-1f);
  const float y = __fadd_rn(__fadd_rn(__fmul_rn(__fmul_rn(p, r), r), r), 1.0f);
  const float scale = __uint_as_float(static_cast<unsigned>(n + 127) << 23);
  return __uint_as_float(__float_as_uint(__fmul_rn(y, scale)) & keep);
}

// Order-preserving key of a non-NaN float: a < b iff Key(a) < Key(b).
__device__ __forceinline__ unsigned Key(float v) {
  const unsigned u = __float_as_uint(v);
  return (u & 0x80000000u) != 0 ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float FromKey(unsigned k) {
  return __uint_as_float((k & 0x80000000u) != 0 ? (k & 0x7fffffffu) : ~k);
}

// Shared scratch of the block reductions (one slot per warp).
struct Scratch {
  double d[kMaxWarps];
  float f[kMaxWarps];
  int i[kMaxWarps];
};

// Reductions over the block; every thread gets the result. Warps reduce by
// shuffles, then every thread folds the warp results in warp order.
// Sums of doubles (masses) or ints (counts); each type has its own slots.
template <int kThreads, class T>
__device__ T BlockSum(T v, Scratch& s) {
  static_assert(std::is_same_v<T, double> || std::is_same_v<T, int>);
  T* slots;
  if constexpr (std::is_same_v<T, double>)
    slots = s.d;
  else
    slots = s.i;
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(kFullMask, v, o);
  if (threadIdx.x % 32 == 0) slots[threadIdx.x / 32] = v;
  __syncthreads();
  T total = 0;
  for (int w = 0; w < kThreads / 32; ++w) total += slots[w];
  __syncthreads();
  return total;
}

// Max ignoring NaN (fmaxf returns the other operand); -inf if none.
template <int kThreads>
__device__ float BlockMax(float v, Scratch& s) {
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  if (threadIdx.x % 32 == 0) s.f[threadIdx.x / 32] = v;
  __syncthreads();
  float m = NegInf();
  for (int w = 0; w < kThreads / 32; ++w) m = fmaxf(m, s.f[w]);
  __syncthreads();
  return m;
}

// A (value, id) pair ordered most likely first, lowest id first on ties.
struct Ranked {
  float value;
  int id;
};
__device__ __forceinline__ bool Before(const Ranked& a, const Ranked& b) {
  return a.value > b.value || (a.value == b.value && a.id < b.id);
}

// The first in rank order; {-inf, INT_MAX} when no thread has one.
template <int kThreads>
__device__ Ranked BlockFirst(Ranked v, Scratch& s) {
  for (int o = 16; o > 0; o /= 2) {
    const Ranked other{__shfl_xor_sync(kFullMask, v.value, o), __shfl_xor_sync(kFullMask, v.id, o)};
    if (Before(other, v)) v = other;
  }
  if (threadIdx.x % 32 == 0) {
    s.f[threadIdx.x / 32] = v.value;
    s.i[threadIdx.x / 32] = v.id;
  }
  __syncthreads();
  Ranked best{NegInf(), INT_MAX};
  for (int w = 0; w < kThreads / 32; ++w) {
    const Ranked other{s.f[w], s.i[w]};
    if (Before(other, best)) best = other;
  }
  __syncthreads();
  return best;
}

// The row after penalties, as the filters see it: scaled by the temperature
// (a float division, as the host), masked (NaN, -inf) as -inf, and -0 as +0
// (adding +0), so that the key searches tie them as the host's comparisons do.
struct ScaledRow {
  const float* logits;
  float temperature;
  __device__ __forceinline__ float operator()(int i) const {
    // x / 1 is x exactly: the common temperature skips the division, which
    // every pass of the key searches repeats.
    const float v = temperature == 1.0f ? logits[i] : __fdiv_rn(logits[i], temperature);
    return v > NegInf() ? __fadd_rn(v, 0.0f) : NegInf();
  }
};

// The filters' decision for one scaled logit: above every cut (top_k's k-th
// value and min_p's, combined in `cut`), and inside top_p's nucleus: keys
// above the crossing key, or equal to it with an id up to `tie_id`.
struct Survivors {
  float cut = NegInf();
  bool top_p_on = false;
  unsigned cross_key = 0;
  int tie_id = INT_MAX;
  __device__ __forceinline__ bool operator()(float s, int i) const {
    if (!(s > NegInf()) || s < cut) return false;
    if (!top_p_on) return true;
    const unsigned k = Key(s);
    return k > cross_key || (k == cross_key && i <= tie_id);
  }
};

// The largest key K with goal <= sum of weight(s) over survivors with
// Key(s) >= K: 32 block reductions, one per bit, most significant first.
template <int kThreads, class Weight, class Total>
__device__ unsigned SearchKey(const ScaledRow& row, int vocab, const Survivors& keep, Weight weight,
                              Total goal, Scratch& s) {
  unsigned key = 0;
  for (int bit = 31; bit >= 0; --bit) {
    const unsigned trial = key | (1u << bit);
    Total part = 0;
    for (int i = threadIdx.x; i < vocab; i += kThreads) {
      const float v = row(i);
      if (keep(v, i) && Key(v) >= trial) part += weight(v);
    }
    if (BlockSum<kThreads>(part, s) >= goal) key = trial;
  }
  return key;
}

template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    SampleRowsKernel(float* __restrict__ all_logits, int vocab,
                     const SamplerRowParams* __restrict__ all_params,
                     const int32_t* __restrict__ lists, float* __restrict__ saved,
                     SamplerRowResult* __restrict__ results) {
  __shared__ Scratch scratch;
  __shared__ int first_hit;
  __shared__ int last_nonzero;
  __shared__ int saved_index;
  __shared__ double chunk_starts[kThreads / 32];

  const int row_index = blockIdx.x;
  const SamplerRowParams p = all_params[row_index];
  float* logits = all_logits + static_cast<int64_t>(row_index) * vocab;
  SamplerRowResult* out = results + row_index;
  const int tid = threadIdx.x;

  // 1. Logprobs of the raw logits.
  double log_norm = 0.0;
  if (p.wants_logprobs) {
    float local_max = NegInf();
    for (int i = tid; i < vocab; i += kThreads) local_max = fmaxf(local_max, logits[i]);
    const float max_logit = BlockMax<kThreads>(local_max, scratch);
    if (max_logit == NegInf()) {
      log_norm = -INFINITY;
    } else {
      double local_sum = 0;
      for (int i = tid; i < vocab; i += kThreads) {
        local_sum += ExpNonPositive(__fsub_rn(logits[i], max_logit));
      }
      log_norm = static_cast<double>(max_logit) + log(BlockSum<kThreads>(local_sum, scratch));
    }
    // Rounds of "the first token ranked after the previous one".
    Ranked previous{INFINITY, -1};
    int count = 0;
    for (; count < p.top_logprobs; ++count) {
      Ranked best{NegInf(), INT_MAX};
      for (int i = tid; i < vocab; i += kThreads) {
        const Ranked c{Logit(logits[i]), i};
        if (c.value == NegInf() || !Before(previous, c)) continue;
        if (Before(c, best)) best = c;
      }
      best = BlockFirst<kThreads>(best, scratch);
      if (best.id == INT_MAX) break;
      if (tid == 0) {
        out->top_tokens[count] = best.id;
        out->top_values[count] = static_cast<float>(static_cast<double>(best.value) - log_norm);
      }
      previous = best;
    }
    if (tid == 0) out->top_count = count;
  }

  // 2. Bans, then the penalties (each list holds distinct tokens, so threads
  // never share an element).
  for (int j = tid; j < p.banned_count; j += kThreads) {
    logits[lists[p.banned_begin + j]] = NegInf();
  }
  __syncthreads();
  float* saved_row = saved + p.saved_begin;
  for (int j = tid; j < p.repetition_count; j += kThreads) {
    saved_row[j] = logits[lists[p.repetition_begin + j]];
  }
  for (int j = tid; j < p.output_count; j += kThreads) {
    saved_row[p.repetition_count + j] = logits[lists[p.output_begin + j]];
  }
  __syncthreads();
  for (int j = tid; j < p.repetition_count; j += kThreads) {
    float& l = logits[lists[p.repetition_begin + j]];
    l = l > 0 ? __fdiv_rn(l, p.repetition_penalty) : __fmul_rn(l, p.repetition_penalty);
  }
  __syncthreads();
  for (int j = tid; j < p.output_count; j += kThreads) {
    float& l = logits[lists[p.output_begin + j]];
    const float count = static_cast<float>(lists[p.output_counts_begin + j]);
    l = __fsub_rn(l, __fmul_rn(p.frequency_penalty, count));
    l = __fsub_rn(l, p.presence_penalty);
  }
  __syncthreads();

  int token = 0;
  if (p.greedy) {
    // 3a. Argmax, lowest id on ties; 0 when all are masked.
    Ranked best{NegInf(), INT_MAX};
    for (int i = tid; i < vocab; i += kThreads) {
      const Ranked c{Logit(logits[i]), i};
      if (Before(c, best)) best = c;
    }
    best = BlockFirst<kThreads>(best, scratch);
    token = best.value == NegInf() ? 0 : best.id;
  } else {
    // 3b. The filters.
    const ScaledRow row{logits, p.temperature};
    Survivors keep;
    float local_max = NegInf();
    int local_count = 0;
    for (int i = tid; i < vocab; i += kThreads) {
      const float v = row(i);
      local_max = fmaxf(local_max, v);
      local_count += v > NegInf() ? 1 : 0;
    }
    const float max_scaled = BlockMax<kThreads>(local_max, scratch);
    const int candidates = BlockSum<kThreads>(local_count, scratch);
    if (p.top_k > 0 && p.top_k < candidates) {
      // Every scaled logit >= the k-th largest survives (ties included).
      keep.cut = FromKey(SearchKey<kThreads>(
          row, vocab, keep, [](float) { return 1; }, static_cast<int>(p.top_k), scratch));
    }
    if (p.min_p_on) keep.cut = fmaxf(keep.cut, __fadd_rn(max_scaled, p.log_min_p));
    const auto weight = [max_scaled](float v) {
      return static_cast<double>(ExpNonPositive(__fsub_rn(v, max_scaled)));
    };
    if (p.top_p < 1.0f && candidates > 0) {
      double local_mass = 0;
      int local_left = 0;
      for (int i = tid; i < vocab; i += kThreads) {
        const float v = row(i);
        if (keep(v, i)) {
          local_mass += weight(v);
          ++local_left;
        }
      }
      const double total = BlockSum<kThreads>(local_mass, scratch);
      const int left = BlockSum<kThreads>(local_left, scratch);
      if (left > 1) {
        const double target = static_cast<double>(p.top_p) * total;
        // The crossing value: the largest key whose mass at or above it
        // reaches the target; everything above it is inside.
        const unsigned cross = SearchKey<kThreads>(row, vocab, keep, weight, target, scratch);
        double local_above = 0;
        int local_ties = 0;
        for (int i = tid; i < vocab; i += kThreads) {
          const float v = row(i);
          if (!keep(v, i)) continue;
          if (Key(v) > cross) local_above += weight(v);
          if (Key(v) == cross) ++local_ties;
        }
        const double above = BlockSum<kThreads>(local_above, scratch);
        const int ties = BlockSum<kThreads>(local_ties, scratch);
        // Ties at the crossing value enter by id, as on the host, while the
        // mass before them is below the target.
        const double tie_weight = weight(FromKey(cross));
        double cumulative = above;
        int tied_in = 0;
        while (tied_in < ties && cumulative < target) {
          cumulative += tie_weight;
          ++tied_in;
        }
        tied_in = tied_in < 1 ? 1 : tied_in;
        int tie_id = INT_MAX;
        if (tied_in < ties) {
          // The id of the tied_in-th tie: the largest id with fewer than
          // tied_in ties below it.
          int id = 0;
          for (int bit = 30; bit >= 0; --bit) {
            const int trial = id | (1 << bit);
            if (trial >= vocab) continue;
            int local_below = 0;
            for (int i = tid; i < trial; i += kThreads) {
              const float v = row(i);
              local_below += keep(v, i) && Key(v) == cross ? 1 : 0;
            }
            if (BlockSum<kThreads>(local_below, scratch) < tied_in) id = trial;
          }
          tie_id = id;
        }
        keep.top_p_on = true;
        keep.cross_key = cross;
        keep.tie_id = tie_id;
      }
    }

    // 4. The draw: the first survivor (id order) whose cumulative weight
    // exceeds uniform * total; rounding can leave the sum just short of it,
    // then the last survivor with a non-zero weight.
    if (max_scaled != NegInf()) {
      const int chunk = (vocab + kThreads - 1) / kThreads;
      const int begin = min(vocab, tid * chunk);
      const int end = min(vocab, begin + chunk);
      double chunk_sum = 0;
      for (int i = begin; i < end; ++i) {
        const float v = row(i);
        if (keep(v, i)) chunk_sum += weight(v);
      }
      // Exclusive scan of the chunk sums in thread order.
      const int lane = tid % 32;
      const int warp = tid / 32;
      double inclusive = chunk_sum;
      for (int o = 1; o < 32; o *= 2) {
        const double up = __shfl_up_sync(kFullMask, inclusive, o);
        if (lane >= o) inclusive += up;
      }
      double exclusive = __shfl_up_sync(kFullMask, inclusive, 1);
      if (lane == 0) exclusive = 0;
      if (lane == 31) chunk_starts[warp] = inclusive;
      if (tid == 0) {
        first_hit = INT_MAX;
        last_nonzero = 0;
      }
      __syncthreads();
      if (tid == 0) {
        double running = 0;
        for (int w = 0; w < kThreads / 32; ++w) {
          const double warp_total = chunk_starts[w];
          chunk_starts[w] = running;
          running += warp_total;
        }
      }
      __syncthreads();
      const double total = BlockSum<kThreads>(chunk_sum, scratch);
      const double target = p.uniform * total;
      double cumulative = chunk_starts[warp] + exclusive;
      int hit = INT_MAX;
      int nonzero = -1;
      for (int i = begin; i < end; ++i) {
        const float v = row(i);
        const double w = keep(v, i) ? weight(v) : 0.0;
        if (w > 0) nonzero = i;
        cumulative += w;
        if (target < cumulative) {
          hit = i;
          break;
        }
      }
      if (hit != INT_MAX) atomicMin(&first_hit, hit);
      if (nonzero >= 0) atomicMax(&last_nonzero, nonzero);
      __syncthreads();
      token = first_hit != INT_MAX ? first_hit : last_nonzero;
    }
  }

  if (tid == 0) {
    out->token = token;
    saved_index = -1;
  }
  if (!p.wants_logprobs) return;
  // 5. The chosen token's logprob, of its logit before the penalties.
  __syncthreads();
  for (int j = tid; j < p.repetition_count; j += kThreads) {
    if (lists[p.repetition_begin + j] == token) saved_index = j;
  }
  for (int j = tid; j < p.output_count; j += kThreads) {
    if (lists[p.output_begin + j] == token) saved_index = p.repetition_count + j;
  }
  __syncthreads();
  if (tid == 0) {
    const float raw = saved_index >= 0 ? saved_row[saved_index] : logits[token];
    out->logprob = log_norm == -INFINITY
                       ? NegInf()
                       : static_cast<float>(static_cast<double>(Logit(raw)) - log_norm);
  }
}

}  // namespace muserve::cuda::sampling_kernel
