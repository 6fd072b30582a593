// Compares muserve's Tokenizer with Hugging Face `tokenizers` on the fixtures
// written by tests/reference/make_tokenizer_fixtures.py: one small tokenizer
// per model family, >= 200 strings, exact ids and decoded text.
#include "engine/tokenizer/tokenizer.h"

#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/tokenizer/unicode.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/fixtures.h"

namespace muserve {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::unique_ptr<Tokenizer> LoadFamily(const std::string& family) {
  auto tokenizer =
      Tokenizer::FromFile(testing::FixturePath("tokenizer/" + family + "/tokenizer.json"));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

nlohmann::json LoadExpected(const std::string& family) {
  return testing::ReadJsonOrFail(testing::FixturePath("tokenizer/" + family + "/expected.json"));
}

class FamilyTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyTest, EncodesEveryFixtureStringLikeHuggingFace) {
  auto tokenizer = LoadFamily(GetParam());
  ASSERT_NE(tokenizer, nullptr);
  const nlohmann::json expected = LoadExpected(GetParam());
  ASSERT_GE(expected["cases"].size(), 200u);
  for (const auto& c : expected["cases"]) {
    const std::string text = c["text"];
    EXPECT_THAT(tokenizer->Encode(text, false),
                ElementsAreArray(c["ids"].get<std::vector<TokenId>>()))
        << "text: " << nlohmann::json(text).dump();
    EXPECT_THAT(tokenizer->Encode(text, true),
                ElementsAreArray(c["ids_with_special"].get<std::vector<TokenId>>()))
        << "text: " << nlohmann::json(text).dump();
  }
}

TEST_P(FamilyTest, DecodesLikeHuggingFaceWithAndWithoutSpecialTokens) {
  auto tokenizer = LoadFamily(GetParam());
  ASSERT_NE(tokenizer, nullptr);
  const nlohmann::json expected = LoadExpected(GetParam());
  for (const auto& c : expected["cases"]) {
    const auto ids = c["ids_with_special"].get<std::vector<TokenId>>();
    EXPECT_EQ(tokenizer->Decode(ids, false), c["decoded"].get<std::string>())
        << "text: " << nlohmann::json(c["text"]).dump();
    EXPECT_EQ(tokenizer->Decode(ids, true), c["decoded_skip"].get<std::string>())
        << "text: " << nlohmann::json(c["text"]).dump();
  }
}

TEST_P(FamilyTest, DecodesRandomIdSequencesIncludingStrayBytesLikeHuggingFace) {
  auto tokenizer = LoadFamily(GetParam());
  ASSERT_NE(tokenizer, nullptr);
  const nlohmann::json expected = LoadExpected(GetParam());
  ASSERT_FALSE(expected["decode_cases"].empty());
  for (const auto& c : expected["decode_cases"]) {
    const auto ids = c["ids"].get<std::vector<TokenId>>();
    EXPECT_EQ(tokenizer->Decode(ids, false), c["decoded"].get<std::string>()) << c["ids"].dump();
    EXPECT_EQ(tokenizer->Decode(ids, true), c["decoded_skip"].get<std::string>())
        << c["ids"].dump();
  }
}

TEST_P(FamilyTest, TokenLookupsAgreeWithTheVocabulary) {
  auto tokenizer = LoadFamily(GetParam());
  ASSERT_NE(tokenizer, nullptr);
  for (TokenId id = 0; id < tokenizer->vocab_size(); ++id) {
    const auto token = tokenizer->IdToToken(id);
    if (!token) continue;
    EXPECT_EQ(tokenizer->TokenToId(*token), id) << *token;
  }
  EXPECT_FALSE(tokenizer->IdToToken(tokenizer->vocab_size()).has_value());
  EXPECT_FALSE(tokenizer->IdToToken(-1).has_value());
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyTest,
                         ::testing::Values("llama3", "qwen2", "gpt2", "llama2", "mistral",
                                           "metaspace_always", "llama2_normalized_specials",
                                           "byte_level_prefix_space"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param;
                         });

TEST(TokenizerTest, SpecialTokensAreMarkedSpecial) {
  auto tokenizer = LoadFamily("llama3");
  ASSERT_NE(tokenizer, nullptr);
  const auto bos = tokenizer->TokenToId("<|begin_of_text|>");
  ASSERT_TRUE(bos.has_value());
  EXPECT_TRUE(tokenizer->IsSpecial(*bos));
  EXPECT_EQ(*bos, tokenizer->Encode("", true).at(0));
  const auto hello = tokenizer->Encode("Hello", false);
  ASSERT_FALSE(hello.empty());
  EXPECT_FALSE(tokenizer->IsSpecial(hello[0]));
  EXPECT_EQ(tokenizer->vocab_size(), *tokenizer->TokenToId("<|eot_id|>") + 1);
}

TEST(TokenizerTest, InvalidUtf8InputIsEncodedAsReplacementCharacters) {
  auto tokenizer = LoadFamily("llama3");
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->Encode("a\xff"
                              "b",
                              false),
            tokenizer->Encode("a\xEF\xBF\xBD"
                              "b",
                              false));
}

