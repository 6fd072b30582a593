// The CUDA backend against the CPU backend, the reference (label gpu; skips
// where no CUDA device is visible): the same step batches through both, on
// the demo presets (tiny, small; F32 and BF16 checkpoints) and the
// transformers-made fixtures of all three architectures (Llama with llama3
// RoPE, Qwen2 with biases and tied embeddings, Mistral with a sliding window).
//
// Tolerance. The GPU keeps weights and GEMM inputs in bf16 (an F32
// checkpoint is rounded at load) with fp32 accumulation and an fp32
// residual stream; the CPU computes in fp32 throughout. Per logits row,
// with M = max |cpu logit|: max |gpu - cpu| <= 0.05 M and mean |gpu - cpu|
// <= 0.01 M. Greedy tokens must agree wherever the CPU's top two logits are
// more than 0.05 M apart; closer calls may go either way, and both
// backends then continue with the CPU's token.
#include "cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/model/make_model.h"
#include "engine/model/safetensors.h"
#include "engine/model/safetensors_writer.h"
#include "engine/model/weights.h"
#include "engine/sampling/sampler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cuda_test_util.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/step_builder.h"

namespace muserve::cuda {
namespace {

using ::muserve::testing::FixturePath;
using ::muserve::testing::StepBuilder;
using ::muserve::testing::TempDir;
using ::testing::HasSubstr;

constexpr int32_t kBlockSize = 16;
constexpr int32_t kNumBlocks = 96;

// A model directory: a fixture, or a preset made once per test program.
std::filesystem::path SharpModelDir();

std::filesystem::path ModelDir(const std::string& name) {
  if (name.rfind("fixture:", 0) == 0) return FixturePath("models/" + name.substr(8));
  if (name == "tiny_sharp") return SharpModelDir();
  static TempDir* root = new TempDir();
  const std::filesystem::path dir = root->path() / name;
  if (!std::filesystem::exists(dir / "config.json")) {
    MakeModelOptions options;
    options.out_dir = dir;
    options.preset = name.rfind("small", 0) == 0 ? ModelPreset::kSmall : ModelPreset::kTiny;
    options.dtype = name.find("bf16") != std::string::npos ? DType::kBF16 : DType::kF32;
    const absl::Status made = MakeModel(options);
    EXPECT_TRUE(made.ok()) << made;
  }
  return dir;
}

// The tiny preset with q_proj and k_proj scaled by 10: initialiser-scale
// weights (std 0.02) make attention nearly uniform, which would hide wrong
// positions, RoPE or masking; here scores spread over several units and
// attention picks among the keys.
std::filesystem::path SharpModelDir() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path source = ModelDir("tiny");
    const std::filesystem::path sharp = source.parent_path() / "tiny_sharp";
    std::filesystem::create_directories(sharp);
    for (const auto& entry : std::filesystem::directory_iterator(source))
      if (entry.path().filename() != "model.safetensors")
        std::filesystem::copy_file(entry.path(), sharp / entry.path().filename(),
                                   std::filesystem::copy_options::overwrite_existing);
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        SafetensorsFile::Open(source / "model.safetensors");
    EXPECT_TRUE(file.ok()) << file.status();
    if (!file.ok()) return sharp;
    std::vector<TensorSpec> specs;
    for (const auto& [name, view] : (*file)->tensors())
      specs.push_back({name, view.dtype, view.shape});
    const absl::Status written =
        WriteSafetensors(sharp / "model.safetensors", specs,
                         [&](const TensorSpec& spec, std::span<std::byte> out) -> absl::Status {
                           const TensorView& view = (*file)->tensors().at(spec.name);
                           std::memcpy(out.data(), view.data, out.size());
                           const bool scaled = spec.name.ends_with("q_proj.weight") ||
                                               spec.name.ends_with("k_proj.weight");
                           if (scaled && spec.dtype == DType::kF32) {
                             for (size_t i = 0; i < out.size(); i += 4) {
                               float v;
                               std::memcpy(&v, out.data() + i, 4);
                               v *= 10.0f;
                               std::memcpy(out.data() + i, &v, 4);
                             }
                           }
                           return absl::OkStatus();
                         });
    EXPECT_TRUE(written.ok()) << written;
    return sharp;
  }();
  return dir;
}

CudaBackendOptions GpuOptions(int32_t max_graph_batch = 8) {
  CudaBackendOptions options;
  options.block_size = kBlockSize;
  options.num_blocks = kNumBlocks;
  options.max_num_batched_tokens = 256;
  options.max_num_seqs = 8;
  options.max_graph_batch = max_graph_batch;
  return options;
}

struct Backends {
  std::unique_ptr<CpuBackend> cpu;
  std::unique_ptr<CudaBackend> gpu;
};

