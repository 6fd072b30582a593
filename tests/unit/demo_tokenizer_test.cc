// The demo tokenizer: deterministic, special tokens at the last ids, sized by
// the spec up to what the corpus allows, and tokenizing exactly like Hugging
// Face `tokenizers` (reference encodings from make_tokenizer_fixtures.py).
#include "engine/tokenizer/demo_tokenizer.h"

#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/fixtures.h"

namespace muserve {
namespace {

using ::testing::ElementsAreArray;

std::unique_ptr<Tokenizer> Load(const DemoTokenizer& demo) {
  auto tokenizer = Tokenizer::FromJson(demo.json);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

class DemoReferenceTest : public ::testing::TestWithParam<int32_t> {};

TEST_P(DemoReferenceTest, TokenizesExactlyLikeHuggingFace) {
  const nlohmann::json expected = testing::ReadJsonOrFail(
      testing::FixturePath("tokenizer/demo/expected_" + std::to_string(GetParam()) + ".json"));
  const DemoTokenizer demo = MakeDemoTokenizer({.vocab_size = GetParam()});
  EXPECT_EQ(demo.vocab_size, expected["vocab_size"].get<int32_t>())
      << "the demo tokenizer changed: rerun tests/reference/make_tokenizer_fixtures.py";
  auto tokenizer = Load(demo);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->vocab_size(), demo.vocab_size);
  ASSERT_GE(expected["cases"].size(), 200u);
  for (const auto& c : expected["cases"]) {
    const std::string text = c["text"];
    EXPECT_THAT(tokenizer->Encode(text, false),
                ElementsAreArray(c["ids"].get<std::vector<TokenId>>()))
        << "text: " << c["text"].dump();
    const auto with_special = c["ids_with_special"].get<std::vector<TokenId>>();
    EXPECT_THAT(tokenizer->Encode(text, true), ElementsAreArray(with_special))
        << "text: " << c["text"].dump();
    EXPECT_EQ(tokenizer->Decode(with_special, false), c["decoded"].get<std::string>());
    EXPECT_EQ(tokenizer->Decode(with_special, true), c["decoded_skip"].get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(VocabSizes, DemoReferenceTest, ::testing::Values(300, 1000, 32000));

TEST(DemoTokenizerTest, IsDeterministic) {
  EXPECT_EQ(MakeDemoTokenizerJson({.vocab_size = 1000}),
            MakeDemoTokenizerJson({.vocab_size = 1000}));
}

TEST(DemoTokenizerTest, SpecialTokensTakeTheLastIds) {
  for (const int32_t size : {300, 512, 1000, 32000}) {
    const DemoTokenizer demo = MakeDemoTokenizer({.vocab_size = size});
    auto tokenizer = Load(demo);
    ASSERT_NE(tokenizer, nullptr);
    const std::vector<std::string> names = {"<|begin_of_text|>", "<|end_of_text|>",
                                            "<|start_header_id|>", "<|end_header_id|>",
                                            "<|eot_id|>"};
    const std::vector<int32_t> ids = {demo.begin_of_text_id, demo.end_of_text_id,
                                      demo.start_header_id, demo.end_header_id, demo.eot_id};
    for (size_t i = 0; i < names.size(); ++i) {
      EXPECT_EQ(tokenizer->TokenToId(names[i]), demo.vocab_size - 5 + static_cast<int32_t>(i));
      EXPECT_EQ(ids[i], demo.vocab_size - 5 + static_cast<int32_t>(i));
      EXPECT_TRUE(tokenizer->IsSpecial(ids[i]));
    }
    EXPECT_EQ(tokenizer->Encode("hi", true).at(0), demo.begin_of_text_id);
  }
}

TEST(DemoTokenizerTest, VocabSizeIsMetExactlyUntilTheCorpusRunsOutOfMerges) {
  for (const int32_t size : {300, 512, 1000}) {
    EXPECT_EQ(MakeDemoTokenizer({.vocab_size = size}).vocab_size, size);
  }
  const int32_t largest = MakeDemoTokenizer({.vocab_size = 32000}).vocab_size;
  EXPECT_LT(largest, 32000);
  EXPECT_GT(largest, 1000);
  // Below bytes + specials the size is raised to the minimum.
  EXPECT_EQ(MakeDemoTokenizer({.vocab_size = 10}).vocab_size, 261);
}

TEST(DemoTokenizerTest, RoundTripsArbitraryText) {
  auto tokenizer = Load(MakeDemoTokenizer({.vocab_size = 512}));
  ASSERT_NE(tokenizer, nullptr);
  const std::string text = "Zebras 🦓 eat grass; naïve café — 12345\r\n\tend";
  EXPECT_EQ(tokenizer->Decode(tokenizer->Encode(text, true), true), text);
}

}  // namespace
}  // namespace muserve
