// Multi-turn prompts and prefix caching: does turn N+1's prompt extend turn
// N's prompt plus the assistant's reply, so that turn N's KV is reused?
//
//   prompt_N  = Render(messages[0..N], add_generation_prompt=true)
//   prompt_N1 = Render(messages[0..N] + {assistant: reply} + {user: next}, true)
//   extends  := prompt_N1 starts with prompt_N + reply
//
// What each built-in template does (pinned below; a template change that
// alters it fails here):
//  - demo, Llama 3.1: `| trim` every message. Extends exactly when the reply
//    has no leading/trailing whitespace (Python's str.strip: also U+00A0,
//    U+3000, U+2003...); always extends prompt_N + trimmed reply + <|eot_id|>.
//  - Qwen2.5: content verbatim; always extends, + "<|im_end|>\n".
//  - Mistral Nemo: content verbatim; extends (+ "</s>") only with neither a
//    system message nor tools: both are rendered inside / before the LAST
//    user turn, so once a later turn exists that turn is re-rendered without
//    them. Then only the text before prompt_N's last user turn is shared.
//
// The conversations and transformers' renderings come from
// tests/fixtures/chat_templates/turns.json (tests/reference/
// make_chat_turn_fixtures.py); every prompt must match byte for byte first.
#include <algorithm>
#include <string>
#include <vector>

#include "engine/model/make_model.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/demo_chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/fixtures.h"

namespace muserve {
namespace {

using ::testing::StartsWith;
using Json = nlohmann::ordered_json;

Json LoadTurnFixtures() {
  const std::string text =
      muserve::testing::ReadFileOrFail(muserve::testing::FixturePath("chat_templates/turns.json"));
  return Json::parse(text, nullptr, /*allow_exceptions=*/false);
}

std::string TemplateSource(const Json& entry) {
  if (entry["template_file"].is_null()) return std::string(kDemoChatTemplate);
  return muserve::testing::ReadFileOrFail(muserve::testing::SharedFixturePath(
      "chat-templates/" + entry["template_file"].get<std::string>()));
}

std::vector<ChatMessage> Messages(const Json& list) {
  std::vector<ChatMessage> out;
  for (const auto& m : list) {
    out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>(), std::nullopt});
  }
  return out;
}

bool Extends(const std::string& next, const std::string& prefix) {
  return next.starts_with(prefix);
}

// One fixture conversation rendered by ChatTemplate, turn by turn.
struct RenderedConversation {
  std::vector<ChatMessage> messages;
  std::vector<std::string> prompts;  // prompts[i]: up to and including user message i
  std::vector<std::string> users;    // users[i]: content of user message i
};

RenderedConversation RenderTurns(const ChatTemplate& chat, const Json& c) {
  RenderedConversation out;
  out.messages = Messages(c["messages"]);
  ChatTemplateOptions options;
  options.add_generation_prompt = true;
  options.extra_context = c["extra_context"];
  for (size_t end = 0; end < out.messages.size(); ++end) {
    if (out.messages[end].role != "user") continue;
    out.users.push_back(out.messages[end].content);
    const std::vector<ChatMessage> prefix(out.messages.begin(), out.messages.begin() + end + 1);
    auto rendered = chat.Render(prefix, options);
    EXPECT_TRUE(rendered.ok()) << rendered.status();
    out.prompts.push_back(rendered.value_or(""));
  }
  return out;
}

class ChatTemplateTurnsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fixtures_ = LoadTurnFixtures();
    ASSERT_TRUE(fixtures_.contains(GetParam()));
    entry_ = fixtures_[GetParam()];
    auto chat =
        ChatTemplate::Compile(TemplateSource(entry_), entry_["bos_token"].get<std::string>(),
                              entry_["eos_token"].get<std::string>());
    ASSERT_TRUE(chat.ok()) << chat.status();
    chat_ = std::move(*chat);
    ASSERT_GE(entry_["cases"].size(), 20u);
  }

  Json fixtures_;
  Json entry_;
  std::unique_ptr<ChatTemplate> chat_;
};

TEST_P(ChatTemplateTurnsTest, EveryTurnRendersLikeTransformers) {
  for (const auto& c : entry_["cases"]) {
    SCOPED_TRACE(GetParam() + "/" + c["name"].get<std::string>());
    const RenderedConversation turns = RenderTurns(*chat_, c);
    ASSERT_EQ(turns.prompts.size(), c["prompts"].size());
    for (size_t i = 0; i < turns.prompts.size(); ++i) {
      EXPECT_EQ(turns.prompts[i], c["prompts"][i].get<std::string>()) << "prompt " << i;
    }
  }
}

