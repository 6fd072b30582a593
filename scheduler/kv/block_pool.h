// BlockPool: the KV cache's fixed set of block ids with reference counts.
// The scheduler's bookkeeping only: the memory itself belongs to the backend.
//
// Invariants (CheckConsistency verifies them):
//  - every block id in [0, num_blocks) is either free (ref_count 0, on the
//    free list exactly once) or in use (ref_count >= 1, not on the free list);
//  - num_free() equals the free list's length.
// Owned by the engine-loop thread; not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"

namespace muserve {

using BlockId = int32_t;

class BlockPool {
 public:
  explicit BlockPool(int32_t num_blocks);

  int32_t num_blocks() const { return static_cast<int32_t>(ref_counts_.size()); }
  int32_t num_free() const { return static_cast<int32_t>(free_list_.size()); }

  // Takes a free block with reference count 1; nullopt when none is free.
  std::optional<BlockId> Allocate();
  // Another holder of an in-use block (prefix sharing).
  void AddRef(BlockId id);
  // Drops one reference; at zero the block becomes free.
  void Release(BlockId id);

  int32_t ref_count(BlockId id) const;

  // Internal error describing the first broken invariant, or OK.
  absl::Status CheckConsistency() const;

 private:
  std::vector<int32_t> ref_counts_;  // [num_blocks]
  // Free ids; allocation takes from the back. Initially ordered so that the
  // lowest ids are handed out first (deterministic block tables in tests).
  std::vector<BlockId> free_list_;
};

}  // namespace muserve
