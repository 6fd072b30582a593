// The host side of the CUDA backend, which runs without a device: the packed
// step arrays (offsets, padding of a CUDA graph's decode batch), the graph
// batch ladder and the option checks.
#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda/kernels/paged_attention.h"
#include "cuda/step_metadata.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace muserve::cuda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

template <class T>
std::vector<T> Read(const std::vector<std::byte>& buffer, int64_t offset, int64_t n) {
  std::vector<T> out(static_cast<size_t>(n));
  std::memcpy(out.data(), buffer.data() + offset, static_cast<size_t>(n) * sizeof(T));
  return out;
}

// A prefill chunk of 3 tokens (not sampled) and a decode, block size 4.
StepBatch MixedBatch() {
  StepBatch batch;
  batch.tokens = {11, 12, 13, 21};
  batch.positions = {4, 5, 6, 8};
  batch.slot_mapping = {4 * 7 + 0, 4 * 7 + 1, 4 * 7 + 2, 4 * 2 + 0};
  batch.sequences.push_back({0, 3, 7, {5, 7}, false});
  batch.sequences.push_back({3, 1, 9, {1, 3, 2}, true});
  return batch;
}

TEST(StepMetadataTest, LayoutOffsetsAreAlignedAndDisjoint) {
  const StepLayout l = StepLayout::For(5, 3, 4, 7);
  const std::vector<std::pair<int64_t, int64_t>> arrays = {
      {l.slots, 5 * 8},         {l.tokens, 5 * 4},           {l.positions, 5 * 4},
      {l.query_start, 4 * 4},   {l.context_lens, 3 * 4},     {l.sample_rows, 3 * 4},
      {l.tile_sequence, 4 * 4}, {l.tile_query_begin, 4 * 4}, {l.block_tables, 3 * 7 * 4}};
  for (size_t i = 0; i < arrays.size(); ++i) {
    EXPECT_EQ(arrays[i].first % 16, 0) << i;
    EXPECT_LE(arrays[i].first + arrays[i].second, l.bytes) << i;
    for (size_t j = 0; j < arrays.size(); ++j) {
      if (i == j) continue;
      const bool disjoint = arrays[i].first + arrays[i].second <= arrays[j].first ||
                            arrays[j].first + arrays[j].second <= arrays[i].first;
      EXPECT_TRUE(disjoint) << i << " overlaps " << j;
    }
  }
}

TEST(StepMetadataTest, PacksAMixedBatchAsTheKernelsReadIt) {
  const StepBatch batch = MixedBatch();
  AttentionPlan plan;
  plan.tile_sequence = {0, 1};
  plan.tile_query_begin = {0, 0};
  const StepLayout l = StepLayout::For(4, 2, 2, BlockStrideFor(batch, 4));
  EXPECT_EQ(l.block_stride, 3);
  std::vector<std::byte> buffer(static_cast<size_t>(l.bytes));
  absl::StatusOr<int32_t> sampled = PackStep(batch, plan, 2, 4, l, buffer);
  ASSERT_TRUE(sampled.ok()) << sampled.status();
  EXPECT_EQ(*sampled, 1);
  EXPECT_THAT(Read<int32_t>(buffer, l.tokens, 4), ElementsAre(11, 12, 13, 21));
  EXPECT_THAT(Read<int32_t>(buffer, l.positions, 4), ElementsAre(4, 5, 6, 8));
  EXPECT_THAT(Read<int64_t>(buffer, l.slots, 4), ElementsAre(28, 29, 30, 8));
  EXPECT_THAT(Read<int32_t>(buffer, l.query_start, 3), ElementsAre(0, 3, 4));
  EXPECT_THAT(Read<int32_t>(buffer, l.context_lens, 2), ElementsAre(7, 9));
  EXPECT_THAT(Read<int32_t>(buffer, l.sample_rows, 1), ElementsAre(3));
  // Rows of 3 entries; the first sequence's unused third entry is block 0.
  EXPECT_THAT(Read<int32_t>(buffer, l.block_tables, 6), ElementsAre(5, 7, 0, 1, 3, 2));
  EXPECT_THAT(Read<int32_t>(buffer, l.tile_sequence, 2), ElementsAre(0, 1));
}

