// Tensor parallelism on the CPU: the shard layout and its start-up errors,
// the ranks' weight slices, and TP = 2 and 4 against TP = 1 (greedy tokens
// equal over 32 steps, logits within 1e-5 relative) for Llama, Qwen2 (biases,
// tied embeddings) and Mistral (sliding window), with KV heads replicated
// where a model has fewer of them than ranks.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/cpu/cpu_tensor_parallel.h"
#include "engine/model/shard.h"
#include "engine/parallel/tensor_parallel_backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/step_builder.h"

namespace muserve {
namespace {

using testing::FixturePath;
using ::testing::HasSubstr;
using testing::StepBuilder;

ModelConfig Config(int64_t heads, int64_t kv_heads, int64_t intermediate, int64_t vocab) {
  ModelConfig c;
  c.hidden_size = 64;
  c.num_hidden_layers = 1;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = 16;
  c.intermediate_size = intermediate;
  c.vocab_size = vocab;
  c.max_position_embeddings = 128;
  return c;
}

TEST(ShardLayoutTest, SizesThatDoNotDivideAreStartUpErrorsNamingTheField) {
  struct Case {
    ModelConfig config;
    int32_t size;
    std::string message;
  };
  const std::vector<Case> cases = {
      {Config(6, 2, 128, 256), 4,
       "num_attention_heads 6 is not divisible by tensor_parallel_size 4"},
      {Config(12, 3, 128, 256), 2, "num_key_value_heads 3 is neither divisible by"},
      {Config(4, 4, 130, 256), 4,
       "intermediate_size 130 is not divisible by tensor_parallel_size 4"},
      {Config(4, 4, 128, 258), 4, "vocab_size 258 is not divisible by tensor_parallel_size 4"},
      {Config(4, 4, 128, 256), 0, "tensor_parallel_size must be >= 1, got 0"},
  };
  for (const Case& c : cases) {
    const absl::Status status = ValidateTensorParallelSize(c.config, c.size);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.message));
  }
}

TEST(ShardLayoutTest, RanksSplitHeadsIntermediateAndVocabulary) {
  const ModelConfig config = Config(8, 4, 128, 256);
  for (int32_t rank = 0; rank < 2; ++rank) {
    absl::StatusOr<ShardLayout> l = MakeShardLayout(config, rank, 2);
    ASSERT_TRUE(l.ok()) << l.status();
    EXPECT_EQ(l->head_begin, 4 * rank);
    EXPECT_EQ(l->num_heads, 4);
    EXPECT_EQ(l->kv_head_begin, 2 * rank);
    EXPECT_EQ(l->num_kv_heads, 2);
    EXPECT_EQ(l->intermediate_begin, 64 * rank);
    EXPECT_EQ(l->intermediate_size, 64);
    EXPECT_EQ(l->vocab_begin, 128 * rank);
    EXPECT_EQ(l->vocab_size, 128);
  }
}

TEST(ShardLayoutTest, FewerKvHeadsThanRanksAreReplicatedOverConsecutiveRanks) {
  // 8 query heads in 2 groups of 4 over 4 ranks: ranks 0 and 1 hold query
  // heads 0-1 and 2-3 of KV head 0, ranks 2 and 3 those of KV head 1.
  const ModelConfig config = Config(8, 2, 128, 256);
  const int64_t expected_kv_head[] = {0, 0, 1, 1};
  for (int32_t rank = 0; rank < 4; ++rank) {
    absl::StatusOr<ShardLayout> l = MakeShardLayout(config, rank, 4);
    ASSERT_TRUE(l.ok()) << l.status();
    EXPECT_EQ(l->num_kv_heads, 1);
    EXPECT_EQ(l->kv_head_begin, expected_kv_head[rank]);
    EXPECT_EQ(l->head_begin, 2 * rank);
    // Every query head of the rank belongs to its KV head's group.
    EXPECT_EQ(l->head_begin / 4, l->kv_head_begin);
    EXPECT_EQ((l->head_begin + l->num_heads - 1) / 4, l->kv_head_begin);
  }
}

