// Streaming decode: the concatenated Step()+Flush() output must equal a full
// Decode for every fixture string of every family, and no Step may return
// invalid UTF-8.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/fixtures.h"
#include "tests/testing/utf8.h"

namespace muserve {
namespace {

std::unique_ptr<Tokenizer> LoadFamily(const std::string& family) {
  auto tokenizer =
      Tokenizer::FromFile(testing::FixturePath("tokenizer/" + family + "/tokenizer.json"));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

bool EndsWithReplacementChar(const std::string& text) {
  return text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

// What a stream of `ids` gave: the text after each Step and after Flush.
struct Streamed {
  std::vector<std::string> after_step;  // accumulated text after Step(ids[i])
  std::string all;                      // everything, Flush included
  bool all_valid = true;                // every delta was valid UTF-8
};

Streamed Stream(const Tokenizer& tokenizer, const std::vector<TokenId>& ids, bool skip) {
  IncrementalDetokenizer detokenizer(tokenizer, skip);
  Streamed streamed;
  for (const TokenId id : ids) {
    const std::string delta = detokenizer.Step(id);
    streamed.all_valid = streamed.all_valid && testing::IsStrictUtf8(delta);
    streamed.all += delta;
    streamed.after_step.push_back(streamed.all);
  }
  const std::string tail = detokenizer.Flush();
  streamed.all_valid = streamed.all_valid && testing::IsStrictUtf8(tail);
  streamed.all += tail;
  return streamed;
}

// Checks the stream after every step, not just at the end (where Flush
// could hide a detokenizer that held everything back): once ids[0..i] decode
// to text that does not end in an incomplete character, exactly that text
// must have been emitted by Step(ids[i]). Returns the number of steps checked
// so callers can insist that the check was not vacuous.
int ExpectStepsKeepUp(const Tokenizer& tokenizer, const std::vector<TokenId>& ids, bool skip,
                      const Streamed& streamed, const std::string& label) {
  int checked = 0;
  std::vector<TokenId> prefix;
  for (size_t i = 0; i < ids.size(); ++i) {
    prefix.push_back(ids[i]);
    const std::string expected = tokenizer.Decode(prefix, skip);
    if (EndsWithReplacementChar(expected)) continue;
    ++checked;
    EXPECT_EQ(streamed.after_step[i], expected) << label << " after step " << i;
  }
  return checked;
}

class StreamingTest : public ::testing::TestWithParam<std::string> {};

TEST_P(StreamingTest, EveryStepEmitsTheTextDecodedSoFarForEveryFixtureString) {
  auto tokenizer = LoadFamily(GetParam());
  ASSERT_NE(tokenizer, nullptr);
  const nlohmann::json expected =
      testing::ReadJsonOrFail(testing::FixturePath("tokenizer/" + GetParam() + "/expected.json"));
  int checked = 0;
  for (const auto& c : expected["cases"]) {
    const auto ids = c["ids_with_special"].get<std::vector<TokenId>>();
    for (const bool skip : {false, true}) {
      const std::string label = "text: " + c["text"].dump() + " skip: " + std::to_string(skip);
      const Streamed streamed = Stream(*tokenizer, ids, skip);
      EXPECT_EQ(streamed.all, tokenizer->Decode(ids, skip)) << label;
      EXPECT_EQ(streamed.all, c[skip ? "decoded_skip" : "decoded"].get<std::string>()) << label;
      EXPECT_TRUE(streamed.all_valid) << label;
      checked += ExpectStepsKeepUp(*tokenizer, ids, skip, streamed, label);
    }
  }
  EXPECT_GT(checked, 1000);
}

TEST_P(StreamingTest, RandomIdsStreamValidUtf8ThatKeepsUpWithTheDecode) {
  auto tokenizer = LoadFamily(GetParam());
  ASSERT_NE(tokenizer, nullptr);
  const nlohmann::json expected =
      testing::ReadJsonOrFail(testing::FixturePath("tokenizer/" + GetParam() + "/expected.json"));
  // Byte-level decoding is local, so even random ids stream to the full
  // decode. Byte fallback replaces a whole invalid byte run, which a stream
  // that already emitted the run's valid start cannot take back; those ids
  // (whose decode holds U+FFFD) are held only to valid UTF-8 and to ending
  // with the decode's last character.
  const bool byte_level = GetParam() == "llama3" || GetParam() == "qwen2" || GetParam() == "gpt2" ||
                          GetParam() == "byte_level_prefix_space";
  int exact = 0;
  for (const auto& c : expected["decode_cases"]) {
    const auto ids = c["ids"].get<std::vector<TokenId>>();
    const std::string decoded = tokenizer->Decode(ids, false);
    EXPECT_EQ(decoded, c["decoded"].get<std::string>());
    const Streamed streamed = Stream(*tokenizer, ids, false);
    EXPECT_TRUE(streamed.all_valid) << c["ids"].dump();
    if (byte_level || decoded.find("\xEF\xBF\xBD") == std::string::npos) {
      ++exact;
      EXPECT_EQ(streamed.all, decoded) << c["ids"].dump();
      ExpectStepsKeepUp(*tokenizer, ids, false, streamed, c["ids"].dump());
    } else if (!decoded.empty()) {
      ASSERT_FALSE(streamed.all.empty()) << c["ids"].dump();
      EXPECT_EQ(streamed.all.back(), decoded.back()) << c["ids"].dump();
    }
  }
  EXPECT_GT(exact, 10);
}

INSTANTIATE_TEST_SUITE_P(Families, StreamingTest,
                         ::testing::Values("llama3", "qwen2", "gpt2", "llama2", "mistral",
                                           "metaspace_always", "llama2_normalized_specials",
                                           "byte_level_prefix_space"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param;
                         });

TEST(IncrementalDetokenizerTest, MultiByteCharacterSplitAcrossByteTokensIsHeldUntilComplete) {
  auto tokenizer = LoadFamily("llama2");
  ASSERT_NE(tokenizer, nullptr);
  // "😀" is not in the vocabulary: byte fallback gives four <0xNN> tokens.
  const auto ids = tokenizer->Encode("😀", false);
  ASSERT_GE(ids.size(), 4u);
  IncrementalDetokenizer detokenizer(*tokenizer, false);
  std::string out;
  for (size_t i = 0; i + 1 < ids.size(); ++i) out += detokenizer.Step(ids[i]);
  EXPECT_EQ(out.find("😀"), std::string::npos);
  out += detokenizer.Step(ids.back());
  EXPECT_EQ(out, tokenizer->Decode(ids, false));
  EXPECT_NE(out.find("😀"), std::string::npos);
  EXPECT_EQ(detokenizer.Flush(), "");
}

TEST(IncrementalDetokenizerTest, TextAfterAByteRunThatBecameInvalidStillStreamsBeforeFlush) {
  auto tokenizer = LoadFamily("llama2");
  ASSERT_NE(tokenizer, nullptr);
  // "é" as byte-fallback tokens is emitted; a third byte then makes the run
  // invalid, so the window's text no longer starts with the emitted "é".
  // Later words must still stream out of Step, not wait for Flush.
  std::vector<TokenId> ids;
  for (const char* token : {"<0xC3>", "<0xA9>", "<0xA9>", "▁the", "▁and", "▁is"}) {
    const std::optional<TokenId> id = tokenizer->TokenToId(token);
    ASSERT_TRUE(id.has_value()) << token;
    ids.push_back(*id);
  }
  IncrementalDetokenizer detokenizer(*tokenizer, false);
  std::string out;
  for (const TokenId id : ids) out += detokenizer.Step(id);
  EXPECT_NE(out.find(" the and"), std::string::npos) << out;
  EXPECT_TRUE(testing::IsStrictUtf8(out));
}

// Decodes by concatenating fixed pieces and records the longest id list it
// was asked to decode, to observe how much work each Step does.
class RecordingTokenizer final : public Tokenizer {
 public:
  // Id 0 is "a"; id 1 decodes to U+FFFD (an invalid byte); id 2 to nothing.
  std::vector<TokenId> Encode(std::string_view, bool) const override { return {}; }
  std::string Decode(const std::vector<TokenId>& ids, bool) const override {
    longest_decode_ = std::max(longest_decode_, ids.size());
    std::string text;
    for (const TokenId id : ids) text += id == 0 ? "a" : id == 1 ? "\xEF\xBF\xBD" : "";
    return text;
  }
  int32_t vocab_size() const override { return 3; }
  std::optional<TokenId> TokenToId(std::string_view) const override { return std::nullopt; }
  std::optional<std::string> IdToToken(TokenId) const override { return std::nullopt; }
  bool IsSpecial(TokenId) const override { return false; }

  size_t longest_decode() const { return longest_decode_; }

 private:
  mutable size_t longest_decode_ = 0;
};

TEST(IncrementalDetokenizerTest, StepsDecodeABoundedWindowWhateverThePromptAndOutputLength) {
  RecordingTokenizer tokenizer;
  IncrementalDetokenizer detokenizer(tokenizer, false);
  detokenizer.SetPrompt(std::vector<TokenId>(100000, 0));
  std::vector<TokenId> ids;
  for (int i = 0; i < 3000; ++i) ids.push_back(i % 300 < 100 ? 1 : i % 300 < 200 ? 2 : 0);
  std::string out;
  for (const TokenId id : ids) out += detokenizer.Step(id);
  EXPECT_LE(tokenizer.longest_decode(), 16u);
  out += detokenizer.Flush();
  EXPECT_EQ(out, tokenizer.Decode(ids, false));
}

TEST(IncrementalDetokenizerTest, ALongRunOfReplacementCharactersIsReleasedBeforeFlush) {
  RecordingTokenizer tokenizer;
  IncrementalDetokenizer detokenizer(tokenizer, false);
  std::string out;
  // No later token can complete a character that is 50 tokens long, so the
  // replacement characters are final and must not wait for the end.
  for (int i = 0; i < 50; ++i) out += detokenizer.Step(1);
  EXPECT_GE(out.size(), 3u * 40);
  out += detokenizer.Flush();
  EXPECT_EQ(out, tokenizer.Decode(std::vector<TokenId>(50, 1), false));
}

TEST(IncrementalDetokenizerTest, TheValidatorRejectsBrokenUtf8) {
  EXPECT_TRUE(testing::IsStrictUtf8("a\xC3\xA9\xF0\x9F\x98\x80"));
  EXPECT_FALSE(testing::IsStrictUtf8("\xF0\x9F\x98"));
  EXPECT_FALSE(testing::IsStrictUtf8("\x80"));
  EXPECT_FALSE(testing::IsStrictUtf8("\xC0\xAF"));
  EXPECT_FALSE(testing::IsStrictUtf8("\xED\xA0\x80"));
}

TEST(IncrementalDetokenizerTest, PromptContextKeepsTheLeadingSpaceOfTheFirstNewToken) {
  auto tokenizer = LoadFamily("llama2");
  ASSERT_NE(tokenizer, nullptr);
  const auto prompt = tokenizer->Encode("Hello", true);
  const auto all = tokenizer->Encode("Hello world", true);
  ASSERT_GT(all.size(), prompt.size());
  ASSERT_TRUE(std::equal(prompt.begin(), prompt.end(), all.begin()));
  IncrementalDetokenizer detokenizer(*tokenizer, true);
  detokenizer.SetPrompt(prompt);
  std::string out;
  for (size_t i = prompt.size(); i < all.size(); ++i) out += detokenizer.Step(all[i]);
  out += detokenizer.Flush();
  EXPECT_EQ(out, " world");
}

}  // namespace
}  // namespace muserve
