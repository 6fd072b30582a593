// Bad input over the wire: every case gets INVALID_ARGUMENT (or its own
// code) with a message naming the field, while a stream running beside them
// is not disturbed and no KV block leaks.
#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_fixture.h"

namespace muserve::server::testing {
namespace {

using ::testing::HasSubstr;

struct BadGenerate {
  std::string name;
  std::function<void(v1::GenerateRequest&)> edit;
  grpc::StatusCode code;
  std::string field;  // the message must contain it
};

TEST_F(ServerTest, EveryBadGenerateFieldIsNamedWhileOtherStreamsGoOn) {
  StartServer();
  grpc::ClientContext long_context;
  auto long_reader = stub_->Generate(&long_context, Greedy("an undisturbed story", 400));
  v1::GenerateResponse response;
  ASSERT_TRUE(long_reader->Read(&response));

  auto sampling = [](v1::GenerateRequest& r) { return r.mutable_options()->mutable_sampling(); };
  auto stopping = [](v1::GenerateRequest& r) { return r.mutable_options()->mutable_stopping(); };
  const std::vector<BadGenerate> cases = {
      {"no prompt", [](auto& r) { r.clear_prompt(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "prompt"},
      {"empty text", [](auto& r) { r.set_text(""); }, grpc::StatusCode::INVALID_ARGUMENT,
       "prompt.text"},
      {"empty ids", [](auto& r) { r.mutable_token_ids(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "token_ids"},
      {"id outside vocab", [](auto& r) { r.mutable_token_ids()->add_ids(512); },
       grpc::StatusCode::INVALID_ARGUMENT, "token_ids.ids[0]"},
      {"negative id", [](auto& r) { r.mutable_token_ids()->add_ids(-1); },
       grpc::StatusCode::INVALID_ARGUMENT, "token_ids.ids[0]"},
      {"temperature", [&](auto& r) { sampling(r)->set_temperature(-1); },
       grpc::StatusCode::INVALID_ARGUMENT, "options.sampling.temperature"},
      {"top_p zero", [&](auto& r) { sampling(r)->set_top_p(0); },
       grpc::StatusCode::INVALID_ARGUMENT, "options.sampling.top_p"},
      {"top_k", [&](auto& r) { sampling(r)->set_top_k(-3); }, grpc::StatusCode::INVALID_ARGUMENT,
       "options.sampling.top_k"},
      {"min_p", [&](auto& r) { sampling(r)->set_min_p(2); }, grpc::StatusCode::INVALID_ARGUMENT,
       "options.sampling.min_p"},
      {"repetition", [&](auto& r) { sampling(r)->set_repetition_penalty(0); },
       grpc::StatusCode::INVALID_ARGUMENT, "options.sampling.repetition_penalty"},
      {"presence", [&](auto& r) { sampling(r)->set_presence_penalty(3); },
       grpc::StatusCode::INVALID_ARGUMENT, "options.sampling.presence_penalty"},
      {"max_tokens zero", [&](auto& r) { stopping(r)->set_max_tokens(0); },
       grpc::StatusCode::INVALID_ARGUMENT, "options.stopping.max_tokens"},
      {"beyond context", [&](auto& r) { stopping(r)->set_max_tokens(5000); },
       grpc::StatusCode::INVALID_ARGUMENT, "context"},
      {"min above max",
       [&](auto& r) {
         stopping(r)->set_max_tokens(4);
         stopping(r)->set_min_tokens(5);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "options.stopping.min_tokens"},
      {"empty stop string", [&](auto& r) { stopping(r)->add_stop_strings(""); },
       grpc::StatusCode::INVALID_ARGUMENT, "options.stopping.stop_strings[0]"},
      {"stop id", [&](auto& r) { stopping(r)->add_stop_token_ids(100000); },
       grpc::StatusCode::INVALID_ARGUMENT, "options.stopping.stop_token_ids[0]"},
      {"top_logprobs",
       [](auto& r) { r.mutable_options()->mutable_logprobs()->set_top_logprobs(21); },
       grpc::StatusCode::INVALID_ARGUMENT, "options.logprobs.top_logprobs"},
      {"priority", [](auto& r) { r.mutable_options()->set_priority(2000000); },
       grpc::StatusCode::INVALID_ARGUMENT, "options.priority"},
      {"request id", [](auto& r) { r.set_request_id(std::string(200, 'x')); },
       grpc::StatusCode::INVALID_ARGUMENT, "request_id"},
      {"request id spaces", [](auto& r) { r.set_request_id("has space"); },
       grpc::StatusCode::INVALID_ARGUMENT, "request_id"},
      {"oversize", [](auto& r) { r.set_text(std::string(5 << 20, 'a')); },
       grpc::StatusCode::INVALID_ARGUMENT, "--max-request-bytes"},
      {"prompt beyond context", [](auto& r) { r.set_text(std::string(3000, 'a') + " b c"); },
       grpc::StatusCode::INVALID_ARGUMENT, "context"},
  };
  for (const BadGenerate& c : cases) {
    v1::GenerateRequest request = Greedy("a fine prompt", 8);
    c.edit(request);
    const Stream stream = Run(request);
    EXPECT_EQ(stream.status.error_code(), c.code)
        << c.name << ": " << stream.status.error_message();
    EXPECT_THAT(stream.status.error_message(), HasSubstr(c.field)) << c.name;
    EXPECT_FALSE(stream.finished.has_value()) << c.name;
  }

  // Chat: unknown role, no messages, bad content.
  v1::ChatRequest chat;
  const Stream empty = RunChat(chat);
  EXPECT_EQ(empty.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(empty.status.error_message(), HasSubstr("messages"));
  auto* message = chat.add_messages();
  message->set_role(static_cast<v1::ChatMessage::Role>(7));
  message->set_content("hi");
  const Stream role = RunChat(chat);
  EXPECT_EQ(role.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(role.status.error_message(), HasSubstr("messages[0].role"));
  message->set_role(v1::ChatMessage::ROLE_UNSPECIFIED);
  const Stream unspecified = RunChat(chat);
  EXPECT_EQ(unspecified.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(unspecified.status.error_message(), HasSubstr("messages[0].role"));

  // The long stream was not disturbed.
  ExpectRanToLength(ReadRest(*long_reader, response), 400);
  EXPECT_TRUE(WaitForIdle());
  EXPECT_TRUE(WaitForMetric("code=\"INVALID_ARGUMENT\""));
}

}  // namespace
}  // namespace muserve::server::testing
