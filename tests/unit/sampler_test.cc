// Behaviour of the sampler: each parameter changes what is drawn the way
// vLLM's does. Exact reference values (transformers' warpers, vLLM's
// penalties, torch's log_softmax) are in sampler_reference_test.cc.
#include "engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace muserve {
namespace {

const TokenHistory kNoHistory;

SamplingParams Greedy() {
  SamplingParams params;
  params.temperature = 0;
  return params;
}

// Distinct pseudo-random logits in [-4, 4), reproducible on any platform.
std::vector<float> RandomLogits(int vocab, uint64_t seed) {
  SamplerRng rng(seed);
  std::vector<float> logits(vocab);
  for (float& v : logits) v = static_cast<float>(rng.NextUniform() * 8.0 - 4.0);
  return logits;
}

int32_t Sample(std::vector<float> logits, const SamplingParams& params, SamplerRng& rng,
               const TokenHistory& history = kNoHistory) {
  return SampleToken(logits, params, history, rng).token;
}

// The ids of the k largest logits.
std::set<int32_t> TopIds(const std::vector<float>& logits, int k) {
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  return std::set<int32_t>(ids.begin(), ids.begin() + k);
}

TEST(SamplerTest, GreedyPicksTheLargestLogitAndTheLowestIdOnTies) {
  SamplerRng rng(1);
  EXPECT_EQ(Sample({0.5f, 3.0f, -1.0f, 2.9f}, Greedy(), rng), 1);
  EXPECT_EQ(Sample({1.0f, 4.0f, 4.0f, 0.0f}, Greedy(), rng), 1);
}

TEST(SamplerTest, GreedyDoesNotConsumeTheGenerator) {
  SamplerRng used(9), fresh(9);
  Sample(RandomLogits(50, 1), Greedy(), used);
  EXPECT_EQ(used.NextUniform(), fresh.NextUniform());
}

TEST(SamplerTest, EachSampledTokenConsumesExactlyOneUniform) {
  SamplingParams params;
  params.top_k = 3;
  params.top_p = 0.9f;
  SamplerRng used(11), fresh(11);
  for (int i = 0; i < 5; ++i) Sample(RandomLogits(200, i), params, used);
  for (int i = 0; i < 5; ++i) fresh.NextUniform();
  EXPECT_EQ(used.NextUniform(), fresh.NextUniform());
}

// The engine loop draws each row's uniform before the step (for a device
// sampler); sampling with it must equal sampling with the generator itself.
TEST(SamplerTest, PreDrawnUniformGivesTheSameTokensAndGeneratorState) {
  SamplingParams filtered;
  filtered.top_k = 40;
  filtered.top_p = 0.8f;
  filtered.temperature = 0.7f;
  filtered.logprobs = true;
  filtered.repetition_penalty = 1.3f;
  TokenHistory history;
  history.prompt_tokens = {3, 17, 40};
  history.output_counts = {{5, 2}, {17, 1}};
  const std::vector<int32_t> banned = {7};
  for (const SamplingParams& params : {filtered, Greedy(), SamplingParams{}}) {
    SamplerRng direct(21), predrawn(21);
    Sampler a, b;
    for (int i = 0; i < 50; ++i) {
      std::vector<float> logits = RandomLogits(300, 100 + i);
      std::vector<float> copy = logits;
      const SampledToken want = a.Sample(logits, params, history, direct, banned);
      SampleInput input;
      input.params = &params;
      input.history = &history;
      input.banned_tokens = banned;
      input.uniform = DrawSampleUniform(params, predrawn);
      const SampledToken got = b.Sample(copy, input);
      ASSERT_EQ(got.token, want.token) << "step " << i;
      ASSERT_EQ(got.logprob, want.logprob) << "step " << i;
    }
    EXPECT_EQ(direct.NextUniform(), predrawn.NextUniform());
  }
}

TEST(SamplerTest, TopKOfOneEqualsGreedy) {
  SamplingParams params;
  params.temperature = 1.5f;
  params.top_k = 1;
  SamplerRng rng(2);
  for (int i = 0; i < 200; ++i) {
    const std::vector<float> logits = RandomLogits(1000, 100 + i);
    EXPECT_EQ(Sample(logits, params, rng), Sample(logits, Greedy(), rng));
  }
}

TEST(SamplerTest, TinyTopPEqualsGreedy) {
  SamplingParams params;
  params.temperature = 1.5f;
  params.top_p = 1e-6f;
  SamplerRng rng(3);
  for (int i = 0; i < 200; ++i) {
    const std::vector<float> logits = RandomLogits(1000, 300 + i);
    EXPECT_EQ(Sample(logits, params, rng), Sample(logits, Greedy(), rng));
  }
}

TEST(SamplerTest, MinPCloseToOneEqualsGreedy) {
  SamplingParams params;
  params.temperature = 1.5f;
  // 1 keeps only the maximum; just below 1 could keep a runner-up within
  // 1e-4 of it in these random logits.
  params.min_p = 1.0f;
  SamplerRng rng(4);
  for (int i = 0; i < 200; ++i) {
    const std::vector<float> logits = RandomLogits(1000, 500 + i);
    EXPECT_EQ(Sample(logits, params, rng), Sample(logits, Greedy(), rng));
  }
}

TEST(SamplerTest, TopKOnlyYieldsTheKMostLikelyTokensAndAllOfThem) {
  const std::vector<float> logits = RandomLogits(100, 7);
  const std::set<int32_t> top5 = TopIds(logits, 5);
  SamplingParams params;
  params.temperature = 3.0f;  // Flat enough that unfiltered draws leave the top 5.
  params.top_k = 5;
  SamplerRng rng(5);
  std::set<int32_t> seen;
  for (int i = 0; i < 3000; ++i) {
    const int32_t token = Sample(logits, params, rng);
    EXPECT_TRUE(top5.contains(token)) << token;
    seen.insert(token);
  }
  EXPECT_EQ(seen, top5);
}

TEST(SamplerTest, TopKKeepsEveryTokenTiedWithTheKth) {
  // As transformers' TopKLogitsWarper: logits >= the k-th largest survive.
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 2.0f, 0.5f, 2.0f};
  SamplingParams params;
  params.top_k = 2;
  Sampler sampler;
  std::vector<int32_t> kept;
  for (const SamplingCandidate& c : sampler.Filter(logits, params)) kept.push_back(c.token);
  EXPECT_EQ(kept, (std::vector<int32_t>{1, 2, 3, 5}));
}

