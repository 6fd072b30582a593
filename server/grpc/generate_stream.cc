#include "server/grpc/generate_stream.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/grpc/active_requests.h"
#include "server/observability/logging.h"
#include "server/observability/server_metrics.h"

namespace muserve::server {
namespace {

using Clock = GenerateStream::Clock;

// After a stall cancellation the client gets this long to take the final
// status before the stream is reset (TryCancel).
constexpr std::chrono::seconds kStallResetGrace{1};
constexpr std::chrono::milliseconds kDeadlineTolerance{50};

std::optional<Clock::time_point> SteadyDeadline(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  const auto now = std::chrono::system_clock::now();
  // gRPC reports "no deadline" as a time far in the future.
  if (deadline - now > std::chrono::hours(24 * 365)) return std::nullopt;
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(deadline - now);
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

GenerateStream::GenerateStream(grpc::CallbackServerContext* context, const StreamEnv& env,
                               std::string rpc, std::string request_id, StreamShape shape)
    : env_(env),
      rpc_(std::move(rpc)),
      request_id_(std::move(request_id)),
      shape_(shape),
      deadline_(SteadyDeadline(context)),
      context_(context) {}

GenerateStream* GenerateStream::Create(grpc::CallbackServerContext* context, const StreamEnv& env,
                                       std::string rpc, std::string request_id, StreamShape shape) {
  std::shared_ptr<GenerateStream> stream(
      new GenerateStream(context, env, std::move(rpc), std::move(request_id), shape));
  GenerateStream* raw = stream.get();
  {
    std::lock_guard lock(raw->mutex_);
    raw->self_ = stream;
  }
  bool closed = false;
  if (!env.active->Add(raw->request_id_, stream, &closed)) {
    raw->Refuse(closed ? absl::UnavailableError(
                             "the server is draining (shutting down); retry on another replica")
                       : absl::AlreadyExistsError(
                             absl::StrCat("request_id '", raw->request_id_,
                                          "' is already in flight; use a unique id per request")));
  }
  return raw;
}

bool GenerateStream::ended() {
  std::lock_guard lock(mutex_);
  return finish_called_;
}

std::optional<Clock::time_point> GenerateStream::deadline() const { return deadline_; }

void GenerateStream::Refuse(const absl::Status& status) {
  std::lock_guard lock(mutex_);
  if (finish_called_) return;
  recorded_ = true;  // never reached the engine: counted as refused, not finished
  // Recorded before Finish, so that nothing here depends on when OnDone
  // releases the stream (inside the handler gRPC defers it until the handler
  // returns, but a later caller would not have that).
  env_.metrics->RecordRefused(rpc_, status.code());
  LogEvent(spdlog::level::info, "request refused",
           {{"id", request_id_},
            {"rpc", rpc_},
            {"code", absl::StatusCodeToString(status.code())},
            {"error", std::string(status.message())}});
  final_code_ = static_cast<grpc::StatusCode>(status.code());
  FinishLocked(grpc::Status(final_code_, std::string(status.message())));
}

void GenerateStream::Attach(std::shared_ptr<RequestHandle> handle) {
  std::shared_ptr<GenerateStream> self;
  {
    std::lock_guard lock(mutex_);
    handle_ = handle;
    engine_id_ = handle->id();
    if (abort_requested_) env_.loop->Abort(*engine_id_);
    self = self_;
  }
  // The listener keeps the stream alive until the engine's Finished, after
  // which it drops the handle and so the cycle handle -> listener -> stream.
  handle->SetListener([self = std::move(self)] { self->OnEngineEvent(); });
}

void GenerateStream::AbortFromClient() {
  std::lock_guard lock(mutex_);
  AbortEngineLocked();
}

void GenerateStream::CheckStall(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (context_ == nullptr || !write_in_flight_ || now - write_started_ < env_.stall_timeout) {
    return;
  }
  if (!stall_cancelled_at_) {
    stall_cancelled_at_ = now;
    AbortEngineLocked();
    if (!finish_called_) {
      final_code_ = grpc::StatusCode::CANCELLED;
      FinishLocked(grpc::Status(
          grpc::StatusCode::CANCELLED,
          absl::StrCat("the client stopped reading: a response waited more than ",
                       env_.stall_timeout.count(), " ms to be sent; request cancelled")));
    }
  } else if (now - *stall_cancelled_at_ >= kStallResetGrace) {
    context_->TryCancel();
  }
}

void GenerateStream::OnEngineEvent() {
  RequestRecord record;
  bool emit = false;
  {
    std::lock_guard lock(mutex_);
    DrainHandleLocked();
    PumpLocked();
    emit = TakeRecordLocked(record);
  }
  if (emit) Emit(record);
}

void GenerateStream::DrainHandleLocked() {
  while (handle_ != nullptr) {
    std::optional<RequestHandle::Event> event = handle_->TryNext();
    if (!event) return;
    if (auto* delta = std::get_if<Delta>(&*event)) {
      if (!delta->token_ids.empty()) {
        const Clock::time_point now = Clock::now();
        if (last_tokens_at_) {
          env_.metrics->RecordInterTokenLatency(Seconds(now - *last_tokens_at_),
                                                static_cast<int32_t>(delta->token_ids.size()));
        }
        last_tokens_at_ = now;
      }
      DeltaToChunk(*delta, shape_, &pending_);  // appends to what is pending
      has_pending_ = has_pending_ || !pending_.text().empty() || pending_.token_ids_size() > 0 ||
                     pending_.logprobs_size() > 0;
    } else {
      finished_ = std::get<Finished>(std::move(*event));
      handle_.reset();
    }
  }
}

void GenerateStream::PumpLocked() {
  if (context_ == nullptr || finish_called_ || write_in_flight_) return;
  if (has_pending_ && (shape_.stream || finished_)) {
    response_.Clear();
    response_.set_request_id(request_id_);
    response_.mutable_chunk()->Swap(&pending_);
    pending_.Clear();
    has_pending_ = false;
    write_in_flight_ = true;
    write_started_ = Clock::now();
    StartWrite(&response_);
    return;
  }
  if (finished_) {
    response_.Clear();
    response_.set_request_id(request_id_);
    FinishedToProto(*finished_, response_.mutable_finished());
    write_in_flight_ = true;
    write_started_ = Clock::now();
    MarkFinishCalledLocked();
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
  }
}

void GenerateStream::FinishLocked(const grpc::Status& status) {
  MarkFinishCalledLocked();
  Finish(status);
}

void GenerateStream::MarkFinishCalledLocked() {
  finish_called_ = true;
  // The id is free again as soon as the outcome is decided: a client that
  // has seen the end of its stream may reuse it at once. The drain, too,
  // only waits for streams whose outcome is still open.
  env_.active->Remove(request_id_, this);
}

void GenerateStream::AbortEngineLocked() {
  if (finished_) return;
  if (engine_id_) {
    env_.loop->Abort(*engine_id_);
  } else {
    abort_requested_ = true;  // applied by Attach
  }
}

void GenerateStream::OnWriteDone(bool ok) {
  std::lock_guard lock(mutex_);
  write_in_flight_ = false;
  if (ok) {
    PumpLocked();
    return;
  }
  // The stream broke (the client went away): nobody will read the rest.
  AbortEngineLocked();
  if (!finish_called_) {
    final_code_ = grpc::StatusCode::CANCELLED;
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the stream to the client broke"));
  }
}

void GenerateStream::OnCancel() {
  std::lock_guard lock(mutex_);
  // Cancelled by the client, by its deadline, or by our stall TryCancel.
  // gRPC's deadline timer may fire a little before the wall clock reaches
  // the deadline, hence the tolerance.
  if (context_ != nullptr &&
      context_->deadline() <= std::chrono::system_clock::now() + kDeadlineTolerance) {
    deadline_passed_ = true;
  }
  AbortEngineLocked();
  if (finish_called_) return;  // the outcome (and its code) was already decided
  final_code_ =
      deadline_passed_ ? grpc::StatusCode::DEADLINE_EXCEEDED : grpc::StatusCode::CANCELLED;
  FinishLocked(grpc::Status(final_code_, "the call was cancelled"));
}

void GenerateStream::OnDone() {
  RequestRecord record;
  bool emit = false;
  std::shared_ptr<GenerateStream> keep;
  {
    std::lock_guard lock(mutex_);
    call_done_ = true;
    context_ = nullptr;
    AbortEngineLocked();  // no-op when the engine already finished
    keep = std::move(self_);
    emit = TakeRecordLocked(record);
    env_.active->Forget(this);
  }
  if (emit) Emit(record);
  // `keep` may hold the last reference: nothing touches members after this.
}

bool GenerateStream::TakeRecordLocked(RequestRecord& record) {
  if (recorded_ || !call_done_ || !finished_) return false;
  recorded_ = true;
  record.request_id = request_id_;
  record.rpc = rpc_;
  record.finish_reason =
      std::string(deadline_passed_ ? "deadline" : FinishReasonLabel(finished_->reason));
  record.code = static_cast<absl::StatusCode>(final_code_);
  record.prompt_tokens = finished_->usage.prompt_tokens;
  record.completion_tokens = finished_->usage.completion_tokens;
  record.cached_prompt_tokens = finished_->usage.cached_prompt_tokens;
  const Timings& t = finished_->timings;
  if (t.first_scheduled) record.queue_seconds = Seconds(*t.first_scheduled - t.arrived);
  if (t.first_token) record.time_to_first_token_seconds = Seconds(*t.first_token - t.arrived);
  record.e2e_seconds = Seconds(t.finished - t.arrived);
  record.num_preemptions = finished_->num_preemptions;
  return true;
}

void GenerateStream::Emit(const RequestRecord& record) {
  env_.metrics->RecordFinished(record);
  LogRequestFinished(record);
}

}  // namespace muserve::server
