// EngineLoop: continuous batching. One engine-loop thread owns all scheduling
// state (waiting queue, running sequences, KV block bookkeeping, sampler and
// output state) and drives the Backend one step at a time; other threads talk
// to it only through its inbox (Submit, Abort) and read results from each
// request's RequestHandle.
//
// Each step: drain the inbox (admit or abort), plan a StepBatch under the
// budgets (running decodes first, then waiting prefills in priority then
// arrival order, chunking a long prompt to the remaining token budget),
// preempting by recompute when KV blocks run out, run Backend::Forward,
// sample, detokenize, check stop criteria, emit deltas, free finished
// sequences' blocks.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/api/backend.h"
#include "engine/tokenizer/tokenizer.h"
#include "scheduler/request.h"

namespace muserve {

struct EngineLoopOptions {
  int32_t max_num_seqs = 64;              // sequences in one step (>= 1)
  int32_t max_num_batched_tokens = 2048;  // tokens in one step (>= 1)
  // Waiting requests (not yet admitted, or preempted and waiting to resume)
  // beyond which Submit fails with ResourceExhausted (>= 1).
  int32_t max_queue = 1024;
  // Reuse the K/V of cached full blocks of identical prompt prefixes.
  bool enable_prefix_caching = true;

  absl::Status Validate() const;
};

// A request's output stream: zero or more Deltas, then exactly one Finished.
// Shared by the engine loop (writer) and the caller (reader), either of which
// may go away first, hence shared_ptr. Readers either block (Next, NextFor)
// or poll (TryNext) when their listener says an event arrived.
class RequestHandle {
 public:
  using Event = std::variant<Delta, Finished>;
  // Called on the engine-loop thread after each event is queued. It must not
  // block: an asynchronous reader uses it to schedule a TryNext.
  using Listener = std::function<void()>;

  RequestId id() const { return id_; }
  // Blocks until the next event. After Finished has been returned, returns
  // it again.
  Event Next();
  // Like Next, giving up after `timeout` (nullopt then).
  std::optional<Event> NextFor(std::chrono::milliseconds timeout);
  // The next event if one is ready, without waiting.
  std::optional<Event> TryNext();

  // Replaces the listener (an empty one clears it). When events are already
  // waiting, the new listener is called once right away, on this thread.
  // After SetListener returns, the previous listener is not running and will
  // not be called again, so its captures may be destroyed.
  void SetListener(Listener listener);

  // Engine-loop side.
  explicit RequestHandle(RequestId id) : id_(id) {}
  void Push(Event event);

 private:
  std::optional<Event> PopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const RequestId id_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Event> events_ ABSL_GUARDED_BY(mutex_);
  std::optional<Finished> finished_ ABSL_GUARDED_BY(mutex_);
  // Held while the listener runs, so that SetListener waits for a call in
  // progress. Never taken while holding mutex_.
  std::mutex listener_mutex_;
  Listener listener_ ABSL_GUARDED_BY(listener_mutex_);
};

// Counters for routers, autoscalers and metrics; a consistent snapshot.
struct LoadSnapshot {
  int32_t running = 0;
  int32_t waiting = 0;
  int32_t kv_blocks_total = 0;
  // Blocks an allocation can take: free, or cached and evictable (nobody
  // holds them). total - free is what requests hold.
  int32_t kv_blocks_free = 0;
  // Prefix cache: blocks indexed (held or evictable), evictable ones, and
  // since start the prompt tokens new requests looked up and found.
  int32_t kv_blocks_cached = 0;
  int32_t kv_blocks_evictable = 0;
  int64_t prefix_cache_query_tokens = 0;
  int64_t prefix_cache_hit_tokens = 0;
  int64_t num_preemptions = 0;  // since start
  int64_t num_steps = 0;        // since start
  // Wall time since start spent in steps (drain, plan, forward, sample,
  // outputs) and in Backend::Forward alone; their difference is the
  // scheduler's own overhead.
  int64_t step_time_ns = 0;
  int64_t forward_time_ns = 0;
  int64_t sample_time_ns = 0;  // of step_time_ns: SampleToken calls
};

class EngineLoop {
 public:
  // `backend` and `tokenizer` must outlive the loop. `eos_token_ids` are the
  // model's end-of-sequence ids (config.json and generation_config.json).
  // InvalidArgument when the options are out of range or ask for steps larger
  // than the backend accepts (max_num_batched_tokens).
  static absl::StatusOr<std::unique_ptr<EngineLoop>> Create(Backend& backend,
                                                            const Tokenizer& tokenizer,
                                                            std::vector<TokenId> eos_token_ids,
                                                            const EngineLoopOptions& options);
  ~EngineLoop();  // Stop()s

  void Start();
  // Aborts every request (each gets Finished{kAborted}) and joins the thread.
  void Stop();

  // Validates and enqueues. Errors (nothing is enqueued):
  //   InvalidArgument naming the field: empty prompt, a prompt or stop token
  //     id outside the vocabulary, prompt + 1 longer than the context, a request that needs
  //     more KV blocks than the whole pool, bad sampling or stop parameters;
  //   ResourceExhausted: the waiting queue holds max_queue requests;
  //   Unavailable: the loop is not running.
  // Never blocks on the engine.
  absl::StatusOr<std::shared_ptr<RequestHandle>> Submit(Request request);
  // Ends a request (Finished{kAborted}) at the next step boundary and frees
  // its blocks; unknown or finished ids are ignored.
  void Abort(RequestId id);

  LoadSnapshot GetLoad() const;

 private:
  class Impl;
  explicit EngineLoop(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace muserve
