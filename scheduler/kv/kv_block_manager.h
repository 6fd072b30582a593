// KvBlockManager: gives sequences the KV blocks their tokens need, and, with
// prefix caching, lets them share full blocks of identical prefixes. A
// sequence's block table maps logical block i (tokens [i*block_size,
// (i+1)*block_size)) to a physical block id of the pool.
//
// Prefix caching: a full block whose K/V are computed is indexed by its
// chained hash (block_hash.h). A later sequence with the same salt and the
// same tokens up to and including that block takes a reference to it instead
// of computing it again. A block nobody holds stays cached (evictable) until
// an allocation needs it, least recently released first; a block in use is
// never evicted.
// Owned by the engine-loop thread; not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scheduler/kv/block_hash.h"
#include "scheduler/kv/block_pool.h"

namespace muserve {

struct PrefixCacheStats {
  int64_t query_tokens = 0;      // prompt tokens looked up (since start)
  int64_t hit_tokens = 0;        // of those, found cached
  int32_t cached_blocks = 0;     // blocks indexed (in use or evictable)
  int32_t evictable_blocks = 0;  // cached blocks nobody holds
};

class KvBlockManager {
 public:
  KvBlockManager(int32_t num_blocks, int32_t block_size, bool enable_prefix_caching = false);

  // Blocks a memory budget affords: floor(kv_bytes / (bytes_per_token *
  // block_size)). InvalidArgument naming `field` when it affords none.
  static absl::StatusOr<int32_t> NumBlocksForBudget(int64_t kv_bytes, int64_t bytes_per_token,
                                                    int32_t block_size, const char* field);

  int32_t block_size() const { return block_size_; }
  int32_t num_blocks() const { return pool_.num_blocks(); }
  // Blocks an allocation can take (free, or cached and evictable).
  int32_t num_free_blocks() const { return pool_.num_available(); }
  // Tokens the whole pool holds.
  int64_t capacity_tokens() const { return int64_t{num_blocks()} * block_size_; }
  bool prefix_caching() const { return prefix_caching_; }

  // Blocks needed to hold `num_tokens` tokens.
  int32_t BlocksFor(int64_t num_tokens) const;

  // Grows `table` so it holds `num_tokens` tokens. All or nothing: when the
  // pool lacks available blocks, returns false and leaves `table` unchanged.
  bool Grow(std::vector<BlockId>& table, int64_t num_tokens);
  // Releases every block of `table` and clears it; cached blocks stay
  // evictable.
  void Free(std::vector<BlockId>& table);

  // The longest run of cached blocks matching the start of `tokens` in the
  // chain seeded by `seed`, at most `max_blocks`: takes a reference on each,
  // appends them to `table` (which must be empty) and their hashes to
  // `hashes`. Returns how many. Without prefix caching, finds nothing.
  int32_t AcquireCachedPrefix(std::span<const TokenId> tokens, BlockHash seed, int32_t max_blocks,
                              std::vector<BlockId>& table, std::vector<BlockHash>& hashes);
  // Counts a new request's lookup for the statistics: `query_tokens` prompt
  // tokens, `hit_tokens` of them found cached.
  void RecordQuery(int64_t query_tokens, int64_t hit_tokens);
  // Indexes the full blocks of `table` among the first `num_computed` tokens
  // that `hashes` does not cover yet, extending `hashes`. A block whose
  // contents another block already holds stays unindexed (it is freed, not
  // cached, when released). At a hash collision with different contents it
  // stops: this and every later block of the sequence stay unindexed.
  // Without prefix caching, does nothing.
  void CacheFullBlocks(std::span<const TokenId> tokens, int32_t num_computed, BlockHash seed,
                       const std::vector<BlockId>& table, std::vector<BlockHash>& hashes);

  PrefixCacheStats prefix_cache_stats() const;
  // The hash a cached block is indexed under.
  BlockHash CachedHash(BlockId id) const { return hash_[id]; }
  const BlockPool& pool() const { return pool_; }

  // Internal error when the index and the blocks disagree: an indexed block
  // not marked cached (or the reverse), or a stored hash that does not match
  // the block's parent and tokens.
  absl::Status CheckIndex() const;

 private:
  // Where an indexed block's chain and tokens are kept, for verification.
  std::span<const TokenId> BlockTokens(BlockId id) const;
  void Forget(BlockId id);  // the pool evicted it

  int32_t block_size_;
  bool prefix_caching_;
  BlockPool pool_;
  absl::flat_hash_map<BlockHash, BlockId> index_;
  // Per block, valid while the block is cached: its hash, its parent's hash
  // and its tokens ([num_blocks * block_size]).
  std::vector<BlockHash> hash_, parent_;
  std::vector<TokenId> tokens_;
  int64_t query_tokens_ = 0;
  int64_t hit_tokens_ = 0;
};

}  // namespace muserve
