// `muserve health`: asks a running server's health service whether it is
// serving; a scripted probe (exit 0 only for SERVING).
#include <algorithm>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/time/clock.h"
#include "server/cli/command.h"
#include "server/cli/shared_flags.h"
#include "server/client/command_support.h"
#include "server/client/inference_client.h"

ABSL_FLAG(std::string, service, "",
          "health: the service to ask about (empty: the server as a whole)");

namespace muserve::cli {
namespace {

using grpc::health::v1::HealthCheckResponse;

constexpr std::string_view kUsage = R"(Usage: muserve health [flags]

Asks a running server whether it is serving (grpc.health.v1.Health/Check) and
prints its answer: SERVING, NOT_SERVING, UNKNOWN, or SERVICE_UNKNOWN for a
service the server does not know. Exits 0 only for SERVING, 1 otherwise (with a
message on stderr when the server cannot be reached in time).

Flags:
  --target HOST:PORT   the server (default localhost:50051)
  --service NAME       the service to ask about, e.g. muserve.v1.Inference
                       (default: empty, the server as a whole)
  --timeout-ms N       time allowed for connecting and checking (default 1000)
)";

constexpr int32_t kDefaultTimeoutMs = 1000;

int RunHealth(const std::vector<std::string_view>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "muserve health: takes no arguments, got %zu\n%s", args.size(),
                 std::string(kUsage).c_str());
    return 2;
  }
  const int32_t timeout_ms = absl::GetFlag(FLAGS_timeout_ms).value_or(kDefaultTimeoutMs);
  if (timeout_ms <= 0) {
    std::fprintf(stderr, "muserve health: --timeout-ms must be > 0, got %d\n", timeout_ms);
    return 2;
  }
  const absl::Time deadline = absl::Now() + absl::Milliseconds(timeout_ms);
  auto connected =
      client::InferenceClient::Connect(absl::GetFlag(FLAGS_target), absl::Milliseconds(timeout_ms));
  if (!connected.ok()) {
    std::fprintf(stderr, "muserve health: %s\n",
                 client::DescribeStatus(connected.status()).c_str());
    return 1;
  }
  // What connecting left of the time, at least a moment.
  const absl::Duration left = std::max(deadline - absl::Now(), absl::Milliseconds(1));
  auto status =
      (*connected)->CheckHealth(absl::GetFlag(FLAGS_service), client::CallOptions{.timeout = left});
  if (status.status().code() == absl::StatusCode::kNotFound) {
    std::fprintf(stdout, "SERVICE_UNKNOWN\n");
    std::fprintf(stderr, "muserve health: %s\n", client::DescribeStatus(status.status()).c_str());
    return 1;
  }
  if (!status.ok()) {
    std::fprintf(stderr, "muserve health: %s\n", client::DescribeStatus(status.status()).c_str());
    return 1;
  }
  std::fprintf(stdout, "%s\n", HealthCheckResponse::ServingStatus_Name(*status).c_str());
  return *status == HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace

const Command& HealthCommand() {
  static const Command command{"health",
                               "ask a running server whether it is serving (exit 0 if so)",
                               kUsage,
                               {"target", "service", "timeout_ms"},
                               &RunHealth};
  return command;
}

}  // namespace muserve::cli
