#include "server/client/command_support.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace muserve::client {
namespace {

std::string DescribeStop(const v1::StopMatch& stop) {
  switch (stop.kind_case()) {
    case v1::StopMatch::kEosTokenId:
      return absl::StrCat(" (end-of-sequence token ", stop.eos_token_id(), ")");
    case v1::StopMatch::kStopTokenId:
      return absl::StrCat(" (stop token ", stop.stop_token_id(), ")");
    case v1::StopMatch::kStopString:
      return absl::StrCat(" (stop string \"", absl::CEscape(stop.stop_string()), "\")");
    case v1::StopMatch::KIND_NOT_SET:
      break;
  }
  return "";
}

const char* ReasonName(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_STOP:
      return "stop";
    case v1::FINISH_REASON_LENGTH:
      return "length";
    case v1::FINISH_REASON_CANCELLED:
      return "cancelled";
    case v1::FINISH_REASON_DEADLINE:
      return "deadline";
    default:
      return "unspecified";
  }
}

}  // namespace

v1::GenerationOptions BasicGenerationOptions(int32_t max_tokens, float temperature,
                                             std::optional<uint64_t> seed) {
  v1::GenerationOptions options;
  options.mutable_stopping()->set_max_tokens(max_tokens);
  options.mutable_sampling()->set_temperature(temperature);
  if (seed) options.mutable_sampling()->set_seed(*seed);
  return options;
}

absl::StatusOr<std::vector<std::string>> DecodeStopStrings(const std::vector<std::string>& typed) {
  std::vector<std::string> decoded;
  for (size_t i = 0; i < typed.size(); ++i) {
    std::string text;
    std::string error;
    if (!absl::CUnescape(typed[i], &text, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--stop entry ", i, " (\"", typed[i], "\") is not valid: ", error));
    }
    if (text.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--stop entry ", i, " is empty"));
    }
    decoded.push_back(std::move(text));
  }
  return decoded;
}

std::string DescribeStatus(const absl::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message());
}

std::string DescribeFinished(const v1::Finished& finished) {
  const v1::Usage& usage = finished.usage();
  const v1::Timings& timings = finished.timings();
  std::string line =
      absl::StrCat("[finish: ", ReasonName(finished.reason()), DescribeStop(finished.stop()),
                   "; tokens: ", usage.prompt_tokens(), " prompt (", usage.cached_prompt_tokens(),
                   " cached), ", usage.completion_tokens(), " completion; time: queue ",
                   timings.queue_us(), " us, first token ", timings.time_to_first_token_us(),
                   " us, total ", timings.total_us(), " us");
  if (finished.num_preemptions() > 0) {
    absl::StrAppend(&line, "; preempted ", finished.num_preemptions(), " times");
  }
  absl::StrAppend(&line, "]");
  return line;
}

absl::StatusOr<CallOptions> CallOptionsFromTimeout(std::optional<int32_t> timeout_ms) {
  CallOptions call;
  if (!timeout_ms) return call;
  if (*timeout_ms <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("--timeout-ms must be > 0, got ", *timeout_ms));
  }
  call.timeout = absl::Milliseconds(*timeout_ms);
  return call;
}

absl::StatusOr<std::unique_ptr<InferenceClient>> ConnectForCall(const std::string& target,
                                                                const CallOptions& call) {
  constexpr absl::Duration kConnectTimeout = absl::Seconds(5);
  return InferenceClient::Connect(
      target, std::min(kConnectTimeout, call.timeout.value_or(kConnectTimeout)));
}

}  // namespace muserve::client
