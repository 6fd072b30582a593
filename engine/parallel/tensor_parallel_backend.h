// TensorParallelBackend: one model run by a group of tensor-parallel ranks,
// each a Backend of its own (its weight slices, its KV heads, its threads;
// see engine/model/shard.h), driven by one thread per rank.
//
// Forward hands the same StepBatch to every rank: rank 0 runs on the caller's
// thread (the engine loop's, in the server), ranks 1..N-1 on threads of their
// own, and the ranks meet in their collectives. Only rank 0 computes the full
// logits (the vocabulary slices are gathered to it) and writes them into the
// caller's buffer; the caller samples them once (one sampler state per
// request, exactly as with one rank). Ranks 1..N-1 are handed the same
// buffer, only to check its size: a rank other than 0 must never touch the
// elements of its `logits` (CpuBackend ranks do not).
//
// Invariants: the ranks share config(), kv_cache() and
// max_num_batched_tokens(), so a batch that one rank rejects (before any
// collective) every rank rejects, and no rank waits for a peer that is not
// coming. The scheduler's block tables are shared by all ranks: each rank
// keeps its own KV heads of the same blocks.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "engine/api/backend.h"
#include "engine/model/weights.h"
#include "engine/parallel/communicator.h"

namespace muserve {

class TensorParallelBackend final : public Backend {
 public:
  // ranks[r] is rank r (at least two ranks). `communicators` and `model` are
  // what the ranks reference (their collectives, the mapped checkpoint); they
  // are destroyed after the ranks. InvalidArgument if the ranks disagree on
  // config, KV geometry or step size; ResourceExhausted if a thread cannot
  // be had.
  static absl::StatusOr<std::unique_ptr<TensorParallelBackend>> Create(
      std::vector<std::unique_ptr<Backend>> ranks,
      std::vector<std::unique_ptr<Communicator>> communicators, std::optional<LoadedModel> model);
  ~TensorParallelBackend() override;

  int32_t size() const { return static_cast<int32_t>(ranks_.size()); }

  const ModelConfig& config() const override { return ranks_[0]->config(); }
  KvCacheGeometry kv_cache() const override { return ranks_[0]->kv_cache(); }
  int32_t max_num_batched_tokens() const override { return ranks_[0]->max_num_batched_tokens(); }
  // Runs every rank on the batch; returns rank 0's status (or, should rank 0
  // succeed where another failed, that rank's).
  absl::Status Forward(const StepBatch& batch, std::span<float> logits) override;
  // Ranks that sample on their device (CUDA ranks): every rank gets the same
  // ForwardSample call; rank 0 gathers the logits and samples, the others
  // only check sizes and never touch `out`.
  bool samples_on_device() const override { return ranks_[0]->samples_on_device(); }
  absl::Status ForwardSample(const StepBatch& batch, std::span<const SampleInput> inputs,
                             std::span<SampledToken> out) override;

 private:
  TensorParallelBackend(std::vector<std::unique_ptr<Communicator>> communicators,
                        std::optional<LoadedModel> model,
                        std::vector<std::unique_ptr<Backend>> ranks);
  // Starts the threads of ranks 1..N-1.
  void Start();
  void RankLoop(int32_t rank);
  // Hands the step to ranks 1..N-1, runs rank 0 with `run0`, and waits.
  template <class Run0>
  absl::Status RunStep(Run0 run0);

  // Declared first: destroyed after the ranks that point into them.
  std::optional<LoadedModel> model_;
  std::vector<std::unique_ptr<Communicator>> communicators_;
  std::vector<std::unique_ptr<Backend>> ranks_;
  std::vector<std::thread> threads_;  // ranks 1..N-1

  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  // The current step, set by Forward before bumping generation_ and left
  // unchanged until pending_ is back to zero.
  const StepBatch* batch_ ABSL_GUARDED_BY(mutex_) = nullptr;
  std::span<float> logits_ ABSL_GUARDED_BY(mutex_);
  bool sample_ ABSL_GUARDED_BY(mutex_) = false;  // ForwardSample rather than Forward
  std::span<const SampleInput> inputs_ ABSL_GUARDED_BY(mutex_);
  std::span<SampledToken> out_ ABSL_GUARDED_BY(mutex_);
  uint64_t generation_ ABSL_GUARDED_BY(mutex_) = 0;
  int32_t pending_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stop_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<absl::Status> statuses_ ABSL_GUARDED_BY(mutex_);  // per rank, of the current step
};

}  // namespace muserve