TEST(SamplerTest, LargeTopKKeepsTheKMostLikelyAndTheirTies) {
  // Above the heap selection's limit top_k takes the nth_element path.
  std::vector<float> logits = RandomLogits(5000, 31);
  std::vector<float> sorted = logits;
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  logits[4000] = sorted[1999];  // Ties the 2000th largest.
  SamplingParams params;
  params.top_k = 2000;
  params.temperature = 0.5f;
  Sampler sampler;
  std::set<int32_t> kept;
  for (const SamplingCandidate& c : sampler.Filter(logits, params)) {
    EXPECT_EQ(c.logit, logits[c.token] / 0.5f);
    kept.insert(c.token);
  }
  std::set<int32_t> expected = TopIds(logits, 2001);
  EXPECT_EQ(kept, expected);
}

TEST(SamplerTest, TopPHalfSamplesTheNucleusAtRenormalisedFrequencies) {
  // p = [0.25, 0.15, 0.1, 0.3, 0.2]: by mass, tokens 3 (0.3) then 0 (0.25)
  // reach 0.5; renormalised they are 0.3/0.55 and 0.25/0.55.
  const std::vector<float> probs = {0.25f, 0.15f, 0.1f, 0.3f, 0.2f};
  std::vector<float> logits;
  for (float p : probs) logits.push_back(std::log(p));
  SamplingParams params;
  params.top_p = 0.5f;
  SamplerRng rng(6);
  std::map<int32_t, int> counts;
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) ++counts[Sample(logits, params, rng)];
  EXPECT_EQ(counts.size(), 2u);
  // Binomial standard deviation sqrt(n p q) = 70; allow 5 of them.
  EXPECT_NEAR(counts[3], kDraws * 0.3 / 0.55, 5 * 70);
  EXPECT_NEAR(counts[0], kDraws * 0.25 / 0.55, 5 * 70);
}

