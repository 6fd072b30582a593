#include "scheduler/kv/kv_block_manager.h"

#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace muserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(BlockPoolTest, HandsOutLowestIdsFirstAndReusesTheLastFreed) {
  BlockPool pool(4);
  EXPECT_EQ(pool.Allocate(), 0);
  EXPECT_EQ(pool.Allocate(), 1);
  pool.Release(0);
  EXPECT_EQ(pool.Allocate(), 0);
  EXPECT_EQ(pool.Allocate(), 2);
  EXPECT_EQ(pool.Allocate(), 3);
  EXPECT_EQ(pool.Allocate(), std::nullopt);
  EXPECT_TRUE(pool.CheckConsistency().ok());
}

TEST(BlockPoolTest, SharedBlockIsFreedOnlyWhenTheLastHolderReleasesIt) {
  BlockPool pool(2);
  const BlockId id = *pool.Allocate();
  pool.AddRef(id);
  EXPECT_EQ(pool.ref_count(id), 2);
  pool.Release(id);
  EXPECT_EQ(pool.num_free(), 1);
  pool.Release(id);
  EXPECT_EQ(pool.num_free(), 2);
  EXPECT_EQ(pool.ref_count(id), 0);
  EXPECT_TRUE(pool.CheckConsistency().ok());
}

TEST(BlockPoolTest, ReleasingAFreeBlockIsABug) {
  BlockPool pool(1);
  EXPECT_DEATH(pool.Release(0), "MUSERVE_CHECK failed");
}

TEST(KvBlockManagerTest, GrowAllocatesWholeBlocksForTheTokenCount) {
  KvBlockManager kv(8, 16);
  std::vector<BlockId> table;
  EXPECT_TRUE(kv.Grow(table, 1));
  EXPECT_THAT(table, ElementsAre(0));
  EXPECT_TRUE(kv.Grow(table, 16));
  EXPECT_THAT(table, ElementsAre(0));
  EXPECT_TRUE(kv.Grow(table, 17));
  EXPECT_THAT(table, ElementsAre(0, 1));
  EXPECT_TRUE(kv.Grow(table, 40));
  EXPECT_THAT(table, ElementsAre(0, 1, 2));
  EXPECT_EQ(kv.num_free_blocks(), 5);
  EXPECT_EQ(kv.capacity_tokens(), 128);
}

TEST(KvBlockManagerTest, GrowIsAllOrNothingWhenThePoolRunsShort) {
  KvBlockManager kv(3, 4);
  std::vector<BlockId> a, b;
  ASSERT_TRUE(kv.Grow(a, 8));
  b.push_back(-7);              // a sentinel: a failed Grow must not touch the table
  EXPECT_FALSE(kv.Grow(b, 9));  // needs 3 more, 1 free (the sentinel counts as one)
  EXPECT_THAT(b, ElementsAre(-7));
  EXPECT_EQ(kv.num_free_blocks(), 1);
}

TEST(KvBlockManagerTest, FreeReturnsEveryBlockAndClearsTheTable) {
  KvBlockManager kv(4, 2);
  std::vector<BlockId> table;
  ASSERT_TRUE(kv.Grow(table, 7));
  kv.Free(table);
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(kv.num_free_blocks(), 4);
  // Freed in reverse, so the next sequence gets the same ids in the same order.
  ASSERT_TRUE(kv.Grow(table, 7));
  EXPECT_THAT(table, ElementsAre(0, 1, 2, 3));
}

TEST(KvBlockManagerTest, BudgetGivesWholeBlocksAndRejectsOneTooSmall) {
  auto blocks = KvBlockManager::NumBlocksForBudget(10'000, 64, 16, "--kv-cache-bytes");
  ASSERT_TRUE(blocks.ok());
  EXPECT_EQ(*blocks, 9);  // 10000 / (64 * 16)
  auto none = KvBlockManager::NumBlocksForBudget(1000, 64, 16, "--kv-cache-bytes");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("--kv-cache-bytes"));
}

// Random grow/free/share traffic: the pool's invariants hold after every
// operation and every block comes back at the end.
TEST(KvBlockManagerTest, RandomTrafficKeepsThePoolConsistent) {
  KvBlockManager kv(64, 4);
  std::mt19937 rng(1234);
  std::vector<std::vector<BlockId>> tables(16);
  std::vector<int64_t> lengths(16, 0);
  for (int op = 0; op < 20000; ++op) {
    const size_t s = rng() % tables.size();
    if (rng() % 4 == 0) {
      kv.Free(tables[s]);
      lengths[s] = 0;
    } else {
      const int64_t target = lengths[s] + 1 + rng() % 9;
      const size_t before = tables[s].size();
      if (kv.Grow(tables[s], target)) {
        lengths[s] = target;
        ASSERT_EQ(tables[s].size(), static_cast<size_t>(kv.BlocksFor(target)));
      } else {
        ASSERT_EQ(tables[s].size(), before);
      }
    }
    int64_t owned = 0;
    for (const auto& table : tables) {
      owned += static_cast<int64_t>(table.size());
      for (BlockId id : table) ASSERT_EQ(kv.pool().ref_count(id), 1);
    }
    ASSERT_EQ(owned + kv.num_free_blocks(), kv.num_blocks());
    ASSERT_TRUE(kv.pool().CheckConsistency().ok()) << kv.pool().CheckConsistency();
  }
  for (auto& table : tables) kv.Free(table);
  EXPECT_EQ(kv.num_free_blocks(), kv.num_blocks());
}

}  // namespace
}  // namespace muserve
