#include "scheduler/kv/block_pool.h"

#include "absl/strings/str_cat.h"
#include "engine/api/check.h"

namespace muserve {

BlockPool::BlockPool(int32_t num_blocks) : ref_counts_(num_blocks, 0) {
  MUSERVE_CHECK(num_blocks >= 0);
  free_list_.reserve(num_blocks);
  for (BlockId id = num_blocks - 1; id >= 0; --id) free_list_.push_back(id);
}

std::optional<BlockId> BlockPool::Allocate() {
  if (free_list_.empty()) return std::nullopt;
  const BlockId id = free_list_.back();
  free_list_.pop_back();
  ref_counts_[id] = 1;
  return id;
}

void BlockPool::AddRef(BlockId id) {
  MUSERVE_CHECK(id >= 0 && id < num_blocks() && ref_counts_[id] > 0);
  ++ref_counts_[id];
}

void BlockPool::Release(BlockId id) {
  MUSERVE_CHECK(id >= 0 && id < num_blocks() && ref_counts_[id] > 0);
  if (--ref_counts_[id] == 0) free_list_.push_back(id);
}

int32_t BlockPool::ref_count(BlockId id) const {
  MUSERVE_CHECK(id >= 0 && id < num_blocks());
  return ref_counts_[id];
}

absl::Status BlockPool::CheckConsistency() const {
  std::vector<int32_t> on_free_list(ref_counts_.size(), 0);
  for (BlockId id : free_list_) {
    if (id < 0 || id >= num_blocks()) {
      return absl::InternalError(absl::StrCat("free list holds invalid block ", id));
    }
    if (++on_free_list[id] > 1) {
      return absl::InternalError(absl::StrCat("block ", id, " is on the free list twice"));
    }
  }
  for (BlockId id = 0; id < num_blocks(); ++id) {
    if (ref_counts_[id] < 0) {
      return absl::InternalError(absl::StrCat("block ", id, " has ref count ", ref_counts_[id]));
    }
    if ((ref_counts_[id] == 0) != (on_free_list[id] == 1)) {
      return absl::InternalError(
          absl::StrCat("block ", id, " has ref count ", ref_counts_[id],
                       on_free_list[id] ? " but is free" : " but is not free"));
    }
  }
  return absl::OkStatus();
}

}  // namespace muserve
