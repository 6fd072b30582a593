// Sampler::Sample: raw logprobs, penalties, then greedy or a filtered draw.
#include "engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "engine/api/check.h"
#include "engine/sampling/fast_exp.h"

namespace muserve {
namespace {

constexpr float kNegativeInfinity = -std::numeric_limits<float>::infinity();

// A logit as the sampler sees it: NaN counts as masked.
float Logit(float value) { return std::isnan(value) ? kNegativeInfinity : value; }

// log(sum(exp(logits))), accumulated in double so that the logprob of the
// chosen token keeps its precision over 150k-token vocabularies. -inf when
// every logit is masked. `scratch` receives the exps.
double LogSumExp(std::span<const float> logits, std::vector<float>& scratch) {
  const float max_logit = sampling_internal::MaxIgnoringNan(logits);
  if (max_logit == kNegativeInfinity) return kNegativeInfinity;
  scratch.resize(logits.size());
  // NaN minus the maximum is NaN, which ExpNonPositive maps to 0 (masked).
  const double sum = sampling_internal::ExpShifted(logits, max_logit, scratch);
  return static_cast<double>(max_logit) + std::log(sum);
}

// Argmax, lowest id on ties (masked tokens only win when all are masked).
// Two passes that vectorise (a NaN-ignoring max, then the first index holding
// it) instead of one branchy scan: greedy decoding runs this per sequence per
// step over the whole vocabulary.
int32_t ArgMax(std::span<const float> logits) {
  const float max_logit = sampling_internal::MaxIgnoringNan(logits);
  if (max_logit == kNegativeInfinity) return 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] == max_logit) return static_cast<int32_t>(i);
  }
  return 0;  // unreachable: max_logit is one of the logits
}

// The n most likely unmasked tokens, most likely first, lowest id first on
// ties: one scan with an insertion into a sorted list of at most n (<= 20).
void TopLogprobs(std::span<const float> logits, int32_t n, double log_norm,
                 std::vector<std::pair<int32_t, float>>& out) {
  out.clear();
  if (n <= 0) return;
  out.reserve(n);
  for (size_t i = 0; i < logits.size(); ++i) {
    const float v = Logit(logits[i]);
    if (v == kNegativeInfinity) continue;
    if (out.size() == static_cast<size_t>(n) && !(v > out.back().second)) continue;
    if (out.size() == static_cast<size_t>(n)) out.pop_back();
    // After every entry >= v: earlier (lower) ids win ties.
    auto at = std::find_if(out.begin(), out.end(), [v](const auto& e) { return e.second < v; });
    out.insert(at, {static_cast<int32_t>(i), v});
  }
  for (auto& [token, value] : out) {
    value = static_cast<float>(static_cast<double>(value) - log_norm);
  }
}

// The first token whose cumulative weight exceeds `target`, scanning in id
// order; rounding can leave the sum just short of it, then the last token
// with a non-zero weight. Zero-weight tokens are never chosen.
size_t DrawIndex(std::span<const float> weights, double target) {
  double cumulative = 0;
  size_t last_nonzero = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] > 0) last_nonzero = i;
    cumulative += weights[i];
    if (target < cumulative) return i;
  }
  return last_nonzero;
}

// No top_k, top_p or min_p: every unmasked token is a candidate, so the draw
// runs on the logits row directly (vectorised) instead of a candidate list.
// Gives the same weights, order and token as the candidate path would.
bool Unfiltered(const SamplingParams& params) {
  return params.top_k <= 0 && params.top_p >= 1.0f && params.min_p <= 0.0f;
}

bool HasPenalties(const SamplingParams& params) {
  return params.repetition_penalty != 1.0f || params.presence_penalty != 0.0f ||
         params.frequency_penalty != 0.0f;
}

}  // namespace