TEST(SamplerTest, MinPDropsTokensBelowTheFractionOfTheMostLikely) {
  // p = [0.5, 0.3, 0.15, 0.05]; min_p 0.2 keeps p >= 0.1.
  std::vector<float> logits;
  for (float p : {0.5f, 0.3f, 0.15f, 0.05f}) logits.push_back(std::log(p));
  SamplingParams params;
  params.min_p = 0.2f;
  SamplerRng rng(8);
  std::map<int32_t, int> counts;
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) ++counts[Sample(logits, params, rng)];
  EXPECT_EQ(counts.count(3), 0u);
  // Renormalised over 0.95; standard deviation at most 71.
  EXPECT_NEAR(counts[2], kDraws * 0.15 / 0.95, 5 * 71);
}

TEST(SamplerTest, RepetitionPenaltyBreaksAGreedyLoop) {
  // The model keeps favouring token 2, which it has already produced.
  const std::vector<float> logits = {0.1f, 1.5f, 2.0f, -1.0f};
  SamplingParams params = Greedy();
  SamplerRng rng(1);
  TokenHistory history;
  history.prompt_tokens = {0};
  history.output_counts[2] = 1;
  EXPECT_EQ(Sample(logits, params, rng, history), 2);
  params.repetition_penalty = 1.5f;  // 2.0 / 1.5 = 1.33 < 1.5.
  EXPECT_EQ(Sample(logits, params, rng, history), 1);
}

TEST(SamplerTest, RepetitionPenaltyAppliesToPromptTokensToo) {
  const std::vector<float> logits = {0.1f, 1.5f, 2.0f, -1.0f};
  SamplingParams params = Greedy();
  params.repetition_penalty = 1.5f;
  TokenHistory history;
  history.prompt_tokens = {2};
  SamplerRng rng(1);
  EXPECT_EQ(Sample(logits, params, rng, history), 1);
}

TEST(SamplerTest, PenaltiesShiftLogitsByHandComputedAmounts) {
  std::vector<float> logits = {1.0f, 2.0f, -1.0f, 0.5f, 3.0f};
  SamplingParams params;
  params.repetition_penalty = 2.0f;
  params.frequency_penalty = 0.25f;
  params.presence_penalty = 0.5f;
  TokenHistory history;
  history.prompt_tokens = {3, 1};
  history.output_counts = {{1, 3}, {2, 1}};
  ApplyPenalties(logits, params, history);
  // 0: unseen. 1: in both, divided once: 2/2 - 0.25*3 - 0.5. 2: output only,
  // negative so multiplied: -1*2 - 0.25 - 0.5. 3: prompt only: 0.5/2.
  EXPECT_EQ(logits, (std::vector<float>{1.0f, -0.25f, -2.75f, 0.25f, 3.0f}));
}

TEST(SamplerTest, PresenceAndFrequencyPenaltiesIgnorePromptTokens) {
  std::vector<float> logits = {1.0f, 2.0f};
  SamplingParams params;
  params.frequency_penalty = 1.0f;
  params.presence_penalty = 1.0f;
  TokenHistory history;
  history.prompt_tokens = {0, 1};
  history.output_counts = {{1, 2}};
  ApplyPenalties(logits, params, history);
  EXPECT_EQ(logits, (std::vector<float>{1.0f, -1.0f}));
}

