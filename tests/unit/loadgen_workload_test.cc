// What the load generator sends: length distributions, synthetic
// conversations, and prompts / conversations read from JSONL and ShareGPT
// files (with clear errors for bad entries).
#include <fstream>
#include <random>
#include <string>

#include "absl/strings/str_split.h"
#include "bench/loadgen/dataset.h"
#include "bench/loadgen/distribution.h"
#include "bench/loadgen/workload.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fixtures.h"

namespace muserve::loadgen {
namespace {

using ::testing::HasSubstr;

TEST(LengthDistributionTest, ParsesEachFormAndSamplesWithinItsBounds) {
  std::mt19937_64 rng(1);
  auto fixed = LengthDistribution::Parse("input-len", "64");
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ(fixed->Sample(rng), 64);
  EXPECT_EQ(fixed->ToString(), "fixed:64");
  auto uniform = LengthDistribution::Parse("input-len", "uniform:10:20");
  ASSERT_TRUE(uniform.ok()) << uniform.status();
  auto normal = LengthDistribution::Parse("output-len", "normal:50:30");
  ASSERT_TRUE(normal.ok()) << normal.status();
  bool saw_min = false, saw_max = false;
  for (int i = 0; i < 2000; ++i) {
    const int32_t u = uniform->Sample(rng);
    ASSERT_GE(u, 10);
    ASSERT_LE(u, 20);
    saw_min |= u == 10;
    saw_max |= u == 20;
    const int32_t n = normal->Sample(rng);
    ASSERT_GE(n, 1);  // clamped: N(50, 30) goes below 1 now and then
    ASSERT_LE(n, normal->UpperBound());
  }
  EXPECT_TRUE(saw_min && saw_max);
  EXPECT_EQ(normal->UpperBound(), 170);
}

TEST(LengthDistributionTest, BadTextIsRefusedNamingTheFlag) {
  for (const char* text : {"", "0", "-3", "1.5", "uniform:20:10", "uniform:5", "normal:0:1",
                           "poisson:4", "fixed:abc"}) {
    auto parsed = LengthDistribution::Parse("output-len", text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr("--output-len")) << text;
  }
}

SyntheticOptions Synthetic() {
  SyntheticOptions options;
  options.input_len = LengthDistribution::Fixed(12);
  options.output_len = LengthDistribution::Fixed(5);
  options.turns = 3;
  options.conversations = 4;
  options.vocab_size = 50;
  options.max_context = 1000;
  options.eos_token_ids = {2, 7};
  options.seed = 9;
  return options;
}

TEST(SyntheticWorkloadTest, ConversationsHaveTheRequestedTurnsAndLengthsWithoutEos) {
  auto workload = SyntheticWorkload(Synthetic());
  ASSERT_TRUE(workload.ok()) << workload.status();
  ASSERT_EQ(workload->conversations.size(), 4u);
  for (const ConversationSpec& conversation : workload->conversations) {
    EXPECT_EQ(conversation.api, ApiKind::kGenerateTokens);
    ASSERT_EQ(conversation.turns.size(), 3u);
    for (const TurnSpec& turn : conversation.turns) {
      EXPECT_EQ(turn.token_ids.size(), 12u);
      EXPECT_EQ(turn.max_tokens, 5);
      for (int32_t id : turn.token_ids) {
        EXPECT_GE(id, 0);
        EXPECT_LT(id, 50);
        EXPECT_NE(id, 2);
        EXPECT_NE(id, 7);
      }
    }
  }
  // Same seed, same workload.
  auto again = SyntheticWorkload(Synthetic());
  EXPECT_EQ(again->conversations[3].turns[2].token_ids,
            workload->conversations[3].turns[2].token_ids);
}

TEST(SyntheticWorkloadTest, AConversationLongerThanTheContextIsRefused) {
  SyntheticOptions options = Synthetic();
  options.max_context = 50;  // 3 turns x (12 + 5) = 51
  auto workload = SyntheticWorkload(options);
  ASSERT_FALSE(workload.ok());
  EXPECT_THAT(workload.status().message(), HasSubstr("--turns"));
  EXPECT_THAT(workload.status().message(), HasSubstr("51"));
}

// Counts whitespace-separated words, standing in for the server's tokenizer.
absl::StatusOr<int32_t> CountWords(const std::string& text) {
  return static_cast<int32_t>(
      std::vector<std::string>(absl::StrSplit(text, ' ', absl::SkipEmpty())).size());
}

class DatasetTest : public ::testing::Test {
 protected:
  std::filesystem::path Write(const std::string& text) {
    const std::filesystem::path path = dir_.path() / "data.jsonl";
    std::ofstream(path) << text;
    return path;
  }
  absl::StatusOr<Workload> Load(const std::string& text, int32_t max_context = 4096) {
    DatasetOptions options;
    options.path = Write(text);
    options.output_len = LengthDistribution::Fixed(9);
    options.max_context = max_context;
    return LoadDataset(options, CountWords);
  }
  muserve::testing::TempDir dir_;
};

TEST_F(DatasetTest, ShareGptConversationsBecomeChatTurnsSizedByTheRecordedReplies) {
  auto workload = Load(
      R"({"id": "a", "conversations": [{"from": "system", "value": "be brief"},)"
      R"( {"from": "human", "value": "hello there"}, {"from": "gpt", "value": "hi how are you"},)"
      R"( {"from": "human", "value": "fine"}]})"
      "\n\n"
      R"({"conversations": [{"from": "gpt", "value": "orphan reply"}]})"
      "\n");
  ASSERT_TRUE(workload.ok()) << workload.status();
  ASSERT_EQ(workload->conversations.size(), 1u);  // the second has no user turn
  const ConversationSpec& c = workload->conversations[0];
  EXPECT_EQ(c.api, ApiKind::kChat);
  EXPECT_EQ(c.system, "be brief");
  ASSERT_EQ(c.turns.size(), 2u);
  EXPECT_EQ(c.turns[0].text, "hello there");
  EXPECT_EQ(c.turns[0].max_tokens, 4);  // "hi how are you"
  EXPECT_EQ(c.turns[1].text, "fine");
  EXPECT_EQ(c.turns[1].max_tokens, 9);  // no recorded reply: --output-len
  EXPECT_THAT(workload->description, HasSubstr("1 skipped"));
}

TEST_F(DatasetTest, PromptsAndOpenAiStyleMessagesAndAJsonArrayAreRead) {
  auto workload = Load(
      R"([{"prompt": "one two three", "max_tokens": 3},)"
      R"( {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a b"}]}])");
  ASSERT_TRUE(workload.ok()) << workload.status();
  ASSERT_EQ(workload->conversations.size(), 2u);
  EXPECT_EQ(workload->conversations[0].api, ApiKind::kGenerateText);
  EXPECT_EQ(workload->conversations[0].turns[0].text, "one two three");
  EXPECT_EQ(workload->conversations[0].turns[0].max_tokens, 3);
  EXPECT_EQ(workload->conversations[1].api, ApiKind::kChat);
  EXPECT_EQ(workload->conversations[1].turns[0].max_tokens, 2);
}