TEST(ShardWeightsTest, RowSlicesAreViewsAndColumnSlicesCopyOnlyTheRanksColumns) {
  absl::StatusOr<LoadedModel> model = LoadModel(FixturePath("models/llama"));
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig& c = model->config;
  absl::StatusOr<ShardLayout> layout = MakeShardLayout(c, 1, 2);
  ASSERT_TRUE(layout.ok());
  absl::StatusOr<ShardWeights> shard = ShardModelWeights(c, model->weights, *layout);
  ASSERT_TRUE(shard.ok()) << shard.status();
  const LayerWeights& full = model->weights.layers[0];
  const LayerWeights& part = shard->weights.layers[0];
  const size_t elem = DTypeSize(full.q_proj.dtype);
  // q: rows [q_size / 2, q_size) of the mapping itself.
  EXPECT_EQ(part.q_proj.shape, (std::vector<int64_t>{c.q_size() / 2, c.hidden_size}));
  EXPECT_EQ(part.q_proj.data, full.q_proj.data + (c.q_size() / 2) * c.hidden_size * elem);
  // down: [hidden, intermediate / 2], columns [intermediate / 2, intermediate).
  const int64_t half = c.intermediate_size / 2;
  ASSERT_EQ(part.down_proj.shape, (std::vector<int64_t>{c.hidden_size, half}));
  for (int64_t row : {int64_t{0}, c.hidden_size - 1}) {
    EXPECT_EQ(
        std::memcmp(part.down_proj.data + row * half * elem,
                    full.down_proj.data + (row * c.intermediate_size + half) * elem, half * elem),
        0)
        << "row " << row;
  }
  // The vocabulary: rows [vocab / 2, vocab) of the embedding and the head.
  EXPECT_EQ(shard->weights.embed_tokens.shape[0], c.vocab_size / 2);
  EXPECT_EQ(shard->weights.lm_head.data,
            model->weights.lm_head.data + (c.vocab_size / 2) * c.hidden_size * elem);
  // Only o and down are copied, one block each per layer.
  EXPECT_EQ(shard->storage.size(), 2 * model->weights.layers.size());
}

std::unique_ptr<Backend> MakeBackend(const std::string& name, int32_t tensor_parallel_size) {
  absl::StatusOr<LoadedModel> model = LoadModel(FixturePath("models/" + name));
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  CpuBackendOptions options;
  options.num_threads = 1;
  options.num_blocks = 64;
  absl::StatusOr<std::unique_ptr<Backend>> backend =
      CreateCpuBackend(*std::move(model), tensor_parallel_size, options);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? *std::move(backend) : nullptr;
}

// Greedy decoding of two sequences (one long prompt, one short) for 32
// steps: the tokens each step produced and the logits of every step.
struct Decoded {
  std::vector<int32_t> tokens;
  std::vector<float> logits;
};

Decoded Decode(Backend& backend) {
  const int64_t vocab = backend.config().vocab_size;
  StepBuilder builder(16, 64);
  const int a = builder.AddSequence();
  const int b = builder.AddSequence();
  builder.Append(a, testing::TestTokens(40, static_cast<int32_t>(vocab), 7));
  builder.Append(b, testing::TestTokens(5, static_cast<int32_t>(vocab), 8));
  Decoded run;
  for (int step = 0; step < 32; ++step) {
    const StepBatch batch = builder.Build();
    std::vector<float> logits(static_cast<size_t>(batch.num_sampled()) * vocab);
    const absl::Status status = backend.Forward(batch, logits);
    EXPECT_TRUE(status.ok()) << status;
    if (!status.ok()) return run;
    for (int seq : {a, b}) {
      const float* row = logits.data() + seq * vocab;
      const auto next = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
      run.tokens.push_back(next);
      builder.Append(seq, std::vector<int32_t>{next});
    }
    run.logits.insert(run.logits.end(), logits.begin(), logits.end());
  }
  return run;
}

class TensorParallelBackendTest
    : public ::testing::TestWithParam<std::tuple<std::string, int32_t>> {};

