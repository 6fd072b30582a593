// GpuSampler (cuda/gpu_sampler.h) against engine/sampling's Sampler, the
// reference, on random rows: vocabularies of 32000 and 151936 tokens and tiny
// ones; greedy, temperature, top_k, top_p, min_p and their combinations;
// penalties with histories; banned tokens; logprobs and top logprobs; ties,
// NaN and masked rows; mixed batches.
//
// Tokens must match exactly, with one allowance: the device sums the same
// weights (its exp is the host's operation for operation) in another order,
// so where the host finds the uniform's target (or top_p's) within
// kBoundaryEpsilon of the total of a cumulative-weight boundary, the token
// on the other side is accepted too. Those rows are counted, and must be rare.
// Logprobs are within 1e-5. Skipped where no CUDA device is visible.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cuda/gpu_sampler.h"
#include "engine/sampling/fast_exp.h"
#include "engine/sampling/sampler.h"
#include "gtest/gtest.h"
#include "tests/testing/cuda_test_util.h"

namespace muserve::cuda {
namespace {

using ::muserve::testing::DeviceArray;

constexpr float kInf = std::numeric_limits<float>::infinity();
// Relative to the total weight; the order-dependent error of double sums of
// <= 152k weights in [0, 1] is below 2e-11 of the total.
constexpr double kBoundaryEpsilon = 1e-9;
constexpr float kLogprobTolerance = 1e-5f;

struct Row {
  std::vector<float> logits;
  SamplingParams params;
  TokenHistory history;
  std::vector<int32_t> banned;
  double uniform = 0.0;
};

SampleInput InputOf(const Row& row) {
  SampleInput input;
  input.params = &row.params;
  input.history = &row.history;
  input.banned_tokens = row.banned;
  input.uniform = row.uniform;
  return input;
}

SampledToken HostSample(const Row& row) {
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

std::vector<float> Weights(std::span<const SamplingCandidate> candidates) {
  float max_logit = -kInf;
  for (const SamplingCandidate& c : candidates) max_logit = std::max(max_logit, c.logit);
  std::vector<float> weights;
  for (const SamplingCandidate& c : candidates) {
    weights.push_back(sampling_internal::ExpNonPositive(c.logit - max_logit));
  }
  return weights;
}

Allowed AllowedTokens(const Row& row, int32_t host_token) {
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

bool SameLogprob(float got, float want) {
  if (std::isinf(want) || std::isinf(got)) return got == want;
  return std::abs(got - want) <= kLogprobTolerance;
}

class CudaSamplerTest : public ::testing::Test {
 protected:
  void SetUp() override { MUSERVE_SKIP_WITHOUT_CUDA_DEVICE(); }

  // Samples `rows` (all of vocab_size logits) in one GpuSampler call.
  std::vector<SampledToken> GpuSample(const std::vector<Row>& rows, int32_t vocab_size) {
    std::vector<float> flat;
    std::vector<SampleInput> inputs;
    for (const Row& row : rows) {
      EXPECT_EQ(row.logits.size(), static_cast<size_t>(vocab_size));
      flat.insert(flat.end(), row.logits.begin(), row.logits.end());
      inputs.push_back(InputOf(row));
    }
    std::vector<SampledToken> out(rows.size());
    absl::StatusOr<std::unique_ptr<GpuSampler>> sampler =
        GpuSampler::Create(vocab_size, static_cast<int32_t>(rows.size()), nullptr);
    EXPECT_TRUE(sampler.ok()) << sampler.status();
    if (!sampler.ok()) return out;
    DeviceArray<float> logits(flat);
    const absl::Status status = (*sampler)->Sample(logits.get(), inputs, out);
    EXPECT_TRUE(status.ok()) << status;
    return out;
  }

  // Compares every row with the host; returns how many needed the boundary
  // allowance.
  int ExpectMatchesHost(const std::vector<Row>& rows, int32_t vocab_size, const std::string& what) {
    const std::vector<SampledToken> got = GpuSample(rows, vocab_size);
    int near = 0;
    for (size_t r = 0; r < rows.size(); ++r) {
      const Row& row = rows[r];
      const SampledToken want = HostSample(row);
      const std::string where = absl::StrCat(
          what, " row ", r, ": T=", row.params.temperature, " top_k=", row.params.top_k,
          " top_p=", row.params.top_p, " min_p=", row.params.min_p,
          " rep=", row.params.repetition_penalty, " u=", row.uniform, " host token ", want.token,
          " device token ", got[r].token);
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

  // A random row: logits N(0, scale) (rounded to multiples of 0.5 for ties
  // when `ties`), a few boosted, NaN and -inf sprinkled in; parameters of one
  // of the filter modes; a history and bans on some rows.
  Row RandomRow(int32_t vocab, bool ties) {
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

  double Uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  int Index(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  std::mt19937_64 rng_{20261126};
};

TEST_F(CudaSamplerTest, MatchesHostOnRandomRowsOf32000) {
  int near = 0;
  int rows = 0;
  for (int batch = 0; batch < 8; ++batch) {
    std::vector<Row> batch_rows;
    for (int i = 0; i < 40; ++i) batch_rows.push_back(RandomRow(32000, i % 4 == 0));
    near += ExpectMatchesHost(batch_rows, 32000, absl::StrCat("batch ", batch));
    rows += static_cast<int>(batch_rows.size());
  }
  EXPECT_LE(near, rows / 100) << "rows that needed the boundary allowance";
}

TEST_F(CudaSamplerTest, MatchesHostOnRandomRowsOf151936) {
  int near = 0;
  int rows = 0;
  for (int batch = 0; batch < 3; ++batch) {
    std::vector<Row> batch_rows;
    for (int i = 0; i < 24; ++i) batch_rows.push_back(RandomRow(151936, i % 3 == 0));
    near += ExpectMatchesHost(batch_rows, 151936, absl::StrCat("batch ", batch));
    rows += static_cast<int>(batch_rows.size());
  }
  EXPECT_LE(near, 1 + rows / 100) << "rows that needed the boundary allowance";
}

TEST_F(CudaSamplerTest, MatchesHostOnTinyVocabularies) {
  for (int32_t vocab : {1, 2, 3, 7, 33, 1025}) {
    std::vector<Row> rows;
    for (int i = 0; i < 64; ++i) rows.push_back(RandomRow(vocab, i % 2 == 0));
    ExpectMatchesHost(rows, vocab, absl::StrCat("vocab ", vocab));
  }
}

TEST_F(CudaSamplerTest, MaskedRowsGiveTokenZeroWithMinusInfinity) {
  constexpr int32_t kVocab = 300;
  std::vector<Row> rows(4);
  rows[0].logits.assign(kVocab, -kInf);
  rows[1].logits.assign(kVocab, NAN);
  rows[2].logits.assign(kVocab, 1.0f);  // every token banned
  for (int32_t t = 0; t < kVocab; ++t) rows[2].banned.push_back(t);
  rows[3].logits.assign(kVocab, -kInf);
  rows[3].params.temperature = 0.0f;
  for (Row& row : rows) {
    row.params.logprobs = true;
    row.params.top_logprobs = 3;
    row.uniform = 0.5;
  }
  const std::vector<SampledToken> got = GpuSample(rows, kVocab);
  for (size_t r = 0; r < rows.size(); ++r) {
    EXPECT_EQ(got[r].token, 0) << r;
    ASSERT_TRUE(got[r].logprob.has_value()) << r;
    EXPECT_EQ(*got[r].logprob, -kInf) << r;
  }
  EXPECT_TRUE(got[0].top_logprobs.empty());
  // The banned row's logprobs are those of the raw (uniform) distribution.
  ASSERT_EQ(got[2].top_logprobs.size(), 3u);
  EXPECT_EQ(got[2].top_logprobs[0].first, 0);
  EXPECT_EQ(got[2].top_logprobs[2].first, 2);
  EXPECT_NEAR(got[2].top_logprobs[0].second, -std::log(300.0f), kLogprobTolerance);
  ExpectMatchesHost(rows, kVocab, "masked");
}

TEST_F(CudaSamplerTest, GreedyAndTopKTiesGoToTheLowestIds) {
  constexpr int32_t kVocab = 5000;
  Row greedy;
  greedy.logits.assign(kVocab, 0.0f);
  greedy.logits[4000] = greedy.logits[17] = greedy.logits[2500] = 3.0f;
  greedy.logits[9] = NAN;
  greedy.params.temperature = 0.0f;
  greedy.params.top_logprobs = 2;
  // top_k = 2 keeps all three tied maxima; u near 1 draws the last of them.
  Row top_k = greedy;
  top_k.params.temperature = 1.0f;
  top_k.params.top_k = 2;
  top_k.uniform = 0.99;
  // top_p = 0.5 keeps two of the three ties: the lower ids.
  Row top_p = top_k;
  top_p.params.top_k = 0;
  top_p.params.top_p = 0.5f;
  for (auto& l : top_p.logits) l = l == 3.0f ? 10.0f : l;
  const std::vector<Row> rows = {greedy, top_k, top_p};
  const std::vector<SampledToken> got = GpuSample(rows, kVocab);
  EXPECT_EQ(got[0].token, 17);
  ASSERT_EQ(got[0].top_logprobs.size(), 2u);
  EXPECT_EQ(got[0].top_logprobs[0].first, 17);
  EXPECT_EQ(got[0].top_logprobs[1].first, 2500);
  EXPECT_EQ(got[1].token, 4000);
  EXPECT_EQ(got[2].token, 2500);
  ExpectMatchesHost(rows, kVocab, "ties");
}

TEST_F(CudaSamplerTest, RowsAreIndependentOfTheirBatch) {
  constexpr int32_t kVocab = 32000;
  std::vector<Row> rows;
  for (int i = 0; i < 12; ++i) rows.push_back(RandomRow(kVocab, i % 3 == 0));
  for (Row& row : rows) row.params.logprobs = true;
  const std::vector<SampledToken> together = GpuSample(rows, kVocab);
  for (size_t r = 0; r < rows.size(); ++r) {
    const std::vector<SampledToken> alone = GpuSample({rows[r]}, kVocab);
    EXPECT_EQ(alone[0].token, together[r].token) << r;
    EXPECT_EQ(alone[0].logprob, together[r].logprob) << r;
    EXPECT_EQ(alone[0].top_logprobs, together[r].top_logprobs) << r;
  }
}

TEST_F(CudaSamplerTest, ReusesBuffersAcrossCallsOfGrowingHistories) {
  constexpr int32_t kVocab = 1000;
  absl::StatusOr<std::unique_ptr<GpuSampler>> sampler = GpuSampler::Create(kVocab, 4, nullptr);
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  for (int step = 0; step < 5; ++step) {
    std::vector<Row> rows;
    for (int i = 0; i < 4; ++i) {
      Row row = RandomRow(kVocab, false);
      row.params.repetition_penalty = 1.5f;
      for (int t = 0; t < 100 * (step + 1); ++t) row.history.output_counts[t * 7 % kVocab] += 1;
      rows.push_back(std::move(row));
    }
    std::vector<float> flat;
    std::vector<SampleInput> inputs;
    for (const Row& row : rows) {
      flat.insert(flat.end(), row.logits.begin(), row.logits.end());
      inputs.push_back(InputOf(row));
    }
    DeviceArray<float> logits(flat);
    std::vector<SampledToken> out(rows.size());
    ASSERT_TRUE((*sampler)->Sample(logits.get(), inputs, out).ok());
    for (size_t r = 0; r < rows.size(); ++r) {
      const Allowed allowed = AllowedTokens(rows[r], HostSample(rows[r]).token);
      EXPECT_NE(std::find(allowed.tokens.begin(), allowed.tokens.end(), out[r].token),
                allowed.tokens.end())
          << "step " << step << " row " << r;
    }
  }
}

TEST_F(CudaSamplerTest, RejectsMismatchedOrTooManyRows) {
  absl::StatusOr<std::unique_ptr<GpuSampler>> sampler = GpuSampler::Create(10, 2, nullptr);
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  DeviceArray<float> logits(std::vector<float>(30));
  SamplingParams params;
  TokenHistory history;
  std::vector<SampleInput> inputs(3, SampleInput{&params, &history, {}, 0.5});
  std::vector<SampledToken> out(3);
  EXPECT_EQ((*sampler)->Sample(logits.get(), inputs, out).code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<SampledToken> two(2);
  EXPECT_EQ((*sampler)->Sample(logits.get(), std::span(inputs).first(1), two).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GpuSampler::Create(0, 1, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace muserve::cuda