TEST(SamplerTest, NegativePresencePenaltyEncouragesRepetition) {
  const std::vector<float> logits = {1.0f, 1.2f, 0.0f};
  SamplingParams params = Greedy();
  params.presence_penalty = -0.5f;
  TokenHistory history;
  history.output_counts = {{0, 1}};
  SamplerRng rng(1);
  EXPECT_EQ(Sample(logits, params, rng, history), 0);
}

TEST(SamplerTest, HistoryTokensOutsideTheVocabularyAreIgnored) {
  std::vector<float> logits = {1.0f, 2.0f};
  SamplingParams params;
  params.repetition_penalty = 2.0f;
  params.presence_penalty = 1.0f;
  TokenHistory history;
  history.prompt_tokens = {-1, 5};
  history.output_counts = {{2, 1}};
  ApplyPenalties(logits, params, history);
  EXPECT_EQ(logits, (std::vector<float>{1.0f, 2.0f}));
}

TEST(SamplerTest, LogprobIsTheLogSoftmaxOfTheChosenToken) {
  SamplerRng rng(1);
  std::vector<float> logits = {1.0f, 2.0f, 3.0f, -INFINITY};
  SamplingParams params = Greedy();
  params.logprobs = true;
  const SampledToken token = SampleToken(logits, params, kNoHistory, rng);
  const double norm = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_EQ(token.token, 2);
  ASSERT_TRUE(token.logprob.has_value());
  EXPECT_NEAR(*token.logprob, 3.0 - norm, 1e-6);
}

TEST(SamplerTest, BannedTokensAreNeverChosenButLogprobsStayRaw) {
  const std::vector<float> raw = {1.0f, 2.0f, 3.0f, 0.5f};
  double norm = 0;
  for (float v : raw) norm += std::exp(v);
  norm = std::log(norm);
  SamplingParams params;
  params.temperature = 0.8f;
  params.top_logprobs = 2;
  SamplerRng rng(9);
  Sampler sampler;
  const std::vector<int32_t> banned = {2, 77};  // 77 is outside the vocabulary: ignored
  for (int i = 0; i < 200; ++i) {
    std::vector<float> logits = raw;
    const SampledToken token = sampler.Sample(logits, params, kNoHistory, rng, banned);
    ASSERT_NE(token.token, 2);
    EXPECT_NEAR(token.logprob.value(), raw[token.token] - norm, 1e-6);
    // The banned token is still the most likely under the raw distribution.
    ASSERT_EQ(token.top_logprobs.size(), 2u);
    EXPECT_EQ(token.top_logprobs[0].first, 2);
  }
}

TEST(SamplerTest, LogprobIsOnlyComputedWhenAskedFor) {
  SamplerRng rng(1);
  std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  const SampledToken token = SampleToken(logits, Greedy(), kNoHistory, rng);
  EXPECT_EQ(token.token, 2);
  EXPECT_FALSE(token.logprob.has_value());
  EXPECT_TRUE(token.top_logprobs.empty());
}

TEST(SamplerTest, LogprobsAreOfTheRawLogitsNotThePenalisedOnes) {
  const std::vector<float> raw = {0.1f, 1.5f, 2.0f, -1.0f};
  double norm = 0;
  for (float v : raw) norm += std::exp(v);
  norm = std::log(norm);
  SamplingParams params;
  params.temperature = 0.3f;
  params.top_k = 1;
  params.repetition_penalty = 3.0f;  // Makes token 1 the only candidate.
  params.top_logprobs = 2;
  TokenHistory history;
  history.output_counts = {{2, 4}};
  SamplerRng rng(1);
  std::vector<float> logits = raw;
  const SampledToken token = SampleToken(logits, params, history, rng);
  EXPECT_EQ(token.token, 1);
  EXPECT_NEAR(token.logprob.value(), 1.5 - norm, 1e-6);
  ASSERT_EQ(token.top_logprobs.size(), 2u);
  EXPECT_EQ(token.top_logprobs[0].first, 2);
  EXPECT_NEAR(token.top_logprobs[0].second, 2.0 - norm, 1e-6);
  EXPECT_EQ(token.top_logprobs[1].first, 1);
  // A penalised token that is chosen reports its raw logprob too.
  params.top_k = 0;
  params.temperature = 0;
  params.repetition_penalty = 1.0f;
  params.presence_penalty = 0.1f;  // 2.0 - 0.1 still beats 1.5.
  logits = raw;
  const SampledToken seen = SampleToken(logits, params, history, rng);
  EXPECT_EQ(seen.token, 2);
  EXPECT_NEAR(seen.logprob.value(), 2.0 - norm, 1e-6);
}

