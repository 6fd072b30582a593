// The client library against an in-process fake server: streaming, status
// mapping, deadlines, cancellation, conversations and health checks.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/client/command_support.h"
#include "server/client/conversation.h"
#include "server/client/inference_client.h"
#include "tests/testing/fake_inference_server.h"

namespace muserve::client {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::ElementsAre;
using testing::FakeInferenceServer;
using testing::FakeInferenceService;
using ::testing::HasSubstr;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto connected = InferenceClient::Connect(server_.target(), absl::Seconds(5));
    ASSERT_TRUE(connected.ok()) << connected.status();
    client_ = *std::move(connected);
  }

  static v1::GenerateRequest TextRequest(const std::string& text) {
    v1::GenerateRequest request;
    request.set_text(text);
    return request;
  }

  FakeInferenceServer server_;
  std::unique_ptr<InferenceClient> client_;
};

TEST_F(ClientTest, GenerateStreamsChunksInOrderAndReturnsFinished) {
  v1::GenerateRequest request = TextRequest("hello streaming world");
  request.set_request_id("req-1");
  request.mutable_options()->mutable_sampling()->set_temperature(0.5f);
  request.mutable_options()->mutable_stopping()->set_max_tokens(7);

  std::vector<std::string> texts;
  std::vector<int32_t> ids;
  auto finished = client_->Generate(request, [&](const v1::Chunk& chunk) {
    texts.push_back(chunk.text());
    ids.insert(ids.end(), chunk.token_ids().begin(), chunk.token_ids().end());
  });
  ASSERT_TRUE(finished.ok()) << finished.status();

  const std::string reply = FakeInferenceService::GenerateReply("hello streaming world");
  std::string joined;
  for (const std::string& text : texts) joined += text;
  EXPECT_EQ(joined, reply);
  ASSERT_EQ(texts.size(), (reply.size() + 3) / 4);
  EXPECT_EQ(texts.front(), reply.substr(0, 4));
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], static_cast<int32_t>(i));
  EXPECT_TRUE(MessageDifferencer::Equals(
      *finished, FakeInferenceService::MakeFinished(21, static_cast<int>(texts.size()))));

  // The request reaches the server unchanged.
  const auto received = server_.inference().generate_requests();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_TRUE(MessageDifferencer::Equals(received[0], request));
}