// The rule each template follows, checked on ChatTemplate's renderings and
// against the flags transformers' renderings gave in the fixture.
TEST_P(ChatTemplateTurnsTest, TurnBoundariesExtendExactlyWherePinned) {
  const std::string& key = GetParam();
  int extending = 0;
  int breaking = 0;
  for (const auto& c : entry_["cases"]) {
    const bool has_system = c["has_system"].get<bool>();
    const bool has_tools = c["extra_context"].contains("tools");
    const RenderedConversation turns = RenderTurns(*chat_, c);
    ASSERT_EQ(turns.prompts.size(), c["turns"].size() + 1);
    for (size_t i = 0; i + 1 < turns.prompts.size(); ++i) {
      SCOPED_TRACE(key + "/" + c["name"].get<std::string>() + " turn " + std::to_string(i));
      const Json& turn = c["turns"][i];
      const std::string reply = turn["reply"].get<std::string>();
      const std::string trimmed = turn["reply_trimmed"].get<std::string>();  // str.strip()
      const std::string& prompt = turns.prompts[i];
      const std::string& next = turns.prompts[i + 1];
      const bool extends = Extends(next, prompt + reply);
      EXPECT_EQ(extends, turn["extends"].get<bool>());
      EXPECT_EQ(Extends(next, prompt + trimmed), turn["extends_trimmed"].get<bool>());
      (extends ? extending : breaking) += 1;

      if (key == "demo" || key == "llama31") {
        // Trimmed content: the reply as generated extends only if strip() keeps it.
        EXPECT_EQ(extends, reply == trimmed);
        EXPECT_THAT(next, StartsWith(prompt + trimmed + "<|eot_id|>"));
      } else if (key == "qwen25") {
        EXPECT_TRUE(extends);
        EXPECT_THAT(next, StartsWith(prompt + reply + "<|im_end|>\n"));
      } else if (key == "mistral_nemo") {
        if (!has_system && !has_tools) {
          EXPECT_TRUE(extends);
          EXPECT_THAT(next, StartsWith(prompt + reply + "</s>"));
        } else {
          // The system message is rendered inside, and the tools before, only
          // the last user turn; the next prompt re-renders that turn without
          // them. Everything before it is shared, nothing after.
          EXPECT_FALSE(extends);
          EXPECT_FALSE(Extends(next, prompt));
          const size_t tools_at = prompt.rfind("[AVAILABLE_TOOLS]");
          const size_t last_turn =
              tools_at != std::string::npos ? tools_at : prompt.rfind("[INST]");
          ASSERT_NE(last_turn, std::string::npos);
          EXPECT_THAT(next, StartsWith(prompt.substr(0, last_turn) + "[INST]" + turns.users[i] +
                                       "[/INST]" + reply + "</s>"));
        }
      } else {
        ADD_FAILURE() << "no rule pinned for template " << key;
      }
    }
  }
  // Every template has both outcomes among the fixture's cases except Qwen2.5.
  EXPECT_GT(extending, 0);
  if (key == "qwen25") {
    EXPECT_EQ(breaking, 0);
  } else {
    EXPECT_GT(breaking, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Templates, ChatTemplateTurnsTest,
                         ::testing::Values("llama31", "qwen25", "mistral_nemo", "demo"));

// The break in the Llama-style templates, spelled out: the next prompt holds
// the trimmed reply, so a reply generated with surrounding whitespace is not
// a prefix of it; the text before the reply still is.
TEST(ChatTemplateTurnsExampleTest, Llama31TrimsTheReplyInTheNextPrompt) {
  const std::string source = muserve::testing::ReadFileOrFail(
      muserve::testing::SharedFixturePath("chat-templates/meta-llama-Llama-3.1-8B-Instruct.jinja"));
  auto chat = ChatTemplate::Compile(source, "<|begin_of_text|>", "<|eot_id|>");
  ASSERT_TRUE(chat.ok()) << chat.status();
  std::vector<ChatMessage> messages = {{"user", "Hi", std::nullopt}};
  auto prompt = (*chat)->Render(messages, {});
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_THAT(*prompt,
              ::testing::EndsWith("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                                  "<|start_header_id|>assistant<|end_header_id|>\n\n"));
  messages.push_back({"assistant", "\nHello!\n", std::nullopt});
  messages.push_back({"user", "Bye", std::nullopt});
  auto next = (*chat)->Render(messages, {});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, *prompt +
                       "Hello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye"
                       "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

// The break in Mistral Nemo, spelled out: the system message travels with the
// last user message, so turn 1's prompt shares only "<s>[INST]" with turn 2's.
TEST(ChatTemplateTurnsExampleTest, MistralNemoMovesTheSystemMessageToTheLastUserTurn) {
  const std::string source = muserve::testing::ReadFileOrFail(muserve::testing::SharedFixturePath(
      "chat-templates/mistralai-Mistral-Nemo-Instruct-2407.jinja"));
  auto chat = ChatTemplate::Compile(source, "<s>", "</s>");
  ASSERT_TRUE(chat.ok()) << chat.status();
  std::vector<ChatMessage> messages = {{"system", "Be brief.", std::nullopt},
                                       {"user", "Hi", std::nullopt}};
  EXPECT_EQ((*chat)->Render(messages, {}).value_or("error"), "<s>[INST]Be brief.\n\nHi[/INST]");
  messages.push_back({"assistant", "Hello!", std::nullopt});
  messages.push_back({"user", "Bye", std::nullopt});
  EXPECT_EQ((*chat)->Render(messages, {}).value_or("error"),
            "<s>[INST]Hi[/INST]Hello!</s>[INST]Be brief.\n\nBye[/INST]");
  // Without the system message the same conversation extends turn by turn.
  messages.erase(messages.begin());
  EXPECT_EQ((*chat)->Render({messages[0]}, {}).value_or("error"), "<s>[INST]Hi[/INST]");
  EXPECT_EQ((*chat)->Render(messages, {}).value_or("error"),
            "<s>[INST]Hi[/INST]Hello!</s>[INST]Bye[/INST]");
}

// Token level, on the demo model that `muserve make-model` writes: the ids of
// turn N+1's prompt start with the ids of turn N's prompt, the reply's ids
// and <|eot_id|> (the token the model stops on), for any reply whose text
// re-encodes to the ids the model generated.
//
// At the boundaries: turn N's prompt ends with "<|end_header_id|>\n\n"; the
// Llama 3 split regex makes a run of newlines its own piece (it never joins
// "\n" to the letters, digits or punctuation after it), and <|eot_id|> is a
// special token matched before the BPE model runs; so the reply tokenizes the
// same alone as inside the next prompt. Two things still break the token
// prefix at the first reply token that differs: a reply with surrounding
// whitespace (the template trims it, the model generated it), and a reply the
// model spelled with non-canonical tokens (e.g. "H" "e" "llo" where the BPE
// merges give "Hello"): decoding then re-encoding gives other ids.
class DemoModelTurnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::Status made = MakeModel({.out_dir = dir_.path(), .preset = ModelPreset::kTiny});
    ASSERT_TRUE(made.ok()) << made;
    auto tokenizer = Tokenizer::FromFile(dir_.path() / "tokenizer.json");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
    auto chat = ChatTemplate::FromTokenizerConfig(dir_.path() / "tokenizer_config.json");
    ASSERT_TRUE(chat.ok()) << chat.status();
    chat_ = std::move(*chat);
    auto eot = tokenizer_->TokenToId("<|eot_id|>");
    ASSERT_TRUE(eot.has_value());
    eot_id_ = *eot;
  }

  std::vector<TokenId> EncodePrompt(const std::vector<ChatMessage>& messages) {
    auto prompt = chat_->Render(messages, {});
    EXPECT_TRUE(prompt.ok()) << prompt.status();
    return tokenizer_->Encode(prompt.value_or(""), /*add_special_tokens=*/false);
  }

  static size_t CommonPrefix(const std::vector<TokenId>& a, const std::vector<TokenId>& b) {
    return static_cast<size_t>(std::mismatch(a.begin(), a.end(), b.begin(), b.end()).first -
                               a.begin());
  }

  static std::vector<TokenId> Concat(std::vector<TokenId> a, const std::vector<TokenId>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  muserve::testing::TempDir dir_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ChatTemplate> chat_;
  TokenId eot_id_ = 0;
};

TEST_F(DemoModelTurnsTest, NextPromptIdsExtendPromptIdsPlusReplyIds) {
  const std::vector<std::string> replies = {
      "Hello! How can I help?",          "4",  "Line one.\nLine two.\n\n- a\n- b",
      "Grüße 🙂 日本語です。", "!?", "\"quoted\"",
      "12345 apples, 6.5 pears"};
  for (bool with_system : {false, true}) {
    std::vector<ChatMessage> messages;
    if (with_system) messages.push_back({"system", "You are a helpful assistant.", std::nullopt});
    messages.push_back({"user", "Hi", std::nullopt});
    for (const std::string& reply : replies) {
      SCOPED_TRACE((with_system ? "system: " : "no system: ") + reply);
      const std::vector<TokenId> prompt_ids = EncodePrompt(messages);
      const std::vector<TokenId> reply_ids = tokenizer_->Encode(reply, false);
      // The precondition: the reply's text re-encodes to these ids.
      ASSERT_EQ(tokenizer_->Decode(reply_ids, /*skip_special_tokens=*/false), reply);
      messages.push_back({"assistant", reply, std::nullopt});
      messages.push_back({"user", "And then?", std::nullopt});
      const std::vector<TokenId> next_ids = EncodePrompt(messages);
      std::vector<TokenId> expected = Concat(prompt_ids, reply_ids);
      expected.push_back(eot_id_);
      ASSERT_GE(next_ids.size(), expected.size());
      EXPECT_TRUE(std::equal(expected.begin(), expected.end(), next_ids.begin()))
          << "shared " << CommonPrefix(expected, next_ids) << " of " << expected.size();
    }
  }
}

TEST_F(DemoModelTurnsTest, PaddedReplyBreaksTheTokenPrefixWhereItsTokensDiffer) {
  std::vector<ChatMessage> messages = {{"user", "Hi", std::nullopt}};
  const std::vector<TokenId> prompt_ids = EncodePrompt(messages);
  for (const std::string padded : {" Sure.", "Sure.\n", "\n\nSure. "}) {
    SCOPED_TRACE(padded);
    const std::vector<TokenId> generated = tokenizer_->Encode(padded, false);
    std::vector<ChatMessage> next_messages = messages;
    next_messages.push_back({"assistant", padded, std::nullopt});
    next_messages.push_back({"user", "Bye", std::nullopt});
    const std::vector<TokenId> next_ids = EncodePrompt(next_messages);
    // The trimmed text is what the next prompt holds, token for token.
    std::vector<TokenId> trimmed = Concat(prompt_ids, tokenizer_->Encode("Sure.", false));
    trimmed.push_back(eot_id_);
    EXPECT_EQ(CommonPrefix(trimmed, next_ids), trimmed.size());
    // What the model generated is shared only up to where it differs.
    const std::vector<TokenId> cached = Concat(prompt_ids, generated);
    const size_t shared = CommonPrefix(cached, next_ids);
    EXPECT_GE(shared, prompt_ids.size());
    EXPECT_LT(shared, cached.size());
    EXPECT_EQ(shared,
              prompt_ids.size() + CommonPrefix(generated, tokenizer_->Encode("Sure.", false)));
  }
}

TEST_F(DemoModelTurnsTest, NonCanonicalReplyTokensBreakTheTokenPrefixWhereTheyDiffer) {
  const std::string reply = "Hello! How can I help?";
  const std::vector<TokenId> canonical = tokenizer_->Encode(reply, false);
  // The same text spelled one character per piece: fewer merges, other ids.
  std::vector<TokenId> spelled;
  for (char c : reply) spelled = Concat(spelled, tokenizer_->Encode(std::string(1, c), false));
  ASSERT_EQ(tokenizer_->Decode(spelled, false), reply);
  ASSERT_NE(spelled, canonical);
  std::vector<ChatMessage> messages = {{"user", "Hi", std::nullopt}};
  const std::vector<TokenId> prompt_ids = EncodePrompt(messages);
  messages.push_back({"assistant", reply, std::nullopt});
  messages.push_back({"user", "Bye", std::nullopt});
  const std::vector<TokenId> next_ids = EncodePrompt(messages);
  EXPECT_EQ(CommonPrefix(Concat(prompt_ids, spelled), next_ids),
            prompt_ids.size() + CommonPrefix(spelled, canonical));
  EXPECT_EQ(CommonPrefix(Concat(prompt_ids, canonical), next_ids),
            prompt_ids.size() + canonical.size());
}

}  // namespace
}  // namespace muserve
