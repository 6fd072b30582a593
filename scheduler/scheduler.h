// Scheduler: continuous-batching step planning, as a plain single-threaded
// class with no model behind it (the engine loop drives it; tests drive it
// with a fake backend).
//
// Policy (DESIGN.md, "Scheduling policy"), each step, under the budgets
// max_num_seqs (sequences) and max_num_batched_tokens (tokens):
//   1. running sequences with one token left to compute (decodes), in
//      admission order;
//   2. running sequences with more left (a prompt being prefilled in chunks,
//      or a recompute), each taking what it needs up to the remaining budget;
//   3. waiting sequences in (priority, arrival) order, each first taking the
//      longest run of cached blocks at the start of its tokens (prefix
//      caching; never its last token), then chunked to the remaining budget,
//      while blocks are available; the first one that does not fit stops
//      admission (strict order, no overtaking). Skipped in a step that had
//      to preempt.
// KV blocks are allocated for exactly the tokens a step computes. When a
// running sequence cannot grow, the most recently admitted running sequence
// is preempted by recompute: its blocks are freed, its computed count reset
// and it re-enters the waiting queue at its original (priority, arrival)
// place keeping its tokens, so it later recomputes prompt + output so far
// (less whatever of it is still cached) and samples exactly the next token. A sequence that alone needs more blocks
// than the pool must be refused before Add (the caller's job), which makes
// progress certain: the oldest running sequence can always grow.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "engine/api/step_batch.h"
#include "scheduler/kv/kv_block_manager.h"
#include "scheduler/sequence.h"

namespace muserve {

struct SchedulerOptions {
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;
  int32_t num_blocks = 0;
  int32_t block_size = 16;
  // Reuse the K/V of full blocks of identical prefixes (see KvBlockManager).
  bool enable_prefix_caching = false;
};

// One planned step. `ids[i]` is the request of `batch.sequences[i]`.
struct SchedulerStep {
  StepBatch batch;
  std::vector<RequestId> ids;
  std::vector<RequestId> admitted;   // left the waiting queue this step
  std::vector<RequestId> preempted;  // preempted while planning this step

  bool empty() const { return batch.sequences.empty(); }
  void Clear();
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerOptions& options);

  // Queues a new sequence. The caller has checked that it is not empty and
  // that its largest KV need fits the pool (MUSERVE_CHECKed: a duplicate id).
  void Add(RequestId id, std::vector<TokenId> prompt, int32_t priority,
           const PrefixCacheParams& prefix_cache = {});

  // Plans the next step into `step` (reused between steps). Advances the
  // computed count of every scheduled sequence. `step` is empty only when
  // nothing is running or waiting.
  void Schedule(SchedulerStep& step);

  // Appends the engine's sampled tokens: `sampled[k]` belongs to the k-th
  // sequence of `step` with sample == true, and makes the step's newly
  // completed full blocks reusable by the prefix cache. Must follow
  // Schedule(step) (and the forward pass that computed it) before any Add or
  // Remove.
  void ApplyOutput(const SchedulerStep& step, std::span<const TokenId> sampled);

  // Removes a sequence (finished or aborted), running or waiting, and frees
  // its blocks. False when the id is unknown.
  bool Remove(RequestId id);

  const Sequence* Find(RequestId id) const;
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  int64_t num_preemptions() const { return num_preemptions_; }
  const KvBlockManager& kv() const { return kv_; }
  const SchedulerOptions& options() const { return options_; }

  // For tests and metrics: running ids in admission order, waiting ids in
  // queue order.
  std::vector<RequestId> RunningIds() const;
  std::vector<RequestId> WaitingIds() const;

  // Internal error naming the first broken invariant: a block's reference
  // count differing from the number of sequences holding it, a held block
  // that is free or evictable, an available count that differs from the pool
  // size minus the blocks held, a table that does not match its computed
  // count, a waiting sequence holding blocks, an index entry that does not
  // hash its block's contents, a sequence's block hash that differs from its
  // cached block's.
  absl::Status CheckConsistency() const;

 private:
  using WaitingKey = std::tuple<int32_t, uint64_t, Sequence*>;
  struct Planned {
    Sequence* seq;
    int32_t num_new;
  };

  static WaitingKey KeyOf(Sequence* seq) { return {seq->priority, seq->arrival, seq}; }
  // Grows `seq`'s blocks to hold `num_new` more tokens, preempting the most
  // recently admitted running sequence until it fits. False when `seq` itself
  // had to be preempted.
  bool GrowOrPreempt(Sequence* seq, int32_t num_new, SchedulerStep& step);
  void Preempt(Sequence* seq, SchedulerStep& step);
  // Admission's first move: the longest cached prefix of `seq` (never its
  // last token, which must be computed to sample from).
  void AcquireCachedPrefix(Sequence* seq);
  void ReleaseBlocks(Sequence* seq);
  void BuildBatch(SchedulerStep& step);

  SchedulerOptions options_;
  KvBlockManager kv_;
  absl::flat_hash_map<RequestId, std::unique_ptr<Sequence>> sequences_;
  std::vector<Sequence*> running_;  // admission order: the back is preempted first
  std::set<WaitingKey> waiting_;
  std::vector<Planned> plan_;  // this step's choices, before the batch is built
  int32_t token_budget_ = 0;
  uint64_t next_arrival_ = 0;
  int64_t num_preemptions_ = 0;
};

}  // namespace muserve