Backends Make(const std::string& name, const CudaBackendOptions& options = GpuOptions()) {
  Backends b;
  absl::StatusOr<LoadedModel> for_gpu = LoadModel(ModelDir(name));
  EXPECT_TRUE(for_gpu.ok()) << for_gpu.status();
  if (!for_gpu.ok()) return b;
  absl::StatusOr<std::unique_ptr<CudaBackend>> gpu = CudaBackend::Create(*for_gpu, options);
  EXPECT_TRUE(gpu.ok()) << gpu.status();
  absl::StatusOr<LoadedModel> for_cpu = LoadModel(ModelDir(name));
  EXPECT_TRUE(for_cpu.ok()) << for_cpu.status();
  if (!gpu.ok() || !for_cpu.ok()) return b;
  absl::StatusOr<std::unique_ptr<CpuBackend>> cpu =
      CpuBackend::Create(std::move(*for_cpu), {.num_threads = 2,
                                               .block_size = kBlockSize,
                                               .num_blocks = kNumBlocks,
                                               .max_num_batched_tokens = 256});
  EXPECT_TRUE(cpu.ok()) << cpu.status();
  if (!cpu.ok()) return b;
  b.cpu = std::move(*cpu);
  b.gpu = std::move(*gpu);
  return b;
}

// Checks one step's logits rows against the tolerance above.
void ExpectClose(const std::vector<float>& gpu, const std::vector<float>& cpu, int64_t vocab,
                 const std::string& where) {
  ASSERT_EQ(gpu.size(), cpu.size());
  for (size_t row = 0; row * vocab < cpu.size(); ++row) {
    float max_ref = 0, max_err = 0;
    double sum_err = 0;
    for (int64_t j = 0; j < vocab; ++j) {
      const float c = cpu[row * vocab + j], g = gpu[row * vocab + j];
      max_ref = std::max(max_ref, std::abs(c));
      max_err = std::max(max_err, std::abs(g - c));
      sum_err += std::abs(g - c);
    }
    EXPECT_LE(max_err, 0.05f * max_ref) << where << " row " << row;
    EXPECT_LE(sum_err / static_cast<double>(vocab), 0.01 * max_ref) << where << " row " << row;
  }
}

int32_t ArgMax(const float* row, int64_t vocab) {
  return static_cast<int32_t>(std::max_element(row, row + vocab) - row);
}

// The CPU's top-2 gap of a row, relative to the row's largest magnitude.
float RelativeMargin(const float* row, int64_t vocab) {
  std::vector<float> sorted(row, row + vocab);
  std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
  float max_ref = 0;
  for (int64_t j = 0; j < vocab; ++j) max_ref = std::max(max_ref, std::abs(row[j]));
  return max_ref > 0 ? (sorted[0] - sorted[1]) / max_ref : 0.0f;
}

class CudaBackendModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { MUSERVE_SKIP_WITHOUT_CUDA_DEVICE(); }
};

// Two sequences: a 40-token prompt in two chunks (24 tokens not sampled,
// then 16) and a 5-token prompt, mixed with each other's prefill and
// decodes, then 32 greedy decode steps of both (CUDA graphs). Every step's
// logits are compared.
TEST_P(CudaBackendModelTest, LogitsMatchTheCpuBackendAndGreedyTokensAgree) {
  Backends b = Make(GetParam());
  ASSERT_NE(b.gpu, nullptr);
  const int64_t vocab = b.cpu->config().vocab_size;
  StepBuilder builder(kBlockSize, kNumBlocks, {7, 3, 50, 1, 12, 0, 33, 2, 90, 4, 5, 6});
  const int a = builder.AddSequence(), c = builder.AddSequence();
  const std::vector<int32_t> prompt = testing::TestTokens(40, static_cast<int32_t>(vocab), 11);
  builder.Append(a, std::span<const int32_t>(prompt).first(24), /*sample=*/false);
  builder.Append(c, testing::TestTokens(5, static_cast<int32_t>(vocab), 12));
  std::vector<int> order = {a, c};  // the step's sequences, in batch order
  int agreed = 0, close_calls = 0;
  for (int step = 0; step <= 33; ++step) {
    const StepBatch batch = builder.Build();
    const int32_t rows = batch.num_sampled();
    std::vector<float> cpu(rows * vocab), gpu(rows * vocab);
    ASSERT_TRUE(b.cpu->Forward(batch, cpu).ok());
    const absl::Status s = b.gpu->Forward(batch, gpu);
    ASSERT_TRUE(s.ok()) << s;
    ExpectClose(gpu, cpu, vocab, GetParam() + " step " + std::to_string(step));
    std::vector<int> next_order;
    int row = 0;
    for (size_t i = 0; i < batch.sequences.size(); ++i) {
      const int seq = order[i];
      if (!batch.sequences[i].sample) {
        // The first chunk: the rest of the prompt comes next step.
        builder.Append(seq, std::span<const int32_t>(prompt).subspan(24));
        next_order.push_back(seq);
        continue;
      }
      const float* cpu_row = cpu.data() + row * vocab;
      const int32_t want = ArgMax(cpu_row, vocab);
      if (RelativeMargin(cpu_row, vocab) > 0.05f) {
        EXPECT_EQ(ArgMax(gpu.data() + row * vocab, vocab), want)
            << GetParam() << " step " << step << " sequence " << seq;
        ++agreed;
      } else {
        ++close_calls;
      }
      ++row;
      builder.Append(seq, std::vector<int32_t>{want});
      next_order.push_back(seq);
    }
    order = next_order;
  }
  RecordProperty("greedy_tokens_checked", agreed);
  RecordProperty("close_calls", close_calls);
  EXPECT_GT(agreed, 0);
}

