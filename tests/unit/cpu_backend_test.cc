// CpuBackend against transformers (tests/reference/make_model_fixtures.py):
// prefill logits, every position's logits and 32 greedy steps, for Llama
// (llama3 RoPE, GQA), Qwen2 (biases, tied embeddings), Mistral (head_dim !=
// hidden / heads, sliding window) and a BF16-weight Llama (linear RoPE).
#include "engine/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/cpu/layer_ops.h"
#include "gtest/gtest.h"
#include "tests/testing/step_builder.h"
#include "tests/unit/cpu_backend_testing.h"

namespace muserve {
namespace {

using testing::LoadModelReference;
using testing::MakeFixtureBackend;
using testing::ModelReference;
using testing::RunStep;
using testing::StepBuilder;

// max |a - b| <= 1e-4 * (max(ref) - min(ref)), row by row.
void ExpectLogitsClose(const std::vector<float>& actual, const std::vector<float>& expected,
                       int64_t vocab, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t r = 0; r * vocab < expected.size(); ++r) {
    const auto begin = expected.begin() + r * vocab;
    const auto [lo, hi] = std::minmax_element(begin, begin + vocab);
    const double tolerance = 1e-4 * (*hi - *lo);
    double worst = 0;
    for (int64_t i = 0; i < vocab; ++i)
      worst = std::max(worst, std::abs(static_cast<double>(actual[r * vocab + i]) - begin[i]));
    EXPECT_LE(worst, tolerance) << what << " row " << r;
  }
}

class CpuBackendReferenceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CpuBackendReferenceTest, PrefillLastLogitsMatchTransformers) {
  const ModelReference ref = LoadModelReference(GetParam());
  auto backend = MakeFixtureBackend(GetParam());
  ASSERT_NE(backend, nullptr);
  StepBuilder builder(16, 64);
  int index = 0;
  for (const auto& prompt : ref.json["prompts"]) {
    const std::vector<int32_t> tokens = prompt["tokens"].get<std::vector<int32_t>>();
    const int seq = builder.AddSequence();
    builder.Append(seq, tokens);
    const std::vector<float> logits = RunStep(*backend, builder.Build());
    ExpectLogitsClose(logits, ref.Rows(prompt["last_logits_offset"].get<int64_t>(), 1),
                      ref.vocab_size, GetParam() + " prompt " + std::to_string(index++));
    builder.Free(seq);
  }
}

// One token per step with every step sampled: every position's logits, which
// also exercises the KV cache across many steps.
TEST_P(CpuBackendReferenceTest, EveryPositionMatchesTransformers) {
  const ModelReference ref = LoadModelReference(GetParam());
  auto backend = MakeFixtureBackend(GetParam());
  ASSERT_NE(backend, nullptr);
  const auto& prompt = ref.json["prompts"].back();
  const std::vector<int32_t> tokens = prompt["tokens"].get<std::vector<int32_t>>();
  StepBuilder builder(16, 64);
  const int seq = builder.AddSequence();
  std::vector<float> all;
  for (int32_t token : tokens) {
    builder.Append(seq, std::vector<int32_t>{token});
    const std::vector<float> logits = RunStep(*backend, builder.Build());
    all.insert(all.end(), logits.begin(), logits.end());
  }
  ExpectLogitsClose(
      all,
      ref.Rows(prompt["all_logits_offset"].get<int64_t>(), static_cast<int64_t>(tokens.size())),
      ref.vocab_size, GetParam());
}

TEST_P(CpuBackendReferenceTest, GreedyDecodingMatchesTransformersFor32Steps) {
  const ModelReference ref = LoadModelReference(GetParam());
  auto backend = MakeFixtureBackend(GetParam(), /*threads=*/2);
  ASSERT_NE(backend, nullptr);
  const auto& greedy = ref.json["greedy"];
  const std::vector<int32_t> expected = greedy["tokens"].get<std::vector<int32_t>>();
  const std::vector<float> expected_logits =
      ref.Rows(greedy["logits_offset"].get<int64_t>(), static_cast<int64_t>(expected.size()));
  StepBuilder builder(16, 64);
  const int seq = builder.AddSequence();
  builder.Append(
      seq,
      ref.json["prompts"][greedy["prompt_index"].get<int>()]["tokens"].get<std::vector<int32_t>>());
  std::vector<int32_t> generated;
  std::vector<float> all;
  for (size_t step = 0; step < expected.size(); ++step) {
    const std::vector<float> logits = RunStep(*backend, builder.Build());
    ASSERT_EQ(logits.size(), static_cast<size_t>(ref.vocab_size));
    all.insert(all.end(), logits.begin(), logits.end());
    generated.push_back(testing::Argmax(logits.data(), ref.vocab_size));
    builder.Append(seq, std::vector<int32_t>{generated.back()});
  }
  EXPECT_EQ(generated, expected);
  ExpectLogitsClose(all, expected_logits, ref.vocab_size, GetParam() + " greedy");
}

TEST_P(CpuBackendReferenceTest, RopeInverseFrequenciesMatchTransformers) {
  const ModelReference ref = LoadModelReference(GetParam());
  auto backend = MakeFixtureBackend(GetParam());
  ASSERT_NE(backend, nullptr);
  const std::vector<float> expected = ref.json["inv_freq"].get<std::vector<float>>();
  const std::vector<float> actual = cpu::RopeInverseFrequencies(backend->config());
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    // Bit-identical with glibc's powf; 4 ulps leave room for another libm.
    EXPECT_FLOAT_EQ(actual[i], expected[i]) << i;
}

INSTANTIATE_TEST_SUITE_P(Architectures, CpuBackendReferenceTest,
                         ::testing::Values("llama", "qwen2", "mistral", "llama_bf16"));

}  // namespace
}  // namespace muserve
