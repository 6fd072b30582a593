#include "server/client/inference_client.h"

#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace muserve::client {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// round_robin keeps a connection to every address the target resolves to and
// sends each call to the next one; gRPC's default, pick_first, would send all
// calls over one long-lived connection to one replica. No client-side health
// checking here: `muserve health` must reach replicas that are NOT_SERVING.
// Instead, Inference calls refused with UNAVAILABLE (a draining or loading
// replica) are retried, and round_robin sends the retry to the next replica.
// That is safe: such a replica refuses a call before doing any work, and gRPC
// never retries a call once a response has arrived. The policy is the one
// docs/operations.md ("Load balancing") gives to other clients.
constexpr char kServiceConfig[] = R"({
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [{"service": "muserve.v1.Inference"}],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.1s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
})";

// Sets up `context` for one call and keeps `options.canceller` attached to it
// for the scope's lifetime.
class ScopedCall {
 public:
  ScopedCall(const CallOptions& options, grpc::ClientContext& context)
      : canceller_(options.canceller) {
    ApplyDeadline(options, context);
    if (canceller_ != nullptr) canceller_->Attach(&context);
  }
  ~ScopedCall() {
    if (canceller_ != nullptr) canceller_->Detach();
  }
  ScopedCall(const ScopedCall&) = delete;
  ScopedCall& operator=(const ScopedCall&) = delete;

 private:
  CallCanceller* canceller_;
};

// Reads a Generate/Chat response stream to its end: chunks go to `on_chunk`,
// and the one Finished event, which must be last, is the result.
absl::StatusOr<v1::Finished> ReadStream(grpc::ClientContext& context,
                                        grpc::ClientReader<v1::GenerateResponse>& reader,
                                        const ChunkCallback& on_chunk) {
  std::optional<v1::Finished> finished;
  absl::Status contract;
  v1::GenerateResponse response;
  while (reader.Read(&response)) {
    if (!contract.ok()) continue;  // draining after a broken contract
    if (finished.has_value()) {
      contract = absl::InternalError("server sent an event after the finished event");
    } else if (response.has_chunk()) {
      if (on_chunk) on_chunk(response.chunk());
    } else if (response.has_finished()) {
      finished = std::move(*response.mutable_finished());
    } else {
      contract = absl::InternalError("server sent a response with neither chunk nor finished");
    }
    if (!contract.ok()) context.TryCancel();
  }
  const grpc::Status status = reader.Finish();
  if (!contract.ok()) return contract;
  if (!status.ok()) return FromGrpcStatus(status);
  if (!finished.has_value()) {
    return absl::InternalError("server ended the stream without a finished event");
  }
  return *std::move(finished);
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  // grpc::StatusCode and absl::StatusCode share their values (0..16).
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::StatusOr<std::unique_ptr<InferenceClient>> InferenceClient::Connect(const std::string& target,
                                                                          absl::Duration timeout) {
  if (target.empty()) return absl::InvalidArgumentError("target must be host:port, got \"\"");
  grpc::ChannelArguments arguments;
  arguments.SetServiceConfigJSON(kServiceConfig);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), arguments);
  const auto deadline = std::chrono::system_clock::now() + absl::ToChronoNanoseconds(timeout);
  if (!channel->WaitForConnected(deadline)) {
    return absl::UnavailableError(
        absl::StrCat("could not connect to ", target, " within ", absl::FormatDuration(timeout)));
  }
  return std::make_unique<InferenceClient>(std::move(channel));
}

InferenceClient::InferenceClient(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)),
      inference_(v1::Inference::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

absl::StatusOr<v1::Finished> InferenceClient::Generate(const v1::GenerateRequest& request,
                                                       const ChunkCallback& on_chunk,
                                                       const CallOptions& options) {
  grpc::ClientContext context;
  ScopedCall call(options, context);
  auto reader = inference_->Generate(&context, request);
  return ReadStream(context, *reader, on_chunk);
}

absl::StatusOr<v1::Finished> InferenceClient::Chat(const v1::ChatRequest& request,
                                                   const ChunkCallback& on_chunk,
                                                   const CallOptions& options) {
  grpc::ClientContext context;
  ScopedCall call(options, context);
  auto reader = inference_->Chat(&context, request);
  return ReadStream(context, *reader, on_chunk);
}

absl::StatusOr<v1::ModelInfo> InferenceClient::GetModelInfo(const CallOptions& options) {
  grpc::ClientContext context;
  ScopedCall call(options, context);
  v1::ModelInfo info;
  const grpc::Status status = inference_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info);
  if (!status.ok()) return FromGrpcStatus(status);
  return info;
}

absl::StatusOr<v1::Load> InferenceClient::GetLoad(const CallOptions& options) {
  grpc::ClientContext context;
  ScopedCall call(options, context);
  v1::Load load;
  const grpc::Status status = inference_->GetLoad(&context, v1::GetLoadRequest(), &load);
  if (!status.ok()) return FromGrpcStatus(status);
  return load;
}

absl::StatusOr<v1::TokenizeResponse> InferenceClient::Tokenize(const v1::TokenizeRequest& request,
                                                               const CallOptions& options) {
  grpc::ClientContext context;
  ScopedCall call(options, context);
  v1::TokenizeResponse response;
  const grpc::Status status = inference_->Tokenize(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::DetokenizeResponse> InferenceClient::Detokenize(
    const v1::DetokenizeRequest& request, const CallOptions& options) {
  grpc::ClientContext context;
  ScopedCall call(options, context);
  v1::DetokenizeResponse response;
  const grpc::Status status = inference_->Detokenize(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<bool> InferenceClient::Abort(const std::string& request_id,
                                            const CallOptions& options) {
  grpc::ClientContext context;
  ScopedCall call(options, context);
  v1::AbortRequest request;
  request.set_request_id(request_id);
  v1::AbortResponse response;
  const grpc::Status status = inference_->Abort(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.found();
}

absl::StatusOr<HealthCheckResponse::ServingStatus> InferenceClient::CheckHealth(
    const std::string& service, const CallOptions& options) {
  grpc::ClientContext context;
  ScopedCall call(options, context);
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  const grpc::Status status = health_->Check(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.status();
}

}  // namespace muserve::client
