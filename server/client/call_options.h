// Per-call settings of the client: an optional deadline and an optional
// canceller through which another thread (a Ctrl-C watcher) ends the call.
#pragma once

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/client_context.h"

namespace muserve::client {

// Cancels whichever call is in flight with it; one call at a time. Thread-safe:
// Cancel() may run on any thread while the call runs on another.
//
// Invariant: `context_` is non-null exactly while a call using this canceller
// is between Attach and Detach, so Cancel() never touches a destroyed context.
class CallCanceller {
 public:
  CallCanceller() = default;
  CallCanceller(const CallCanceller&) = delete;
  CallCanceller& operator=(const CallCanceller&) = delete;

  // Cancels the call in flight (it then ends with CANCELLED). Returns whether
  // there was one; without one this does nothing, so a late cancel never
  // affects the next call.
  bool Cancel();

  // Used by InferenceClient around each call. `context` must outlive Detach().
  void Attach(grpc::ClientContext* context);
  void Detach();

 private:
  absl::Mutex mutex_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mutex_) = nullptr;
};

struct CallOptions {
  // Time the whole call may take, streaming included; none when unset. When
  // it passes the call ends with DEADLINE_EXCEEDED.
  std::optional<absl::Duration> timeout;
  // Not owned; may be null. Must outlive the call.
  CallCanceller* canceller = nullptr;
};

// Applies `options.timeout` to `context`.
void ApplyDeadline(const CallOptions& options, grpc::ClientContext& context);

}  // namespace muserve::client
