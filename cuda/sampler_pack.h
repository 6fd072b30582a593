// The flat form of a batch of SampleInputs that GpuSampler uploads in one
// copy: a SamplerRowParams per row, then one int32 array holding every row's
// penalty and ban lists. Plain host code (no CUDA), shared with the sampling
// kernel (cuda/kernels/sampling.h), so that the packing is tested anywhere.
//
// The packer does on the host what needs sets or hashing, so that the kernel
// only walks short lists: it keeps history and banned ids inside the
// vocabulary, makes each penalty list hold distinct tokens (the repetition
// list is prompt ∪ output tokens with a count > 0, as ApplyPenalties), and
// drops a list whose penalty is off.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "engine/sampling/sampler.h"

namespace muserve::cuda {

// SamplingParams::top_logprobs is at most this (SamplingParams::Validate).
inline constexpr int32_t kMaxTopLogprobs = 20;

// One row's parameters as the kernel reads them. Offsets index the packed
// int32 lists (`lists` below); `saved_begin` indexes the device's float array
// where the kernel keeps the pre-penalty logits of the penalised tokens (the
// chosen token's logprob is of its raw logit), repetition tokens first.
struct SamplerRowParams {
  double uniform = 0.0;      // SampleInput::uniform; unused when greedy
  float temperature = 1.0f;  // > 0 when !greedy
  float repetition_penalty = 1.0f;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  float top_p = 1.0f;      // 1: off
  float log_min_p = 0.0f;  // std::log(min_p) as float, when min_p_on
  int32_t greedy = 0;      // !(temperature >= kGreedyTemperature)
  int32_t min_p_on = 0;    // min_p > 0
  int32_t top_k = 0;       // 0: off
  int32_t wants_logprobs = 0;
  int32_t top_logprobs = 0;      // [0, kMaxTopLogprobs]
  int32_t repetition_begin = 0;  // distinct tokens, repetition_penalty != 1
  int32_t repetition_count = 0;
  int32_t output_begin = 0;         // distinct output tokens with count > 0,
  int32_t output_counts_begin = 0;  // and their counts, when frequency or
  int32_t output_count = 0;         // presence penalty != 0
  int32_t banned_begin = 0;
  int32_t banned_count = 0;
  int32_t saved_begin = 0;  // repetition_count + output_count floats
  int32_t padding = 0;
};
static_assert(sizeof(SamplerRowParams) % alignof(double) == 0);

// One row's result as the kernel writes it.
struct SamplerRowResult {
  int32_t token = 0;
  float logprob = 0.0f;   // when wants_logprobs
  int32_t top_count = 0;  // <= top_logprobs (fewer unmasked tokens)
  int32_t top_tokens[kMaxTopLogprobs] = {};
  float top_values[kMaxTopLogprobs] = {};
};

struct SamplerPack {
  std::vector<SamplerRowParams> rows;
  std::vector<int32_t> lists;
  int64_t saved_floats = 0;  // device floats the kernel needs for saved logits

  // The upload: rows, then lists, at ListsOffset() (a multiple of 8).
  size_t ListsOffset() const { return rows.size() * sizeof(SamplerRowParams); }
  size_t Bytes() const { return ListsOffset() + lists.size() * sizeof(int32_t); }
  // Writes Bytes() bytes at `dst`.
  void CopyTo(std::byte* dst) const;
};

// The SampledToken of a row's result: the token, and its logprob and top
// logprobs when `params` asks for them.
void UnpackSamplerResult(const SamplerRowResult& result, const SamplingParams& params,
                         SampledToken& out);

// Packs `inputs` for rows of `vocab_size` logits into `pack` (cleared first;
// its vectors keep their capacity). InvalidArgument naming the row and field
// for a null params / history, a top_logprobs outside [0, kMaxTopLogprobs] or
// a sampled row's uniform outside [0, 1).
absl::Status PackSamplerInputs(std::span<const SampleInput> inputs, int32_t vocab_size,
                               SamplerPack& pack);

}  // namespace muserve::cuda
