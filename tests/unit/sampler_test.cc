#include "engine/sampling/sampler.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace muserve {
namespace {

TEST(SamplerTest, GreedyPicksTheLargestLogitAndTheLowestIdOnTies) {
  SamplingParams greedy;
  greedy.temperature = 0;
  SamplerRng rng(1);
  EXPECT_EQ(SampleToken(std::vector<float>{0.5f, 3.0f, -1.0f, 2.9f}, greedy, rng).token, 1);
  EXPECT_EQ(SampleToken(std::vector<float>{1.0f, 4.0f, 4.0f, 0.0f}, greedy, rng).token, 1);
}

TEST(SamplerTest, LogprobIsTheLogSoftmaxOfTheChosenToken) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, -INFINITY};
  SamplingParams greedy;
  greedy.temperature = 0;
  SamplerRng rng(1);
  const SampledToken token = SampleToken(logits, greedy, rng);
  const double norm = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_EQ(token.token, 2);
  EXPECT_NEAR(token.logprob, 3.0 - norm, 1e-6);
}

TEST(SamplerTest, SameSeedGivesTheSameTokens) {
  const std::vector<float> logits = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
  SamplingParams params;
  params.temperature = 1.0f;
  SamplerRng a(42), b(42), c(43);
  std::vector<int32_t> from_a, from_b, from_c;
  for (int i = 0; i < 64; ++i) {
    from_a.push_back(SampleToken(logits, params, a).token);
    from_b.push_back(SampleToken(logits, params, b).token);
    from_c.push_back(SampleToken(logits, params, c).token);
  }
  EXPECT_EQ(from_a, from_b);
  EXPECT_NE(from_a, from_c);
}

TEST(SamplerTest, FrequenciesFollowSoftmaxOfScaledLogits) {
  // p = softmax([0, ln 3] / 0.5) = softmax([0, ln 9]) = [0.1, 0.9].
  const std::vector<float> logits = {0.0f, static_cast<float>(std::log(3.0))};
  SamplingParams params;
  params.temperature = 0.5f;
  SamplerRng rng(7);
  int ones = 0;
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) ones += SampleToken(logits, params, rng).token;
  // Binomial standard deviation is sqrt(n p q) = 42; allow 5 of them.
  EXPECT_NEAR(ones, 0.9 * kDraws, 5 * 42);
}

TEST(SamplerTest, MaskedTokensAreNeverSampled) {
  const std::vector<float> logits = {-INFINITY, 0.0f, -INFINITY, 0.0f};
  SamplingParams params;
  params.temperature = 2.0f;
  SamplerRng rng(3);
  for (int i = 0; i < 1000; ++i) {
    const int32_t token = SampleToken(logits, params, rng).token;
    EXPECT_TRUE(token == 1 || token == 3) << token;
  }
}

TEST(SamplerTest, ValidateRejectsOutOfRangeTemperatureNamingTheField) {
  SamplingParams params;
  params.temperature = -0.5f;
  EXPECT_EQ(params.Validate().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(params.Validate().message().find("temperature"), std::string_view::npos);
  params.temperature = NAN;
  EXPECT_FALSE(params.Validate().ok());
  params.temperature = 0.7f;
  EXPECT_TRUE(params.Validate().ok());
}

}  // namespace
}  // namespace muserve

namespace muserve {
namespace {

TEST(SamplerTest, NanLogitsAreTreatedAsMasked) {
  const std::vector<float> logits = {NAN, 1.0f, NAN, 0.5f};
  SamplingParams greedy;
  greedy.temperature = 0;
  SamplerRng rng(5);
  EXPECT_EQ(SampleToken(logits, greedy, rng).token, 1);
  SamplingParams sampled;
  sampled.temperature = 1.0f;
  for (int i = 0; i < 500; ++i) {
    const SampledToken token = SampleToken(logits, sampled, rng);
    EXPECT_TRUE(token.token == 1 || token.token == 3) << token.token;
    EXPECT_TRUE(std::isfinite(token.logprob));
  }
}

TEST(SamplerTest, EmptyLogitsAreABugThatAborts) {
  SamplingParams params;
  SamplerRng rng(1);
  EXPECT_DEATH(SampleToken(std::span<const float>(), params, rng), "MUSERVE_CHECK failed");
}

}  // namespace
}  // namespace muserve