TEST_F(ClientTest, ServerErrorsKeepTheirCodeAndMessage) {
  auto invalid = client_->Generate(TextRequest("fail:invalid"), nullptr);
  EXPECT_EQ(invalid.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(invalid.status().message(), FakeInferenceService::kInvalidMessage);

  v1::ChatRequest chat;
  chat.add_messages()->set_content("fail:exhausted");
  auto exhausted = client_->Chat(chat, nullptr);
  EXPECT_EQ(exhausted.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(exhausted.status().message(), FakeInferenceService::kExhaustedMessage);
}

TEST(FromGrpcStatusTest, EveryCodeMapsToTheSameAbslCode) {
  for (int code = 0; code <= 16; ++code) {
    const absl::Status status =
        FromGrpcStatus(grpc::Status(static_cast<grpc::StatusCode>(code), "why"));
    EXPECT_EQ(static_cast<int>(status.code()), code);
    if (code != 0) {
      EXPECT_EQ(status.message(), "why");
    }
  }
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining")),
            absl::UnavailableError("draining"));
}

TEST(DecodeStopStringsTest, DecodesCEscapesAndRefusesBadOrEmptyEntries) {
  auto decoded = DecodeStopStrings({"END", "\\n", "a\\054b"});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(*decoded, ElementsAre("END", "\n", "a,b"));
  auto bad = DecodeStopStrings({"ok", "\\q"});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("--stop entry 1"));
  EXPECT_EQ(DecodeStopStrings({""}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ClientTest, StreamEndingWithoutFinishedIsAnInternalError) {
  std::string streamed;
  auto result = client_->Generate(TextRequest("fail:nofinish"),
                                  [&](const v1::Chunk& chunk) { streamed += chunk.text(); });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(result.status().message(), HasSubstr("without a finished event"));
  EXPECT_EQ(streamed, FakeInferenceService::GenerateReply("fail:nofinish"));
}

TEST_F(ClientTest, PassedDeadlineEndsTheCallWithDeadlineExceeded) {
  std::vector<std::string> texts;
  const absl::Time start = absl::Now();
  auto result = client_->Generate(
      TextRequest("wait"), [&](const v1::Chunk& c) { texts.push_back(c.text()); },
      CallOptions{.timeout = absl::Milliseconds(200)});
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(texts, ElementsAre("waiting"));  // chunks before the deadline are delivered
  EXPECT_GE(elapsed, absl::Milliseconds(190));
  EXPECT_LT(elapsed, absl::Seconds(5));  // not the fake's 10 s hold
  // The server learns of the deadline too.
  for (int i = 0; i < 200 && server_.inference().num_waits_cancelled() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(server_.inference().num_waits_cancelled(), 1);
}

TEST_F(ClientTest, DeadlineLongerThanTheCallDoesNotFailIt) {
  auto result =
      client_->Generate(TextRequest("quick"), nullptr, CallOptions{.timeout = absl::Seconds(30)});
  EXPECT_TRUE(result.ok()) << result.status();
}

TEST_F(ClientTest, CancellerEndsTheCallInFlightFromAnotherThread) {
  CallCanceller canceller;
  absl::Notification first_chunk;
  std::thread watcher([&] {
    first_chunk.WaitForNotification();
    EXPECT_TRUE(canceller.Cancel());
  });
  const absl::Time start = absl::Now();
  auto result = client_->Generate(
      TextRequest("wait"), [&](const v1::Chunk&) { first_chunk.Notify(); },
      CallOptions{.canceller = &canceller});
  watcher.join();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  // Once the call is over there is nothing to cancel, and the next call runs normally.
  EXPECT_FALSE(canceller.Cancel());
  auto next =
      client_->Generate(TextRequest("again"), nullptr, CallOptions{.canceller = &canceller});
  EXPECT_TRUE(next.ok()) << next.status();
}

TEST_F(ClientTest, ConversationSendsTheWholeHistoryOnEveryTurn) {
  v1::GenerationOptions options;
  options.mutable_stopping()->set_max_tokens(32);
  Conversation conversation(client_.get(), "be brief", options);

  std::string first;
  auto turn1 = conversation.Send("hi", [&](const v1::Chunk& c) { first += c.text(); });
  ASSERT_TRUE(turn1.ok()) << turn1.status();
  EXPECT_EQ(first, FakeInferenceService::ChatReply(1, "hi"));
  auto turn2 = conversation.Send("and then?", nullptr);
  ASSERT_TRUE(turn2.ok()) << turn2.status();

  const auto requests = server_.inference().chat_requests();
  ASSERT_EQ(requests.size(), 2u);
  auto summary = [](const v1::ChatRequest& request) {
    std::vector<std::string> out;
    for (const v1::ChatMessage& m : request.messages()) {
      out.push_back(v1::ChatMessage::Role_Name(m.role()) + ":" + m.content());
    }
    return out;
  };
  EXPECT_THAT(summary(requests[0]), ElementsAre("ROLE_SYSTEM:be brief", "ROLE_USER:hi"));
  EXPECT_THAT(summary(requests[1]),
              ElementsAre("ROLE_SYSTEM:be brief", "ROLE_USER:hi",
                          "ROLE_ASSISTANT:" + FakeInferenceService::ChatReply(1, "hi"),
                          "ROLE_USER:and then?"));
  EXPECT_EQ(requests[1].options().stopping().max_tokens(), 32);
  ASSERT_EQ(conversation.messages().size(), 5u);
  EXPECT_EQ(conversation.messages()[4].content(), FakeInferenceService::ChatReply(2, "and then?"));
}

TEST_F(ClientTest, FailedTurnLeavesTheHistoryAndResetKeepsTheSystemMessage) {
  Conversation conversation(client_.get(), "sys", v1::GenerationOptions());
  ASSERT_TRUE(conversation.Send("one", nullptr).ok());
  auto failed = conversation.Send("fail:invalid", nullptr);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(conversation.messages().size(), 3u);  // system, user, assistant

  conversation.Reset();
  ASSERT_EQ(conversation.messages().size(), 1u);
  EXPECT_EQ(conversation.messages()[0].role(), v1::ChatMessage::ROLE_SYSTEM);
  ASSERT_TRUE(conversation.Send("fresh", nullptr).ok());
  const auto requests = server_.inference().chat_requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[2].messages_size(), 2);
  EXPECT_EQ(requests[2].messages(1).content(), "fresh");
}

TEST_F(ClientTest, UnaryCallsReturnTheServersAnswers) {
  auto info = client_->GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->model(), "fake-model");
  EXPECT_EQ(info->max_context_length(), 2048);

  auto load = client_->GetLoad();
  ASSERT_TRUE(load.ok()) << load.status();
  EXPECT_EQ(load->waiting_requests(), 2);

  v1::TokenizeRequest tokenize;
  tokenize.set_text("ab");
  auto ids = client_->Tokenize(tokenize);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(ids->token_ids(), ElementsAre('a', 'b'));
  v1::DetokenizeRequest detokenize;
  *detokenize.mutable_token_ids() = ids->token_ids();
  auto text = client_->Detokenize(detokenize);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(text->text(), "ab");

  EXPECT_EQ(client_->Abort("req-in-flight").value_or(false), true);
  EXPECT_EQ(client_->Abort("req-unknown").value_or(true), false);
}

TEST_F(ClientTest, HealthCheckReportsEachServiceStatus) {
  server_.health().SetStatus("muserve.v1.Inference", HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(client_->CheckHealth().value_or(HealthCheckResponse::UNKNOWN),
            HealthCheckResponse::SERVING);
  EXPECT_EQ(client_->CheckHealth("muserve.v1.Inference").value_or(HealthCheckResponse::UNKNOWN),
            HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(client_->CheckHealth("no.such.Service").status().code(), absl::StatusCode::kNotFound);
}

TEST(ClientConnectTest, UnreachableTargetFailsWithUnavailableWithinTheTimeout) {
  std::string target;
  {
    FakeInferenceServer stopped;  // a port that was just free, and is again
    target = stopped.target();
  }
  const absl::Time start = absl::Now();
  auto client = InferenceClient::Connect(target, absl::Milliseconds(300));
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(client.status().message(), HasSubstr(target));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  EXPECT_EQ(InferenceClient::Connect("", absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ClientConnectTest, TargetResolvingToSeveralReplicasSpreadsCallsOverAll) {
  FakeInferenceServer first;
  FakeInferenceServer second;
  // What a headless Service's DNS name resolves to, without DNS.
  auto client = InferenceClient::Connect(
      absl::StrCat("ipv4:", first.target(), ",", second.target()), absl::Seconds(5));
  ASSERT_TRUE(client.ok()) << client.status();
  v1::GenerateRequest request;
  request.set_text("hello");
  constexpr int kCalls = 20;
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE((*client)
                    ->Generate(
                        request, [](const v1::Chunk&) {}, CallOptions())
                    .ok());
  }
  const size_t on_first = first.inference().generate_requests().size();
  const size_t on_second = second.inference().generate_requests().size();
  EXPECT_EQ(on_first + on_second, size_t{kCalls});
  // The second connection may become ready a call or two after the first.
  EXPECT_GE(on_first, size_t{kCalls / 4});
  EXPECT_GE(on_second, size_t{kCalls / 4});
}

TEST(ClientConnectTest, CallsADrainingReplicaRefusesAreRetriedOnTheOther) {
  FakeInferenceServer serving;
  FakeInferenceServer draining;
  auto client = InferenceClient::Connect(
      absl::StrCat("ipv4:", serving.target(), ",", draining.target()), absl::Seconds(5));
  ASSERT_TRUE(client.ok()) << client.status();
  draining.inference().SetDraining(true);
  v1::GenerateRequest request;
  request.set_text("hello");
  constexpr int kCalls = 20;
  for (int i = 0; i < kCalls; ++i) {
    const auto finished = (*client)->Generate(
        request, [](const v1::Chunk&) {}, CallOptions());
    ASSERT_TRUE(finished.ok()) << "call " << i << ": " << finished.status();
  }
  EXPECT_EQ(serving.inference().generate_requests().size(), size_t{kCalls});
  // round_robin sent calls to the draining replica too: the retries hid them.
  EXPECT_GT(draining.inference().num_refused(), 0);
}

}  // namespace
}  // namespace muserve::client
