#include "server/grpc/inference_server.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/observability/logging.h"

namespace muserve::server {
namespace {

constexpr const char* kServiceName = "muserve.v1.Inference";

}  // namespace

InferenceServer::InferenceServer(const ServerOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<InferenceServer>> InferenceServer::Start(
    const ServerOptions& options) {
  std::unique_ptr<InferenceServer> server(new InferenceServer(options));
  server->registry_ = std::make_shared<prometheus::Registry>();
  InferenceServer* raw = server.get();
  server->metrics_ = std::make_unique<ServerMetrics>(server->registry_, [raw] {
    // Scrapes run on the endpoint's threads; Shutdown clears the model under
    // this lock before destroying it.
    std::lock_guard lock(raw->load_mutex_);
    ServingModel* model = raw->state_.model.load();
    return model != nullptr ? model->loop().GetLoad() : LoadSnapshot{};
  });
  if (options.metrics_port >= 0) {
    auto endpoint = MetricsEndpoint::Start(absl::StrCat(options.host, ":", options.metrics_port),
                                           server->metrics_->Collectables());
    if (!endpoint.ok()) return endpoint.status();
    server->metrics_endpoint_ = std::move(*endpoint);
  }

  server->service_ = std::make_unique<InferenceService>(
      server->state_, *server->metrics_, server->active_, options.stream_stall_timeout);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(options.host, ":", options.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &server->port_);
  builder.RegisterService(server->service_.get());
  // Our own size check answers INVALID_ARGUMENT naming the limit; gRPC's
  // limit sits well above it so that it rarely speaks first.
  const size_t limit = options.model.max_request_bytes;
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<size_t>(std::max<size_t>(4 * limit, 64 << 20), INT32_MAX)));
  // No GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS: its default, infinite, lets a
  // stream of any length finish on the old connection.
  if (options.max_connection_age.count() > 0) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_MS,
        static_cast<int>(std::min<int64_t>(options.max_connection_age.count(), INT32_MAX)));
  }
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, " (in use, or not a local address?)"));
  }
  server->SetHealth(false);
  server->watchdog_ = std::thread([raw] { raw->WatchStalls(); });
  return server;
}

InferenceServer::~InferenceServer() { Shutdown(); }

int InferenceServer::metrics_port() const {
  return metrics_endpoint_ != nullptr ? metrics_endpoint_->port() : -1;
}

void InferenceServer::SetHealth(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);  // the server as a whole ("")
  health->SetServingStatus(kServiceName, serving);
  metrics_->SetServing(serving);
}

absl::Status InferenceServer::LoadModel() {
  const auto start = std::chrono::steady_clock::now();
  auto model = ServingModel::Load(options_.model);
  if (!model.ok()) return model.status();
  if (absl::Status warm = (*model)->WarmUp(); !warm.ok()) return warm;
  model_ = std::move(*model);
  state_.model.store(model_.get());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const v1::ModelInfo& info = model_->info();
  LogEvent(spdlog::level::info, "model ready",
           {{"model", info.model()},
            {"architecture", info.architecture()},
            {"dtype", info.dtype()},
            {"device", info.device()},
            {"tensor_parallel_size", int64_t{info.tensor_parallel_size()}},
            {"context", int64_t{info.max_context_length()}},
            {"kv_blocks", int64_t{info.kv_num_blocks()}},
            {"kv_block_size", int64_t{info.kv_block_size()}},
            {"kv_capacity_tokens", info.kv_capacity_tokens()},
            {"max_num_seqs", int64_t{info.max_batch_size()}},
            {"max_num_batched_tokens", int64_t{info.max_batched_tokens()}},
            {"max_queue", int64_t{info.max_queue()}},
            {"prefix_caching", info.prefix_caching()},
            {"load_seconds", seconds}});
  if (!state_.draining.load()) SetHealth(true);
  return absl::OkStatus();
}

bool InferenceServer::Drain(std::chrono::milliseconds timeout) {
  state_.draining.store(true);
  active_.Close();
  SetHealth(false);
  LogEvent(spdlog::level::info, "draining",
           {{"in_flight", static_cast<int64_t>(active_.size())},
            {"timeout_ms", static_cast<int64_t>(timeout.count())}});
  return active_.WaitUntilEmpty(std::chrono::steady_clock::now() + timeout);
}

void InferenceServer::Shutdown() {
  {
    std::lock_guard lock(mutex_);
    if (shutting_down_) return;
    shutting_down_ = true;
  }
  stop_watchdog_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  state_.draining.store(true);
  if (server_ != nullptr) {
    SetHealth(false);
    // Open calls are cancelled (OnCancel aborts their requests); handlers
    // and reactions finish before Wait returns.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
  }
  // Stopping the loop sends every request's Finished; the listeners record
  // them, so metrics outlive the model.
  {
    std::lock_guard lock(load_mutex_);
    state_.model.store(nullptr);
  }
  model_.reset();
  metrics_endpoint_.reset();
}

void InferenceServer::WatchStalls() {
  const auto period = std::clamp(options_.stream_stall_timeout / 4, std::chrono::milliseconds(10),
                                 std::chrono::milliseconds(250));
  std::unique_lock lock(mutex_);
  while (!stop_watchdog_.wait_for(lock, period, [this] { return shutting_down_; })) {
    lock.unlock();
    const auto now = std::chrono::steady_clock::now();
    for (const auto& stream : active_.Snapshot()) stream->CheckStall(now);
    lock.lock();
  }
}

}  // namespace muserve::server
