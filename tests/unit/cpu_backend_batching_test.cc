// The CpuBackend's determinism guarantees (cpu_backend.h): a sequence's logits
// are bit-identical whatever the block size, physical block order, prefill
// chunking, thread count or the rest of the batch; every StepBatch invariant
// violation is rejected before any state changes; and Forward does not
// allocate (this binary replaces the global operator new to count calls).
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "gtest/gtest.h"
#include "tests/testing/step_builder.h"
#include "tests/unit/cpu_backend_testing.h"

namespace {

// Counts operator new calls (any thread) while g_count_allocations is set.
std::atomic<bool> g_count_allocations{false};
std::atomic<int64_t> g_allocations{0};

void* CountedAlloc(std::size_t size, std::size_t alignment) {
  if (g_count_allocations.load(std::memory_order_relaxed))
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (size == 0) size = 1;
  void* p = alignment <= alignof(std::max_align_t)
                ? std::malloc(size)
                : std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
// Oversized allocations must fail with bad_alloc (PoolBeyondTheAddressSpace...)
// rather than abort the process, ASan's default.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }
#endif

// operator new[] and the nothrow forms call these in libstdc++.
void* operator new(std::size_t size) { return CountedAlloc(size, 0); }
void* operator new(std::size_t size, std::align_val_t al) {
  return CountedAlloc(size, static_cast<std::size_t>(al));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace muserve {
namespace {

using testing::MakeFixtureBackend;
using testing::RunStep;
using testing::StepBuilder;
using testing::TestTokens;

bool BitIdentical(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Prefills `prompt` in chunks of `chunk` tokens (only the last chunk sampled),
// then decodes `decode_steps` greedy tokens; returns the sampled logits of
// every step from the end of the prefill on, concatenated.
std::vector<float> PrefillAndDecode(CpuBackend& backend, StepBuilder& builder,
                                    const std::vector<int32_t>& prompt, size_t chunk,
                                    int decode_steps) {
  const int64_t vocab = backend.config().vocab_size;
  const int seq = builder.AddSequence();
  std::vector<float> out;
  for (size_t i = 0; i < prompt.size(); i += chunk) {
    const size_t n = std::min(chunk, prompt.size() - i);
    const bool last = i + n == prompt.size();
    builder.Append(seq, std::span<const int32_t>(prompt).subspan(i, n), last);
    const std::vector<float> logits = RunStep(backend, builder.Build());
    if (last) out = logits;
  }
  for (int step = 0; step < decode_steps; ++step) {
    const int32_t next = testing::Argmax(out.data() + out.size() - vocab, vocab);
    builder.Append(seq, std::vector<int32_t>{next});
    const std::vector<float> logits = RunStep(backend, builder.Build());
    out.insert(out.end(), logits.begin(), logits.end());
  }
  return out;
}

TEST(CpuBackendDeterminismTest, BlockSizeAndPhysicalBlockOrderDoNotChangeLogits) {
  const std::vector<int32_t> prompt = TestTokens(45, 320, 1);
  std::vector<float> baseline;
  for (int32_t block_size : {1, 16, 32}) {
    for (bool shuffled : {false, true}) {
      const int32_t num_blocks = 128 / block_size + 2;
      std::vector<int32_t> order;
      for (int32_t b = 0; b < num_blocks; ++b)
        order.push_back(shuffled ? (b * 7 + 3) % num_blocks : b);
      ASSERT_NE(num_blocks % 7, 0);  // so b -> (7b + 3) mod num_blocks is a permutation
      auto backend = MakeFixtureBackend("llama", 1, block_size, num_blocks);
      ASSERT_NE(backend, nullptr);
      StepBuilder builder(block_size, num_blocks, order);
      const std::vector<float> logits = PrefillAndDecode(*backend, builder, prompt, 45, 4);
      if (baseline.empty()) baseline = logits;
      EXPECT_TRUE(BitIdentical(logits, baseline))
          << "block_size " << block_size << (shuffled ? " shuffled" : "");
    }
  }
}

TEST(CpuBackendDeterminismTest, ChunkedPrefillGivesTheSameLogitsAsWholePrefill) {
  for (const std::string model : {"llama", "mistral"}) {
    const std::vector<int32_t> prompt = TestTokens(100, 256, 2);
    std::vector<float> whole;
    for (size_t chunk : {size_t{100}, size_t{1}, size_t{7}, size_t{64}}) {
      auto backend = MakeFixtureBackend(model);
      ASSERT_NE(backend, nullptr);
      StepBuilder builder(16, 64);
      const std::vector<float> logits = PrefillAndDecode(*backend, builder, prompt, chunk, 3);
      if (whole.empty()) whole = logits;
      EXPECT_TRUE(BitIdentical(logits, whole)) << model << " chunk " << chunk;
    }
  }
}

TEST(CpuBackendDeterminismTest, ThreadCountDoesNotChangeLogits) {
  for (const std::string model : {"llama", "qwen2", "llama_bf16"}) {
    const std::vector<int32_t> prompt = TestTokens(30, 288, 3);
    std::vector<float> one;
    for (int threads : {1, 2, 3}) {
      auto backend = MakeFixtureBackend(model, threads);
      ASSERT_NE(backend, nullptr);
      StepBuilder builder(16, 64);
      const std::vector<float> logits = PrefillAndDecode(*backend, builder, prompt, 30, 3);
      if (one.empty()) one = logits;
      EXPECT_TRUE(BitIdentical(logits, one)) << model << " threads " << threads;
    }
  }
}

// Five sequences: A continues its prefill (second chunk), B starts one, C, D
// and E decode. The mixed step's logits equal each sequence's step run alone.
TEST(CpuBackendDeterminismTest, MixedBatchIsBitIdenticalToEachSequenceAlone) {
  struct Plan {
    std::vector<int32_t> history;  // already in the KV cache before the step
    std::vector<int32_t> step;     // this step's new tokens
  };
  const std::vector<Plan> plans = {
      {TestTokens(9, 300, 10), TestTokens(23, 300, 11)},  // A: second prefill chunk
      {{}, TestTokens(17, 300, 12)},                      // B: whole prefill
      {TestTokens(5, 300, 13), {42}},                     // C: decode
      {TestTokens(33, 300, 14), {7}},                     // D: decode
      {TestTokens(1, 300, 15), {299}},                    // E: decode
  };
  const int32_t threads = 2;
  // Alone: each sequence in its own backend.
  std::vector<std::vector<float>> alone;
  for (const Plan& p : plans) {
    auto backend = MakeFixtureBackend("qwen2", threads);
    ASSERT_NE(backend, nullptr);
    StepBuilder builder(16, 64);
    const int seq = builder.AddSequence();
    if (!p.history.empty()) {
      builder.Append(seq, p.history, false);
      RunStep(*backend, builder.Build());
    }
    builder.Append(seq, p.step);
    alone.push_back(RunStep(*backend, builder.Build()));
  }
  // Mixed: histories in separate steps, then one step with all five.
  auto backend = MakeFixtureBackend("qwen2", threads);
  ASSERT_NE(backend, nullptr);
  std::vector<int32_t> order;
  for (int32_t b = 63; b >= 0; --b) order.push_back(b);  // a different physical layout
  StepBuilder builder(16, 64, order);
  std::vector<int> ids;
  for (const Plan& p : plans) {
    ids.push_back(builder.AddSequence());
    if (!p.history.empty()) {
      builder.Append(ids.back(), p.history, false);
      RunStep(*backend, builder.Build());
    }
  }
  for (size_t i = 0; i < plans.size(); ++i) builder.Append(ids[i], plans[i].step);
  const std::vector<float> mixed = RunStep(*backend, builder.Build());
  const int64_t vocab = backend->config().vocab_size;
  ASSERT_EQ(mixed.size(), plans.size() * vocab);
  for (size_t i = 0; i < plans.size(); ++i) {
    const std::vector<float> row(mixed.begin() + i * vocab, mixed.begin() + (i + 1) * vocab);
    EXPECT_TRUE(BitIdentical(row, alone[i])) << "sequence " << i;
  }
}

// ---- StepBatch validation ------------------------------------------------------

class CpuBackendValidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = MakeFixtureBackend("llama", 1, /*block_size=*/4, /*num_blocks=*/8);
    ASSERT_NE(backend_, nullptr);
    StepBuilder builder(4, 8);
    const int a = builder.AddSequence();
    builder.Append(a, TestTokens(6, 320, 1));
    const int b = builder.AddSequence();
    builder.Append(b, TestTokens(3, 320, 2), false);
    valid_ = builder.Build();
  }

  // Forward must fail with InvalidArgument and leave the KV cache untouched:
  // a valid step afterwards gives the same logits as on a fresh backend.
  void ExpectRejected(const StepBatch& batch, size_t logits_size, const std::string& needle) {
    std::vector<float> logits(logits_size);
    const absl::Status status = backend_->Forward(batch, logits);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_NE(std::string(status.message()).find(needle), std::string::npos) << status;
    auto fresh = MakeFixtureBackend("llama", 1, 4, 8);
    ASSERT_NE(fresh, nullptr);
    EXPECT_EQ(RunStep(*backend_, valid_), RunStep(*fresh, valid_));
  }

  size_t logits_size() const { return static_cast<size_t>(valid_.num_sampled()) * 320; }

  std::unique_ptr<CpuBackend> backend_;
  StepBatch valid_;
};

TEST_F(CpuBackendValidationTest, AcceptsTheValidBatch) {
  std::vector<float> logits(logits_size());
  EXPECT_TRUE(backend_->Forward(valid_, logits).ok());
}

TEST_F(CpuBackendValidationTest, RejectsMismatchedArraySizes) {
  StepBatch b = valid_;
  b.positions.pop_back();
  ExpectRejected(b, logits_size(), "positions");
}

TEST_F(CpuBackendValidationTest, RejectsSliceRunningPastTheTokens) {
  StepBatch b = valid_;
  b.sequences[1].query_len = 4;
  b.sequences[1].context_len = 4;
  ExpectRejected(b, logits_size(), "runs past");
}

TEST_F(CpuBackendValidationTest, RejectsSlicesThatDoNotTileTheTokens) {
  StepBatch b = valid_;
  b.sequences[1].query_start = 5;
  ExpectRejected(b, logits_size(), "query_start");
  StepBatch c = valid_;
  c.sequences.pop_back();
  ExpectRejected(c, logits_size(), "cover");
}

TEST_F(CpuBackendValidationTest, RejectsEmptySliceAndShortContext) {
  StepBatch b = valid_;
  b.sequences[0].query_len = 0;
  ExpectRejected(b, logits_size(), "query_len");
  StepBatch c = valid_;
  c.sequences[0].context_len = 5;
  ExpectRejected(c, logits_size(), "context_len");
}

TEST_F(CpuBackendValidationTest, RejectsContextBeyondMaxPositionEmbeddings) {
  StepBatch b = valid_;
  b.sequences[1].context_len = 129;
  ExpectRejected(b, logits_size(), "max_position_embeddings");
}

TEST_F(CpuBackendValidationTest, RejectsWrongPositions) {
  StepBatch b = valid_;
  b.positions[2] = 7;
  ExpectRejected(b, logits_size(), "position");
}

TEST_F(CpuBackendValidationTest, RejectsTokenOutsideTheVocabulary) {
  StepBatch b = valid_;
  b.tokens[1] = 320;
  ExpectRejected(b, logits_size(), "vocabulary");
  b.tokens[1] = -1;
  ExpectRejected(b, logits_size(), "vocabulary");
}

TEST_F(CpuBackendValidationTest, RejectsShortBlockTable) {
  StepBatch b = valid_;
  b.sequences[0].block_table.pop_back();
  ExpectRejected(b, logits_size(), "block table");
}

TEST_F(CpuBackendValidationTest, RejectsBlockIdsOutsideThePool) {
  StepBatch b = valid_;
  b.sequences[0].block_table[1] = 8;
  ExpectRejected(b, logits_size(), "outside the pool");
  b.sequences[0].block_table[1] = -1;
  ExpectRejected(b, logits_size(), "outside the pool");
}

TEST_F(CpuBackendValidationTest, RejectsSlotsOutsideThePoolOrOffTheBlockTable) {
  StepBatch b = valid_;
  b.slot_mapping[0] = 32;
  ExpectRejected(b, logits_size(), "outside the pool");
  StepBatch c = valid_;
  c.slot_mapping[0] = c.slot_mapping[0] + 1;
  ExpectRejected(c, logits_size(), "block table's slot");
}

TEST_F(CpuBackendValidationTest, RejectsLogitsBufferOfTheWrongSize) {
  ExpectRejected(valid_, logits_size() + 320, "logits");
  ExpectRejected(valid_, 0, "logits");
}

TEST(CpuBackendOptionsTest, RejectsNonPositiveSizes) {
  CpuBackendOptions options;
  options.num_blocks = 4;
  EXPECT_TRUE(options.Validate().ok());
  options.num_threads = 0;
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
  options.num_threads = 1;
  options.block_size = 0;
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
  options.block_size = 16;
  options.num_blocks = 0;
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CpuBackendOptionsTest, KvBytesPerTokenCountsKAndVOfEveryLayer) {
  ModelConfig config;
  config.num_hidden_layers = 22;
  config.num_key_value_heads = 4;
  config.head_dim = 64;
  EXPECT_EQ(CpuKvBytesPerToken(config), 22 * 2 * 4 * 64 * 4);
  config.num_hidden_layers = int64_t{1} << 40;  // beyond Validate(): saturates, no overflow
  config.head_dim = int64_t{1} << 30;
  EXPECT_EQ(CpuKvBytesPerToken(config), std::numeric_limits<int64_t>::max());
}

absl::StatusOr<std::unique_ptr<CpuBackend>> CreateLlama(const CpuBackendOptions& options) {
  absl::StatusOr<LoadedModel> model = LoadModel(testing::FixturePath("models/llama"));
  if (!model.ok()) return model.status();
  return CpuBackend::Create(*std::move(model), options);
}

TEST(CpuBackendOptionsTest, RejectsNonPositiveMaxNumBatchedTokens) {
  CpuBackendOptions options;
  options.num_blocks = 4;
  options.max_num_batched_tokens = 0;
  const absl::Status status = options.Validate();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("max_num_batched_tokens"), std::string::npos);
}

TEST(CpuBackendOptionsTest, KvPoolSizeOverflowIsInvalidArgument) {
  CpuBackendOptions options;
  options.num_blocks = std::numeric_limits<int32_t>::max();
  options.block_size = std::numeric_limits<int32_t>::max();
  auto backend = CreateLlama(options);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kInvalidArgument) << backend.status();
  EXPECT_NE(std::string(backend.status().message()).find("overflows"), std::string::npos);
}

TEST(CpuBackendOptionsTest, PoolBeyondTheAddressSpaceIsResourceExhausted) {
  CpuBackendOptions options;
  options.num_blocks = std::numeric_limits<int32_t>::max();
  options.block_size = 1 << 20;  // 2^51 slots: petabytes, more than any address space
  auto backend = CreateLlama(options);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kResourceExhausted) << backend.status();
}

TEST(CpuBackendOptionsTest, StepLargerThanMaxNumBatchedTokensIsRejected) {
  CpuBackendOptions options;
  options.block_size = 4;
  options.num_blocks = 8;
  options.max_num_batched_tokens = 5;
  auto backend = CreateLlama(options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  StepBuilder builder(4, 8);
  const int seq = builder.AddSequence();
  builder.Append(seq, TestTokens(6, 320, 1));
  std::vector<float> logits(320);
  const absl::Status status = (*backend)->Forward(builder.Build(), logits);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(std::string(status.message()).find("max_num_batched_tokens 5"), std::string::npos)
      << status;
  StepBuilder fits(4, 8);
  const int other = fits.AddSequence();
  fits.Append(other, TestTokens(5, 320, 1));
  EXPECT_TRUE((*backend)->Forward(fits.Build(), logits).ok());
}

// Every per-step buffer is allocated in Create: neither a first step nor a
// later one of the same shape calls operator new, on any worker thread.
// Nine rows use the converted weight panels (bf16), GQA, the sliding window
// (mistral), biases (qwen2) and a sequence that is not sampled.
class CpuBackendAllocationTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CpuBackendAllocationTest, ForwardDoesNotAllocate) {
  auto backend = MakeFixtureBackend(GetParam(), /*threads=*/3, /*block_size=*/4, /*num_blocks=*/16);
  ASSERT_NE(backend, nullptr);
  const int32_t vocab = static_cast<int32_t>(backend->config().vocab_size);
  StepBuilder builder(4, 16);
  const int a = builder.AddSequence();
  const int b = builder.AddSequence();
  auto forward_allocations = [&](const StepBatch& batch, bool valid = true) {
    std::vector<float> logits(static_cast<size_t>(batch.num_sampled()) * vocab);
    g_allocations = 0;
    g_count_allocations = true;
    const absl::Status status = backend->Forward(batch, logits);
    g_count_allocations = false;
    EXPECT_EQ(status.ok(), valid) << status;
    return g_allocations.load();
  };
  for (int round = 0; round < 2; ++round) {
    builder.Append(a, TestTokens(6, vocab, 1 + round));
    builder.Append(b, TestTokens(3, vocab, 3 + round), /*sample=*/false);
    EXPECT_EQ(forward_allocations(builder.Build()), 0) << "mixed step, round " << round;
    builder.Append(a, TestTokens(1, vocab, 5 + round));
    builder.Append(b, TestTokens(1, vocab, 7 + round));
    EXPECT_EQ(forward_allocations(builder.Build()), 0) << "decode step, round " << round;
  }
  // The counter does see allocations: a rejected step formats its message.
  StepBatch bad = builder.Build();
  bad.tokens.push_back(0);
  EXPECT_GT(forward_allocations(bad, /*valid=*/false), 0);
}

INSTANTIATE_TEST_SUITE_P(Architectures, CpuBackendAllocationTest,
                         ::testing::Values("llama", "qwen2", "mistral", "llama_bf16"));

}  // namespace
}  // namespace muserve
