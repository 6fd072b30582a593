// The reference checks of the GPU sampler's tests: a row (logits, parameters,
// history, bans, uniform), the host Sampler's result for it, the tokens a
// device sampler may draw instead, and random rows covering every mode.
//
// Tokens must match the host's exactly, with one allowance: a device sums
// the same weights (its exp is the host's operation for operation) in
// another order, so where the host finds the uniform's target (or top_p's)
// within kBoundaryEpsilon of the total of a cumulative-weight boundary, the
// token on the other side is accepted too; such rows are counted. Logprobs
// are within kLogprobTolerance.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/sampling/fast_exp.h"
#include "engine/sampling/sampler.h"
#include "gtest/gtest.h"

namespace muserve::testing {

inline constexpr float kInf = std::numeric_limits<float>::infinity();
// Relative to the total weight; the order-dependent error of double sums of
// <= 152k weights in [0, 1] is below 2e-11 of the total.
inline constexpr double kBoundaryEpsilon = 1e-9;
inline constexpr float kLogprobTolerance = 1e-5f;

struct Row {
  std::vector<float> logits;
  SamplingParams params;
  TokenHistory history;
  std::vector<int32_t> banned;
  double uniform = 0.0;
};

inline SampleInput InputOf(const Row& row) {
  SampleInput input;
  input.params = &row.params;
  input.history = &row.history;
  input.banned_tokens = row.banned;
  input.uniform = row.uniform;
  return input;
}

inline SampledToken HostSample(const Row& row) {
  std::vector<float> logits = row.logits;
  Sampler sampler;
  return sampler.Sample(logits, InputOf(row));
}

// The tokens the device may draw: the host's, plus, where a target lies
// within kBoundaryEpsilon of a CDF boundary, its neighbours across it.
struct Allowed {
  std::vector<int32_t> tokens;
  bool near_boundary = false;
};

inline std::vector<float> Weights(std::span<const SamplingCandidate> candidates) {
  float max_logit = -kInf;
  for (const SamplingCandidate& c : candidates) max_logit = std::max(max_logit, c.logit);
  std::vector<float> weights;
  for (const SamplingCandidate& c : candidates) {
    weights.push_back(sampling_internal::ExpNonPositive(c.logit - max_logit));
  }
  return weights;
}

inline Allowed AllowedTokens(const Row& row, int32_t host_token) {
  Allowed allowed;
  allowed.tokens.push_back(host_token);
  if (!(row.params.temperature >= kGreedyTemperature)) return allowed;
  // The logits the filters see: bans, then penalties, as Sampler::Sample.
  std::vector<float> penalised = row.logits;
  for (int32_t token : row.banned) {
    if (token >= 0 && static_cast<size_t>(token) < penalised.size()) penalised[token] = -kInf;
  }
  ApplyPenalties(penalised, row.params, row.history);
  Sampler sampler;

  // top_p's cut: the cumulative mass in rank order near top_p * total.
  if (row.params.top_p < 1.0f) {
    SamplingParams no_top_p = row.params;
    no_top_p.top_p = 1.0f;
    const std::span<const SamplingCandidate> filtered = sampler.Filter(penalised, no_top_p);
    std::vector<SamplingCandidate> ranked(filtered.begin(), filtered.end());
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.logit > b.logit || (a.logit == b.logit && a.token < b.token);
    });
    const std::vector<float> weights = Weights(ranked);
    double total = 0;
    for (float w : weights) total += w;
    const double target = static_cast<double>(row.params.top_p) * total;
    double cumulative = 0;
    for (float w : weights) {
      cumulative += w;
      if (std::abs(cumulative - target) <= kBoundaryEpsilon * total) {
        // Either side of the cut: accept any token the looser cut keeps.
        allowed.near_boundary = true;
        for (const SamplingCandidate& c : ranked) allowed.tokens.push_back(c.token);
        return allowed;
      }
    }
  }

  const std::span<const SamplingCandidate> candidates = sampler.Filter(penalised, row.params);
  const std::vector<float> weights = Weights(candidates);
  double total = 0;
  for (float w : weights) total += w;
  const double target = row.uniform * total;
  const double epsilon = kBoundaryEpsilon * total;
  double cumulative = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const double before = cumulative;
    cumulative += weights[i];
    if (weights[i] > 0 && before - epsilon <= target && target < cumulative + epsilon) {
      if (candidates[i].token != host_token) allowed.near_boundary = true;
      allowed.tokens.push_back(candidates[i].token);
    }
  }
  return allowed;
}

inline bool SameLogprob(float got, float want) {
  if (std::isinf(want) || std::isinf(got)) return got == want;
  return std::abs(got - want) <= kLogprobTolerance;
}

