// Runs one phase of load against the targets: open loop (arrivals at a
// request rate, Poisson or burstier) or closed loop (a fixed number of
// conversations in flight), until a number of requests have been sent or a
// duration has passed, then waits for the calls in flight to end (cancelling
// them after a grace period when a duration bound was reached).
//
// Threads: Run() owns one driver thread (the caller's) that decides what to
// send and when; the calls are gRPC callback-API streams, whose reactors
// record each response's arrival on gRPC's threads and hand the finished
// request back to the driver. No thread per stream.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/loadgen/timeline.h"
#include "bench/loadgen/workload.h"
#include "muserve/v1/inference.grpc.pb.h"

namespace muserve::loadgen {

struct LoadSpec {
  enum class Mode { kConcurrency, kRequestRate };
  Mode mode = Mode::kConcurrency;
  // kConcurrency: conversations in flight (an integer >= 1); a conversation
  // holds its place through its think times. kRequestRate: new conversations
  // per second (> 0; infinity sends them all at once); later turns follow
  // their predecessors after the think time.
  double value = 1;
  // kRequestRate: the shape of the gamma distribution of inter-arrival times
  // (mean 1 / value): 1 is a Poisson process, below 1 burstier, above 1
  // steadier.
  double burstiness = 1;

  std::string Label() const;  // "concurrency 4", "rate 2.5/s", "rate inf/s"
};

struct PhaseOptions {
  LoadSpec load;
  // >= 1. Counted in whole conversations: none starts once the requests
  // sent plus the turns still to come of those started reach it, and those
  // started play all their turns (until max_duration), so a phase may send
  // up to (turns - 1) more.
  int64_t max_requests = 1;
  std::optional<std::chrono::nanoseconds> max_duration;  // no request starts after it
  std::chrono::milliseconds think_time{0};               // between turns of a conversation
  std::optional<std::chrono::milliseconds> timeout;      // deadline of each request
  // Once max_duration has passed, calls still in flight get a grace period
  // as long as max_duration (at most 30 s), then are cancelled and recorded
  // as cancelled, so that a server that stopped answering cannot hold the
  // phase. `stop` (may be null; set from any thread, even a signal handler)
  // ends the phase early the same way, with no grace.
  const std::atomic<bool>* stop = nullptr;
  uint64_t seed = 0;
  // Prefix-cache salt of conversation instance k is salt_prefix + k: turns of
  // one conversation share cached prefixes, different instances never do
  // (even when the workload repeats a prompt).
  std::string salt_prefix;
};

// Updated by the driver as requests start and end; read by a progress bar.
struct PhaseProgress {
  std::atomic<int64_t> sent = 0;
  std::atomic<int64_t> succeeded = 0;
  std::atomic<int64_t> failed = 0;
};

struct PhaseResult {
  std::vector<RequestRecord> records;  // in the order the requests ended
  // From the phase's start to the end of its last request.
  double duration_s = 0;
};

// Conversation instance k goes to stubs[k % stubs.size()] and plays
// workload.conversations[k % size]. A failed turn ends its conversation.
// `stubs` (not owned, non-empty) and `progress` (may be null) outlive the call.
PhaseResult RunPhase(const std::vector<v1::Inference::Stub*>& stubs, const Workload& workload,
                     const PhaseOptions& options, PhaseProgress* progress);

}  // namespace muserve::loadgen