TEST(SamplerTest, TopLogprobsPutTheLowestIdFirstOnTiesAndSkipMaskedTokens) {
  std::vector<float> logits = {0.0f, 1.0f, -INFINITY, 1.0f, 0.5f};
  SamplingParams params = Greedy();
  params.top_logprobs = 20;
  SamplerRng rng(1);
  const SampledToken token = SampleToken(logits, params, kNoHistory, rng);
  std::vector<int32_t> ids;
  for (const auto& [id, logprob] : token.top_logprobs) ids.push_back(id);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 3, 4, 0}));
  EXPECT_EQ(token.top_logprobs[0].second, token.top_logprobs[1].second);
}

TEST(SamplerTest, SameSeedGivesTheSameTokensAndDifferentSeedsDiffer) {
  const std::vector<float> logits = RandomLogits(64, 12);
  SamplingParams params;
  params.top_p = 0.95f;
  SamplerRng a(42), b(42), c(43);
  std::vector<int32_t> from_a, from_b, from_c;
  for (int i = 0; i < 64; ++i) {
    from_a.push_back(Sample(logits, params, a));
    from_b.push_back(Sample(logits, params, b));
    from_c.push_back(Sample(logits, params, c));
  }
  EXPECT_EQ(from_a, from_b);
  EXPECT_NE(from_a, from_c);
}

TEST(SamplerTest, SeededTokensDoNotDependOnOtherSequencesInTheBatch) {
  // One Sampler shared by the engine loop: interleaving another request's
  // steps (other logits, params and generator) changes nothing for this one.
  SamplingParams params;
  params.temperature = 0.8f;
  params.top_k = 20;
  SamplingParams other_params;
  other_params.top_p = 0.7f;
  other_params.repetition_penalty = 1.3f;
  TokenHistory other_history;
  other_history.output_counts = {{3, 2}};
  Sampler shared, alone;
  SamplerRng mine(77), mine_alone(77), other(5);
  for (int step = 0; step < 50; ++step) {
    std::vector<float> a = RandomLogits(500, step), b = a, noise = RandomLogits(300, 900 + step);
    shared.Sample(noise, other_params, other_history, other);
    EXPECT_EQ(shared.Sample(a, params, kNoHistory, mine).token,
              alone.Sample(b, params, kNoHistory, mine_alone).token);
  }
}

TEST(SamplerTest, FiltersThatKeepEverythingDrawTheSameTokensAsNoFilters) {
  // Two code paths (a direct draw over the row, and a candidate list) must
  // agree, so that a no-op filter does not change a seeded request's output.
  std::vector<float> logits = RandomLogits(3000, 21);
  logits[5] = -INFINITY;
  logits[17] = NAN;
  SamplingParams plain;
  plain.temperature = 0.7f;
  SamplingParams no_op = plain;
  no_op.top_k = 3000;
  SamplerRng a(8), b(8);
  for (int i = 0; i < 300; ++i) {
    std::vector<float> copy_a = logits, copy_b = logits;
    EXPECT_EQ(SampleToken(copy_a, plain, kNoHistory, a).token,
              SampleToken(copy_b, no_op, kNoHistory, b).token);
  }
}

