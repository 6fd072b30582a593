// ActiveRequests: the streams in flight, by client request id. Abort finds
// streams here, duplicate ids are refused here, the drain waits here for the
// last stream to end, and the stall watchdog walks it.
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
  // False when `id` is already in flight (nothing is added then).
  bool Add(const std::string& id, std::shared_ptr<GenerateStream> stream);
  // Removes `id` if it maps to `stream` (a later request may reuse the id).
  void Remove(const std::string& id, const GenerateStream* stream);
  std::shared_ptr<GenerateStream> Find(const std::string& id) const;
  size_t size() const;
  // Waits until no stream is in flight or `deadline` passes; true when empty.
  bool WaitUntilEmpty(std::chrono::steady_clock::time_point deadline) const;
  // A snapshot, so that callers act on streams without holding the lock.
  std::vector<std::shared_ptr<GenerateStream>> Snapshot() const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable emptied_;
  absl::flat_hash_map<std::string, std::shared_ptr<GenerateStream>> streams_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace muserve::server
