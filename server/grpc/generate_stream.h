// GenerateStream: one Generate or Chat call, from the engine's RequestHandle
// to the client's gRPC stream, without ever blocking the engine loop.
//
// The engine loop announces events through the handle's listener; the
// listener moves them into this stream's pending output, merging every delta
// that arrives while a write is in flight into one Chunk. So a slow reader
// costs one message of memory (bounded by the request's max_tokens), never a
// queue of messages, and never stalls the loop. A client whose write has not
// completed for `stall_timeout` is cancelled: the engine request is aborted
// (its KV blocks are free at the next step boundary) and the call ends with
// CANCELLED and a message saying why.
//
// Lifetime: the stream owns itself (self_) from creation until gRPC's OnDone;
// the handle's listener holds another reference until the handle goes away
// (the stream drops the handle on the engine's Finished event; the engine
// drops its own right after). Both ends can go away in either order. Every gRPC call on the
// reactor happens under mutex_, and flags guarantee nothing follows Finish.
// (Reactions for callback writes never run inline, so holding mutex_ while
// calling StartWrite or Finish cannot deadlock with OnWriteDone.)
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "muserve/v1/inference.pb.h"
#include "scheduler/engine_loop.h"
#include "server/api/grpc_status.h"
#include "server/api/request_conversion.h"
#include "server/api/response_conversion.h"
#include "server/observability/request_record.h"

namespace muserve::server {

class ActiveRequests;
class ServerMetrics;

struct StreamEnv {
  EngineLoop* loop = nullptr;
  ServerMetrics* metrics = nullptr;
  ActiveRequests* active = nullptr;
  // A write outstanding this long means the client stopped reading.
  std::chrono::milliseconds stall_timeout{30000};
};

class GenerateStream : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  using Clock = std::chrono::steady_clock;

  // The reactor for a call, registered in env.active under `request_id`.
  // When the id is in flight already the call is refused with
  // ALREADY_EXISTS right away (ended() is then true).
  static GenerateStream* Create(grpc::CallbackServerContext* context, const StreamEnv& env,
                                std::string rpc, std::string request_id, StreamShape shape);

  // True once Finish has been called (refused, cancelled or finished).
  bool ended();
  // The call's deadline on the steady clock, for Request::deadline.
  std::optional<Clock::time_point> deadline() const;

  // Ends the call before it reached the engine (refused request).
  void Refuse(const absl::Status& status);
  // Hands the submitted request's handle over; events start to flow.
  void Attach(std::shared_ptr<RequestHandle> handle);
  // Abort by id (the Abort RPC): the stream ends with FINISH_REASON_CANCELLED.
  void AbortFromClient();
  // Called periodically by the watchdog: cancels the call when a write has
  // been outstanding longer than stall_timeout, and escalates to
  // TryCancel when the client still has not gone a second later.
  void CheckStall(Clock::time_point now);

  const std::string& request_id() const { return request_id_; }

  // grpc::ServerWriteReactor
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  GenerateStream(grpc::CallbackServerContext* context, const StreamEnv& env, std::string rpc,
                 std::string request_id, StreamShape shape);

  // Listener of the handle (engine-loop thread): moves ready events into
  // pending output and writes if the stream is idle.
  void OnEngineEvent();
  void DrainHandleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void MarkFinishCalledLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void AbortEngineLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Once both the call and the engine request have ended: metrics and the
  // log line (outside the lock; returns whether to emit).
  bool TakeRecordLocked(RequestRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Emit(const RequestRecord& record);

  const StreamEnv env_;
  const std::string rpc_;
  const std::string request_id_;
  const StreamShape shape_;
  const Clock::time_point created_ = Clock::now();
  // The call's deadline on the steady clock, when it has one.
  const std::optional<Clock::time_point> deadline_;

  std::mutex mutex_;
  std::shared_ptr<GenerateStream> self_ ABSL_GUARDED_BY(mutex_);
  grpc::CallbackServerContext* context_ ABSL_GUARDED_BY(mutex_);   // null after OnDone
  std::shared_ptr<RequestHandle> handle_ ABSL_GUARDED_BY(mutex_);  // null after Finished
  std::optional<RequestId> engine_id_ ABSL_GUARDED_BY(mutex_);
  bool abort_requested_ ABSL_GUARDED_BY(mutex_) = false;
  // Output not yet written: merged deltas, then the engine's Finished.
  v1::Chunk pending_ ABSL_GUARDED_BY(mutex_);
  bool has_pending_ ABSL_GUARDED_BY(mutex_) = false;
  std::optional<Finished> finished_ ABSL_GUARDED_BY(mutex_);
  std::optional<Clock::time_point> last_tokens_at_ ABSL_GUARDED_BY(mutex_);
  // The message in flight; gRPC reads it until OnWriteDone (or OnDone).
  v1::GenerateResponse response_ ABSL_GUARDED_BY(mutex_);
  bool write_in_flight_ ABSL_GUARDED_BY(mutex_) = false;
  Clock::time_point write_started_ ABSL_GUARDED_BY(mutex_);
  bool finish_called_ ABSL_GUARDED_BY(mutex_) = false;
  std::optional<Clock::time_point> stall_cancelled_at_ ABSL_GUARDED_BY(mutex_);
  bool call_done_ ABSL_GUARDED_BY(mutex_) = false;
  bool deadline_passed_ ABSL_GUARDED_BY(mutex_) = false;
  grpc::StatusCode final_code_ ABSL_GUARDED_BY(mutex_) = grpc::StatusCode::OK;
  bool recorded_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace muserve::server
