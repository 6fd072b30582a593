// Tensor parallelism of the CUDA backend over NCCL (label gpu; skips where
// the GPUs are missing):
//  - a group of one rank, which runs every collective call of the rank path
//    (embedding all-reduce, the projections summed into the residual, the
//    logits gathered to rank 0), against the single-GPU backend. With one
//    rank the collectives move nothing: a wrong vocabulary offset, pitch or
//    beta on ranks other than 0 shows only in the two-GPU test;
//  - two ranks (on a machine with two GPUs) against one, for Llama and for
//    Qwen2 (biases, tied embeddings, one KV head replicated on both ranks).
// The rank path adds the projections to the fp32 residual inside the GEMM
// where one GPU adds a bf16 copy of them, so logits agree to within 1e-2 of
// the row's largest magnitude rather than bit for bit; greedy tokens agree
// wherever the reference's top two logits are 2e-2 apart.
#include "cuda/cuda_tensor_parallel.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda/nccl_communicator.h"
#include "engine/model/make_model.h"
#include "engine/model/weights.h"
#include "engine/parallel/tensor_parallel_backend.h"
#include "engine/sampling/sampler.h"
#include "gtest/gtest.h"
#include "tests/testing/cuda_test_util.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/step_builder.h"

namespace muserve::cuda {
namespace {

using ::muserve::testing::FixturePath;
using ::muserve::testing::StepBuilder;

constexpr int32_t kBlockSize = 16;
constexpr int32_t kNumBlocks = 64;

int DeviceCount() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

CudaBackendOptions Options() {
  CudaBackendOptions options;
  options.block_size = kBlockSize;
  options.num_blocks = kNumBlocks;
  options.max_num_batched_tokens = 256;
  options.max_num_seqs = 8;
  options.max_graph_batch = 4;
  return options;
}

std::filesystem::path SmallModel() {
  static ::muserve::testing::TempDir* dir = [] {
    auto* d = new ::muserve::testing::TempDir();
    const absl::Status made =
        MakeModel({.out_dir = d->path(), .preset = ModelPreset::kSmall, .dtype = DType::kBF16});
    EXPECT_TRUE(made.ok()) << made;
    return d;
  }();
  return dir->path();
}

int32_t ArgMax(const float* row, int64_t vocab) {
  return static_cast<int32_t>(std::max_element(row, row + vocab) - row);
}

// A mixed prefill of two sequences, then 16 decode steps of both, through
// `test` and `reference`, comparing each step's logits.
void ExpectSameRun(Backend& test, Backend& reference, const std::string& what) {
  const int64_t vocab = reference.config().vocab_size;
  StepBuilder builder(kBlockSize, kNumBlocks, {9, 2, 30, 4, 17, 0, 5, 11});
  const int a = builder.AddSequence(), b = builder.AddSequence();
  builder.Append(a, ::muserve::testing::TestTokens(37, static_cast<int32_t>(vocab), 3));
  builder.Append(b, ::muserve::testing::TestTokens(6, static_cast<int32_t>(vocab), 4));
  for (int step = 0; step <= 16; ++step) {
    const StepBatch batch = builder.Build();
    std::vector<float> got(2 * vocab), want(2 * vocab);
    const absl::Status s = test.Forward(batch, got);
    ASSERT_TRUE(s.ok()) << what << ": " << s;
    ASSERT_TRUE(reference.Forward(batch, want).ok());
    for (int row = 0; row < 2; ++row) {
      const float* w = want.data() + row * vocab;
      const float* g = got.data() + row * vocab;
      float max_ref = 0, max_err = 0;
      for (int64_t j = 0; j < vocab; ++j) {
        max_ref = std::max(max_ref, std::abs(w[j]));
        max_err = std::max(max_err, std::abs(g[j] - w[j]));
      }
      EXPECT_LE(max_err, 1e-2f * max_ref) << what << " step " << step << " row " << row;
      std::vector<float> sorted(w, w + vocab);
      std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
      if (sorted[0] - sorted[1] > 2e-2f * max_ref) {
        EXPECT_EQ(ArgMax(g, vocab), ArgMax(w, vocab)) << what << " step " << step << " row " << row;
      }
      builder.Append(row == 0 ? a : b, std::vector<int32_t>{ArgMax(w, vocab)});
    }
  }
}

// ForwardSample, the path the engine loop serves through, against the same
// backend's Forward logits for the same batch (which rewrites the same KV
// slots with the same values): the greedy row gives their argmax and a
// seeded top-p row the host Sampler's draw over them.
void ExpectSamplesOfItsLogits(Backend& test, const std::string& what) {
  const int64_t vocab = test.config().vocab_size;
  StepBuilder builder(kBlockSize, kNumBlocks, {40, 41, 42, 43, 44, 45});
  const int a = builder.AddSequence(), b = builder.AddSequence();
  builder.Append(a, ::muserve::testing::TestTokens(21, static_cast<int32_t>(vocab), 8));
  builder.Append(b, ::muserve::testing::TestTokens(9, static_cast<int32_t>(vocab), 9));
  const StepBatch batch = builder.Build();
  SamplingParams greedy;
  greedy.temperature = 0;
  SamplingParams seeded;
  seeded.temperature = 0.8f;
  seeded.top_p = 0.9f;
  const TokenHistory history;
  const std::vector<SampleInput> inputs = {{&greedy, &history, {}, 0.0},
                                           {&seeded, &history, {}, 0.61}};
  std::vector<float> logits(2 * vocab);
  ASSERT_TRUE(test.Forward(batch, logits).ok()) << what;
  std::vector<SampledToken> got(2);
  const absl::Status s = test.ForwardSample(batch, inputs, got);
  ASSERT_TRUE(s.ok()) << what << ": " << s;
  EXPECT_EQ(got[0].token, ArgMax(logits.data(), vocab)) << what;
  Sampler sampler;
  std::vector<float> row(logits.begin() + vocab, logits.end());
  EXPECT_EQ(got[1].token, sampler.Sample(row, inputs[1]).token) << what;
}

TEST(CudaTensorParallelTest, AGroupOfOneRankGivesTheSingleGpuBackendsLogits) {
  MUSERVE_SKIP_WITHOUT_CUDA_DEVICE();
  absl::StatusOr<LoadedModel> model = LoadModel(SmallModel());
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::unique_ptr<CudaBackend>> single = CudaBackend::Create(*model, Options());
  ASSERT_TRUE(single.ok()) << single.status();
  const std::vector<int> devices = {0};
  absl::StatusOr<std::vector<std::unique_ptr<NcclCommunicator>>> group =
      NcclCommunicator::CreateGroup(devices);
  ASSERT_TRUE(group.ok()) << group.status();
  absl::StatusOr<std::unique_ptr<CudaBackend>> rank =
      CudaBackend::CreateRank(*model, *(*group)[0], Options());
  ASSERT_TRUE(rank.ok()) << rank.status();
  EXPECT_EQ((*rank)->kv_cache().num_blocks, kNumBlocks);
  ExpectSameRun(**rank, **single, "NCCL group of one");
  ExpectSamplesOfItsLogits(**rank, "NCCL group of one");
}

TEST(CudaTensorParallelTest, TwoGpusGiveOneGpusLogits) {
  MUSERVE_SKIP_WITHOUT_CUDA_DEVICE();
  if (DeviceCount() < 2) GTEST_SKIP() << "needs two GPUs";
  for (const std::string name : {"small", "fixture:qwen2"}) {
    const std::filesystem::path dir = name == "small" ? SmallModel() : FixturePath("models/qwen2");
    absl::StatusOr<LoadedModel> model = LoadModel(dir);
    ASSERT_TRUE(model.ok()) << model.status();
    absl::StatusOr<std::unique_ptr<CudaBackend>> single = CudaBackend::Create(*model, Options());
    ASSERT_TRUE(single.ok()) << single.status();
    absl::StatusOr<std::unique_ptr<Backend>> pair =
        CreateCudaTensorParallelBackend(*model, 2, Options());
    ASSERT_TRUE(pair.ok()) << pair.status();
    EXPECT_TRUE((*pair)->samples_on_device());
    ExpectSameRun(**pair, **single, name + " on two GPUs");
    ExpectSamplesOfItsLogits(**pair, name + " on two GPUs");
  }
}

TEST(CudaTensorParallelTest, MoreRanksThanGpusIsUnavailableNamingTheCount) {
  MUSERVE_SKIP_WITHOUT_CUDA_DEVICE();
  absl::StatusOr<LoadedModel> model = LoadModel(SmallModel());
  ASSERT_TRUE(model.ok()) << model.status();
  const int32_t too_many = DeviceCount() * 2;
  if (model->config.num_attention_heads % too_many != 0) GTEST_SKIP() << "heads do not divide";
  absl::StatusOr<std::unique_ptr<Backend>> backend =
      CreateCudaTensorParallelBackend(*model, too_many, Options());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(backend.status().message()).find("GPUs"), std::string::npos);
}

}  // namespace
}  // namespace muserve::cuda
