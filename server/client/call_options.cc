#include "server/client/call_options.h"

#include <chrono>

namespace muserve::client {

bool CallCanceller::Cancel() {
  absl::MutexLock lock(&mutex_);
  if (context_ == nullptr) return false;
  // Safe before the call has started too: gRPC cancels it as soon as it starts.
  context_->TryCancel();
  return true;
}

void CallCanceller::Attach(grpc::ClientContext* context) {
  absl::MutexLock lock(&mutex_);
  context_ = context;
}

void CallCanceller::Detach() {
  absl::MutexLock lock(&mutex_);
  context_ = nullptr;
}

void ApplyDeadline(const CallOptions& options, grpc::ClientContext& context) {
  if (!options.timeout) return;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoNanoseconds(*options.timeout));
}

}  // namespace muserve::client