TEST_F(DatasetTest, TurnsThatWouldOverflowTheContextAreDropped) {
  // Turn 1 needs 1 + 2 + 16 (template margin) = 19; turn 2 would reach 38.
  auto workload = Load(
      R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a b"},)"
      R"( {"role": "user", "content": "q"}, {"role": "assistant", "content": "a b"}]})",
      30);
  ASSERT_TRUE(workload.ok()) << workload.status();
  EXPECT_EQ(workload->conversations[0].turns.size(), 1u);
}

TEST_F(DatasetTest, BadEntriesAreRefusedNamingTheLineAndKey) {
  auto role = Load(
      "{\"prompt\": \"ok\"}\n{\"conversations\": [{\"from\": \"robot\", \"value\": \"x\"}]}\n");
  ASSERT_FALSE(role.ok());
  EXPECT_THAT(role.status().message(), HasSubstr("data.jsonl:2"));
  EXPECT_THAT(role.status().message(), HasSubstr("conversations[0].from"));
  EXPECT_THAT(role.status().message(), HasSubstr("robot"));

  auto json = Load("{\"prompt\": \"ok\"}\n{not json\n");
  ASSERT_FALSE(json.ok());
  EXPECT_THAT(json.status().message(), HasSubstr("data.jsonl:2: not valid JSON"));

  auto max_tokens = Load(R"({"prompt": "ok", "max_tokens": 0})");
  ASSERT_FALSE(max_tokens.ok());
  EXPECT_THAT(max_tokens.status().message(), HasSubstr("\"max_tokens\""));

  auto neither = Load(R"({"text": "ok"})");
  ASSERT_FALSE(neither.ok());
  EXPECT_THAT(neither.status().message(), HasSubstr("\"prompt\", \"messages\" or"));
}

}  // namespace
}  // namespace muserve::loadgen
