// MetricsEndpoint: serves GET /metrics (Prometheus text exposition format)
// on its own HTTP listener (civetweb, through prometheus::Exposer), apart from
// the gRPC port.
//
// One scrape renders every collectable given to Start, in order, into one
// response; their family names must be distinct (ServerMetrics's registry and
// load collector are). Typical use:
//   auto metrics = std::make_unique<ServerMetrics>(registry, [&loop] { return loop.GetLoad(); });
//   auto endpoint = MetricsEndpoint::Start("0.0.0.0:9090", metrics->Collectables());
// The endpoint keeps the collectables alive; destroy it (stops the listener
// and waits for scrapes in progress) before what their callbacks read, or
// rely on ~ServerMetrics detaching its load callback.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/registry.h"

namespace prometheus {
class Exposer;
}

namespace muserve::server {

class MetricsEndpoint {
 public:
  // Listens on `host_port`: "HOST:PORT", "[IPV6]:PORT" or ":PORT" (all
  // interfaces); PORT in 0..65535, 0 picks a free port (see port()).
  // InvalidArgument for a malformed address, Unavailable when it cannot be
  // bound (port in use, address not local); both name the address. Never throws.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& host_port,
      std::vector<std::shared_ptr<prometheus::Collectable>> collectables);
  // Serves `registry` alone (no engine load families).
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& host_port, std::shared_ptr<prometheus::Registry> registry);

  // Stops listening and waits for scrapes in progress; takes up to 2 s
  // (civetweb's accept loop polls with that period).
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  int port() const { return port_; }  // the bound port

 private:
  MetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer,
                  std::vector<std::shared_ptr<prometheus::Collectable>> collectables, int port);

  // Declared before exposer_ so that the exposer, which holds them weakly,
  // is destroyed first.
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
};

}  // namespace muserve::server
