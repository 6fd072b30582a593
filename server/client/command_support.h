// Pieces shared by the client commands (`muserve chat`, `complete`, `health`):
// request options from plain values and the one-line texts they print. No
// flags are read here; the commands pass their values in.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "muserve/v1/inference.pb.h"
#include "server/client/call_options.h"
#include "server/client/inference_client.h"

namespace muserve::client {

// Generation options with an explicit token limit, temperature and, when
// given, seed; everything else left to the server's defaults.
v1::GenerationOptions BasicGenerationOptions(int32_t max_tokens, float temperature,
                                             std::optional<uint64_t> seed);

// Stop strings as typed on a command line: C escapes (\n, \t, \054 for a
// comma, ...) are decoded. INVALID_ARGUMENT naming the entry when one is not
// a valid escape sequence or decodes to nothing.
absl::StatusOr<std::vector<std::string>> DecodeStopStrings(const std::vector<std::string>& typed);

// Call options from --timeout-ms (unset: no deadline). INVALID_ARGUMENT
// naming the flag when it is not positive.
absl::StatusOr<CallOptions> CallOptionsFromTimeout(std::optional<int32_t> timeout_ms);

// Connects for a command: waits at most 5 s, or the call's own timeout when
// shorter.
absl::StatusOr<std::unique_ptr<InferenceClient>> ConnectForCall(const std::string& target,
                                                                const CallOptions& call);

// "INVALID_ARGUMENT: options.sampling.top_p must be in (0, 1], got 0".
std::string DescribeStatus(const absl::Status& status);

// One line for a finished stream: reason (and the stop that matched), token
// counts, timings and preemptions.
std::string DescribeFinished(const v1::Finished& finished);

}  // namespace muserve::client