// A megabyte of mixed text: the ids of a long input are as many as expected
// and decode back to the text. (Throughput is bench/tokenizer_bench's job; a
// quadratic regression would still show here as the test's ctest timeout.)
TEST(TokenizerTest, EncodesAMegabyte) {
  for (const char* family : {"llama3", "mistral"}) {
    auto tokenizer = LoadFamily(family);
    ASSERT_NE(tokenizer, nullptr);
    const nlohmann::json expected = LoadExpected(family);
    std::string text;
    for (size_t i = 0; text.size() < (1u << 20); ++i) {
      text += expected["cases"][i % expected["cases"].size()]["text"].get<std::string>();
      text += ' ';
    }
    const auto ids = tokenizer->Encode(text, false);
    EXPECT_GT(ids.size(), 100000u) << family;
    if (std::string(family) == "llama3") {
      // Byte-level BPE is lossless (Metaspace turns "▁" into spaces).
      EXPECT_TRUE(tokenizer->Decode(ids, false) == text);
    }
  }
}

TEST(TokenizerTest, ConcurrentEncodesGiveTheSameIds) {
  auto tokenizer = LoadFamily("qwen2");
  ASSERT_NE(tokenizer, nullptr);
  const nlohmann::json expected = LoadExpected("qwen2");
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (const auto& c : expected["cases"]) {
        if (tokenizer->Encode(c["text"].get<std::string>(), true) !=
            c["ids_with_special"].get<std::vector<TokenId>>()) {
          ++mismatches[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_THAT(mismatches, ::testing::Each(0));
}

absl::Status LoadError(const std::string& json) {
  return Tokenizer::FromJson(json, "tokenizer.json").status();
}

std::string MinimalBpe(const std::string& extra_model_fields, const std::string& top_fields) {
  return R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"])" +
         extra_model_fields + "}" + top_fields + "}";
}

TEST(TokenizerLoadTest, UnsupportedModelTypeNamesTheField) {
  const absl::Status status =
      LoadError(R"({"model": {"type": "Unigram", "vocab": [], "unk_id": 0}})");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "tokenizer.json: model.type 'Unigram' is not supported");
}

TEST(TokenizerLoadTest, UnsupportedComponentsNameTheirField) {
  EXPECT_THAT(LoadError(MinimalBpe("", R"(, "pre_tokenizer": {"type": "Sequence",
      "pretokenizers": [{"type": "ByteLevel"}, {"type": "BertPreTokenizer"}]})"))
                  .message(),
              HasSubstr("pre_tokenizer.pretokenizers[1].type 'BertPreTokenizer' is not supported"));
  EXPECT_THAT(LoadError(MinimalBpe("", R"(, "normalizer": {"type": "Precompiled"})")).message(),
              HasSubstr("normalizer.type 'Precompiled'"));
  EXPECT_THAT(LoadError(MinimalBpe("", R"(, "decoder": {"type": "WordPiece"})")).message(),
              HasSubstr("decoder.type 'WordPiece'"));
  EXPECT_THAT(LoadError(MinimalBpe(R"(, "dropout": 0.1)", "")).message(),
              HasSubstr("model.dropout"));
  EXPECT_THAT(LoadError(MinimalBpe(R"(, "continuing_subword_prefix": "##")", "")).message(),
              HasSubstr("model.continuing_subword_prefix"));
  EXPECT_THAT(LoadError(MinimalBpe("", R"(, "pre_tokenizer": {"type": "Split",
      "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false})"))
                  .message(),
              HasSubstr("pre_tokenizer.pattern"));
}

TEST(TokenizerLoadTest, MalformedFilesAreErrorsNotCrashes) {
  EXPECT_THAT(LoadError("{not json").message(), HasSubstr("tokenizer.json: not valid JSON"));
  EXPECT_THAT(LoadError(R"({"normalizer": null})").message(), HasSubstr("model is missing"));
  EXPECT_THAT(
      LoadError(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})").message(),
      HasSubstr("model.merges[0]"));
  EXPECT_THAT(LoadError(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [],
      "unk_token": "<unk>"}})")
                  .message(),
              HasSubstr("model.unk_token"));
  EXPECT_EQ(Tokenizer::FromFile("/nonexistent/tokenizer.json").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(TokenizerLoadTest, MergesGivenAsPairsEqualMergesGivenAsStrings) {
  auto as_string = Tokenizer::FromJson(MinimalBpe("", ""));
  auto as_pair = Tokenizer::FromJson(
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}})");
  ASSERT_TRUE(as_string.ok()) << as_string.status();
  ASSERT_TRUE(as_pair.ok()) << as_pair.status();
  EXPECT_THAT((*as_string)->Encode("abab", false), ElementsAreArray({2, 2}));
  EXPECT_THAT((*as_pair)->Encode("abab", false), ElementsAreArray({2, 2}));
}

TEST(TokenizerLoadTest, UnknownCharactersFuseIntoOneUnkWhenFuseUnkIsSet) {
  const std::string json = R"({"model": {"type": "BPE", "vocab": {"<unk>": 0, "a": 1},
      "merges": [], "unk_token": "<unk>", "fuse_unk": FUSE}})";
  auto fused = Tokenizer::FromJson(std::string(json).replace(json.find("FUSE"), 4, "true"));
  auto unfused = Tokenizer::FromJson(std::string(json).replace(json.find("FUSE"), 4, "false"));
  ASSERT_TRUE(fused.ok() && unfused.ok());
  EXPECT_THAT((*fused)->Encode("axyza", false), ElementsAreArray({1, 0, 1}));
  EXPECT_THAT((*unfused)->Encode("axyza", false), ElementsAreArray({1, 0, 0, 0, 1}));
}