int32_t Sampler::DrawUnfiltered(std::span<const float> logits, float temperature, double uniform) {
  const float max_logit = sampling_internal::MaxIgnoringNan(logits);
  if (max_logit == kNegativeInfinity) return 0;
  weights_.resize(logits.size());
  // Division rounds monotonically, so max_logit / T is the largest scaled logit.
  const double total =
      sampling_internal::ExpScaledShifted(logits, temperature, max_logit / temperature, weights_);
  return static_cast<int32_t>(DrawIndex(weights_, uniform * total));
}

int32_t Sampler::DrawFiltered(std::span<const float> logits, const SamplingParams& params,
                              double uniform) {
  const std::span<const SamplingCandidate> candidates = Filter(logits, params);
  if (candidates.empty()) return 0;
  float max_logit = kNegativeInfinity;
  for (const SamplingCandidate& c : candidates) {
    if (c.logit > max_logit) max_logit = c.logit;
  }
  weights_.resize(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    weights_[i] = sampling_internal::ExpNonPositive(candidates[i].logit - max_logit);
  }
  const double total = sampling_internal::SumInDouble(weights_);
  return candidates[DrawIndex(weights_, uniform * total)].token;
}

double DrawSampleUniform(const SamplingParams& params, SamplerRng& rng) {
  return params.temperature >= kGreedyTemperature ? rng.NextUniform() : 0.0;
}

SampledToken Sampler::Sample(std::span<float> logits, const SamplingParams& params,
                             const TokenHistory& history, SamplerRng& rng,
                             std::span<const int32_t> banned_tokens) {
  SampleInput input;
  input.params = &params;
  input.history = &history;
  input.banned_tokens = banned_tokens;
  input.uniform = DrawSampleUniform(params, rng);
  return Sample(logits, input);
}

SampledToken Sampler::Sample(std::span<float> logits, const SampleInput& input) {
  MUSERVE_CHECK(!logits.empty());
  MUSERVE_CHECK(input.params != nullptr && input.history != nullptr);
  const SamplingParams& params = *input.params;
  const TokenHistory& history = *input.history;
  const std::span<const int32_t> banned_tokens = input.banned_tokens;
  SampledToken result;
  // Logprobs are of the raw logits: measure them before penalties.
  const bool wants_logprobs = params.wants_logprobs();
  const double log_norm = wants_logprobs ? LogSumExp(logits, weights_) : 0.0;
  if (wants_logprobs) TopLogprobs(logits, params.top_logprobs, log_norm, result.top_logprobs);
  for (int32_t token : banned_tokens) {
    if (token >= 0 && static_cast<size_t>(token) < logits.size()) logits[token] = kNegativeInfinity;
  }

  // Remember the raw logits the penalties overwrite (O(history)).
  raw_penalised_.clear();
  if (HasPenalties(params)) {
    const auto remember = [&](int32_t token) {
      if (token >= 0 && static_cast<size_t>(token) < logits.size()) {
        raw_penalised_.push_back({token, logits[token]});
      }
    };
    for (int32_t token : history.prompt_tokens) remember(token);
    for (const auto& [token, count] : history.output_counts) remember(token);
    ApplyPenalties(logits, params, history);
  }

  if (!(params.temperature >= kGreedyTemperature)) {
    result.token = ArgMax(logits);
  } else {
    // Exactly one uniform per sampled token, whatever the candidates
    // (DrawSampleUniform).
    const double uniform = input.uniform;
    result.token = Unfiltered(params) ? DrawUnfiltered(logits, params.temperature, uniform)
                                      : DrawFiltered(logits, params, uniform);
  }

  if (!wants_logprobs) return result;
  float raw = logits[result.token];
  for (const auto& [token, value] : raw_penalised_) {
    if (token == result.token) {
      raw = value;
      break;
    }
  }
  result.logprob = static_cast<float>(static_cast<double>(Logit(raw)) - log_norm);
  if (log_norm == -std::numeric_limits<double>::infinity()) result.logprob = kNegativeInfinity;
  return result;
}

SampledToken SampleToken(std::span<float> logits, const SamplingParams& params,
                         const TokenHistory& history, SamplerRng& rng) {
  Sampler sampler;
  return sampler.Sample(logits, params, history, rng);
}

}  // namespace muserve
