// Prefix caching under random traffic: conversations that extend earlier
// ones (heavy prefix sharing), repeats, fresh prompts over a tiny vocabulary
// (many equal blocks), salts and opted-out requests, aborts of running and
// waiting requests, and a pool small enough that eviction and preemption
// happen all the time. After every step and operation the scheduler's own
// CheckConsistency must pass, and so must independent checks from outside:
//  - every block's reference count equals the number of tables holding it;
//    no held block is evictable; available = pool - held; the statistics
//    count exactly the cached and evictable blocks;
//  - every sequence's block hashes are the chain of its own tokens and salt,
//    and a cached block it holds is indexed under that hash;
//  - semantics, through a shadow KV cache that records for every slot the
//    exact token prefix whose K/V the forward pass wrote there: every
//    sequence's computed positions hold K/V of its own prefix, a step starts
//    computing at the sequence's num_computed (running) or after its reused
//    blocks (admitted), never writes a cached block, and every cached block
//    holds the K/V its index entry stands for. So reuse never serves a block
//    computed for other tokens.
#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"
#include "scheduler/kv/block_hash.h"
#include "scheduler/scheduler.h"

namespace muserve {
namespace {

constexpr int32_t kBlockSize = 4;
constexpr int32_t kNumBlocks = 40;  // 160 tokens
constexpr int32_t kMaxPrompt = 110;
constexpr int32_t kMaxOutput = 24;  // prompt + output <= 134 tokens: fits the pool alone
constexpr int kOperations = 12000;

// A fingerprint of the token prefix ending at each position (independent of
// the scheduler's block hashes): what the K/V at that position depend on.
std::vector<uint64_t> PrefixFingerprints(const std::vector<TokenId>& tokens) {
  std::vector<uint64_t> out(tokens.size());
  uint64_t h = 0x243f6a8885a308d3ull;
  for (size_t p = 0; p < tokens.size(); ++p) {
    h = (h ^ static_cast<uint32_t>(tokens[p])) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    out[p] = h | 1;  // 0 marks a slot never written
  }
  return out;
}

// The chain of block hashes of a sequence's first `n` full blocks.
std::vector<BlockHash> ChainHashes(const std::vector<TokenId>& tokens, BlockHash seed, int32_t n) {
  std::vector<BlockHash> out;
  BlockHash parent = seed;
  for (int32_t i = 0; i < n; ++i) {
    parent = HashBlock(parent, std::span<const TokenId>(tokens).subspan(
                                   static_cast<size_t>(i) * kBlockSize, kBlockSize));
    out.push_back(parent);
  }
  return out;
}

int64_t Slot(const std::vector<BlockId>& table, int32_t pos) {
  return int64_t{table[pos / kBlockSize]} * kBlockSize + pos % kBlockSize;
}

class Harness {
 public:
  explicit Harness(uint32_t seed)
      : scheduler_({.max_num_seqs = 6,
                    .max_num_batched_tokens = 32,
                    .num_blocks = kNumBlocks,
                    .block_size = kBlockSize,
                    .enable_prefix_caching = true}),
        rng_(seed),
        slot_prefix_(static_cast<size_t>(kNumBlocks) * kBlockSize, 0) {}

