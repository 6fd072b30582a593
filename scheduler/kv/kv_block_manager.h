// KvBlockManager: gives sequences the KV blocks their tokens need. A
// sequence's block table maps logical block i (tokens [i*block_size,
// (i+1)*block_size)) to a physical block id of the pool.
// Owned by the engine-loop thread; not thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/kv/block_pool.h"

namespace muserve {

class KvBlockManager {
 public:
  KvBlockManager(int32_t num_blocks, int32_t block_size);

  // Blocks a memory budget affords: floor(kv_bytes / (bytes_per_token *
  // block_size)). InvalidArgument naming `field` when it affords none.
  static absl::StatusOr<int32_t> NumBlocksForBudget(int64_t kv_bytes, int64_t bytes_per_token,
                                                    int32_t block_size, const char* field);

  int32_t block_size() const { return block_size_; }
  int32_t num_blocks() const { return pool_.num_blocks(); }
  int32_t num_free_blocks() const { return pool_.num_free(); }
  // Tokens the whole pool holds.
  int64_t capacity_tokens() const { return int64_t{num_blocks()} * block_size_; }

  // Blocks needed to hold `num_tokens` tokens.
  int32_t BlocksFor(int64_t num_tokens) const;

  // Grows `table` so it holds `num_tokens` tokens. All or nothing: when the
  // pool lacks free blocks, returns false and leaves `table` unchanged.
  bool Grow(std::vector<BlockId>& table, int64_t num_tokens);
  // Releases every block of `table` and clears it.
  void Free(std::vector<BlockId>& table);

  const BlockPool& pool() const { return pool_; }

 private:
  int32_t block_size_;
  BlockPool pool_;
};

}  // namespace muserve
