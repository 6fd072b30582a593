// InferenceService: muserve.v1.Inference on gRPC's callback API. Handlers
// run on gRPC's threads: they validate and convert the request, render the
// chat template, tokenize, and hand the request to the engine loop, never
// waiting for the engine. Streaming is GenerateStream's job.
#pragma once

#include <atomic>
#include <chrono>

#include "muserve/v1/inference.grpc.pb.h"
#include "server/grpc/active_requests.h"
#include "server/grpc/generate_stream.h"
#include "server/grpc/serving_model.h"
#include "server/observability/server_metrics.h"

namespace muserve::server {

// What the handlers read to decide whether to take work. The model is set
// once it is loaded and warmed up; draining is set by the first SIGTERM.
struct ServingState {
  std::atomic<ServingModel*> model{nullptr};
  std::atomic<bool> draining{false};
};

class InferenceService final : public v1::Inference::CallbackService {
 public:
  InferenceService(ServingState& state, ServerMetrics& metrics, ActiveRequests& active,
                   std::chrono::milliseconds stall_timeout);

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;
  grpc::ServerWriteReactor<v1::GenerateResponse>* Chat(grpc::CallbackServerContext* context,
                                                       const v1::ChatRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* context,
                                  const v1::AbortRequest* request,
                                  v1::AbortResponse* response) override;
  grpc::ServerUnaryReactor* GetLoad(grpc::CallbackServerContext* context,
                                    const v1::GetLoadRequest* request, v1::Load* response) override;

 private:
  // The model when the server takes new generation work; UNAVAILABLE naming
  // the reason otherwise.
  absl::StatusOr<ServingModel*> AcceptingModel() const;
  // Starts the stream for a converted request (or refuses it).
  grpc::ServerWriteReactor<v1::GenerateResponse>* Start(grpc::CallbackServerContext* context,
                                                        std::string_view rpc,
                                                        std::string_view given_id,
                                                        ServingModel* model,
                                                        absl::StatusOr<ConvertedRequest> converted);

  ServingState& state_;
  ServerMetrics& metrics_;
  ActiveRequests& active_;
  const std::chrono::milliseconds stall_timeout_;
};

// "req-" and 16 random hex digits.
std::string GenerateRequestId();

}  // namespace muserve::server