TEST(TokenizerLoadTest, TokenIdsFarPastTheVocabularyAreRejectedNamingTheField) {
  // Would otherwise size id-indexed tables (and vocab_size()) by the id.
  EXPECT_THAT(LoadError(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1073741824},
      "merges": []}})")
                  .message(),
              HasSubstr("model.vocab entry 'b' has id 1073741824, too far past the 2 entries"));
  EXPECT_THAT(
      LoadError(R"({"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}})").message(),
      HasSubstr("model.vocab entry 'a' must have a non-negative integer id"));
  EXPECT_THAT(LoadError(MinimalBpe("", R"(, "added_tokens": [{"id": 1073741824,
      "content": "<x>", "special": true}])"))
                  .message(),
              HasSubstr("added_tokens[0].id is 1073741824, too far past the 4 tokens"));
  EXPECT_THAT(LoadError(MinimalBpe("", R"(, "added_tokens": [{"id": 18446744073709551615,
      "content": "<x>", "special": true}])"))
                  .message(),
              HasSubstr("added_tokens[0].id must be a non-negative integer"));
  // Holes are fine: added tokens often own ids the model vocabulary skips.
  auto with_hole = Tokenizer::FromJson(MinimalBpe("", R"(, "added_tokens": [{"id": 1000,
      "content": "<x>", "special": true}])"));
  ASSERT_TRUE(with_hole.ok()) << with_hole.status();
  EXPECT_EQ((*with_hole)->vocab_size(), 1001);
}

std::string WithTemplateIds(const std::string& ids) {
  return MinimalBpe("", R"(, "added_tokens": [{"id": 3, "content": "<s>", "special": true}],
      "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": )" +
                            ids + R"(, "tokens": ["<s>"]}}})");
}

TEST(TokenizerLoadTest, PostProcessorIdsMustBeTokensOfTheVocabulary) {
  auto valid = Tokenizer::FromJson(WithTemplateIds("[3]"));
  ASSERT_TRUE(valid.ok()) << valid.status();
  EXPECT_THAT((*valid)->Encode("ab", true), ElementsAreArray({3, 2}));
  // 2^32 + 3 used to narrow silently to 3.
  for (const std::string ids : {"[4294967299]", "[-1]", "[4]", "[1.5]", "[\"3\"]"}) {
    EXPECT_THAT(LoadError(WithTemplateIds(ids)).message(),
                HasSubstr("post_processor.special_tokens['<s>'].ids"))
        << ids;
  }
  EXPECT_THAT(LoadError(MinimalBpe("", R"(, "post_processor": {"type": "BertProcessing",
      "cls": ["[CLS]", 7], "sep": ["b", 1]})"))
                  .message(),
              HasSubstr("post_processor.cls holds 7, which is not a token id of the vocabulary"));
}

TEST(TokenizerTest, NextCodePointNeverSwallowsTheCharactersAfterATruncatedSequence) {
  using tokenizer_internal::kReplacementChar;
  using tokenizer_internal::NextCodePoint;
  auto code_points = [](std::string_view text) {
    std::vector<char32_t> out;
    for (size_t pos = 0; pos < text.size();) out.push_back(NextCodePoint(text, &pos));
    return out;
  };
  EXPECT_THAT(code_points("\xE4"
                          "ab"),
              ElementsAreArray({kReplacementChar, U'a', U'b'}));
  // One U+FFFD per maximal invalid subpart, as String::from_utf8_lossy.
  EXPECT_THAT(code_points("\xE4\xB8"
                          "a"),
              ElementsAreArray({kReplacementChar, U'a'}));
  EXPECT_THAT(code_points("\xF0\x9F\x98"), ElementsAreArray({kReplacementChar}));
  EXPECT_THAT(code_points("\xC0\xAF"
                          "x"),
              ElementsAreArray({kReplacementChar, kReplacementChar, U'x'}));
  EXPECT_THAT(code_points("\xED\xA0\x80"),
              ElementsAreArray({kReplacementChar, kReplacementChar, kReplacementChar}));
  EXPECT_THAT(code_points("a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80"),
              ElementsAreArray({U'a', U'\u00E9', U'\u4E2D', U'\U0001F600'}));
}

}  // namespace
}  // namespace muserve
