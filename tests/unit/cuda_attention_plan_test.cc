// The host side of the CUDA kernels, which runs without a device: the paged
// attention plan (tiles, split-KV decisions, workspace) and the launchers'
// argument checks, which return before touching the GPU.
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/kernels/gather_rows.h"
#include "cuda/kernels/paged_attention.h"
#include "cuda/kernels/rms_norm.h"
#include "cuda/kernels/rope.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace muserve::cuda {
namespace {

using ::testing::HasSubstr;

AttentionDims Dims(int32_t heads, int32_t kv_heads, int32_t head_dim = 128) {
  return {heads, kv_heads, head_dim, /*block_size=*/16, /*sliding_window=*/0};
}

TEST(AttentionPlanTest, TilesEachSequenceInRunsOfSixteenQueryRows) {
  // group 4: 4 tokens x 4 heads per tile.
  const std::vector<int32_t> query = {1, 9, 4}, context = {50, 9, 100};
  absl::StatusOr<AttentionPlan> plan = PlanPagedAttention(query, context, Dims(32, 8), 132);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->tokens_per_tile, 4);
  EXPECT_EQ(plan->tile_sequence, (std::vector<int32_t>{0, 1, 1, 1, 2}));
  EXPECT_EQ(plan->tile_query_begin, (std::vector<int32_t>{0, 0, 4, 8, 0}));
  EXPECT_EQ(plan->num_splits, 1);  // contexts too short to split
  EXPECT_EQ(plan->WorkspaceBytes(14, Dims(32, 8)), 0);

  // No GQA: 16 tokens per tile; group 16: one token per tile.
  plan = PlanPagedAttention(std::vector<int32_t>{33}, std::vector<int32_t>{33}, Dims(8, 8), 1);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->tile_query_begin, (std::vector<int32_t>{0, 16, 32}));
  plan = PlanPagedAttention(std::vector<int32_t>{3}, std::vector<int32_t>{3}, Dims(16, 1), 1);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->tokens_per_tile, 1);
  EXPECT_EQ(plan->num_tiles(), 3);
}

TEST(AttentionPlanTest, SplitsLongDecodesOnlyWhenTheGpuWouldBeUnderfilled) {
  const AttentionDims dims = Dims(32, 8);
  // One 32k decode: 8 blocks for 132 SMs, so the keys are split in chunks
  // of whole 32-key tiles that cover the context.
  absl::StatusOr<AttentionPlan> plan = PlanPagedAttention(
      std::vector<int32_t>{1}, std::vector<int32_t>{32768}, dims, /*num_sms=*/132);
  ASSERT_TRUE(plan.ok());
  EXPECT_GT(plan->num_splits, 1);
  EXPECT_LE(plan->num_splits, 32);
  EXPECT_EQ(plan->kv_chunk % kKeyTile, 0);
  EXPECT_GE(int64_t{plan->num_splits} * plan->kv_chunk, 32768);
  EXPECT_LT(int64_t{plan->num_splits - 1} * plan->kv_chunk, 32768);
  EXPECT_EQ(plan->WorkspaceBytes(1, dims), int64_t{plan->num_splits} * 32 * 129 * 4);

  // 64 such decodes fill the GPU: no split.
  plan =
      PlanPagedAttention(std::vector<int32_t>(64, 1), std::vector<int32_t>(64, 32768), dims, 132);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->num_splits, 1);
  // A short context is never split, however empty the GPU.
  plan = PlanPagedAttention(std::vector<int32_t>{1}, std::vector<int32_t>{511}, dims, 132);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->num_splits, 1);
  // max_splits caps the workspace.
  plan = PlanPagedAttention(std::vector<int32_t>{1}, std::vector<int32_t>{32768}, dims, 132,
                            /*max_splits=*/4);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->num_splits, 4);
}

// A CUDA graph's decode plan is fixed at capture: one tile per sequence and
// splits sized for the longest span, which must still cover every key of a
// sequence at that span and only add empty splits for shorter ones.
TEST(AttentionPlanTest, FixedDecodePlanCoversTheLongestSpan) {
  absl::StatusOr<AttentionPlan> one = PlanFixedDecode(1, 32768, Dims(32, 8), 132);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->tile_sequence, (std::vector<int32_t>{0}));
  EXPECT_EQ(one->tile_query_begin, (std::vector<int32_t>{0}));
  EXPECT_GT(one->num_splits, 1);
  EXPECT_EQ(one->kv_chunk % kKeyTile, 0);
  EXPECT_GE(int64_t{one->num_splits} * one->kv_chunk, 32768);

  absl::StatusOr<AttentionPlan> many = PlanFixedDecode(256, 32768, Dims(32, 8), 132);
  ASSERT_TRUE(many.ok()) << many.status();
  EXPECT_EQ(many->num_tiles(), 256);
  EXPECT_EQ(many->num_splits, 1);  // 2,048 blocks fill 132 SMs already

  EXPECT_THAT(PlanFixedDecode(0, 10, Dims(32, 8), 132).status().message(),
              HasSubstr("num_sequences"));
}

TEST(AttentionPlanTest, RejectsBadLengthsAndUnsupportedShapesNamingThem) {
  const AttentionDims dims = Dims(32, 8);
  absl::StatusOr<AttentionPlan> plan =
      PlanPagedAttention(std::vector<int32_t>{1, 5}, std::vector<int32_t>{3, 4}, dims, 132);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("sequence 1"));
  plan = PlanPagedAttention(std::vector<int32_t>{0}, std::vector<int32_t>{3}, dims, 132);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_THAT(std::string(Dims(32, 8, 96).Validate().message()), HasSubstr("head_dim"));
  EXPECT_THAT(std::string(Dims(30, 8).Validate().message()), HasSubstr("num_kv_heads"));
  EXPECT_THAT(std::string(Dims(64, 2).Validate().message()), HasSubstr("32 query heads per KV"));
  EXPECT_TRUE(Dims(128, 8).Validate().ok());
}

TEST(CudaLauncherArgumentsTest, BadArgumentsAreInvalidArgumentBeforeAnyLaunch) {
  // None of these reach the device: they run on machines without one.
  PagedAttentionArgs args;
  args.dtype = DType::kF32;
  args.dims = Dims(32, 8);
  absl::Status s = LaunchPagedAttention(args, AttentionPlan{}, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("BF16 or F16"));

  args.dtype = DType::kBF16;
  args.num_tokens = 1;
  args.max_blocks_per_sequence = 4;
  AttentionPlan split;
  split.num_splits = 3;  // but no kv_chunk and no workspace
  s = LaunchPagedAttention(args, split, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("workspace"));

  s = LaunchRope(DType::kBF16, nullptr, 128, 4, nullptr, 0, 0, /*head_dim=*/127, nullptr, nullptr,
                 1, nullptr);
  EXPECT_THAT(std::string(s.message()), HasSubstr("head_dim"));
  s = LaunchGatherRows(nullptr, /*row_bytes=*/6, nullptr, 1, nullptr, nullptr);
  EXPECT_THAT(std::string(s.message()), HasSubstr("row_bytes"));
  s = LaunchAddRmsNorm(DType::kBF16, nullptr, nullptr, nullptr, 1, /*n=*/0, 1e-5f, nullptr,
                       nullptr);
  EXPECT_THAT(std::string(s.message()), HasSubstr("n > 0"));
}

}  // namespace
}  // namespace muserve::cuda
