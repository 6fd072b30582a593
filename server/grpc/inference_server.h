// InferenceServer: the process's serving side put together. Start() opens the
// gRPC port (health NOT_SERVING) and the metrics endpoint; LoadModel() loads
// and warms the model up and turns health to SERVING; Drain() turns it back
// to NOT_SERVING, refuses new work with UNAVAILABLE and waits for the streams
// in flight; the destructor (or Shutdown) ends everything in order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/registry.h"
#include "server/grpc/active_requests.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/serving_model.h"
#include "server/observability/metrics_endpoint.h"
#include "server/observability/server_metrics.h"

namespace muserve::server {

struct ServerOptions {
  std::string host = "0.0.0.0";
  int port = 50051;  // 0 picks a free port (see InferenceServer::port)
  // /metrics: 0 picks a free port, -1 serves none.
  int metrics_port = 9464;
  ServingModelOptions model;
  // A stream whose client has not taken a response for this long is
  // cancelled (its request aborted).
  std::chrono::milliseconds stream_stall_timeout{30000};
  // A client connection is closed gracefully (GOAWAY: calls in flight run to
  // their end, new ones go over a new connection) after about this long, so
  // that clients balancing over a DNS name re-resolve it and find replicas
  // added since they connected. Zero (or less): connections are never
  // closed for their age.
  std::chrono::milliseconds max_connection_age{std::chrono::minutes(5)};
};

class InferenceServer {
 public:
  // Binds the ports and starts serving health (NOT_SERVING), reflection and
  // metrics. Errors name the address that could not be bound.
  static absl::StatusOr<std::unique_ptr<InferenceServer>> Start(const ServerOptions& options);
  ~InferenceServer();  // Shutdown()

  // Loads options.model, warms it up, then reports SERVING.
  absl::Status LoadModel();

  // Stops taking new generation requests (UNAVAILABLE) and reports
  // NOT_SERVING, then waits up to `timeout` for the streams in flight to end.
  // True when they all did.
  bool Drain(std::chrono::milliseconds timeout);

  // Ends every call still open (cancelled), stops the engine and the
  // listeners. Idempotent.
  void Shutdown();

  int port() const { return port_; }
  // The bound metrics port, or -1 when metrics are off.
  int metrics_port() const;
  // Streams in flight.
  size_t num_active() const { return active_.size(); }
  ServingModel* model() { return state_.model.load(); }

 private:
  explicit InferenceServer(const ServerOptions& options);
  void SetHealth(bool serving);
  void WatchStalls();

  const ServerOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  ServingState state_;
  ActiveRequests active_;
  std::unique_ptr<ServingModel> model_;
  std::unique_ptr<InferenceService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;

  std::mutex load_mutex_;  // held while a scrape reads the model's load
  std::mutex mutex_;
  std::condition_variable stop_watchdog_;
  bool shutting_down_ = false;  // guarded by mutex_
  std::thread watchdog_;
};

}  // namespace muserve::server
