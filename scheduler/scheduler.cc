#include "scheduler/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/api/check.h"

namespace muserve {

void SchedulerStep::Clear() {
  batch.tokens.clear();
  batch.positions.clear();
  batch.slot_mapping.clear();
  batch.sequences.clear();
  ids.clear();
  admitted.clear();
  preempted.clear();
}

Scheduler::Scheduler(const SchedulerOptions& options)
    : options_(options),
      kv_(options.num_blocks, options.block_size, options.enable_prefix_caching) {
  MUSERVE_CHECK(options.max_num_seqs >= 1);
  MUSERVE_CHECK(options.max_num_batched_tokens >= 1);
}

void Scheduler::Add(RequestId id, std::vector<TokenId> prompt, int32_t priority,
                    const PrefixCacheParams& prefix_cache) {
  MUSERVE_CHECK(!prompt.empty());
  auto seq = std::make_unique<Sequence>();
  seq->id = id;
  seq->priority = priority;
  seq->use_prefix_cache = kv_.prefix_caching() && prefix_cache.enabled;
  seq->cache_seed = PrefixCacheSeed(prefix_cache.salt);
  seq->arrival = next_arrival_++;
  seq->num_prompt_tokens = static_cast<int32_t>(prompt.size());
  seq->tokens = std::move(prompt);
  Sequence* raw = seq.get();
  const bool inserted = sequences_.emplace(id, std::move(seq)).second;
  MUSERVE_CHECK(inserted);
  waiting_.insert(KeyOf(raw));
}

void Scheduler::Preempt(Sequence* seq, SchedulerStep& step) {
  MUSERVE_CHECK(seq->running && !running_.empty() && running_.back() == seq);
  running_.pop_back();
  // A victim already planned this step gives its tokens back to the budget.
  for (auto it = plan_.begin(); it != plan_.end(); ++it) {
    if (it->seq == seq) {
      token_budget_ += it->num_new;
      plan_.erase(it);
      break;
    }
  }
  ReleaseBlocks(seq);
  seq->running = false;
  ++seq->num_preemptions;
  ++num_preemptions_;
  waiting_.insert(KeyOf(seq));
  step.preempted.push_back(seq->id);
}

void Scheduler::ReleaseBlocks(Sequence* seq) {
  // Cached blocks stay evictable: a preempted sequence usually finds its own
  // prefix again when it resumes.
  kv_.Free(seq->block_table);
  seq->block_hashes.clear();
  seq->num_computed = 0;
}

void Scheduler::AcquireCachedPrefix(Sequence* seq) {
  MUSERVE_CHECK(seq->block_table.empty() && seq->num_computed == 0);
  if (!seq->use_prefix_cache) return;
  const int32_t block_size = kv_.block_size();
  const int32_t max_blocks = (seq->num_tokens() - 1) / block_size;
  seq->num_computed = block_size * kv_.AcquireCachedPrefix(seq->tokens, seq->cache_seed, max_blocks,
                                                           seq->block_table, seq->block_hashes);
}

bool Scheduler::GrowOrPreempt(Sequence* seq, int32_t num_new, SchedulerStep& step) {
  while (!kv_.Grow(seq->block_table, int64_t{seq->num_computed} + num_new)) {
    Sequence* victim = running_.back();
    Preempt(victim, step);
    if (victim == seq) return false;
  }
  return true;
}

void Scheduler::Schedule(SchedulerStep& step) {
  step.Clear();
  plan_.clear();
  token_budget_ = options_.max_num_batched_tokens;
  const size_t max_seqs = static_cast<size_t>(options_.max_num_seqs);

  // Passes 1 and 2 over the running sequences: decodes, then the rest.
  // Preemption removes from the back of running_, so an index stays valid
  // for everything before it.
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < running_.size(); ++i) {
      if (token_budget_ == 0 || plan_.size() >= max_seqs) break;
      Sequence* seq = running_[i];
      const bool decode = seq->num_remaining() == 1;
      // Pass 0 planned exactly the decodes, so pass 1 meets none of them.
      if (decode != (pass == 0)) continue;
      MUSERVE_CHECK(seq->num_remaining() >= 1);
      const int32_t num_new = std::min(seq->num_remaining(), token_budget_);
      if (!GrowOrPreempt(seq, num_new, step)) break;  // it was the last one
      plan_.push_back({seq, num_new});
      token_budget_ -= num_new;
    }
  }

  // Pass 3: admission, only when nothing had to be preempted (the pool is
  // tight, and the preempted must not be overtaken by their own re-entry).
  if (step.preempted.empty()) {
    while (!waiting_.empty() && token_budget_ > 0 && plan_.size() < max_seqs) {
      Sequence* seq = std::get<Sequence*>(*waiting_.begin());
      AcquireCachedPrefix(seq);
      const int32_t num_new = std::min(seq->num_remaining(), token_budget_);
      if (!kv_.Grow(seq->block_table, int64_t{seq->num_computed} + num_new)) {
        ReleaseBlocks(seq);  // the cached blocks go back to the cache
        break;
      }
      if (seq->num_cached_prompt_tokens < 0) {  // first admission: what it reused
        seq->num_cached_prompt_tokens = std::min(seq->num_computed, seq->num_prompt_tokens);
        if (seq->use_prefix_cache) {
          kv_.RecordQuery(seq->num_prompt_tokens, seq->num_cached_prompt_tokens);
        }
      }
      waiting_.erase(waiting_.begin());
      seq->running = true;
      running_.push_back(seq);
      plan_.push_back({seq, num_new});
      token_budget_ -= num_new;
      step.admitted.push_back(seq->id);
    }
  }
  BuildBatch(step);
}