// A decode graph of 4 sequences replaying a step of 2: the padding
// sequences decode token 0 at position 0 from block 0, write no KV (slot
// -1), and the sampled rows stay in sequence order, padding last.
TEST(StepMetadataTest, PadsADecodeStepToTheGraphsBatch) {
  StepBatch batch;
  batch.tokens = {7, 9};
  batch.positions = {20, 3};
  batch.slot_mapping = {16 * 2 + 4, 16 * 6 + 3};
  batch.sequences.push_back({0, 1, 21, {0, 2}, true});
  batch.sequences.push_back({1, 1, 4, {6}, true});
  AttentionPlan plan;
  plan.tile_sequence = {0, 1, 2, 3};
  plan.tile_query_begin = {0, 0, 0, 0};
  const StepLayout l = StepLayout::For(4, 4, 4, 4);
  std::vector<std::byte> buffer(static_cast<size_t>(l.bytes));
  absl::StatusOr<int32_t> sampled = PackStep(batch, plan, 4, 16, l, buffer);
  ASSERT_TRUE(sampled.ok()) << sampled.status();
  EXPECT_EQ(*sampled, 4);
  EXPECT_THAT(Read<int32_t>(buffer, l.tokens, 4), ElementsAre(7, 9, 0, 0));
  EXPECT_THAT(Read<int32_t>(buffer, l.positions, 4), ElementsAre(20, 3, 0, 0));
  EXPECT_THAT(Read<int64_t>(buffer, l.slots, 4), ElementsAre(36, 99, -1, -1));
  EXPECT_THAT(Read<int32_t>(buffer, l.query_start, 5), ElementsAre(0, 1, 2, 3, 4));
  EXPECT_THAT(Read<int32_t>(buffer, l.context_lens, 4), ElementsAre(21, 4, 1, 1));
  EXPECT_THAT(Read<int32_t>(buffer, l.sample_rows, 4), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(Read<int32_t>(buffer, l.block_tables, 16),
              ElementsAre(0, 2, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
}

TEST(StepMetadataTest, RefusesABatchBeyondTheLayout) {
  const StepBatch batch = MixedBatch();
  AttentionPlan plan;
  plan.tile_sequence = {0, 1};
  plan.tile_query_begin = {0, 0};
  for (const StepLayout& l : {StepLayout::For(3, 2, 2, 3), StepLayout::For(4, 1, 2, 3),
                              StepLayout::For(4, 2, 1, 3), StepLayout::For(4, 2, 2, 2)}) {
    std::vector<std::byte> buffer(static_cast<size_t>(l.bytes));
    EXPECT_THAT(PackStep(batch, plan, 2, 4, l, buffer).status().message(),
                HasSubstr("exceeds the step layout"));
  }
}

TEST(CudaBackendOptionsTest, GraphLadderAndOptionChecks) {
  EXPECT_THAT(GraphBatchSizes(1), ElementsAre(1));
  EXPECT_THAT(GraphBatchSizes(20), ElementsAre(1, 2, 4, 8, 16, 20));
  EXPECT_THAT(GraphBatchSizes(64), ElementsAre(1, 2, 4, 8, 16, 32, 48, 64));
  const std::vector<int32_t> big = GraphBatchSizes(512);
  EXPECT_EQ(big.back(), 512);
  EXPECT_EQ(big[big.size() - 2], 448);
  EXPECT_TRUE(GraphBatchSizes(0).empty());

  CudaBackendOptions options;
  EXPECT_TRUE(options.Validate().ok());
  options.gpu_memory_utilization = 1.5;
  EXPECT_THAT(options.Validate().message(), HasSubstr("gpu_memory_utilization"));
  options = {};
  options.max_num_seqs = 0;
  EXPECT_THAT(options.Validate().message(), HasSubstr("max_num_seqs"));
}

}  // namespace
}  // namespace muserve::cuda
