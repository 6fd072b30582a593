// GpuSampler (cuda/gpu_sampler.h) against engine/sampling's Sampler, the
// reference, on random rows: vocabularies of 32000 and 151936 tokens and tiny
// ones; greedy, temperature, top_k, top_p, min_p and their combinations;
// penalties with histories; banned tokens; logprobs and top logprobs; ties,
// NaN and masked rows; mixed batches. The checks and their one allowance (a
// draw at a CDF boundary within rounding): tests/testing/sampler_check.h.
// Skipped where no CUDA device is visible.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cuda/gpu_sampler.h"
#include "engine/sampling/sampler.h"
#include "gtest/gtest.h"
#include "tests/testing/cuda_test_util.h"
#include "tests/testing/sampler_check.h"

namespace muserve::cuda {
namespace {

using ::muserve::testing::AllowedTokens;
using ::muserve::testing::DeviceArray;
using ::muserve::testing::HostSample;
using ::muserve::testing::InputOf;
using ::muserve::testing::kInf;
using ::muserve::testing::kLogprobTolerance;
using ::muserve::testing::RandomRows;
using ::muserve::testing::Row;

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

  int ExpectMatchesHost(const std::vector<Row>& rows, int32_t vocab_size, const std::string& what) {
    return ::muserve::testing::ExpectMatchesHost(rows, GpuSample(rows, vocab_size), what);
  }
  Row RandomRow(int32_t vocab, bool ties) { return random_rows_.Next(vocab, ties); }

  RandomRows random_rows_{20261126};
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
      const ::muserve::testing::Allowed allowed = AllowedTokens(rows[r], HostSample(rows[r]).token);
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
