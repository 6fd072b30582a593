// ActiveRequests: the streams in flight, by client request id. Abort finds
// streams here, duplicate ids are refused here, the drain waits here for the
// last stream to end, and the stall watchdog walks it.
//
// A stream leaves in two steps: Remove when its outcome is decided (Finish
// called: the id is free again, Abort no longer finds it), Forget when gRPC
// is done with the call (OnDone). In between it is "closing": its last
// message or status may still be on its way, so the drain waits for it and
// the watchdog still watches it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"

namespace muserve::server {

class GenerateStream;

class ActiveRequests {
 public:
  // False when `id` is already in flight, or after Close (nothing is added
  // then); `closed` tells which.
  bool Add(const std::string& id, std::shared_ptr<GenerateStream> stream, bool* closed);
  // Frees `id` if it maps to `stream` (a later request may reuse the id); the
  // stream is closing until Forget.
  void Remove(const std::string& id, const GenerateStream* stream);
  void Forget(const GenerateStream* stream);
  // Refuses every later Add: the drain calls it first, so that no request
  // slips in between its check and its wait.
  void Close();
  std::shared_ptr<GenerateStream> Find(const std::string& id) const;
  size_t size() const;
  // Waits until no stream is in flight or closing, or `deadline` passes;
  // true when empty.
  bool WaitUntilEmpty(std::chrono::steady_clock::time_point deadline) const;
  // In-flight and closing streams, so that callers act on them without
  // holding the lock.
  std::vector<std::shared_ptr<GenerateStream>> Snapshot() const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable emptied_;
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
  absl::flat_hash_map<std::string, std::shared_ptr<GenerateStream>> streams_
      ABSL_GUARDED_BY(mutex_);
  absl::flat_hash_map<const GenerateStream*, std::shared_ptr<GenerateStream>> closing_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace muserve::server