void Scheduler::BuildBatch(SchedulerStep& step) {
  const int32_t block_size = kv_.block_size();
  StepBatch& batch = step.batch;
  for (const Planned& p : plan_) {
    Sequence& seq = *p.seq;
    StepSequence s;
    s.query_start = batch.num_tokens();
    s.query_len = p.num_new;
    s.context_len = seq.num_computed + p.num_new;
    s.block_table = seq.block_table;
    s.sample = s.context_len == seq.num_tokens();
    for (int32_t pos = seq.num_computed; pos < s.context_len; ++pos) {
      batch.tokens.push_back(seq.tokens[pos]);
      batch.positions.push_back(pos);
      batch.slot_mapping.push_back(int64_t{seq.block_table[pos / block_size]} * block_size +
                                   pos % block_size);
    }
    seq.num_computed = s.context_len;
    batch.sequences.push_back(std::move(s));
    step.ids.push_back(seq.id);
  }
}

void Scheduler::ApplyOutput(const SchedulerStep& step, std::span<const TokenId> sampled) {
  size_t k = 0;
  for (size_t i = 0; i < step.ids.size(); ++i) {
    auto it = sequences_.find(step.ids[i]);
    MUSERVE_CHECK(it != sequences_.end());
    Sequence& seq = *it->second;
    if (step.batch.sequences[i].sample) {
      MUSERVE_CHECK(k < sampled.size());
      seq.tokens.push_back(sampled[k++]);
    }
    // Only now, after the forward pass wrote them, may other sequences read
    // the K/V of the blocks this step completed.
    if (seq.use_prefix_cache) {
      kv_.CacheFullBlocks(seq.tokens, seq.num_computed, seq.cache_seed, seq.block_table,
                          seq.block_hashes);
    }
  }
  MUSERVE_CHECK(k == sampled.size());
}

bool Scheduler::Remove(RequestId id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return false;
  Sequence* seq = it->second.get();
  if (seq->running) {
    running_.erase(std::find(running_.begin(), running_.end(), seq));
  } else {
    waiting_.erase(KeyOf(seq));
  }
  ReleaseBlocks(seq);
  sequences_.erase(it);
  return true;
}

const Sequence* Scheduler::Find(RequestId id) const {
  auto it = sequences_.find(id);
  return it == sequences_.end() ? nullptr : it->second.get();
}

std::vector<RequestId> Scheduler::RunningIds() const {
  std::vector<RequestId> ids;
  for (const Sequence* seq : running_) ids.push_back(seq->id);
  return ids;
}

std::vector<RequestId> Scheduler::WaitingIds() const {
  std::vector<RequestId> ids;
  for (const WaitingKey& key : waiting_) ids.push_back(std::get<Sequence*>(key)->id);
  return ids;
}

absl::Status Scheduler::CheckConsistency() const {
  if (absl::Status status = kv_.pool().CheckConsistency(); !status.ok()) return status;
  if (absl::Status status = kv_.CheckIndex(); !status.ok()) return status;
  const BlockPool& pool = kv_.pool();
  std::vector<int32_t> holders(pool.num_blocks(), 0);
  for (const auto& [id, seq] : sequences_) {
    const auto request = static_cast<uint64_t>(id);
    if (!seq->running && !seq->block_table.empty()) {
      return absl::InternalError(absl::StrCat("waiting request ", request, " holds blocks"));
    }
    if (static_cast<int32_t>(seq->block_table.size()) != kv_.BlocksFor(seq->num_computed)) {
      return absl::InternalError(absl::StrCat("request ", request, " holds ",
                                              seq->block_table.size(), " blocks for ",
                                              seq->num_computed, " computed tokens"));
    }
    if (seq->block_hashes.size() > seq->block_table.size()) {
      return absl::InternalError(absl::StrCat("request ", request, " has more block hashes (",
                                              seq->block_hashes.size(), ") than blocks"));
    }
    for (size_t i = 0; i < seq->block_table.size(); ++i) {
      const BlockId block = seq->block_table[i];
      if (block < 0 || block >= pool.num_blocks()) {
        return absl::InternalError(absl::StrCat("request ", request, " holds bad block ", block));
      }
      ++holders[block];
      if (i < seq->block_hashes.size() && pool.cached(block) &&
          kv_.CachedHash(block) != seq->block_hashes[i]) {
        return absl::InternalError(
            absl::StrCat("request ", request, "'s block ", i, " is cached under another hash"));
      }
    }
  }
  int32_t num_held = 0;
  for (BlockId block = 0; block < pool.num_blocks(); ++block) {
    if (pool.ref_count(block) != holders[block]) {
      return absl::InternalError(absl::StrCat("block ", block, " has ref count ",
                                              pool.ref_count(block), " but ", holders[block],
                                              " holders"));
    }
    num_held += holders[block] > 0 ? 1 : 0;
  }
  if (pool.num_available() != pool.num_blocks() - num_held) {
    return absl::InternalError(absl::StrCat("pool has ", pool.num_available(),
                                            " available blocks; ", pool.num_blocks() - num_held,
                                            " are not held"));
  }
  if (running_.size() + waiting_.size() != sequences_.size()) {
    return absl::InternalError("a sequence is neither running nor waiting");
  }
  return absl::OkStatus();
}

}  // namespace muserve