INSTANTIATE_TEST_SUITE_P(Models, CudaBackendModelTest,
                         ::testing::Values("tiny", "tiny_bf16", "tiny_sharp", "small", "small_bf16",
                                           "fixture:llama", "fixture:llama_bf16", "fixture:qwen2",
                                           "fixture:mistral"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           std::string name = param_info.param;
                           std::replace(name.begin(), name.end(), ':', '_');
                           return name;
                         });

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override { MUSERVE_SKIP_WITHOUT_CUDA_DEVICE(); }
};

// Decode steps of 1 to 8 sequences (graphs padded to 1, 2, 4, 8) give the
// eager path's logits; GEMMs of different row counts may pick different
// kernels, so equal within 1e-3 of the row's magnitude, not bitwise.
TEST_F(CudaBackendTest, GraphReplaysGiveTheEagerLogits) {
  absl::StatusOr<LoadedModel> model = LoadModel(ModelDir("small"));
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::unique_ptr<CudaBackend>> graphs = CudaBackend::Create(*model, GpuOptions(8));
  absl::StatusOr<std::unique_ptr<CudaBackend>> eager = CudaBackend::Create(*model, GpuOptions(0));
  ASSERT_TRUE(graphs.ok()) << graphs.status();
  ASSERT_TRUE(eager.ok()) << eager.status();
  EXPECT_THAT(std::vector<int32_t>((*graphs)->graph_batch_sizes().begin(),
                                   (*graphs)->graph_batch_sizes().end()),
              ::testing::ElementsAre(1, 2, 4, 8));
  EXPECT_TRUE((*eager)->graph_batch_sizes().empty());
  const int64_t vocab = model->config.vocab_size;
  for (int n : {1, 3, 8}) {
    StepBuilder builder(kBlockSize, kNumBlocks);
    std::vector<int> seqs;
    for (int i = 0; i < n; ++i) {
      seqs.push_back(builder.AddSequence());
      // 3 + 5 i tokens: 164 in all for 8 sequences, within one step's 256.
      builder.Append(seqs.back(), testing::TestTokens(3 + 5 * i, static_cast<int32_t>(vocab), i));
    }
    for (int step = 0; step < 4; ++step) {
      const StepBatch batch = builder.Build();
      std::vector<float> a(n * vocab), e(n * vocab);
      ASSERT_TRUE((*graphs)->Forward(batch, a).ok());
      ASSERT_TRUE((*eager)->Forward(batch, e).ok());
      for (int i = 0; i < n; ++i) {
        float max_ref = 0, max_err = 0;
        for (int64_t j = 0; j < vocab; ++j) {
          max_ref = std::max(max_ref, std::abs(e[i * vocab + j]));
          max_err = std::max(max_err, std::abs(a[i * vocab + j] - e[i * vocab + j]));
        }
        EXPECT_LE(max_err, 1e-3f * max_ref) << n << " sequences, step " << step << ", row " << i;
        builder.Append(seqs[i], std::vector<int32_t>{ArgMax(e.data() + i * vocab, vocab)});
      }
    }
  }
}

