// The sampler against tests/fixtures/sampler/cases.json, written by
// tests/reference/make_sampler_fixtures.py: transformers' repetition penalty
// and TopK/TopP/MinP/Temperature warpers, vLLM's frequency and presence
// penalties in torch, and torch's log_softmax.
#include <cmath>
#include <limits>
#include <vector>

#include "engine/sampling/sampler.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/fixtures.h"

namespace muserve {
namespace {

using nlohmann::json;

// Fixture rows write -inf as null.
std::vector<float> Row(const json& values) {
  std::vector<float> row;
  for (const json& v : values) {
    row.push_back(v.is_null() ? -std::numeric_limits<float>::infinity() : v.get<float>());
  }
  return row;
}

TokenHistory History(const json& c) {
  TokenHistory history;
  for (int32_t token : c["prompt"]) history.prompt_tokens.insert(token);
  for (int32_t token : c["output"]) ++history.output_counts[token];
  return history;
}

SamplingParams Penalties(const json& c) {
  SamplingParams params;
  params.repetition_penalty = c["repetition_penalty"].get<float>();
  params.presence_penalty = c["presence_penalty"].get<float>();
  params.frequency_penalty = c["frequency_penalty"].get<float>();
  return params;
}

json Cases(const char* kind) {
  const json fixture = testing::ReadJsonOrFail(testing::FixturePath("sampler/cases.json"));
  return fixture.contains(kind) ? fixture[kind] : json::array();
}

TEST(SamplerReferenceTest, PenalisedLogitsMatchTransformersAndVllmExactly) {
  const json cases = Cases("penalties");
  ASSERT_FALSE(cases.empty());
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    std::vector<float> logits = Row(c["logits"]);
    ApplyPenalties(logits, Penalties(c), History(c));
    // Exact: the same float32 operations in the same order.
    EXPECT_EQ(logits, Row(c["expected"])) << "case " << i;
  }
}

TEST(SamplerReferenceTest, SurvivingTokensMatchTransformersWarpers) {
  const json cases = Cases("filters");
  ASSERT_FALSE(cases.empty());
  Sampler sampler;
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    SamplingParams params = Penalties(c);
    params.temperature = c["temperature"].get<float>();
    params.top_k = c["top_k"].get<int32_t>();
    params.top_p = c["top_p"].get<float>();
    params.min_p = c["min_p"].get<float>();
    ASSERT_TRUE(params.Validate().ok());
    std::vector<float> logits = Row(c["logits"]);
    ApplyPenalties(logits, params, History(c));
    std::vector<int32_t> kept;
    std::vector<float> kept_logits;
    for (const SamplingCandidate& candidate : sampler.Filter(logits, params)) {
      kept.push_back(candidate.token);
      kept_logits.push_back(candidate.logit);
    }
    EXPECT_EQ(kept, c["kept"].get<std::vector<int32_t>>()) << "case " << i;
    EXPECT_EQ(kept_logits, c["kept_logits"].get<std::vector<float>>()) << "case " << i;
  }
}

TEST(SamplerReferenceTest, LogprobsMatchTorchLogSoftmax) {
  const json cases = Cases("logprobs");
  ASSERT_FALSE(cases.empty());
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    const std::vector<float> raw = Row(c["logits"]);
    const std::vector<float> expected = Row(c["logprobs"]);
    const std::vector<int32_t> top_ids = c["top_ids"].get<std::vector<int32_t>>();
    const std::vector<double> top_values = c["top_logprobs"].get<std::vector<double>>();
    SamplingParams params;
    params.top_logprobs = 20;
    SamplerRng rng(i);
    // Sampled tokens: the chosen one's logprob is its log_softmax entry.
    for (int draw = 0; draw < 20; ++draw) {
      std::vector<float> logits = raw;
      const SampledToken token = SampleToken(logits, params, TokenHistory(), rng);
      EXPECT_NEAR(token.logprob.value(), expected[token.token], 1e-5) << "case " << i;
      ASSERT_EQ(token.top_logprobs.size(), top_ids.size()) << "case " << i;
      for (size_t j = 0; j < top_ids.size(); ++j) {
        EXPECT_EQ(token.top_logprobs[j].first, top_ids[j]) << "case " << i << " rank " << j;
        EXPECT_NEAR(token.top_logprobs[j].second, top_values[j], 1e-5)
            << "case " << i << " rank " << j;
      }
    }
  }
}

}  // namespace
}  // namespace muserve