  void Run() {
    for (int op = 0; op < kOperations; ++op) {
      const int kind = Uniform(0, 99);
      if (kind < 30) {
        if (scheduler_.num_waiting() < 24) Submit();
      } else if (kind < 35) {
        Abort(scheduler_.RunningIds());
      } else if (kind < 40) {
        Abort(scheduler_.WaitingIds());
      } else if (kind < 42) {
        ASSERT_FALSE(scheduler_.Remove(RequestId{next_id_ + 1000}));
      } else if (scheduler_.has_work()) {
        StepOnce();
      }
      if (::testing::Test::HasFatalFailure()) {
        ADD_FAILURE() << "at operation " << op;
        return;
      }
      CheckAll("operation " + std::to_string(op));
      if (::testing::Test::HasFatalFailure()) return;
    }
    while (scheduler_.has_work()) {
      StepOnce();
      if (::testing::Test::HasFatalFailure()) return;
      CheckAll("drain");
      if (::testing::Test::HasFatalFailure()) return;
    }
    ASSERT_TRUE(live_.empty());
    EXPECT_EQ(scheduler_.kv().num_free_blocks(), kNumBlocks);
    const PrefixCacheStats stats = scheduler_.kv().prefix_cache_stats();
    EXPECT_EQ(stats.evictable_blocks, stats.cached_blocks);
    // The traffic did what it is for.
    EXPECT_GT(num_steps_, 4000);
    EXPECT_GT(scheduler_.num_preemptions(), 50);
    EXPECT_GT(num_evictions_, 500);
    EXPECT_GT(num_reuses_, 500);  // admissions that started after a cached prefix
    EXPECT_GT(stats.hit_tokens, stats.query_tokens / 25);
  }

 private:
  struct Live {
    int32_t max_output;
  };

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  std::vector<TokenId> RandomTokens(int32_t n) {
    const TokenId vocab = Uniform(0, 1) == 0 ? 3 : 999;  // tiny: many equal blocks
    std::vector<TokenId> out(n);
    for (auto& t : out) t = static_cast<TokenId>(Uniform(0, vocab));
    return out;
  }

  void Submit() {
    std::vector<TokenId> prompt;
    const int kind = Uniform(0, 9);
    if (kind <= 1 || histories_.empty()) {
      prompt = RandomTokens(Uniform(1, 40));
    } else if (kind <= 5) {  // the conversation's next turn
      prompt = histories_[Uniform(0, static_cast<int>(histories_.size()) - 1)];
      const std::vector<TokenId> turn = RandomTokens(Uniform(1, 12));
      prompt.insert(prompt.end(), turn.begin(), turn.end());
    } else if (kind <= 7) {  // a repeat
      prompt = prompts_[Uniform(0, static_cast<int>(prompts_.size()) - 1)];
    } else {  // a shared system prompt with another question
      prompt = histories_[Uniform(0, static_cast<int>(histories_.size()) - 1)];
      prompt.resize(Uniform(1, static_cast<int>(prompt.size())));
      const std::vector<TokenId> question = RandomTokens(Uniform(1, 9));
      prompt.insert(prompt.end(), question.begin(), question.end());
    }
    if (static_cast<int32_t>(prompt.size()) > kMaxPrompt) prompt.resize(kMaxPrompt);
    PrefixCacheParams params;
    const int mode = Uniform(0, 19);
    if (mode == 0) params.enabled = false;
    if (mode == 1 || mode == 2) params.salt = "tenant";
    const uint64_t id = next_id_++;
    live_[id] = {Uniform(1, kMaxOutput)};
    prompts_.push_back(prompt);
    if (prompts_.size() > 64) prompts_.erase(prompts_.begin());
    scheduler_.Add(RequestId{id}, std::move(prompt), Uniform(0, 2), params);
  }

  void Abort(const std::vector<RequestId>& ids) {
    if (ids.empty()) return;
    const RequestId id = ids[Uniform(0, static_cast<int>(ids.size()) - 1)];
    ASSERT_TRUE(scheduler_.Remove(id));
    ASSERT_EQ(scheduler_.Find(id), nullptr);
    live_.erase(static_cast<uint64_t>(id));
  }

  void Finish(RequestId id) {
    const Sequence* seq = scheduler_.Find(id);
    ASSERT_NE(seq, nullptr);
    histories_.push_back(seq->tokens);
    if (histories_.size() > 48) histories_.erase(histories_.begin());
    ASSERT_TRUE(scheduler_.Remove(id));
    live_.erase(static_cast<uint64_t>(id));
  }

