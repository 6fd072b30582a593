#include "server/grpc/inference_service.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/api/absl_string_view.h"
#include "engine/tokenizer/tokenizer.h"
#include "server/observability/logging.h"

namespace muserve::server {
namespace {

// Ends a stream that never got a GenerateStream (no model yet, draining, a
// bad request): Finish right away, delete on OnDone.
class RefusedWriter final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  explicit RefusedWriter(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

std::string GenerateRequestId() {
  thread_local absl::BitGen gen;
  return absl::StrFormat("req-%016x", absl::Uniform<uint64_t>(gen));
}

InferenceService::InferenceService(ServingState& state, ServerMetrics& metrics,
                                   ActiveRequests& active, std::chrono::milliseconds stall_timeout)
    : state_(state), metrics_(metrics), active_(active), stall_timeout_(stall_timeout) {}

absl::StatusOr<ServingModel*> InferenceService::AcceptingModel() const {
  if (state_.draining.load()) {
    return absl::UnavailableError(
        "the server is draining (shutting down); retry on another replica");
  }
  ServingModel* model = state_.model.load();
  if (model == nullptr) return absl::UnavailableError("the model is still loading; retry later");
  return model;
}

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Start(
    grpc::CallbackServerContext* context, std::string_view rpc, std::string_view given_id,
    ServingModel* model, absl::StatusOr<ConvertedRequest> converted) {
  if (!converted.ok()) {
    metrics_.RecordRefused(rpc, converted.status().code());
    LogEvent(spdlog::level::info, "request refused",
             {{"id", given_id},
              {"rpc", rpc},
              {"code", absl::StatusCodeToString(converted.status().code())},
              {"error", std::string(converted.status().message())}});
    return new RefusedWriter(ToGrpcStatus(converted.status()));
  }
  std::string id = converted->request_id.empty() ? GenerateRequestId() : converted->request_id;
  const StreamEnv env{&model->loop(), &metrics_, &active_, stall_timeout_};
  GenerateStream* stream =
      GenerateStream::Create(context, env, std::string(rpc), std::move(id), converted->shape);
  if (stream->ended()) return stream;
  converted->engine.deadline = stream->deadline();
  auto handle = model->loop().Submit(std::move(converted->engine));
  if (!handle.ok()) {
    stream->Refuse(handle.status());
    return stream;
  }
  stream->Attach(*std::move(handle));
  return stream;
}

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  auto model = AcceptingModel();
  if (!model.ok())
    return Start(context, "Generate", request->request_id(), nullptr, model.status());
  return Start(context, "Generate", request->request_id(), *model,
               ConvertGenerateRequest(*request, (*model)->tokenizer(), (*model)->limits()));
}

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Chat(
    grpc::CallbackServerContext* context, const v1::ChatRequest* request) {
  auto model = AcceptingModel();
  if (!model.ok()) return Start(context, "Chat", request->request_id(), nullptr, model.status());
  return Start(context, "Chat", request->request_id(), *model,
               ConvertChatRequest(*request, (*model)->tokenizer(), (*model)->chat_template(),
                                  (*model)->limits()));
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* context,
                                                     const v1::TokenizeRequest* request,
                                                     v1::TokenizeResponse* response) {
  ServingModel* model = state_.model.load();
  if (model == nullptr)
    return FinishUnary(context, absl::UnavailableError("the model is still loading"));
  if (request->text().size() > model->limits().max_request_bytes) {
    return FinishUnary(context, absl::InvalidArgumentError(absl::StrCat(
                                    "text is ", request->text().size(), " bytes; the limit is ",
                                    model->limits().max_request_bytes, " (--max-request-bytes)")));
  }
  if (!IsValidUtf8(request->text())) {
    return FinishUnary(context, absl::InvalidArgumentError("text must be valid UTF-8"));
  }
  const bool add_special = !request->has_add_special_tokens() || request->add_special_tokens();
  const std::vector<TokenId> ids = model->tokenizer().Encode(request->text(), add_special);
  response->mutable_token_ids()->Assign(ids.begin(), ids.end());
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::Detokenize(grpc::CallbackServerContext* context,
                                                       const v1::DetokenizeRequest* request,
                                                       v1::DetokenizeResponse* response) {
  ServingModel* model = state_.model.load();
  if (model == nullptr)
    return FinishUnary(context, absl::UnavailableError("the model is still loading"));
  const int32_t vocab = model->tokenizer().vocab_size();
  for (int i = 0; i < request->token_ids_size(); ++i) {
    const int32_t id = request->token_ids(i);
    if (id < 0 || id >= vocab) {
      return FinishUnary(context, absl::InvalidArgumentError(
                                      absl::StrCat("token_ids[", i, "] = ", id,
                                                   " is outside the vocabulary [0, ", vocab, ")")));
    }
  }
  const bool skip_special = !request->has_skip_special_tokens() || request->skip_special_tokens();
  const std::vector<TokenId> ids(request->token_ids().begin(), request->token_ids().end());
  response->set_text(model->tokenizer().Decode(ids, skip_special));
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::GetModelInfo(grpc::CallbackServerContext* context,
                                                         const v1::GetModelInfoRequest*,
                                                         v1::ModelInfo* response) {
  ServingModel* model = state_.model.load();
  if (model == nullptr)
    return FinishUnary(context, absl::UnavailableError("the model is still loading"));
  *response = model->info();
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::Abort(grpc::CallbackServerContext* context,
                                                  const v1::AbortRequest* request,
                                                  v1::AbortResponse* response) {
  std::shared_ptr<GenerateStream> stream = active_.Find(request->request_id());
  if (stream != nullptr) stream->AbortFromClient();
  response->set_found(stream != nullptr);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::GetLoad(grpc::CallbackServerContext* context,
                                                    const v1::GetLoadRequest*, v1::Load* response) {
  ServingModel* model = state_.model.load();
  if (model != nullptr) {
    const LoadSnapshot load = model->loop().GetLoad();
    response->set_running_requests(load.running);
    response->set_waiting_requests(load.waiting);
    response->set_kv_blocks_total(load.kv_blocks_total);
    const int32_t used = load.kv_blocks_total - load.kv_blocks_free;
    response->set_kv_blocks_used(used);
    response->set_kv_usage(
        load.kv_blocks_total > 0 ? static_cast<double>(used) / load.kv_blocks_total : 0.0);
    response->set_num_preemptions(load.num_preemptions);
  }
  response->set_serving(model != nullptr && !state_.draining.load());
  return FinishUnary(context, absl::OkStatus());
}

}  // namespace muserve::server
