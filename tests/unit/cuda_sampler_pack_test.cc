// PackSamplerInputs (cuda/sampler_pack.h), the host side of GpuSampler: the
// flat parameters and lists the sampling kernel reads. Runs without a device.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda/sampler_pack.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace muserve::cuda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<int32_t> Slice(const SamplerPack& pack, int32_t begin, int32_t count) {
  return std::vector<int32_t>(pack.lists.begin() + begin, pack.lists.begin() + begin + count);
}

TEST(SamplerPackTest, PacksParametersAndListsPerRow) {
  constexpr int32_t kVocab = 100;
  SamplingParams sampled;
  sampled.temperature = 0.7f;
  sampled.top_k = 5;
  sampled.top_p = 0.9f;
  sampled.min_p = 0.05f;
  sampled.repetition_penalty = 1.3f;
  sampled.frequency_penalty = 0.5f;
  sampled.presence_penalty = -0.25f;
  sampled.top_logprobs = 3;
  TokenHistory history;
  // 7 and 9 are in both; 200 and -1 are outside the vocabulary; 11 has count 0.
  history.prompt_tokens = {4, 7, 9, 200, -1};
  history.output_counts = {{7, 2}, {9, 1}, {12, 3}, {11, 0}, {150, 4}};
  const std::vector<int32_t> banned = {3, 100, 1};

  SamplingParams greedy;
  greedy.temperature = 0.0f;
  greedy.repetition_penalty = 1.0f;

  std::vector<SampleInput> inputs(2);
  inputs[0] = {&sampled, &history, banned, 0.25};
  inputs[1] = {&greedy, &history, {}, 0.0};
  SamplerPack pack;
  ASSERT_TRUE(PackSamplerInputs(inputs, kVocab, pack).ok());
  ASSERT_EQ(pack.rows.size(), 2u);

  const SamplerRowParams& a = pack.rows[0];
  EXPECT_EQ(a.greedy, 0);
  EXPECT_EQ(a.uniform, 0.25);
  EXPECT_EQ(a.temperature, 0.7f);
  EXPECT_EQ(a.top_k, 5);
  EXPECT_EQ(a.top_p, 0.9f);
  EXPECT_EQ(a.min_p_on, 1);
  EXPECT_EQ(a.log_min_p, std::log(0.05f));
  EXPECT_EQ(a.wants_logprobs, 1);
  EXPECT_EQ(a.top_logprobs, 3);
  // Repetition: distinct prompt ∪ output (count > 0) tokens in the vocabulary.
  EXPECT_THAT(Slice(pack, a.repetition_begin, a.repetition_count), ElementsAre(4, 7, 9, 12));
  // Frequency / presence: output tokens with count > 0, then their counts.
  EXPECT_THAT(Slice(pack, a.output_begin, a.output_count), ElementsAre(7, 9, 12));
  EXPECT_THAT(Slice(pack, a.output_counts_begin, a.output_count), ElementsAre(2, 1, 3));
  EXPECT_THAT(Slice(pack, a.banned_begin, a.banned_count), ElementsAre(3, 1));
  EXPECT_EQ(a.saved_begin, 0);

  // The greedy row: no penalty lists (penalties off), its lists after row 0's.
  const SamplerRowParams& b = pack.rows[1];
  EXPECT_EQ(b.greedy, 1);
  EXPECT_EQ(b.wants_logprobs, 0);
  EXPECT_EQ(b.repetition_count, 0);
  EXPECT_EQ(b.output_count, 0);
  EXPECT_EQ(b.banned_count, 0);
  EXPECT_EQ(b.repetition_begin, a.banned_begin + a.banned_count);
  EXPECT_EQ(b.saved_begin, 7);
  EXPECT_EQ(pack.saved_floats, 7);
  EXPECT_EQ(pack.lists.size(), 12u);

  // The upload: rows, then lists, at an 8-byte-aligned offset.
  EXPECT_EQ(pack.ListsOffset(), 2 * sizeof(SamplerRowParams));
  EXPECT_EQ(pack.ListsOffset() % 8, 0u);
  EXPECT_EQ(pack.Bytes(), pack.ListsOffset() + 12 * sizeof(int32_t));
  std::vector<std::byte> bytes(pack.Bytes());
  pack.CopyTo(bytes.data());
  SamplerRowParams row1;
  std::memcpy(&row1, bytes.data() + sizeof(SamplerRowParams), sizeof(row1));
  EXPECT_EQ(row1.saved_begin, 7);
  int32_t first_banned = 0;
  std::memcpy(&first_banned, bytes.data() + pack.ListsOffset() + a.banned_begin * sizeof(int32_t),
              sizeof(first_banned));
  EXPECT_EQ(first_banned, 3);
}

