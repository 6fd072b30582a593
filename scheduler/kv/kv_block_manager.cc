#include "scheduler/kv/kv_block_manager.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "engine/api/check.h"

namespace muserve {

KvBlockManager::KvBlockManager(int32_t num_blocks, int32_t block_size, bool enable_prefix_caching)
    : block_size_(block_size),
      prefix_caching_(enable_prefix_caching),
      pool_(num_blocks, [this](BlockId id) { Forget(id); }) {
  MUSERVE_CHECK(block_size >= 1);
  if (prefix_caching_) {
    hash_.assign(num_blocks, 0);
    parent_.assign(num_blocks, 0);
    tokens_.assign(static_cast<size_t>(num_blocks) * block_size, 0);
  }
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
  if (needed > pool_.num_available()) return false;
  for (int32_t i = 0; i < needed; ++i) {
    const std::optional<BlockId> id = pool_.Allocate();
    MUSERVE_CHECK(id.has_value());  // guaranteed by the num_available() check
    table.push_back(*id);
  }
  return true;
}

void KvBlockManager::Free(std::vector<BlockId>& table) {
  // Released in reverse: the free list is a stack, so a sequence's blocks are
  // reused in the same order by the next allocation; and a sequence's last
  // blocks (the least likely to be shared) are evicted before its first.
  for (auto it = table.rbegin(); it != table.rend(); ++it) pool_.Release(*it);
  table.clear();
}

std::span<const TokenId> KvBlockManager::BlockTokens(BlockId id) const {
  return std::span<const TokenId>(tokens_).subspan(static_cast<size_t>(id) * block_size_,
                                                   block_size_);
}

void KvBlockManager::Forget(BlockId id) {
  auto it = index_.find(hash_[id]);
  MUSERVE_CHECK(it != index_.end() && it->second == id);
  index_.erase(it);
}

int32_t KvBlockManager::AcquireCachedPrefix(std::span<const TokenId> tokens, BlockHash seed,
                                            int32_t max_blocks, std::vector<BlockId>& table,
                                            std::vector<BlockHash>& hashes) {
  MUSERVE_CHECK(table.empty());
  hashes.clear();
  if (!prefix_caching_) return 0;
  const int32_t full_blocks = static_cast<int32_t>(tokens.size()) / block_size_;
  const int32_t limit = std::min(max_blocks, full_blocks);
  BlockHash parent = seed;
  for (int32_t i = 0; i < limit; ++i) {
    const std::span<const TokenId> block =
        tokens.subspan(static_cast<size_t>(i) * block_size_, block_size_);
    const BlockHash hash = HashBlock(parent, block);
    auto it = index_.find(hash);
    if (it == index_.end()) break;
    const BlockId id = it->second;
    if (parent_[id] != parent || !std::equal(block.begin(), block.end(), BlockTokens(id).begin())) {
      break;  // a hash collision: not our block
    }
    pool_.AddRef(id);
    table.push_back(id);
    hashes.push_back(hash);
    parent = hash;
  }
  return static_cast<int32_t>(table.size());
}

void KvBlockManager::RecordQuery(int64_t query_tokens, int64_t hit_tokens) {
  query_tokens_ += query_tokens;
  hit_tokens_ += hit_tokens;
}

void KvBlockManager::CacheFullBlocks(std::span<const TokenId> tokens, int32_t num_computed,
                                     BlockHash seed, const std::vector<BlockId>& table,
                                     std::vector<BlockHash>& hashes) {
  if (!prefix_caching_) return;
  const int32_t full_blocks =
      std::min<int32_t>(num_computed / block_size_, static_cast<int32_t>(table.size()));
  for (auto i = static_cast<int32_t>(hashes.size()); i < full_blocks; ++i) {
    const BlockHash parent = i == 0 ? seed : hashes[i - 1];
    const std::span<const TokenId> block =
        tokens.subspan(static_cast<size_t>(i) * block_size_, block_size_);
    const BlockHash hash = HashBlock(parent, block);
    const BlockId id = table[i];
    if (pool_.cached(id)) {  // found in the cache, or indexed already
      hashes.push_back(hash);
      continue;
    }
    auto [it, inserted] = index_.emplace(hash, id);
    if (!inserted) {
      const BlockId other = it->second;
      if (parent_[other] != parent ||
          !std::equal(block.begin(), block.end(), BlockTokens(other).begin())) {
        // A hash collision: stop indexing this sequence, since a later block
        // chained on this hash would pass for the other chain's.
        return;
      }
      hashes.push_back(hash);  // another block already holds these contents
      continue;
    }
    hashes.push_back(hash);
    hash_[id] = hash;
    parent_[id] = parent;
    std::copy(block.begin(), block.end(),
              tokens_.begin() + static_cast<ptrdiff_t>(id) * block_size_);
    pool_.MarkCached(id);
  }
}

PrefixCacheStats KvBlockManager::prefix_cache_stats() const {
  PrefixCacheStats stats;
  stats.query_tokens = query_tokens_;
  stats.hit_tokens = hit_tokens_;
  stats.cached_blocks = static_cast<int32_t>(index_.size());
  stats.evictable_blocks = pool_.num_evictable();
  return stats;
}

absl::Status KvBlockManager::CheckIndex() const {
  int32_t num_cached = 0;
  for (BlockId id = 0; id < pool_.num_blocks(); ++id) num_cached += pool_.cached(id) ? 1 : 0;
  if (num_cached != static_cast<int32_t>(index_.size())) {
    return absl::InternalError(
        absl::StrCat(num_cached, " blocks are marked cached; the index has ", index_.size()));
  }
  for (const auto& [hash, id] : index_) {
    if (id < 0 || id >= pool_.num_blocks() || !pool_.cached(id)) {
      return absl::InternalError(absl::StrCat("the index maps to block ", id, ", not cached"));
    }
    if (hash_[id] != hash || HashBlock(parent_[id], BlockTokens(id)) != hash) {
      return absl::InternalError(
          absl::StrCat("block ", id, "'s contents do not hash to its index entry"));
    }
  }
  return absl::OkStatus();
}

}  // namespace muserve
