// A client of a running Muserve server: the Inference service and the standard
// health service over one insecure channel.
//
// Every method blocks until its call ends. Failures come back as absl::Status
// with the gRPC code kept (the two code sets are the same) and the server's
// message, so callers can tell INVALID_ARGUMENT (fix the request) from
// RESOURCE_EXHAUSTED or UNAVAILABLE (retry later). One InferenceClient may be
// used from several threads at once (gRPC stubs are thread-safe).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/channel.h"
#include "muserve/v1/inference.grpc.pb.h"
#include "server/client/call_options.h"

namespace muserve::client {

// The gRPC status as an absl::Status with the same code and message. The one
// place the client converts statuses.
absl::Status FromGrpcStatus(const grpc::Status& status);

// Called with each chunk of a streamed reply, in the order the server sent them.
using ChunkCallback = std::function<void(const v1::Chunk&)>;

class InferenceClient {
 public:
  // Opens an insecure channel to `target` ("host:port", or any gRPC target
  // such as "dns:///muserve.ns.svc:50051" or "ipv4:10.0.0.1:50051,10.0.0.2:50051")
  // and waits up to `timeout` for it to connect. A target that resolves to
  // several replicas gets round_robin balancing, so calls spread over all of
  // them instead of pinning to the first. UNAVAILABLE when it does not
  // connect, naming the target; INVALID_ARGUMENT for an empty target.
  static absl::StatusOr<std::unique_ptr<InferenceClient>> Connect(const std::string& target,
                                                                  absl::Duration timeout);

  // A client over an existing channel (shared_ptr: gRPC's channel type).
  explicit InferenceClient(std::shared_ptr<grpc::Channel> channel);

  // Streams one Generate or Chat call: `on_chunk` sees every chunk in order,
  // and the result is the stream's Finished event. Fails with the call's
  // status, or INTERNAL when the server breaks the stream's contract (no
  // Finished event, or events after it).
  absl::StatusOr<v1::Finished> Generate(const v1::GenerateRequest& request,
                                        const ChunkCallback& on_chunk,
                                        const CallOptions& options = {});
  absl::StatusOr<v1::Finished> Chat(const v1::ChatRequest& request, const ChunkCallback& on_chunk,
                                    const CallOptions& options = {});

  absl::StatusOr<v1::ModelInfo> GetModelInfo(const CallOptions& options = {});
  absl::StatusOr<v1::Load> GetLoad(const CallOptions& options = {});
  absl::StatusOr<v1::TokenizeResponse> Tokenize(const v1::TokenizeRequest& request,
                                                const CallOptions& options = {});
  absl::StatusOr<v1::DetokenizeResponse> Detokenize(const v1::DetokenizeRequest& request,
                                                    const CallOptions& options = {});
  // Whether a request with this id was in flight (and is now ending).
  absl::StatusOr<bool> Abort(const std::string& request_id, const CallOptions& options = {});

  // grpc.health.v1.Health/Check for `service` ("" is the server as a whole).
  // An unknown service fails with NOT_FOUND.
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> CheckHealth(
      const std::string& service = "", const CallOptions& options = {});

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> inference_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace muserve::client
