#include "server/api/response_conversion.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>

namespace muserve::server {
namespace {

int64_t MicrosBetween(std::chrono::steady_clock::time_point from,
                      std::chrono::steady_clock::time_point to) {
  return std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::microseconds>(to - from).count());
}

int64_t MicrosSince(std::chrono::steady_clock::time_point from,
                    const std::optional<std::chrono::steady_clock::time_point>& to) {
  return to.has_value() ? MicrosBetween(from, *to) : 0;
}

}  // namespace

void DeltaToChunk(const Delta& delta, const StreamShape& shape, v1::Chunk* chunk) {
  chunk->mutable_text()->append(delta.text);
  if (shape.include_token_ids) {
    chunk->mutable_token_ids()->Add(delta.token_ids.begin(), delta.token_ids.end());
  }
  for (const TokenLogprob& logprob : delta.logprobs) {
    v1::TokenLogprob* out = chunk->add_logprobs();
    out->set_token_id(logprob.token);
    out->set_logprob(logprob.logprob);
    for (const auto& [token, value] : logprob.top) {
      v1::TopLogprob* top = out->add_top();
      top->set_token_id(token);
      top->set_logprob(value);
    }
  }
}

v1::FinishReason FinishReasonToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos:
    case FinishReason::kStopToken:
    case FinishReason::kStopString:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kAborted:
      return v1::FINISH_REASON_CANCELLED;
    case FinishReason::kDeadline:
      return v1::FINISH_REASON_DEADLINE;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

void FinishedToProto(const Finished& finished, v1::Finished* out) {
  out->Clear();
  out->set_reason(FinishReasonToProto(finished.reason));
  switch (finished.reason) {
    case FinishReason::kEos:
      if (finished.matched_stop_token.has_value()) {
        out->mutable_stop()->set_eos_token_id(*finished.matched_stop_token);
      }
      break;
    case FinishReason::kStopToken:
      if (finished.matched_stop_token.has_value()) {
        out->mutable_stop()->set_stop_token_id(*finished.matched_stop_token);
      }
      break;
    case FinishReason::kStopString:
      if (finished.matched_stop_string.has_value()) {
        out->mutable_stop()->set_stop_string(*finished.matched_stop_string);
      }
      break;
    case FinishReason::kLength:
    case FinishReason::kAborted:
    case FinishReason::kDeadline:
      break;
  }
  v1::Usage* usage = out->mutable_usage();
  usage->set_prompt_tokens(finished.usage.prompt_tokens);
  usage->set_completion_tokens(finished.usage.completion_tokens);
  usage->set_cached_prompt_tokens(finished.usage.cached_prompt_tokens);
  const Timings& timings = finished.timings;
  v1::Timings* proto_timings = out->mutable_timings();
  proto_timings->set_queue_us(MicrosSince(timings.arrived, timings.first_scheduled));
  proto_timings->set_time_to_first_token_us(MicrosSince(timings.arrived, timings.first_token));
  proto_timings->set_total_us(MicrosBetween(timings.arrived, timings.finished));
  out->set_num_preemptions(finished.num_preemptions);
}

std::string_view FinishReasonLabel(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos:
    case FinishReason::kStopToken:
    case FinishReason::kStopString:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAborted:
      return "cancelled";
    case FinishReason::kDeadline:
      return "deadline";
  }
  return "unknown";
}

}  // namespace muserve::server
