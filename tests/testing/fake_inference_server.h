// A stand-in Muserve server for tests of the client and the client commands:
// the Inference and Health services with scripted, deterministic behaviour,
// listening on 127.0.0.1 at a free port. Records every request it receives.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/server.h"
#include "muserve/v1/inference.grpc.pb.h"

namespace muserve::testing {

// What the fake does is chosen by the prompt text (Generate) or the last
// user message (Chat):
//   "fail:invalid"    INVALID_ARGUMENT, kInvalidMessage
//   "fail:exhausted"  RESOURCE_EXHAUSTED, kExhaustedMessage
//   "fail:nofinish"   streams the reply's chunks and ends OK without Finished
//   "wait"            sends one chunk "waiting", then holds the call open until
//                     the client cancels it or its deadline passes (at most
//                     10 s) and ends it with CANCELLED
//   anything else     streams the reply in chunks of 4 bytes, then Finished
// The Generate reply is "echo: " + prompt; the Chat reply is
// "reply N to " + last user message, N the number of user messages.
// While draining (SetDraining), Generate and Chat refuse every call with
// UNAVAILABLE before doing anything, as a draining muserve does; refused
// calls are counted, not recorded.
class FakeInferenceService final : public v1::Inference::Service {
 public:
  static constexpr char kInvalidMessage[] = "options.sampling.top_p must be in (0, 1], got 0";
  static constexpr char kExhaustedMessage[] = "the waiting queue is full (max_queue 4)";

  static std::string GenerateReply(const std::string& prompt) { return "echo: " + prompt; }
  static std::string ChatReply(int num_user_messages, const std::string& last_user_message) {
    return "reply " + std::to_string(num_user_messages) + " to " + last_user_message;
  }
  // The Finished event sent after `reply` streamed as `num_chunks` chunks.
  static v1::Finished MakeFinished(int prompt_size, int num_chunks);

  std::vector<v1::GenerateRequest> generate_requests() const;
  std::vector<v1::ChatRequest> chat_requests() const;
  // Number of "wait" calls that saw the client's cancellation or deadline.
  int num_waits_cancelled() const;
  void SetDraining(bool draining);
  // Generate and Chat calls refused while draining.
  int num_refused() const;

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status Chat(grpc::ServerContext* context, const v1::ChatRequest* request,
                    grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const v1::TokenizeRequest* request,
                        v1::TokenizeResponse* response) override;
  grpc::Status Detokenize(grpc::ServerContext* context, const v1::DetokenizeRequest* request,
                          v1::DetokenizeResponse* response) override;
  grpc::Status GetModelInfo(grpc::ServerContext* context, const v1::GetModelInfoRequest* request,
                            v1::ModelInfo* response) override;
  grpc::Status Abort(grpc::ServerContext* context, const v1::AbortRequest* request,
                     v1::AbortResponse* response) override;
  grpc::Status GetLoad(grpc::ServerContext* context, const v1::GetLoadRequest* request,
                       v1::Load* response) override;

 private:
  grpc::Status Respond(grpc::ServerContext* context, const std::string& trigger,
                       const std::string& reply, const std::string& request_id, int prompt_size,
                       grpc::ServerWriter<v1::GenerateResponse>* writer);

  mutable absl::Mutex mutex_;
  std::vector<v1::GenerateRequest> generate_requests_ ABSL_GUARDED_BY(mutex_);
  std::vector<v1::ChatRequest> chat_requests_ ABSL_GUARDED_BY(mutex_);
  int num_waits_cancelled_ ABSL_GUARDED_BY(mutex_) = 0;
  bool draining_ ABSL_GUARDED_BY(mutex_) = false;
  int num_refused_ ABSL_GUARDED_BY(mutex_) = 0;
};

// grpc.health.v1.Health/Check from a table: "" starts SERVING; services not
// in the table answer NOT_FOUND. Watch is left unimplemented.
class FakeHealthService final : public grpc::health::v1::Health::Service {
 public:
  FakeHealthService();
  void SetStatus(const std::string& service,
                 grpc::health::v1::HealthCheckResponse::ServingStatus status);

  grpc::Status Check(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;

 private:
  absl::Mutex mutex_;
  std::map<std::string, grpc::health::v1::HealthCheckResponse::ServingStatus> statuses_
      ABSL_GUARDED_BY(mutex_);
};

// Both fakes served on 127.0.0.1 at a port the system picks; stops on destruction.
class FakeInferenceServer {
 public:
  FakeInferenceServer();
  ~FakeInferenceServer();

  // "127.0.0.1:PORT".
  std::string target() const;
  int port() const { return port_; }
  FakeInferenceService& inference() { return inference_; }
  FakeHealthService& health() { return health_; }

 private:
  FakeInferenceService inference_;
  FakeHealthService health_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace muserve::testing
