// ChatRequest -> engine Request: the prompt is the chat template's rendering
// tokenized without special tokens (as transformers' apply_chat_template),
// and every bad message or missing template is refused by name.
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/demo_chat_template.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/api/request_conversion.h"
#include "tests/unit/api_testing.h"

namespace muserve::server {
namespace {

using ::muserve::server::testing::Demo;
using ::muserve::server::testing::DemoTokenizerInstance;
using ::muserve::server::testing::TestLimits;
using ::testing::HasSubstr;

std::unique_ptr<ChatTemplate> DemoTemplate() {
  auto chat = ChatTemplate::Compile(kDemoChatTemplate, "<|begin_of_text|>", "<|eot_id|>");
  EXPECT_TRUE(chat.ok()) << chat.status();
  return chat.ok() ? *std::move(chat) : nullptr;
}

std::unique_ptr<ChatTemplate> Compile(std::string_view source) {
  auto chat = ChatTemplate::Compile(source, "<|begin_of_text|>", "<|eot_id|>");
  EXPECT_TRUE(chat.ok()) << chat.status();
  return chat.ok() ? *std::move(chat) : nullptr;
}

void AddMessage(v1::ChatRequest& request, v1::ChatMessage::Role role, std::string content,
                std::string name = "") {
  v1::ChatMessage* message = request.add_messages();
  message->set_role(role);
  message->set_content(std::move(content));
  message->set_name(std::move(name));
}

v1::ChatRequest Conversation() {
  v1::ChatRequest request;
  request.set_request_id("chat-1");
  AddMessage(request, v1::ChatMessage::ROLE_SYSTEM, "Be brief.");
  AddMessage(request, v1::ChatMessage::ROLE_USER, "What is 2 + 2?");
  AddMessage(request, v1::ChatMessage::ROLE_ASSISTANT, "4.");
  AddMessage(request, v1::ChatMessage::ROLE_USER, "And 3 + 3?");
  return request;
}

std::vector<ChatMessage> EngineConversation() {
  return {{"system", "Be brief.", std::nullopt},
          {"user", "What is 2 + 2?", std::nullopt},
          {"assistant", "4.", std::nullopt},
          {"user", "And 3 + 3?", std::nullopt}};
}

TEST(ConvertChatRequestTest, PromptIsTheRenderingTokenizedWithoutSpecialTokens) {
  const auto chat = DemoTemplate();
  ASSERT_NE(chat, nullptr);
  const Tokenizer& tokenizer = DemoTokenizerInstance();
  auto converted = ConvertChatRequest(Conversation(), tokenizer, chat.get(), TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  auto rendered = chat->Render(EngineConversation(), {});
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  EXPECT_THAT(*rendered, ::testing::EndsWith("<|start_header_id|>assistant<|end_header_id|>\n\n"));
  EXPECT_EQ(converted->engine.prompt_tokens, tokenizer.Encode(*rendered, false));
  // One BOS, the template's: the tokenizer did not add a second.
  const std::vector<TokenId>& prompt = converted->engine.prompt_tokens;
  ASSERT_GE(prompt.size(), 2u);
  EXPECT_EQ(prompt[0], Demo().begin_of_text_id);
  EXPECT_NE(prompt[1], Demo().begin_of_text_id);
  EXPECT_EQ(converted->request_id, "chat-1");
  EXPECT_EQ(converted->engine.stop.max_tokens, 1024 - static_cast<int32_t>(prompt.size()));
}

TEST(ConvertChatRequestTest, AddGenerationPromptFalseContinuesTheLastMessage) {
  const auto chat = DemoTemplate();
  ASSERT_NE(chat, nullptr);
  v1::ChatRequest request = Conversation();
  request.set_add_generation_prompt(false);
  auto converted = ConvertChatRequest(request, DemoTokenizerInstance(), chat.get(), TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  ChatTemplateOptions options;
  options.add_generation_prompt = false;
  auto rendered = chat->Render(EngineConversation(), options);
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  EXPECT_THAT(*rendered, ::testing::EndsWith("And 3 + 3?<|eot_id|>"));
  EXPECT_EQ(converted->engine.prompt_tokens, DemoTokenizerInstance().Encode(*rendered, false));
}

TEST(ConvertChatRequestTest, NameIsPassedOnlyWhenGiven) {
  const auto chat = Compile(
      "{% for m in messages %}{% if m.name is defined %}[{{ m.name }}] {% endif %}"
      "{{ m.role }}: {{ m.content }}\n{% endfor %}");
  ASSERT_NE(chat, nullptr);
  v1::ChatRequest request;
  AddMessage(request, v1::ChatMessage::ROLE_USER, "hi", "alice");
  AddMessage(request, v1::ChatMessage::ROLE_ASSISTANT, "hello");
  const Tokenizer& tokenizer = DemoTokenizerInstance();
  auto converted = ConvertChatRequest(request, tokenizer, chat.get(), TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(tokenizer.Decode(converted->engine.prompt_tokens, false),
            "[alice] user: hi\nassistant: hello\n");
}

TEST(ConvertChatRequestTest, EmptyContentIsAllowed) {
  const auto chat = DemoTemplate();
  ASSERT_NE(chat, nullptr);
  v1::ChatRequest request;
  AddMessage(request, v1::ChatMessage::ROLE_USER, "");
  EXPECT_TRUE(ConvertChatRequest(request, DemoTokenizerInstance(), chat.get(), TestLimits()).ok());
}

TEST(ConvertChatRequestTest, OptionsAreConvertedAsForGenerate) {
  const auto chat = DemoTemplate();
  ASSERT_NE(chat, nullptr);
  v1::ChatRequest request = Conversation();
  request.mutable_options()->mutable_sampling()->set_temperature(0);
  request.mutable_options()->mutable_stopping()->set_max_tokens(8);
  request.mutable_options()->mutable_stream()->set_stream(false);
  auto converted = ConvertChatRequest(request, DemoTokenizerInstance(), chat.get(), TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(converted->engine.sampling.temperature, 0.0f);
  EXPECT_EQ(converted->engine.stop.max_tokens, 8);
  EXPECT_FALSE(converted->shape.stream);
  EXPECT_TRUE(converted->shape.include_token_ids);

  request.mutable_options()->mutable_sampling()->set_top_p(0);
  auto refused = ConvertChatRequest(request, DemoTokenizerInstance(), chat.get(), TestLimits());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("options.sampling.top_p must be in (0, 1], got 0"));
}

TEST(ConvertChatRequestTest, NoChatTemplateIsFailedPrecondition) {
  auto converted =
      ConvertChatRequest(Conversation(), DemoTokenizerInstance(), nullptr, TestLimits());
  ASSERT_FALSE(converted.ok());
  EXPECT_EQ(converted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(converted.status().message(), HasSubstr("the model has no chat template"));
}

TEST(ConvertChatRequestTest, TemplateRaiseExceptionIsInvalidArgumentWithItsMessage) {
  const auto chat = Compile(
      "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant') }}"
      "{% endif %}{{ m.content }}{% endfor %}");
  ASSERT_NE(chat, nullptr);
  v1::ChatRequest request;
  AddMessage(request, v1::ChatMessage::ROLE_USER, "a");
  AddMessage(request, v1::ChatMessage::ROLE_USER, "b");
  auto converted = ConvertChatRequest(request, DemoTokenizerInstance(), chat.get(), TestLimits());
  ASSERT_FALSE(converted.ok());
  EXPECT_EQ(converted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(converted.status().message(),
            "Conversation roles must alternate user/assistant/user/assistant");
}

struct BadChatCase {
  std::string name;
  std::function<void(v1::ChatRequest&, ModelLimits&)> mutate;
  std::vector<std::string> message_parts;
};

void PrintTo(const BadChatCase& c, std::ostream* os) { *os << c.name; }

class ChatRequestRefusedTest : public ::testing::TestWithParam<BadChatCase> {};

TEST_P(ChatRequestRefusedTest, NamesTheFieldAndItsRange) {
  const auto chat = DemoTemplate();
  ASSERT_NE(chat, nullptr);
  v1::ChatRequest request = Conversation();
  ModelLimits limits = TestLimits();
  ASSERT_TRUE(ConvertChatRequest(request, DemoTokenizerInstance(), chat.get(), limits).ok());
  GetParam().mutate(request, limits);
  auto converted = ConvertChatRequest(request, DemoTokenizerInstance(), chat.get(), limits);
  ASSERT_FALSE(converted.ok());
  EXPECT_EQ(converted.status().code(), absl::StatusCode::kInvalidArgument) << converted.status();
  for (const std::string& part : GetParam().message_parts) {
    EXPECT_THAT(converted.status().message(), HasSubstr(part));
  }
}

std::vector<BadChatCase> BadChatCases() {
  using R = v1::ChatRequest;
  using L = ModelLimits;
  return {
      {"NoMessages", [](R& r, L&) { r.clear_messages(); }, {"messages must not be empty"}},
      {"TooManyMessages",
       [](R& r, L&) {
         r.clear_messages();
         for (int i = 0; i < 4097; ++i) AddMessage(r, v1::ChatMessage::ROLE_USER, "x");
       },
       {"messages has 4097 entries; at most 4096"}},
      {"RoleUnspecified",
       [](R& r, L&) { r.mutable_messages(1)->set_role(v1::ChatMessage::ROLE_UNSPECIFIED); },
       {"messages[1].role must be ROLE_SYSTEM, ROLE_USER or ROLE_ASSISTANT, got 0"}},
      {"RoleUnknown",
       [](R& r, L&) { r.mutable_messages(2)->set_role(static_cast<v1::ChatMessage::Role>(7)); },
       {"messages[2].role must be ROLE_SYSTEM, ROLE_USER or ROLE_ASSISTANT, got 7"}},
      {"ContentInvalidUtf8",
       [](R& r, L&) { r.mutable_messages(3)->set_content("\xe2\x82"); },
       {"messages[3].content must be valid UTF-8"}},
      {"NameInvalidUtf8",
       [](R& r, L&) { r.mutable_messages(0)->set_name("\xff"); },
       {"messages[0].name must be valid UTF-8"}},
      {"RequestIdNotPrintable",
       [](R& r, L&) { r.set_request_id("a\tb"); },
       {"request_id[1] is 0x09", "0x21..0x7e"}},
      {"RequestTooLarge",
       [](R&, L& l) { l.max_request_bytes = 16; },
       {"bytes; the limit is 16 (--max-request-bytes)"}},
      {"RenderingFillsTheContext",
       [](R&, L& l) { l.context_len = 8; },
       {"messages", "context of 8 tokens leaves no room", "at most 7 prompt tokens"}},
      {"MaxTokensPastTheContext",
       [](R& r, L&) { r.mutable_options()->mutable_stopping()->set_max_tokens(1024); },
       {"options.stopping.max_tokens (1024) + prompt tokens (",
        "exceed the model's context of 1024 tokens"}},
      {"StopTokenIdPastVocabulary",
       [](R& r, L&) { r.mutable_options()->mutable_stopping()->add_stop_token_ids(100000); },
       {"options.stopping.stop_token_ids[0] = 100000 is outside the vocabulary [0, 512)"}},
  };
}

INSTANTIATE_TEST_SUITE_P(EveryBadField, ChatRequestRefusedTest, ::testing::ValuesIn(BadChatCases()),
                         [](const auto& test_info) { return test_info.param.name; });

}  // namespace
}  // namespace muserve::server