  void StepOnce() {
    const BlockPool& pool = scheduler_.kv().pool();
    // Before planning: what running sequences have computed, the cached
    // blocks they hold (which nothing can evict during this step), and the
    // evictable blocks (to count evictions).
    std::map<RequestId, int32_t> computed_before;
    absl::flat_hash_set<BlockHash> held_cached;
    for (const RequestId id : scheduler_.RunningIds()) {
      const Sequence* seq = scheduler_.Find(id);
      computed_before[id] = seq->num_computed;
      for (const BlockId b : seq->block_table) {
        if (pool.cached(b)) held_cached.insert(scheduler_.kv().CachedHash(b));
      }
    }
    std::vector<BlockId> evictable_before;
    for (BlockId b = 0; b < kNumBlocks; ++b) {
      if (pool.evictable(b)) evictable_before.push_back(b);
    }

    scheduler_.Schedule(step_);
    ASSERT_FALSE(step_.empty()) << "no progress with work queued";
    ++num_steps_;
    {
      const absl::Status status = scheduler_.CheckConsistency();
      ASSERT_TRUE(status.ok()) << "after Schedule: " << status;
    }
    for (const BlockId b : evictable_before) num_evictions_ += pool.cached(b) ? 0 : 1;
    for (const RequestId id : step_.preempted) {
      const Sequence* seq = scheduler_.Find(id);
      ASSERT_NE(seq, nullptr);
      ASSERT_TRUE(seq->block_table.empty());
      ASSERT_EQ(seq->num_computed, 0);
    }

    const StepBatch& batch = step_.batch;
    std::set<int64_t> written;
    std::vector<TokenId> sampled;
    for (size_t i = 0; i < batch.sequences.size(); ++i) {
      const StepSequence& s = batch.sequences[i];
      const RequestId id = step_.ids[i];
      const Sequence* seq = scheduler_.Find(id);
      ASSERT_NE(seq, nullptr);
      ASSERT_TRUE(seq->running);
      const int32_t start = s.context_len - s.query_len;
      ASSERT_GE(s.query_len, 1);
      ASSERT_EQ(s.context_len, seq->num_computed);
      if (auto it = computed_before.find(id); it != computed_before.end()) {
        // A running sequence goes on exactly where it stopped.
        ASSERT_EQ(start, it->second) << "request " << static_cast<uint64_t>(id);
      } else {
        CheckAdmission(*seq, start, held_cached);
        if (::testing::Test::HasFatalFailure()) return;
      }
      // What the step does not compute must already be there: the K/V of
      // this very prefix (its own earlier steps, or a reused block).
      const std::vector<uint64_t> fp = PrefixFingerprints(seq->tokens);
      for (int32_t pos = 0; pos < start; ++pos) {
        ASSERT_EQ(slot_prefix_[Slot(seq->block_table, pos)], fp[pos])
            << "request " << static_cast<uint64_t>(id) << " position " << pos
            << " reuses K/V computed for other tokens";
      }
      // The forward pass writes the new tokens: never into a cached block,
      // never one slot twice.
      for (int32_t j = 0; j < s.query_len; ++j) {
        const int32_t pos = start + j;
        const int64_t slot = batch.slot_mapping[s.query_start + j];
        ASSERT_EQ(slot, Slot(seq->block_table, pos));
        ASSERT_EQ(batch.tokens[s.query_start + j], seq->tokens[pos]);
        ASSERT_FALSE(pool.cached(static_cast<BlockId>(slot / kBlockSize)))
            << "the step writes into cached block " << slot / kBlockSize;
        ASSERT_TRUE(written.insert(slot).second) << "slot " << slot << " written twice";
        slot_prefix_[slot] = fp[pos];
      }
      if (s.sample) {
        sampled.push_back(
            static_cast<TokenId>(Uniform(0, 1) == 0 ? Uniform(0, 3) : Uniform(0, 999)));
      }
    }
    scheduler_.ApplyOutput(step_, sampled);
    {
      const absl::Status status = scheduler_.CheckConsistency();
      ASSERT_TRUE(status.ok()) << "after ApplyOutput: " << status;
    }
    // Learn what every block a sequence hashed stands for, while the
    // sequence still holds it.
    CheckAll("step " + std::to_string(num_steps_));
    if (::testing::Test::HasFatalFailure()) return;
    for (const RequestId id : step_.ids) {
      const Sequence* seq = scheduler_.Find(id);
      if (seq->num_output_tokens() >= live_[static_cast<uint64_t>(id)].max_output) Finish(id);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }

  // An admitted sequence starts after whole reused blocks, never at its last
  // token, and reuses at least every leading block of its chain that a
  // running sequence held throughout the step (admission happens only in a
  // step without preemption, so those were all in the cache).
  void CheckAdmission(const Sequence& seq, int32_t start,
                      const absl::flat_hash_set<BlockHash>& held_cached) {
    const uint64_t id = static_cast<uint64_t>(seq.id);
    ASSERT_TRUE(step_.preempted.empty()) << "admission in a step that preempted";
    ASSERT_EQ(start % kBlockSize, 0) << "request " << id;
    ASSERT_LT(start, seq.num_tokens()) << "request " << id << " computes nothing to sample from";
    const int32_t reused = start / kBlockSize;
    if (!seq.use_prefix_cache) {
      ASSERT_EQ(start, 0) << "opted-out request " << id << " reused blocks";
      return;
    }
    const int32_t max_blocks = (seq.num_tokens() - 1) / kBlockSize;
    const std::vector<BlockHash> chain = ChainHashes(seq.tokens, seq.cache_seed, max_blocks);
    int32_t surely_cached = 0;
    while (surely_cached < max_blocks && held_cached.contains(chain[surely_cached])) {
      ++surely_cached;
    }
    ASSERT_GE(reused, surely_cached) << "request " << id << " missed cached blocks";
    for (int32_t i = 0; i < reused; ++i) {
      const BlockId b = seq.block_table[i];
      ASSERT_TRUE(scheduler_.kv().pool().cached(b)) << "request " << id << " block " << i;
      ASSERT_EQ(scheduler_.kv().CachedHash(b), chain[i]) << "request " << id << " block " << i;
    }
    num_reuses_ += reused > 0 ? 1 : 0;
    // What the request reports as cached is what it reused when admitted
    // the first time (a resumption after preemption does not count again).
    if (seq.num_preemptions == 0) {
      EXPECT_EQ(seq.num_cached_prompt_tokens, std::min(start, seq.num_prompt_tokens))
          << "request " << id;
    }
  }

  // The independent checks of the file comment, after CheckConsistency.
  void CheckAll(const std::string& when) {
    SCOPED_TRACE(when);
    const absl::Status status = scheduler_.CheckConsistency();
    ASSERT_TRUE(status.ok()) << status;
    const KvBlockManager& kv = scheduler_.kv();
    const BlockPool& pool = kv.pool();
    ASSERT_EQ(scheduler_.num_running() + scheduler_.num_waiting(),
              static_cast<int32_t>(live_.size()));
    std::vector<int32_t> holders(kNumBlocks, 0);
    for (const auto& [n, live] : live_) {
      const Sequence* seq = scheduler_.Find(RequestId{n});
      ASSERT_NE(seq, nullptr) << "request " << n;
      if (!seq->running) {
        ASSERT_TRUE(seq->block_table.empty()) << "waiting request " << n << " holds blocks";
        ASSERT_EQ(seq->num_computed, 0);
        continue;
      }
      ASSERT_EQ(static_cast<int32_t>(seq->block_table.size()), kv.BlocksFor(seq->num_computed));
      for (const BlockId b : seq->block_table) {
        ASSERT_TRUE(b >= 0 && b < kNumBlocks);
        ++holders[b];
        ASSERT_FALSE(pool.evictable(b)) << "request " << n << " holds evictable block " << b;
      }
      const int32_t full = seq->num_computed / kBlockSize;
      ASSERT_LE(static_cast<int32_t>(seq->block_hashes.size()), full) << "request " << n;
      if (!seq->use_prefix_cache) {
        ASSERT_TRUE(seq->block_hashes.empty());
        for (const BlockId b : seq->block_table) ASSERT_FALSE(pool.cached(b));
      }
      const std::vector<BlockHash> chain =
          ChainHashes(seq->tokens, seq->cache_seed, static_cast<int32_t>(seq->block_hashes.size()));
      const std::vector<uint64_t> fp = PrefixFingerprints(seq->tokens);
      for (size_t i = 0; i < seq->block_hashes.size(); ++i) {
        ASSERT_EQ(seq->block_hashes[i], chain[i]) << "request " << n << " block " << i;
        const std::vector<uint64_t> expected(fp.begin() + i * kBlockSize,
                                             fp.begin() + (i + 1) * kBlockSize);
        auto [it, inserted] = learned_.try_emplace(chain[i], expected);
        ASSERT_TRUE(inserted || it->second == expected) << "two prefixes under one hash";
      }
      for (size_t i = 0; i < seq->block_table.size(); ++i) {
        const BlockId b = seq->block_table[i];
        if (!pool.cached(b)) continue;
        ASSERT_LT(i, seq->block_hashes.size())
            << "request " << n << " holds cached block " << b << " beyond its hashed prefix";
        ASSERT_EQ(kv.CachedHash(b), seq->block_hashes[i]) << "request " << n << " block " << i;
      }
      // Every computed position holds the K/V of this sequence's prefix.
      for (int32_t pos = 0; pos < seq->num_computed; ++pos) {
        ASSERT_EQ(slot_prefix_[Slot(seq->block_table, pos)], fp[pos])
            << "request " << n << " position " << pos << " holds K/V of other tokens";
      }
    }
    int32_t held = 0, cached = 0, evictable = 0;
    for (BlockId b = 0; b < kNumBlocks; ++b) {
      ASSERT_EQ(pool.ref_count(b), holders[b]) << "block " << b;
      held += holders[b] > 0 ? 1 : 0;
      cached += pool.cached(b) ? 1 : 0;
      evictable += pool.evictable(b) ? 1 : 0;
      if (pool.evictable(b)) {
        ASSERT_TRUE(pool.cached(b)) << "block " << b;
      }
      if (!pool.cached(b)) continue;
      // A cached block, held or not, holds what its index entry stands for.
      auto it = learned_.find(kv.CachedHash(b));
      ASSERT_NE(it, learned_.end()) << "cached block " << b << " was never seen hashed";
      for (int32_t j = 0; j < kBlockSize; ++j) {
        ASSERT_EQ(slot_prefix_[int64_t{b} * kBlockSize + j], it->second[j])
            << "cached block " << b << " slot " << j << " differs from its index entry";
      }
    }
    ASSERT_EQ(kv.num_free_blocks(), kNumBlocks - held);
    const PrefixCacheStats stats = kv.prefix_cache_stats();
    ASSERT_EQ(stats.cached_blocks, cached);
    ASSERT_EQ(stats.evictable_blocks, evictable);
    ASSERT_EQ(pool.num_evictable(), evictable);
    ASSERT_LE(stats.hit_tokens, stats.query_tokens);
  }

  Scheduler scheduler_;
  std::mt19937 rng_;
  SchedulerStep step_;
  // Per physical slot: the fingerprint of the prefix whose K/V were last
  // written there (0: never written).
  std::vector<uint64_t> slot_prefix_;
  // Per block hash: the slot fingerprints of the block it stands for.
  absl::flat_hash_map<BlockHash, std::vector<uint64_t>> learned_;
  std::map<uint64_t, Live> live_;
  std::vector<std::vector<TokenId>> histories_;  // finished prompt + output
  std::vector<std::vector<TokenId>> prompts_;
  uint64_t next_id_ = 1;
  int64_t num_steps_ = 0;
  int64_t num_evictions_ = 0;
  int64_t num_reuses_ = 0;
};

class PrefixCacheRandomTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(PrefixCacheRandomTest, ReuseNeverServesOtherContentsAndBookkeepingStaysExact) {
  Harness harness(GetParam());
  harness.Run();
}

INSTANTIATE_TEST_SUITE_P(Seeds, PrefixCacheRandomTest,
                         ::testing::Values(1u, 7u, 2024u, 90210u, 31337u, 4242u));

}  // namespace
}  // namespace muserve
