// RequestRecord: what the gRPC service reports once for each request that
// reached the engine and ended, whatever the reason. ServerMetrics turns it
// into Prometheus observations and LogRequestFinished into one log line.
// Plain data: filled by the thread that finishes the call, then read only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"

namespace muserve::server {

struct RequestRecord {
  std::string request_id;
  std::string rpc;            // "Generate" or "Chat"
  std::string finish_reason;  // "stop", "length", "cancelled", "deadline"; empty when the
                              // engine never ran it
  absl::StatusCode code = absl::StatusCode::kOk;  // status the call ended with
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_prompt_tokens = 0;     // of prompt_tokens: served from the prefix cache
  std::optional<double> queue_seconds;  // absent when never scheduled
  std::optional<double> time_to_first_token_seconds;  // absent when no token
  double e2e_seconds = 0;                             // arrival to the end of the call
  int32_t num_preemptions = 0;
};

}  // namespace muserve::server