TEST_P(TensorParallelBackendTest, GreedyTokensAndLogitsMatchOneRank) {
  const auto& [name, size] = GetParam();
  std::unique_ptr<Backend> one = MakeBackend(name, 1);
  std::unique_ptr<Backend> many = MakeBackend(name, size);
  ASSERT_NE(one, nullptr);
  ASSERT_NE(many, nullptr);
  ASSERT_NE(dynamic_cast<TensorParallelBackend*>(many.get()), nullptr);
  EXPECT_EQ(dynamic_cast<TensorParallelBackend*>(one.get()), nullptr)
      << "one rank runs the plain backend, without the tensor-parallel wrapper";
  const Decoded expected = Decode(*one);
  const Decoded actual = Decode(*many);
  ASSERT_EQ(expected.tokens.size(), 64u);
  EXPECT_EQ(actual.tokens, expected.tokens);
  ASSERT_EQ(actual.logits.size(), expected.logits.size());
  // Relative to the row's largest |logit|: partial sums are added in a
  // different grouping, so the last bits differ.
  const int64_t vocab = one->config().vocab_size;
  for (size_t r = 0; r * vocab < expected.logits.size(); ++r) {
    const auto begin = expected.logits.begin() + r * vocab;
    float scale = 0;
    for (int64_t i = 0; i < vocab; ++i) scale = std::max(scale, std::abs(begin[i]));
    double worst = 0;
    for (int64_t i = 0; i < vocab; ++i)
      worst = std::max(worst, std::abs(static_cast<double>(actual.logits[r * vocab + i]) -
                                       static_cast<double>(begin[i])));
    ASSERT_LE(worst, 1e-5 * scale) << name << " TP=" << size << " row " << r;
  }
}

// llama: 2 KV heads (replicated at TP = 4); qwen2 and mistral: 1 KV head
// (replicated at both sizes); llama_bf16: 4 KV heads, BF16 weights.
INSTANTIATE_TEST_SUITE_P(Models, TensorParallelBackendTest,
                         ::testing::Combine(::testing::Values("llama", "llama_bf16", "qwen2",
                                                              "mistral"),
                                            ::testing::Values(2, 4)),
                         [](const auto& param_info) {
                           return std::get<0>(param_info.param) + "_tp" +
                                  std::to_string(std::get<1>(param_info.param));
                         });

TEST(TensorParallelBackendTest, ASizeThatDoesNotDivideFailsAtStartUp) {
  absl::StatusOr<LoadedModel> model = LoadModel(FixturePath("models/mistral"));
  ASSERT_TRUE(model.ok()) << model.status();
  CpuBackendOptions options;
  options.num_blocks = 8;
  absl::StatusOr<std::unique_ptr<Backend>> backend =
      CreateCpuBackend(*std::move(model), 3, options);
  ASSERT_EQ(backend.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(backend.status().message()),
              HasSubstr("num_attention_heads 4 is not divisible by tensor_parallel_size 3"));
}

TEST(TensorParallelBackendTest, ABadBatchIsRejectedByEveryRankAlike) {
  std::unique_ptr<Backend> backend = MakeBackend("llama", 2);
  ASSERT_NE(backend, nullptr);
  StepBuilder builder(16, 64);
  builder.Append(builder.AddSequence(), std::vector<int32_t>{1, 2, 3});
  StepBatch batch = builder.Build();
  batch.tokens[1] = static_cast<int32_t>(backend->config().vocab_size);  // out of range
  std::vector<float> logits(backend->config().vocab_size);
  EXPECT_EQ(backend->Forward(batch, logits).code(), absl::StatusCode::kInvalidArgument);
  // The ranks are still in step: a good batch runs afterwards.
  batch.tokens[1] = 2;
  EXPECT_TRUE(backend->Forward(batch, logits).ok());
}

TEST(TensorParallelBackendTest, KvBytesPerTokenCountsTheRanksOwnKvHeads) {
  const ModelConfig config = Config(8, 4, 128, 256);
  const int64_t one = CpuKvBytesPerToken(config, 1);
  EXPECT_EQ(one, 1 * 2 * 4 * 16 * 4);
  EXPECT_EQ(CpuKvBytesPerToken(config, 2), one / 2);
  EXPECT_EQ(CpuKvBytesPerToken(config, 8), one / 4);  // one replicated KV head each
}

}  // namespace
}  // namespace muserve