TEST(SamplerPackTest, OnlyThePenaltiesInUseGetLists) {
  TokenHistory history;
  history.prompt_tokens = {1, 2};
  history.output_counts = {{3, 2}};
  SamplingParams repetition_only;
  repetition_only.repetition_penalty = 1.2f;
  SamplingParams presence_only;
  presence_only.presence_penalty = 0.5f;
  std::vector<SampleInput> inputs = {{&repetition_only, &history, {}, 0.5},
                                     {&presence_only, &history, {}, 0.5}};
  SamplerPack pack;
  ASSERT_TRUE(PackSamplerInputs(inputs, 10, pack).ok());
  EXPECT_EQ(pack.rows[0].repetition_count, 3);
  EXPECT_EQ(pack.rows[0].output_count, 0);
  EXPECT_EQ(pack.rows[1].repetition_count, 0);
  EXPECT_EQ(pack.rows[1].output_count, 1);
  EXPECT_EQ(pack.saved_floats, 4);
}

TEST(SamplerPackTest, GreedyBelowTheThresholdAndReuse) {
  SamplingParams tiny;
  tiny.temperature = kGreedyTemperature / 2;
  SamplingParams at;
  at.temperature = kGreedyTemperature;
  TokenHistory history;
  std::vector<SampleInput> inputs = {{&tiny, &history, {}, 0.0}, {&at, &history, {}, 0.5}};
  SamplerPack pack;
  ASSERT_TRUE(PackSamplerInputs(inputs, 10, pack).ok());
  EXPECT_EQ(pack.rows[0].greedy, 1);
  EXPECT_EQ(pack.rows[1].greedy, 0);
  // Packing again replaces, never appends.
  ASSERT_TRUE(PackSamplerInputs(std::span(inputs).first(1), 10, pack).ok());
  EXPECT_EQ(pack.rows.size(), 1u);
  EXPECT_TRUE(pack.lists.empty());
}

TEST(SamplerPackTest, RejectsBadInputsNamingRowAndField) {
  SamplingParams params;
  TokenHistory history;
  SamplerPack pack;
  std::vector<SampleInput> inputs = {{&params, &history, {}, 0.5}, {nullptr, &history, {}, 0.5}};
  EXPECT_THAT(PackSamplerInputs(inputs, 10, pack).message(), HasSubstr("inputs[1].params"));
  inputs[1] = {&params, nullptr, {}, 0.5};
  EXPECT_THAT(PackSamplerInputs(inputs, 10, pack).message(), HasSubstr("inputs[1].history"));
  inputs[1] = {&params, &history, {}, 1.0};
  EXPECT_THAT(PackSamplerInputs(inputs, 10, pack).message(), HasSubstr("inputs[1].uniform"));
  SamplingParams many;
  many.top_logprobs = kMaxTopLogprobs + 1;
  inputs[1] = {&many, &history, {}, 0.5};
  EXPECT_THAT(PackSamplerInputs(inputs, 10, pack).message(),
              HasSubstr("inputs[1].params.top_logprobs"));
}

}  // namespace
}  // namespace muserve::cuda
