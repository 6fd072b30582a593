#include "scheduler/kv/kv_block_manager.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "engine/api/check.h"

namespace muserve {

KvBlockManager::KvBlockManager(int32_t num_blocks, int32_t block_size)
    : block_size_(block_size), pool_(num_blocks) {
  MUSERVE_CHECK(block_size >= 1);
}

absl::StatusOr<int32_t> KvBlockManager::NumBlocksForBudget(int64_t kv_bytes,
                                                           int64_t bytes_per_token,
                                                           int32_t block_size, const char* field) {
  if (bytes_per_token <= 0 || block_size <= 0) {
    return absl::InvalidArgumentError("KV bytes per token and block size must be positive");
  }
  int64_t bytes_per_block = 0;
  if (__builtin_mul_overflow(bytes_per_token, int64_t{block_size}, &bytes_per_block)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": a KV block's size overflows"));
  }
  const int64_t blocks = kv_bytes > 0 ? kv_bytes / bytes_per_block : 0;
  if (blocks < 1) {
    return absl::InvalidArgumentError(absl::StrCat(field, " = ", kv_bytes,
                                                   " bytes holds no KV block of ", bytes_per_block,
                                                   " bytes (", block_size, " tokens)"));
  }
  return static_cast<int32_t>(std::min<int64_t>(blocks, std::numeric_limits<int32_t>::max()));
}

int32_t KvBlockManager::BlocksFor(int64_t num_tokens) const {
  return static_cast<int32_t>((num_tokens + block_size_ - 1) / block_size_);
}

bool KvBlockManager::Grow(std::vector<BlockId>& table, int64_t num_tokens) {
  const int32_t needed = BlocksFor(num_tokens) - static_cast<int32_t>(table.size());
  if (needed <= 0) return true;
  if (needed > pool_.num_free()) return false;
  for (int32_t i = 0; i < needed; ++i) {
    const std::optional<BlockId> id = pool_.Allocate();
    MUSERVE_CHECK(id.has_value());  // guaranteed by the num_free() check
    table.push_back(*id);
  }
  return true;
}

void KvBlockManager::Free(std::vector<BlockId>& table) {
  // Released in reverse so a sequence's blocks are reused in the same order
  // by the next allocation (the free list is a stack).
  for (auto it = table.rbegin(); it != table.rend(); ++it) pool_.Release(*it);
  table.clear();
}

}  // namespace muserve
