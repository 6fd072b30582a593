// The engine's Delta and Finished to the response stream's Chunk and
// Finished, finish-reason labels, and absl -> gRPC status codes.
#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/api/grpc_status.h"
#include "server/api/response_conversion.h"

namespace muserve::server {
namespace {

using ::testing::ElementsAre;
using namespace std::chrono_literals;

Delta SampleDelta() {
  Delta delta;
  delta.text = "Hel";
  delta.token_ids = {10, 11};
  delta.logprobs = {{10, -0.5f, {{10, -0.5f}, {3, -1.25f}}}, {11, -2.0f, {}}};
  return delta;
}

TEST(DeltaToChunkTest, CopiesTextIdsAndLogprobs) {
  v1::Chunk chunk;
  DeltaToChunk(SampleDelta(), StreamShape{}, &chunk);
  EXPECT_EQ(chunk.text(), "Hel");
  EXPECT_THAT(chunk.token_ids(), ElementsAre(10, 11));
  ASSERT_EQ(chunk.logprobs_size(), 2);
  EXPECT_EQ(chunk.logprobs(0).token_id(), 10);
  EXPECT_EQ(chunk.logprobs(0).logprob(), -0.5f);
  ASSERT_EQ(chunk.logprobs(0).top_size(), 2);
  EXPECT_EQ(chunk.logprobs(0).top(1).token_id(), 3);
  EXPECT_EQ(chunk.logprobs(0).top(1).logprob(), -1.25f);
  EXPECT_EQ(chunk.logprobs(1).token_id(), 11);
  EXPECT_EQ(chunk.logprobs(1).top_size(), 0);
}

TEST(DeltaToChunkTest, LeavesOutTokenIdsWhenNotWantedButKeepsLogprobs) {
  v1::Chunk chunk;
  DeltaToChunk(SampleDelta(), StreamShape{.stream = true, .include_token_ids = false}, &chunk);
  EXPECT_EQ(chunk.text(), "Hel");
  EXPECT_EQ(chunk.token_ids_size(), 0);
  ASSERT_EQ(chunk.logprobs_size(), 2);
  EXPECT_EQ(chunk.logprobs(1).token_id(), 11);
}

TEST(DeltaToChunkTest, AppendsSoThatANonStreamingCallGathersTheWholeOutput) {
  v1::Chunk chunk;
  DeltaToChunk(SampleDelta(), StreamShape{}, &chunk);
  Delta next;
  next.text = "lo";
  next.token_ids = {12};
  DeltaToChunk(next, StreamShape{}, &chunk);
  EXPECT_EQ(chunk.text(), "Hello");
  EXPECT_THAT(chunk.token_ids(), ElementsAre(10, 11, 12));
  EXPECT_EQ(chunk.logprobs_size(), 2);
}

struct ReasonCase {
  FinishReason reason;
  v1::FinishReason proto;
  v1::StopMatch::KindCase stop_kind;
  std::string_view label;
};

class FinishReasonMappingTest : public ::testing::TestWithParam<ReasonCase> {};

TEST_P(FinishReasonMappingTest, MapsReasonStopMatchAndLabel) {
  const ReasonCase& c = GetParam();
  Finished finished;
  finished.reason = c.reason;
  if (c.reason == FinishReason::kEos || c.reason == FinishReason::kStopToken) {
    finished.matched_stop_token = 42;
  }
  if (c.reason == FinishReason::kStopString) finished.matched_stop_string = "\n\nUser:";
  v1::Finished proto;
  FinishedToProto(finished, &proto);
  EXPECT_EQ(proto.reason(), c.proto);
  EXPECT_EQ(FinishReasonToProto(c.reason), c.proto);
  EXPECT_EQ(proto.has_stop(), c.stop_kind != v1::StopMatch::KIND_NOT_SET);
  EXPECT_EQ(proto.stop().kind_case(), c.stop_kind);
  switch (c.stop_kind) {
    case v1::StopMatch::kEosTokenId:
      EXPECT_EQ(proto.stop().eos_token_id(), 42);
      break;
    case v1::StopMatch::kStopTokenId:
      EXPECT_EQ(proto.stop().stop_token_id(), 42);
      break;
    case v1::StopMatch::kStopString:
      EXPECT_EQ(proto.stop().stop_string(), "\n\nUser:");
      break;
    case v1::StopMatch::KIND_NOT_SET:
      break;
  }
  EXPECT_EQ(FinishReasonLabel(c.reason), c.label);
}

INSTANTIATE_TEST_SUITE_P(
    EveryReason, FinishReasonMappingTest,
    ::testing::Values(ReasonCase{FinishReason::kEos, v1::FINISH_REASON_STOP,
                                 v1::StopMatch::kEosTokenId, "stop"},
                      ReasonCase{FinishReason::kStopToken, v1::FINISH_REASON_STOP,
                                 v1::StopMatch::kStopTokenId, "stop"},
                      ReasonCase{FinishReason::kStopString, v1::FINISH_REASON_STOP,
                                 v1::StopMatch::kStopString, "stop"},
                      ReasonCase{FinishReason::kLength, v1::FINISH_REASON_LENGTH,
                                 v1::StopMatch::KIND_NOT_SET, "length"},
                      ReasonCase{FinishReason::kAborted, v1::FINISH_REASON_CANCELLED,
                                 v1::StopMatch::KIND_NOT_SET, "cancelled"},
                      ReasonCase{FinishReason::kDeadline, v1::FINISH_REASON_DEADLINE,
                                 v1::StopMatch::KIND_NOT_SET, "deadline"}),
    [](const auto& test_info) {
      return std::string(FinishReasonLabel(test_info.param.reason)) +
             std::to_string(test_info.index);
    });

TEST(FinishedToProtoTest, UsageTimingsInMicrosecondsAndPreemptions) {
  const auto arrived = std::chrono::steady_clock::time_point{} + 1h;
  Finished finished;
  finished.reason = FinishReason::kLength;
  finished.usage = {.prompt_tokens = 700, .completion_tokens = 324, .cached_prompt_tokens = 512};
  finished.timings.arrived = arrived;
  finished.timings.first_scheduled = arrived + 1500us;
  finished.timings.first_token = arrived + 3ms + 250us;
  finished.timings.finished = arrived + 2s;
  finished.num_preemptions = 3;
  v1::Finished proto;
  FinishedToProto(finished, &proto);
  EXPECT_EQ(proto.usage().prompt_tokens(), 700);
  EXPECT_EQ(proto.usage().completion_tokens(), 324);
  EXPECT_EQ(proto.usage().cached_prompt_tokens(), 512);
  EXPECT_EQ(proto.timings().queue_us(), 1500);
  EXPECT_EQ(proto.timings().time_to_first_token_us(), 3250);
  EXPECT_EQ(proto.timings().total_us(), 2000000);
  EXPECT_EQ(proto.num_preemptions(), 3);
}

TEST(FinishedToProtoTest, NeverScheduledOrNoTokenGivesZeroTimes) {
  const auto arrived = std::chrono::steady_clock::time_point{} + 1h;
  Finished finished;
  finished.reason = FinishReason::kAborted;
  finished.timings.arrived = arrived;
  finished.timings.finished = arrived + 40ms;
  v1::Finished proto;
  FinishedToProto(finished, &proto);
  EXPECT_EQ(proto.timings().queue_us(), 0);
  EXPECT_EQ(proto.timings().time_to_first_token_us(), 0);
  EXPECT_EQ(proto.timings().total_us(), 40000);
}

TEST(FinishedToProtoTest, OverwritesWhatTheMessageHeld) {
  v1::Finished proto;
  proto.mutable_stop()->set_stop_string("old");
  proto.set_num_preemptions(9);
  Finished finished;
  finished.reason = FinishReason::kLength;
  FinishedToProto(finished, &proto);
  EXPECT_FALSE(proto.has_stop());
  EXPECT_EQ(proto.num_preemptions(), 0);
  EXPECT_EQ(proto.reason(), v1::FINISH_REASON_LENGTH);
}

TEST(ToGrpcStatusTest, KeepsEveryCodeAndTheMessage) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  for (int code = 1; code <= 16; ++code) {
    const absl::Status status(static_cast<absl::StatusCode>(code), "why: " + std::to_string(code));
    const grpc::Status converted = ToGrpcStatus(status);
    EXPECT_EQ(static_cast<int>(converted.error_code()), code);
    EXPECT_EQ(converted.error_message(), "why: " + std::to_string(code));
  }
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("x")).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ToGrpcStatus(absl::FailedPreconditionError("x")).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace muserve::server
