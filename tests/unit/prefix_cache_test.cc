// Automatic prefix caching, bottom up: the block pool's LRU of evictable
// cached blocks, the KV block manager's index (reuse of full blocks only,
// salts, verification against hash collisions, duplicates), and the
// scheduler driven without a model (a second identical prompt computes only
// what the cache lacks, generated tokens become reusable, a preempted
// sequence finds its own blocks again, eviction spares held blocks, exact
// statistics).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/kv/block_hash.h"
#include "scheduler/kv/block_pool.h"
#include "scheduler/kv/kv_block_manager.h"
#include "scheduler/scheduler.h"

namespace muserve {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr RequestId Id(uint64_t n) { return RequestId{n}; }

// ---- BlockPool ----------------------------------------------------------------------

// A pool whose eviction callback records the evicted ids.
struct RecordingPool {
  explicit RecordingPool(int32_t n) : pool(n, [this](BlockId id) { evicted.push_back(id); }) {}
  std::vector<BlockId> evicted;
  BlockPool pool;
};

TEST(PrefixCacheBlockPoolTest, EvictsLeastRecentlyReleasedFirstAndReportsEachEviction) {
  RecordingPool p(4);
  BlockPool& pool = p.pool;
  for (BlockId id = 0; id < 4; ++id) {
    ASSERT_EQ(pool.Allocate(), id);
    pool.MarkCached(id);
  }
  for (BlockId id : {2, 0, 3, 1}) pool.Release(id);
  EXPECT_EQ(pool.num_free(), 0);
  EXPECT_EQ(pool.num_evictable(), 4);
  EXPECT_EQ(pool.num_available(), 4);
  for (BlockId id = 0; id < 4; ++id) {
    EXPECT_TRUE(pool.evictable(id));
    EXPECT_TRUE(pool.cached(id));
    EXPECT_EQ(pool.ref_count(id), 0);
  }
  ASSERT_TRUE(pool.CheckConsistency().ok()) << pool.CheckConsistency();
  EXPECT_THAT(p.evicted, IsEmpty());  // releasing evicts nothing

  EXPECT_EQ(pool.Allocate(), 2);
  EXPECT_THAT(p.evicted, ElementsAre(2));
  EXPECT_FALSE(pool.cached(2));  // its old contents are no longer indexed
  EXPECT_EQ(pool.Allocate(), 0);
  EXPECT_EQ(pool.Allocate(), 3);
  EXPECT_EQ(pool.Allocate(), 1);
  EXPECT_EQ(pool.Allocate(), std::nullopt);
  EXPECT_THAT(p.evicted, ElementsAre(2, 0, 3, 1));
  ASSERT_TRUE(pool.CheckConsistency().ok()) << pool.CheckConsistency();

  // An evicted block is plain again: released, it is free, not evictable.
  pool.Release(2);
  EXPECT_EQ(pool.num_free(), 1);
  EXPECT_EQ(pool.num_evictable(), 0);
  EXPECT_TRUE(pool.CheckConsistency().ok());
}

TEST(PrefixCacheBlockPoolTest, PrefersAFreeBlockToEvictingACachedOne) {
  RecordingPool p(3);
  BlockPool& pool = p.pool;
  const BlockId cached = *pool.Allocate();  // 0
  const BlockId plain = *pool.Allocate();   // 1
  pool.MarkCached(cached);
  pool.Release(cached);
  pool.Release(plain);
  EXPECT_EQ(pool.num_free(), 2);  // 1 and the never-used 2
  EXPECT_EQ(pool.num_evictable(), 1);
  const BlockId first = *pool.Allocate();
  const BlockId second = *pool.Allocate();
  EXPECT_NE(first, cached);
  EXPECT_NE(second, cached);
  EXPECT_THAT(p.evicted, IsEmpty());
  EXPECT_TRUE(pool.cached(cached));
  // Only when no free block is left does the cached one go.
  EXPECT_EQ(pool.Allocate(), cached);
  EXPECT_THAT(p.evicted, ElementsAre(cached));
  EXPECT_TRUE(pool.CheckConsistency().ok());
}

TEST(PrefixCacheBlockPoolTest, AddRefRevivesAnEvictableBlockAndItsReleaseRenewsItsPlace) {
  RecordingPool p(2);
  BlockPool& pool = p.pool;
  const BlockId a = *pool.Allocate();
  const BlockId b = *pool.Allocate();
  pool.MarkCached(a);
  pool.MarkCached(b);
  pool.Release(a);  // a is older than b
  pool.Release(b);
  pool.AddRef(a);  // a prefix hit takes it back
  EXPECT_EQ(pool.ref_count(a), 1);
  EXPECT_FALSE(pool.evictable(a));
  EXPECT_TRUE(pool.cached(a));
  EXPECT_EQ(pool.num_evictable(), 1);
  EXPECT_EQ(pool.num_available(), 1);
  ASSERT_TRUE(pool.CheckConsistency().ok()) << pool.CheckConsistency();
  pool.AddRef(a);  // a second holder of a block in use
  EXPECT_EQ(pool.ref_count(a), 2);
  pool.Release(a);
  EXPECT_FALSE(pool.evictable(a));  // still held once
  pool.Release(a);
  EXPECT_TRUE(pool.evictable(a));
  // a was released last, so b is now the least recently released.
  EXPECT_EQ(pool.Allocate(), b);
  EXPECT_EQ(pool.Allocate(), a);
  EXPECT_THAT(p.evicted, ElementsAre(b, a));
  EXPECT_TRUE(pool.CheckConsistency().ok());
}

// The pool's invariants cannot be broken through its interface: the misuses
// that would break them stop the process instead.
TEST(PrefixCacheBlockPoolTest, MisusesThatWouldBreakTheListsAreCaught) {
  BlockPool pool(2);
  EXPECT_DEATH(pool.AddRef(0), "MUSERVE_CHECK failed");      // a free block has no contents
  EXPECT_DEATH(pool.MarkCached(1), "MUSERVE_CHECK failed");  // only a block in use is indexed
  const BlockId id = *pool.Allocate();
  pool.Release(id);
  EXPECT_DEATH(pool.Release(id), "MUSERVE_CHECK failed");
}

// ---- KvBlockManager -----------------------------------------------------------------

constexpr int32_t kBs = 4;

std::vector<TokenId> Range(TokenId first, int32_t n) {
  std::vector<TokenId> out(n);
  for (int32_t i = 0; i < n; ++i) out[i] = first + i;
  return out;
}

std::vector<TokenId> Concat(std::vector<TokenId> a, const std::vector<TokenId>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A sequence handled by hand: computes its tokens into fresh blocks (after
// any cached prefix) and indexes its full blocks, as a step would.
struct HandSeq {
  std::vector<BlockId> table;
  std::vector<BlockHash> hashes;
  int32_t hit_blocks = 0;
};

HandSeq Compute(KvBlockManager& kv, const std::vector<TokenId>& tokens, BlockHash seed,
                bool use_cache = true) {
  HandSeq s;
  if (use_cache) {
    s.hit_blocks = kv.AcquireCachedPrefix(
        tokens, seed, (static_cast<int32_t>(tokens.size()) - 1) / kv.block_size(), s.table,
        s.hashes);
  }
  EXPECT_TRUE(kv.Grow(s.table, static_cast<int64_t>(tokens.size())));
  kv.CacheFullBlocks(tokens, static_cast<int32_t>(tokens.size()), seed, s.table, s.hashes);
  return s;
}

TEST(PrefixCacheKvTest, SecondIdenticalPromptReusesEveryFullBlockButNeverTheLastToken) {
  KvBlockManager kv(16, kBs, /*enable_prefix_caching=*/true);
  const BlockHash seed = PrefixCacheSeed("");
  const std::vector<TokenId> prompt = Range(100, 10);  // 2 full blocks + 2 tokens
  HandSeq a = Compute(kv, prompt, seed);
  EXPECT_EQ(a.hit_blocks, 0);
  ASSERT_EQ(a.table.size(), 3u);
  EXPECT_EQ(a.hashes.size(), 2u);  // the partial third block is not indexed
  EXPECT_TRUE(kv.pool().cached(a.table[0]));
  EXPECT_TRUE(kv.pool().cached(a.table[1]));
  EXPECT_FALSE(kv.pool().cached(a.table[2]));
  EXPECT_EQ(kv.CachedHash(a.table[0]), HashBlock(seed, Range(100, 4)));
  EXPECT_EQ(kv.CachedHash(a.table[1]), HashBlock(HashBlock(seed, Range(100, 4)), Range(104, 4)));

  HandSeq b = Compute(kv, prompt, seed);
  EXPECT_EQ(b.hit_blocks, 2);
  EXPECT_EQ(b.table[0], a.table[0]);
  EXPECT_EQ(b.table[1], a.table[1]);
  EXPECT_NE(b.table[2], a.table[2]);  // the partial block is never shared
  EXPECT_EQ(kv.pool().ref_count(a.table[0]), 2);
  EXPECT_EQ(b.hashes, a.hashes);

  // A prompt of exactly two blocks: its last token must be computed, so only
  // the first block is reused, whatever the cap the caller passes in.
  std::vector<BlockId> table;
  std::vector<BlockHash> hashes;
  const std::vector<TokenId> eight = Range(100, 8);
  EXPECT_EQ(kv.AcquireCachedPrefix(eight, seed, (8 - 1) / kBs, table, hashes), 1);
  kv.Free(table);
  EXPECT_EQ(kv.AcquireCachedPrefix(eight, seed, 2, table, hashes), 2);
  kv.Free(table);
  // A prompt that differs inside the second block shares only the first.
  std::vector<TokenId> other = prompt;
  other[6] = 999;
  EXPECT_EQ(kv.AcquireCachedPrefix(other, seed, 2, table, hashes), 1);
  kv.Free(table);
  // One that differs in the first block shares nothing, even if the second
  // block's tokens are equal (the hash chains the whole prefix).
  other = prompt;
  other[0] = 999;
  EXPECT_EQ(kv.AcquireCachedPrefix(other, seed, 2, table, hashes), 0);
  EXPECT_TRUE(kv.CheckIndex().ok()) << kv.CheckIndex();
  EXPECT_TRUE(kv.pool().CheckConsistency().ok());
}

TEST(PrefixCacheKvTest, APartialBlockIsIndexedOnlyOnceItIsFullAndComputed) {
  KvBlockManager kv(8, kBs, true);
  const BlockHash seed = PrefixCacheSeed("");
  const std::vector<TokenId> tokens = Range(1, 8);
  std::vector<BlockId> table;
  std::vector<BlockHash> hashes;
  ASSERT_TRUE(kv.Grow(table, 8));
  // Only 6 of 8 computed (a chunked prefill): the second block is not ready.
  kv.CacheFullBlocks(tokens, 6, seed, table, hashes);
  EXPECT_EQ(hashes.size(), 1u);
  EXPECT_FALSE(kv.pool().cached(table[1]));
  std::vector<BlockId> probe;
  std::vector<BlockHash> probe_hashes;
  EXPECT_EQ(kv.AcquireCachedPrefix(Range(1, 9), seed, 2, probe, probe_hashes), 1);
  kv.Free(probe);
  kv.CacheFullBlocks(tokens, 8, seed, table, hashes);
  EXPECT_EQ(hashes.size(), 2u);
  EXPECT_TRUE(kv.pool().cached(table[1]));
  EXPECT_EQ(kv.AcquireCachedPrefix(Range(1, 9), seed, 2, probe, probe_hashes), 2);
  EXPECT_EQ(kv.prefix_cache_stats().cached_blocks, 2);
}

TEST(PrefixCacheKvTest, DifferentSaltsShareNothing) {
  KvBlockManager kv(16, kBs, true);
  const std::vector<TokenId> prompt = Range(7, 9);
  EXPECT_NE(PrefixCacheSeed(""), PrefixCacheSeed("tenant-a"));
  EXPECT_NE(PrefixCacheSeed("tenant-a"), PrefixCacheSeed("tenant-b"));
  EXPECT_EQ(PrefixCacheSeed("tenant-a"), PrefixCacheSeed(std::string("tenant-a")));
  HandSeq a = Compute(kv, prompt, PrefixCacheSeed("tenant-a"));
  HandSeq b = Compute(kv, prompt, PrefixCacheSeed("tenant-b"));
  HandSeq none = Compute(kv, prompt, PrefixCacheSeed(""));
  EXPECT_EQ(b.hit_blocks, 0);
  EXPECT_EQ(none.hit_blocks, 0);
  // Each tenant indexed its own two blocks.
  EXPECT_EQ(kv.prefix_cache_stats().cached_blocks, 6);
  HandSeq a2 = Compute(kv, prompt, PrefixCacheSeed("tenant-a"));
  EXPECT_EQ(a2.hit_blocks, 2);
  EXPECT_EQ(a2.table[0], a.table[0]);
}

TEST(PrefixCacheKvTest, DisabledCachingIndexesAndReusesNothing) {
  KvBlockManager kv(8, kBs, /*enable_prefix_caching=*/false);
  EXPECT_FALSE(kv.prefix_caching());
  const BlockHash seed = PrefixCacheSeed("");
  HandSeq a = Compute(kv, Range(0, 9), seed);
  EXPECT_THAT(a.hashes, IsEmpty());
  for (BlockId id : a.table) EXPECT_FALSE(kv.pool().cached(id));
  HandSeq b = Compute(kv, Range(0, 9), seed);
  EXPECT_EQ(b.hit_blocks, 0);
  kv.Free(a.table);
  kv.Free(b.table);
  EXPECT_EQ(kv.pool().num_free(), 8);  // freed, not kept evictable
  EXPECT_EQ(kv.pool().num_evictable(), 0);
  const PrefixCacheStats stats = kv.prefix_cache_stats();
  EXPECT_EQ(stats.cached_blocks, 0);
  EXPECT_EQ(stats.evictable_blocks, 0);
}

TEST(PrefixCacheKvTest, DuplicateContentsAreIndexedOnceAndTheCopyIsFreedNotCached) {
  KvBlockManager kv(8, kBs, true);
  const BlockHash seed = PrefixCacheSeed("");
  const std::vector<TokenId> prompt = Range(50, 8);
  // Two sequences computed the same blocks in the same step (neither could
  // find the other's in the cache).
  HandSeq a, b;
  ASSERT_TRUE(kv.Grow(a.table, 8));
  ASSERT_TRUE(kv.Grow(b.table, 8));
  kv.CacheFullBlocks(prompt, 8, seed, a.table, a.hashes);
  kv.CacheFullBlocks(prompt, 8, seed, b.table, b.hashes);
  EXPECT_EQ(b.hashes, a.hashes);
  for (BlockId id : a.table) EXPECT_TRUE(kv.pool().cached(id));
  for (BlockId id : b.table) EXPECT_FALSE(kv.pool().cached(id));
  EXPECT_EQ(kv.prefix_cache_stats().cached_blocks, 2);
  ASSERT_TRUE(kv.CheckIndex().ok()) << kv.CheckIndex();
  const int32_t free_before = kv.pool().num_free();
  kv.Free(b.table);
  EXPECT_EQ(kv.pool().num_free(), free_before + 2);
  EXPECT_EQ(kv.pool().num_evictable(), 0);
  kv.Free(a.table);
  EXPECT_EQ(kv.pool().num_evictable(), 2);
  // The index still serves the first copy.
  HandSeq c = Compute(kv, Concat(prompt, {1}), seed);
  EXPECT_EQ(c.hit_blocks, 2);
  EXPECT_TRUE(kv.pool().CheckConsistency().ok());
}

TEST(PrefixCacheKvTest, EvictionForgetsTheBlockAndANewComputationReindexesIt) {
  KvBlockManager kv(3, kBs, true);
  const BlockHash seed = PrefixCacheSeed("");
  HandSeq a = Compute(kv, Range(0, 8), seed);  // 2 cached blocks, 1 free
  kv.Free(a.table);
  EXPECT_EQ(kv.prefix_cache_stats().evictable_blocks, 2);
  // A 12-token stranger takes the free block, then evicts both.
  HandSeq x = Compute(kv, Range(500, 12), seed);
  EXPECT_EQ(x.hit_blocks, 0);
  ASSERT_EQ(x.table.size(), 3u);
  PrefixCacheStats stats = kv.prefix_cache_stats();
  EXPECT_EQ(stats.evictable_blocks, 0);
  EXPECT_EQ(stats.cached_blocks, 3);  // the stranger's own three
  ASSERT_TRUE(kv.CheckIndex().ok()) << kv.CheckIndex();
  kv.Free(x.table);
  HandSeq again = Compute(kv, Range(0, 9), seed);
  EXPECT_EQ(again.hit_blocks, 0);  // evicted: computed again
  EXPECT_TRUE(kv.CheckIndex().ok()) << kv.CheckIndex();
}

// ---- Hash collisions ----------------------------------------------------------------
// HashBlock is built from splitmix64's finalizer, a bijection, so a parent
// (seed) that makes any chosen block hash to any chosen value can be computed
// backwards. These helpers mirror block_hash.cc and are checked against it.

uint64_t InverseMultiply(uint64_t c) {
  uint64_t inv = c;  // Newton's iteration for the inverse modulo 2^64 (c odd)
  for (int i = 0; i < 6; ++i) inv *= 2 - c * inv;
  return inv;
}

uint64_t InverseXorShift(uint64_t y, int shift) {
  uint64_t x = y;
  for (int i = 0; i < 64 / shift + 1; ++i) x = y ^ (x >> shift);
  return x;
}

uint64_t Unmix(uint64_t x) {
  x = InverseXorShift(x, 31);
  x *= InverseMultiply(0x94d049bb133111ebull);
  x = InverseXorShift(x, 27);
  x *= InverseMultiply(0xbf58476d1ce4e5b9ull);
  x = InverseXorShift(x, 30);
  return x;
}

// The parent for which HashBlock(parent, tokens) == target.
BlockHash ForgeParent(BlockHash target, std::span<const TokenId> tokens) {
  uint64_t h = Unmix(target) - tokens.size();
  for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) {
    h = Unmix(h) ^ static_cast<uint32_t>(*it);
  }
  return Unmix(h) - 0x9e3779b97f4a7c15ull;
}

TEST(PrefixCacheKvTest, AHashCollisionIsAMissNotAnotherBlocksContents) {
  KvBlockManager kv(8, kBs, true);
  const BlockHash seed = PrefixCacheSeed("");
  const std::vector<TokenId> mine = Range(10, 4);
  HandSeq a = Compute(kv, mine, seed);
  kv.CacheFullBlocks(mine, 4, seed, a.table, a.hashes);
  ASSERT_EQ(a.hashes.size(), 1u);
  const std::vector<TokenId> theirs = Range(90, 4);
  const BlockHash forged = ForgeParent(a.hashes[0], theirs);
  ASSERT_EQ(HashBlock(forged, theirs), a.hashes[0]) << "ForgeParent must mirror block_hash.cc";
  ASSERT_NE(forged, seed);

  // Looking up a colliding (parent, tokens) finds the entry but must not take it.
  std::vector<BlockId> table;
  std::vector<BlockHash> hashes;
  EXPECT_EQ(kv.AcquireCachedPrefix(Concat(theirs, {1}), forged, 1, table, hashes), 0);
  EXPECT_THAT(table, IsEmpty());
  EXPECT_EQ(kv.pool().ref_count(a.table[0]), 1);  // no reference taken

  // Computing the colliding block leaves it unindexed (the entry is taken)
  // and the original is still the one served.
  HandSeq b;
  ASSERT_TRUE(kv.Grow(b.table, 4));
  kv.CacheFullBlocks(theirs, 4, forged, b.table, b.hashes);
  EXPECT_FALSE(kv.pool().cached(b.table[0]));
  EXPECT_EQ(kv.prefix_cache_stats().cached_blocks, 1);
  EXPECT_EQ(kv.AcquireCachedPrefix(Concat(mine, {1}), seed, 1, table, hashes), 1);
  EXPECT_THAT(table, ElementsAre(a.table[0]));
  EXPECT_TRUE(kv.CheckIndex().ok()) << kv.CheckIndex();
}

// The block after a colliding one: its K/V follow the colliding sequence's
// tokens, not the indexed block's, so a sequence whose prefix is the indexed
// block must not be served it (block_hash.h: "a 64-bit collision costs a
// miss, not a wrong answer").
TEST(PrefixCacheKvTest, TheBlockAfterACollisionIsNotServedToTheOtherChain) {
  KvBlockManager kv(8, kBs, true);
  const BlockHash seed = PrefixCacheSeed("");
  const std::vector<TokenId> mine = Range(10, 4);
  HandSeq a = Compute(kv, mine, seed);
  ASSERT_EQ(a.hashes.size(), 1u);
  const std::vector<TokenId> theirs = Range(90, 4);
  const BlockHash forged = ForgeParent(a.hashes[0], theirs);
  ASSERT_EQ(HashBlock(forged, theirs), a.hashes[0]) << "ForgeParent must mirror block_hash.cc";
  const std::vector<TokenId> next = Range(300, 4);
  // The other chain: a colliding first block, then `next` (computed after
  // `theirs`).
  HandSeq b = Compute(kv, Concat(theirs, next), forged);
  ASSERT_EQ(b.table.size(), 2u);
  // A sequence `mine` + `next` may reuse `mine`'s block but not b's second
  // block, whose K/V were computed after `theirs`.
  std::vector<BlockId> table;
  std::vector<BlockHash> hashes;
  const int32_t hits =
      kv.AcquireCachedPrefix(Concat(Concat(mine, next), {1}), seed, 2, table, hashes);
  EXPECT_EQ(hits, 1) << "served block " << (hits == 2 ? table[1] : -1)
                     << ", computed after other tokens";
  for (BlockId id : table) EXPECT_NE(id, b.table[1]);
}

// ---- Scheduler without a model ------------------------------------------------------

struct StepView {
  uint64_t id;
  int32_t start;  // first position computed
  int32_t query_len;
  bool sample;
};

// Plans a step, checks that it writes where the block tables say, samples
// `next_token` for every sampling sequence and applies the output.
std::vector<StepView> Step(Scheduler& scheduler, SchedulerStep& step, TokenId next_token = 7) {
  scheduler.Schedule(step);
  const StepBatch& batch = step.batch;
  std::vector<StepView> views;
  std::vector<TokenId> sampled;
  for (size_t i = 0; i < batch.sequences.size(); ++i) {
    const StepSequence& s = batch.sequences[i];
    const Sequence* seq = scheduler.Find(step.ids[i]);
    EXPECT_NE(seq, nullptr);
    for (int32_t j = 0; j < s.query_len; ++j) {
      const int32_t pos = s.context_len - s.query_len + j;
      EXPECT_EQ(batch.positions[s.query_start + j], pos);
      EXPECT_EQ(batch.tokens[s.query_start + j], seq->tokens[pos]);
      EXPECT_EQ(batch.slot_mapping[s.query_start + j],
                int64_t{s.block_table[pos / kBs]} * kBs + pos % kBs);
    }
    if (s.sample) sampled.push_back(next_token);
    views.push_back(
        {static_cast<uint64_t>(step.ids[i]), s.context_len - s.query_len, s.query_len, s.sample});
  }
  scheduler.ApplyOutput(step, sampled);
  const absl::Status status = scheduler.CheckConsistency();
  EXPECT_TRUE(status.ok()) << status;
  return views;
}

MATCHER_P4(IsView, id, start, query_len, sample, "") {
  return arg.id == static_cast<uint64_t>(id) && arg.start == start && arg.query_len == query_len &&
         arg.sample == sample;
}

SchedulerOptions CachingOptions(int32_t num_blocks, bool enable = true) {
  return {.max_num_seqs = 8,
          .max_num_batched_tokens = 64,
          .num_blocks = num_blocks,
          .block_size = kBs,
          .enable_prefix_caching = enable};
}

TEST(PrefixCacheSchedulerTest, SamePromptAsAFinishedRequestComputesOnlyWhatTheCacheLacks) {
  Scheduler scheduler(CachingOptions(16));
  const std::vector<TokenId> prompt = Range(20, 10);
  SchedulerStep step;
  scheduler.Add(Id(1), prompt, 0);
  EXPECT_THAT(Step(scheduler, step), ElementsAre(IsView(1, 0, 10, true)));
  const std::vector<BlockId> first_blocks = scheduler.Find(Id(1))->block_table;
  EXPECT_EQ(scheduler.Find(Id(1))->num_cached_prompt_tokens, 0);
  ASSERT_TRUE(scheduler.Remove(Id(1)));

  scheduler.Add(Id(2), prompt, 0);
  // Blocks 0 and 1 (8 tokens) come from the cache: only 8 and 9 are computed.
  EXPECT_THAT(Step(scheduler, step), ElementsAre(IsView(2, 8, 2, true)));
  const Sequence* two = scheduler.Find(Id(2));
  EXPECT_EQ(two->num_cached_prompt_tokens, 8);
  EXPECT_EQ(two->block_table[0], first_blocks[0]);
  EXPECT_EQ(two->block_table[1], first_blocks[1]);
  EXPECT_EQ(two->num_tokens(), 11);

  // A prompt of exactly two blocks reuses one: its last token is computed
  // so that there is something to sample from.
  scheduler.Add(Id(3), Range(20, 8), 0);
  EXPECT_THAT(Step(scheduler, step), ElementsAre(IsView(2, 10, 1, true), IsView(3, 4, 4, true)));
  EXPECT_EQ(scheduler.Find(Id(3))->num_cached_prompt_tokens, 4);
  // A one-block prompt reuses nothing.
  scheduler.Add(Id(4), Range(20, 4), 0);
  EXPECT_THAT(Step(scheduler, step),
              ElementsAre(IsView(2, 11, 1, true), IsView(3, 8, 1, true), IsView(4, 0, 4, true)));
}

TEST(PrefixCacheSchedulerTest, DisabledCachingOrAnOptedOutRequestRecomputesEverything) {
  for (const bool server_on : {false, true}) {
    SCOPED_TRACE(server_on ? "request opted out" : "server has caching off");
    Scheduler scheduler(CachingOptions(16, server_on));
    const PrefixCacheParams params{.enabled = !server_on, .salt = ""};
    SchedulerStep step;
    scheduler.Add(Id(1), Range(20, 10), 0, params);
    Step(scheduler, step);
    ASSERT_TRUE(scheduler.Remove(Id(1)));
    EXPECT_EQ(scheduler.kv().pool().num_evictable(), 0);  // it left nothing behind
    scheduler.Add(Id(2), Range(20, 10), 0, params);
    EXPECT_THAT(Step(scheduler, step), ElementsAre(IsView(2, 0, 10, true)));
    EXPECT_EQ(scheduler.Find(Id(2))->num_cached_prompt_tokens, 0);
    const PrefixCacheStats stats = scheduler.kv().prefix_cache_stats();
    EXPECT_EQ(stats.query_tokens, 0);  // opted-out requests are not looked up
    EXPECT_EQ(stats.cached_blocks, 0);
  }
}

TEST(PrefixCacheSchedulerTest, RequestsWithDifferentSaltsDoNotShare) {
  Scheduler scheduler(CachingOptions(16));
  SchedulerStep step;
  scheduler.Add(Id(1), Range(20, 10), 0, {.enabled = true, .salt = "a"});
  Step(scheduler, step);
  scheduler.Add(Id(2), Range(20, 10), 0, {.enabled = true, .salt = "b"});
  scheduler.Add(Id(3), Range(20, 10), 0, {.enabled = true, .salt = ""});
  scheduler.Add(Id(4), Range(20, 10), 0, {.enabled = true, .salt = "a"});
  EXPECT_THAT(Step(scheduler, step), ElementsAre(IsView(1, 10, 1, true), IsView(2, 0, 10, true),
                                                 IsView(3, 0, 10, true), IsView(4, 8, 2, true)));
}

TEST(PrefixCacheSchedulerTest, GeneratedTokensBecomeReusableForAConversationsNextTurn) {
  Scheduler scheduler(CachingOptions(16));
  SchedulerStep step;
  scheduler.Add(Id(1), Range(20, 6), 0);
  // Prefill 6, then decode until 13 tokens exist (12 computed: 3 full blocks).
  TokenId sampled = 500;
  Step(scheduler, step, sampled++);
  while (scheduler.Find(Id(1))->num_tokens() < 13) Step(scheduler, step, sampled++);
  const Sequence* one = scheduler.Find(Id(1));
  ASSERT_EQ(one->num_computed, 12);
  EXPECT_EQ(one->block_hashes.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(scheduler.kv().pool().cached(one->block_table[i]));
  const std::vector<TokenId> history = one->tokens;
  const std::vector<BlockId> blocks = one->block_table;
  ASSERT_TRUE(scheduler.Remove(Id(1)));

  // The next turn: the whole conversation so far plus a new user message.
  scheduler.Add(Id(2), Concat(history, {900, 901, 902}), 0);
  EXPECT_THAT(Step(scheduler, step), ElementsAre(IsView(2, 12, 4, true)));
  const Sequence* two = scheduler.Find(Id(2));
  EXPECT_EQ(two->num_cached_prompt_tokens, 12);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(two->block_table[i], blocks[i]);
}

TEST(PrefixCacheSchedulerTest, DuplicatePromptsInOneStepKeepOneCopyCached) {
  Scheduler scheduler(CachingOptions(16));
  SchedulerStep step;
  scheduler.Add(Id(1), Range(20, 8), 0);
  scheduler.Add(Id(2), Range(20, 8), 0);
  // Admitted together: neither finds the other's blocks yet.
  EXPECT_THAT(Step(scheduler, step), ElementsAre(IsView(1, 0, 8, true), IsView(2, 0, 8, true)));
  const BlockPool& pool = scheduler.kv().pool();
  const std::vector<BlockId> one = scheduler.Find(Id(1))->block_table;
  const std::vector<BlockId> two = scheduler.Find(Id(2))->block_table;
  EXPECT_TRUE(pool.cached(one[0]) && pool.cached(one[1]));
  EXPECT_FALSE(pool.cached(two[0]) || pool.cached(two[1]));
  EXPECT_EQ(scheduler.kv().prefix_cache_stats().cached_blocks, 2);
  ASSERT_TRUE(scheduler.Remove(Id(2)));
  EXPECT_EQ(pool.num_evictable(), 0);  // the copy is freed
  EXPECT_EQ(pool.num_free(), 16 - 2);  // only 1's two blocks are held
  ASSERT_TRUE(scheduler.Remove(Id(1)));
  EXPECT_EQ(pool.num_evictable(), 2);
  scheduler.Add(Id(3), Range(20, 9), 0);
  EXPECT_THAT(Step(scheduler, step), ElementsAre(IsView(3, 8, 1, true)));
}

TEST(PrefixCacheSchedulerTest, APreemptedSequenceResumesFromItsOwnCachedBlocks) {
  // 4 blocks of 4 tokens.
  Scheduler scheduler(CachingOptions(4));
  SchedulerStep step;
  scheduler.Add(Id(1), Range(20, 8), 0);   // 2 blocks
  scheduler.Add(Id(2), Range(100, 5), 0);  // 2 blocks: one full (cached), one token
  EXPECT_THAT(Step(scheduler, step), ElementsAre(IsView(1, 0, 8, true), IsView(2, 0, 5, true)));
  const BlockId twos_full_block = scheduler.Find(Id(2))->block_table[0];
  EXPECT_TRUE(scheduler.kv().pool().cached(twos_full_block));
  // 1's decode needs a third block: 2 is preempted; its cached block stays
  // evictable and 1 takes the freed partial block instead.
  EXPECT_THAT(Step(scheduler, step), ElementsAre(IsView(1, 8, 1, true)));
  EXPECT_THAT(step.preempted, ElementsAre(Id(2)));
  EXPECT_TRUE(scheduler.kv().pool().evictable(twos_full_block));
  ASSERT_TRUE(scheduler.Remove(Id(1)));
  // 2 resumes: its first block is found again; prompt token 4 and its
  // sampled token 5 are recomputed, and it samples its next token.
  EXPECT_THAT(Step(scheduler, step), ElementsAre(IsView(2, 4, 2, true)));
  const Sequence* two = scheduler.Find(Id(2));
  EXPECT_EQ(two->block_table[0], twos_full_block);
  EXPECT_EQ(two->num_tokens(), 7);
  EXPECT_EQ(two->num_preemptions, 1);
  // Prompt tokens found cached count at the first admission only.
  EXPECT_EQ(two->num_cached_prompt_tokens, 0);
}

TEST(PrefixCacheSchedulerTest, EvictionUnderASmallPoolNeverTouchesHeldBlocks) {
  // 6 blocks. A long-running request holds two cached blocks; finished ones
  // leave evictable blocks; newcomers evict those only.
  Scheduler scheduler(CachingOptions(6));
  SchedulerStep step;
  scheduler.Add(Id(1), Range(20, 8), 0);
  Step(scheduler, step);
  const std::vector<BlockId> held = {scheduler.Find(Id(1))->block_table[0],
                                     scheduler.Find(Id(1))->block_table[1]};
  const std::vector<BlockHash> held_hashes = scheduler.Find(Id(1))->block_hashes;
  scheduler.Add(Id(2), Range(200, 8), 0);
  Step(scheduler, step);
  ASSERT_TRUE(scheduler.Remove(Id(2)));  // 2 cached blocks left evictable
  EXPECT_EQ(scheduler.kv().pool().num_evictable(), 2);
  // 1 holds 3 blocks; 3 are available, 2 of them cached. A 12-token stranger
  // needs all 3 and must evict 2's blocks, not 1's.
  scheduler.Add(Id(3), Range(300, 12), 0);
  Step(scheduler, step);
  ASSERT_NE(scheduler.Find(Id(3)), nullptr);
  EXPECT_TRUE(scheduler.Find(Id(3))->running);
  EXPECT_EQ(scheduler.kv().num_free_blocks(), 0);
  for (size_t i = 0; i < held.size(); ++i) {
    EXPECT_EQ(scheduler.Find(Id(1))->block_table[i], held[i]);
    EXPECT_TRUE(scheduler.kv().pool().cached(held[i]));
    EXPECT_EQ(scheduler.kv().CachedHash(held[i]), held_hashes[i]);
  }
  // 2's prefix is gone; 1's is still served.
  ASSERT_TRUE(scheduler.Remove(Id(3)));
  scheduler.Add(Id(4), Range(200, 5), 0);
  scheduler.Add(Id(5), Range(20, 9), 0);
  EXPECT_THAT(Step(scheduler, step),
              ElementsAre(IsView(1, 10, 1, true), IsView(4, 0, 5, true), IsView(5, 8, 1, true)));
}

TEST(PrefixCacheSchedulerTest, StatisticsAreExactInAScriptedRun) {
  Scheduler scheduler(CachingOptions(16));
  SchedulerStep step;
  auto stats = [&] { return scheduler.kv().prefix_cache_stats(); };
  scheduler.Add(Id(1), Range(20, 10), 0);
  Step(scheduler, step);  // 10 looked up, none found; 2 blocks indexed
  EXPECT_EQ(stats().query_tokens, 10);
  EXPECT_EQ(stats().hit_tokens, 0);
  EXPECT_EQ(stats().cached_blocks, 2);
  EXPECT_EQ(stats().evictable_blocks, 0);
  ASSERT_TRUE(scheduler.Remove(Id(1)));
  EXPECT_EQ(stats().cached_blocks, 2);
  EXPECT_EQ(stats().evictable_blocks, 2);

  scheduler.Add(Id(2), Range(20, 10), 0);                                  // 8 of 10 found
  scheduler.Add(Id(3), Range(20, 5), 0);                                   // 4 of 5 found
  scheduler.Add(Id(4), Range(20, 10), 0, {.enabled = false});              // not looked up
  scheduler.Add(Id(5), Range(20, 10), 0, {.enabled = true, .salt = "x"});  // 0 of 10
  Step(scheduler, step);
  EXPECT_EQ(stats().query_tokens, 10 + 10 + 5 + 10);
  EXPECT_EQ(stats().hit_tokens, 8 + 4);
  EXPECT_EQ(scheduler.Find(Id(2))->num_cached_prompt_tokens, 8);
  EXPECT_EQ(scheduler.Find(Id(3))->num_cached_prompt_tokens, 4);
  EXPECT_EQ(scheduler.Find(Id(4))->num_cached_prompt_tokens, 0);
  EXPECT_EQ(scheduler.Find(Id(5))->num_cached_prompt_tokens, 0);
  // Indexed: 1's two blocks (now held by 2, and the first also by 3) and
  // 5's two (salt x); 4 indexes nothing.
  EXPECT_EQ(stats().cached_blocks, 4);
  EXPECT_EQ(stats().evictable_blocks, 0);
  EXPECT_EQ(scheduler.kv().pool().ref_count(scheduler.Find(Id(2))->block_table[0]), 2);
  // Decodes are not lookups: the counters stay put.
  Step(scheduler, step);
  EXPECT_EQ(stats().query_tokens, 35);
  EXPECT_EQ(stats().hit_tokens, 12);
  // Everything ends: every indexed block is evictable, nothing is lost.
  for (uint64_t id = 2; id <= 5; ++id) ASSERT_TRUE(scheduler.Remove(Id(id)));
  EXPECT_EQ(stats().evictable_blocks, stats().cached_blocks);
  EXPECT_EQ(scheduler.kv().num_free_blocks(), 16);
}

// A request that could not be admitted at its first try (the pool was
// short) reports the prefix it actually reused when it was admitted, not the
// one it saw at the failed try.
TEST(PrefixCacheSchedulerTest, CachedPromptTokensAreThoseReusedAtAdmission) {
  Scheduler scheduler(CachingOptions(4));
  SchedulerStep step;
  scheduler.Add(Id(1), Range(20, 8), 0);   // blocks 0, 1
  scheduler.Add(Id(2), Range(100, 5), 0);  // blocks 2, 3
  Step(scheduler, step);
  ASSERT_TRUE(scheduler.Remove(Id(1)));  // 1's two blocks are evictable
  // 3 = 1's prompt + 8 more: 2 blocks cached, 4 needed, 2 available.
  scheduler.Add(Id(3), Concat(Range(20, 8), Range(40, 8)), 0);
  Step(scheduler, step);
  EXPECT_THAT(scheduler.WaitingIds(), ElementsAre(Id(3)));
  // 2 decodes until it needs a third block: it evicts one of 1's.
  while (scheduler.Find(Id(2))->block_table.size() < 3) Step(scheduler, step);
  EXPECT_EQ(scheduler.kv().prefix_cache_stats().cached_blocks, 1 + 2);  // 1's first, 2's two
  ASSERT_TRUE(scheduler.Remove(Id(2)));
  const std::vector<StepView> views = Step(scheduler, step);
  ASSERT_THAT(views, ElementsAre(IsView(3, 4, 12, true)));  // only 4 tokens were reused
  EXPECT_EQ(scheduler.Find(Id(3))->num_cached_prompt_tokens, 4);
  EXPECT_EQ(scheduler.kv().prefix_cache_stats().hit_tokens, 4);
}

}  // namespace
}  // namespace muserve
