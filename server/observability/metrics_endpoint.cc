#include "server/observability/metrics_endpoint.h"

#include <charconv>
#include <exception>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/api/absl_string_view.h"
#include "prometheus/exposer.h"

namespace muserve::server {
namespace {

// The listening_ports value civetweb expects for `host_port`, or
// InvalidArgument. Validating here keeps civetweb's own option syntax
// (comma lists, "s"/"r" suffixes for TLS and redirects) out of reach.
absl::StatusOr<std::string> ToListeningPorts(const std::string& host_port) {
  const auto invalid = [&host_port](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address \"", host_port, "\": ", AsAbsl(why),
                     " (expected HOST:PORT, [IPV6]:PORT or :PORT with PORT in 0..65535)"));
  };
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) return invalid("no port");
  const std::string_view host = std::string_view(host_port).substr(0, colon);
  const std::string_view port = std::string_view(host_port).substr(colon + 1);
  int port_number = 0;
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (port.empty() || error != std::errc() || end != port.data() + port.size() || port_number < 0 ||
      port_number > 65535) {
    return invalid("bad port");
  }
  if (host.find_first_of(", \t") != std::string_view::npos) return invalid("bad host");
  if (host.starts_with('[') != host.ends_with(']')) return invalid("unbalanced brackets");
  if (host.empty()) return std::to_string(port_number);
  // civetweb resolves only numeric hosts reliably; "localhost" is common enough to map.
  if (host == "localhost") return absl::StrCat("127.0.0.1:", port_number);
  return absl::StrCat(AsAbsl(host), ":", port_number);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& host_port, std::shared_ptr<prometheus::Registry> registry) {
  return Start(host_port,
               std::vector<std::shared_ptr<prometheus::Collectable>>{std::move(registry)});
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& host_port,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  absl::StatusOr<std::string> listening_ports = ToListeningPorts(host_port);
  if (!listening_ports.ok()) return listening_ports.status();
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(*listening_ports, /*num_threads=*/2);
  } catch (const std::exception& e) {
    // civetweb reports every bind failure the same way ("null context ...").
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", host_port,
                                               ": the address is in use or not local (", e.what(),
                                               ")"));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", host_port, ": no listening port"));
  }
  for (const auto& collectable : collectables) {
    if (collectable != nullptr) exposer->RegisterCollectable(collectable);
  }
  return std::unique_ptr<MetricsEndpoint>(
      new MetricsEndpoint(std::move(exposer), std::move(collectables), ports.front()));
}

MetricsEndpoint::MetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer,
                                 std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
                                 int port)
    : collectables_(std::move(collectables)), exposer_(std::move(exposer)), port_(port) {}

MetricsEndpoint::~MetricsEndpoint() = default;

}  // namespace muserve::server