// ForwardSample returns the tokens without the logits leaving the GPU:
// greedy is the argmax of Forward's logits for the same batch, and a seeded
// draw is the host Sampler's over those logits.
TEST_F(CudaBackendTest, ForwardSampleIsTheHostSamplerOverTheSameLogits) {
  absl::StatusOr<LoadedModel> model = LoadModel(ModelDir("small"));
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::unique_ptr<CudaBackend>> gpu = CudaBackend::Create(*model, GpuOptions());
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_TRUE((*gpu)->samples_on_device());
  const int64_t vocab = model->config.vocab_size;
  StepBuilder builder(kBlockSize, kNumBlocks);
  const int a = builder.AddSequence(), c = builder.AddSequence();
  builder.Append(a, testing::TestTokens(20, static_cast<int32_t>(vocab), 1));
  builder.Append(c, testing::TestTokens(7, static_cast<int32_t>(vocab), 2));
  const StepBatch batch = builder.Build();
  std::vector<float> logits(2 * vocab);
  ASSERT_TRUE((*gpu)->Forward(batch, logits).ok());

  SamplingParams greedy;
  greedy.temperature = 0;
  SamplingParams seeded;
  seeded.temperature = 0.9f;
  seeded.top_p = 0.95f;
  seeded.logprobs = true;
  const TokenHistory history;
  std::vector<SampleInput> inputs(2);
  inputs[0] = {&greedy, &history, {}, 0.0};
  inputs[1] = {&seeded, &history, {}, 0.37};
  std::vector<SampledToken> out(2);
  const absl::Status s = (*gpu)->ForwardSample(batch, inputs, out);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out[0].token, ArgMax(logits.data(), vocab));
  Sampler sampler;
  std::vector<float> row(logits.begin() + vocab, logits.end());
  const SampledToken want = sampler.Sample(row, inputs[1]);
  EXPECT_EQ(out[1].token, want.token);
  ASSERT_TRUE(out[1].logprob.has_value());
  EXPECT_NEAR(*out[1].logprob, *want.logprob, 1e-4);
}

TEST_F(CudaBackendTest, KvPoolIsSizedFromTheMemoryFractionAndReported) {
  absl::StatusOr<LoadedModel> model = LoadModel(ModelDir("small"));
  ASSERT_TRUE(model.ok()) << model.status();
  CudaBackendOptions options = GpuOptions();
  options.num_blocks = 0;
  options.gpu_memory_utilization = 0.3;
  absl::StatusOr<std::unique_ptr<CudaBackend>> gpu = CudaBackend::Create(*model, options);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  const CudaMemoryReport& report = (*gpu)->memory_report();
  const KvCacheGeometry kv = (*gpu)->kv_cache();
  EXPECT_GT(kv.num_blocks, 1000);  // gigabytes of pool for a model of a few megabytes
  EXPECT_EQ(report.kv_bytes, int64_t{kv.num_blocks} * kv.block_size * report.kv_bytes_per_token);
  EXPECT_LE(report.weight_bytes + report.activation_bytes + report.kv_bytes,
            static_cast<int64_t>(0.3 * static_cast<double>(report.total_bytes)));
  EXPECT_GT(report.weight_bytes, 0);
  EXPECT_FALSE(report.device_name.empty());

  // Each backend counts what the others hold as in use: free one first.
  gpu = absl::UnknownError("released");
  options.max_num_blocks = 100;
  gpu = CudaBackend::Create(*model, options);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_EQ((*gpu)->kv_cache().num_blocks, 100);

  gpu = absl::UnknownError("released");
  options.max_num_blocks = 0;
  options.gpu_memory_utilization = 1e-6;
  gpu = CudaBackend::Create(*model, options);
  EXPECT_EQ(gpu.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(gpu.status().message()), HasSubstr("--gpu-memory-utilization"));
}

// A bad batch is refused before anything runs, and the backend goes on.
TEST_F(CudaBackendTest, BadBatchesAreRefusedAndTheBackendGoesOn) {
  Backends b = Make("tiny");
  ASSERT_NE(b.gpu, nullptr);
  const int64_t vocab = b.gpu->config().vocab_size;
  StepBuilder builder(kBlockSize, kNumBlocks);
  builder.Append(builder.AddSequence(), testing::TestTokens(10, static_cast<int32_t>(vocab), 3));
  const StepBatch good = builder.Build();
  StepBatch bad = good;
  bad.sequences[0].block_table[0] = kNumBlocks + 5;
  std::vector<float> logits(vocab);
  EXPECT_EQ(b.gpu->Forward(bad, logits).code(), absl::StatusCode::kInvalidArgument);
  bad = good;
  bad.tokens[3] = static_cast<int32_t>(vocab);
  EXPECT_EQ(b.gpu->Forward(bad, logits).code(), absl::StatusCode::kInvalidArgument);
  std::vector<float> wrong_size(vocab + 1);
  EXPECT_EQ(b.gpu->Forward(good, wrong_size).code(), absl::StatusCode::kInvalidArgument);
  std::vector<float> cpu(vocab);
  ASSERT_TRUE(b.gpu->Forward(good, logits).ok());
  ASSERT_TRUE(b.cpu->Forward(good, cpu).ok());
  ExpectClose(logits, cpu, vocab, "after refusals");
}

}  // namespace
}  // namespace muserve::cuda
