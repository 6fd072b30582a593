// BlockPool: the KV cache's fixed set of block ids with reference counts.
// The scheduler's bookkeeping only: the memory itself belongs to the backend.
//
// A block with no holder is available: either free (its contents are
// garbage) or evictable (its contents are cached for prefix reuse: it stays
// in place until an allocation needs it, least recently released first).
//
// Invariants (CheckConsistency verifies them):
//  - every block id in [0, num_blocks) is exactly one of: in use (ref_count
//    >= 1, on neither list), free (ref_count 0, not cached, on the free list
//    once), evictable (ref_count 0, cached, on the LRU list once);
//  - num_available() equals the two lists' lengths.
// Owned by the engine-loop thread; not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/status.h"

namespace muserve {

using BlockId = int32_t;

class BlockPool {
 public:
  // `on_evict` is told when an allocation reuses an evictable block, so that
  // its owner (the prefix cache's index) forgets the block's contents.
  explicit BlockPool(int32_t num_blocks, std::function<void(BlockId)> on_evict = {});

  int32_t num_blocks() const { return static_cast<int32_t>(ref_counts_.size()); }
  // Blocks an allocation can take: free plus evictable.
  int32_t num_available() const { return num_free() + num_evictable_; }
  int32_t num_free() const { return static_cast<int32_t>(free_list_.size()); }
  int32_t num_evictable() const { return num_evictable_; }

  // Takes a block with reference count 1: a free one if any, else the least
  // recently released evictable one (reported to on_evict first); nullopt
  // when none is available.
  std::optional<BlockId> Allocate();
  // Another holder of a block: in use, or evictable (which revives it).
  void AddRef(BlockId id);
  // Drops one reference; at zero the block becomes evictable if it is
  // cached, free otherwise.
  void Release(BlockId id);
  // The block's contents are indexed by the prefix cache: when released it
  // stays evictable instead of free. The block must be in use.
  void MarkCached(BlockId id);

  int32_t ref_count(BlockId id) const;
  bool cached(BlockId id) const;
  bool evictable(BlockId id) const;

  // Internal error describing the first broken invariant, or OK.
  absl::Status CheckConsistency() const;

 private:
  static constexpr BlockId kNone = -1;
  void LinkAtTail(BlockId id);  // most recently released
  void Unlink(BlockId id);

  std::function<void(BlockId)> on_evict_;
  std::vector<int32_t> ref_counts_;  // [num_blocks]
  std::vector<bool> cached_;         // [num_blocks]
  // Free ids; allocation takes from the back. Initially ordered so that the
  // lowest ids are handed out first (deterministic block tables in tests).
  std::vector<BlockId> free_list_;
  // Evictable blocks as a doubly linked list through prev_/next_, head =
  // least recently released (evicted first).
  std::vector<BlockId> prev_, next_;  // [num_blocks]; kNone when not linked
  std::vector<bool> linked_;          // [num_blocks]
  BlockId head_ = kNone, tail_ = kNone;
  int32_t num_evictable_ = 0;
};

}  // namespace muserve
