#include "cuda/sampler_pack.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace muserve::cuda {
namespace {

bool InVocab(int32_t token, int32_t vocab_size) { return token >= 0 && token < vocab_size; }

absl::Status RowError(size_t row, const char* what) {
  return absl::InvalidArgumentError(absl::StrCat("inputs[", row, "].", what));
}

int32_t Size32(const std::vector<int32_t>& v) { return static_cast<int32_t>(v.size()); }

}  // namespace

void SamplerPack::CopyTo(std::byte* dst) const {
  if (!rows.empty()) std::memcpy(dst, rows.data(), ListsOffset());
  if (!lists.empty())
    std::memcpy(dst + ListsOffset(), lists.data(), lists.size() * sizeof(int32_t));
}

void UnpackSamplerResult(const SamplerRowResult& result, const SamplingParams& params,
                         SampledToken& out) {
  out.token = result.token;
  out.logprob.reset();
  out.top_logprobs.clear();
  if (!params.wants_logprobs()) return;
  out.logprob = result.logprob;
  out.top_logprobs.reserve(static_cast<size_t>(result.top_count));
  for (int32_t i = 0; i < result.top_count; ++i) {
    out.top_logprobs.push_back({result.top_tokens[i], result.top_values[i]});
  }
}

absl::Status PackSamplerInputs(std::span<const SampleInput> inputs, int32_t vocab_size,
                               SamplerPack& pack) {
  pack.rows.clear();
  pack.lists.clear();
  pack.saved_floats = 0;
  pack.rows.reserve(inputs.size());
  for (size_t r = 0; r < inputs.size(); ++r) {
    const SampleInput& in = inputs[r];
    if (in.params == nullptr) return RowError(r, "params is null");
    if (in.history == nullptr) return RowError(r, "history is null");
    const SamplingParams& p = *in.params;
    const TokenHistory& h = *in.history;
    if (p.top_logprobs < 0 || p.top_logprobs > kMaxTopLogprobs) {
      return RowError(r, absl::StrCat("params.top_logprobs must be in [0, ", kMaxTopLogprobs,
                                      "], got ", p.top_logprobs)
                             .c_str());
    }
    SamplerRowParams row;
    row.greedy = !(p.temperature >= kGreedyTemperature) ? 1 : 0;
    if (!row.greedy && !(in.uniform >= 0.0 && in.uniform < 1.0)) {
      return RowError(r, absl::StrCat("uniform must be in [0, 1), got ", in.uniform).c_str());
    }
    row.uniform = in.uniform;
    row.temperature = row.greedy ? 1.0f : p.temperature;
    row.repetition_penalty = p.repetition_penalty;
    row.frequency_penalty = p.frequency_penalty;
    row.presence_penalty = p.presence_penalty;
    row.top_p = p.top_p;
    row.min_p_on = p.min_p > 0.0f ? 1 : 0;
    // std::log of a float, as the host's KeepMinP, so both cut at one value.
    row.log_min_p = row.min_p_on ? std::log(p.min_p) : 0.0f;
    row.top_k = std::max(p.top_k, 0);
    row.wants_logprobs = p.wants_logprobs() ? 1 : 0;
    row.top_logprobs = p.top_logprobs;

    // Repetition: each distinct token seen, prompt or output (count > 0).
    row.repetition_begin = Size32(pack.lists);
    if (p.repetition_penalty != 1.0f) {
      for (int32_t token : h.prompt_tokens) {
        if (InVocab(token, vocab_size)) pack.lists.push_back(token);
      }
      for (const auto& [token, count] : h.output_counts) {
        if (count > 0 && InVocab(token, vocab_size) && !h.prompt_tokens.contains(token)) {
          pack.lists.push_back(token);
        }
      }
      // Sorted: the hash sets' order varies; the packing should not.
      std::sort(pack.lists.begin() + row.repetition_begin, pack.lists.end());
    }
    row.repetition_count = Size32(pack.lists) - row.repetition_begin;

    // Frequency and presence: output tokens with a count > 0, then counts.
    row.output_begin = Size32(pack.lists);
    if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
      for (const auto& [token, count] : h.output_counts) {
        if (count > 0 && InVocab(token, vocab_size)) pack.lists.push_back(token);
      }
      std::sort(pack.lists.begin() + row.output_begin, pack.lists.end());
    }
    row.output_count = Size32(pack.lists) - row.output_begin;
    row.output_counts_begin = Size32(pack.lists);
    for (int32_t i = 0; i < row.output_count; ++i) {
      pack.lists.push_back(h.output_counts.at(pack.lists[row.output_begin + i]));
    }

    row.banned_begin = Size32(pack.lists);
    for (int32_t token : in.banned_tokens) {
      if (InVocab(token, vocab_size)) pack.lists.push_back(token);
    }
    row.banned_count = Size32(pack.lists) - row.banned_begin;

    row.saved_begin = static_cast<int32_t>(pack.saved_floats);
    pack.saved_floats += row.repetition_count + row.output_count;
    pack.rows.push_back(row);
  }
  return absl::OkStatus();
}

}  // namespace muserve::cuda