TEST(SamplerTest, FrequenciesFollowSoftmaxOfScaledLogits) {
  // p = softmax([0, ln 3] / 0.5) = softmax([0, ln 9]) = [0.1, 0.9].
  const std::vector<float> logits = {0.0f, static_cast<float>(std::log(3.0))};
  SamplingParams params;
  params.temperature = 0.5f;
  SamplerRng rng(7);
  int ones = 0;
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) ones += Sample(logits, params, rng);
  // Binomial standard deviation is sqrt(n p q) = 42; allow 5 of them.
  EXPECT_NEAR(ones, 0.9 * kDraws, 5 * 42);
}

TEST(SamplerTest, MaskedAndNanTokensAreNeverSampled) {
  const std::vector<float> logits = {-INFINITY, 0.0f, NAN, 0.0f};
  SamplingParams params;
  params.temperature = 2.0f;
  params.logprobs = true;
  SamplerRng rng(3);
  EXPECT_EQ(Sample(logits, Greedy(), rng), 1);
  for (int i = 0; i < 1000; ++i) {
    std::vector<float> copy = logits;
    const SampledToken token = SampleToken(copy, params, kNoHistory, rng);
    EXPECT_TRUE(token.token == 1 || token.token == 3) << token.token;
    EXPECT_TRUE(std::isfinite(token.logprob.value()));
  }
}

TEST(SamplerTest, AllMaskedGivesTokenZeroWithMinusInfinityLogprob) {
  const std::vector<float> logits = {-INFINITY, NAN};
  SamplingParams params;
  params.logprobs = true;
  SamplerRng rng(3);
  std::vector<float> copy = logits;
  const SampledToken token = SampleToken(copy, params, kNoHistory, rng);
  EXPECT_EQ(token.token, 0);
  EXPECT_EQ(token.logprob, -INFINITY);  // optional<float> == float: set and equal
}

TEST(SamplerTest, EmptyLogitsAreABugThatAborts) {
  SamplingParams params;
  SamplerRng rng(1);
  EXPECT_DEATH(SampleToken(std::span<float>(), params, kNoHistory, rng), "MUSERVE_CHECK failed");
}

struct InvalidCase {
  std::string field;
  void (*set)(SamplingParams&);
};

TEST(SamplerTest, ValidateRejectsEveryOutOfRangeFieldNamingItAndItsRange) {
  const std::vector<InvalidCase> cases = {
      {"temperature", [](SamplingParams& p) { p.temperature = -0.5f; }},
      {"temperature", [](SamplingParams& p) { p.temperature = 100.5f; }},
      {"temperature", [](SamplingParams& p) { p.temperature = NAN; }},
      {"top_k", [](SamplingParams& p) { p.top_k = -1; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 0.0f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 1.01f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = NAN; }},
      {"min_p", [](SamplingParams& p) { p.min_p = -0.1f; }},
      {"min_p", [](SamplingParams& p) { p.min_p = 1.5f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 0.0f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 10.5f; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = -2.1f; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = 2.1f; }},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = -2.5f; }},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = INFINITY; }},
      {"top_logprobs", [](SamplingParams& p) { p.top_logprobs = -1; }},
      {"top_logprobs", [](SamplingParams& p) { p.top_logprobs = 21; }},
  };
  for (const InvalidCase& c : cases) {
    SamplingParams params;
    c.set(params);
    const absl::Status status = params.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_TRUE(std::string(status.message()).starts_with(c.field + " must be"))
        << status.message();
  }
}

TEST(SamplerTest, ValidateAcceptsTheEdgesOfEveryRange) {
  SamplingParams params;
  EXPECT_TRUE(params.Validate().ok());
  params.temperature = 0;
  params.top_k = 1;
  params.top_p = 1e-9f;
  params.min_p = 1;
  params.repetition_penalty = 10;
  params.presence_penalty = -2;
  params.frequency_penalty = 2;
  params.top_logprobs = 20;
  params.seed = 0;
  EXPECT_TRUE(params.Validate().ok()) << params.Validate();
}

}  // namespace
}  // namespace muserve
