#include "scheduler/kv/block_pool.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/api/check.h"

namespace muserve {

BlockPool::BlockPool(int32_t num_blocks, std::function<void(BlockId)> on_evict)
    : on_evict_(std::move(on_evict)),
      ref_counts_(num_blocks, 0),
      cached_(num_blocks, false),
      prev_(num_blocks, kNone),
      next_(num_blocks, kNone),
      linked_(num_blocks, false) {
  MUSERVE_CHECK(num_blocks >= 0);
  free_list_.reserve(num_blocks);
  for (BlockId id = num_blocks - 1; id >= 0; --id) free_list_.push_back(id);
}

void BlockPool::LinkAtTail(BlockId id) {
  MUSERVE_CHECK(!linked_[id]);
  prev_[id] = tail_;
  next_[id] = kNone;
  if (tail_ != kNone) {
    next_[tail_] = id;
  } else {
    head_ = id;
  }
  tail_ = id;
  linked_[id] = true;
  ++num_evictable_;
}

void BlockPool::Unlink(BlockId id) {
  MUSERVE_CHECK(linked_[id]);
  if (prev_[id] != kNone) {
    next_[prev_[id]] = next_[id];
  } else {
    head_ = next_[id];
  }
  if (next_[id] != kNone) {
    prev_[next_[id]] = prev_[id];
  } else {
    tail_ = prev_[id];
  }
  prev_[id] = next_[id] = kNone;
  linked_[id] = false;
  --num_evictable_;
}

std::optional<BlockId> BlockPool::Allocate() {
  BlockId id = kNone;
  if (!free_list_.empty()) {
    id = free_list_.back();
    free_list_.pop_back();
  } else if (head_ != kNone) {
    id = head_;
    Unlink(id);
    cached_[id] = false;
    if (on_evict_) on_evict_(id);
  } else {
    return std::nullopt;
  }
  ref_counts_[id] = 1;
  return id;
}

void BlockPool::AddRef(BlockId id) {
  MUSERVE_CHECK(id >= 0 && id < num_blocks());
  if (ref_counts_[id] == 0) {
    MUSERVE_CHECK(linked_[id]);  // only an evictable block is revived
    Unlink(id);
  }
  ++ref_counts_[id];
}

void BlockPool::Release(BlockId id) {
  MUSERVE_CHECK(id >= 0 && id < num_blocks() && ref_counts_[id] > 0);
  if (--ref_counts_[id] > 0) return;
  if (cached_[id]) {
    LinkAtTail(id);
  } else {
    free_list_.push_back(id);
  }
}

void BlockPool::MarkCached(BlockId id) {
  MUSERVE_CHECK(id >= 0 && id < num_blocks() && ref_counts_[id] > 0);
  cached_[id] = true;
}

int32_t BlockPool::ref_count(BlockId id) const {
  MUSERVE_CHECK(id >= 0 && id < num_blocks());
  return ref_counts_[id];
}

bool BlockPool::cached(BlockId id) const {
  MUSERVE_CHECK(id >= 0 && id < num_blocks());
  return cached_[id];
}

bool BlockPool::evictable(BlockId id) const {
  MUSERVE_CHECK(id >= 0 && id < num_blocks());
  return linked_[id];
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
  int32_t walked = 0;
  for (BlockId id = head_, prev = kNone; id != kNone; prev = id, id = next_[id]) {
    if (id < 0 || id >= num_blocks() || !linked_[id] || prev_[id] != prev ||
        ++walked > num_blocks()) {
      return absl::InternalError(absl::StrCat("the evictable list is broken at block ", id));
    }
  }
  if (walked != num_evictable_) {
    return absl::InternalError(absl::StrCat("the evictable list holds ", walked,
                                            " blocks; its count says ", num_evictable_));
  }
  for (BlockId id = 0; id < num_blocks(); ++id) {
    const int32_t refs = ref_counts_[id];
    const bool free = on_free_list[id] == 1;
    const bool evictable = linked_[id];
    if (refs < 0) return absl::InternalError(absl::StrCat("block ", id, " has ref count ", refs));
    if (refs > 0 && (free || evictable)) {
      return absl::InternalError(absl::StrCat("block ", id, " has ref count ", refs,
                                              free ? " but is free" : " but is evictable"));
    }
    if (refs == 0 && free == evictable) {
      return absl::InternalError(
          absl::StrCat("block ", id, " has no holder and is ",
                       free ? "both free and evictable" : "neither free nor evictable"));
    }
    if (free && cached_[id]) {
      return absl::InternalError(absl::StrCat("block ", id, " is free but cached"));
    }
    if (evictable && !cached_[id]) {
      return absl::InternalError(absl::StrCat("block ", id, " is evictable but not cached"));
    }
  }
  return absl::OkStatus();
}

}  // namespace muserve
