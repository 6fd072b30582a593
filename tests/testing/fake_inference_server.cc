#include "tests/testing/fake_inference_server.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "engine/api/check.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace muserve::testing {
namespace {

using grpc::health::v1::HealthCheckResponse;

constexpr size_t kChunkBytes = 4;

v1::GenerateResponse ChunkResponse(const std::string& request_id, std::string text,
                                   int32_t token_id) {
  v1::GenerateResponse response;
  response.set_request_id(request_id);
  response.mutable_chunk()->set_text(std::move(text));
  response.mutable_chunk()->add_token_ids(token_id);
  return response;
}

}  // namespace

v1::Finished FakeInferenceService::MakeFinished(int prompt_size, int num_chunks) {
  v1::Finished finished;
  finished.set_reason(v1::FINISH_REASON_LENGTH);
  finished.mutable_usage()->set_prompt_tokens(prompt_size);
  finished.mutable_usage()->set_completion_tokens(num_chunks);
  finished.mutable_timings()->set_queue_us(11);
  finished.mutable_timings()->set_time_to_first_token_us(222);
  finished.mutable_timings()->set_total_us(3333);
  return finished;
}

grpc::Status FakeInferenceService::Respond(grpc::ServerContext* context, const std::string& trigger,
                                           const std::string& reply, const std::string& request_id,
                                           int prompt_size,
                                           grpc::ServerWriter<v1::GenerateResponse>* writer) {
  const std::string id = request_id.empty() ? "req-fake" : request_id;
  if (trigger == "fail:invalid") {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, kInvalidMessage);
  }
  if (trigger == "fail:exhausted") {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, kExhaustedMessage);
  }
  if (trigger == "wait") {
    writer->Write(ChunkResponse(id, "waiting", 0));
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!context->IsCancelled() && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (context->IsCancelled()) {
      absl::MutexLock lock(&mutex_);
      ++num_waits_cancelled_;
    }
    return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  }
  int num_chunks = 0;
  for (size_t begin = 0; begin < reply.size(); begin += kChunkBytes) {
    writer->Write(ChunkResponse(id, reply.substr(begin, kChunkBytes), num_chunks++));
  }
  if (trigger == "fail:nofinish") return grpc::Status::OK;
  v1::GenerateResponse last;
  last.set_request_id(id);
  *last.mutable_finished() = MakeFinished(prompt_size, num_chunks);
  writer->Write(last);
  return grpc::Status::OK;
}

grpc::Status FakeInferenceService::Generate(grpc::ServerContext* context,
                                            const v1::GenerateRequest* request,
                                            grpc::ServerWriter<v1::GenerateResponse>* writer) {
  {
    absl::MutexLock lock(&mutex_);
    if (draining_) {
      ++num_refused_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is draining");
    }
    generate_requests_.push_back(*request);
  }
  const std::string& prompt = request->text();
  return Respond(context, prompt, GenerateReply(prompt), request->request_id(),
                 static_cast<int>(prompt.size()), writer);
}

grpc::Status FakeInferenceService::Chat(grpc::ServerContext* context,
                                        const v1::ChatRequest* request,
                                        grpc::ServerWriter<v1::GenerateResponse>* writer) {
  {
    absl::MutexLock lock(&mutex_);
    if (draining_) {
      ++num_refused_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is draining");
    }
    chat_requests_.push_back(*request);
  }
  if (request->messages_size() == 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "messages must not be empty");
  }
  const auto& messages = request->messages();
  const int num_user = static_cast<int>(std::count_if(
      messages.begin(), messages.end(),
      [](const v1::ChatMessage& message) { return message.role() == v1::ChatMessage::ROLE_USER; }));
  const std::string& last = messages[messages.size() - 1].content();
  return Respond(context, last, ChatReply(num_user, last), request->request_id(),
                 static_cast<int>(last.size()), writer);
}

grpc::Status FakeInferenceService::Tokenize(grpc::ServerContext*,
                                            const v1::TokenizeRequest* request,
                                            v1::TokenizeResponse* response) {
  // One id per byte.
  for (unsigned char byte : request->text()) response->add_token_ids(byte);
  return grpc::Status::OK;
}

grpc::Status FakeInferenceService::Detokenize(grpc::ServerContext*,
                                              const v1::DetokenizeRequest* request,
                                              v1::DetokenizeResponse* response) {
  for (int32_t id : request->token_ids())
    response->mutable_text()->push_back(static_cast<char>(id));
  return grpc::Status::OK;
}

grpc::Status FakeInferenceService::GetModelInfo(grpc::ServerContext*,
                                                const v1::GetModelInfoRequest*,
                                                v1::ModelInfo* response) {
  response->set_model("fake-model");
  response->set_architecture("LlamaForCausalLM");
  response->set_max_context_length(2048);
  response->set_vocab_size(256);
  response->set_has_chat_template(true);
  return grpc::Status::OK;
}

grpc::Status FakeInferenceService::Abort(grpc::ServerContext*, const v1::AbortRequest* request,
                                         v1::AbortResponse* response) {
  response->set_found(request->request_id() == "req-in-flight");
  return grpc::Status::OK;
}

grpc::Status FakeInferenceService::GetLoad(grpc::ServerContext*, const v1::GetLoadRequest*,
                                           v1::Load* response) {
  response->set_running_requests(1);
  response->set_waiting_requests(2);
  response->set_serving(true);
  return grpc::Status::OK;
}

std::vector<v1::GenerateRequest> FakeInferenceService::generate_requests() const {
  absl::MutexLock lock(&mutex_);
  return generate_requests_;
}

std::vector<v1::ChatRequest> FakeInferenceService::chat_requests() const {
  absl::MutexLock lock(&mutex_);
  return chat_requests_;
}

int FakeInferenceService::num_waits_cancelled() const {
  absl::MutexLock lock(&mutex_);
  return num_waits_cancelled_;
}

void FakeInferenceService::SetDraining(bool draining) {
  absl::MutexLock lock(&mutex_);
  draining_ = draining;
}

int FakeInferenceService::num_refused() const {
  absl::MutexLock lock(&mutex_);
  return num_refused_;
}

FakeHealthService::FakeHealthService() { statuses_[""] = HealthCheckResponse::SERVING; }

void FakeHealthService::SetStatus(const std::string& service,
                                  HealthCheckResponse::ServingStatus status) {
  absl::MutexLock lock(&mutex_);
  statuses_[service] = status;
}

grpc::Status FakeHealthService::Check(grpc::ServerContext*,
                                      const grpc::health::v1::HealthCheckRequest* request,
                                      HealthCheckResponse* response) {
  absl::MutexLock lock(&mutex_);
  auto it = statuses_.find(request->service());
  if (it == statuses_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service " + request->service());
  }
  response->set_status(it->second);
  return grpc::Status::OK;
}

FakeInferenceServer::FakeInferenceServer() {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(&inference_);
  builder.RegisterService(&health_);
  server_ = builder.BuildAndStart();
  MUSERVE_CHECK(server_ != nullptr && port_ > 0);
}

FakeInferenceServer::~FakeInferenceServer() {
  // Ends calls still held open ("wait") instead of waiting for them.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

std::string FakeInferenceServer::target() const { return "127.0.0.1:" + std::to_string(port_); }

}  // namespace muserve::testing
