// The sampling kernel's own code (cuda/kernels/sampling_kernel.cuh), run on
// the host under tests/testing/cuda_emulation.h, against engine/sampling's
// Sampler with the checks of the GPU test (tests/testing/sampler_check.h):
// the kernel's logic (reductions, key searches, tie rules, the draw's block
// scan, penalties and logprobs) verified on machines without a device. The
// emulated blocks mostly have 32 to 128 threads (the device's 1024 on a few
// rows only) and the rows are small, since every thread is an OS thread.
// clang-format off
#include "tests/testing/cuda_emulation.h"
// After the emulation, which defines what the kernel's CUDA code uses.
#include "cuda/kernels/sampling_kernel.cuh"
// clang-format on

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cuda/sampler_pack.h"
#include "engine/sampling/sampler.h"
#include "gtest/gtest.h"
#include "tests/testing/sampler_check.h"

namespace muserve::cuda {
namespace {

using ::muserve::testing::ExpectMatchesHost;
using ::muserve::testing::kInf;
using ::muserve::testing::RandomRows;
using ::muserve::testing::Row;

// Samples `rows` as GpuSampler does (PackSamplerInputs, the kernel, then
// UnpackSamplerResult), with blocks of kThreads emulated threads.
template <int kThreads>
std::vector<SampledToken> EmulatedSample(const std::vector<Row>& rows, int32_t vocab_size) {
  std::vector<float> logits;
  std::vector<SampleInput> inputs;
  for (const Row& row : rows) {
    EXPECT_EQ(row.logits.size(), static_cast<size_t>(vocab_size));
    logits.insert(logits.end(), row.logits.begin(), row.logits.end());
    inputs.push_back(::muserve::testing::InputOf(row));
  }
  SamplerPack pack;
  const absl::Status packed = PackSamplerInputs(inputs, vocab_size, pack);
  EXPECT_TRUE(packed.ok()) << packed;
  std::vector<float> saved(static_cast<size_t>(pack.saved_floats) + 1);
  std::vector<SamplerRowResult> results(rows.size());
  cuda_emulation::Launch(static_cast<unsigned>(rows.size()), kThreads, [&] {
    sampling_kernel::SampleRowsKernel<kThreads>(logits.data(), vocab_size, pack.rows.data(),
                                                pack.lists.data(), saved.data(), results.data());
  });
  std::vector<SampledToken> out(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) UnpackSamplerResult(results[r], rows[r].params, out[r]);
  return out;
}

TEST(CudaSamplerEmulationTest, MatchesHostOnRandomRows) {
  RandomRows random(20261127);
  int near = 0;
  int total = 0;
  for (int32_t vocab : {1, 2, 7, 100, 1000, 3000}) {
    std::vector<Row> rows;
    for (int i = 0; i < 24; ++i) rows.push_back(random.Next(vocab, i % 3 == 0));
    near += ExpectMatchesHost(rows, EmulatedSample<64>(rows, vocab), absl::StrCat("vocab ", vocab));
    total += static_cast<int>(rows.size());
  }
  EXPECT_LE(near, 1 + total / 100) << "rows that needed the boundary allowance";
}

TEST(CudaSamplerEmulationTest, OneWarpAndFourWarpBlocksAgree) {
  RandomRows random(7);
  std::vector<Row> rows;
  for (int i = 0; i < 12; ++i) rows.push_back(random.Next(500, i % 2 == 0));
  ExpectMatchesHost(rows, EmulatedSample<32>(rows, 500), "32 threads");
  ExpectMatchesHost(rows, EmulatedSample<128>(rows, 500), "128 threads");
}

// The device's block size (1024 threads, 32 warps) on a few rows.
TEST(CudaSamplerEmulationTest, MatchesHostWithTheDeviceBlockSize) {
  RandomRows random(11);
  std::vector<Row> rows;
  for (int i = 0; i < 3; ++i) rows.push_back(random.Next(2000, i % 2 == 0));
  ExpectMatchesHost(rows, EmulatedSample<1024>(rows, 2000), "1024 threads");
}

TEST(CudaSamplerEmulationTest, TiesMaskedRowsAndPenalisedChoices) {
  constexpr int32_t kVocab = 700;
  Row base;
  base.logits.assign(kVocab, 0.0f);
  base.logits[600] = base.logits[17] = base.logits[250] = 3.0f;
  base.logits[9] = NAN;
  base.params.logprobs = true;
  base.params.top_logprobs = 4;
  std::vector<Row> rows;
  Row greedy = base;
  greedy.params.temperature = 0.0f;
  rows.push_back(greedy);
  Row top_k = base;  // top_k = 2 keeps the three tied maxima
  top_k.params.top_k = 2;
  top_k.uniform = 0.99;
  rows.push_back(top_k);
  Row top_p = base;  // top_p keeps two of three ties: the lower ids
  for (float& l : top_p.logits) l = l == 3.0f ? 10.0f : l;
  top_p.params.top_p = 0.5f;
  top_p.uniform = 0.99;
  rows.push_back(top_p);
  Row masked = base;
  masked.logits.assign(kVocab, -kInf);
  rows.push_back(masked);
  Row banned = base;  // all banned: token 0, logprob -inf, raw top logprobs
  for (int32_t t = 0; t < kVocab; ++t) banned.banned.push_back(t);
  rows.push_back(banned);
  Row penalised = base;  // a heavy repetition penalty on 17 and 250 leaves 600
  penalised.params.temperature = 0.0f;
  penalised.params.repetition_penalty = 10.0f;
  penalised.history.prompt_tokens = {17};
  penalised.history.output_counts = {{250, 2}};
  rows.push_back(penalised);
  const std::vector<SampledToken> got = EmulatedSample<64>(rows, kVocab);
  ExpectMatchesHost(rows, got, "fixed rows");
  EXPECT_EQ(got[0].token, 17);
  EXPECT_EQ(got[1].token, 600);
  EXPECT_EQ(got[2].token, 250);
  EXPECT_EQ(got[3].token, 0);
  EXPECT_EQ(got[3].logprob, -kInf);
  EXPECT_EQ(got[4].token, 0);
  EXPECT_EQ(got[4].logprob, -kInf);
  ASSERT_EQ(got[4].top_logprobs.size(), 4u);
  EXPECT_EQ(got[4].top_logprobs[0].first, 17);
  EXPECT_EQ(got[5].token, 600);
  // The logprob of the raw logit: 600 ties 17 and 250 before the penalty.
  ASSERT_TRUE(got[5].logprob.has_value());
  EXPECT_EQ(*got[5].logprob, got[5].top_logprobs[0].second);
}

}  // namespace
}  // namespace muserve::cuda