// Compares `got` (a sampler's results for `rows`) with the host Sampler's;
// returns how many rows needed the boundary allowance.
inline int ExpectMatchesHost(const std::vector<Row>& rows, const std::vector<SampledToken>& got,
                             const std::string& what) {
  EXPECT_EQ(got.size(), rows.size()) << what;
  if (got.size() != rows.size()) return 0;
  int near = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const Row& row = rows[r];
    const SampledToken want = HostSample(row);
    const std::string where =
        absl::StrCat(what, " row ", r, ": T=", row.params.temperature, " top_k=", row.params.top_k,
                     " top_p=", row.params.top_p, " min_p=", row.params.min_p,
                     " rep=", row.params.repetition_penalty, " u=", row.uniform, " host token ",
                     want.token, " device token ", got[r].token);
    const Allowed allowed = AllowedTokens(row, want.token);
    if (allowed.near_boundary) ++near;
    EXPECT_NE(std::find(allowed.tokens.begin(), allowed.tokens.end(), got[r].token),
              allowed.tokens.end())
        << where;
    EXPECT_EQ(got[r].logprob.has_value(), want.logprob.has_value()) << where;
    if (got[r].token == want.token && want.logprob.has_value() && got[r].logprob.has_value()) {
      EXPECT_TRUE(SameLogprob(*got[r].logprob, *want.logprob))
          << where << ": logprob " << *got[r].logprob << " vs " << *want.logprob;
    }
    EXPECT_EQ(got[r].top_logprobs.size(), want.top_logprobs.size()) << where;
    const size_t shown = std::min(got[r].top_logprobs.size(), want.top_logprobs.size());
    for (size_t i = 0; i < shown; ++i) {
      EXPECT_EQ(got[r].top_logprobs[i].first, want.top_logprobs[i].first) << where << " #" << i;
      EXPECT_TRUE(SameLogprob(got[r].top_logprobs[i].second, want.top_logprobs[i].second))
          << where << " #" << i << ": " << got[r].top_logprobs[i].second << " vs "
          << want.top_logprobs[i].second;
    }
  }
  return near;
}

// Random rows: logits N(0, scale) (rounded to multiples of 0.5 for ties
// when asked), a few boosted, NaN and -inf sprinkled in; the parameters of
// one of the filter modes (greedy, temperature, top_k, top_p, min_p, mixes);
// a history with penalties and bans on some rows; logprobs on some.
class RandomRows {
 public:
  explicit RandomRows(uint64_t seed) : rng_(seed) {}

  Row Next(int32_t vocab, bool ties) {
    Row row;
    std::normal_distribution<float> normal(0.0f, std::uniform_real_distribution<float>(1, 4)(rng_));
    std::uniform_int_distribution<int32_t> any_token(0, vocab - 1);
    row.logits.resize(vocab);
    for (float& l : row.logits) {
      l = normal(rng_);
      if (ties) l = std::round(l * 2.0f) / 2.0f;
    }
    for (int i = 0; i < 5; ++i) row.logits[any_token(rng_)] += 8.0f * Uniform();
    if (Uniform() < 0.3) {
      for (int i = 0; i < 1 + vocab / 100; ++i) row.logits[any_token(rng_)] = NAN;
      for (int i = 0; i < 1 + vocab / 100; ++i) row.logits[any_token(rng_)] = -kInf;
    }

    SamplingParams& p = row.params;
    const int mode = std::uniform_int_distribution<int>(0, 6)(rng_);
    p.temperature = mode == 0 ? (Uniform() < 0.5 ? 0.0f : kGreedyTemperature / 2)
                              : static_cast<float>(0.3 + 1.4 * Uniform());
    const int32_t top_ks[] = {1, 2, 5, 40, 1000, 2000};
    if (mode == 2 || mode == 5 || mode == 6) p.top_k = top_ks[Index(6)];
    const float top_ps[] = {0.3f, 0.8f, 0.9f, 0.95f, 0.999f};
    if (mode == 3 || mode == 5 || mode == 6) p.top_p = top_ps[Index(5)];
    const float min_ps[] = {0.001f, 0.05f, 0.2f, 1.0f};
    if (mode == 4 || mode == 6) p.min_p = min_ps[Index(4)];
    if (Uniform() < 0.5) {
      p.repetition_penalty = static_cast<float>(0.5 + 1.5 * Uniform());
      p.frequency_penalty = static_cast<float>(-1.0 + 2.0 * Uniform());
      p.presence_penalty = static_cast<float>(-1.0 + 2.0 * Uniform());
      if (Uniform() < 0.3) p.repetition_penalty = 1.0f;
      if (Uniform() < 0.3) p.frequency_penalty = p.presence_penalty = 0.0f;
      const int history = 1 + Index(200);
      for (int i = 0; i < history; ++i) row.history.prompt_tokens.insert(any_token(rng_));
      for (int i = 0; i < history; ++i) row.history.output_counts[any_token(rng_)] += 1 + Index(3);
      row.history.prompt_tokens.insert(vocab + 5);  // outside: ignored
    }
    if (Uniform() < 0.3) {
      for (int i = 0; i < 1 + Index(10); ++i) row.banned.push_back(any_token(rng_));
      row.banned.push_back(-1);
    }
    p.logprobs = Uniform() < 0.5;
    if (Uniform() < 0.5) p.top_logprobs = Index(21);
    row.uniform = Uniform();
    return row;
  }

 private:
  double Uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  int Index(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  std::mt19937_64 rng_;
};

}  // namespace muserve::testing
