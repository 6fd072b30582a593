// OutputProcessor: stop criteria and streamed deltas, on the demo byte-level
// tokenizer (and the Llama 2 byte-fallback fixture for one property). Tokens
// are chosen by hand: single bytes through the byte-level alphabet, so a stop
// string can be split at exactly the places a test wants, and whole-word
// tokens where a test needs several characters in one token.
#include "scheduler/output_processor.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampling/sampler.h"
#include "engine/tokenizer/demo_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/request.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/utf8.h"

namespace muserve {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// GPT-2's bytes_to_unicode: the byte-level alphabet character of one byte.
std::string ByteLevelChar(unsigned char byte) {
  uint32_t cp = byte;
  if (!((byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) || byte >= 0xAE)) {
    uint32_t n = 0;
    for (uint32_t b = 0; b < byte; ++b) {
      if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) ++n;
    }
    cp = 256 + n;
  }
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

struct Generated {
  std::vector<OutputProcessor::StepResult> steps;  // one per Append, in order
  std::string text;                                // all deltas' text
  std::vector<TokenId> token_ids;                  // all deltas' ids
  std::vector<TokenLogprob> logprobs;
  bool finished = false;
  FinishReason reason = FinishReason::kLength;
  std::optional<TokenId> matched_stop_token;
  std::optional<std::string> matched_stop_string;
};

struct Options {
  StopParams stop;
  int32_t max_output_tokens = 100;
  bool skip_special_tokens = true;
  bool want_logprobs = false;
  std::vector<TokenId> prompt;
};

class OutputProcessorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    demo_ = new DemoTokenizer(MakeDemoTokenizer({.vocab_size = 1000}));
    auto tokenizer = Tokenizer::FromJson(demo_->json);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = tokenizer->release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete demo_;
  }

  // One byte token per byte of `text`.
  static std::vector<TokenId> Bytes(std::string_view text) {
    std::vector<TokenId> ids;
    for (const char c : text) {
      const std::optional<TokenId> id = tokenizer_->TokenToId(ByteLevelChar(c));
      EXPECT_TRUE(id.has_value()) << "no byte token for " << static_cast<int>(c);
      ids.push_back(id.value_or(0));
    }
    return ids;
  }

  // The one token whose text is `text` (a word of the demo vocabulary).
  static TokenId Word(std::string_view text) {
    const std::vector<TokenId> ids = tokenizer_->Encode(text, false);
    EXPECT_EQ(ids.size(), 1u) << "'" << text << "' is not one token";
    return ids.empty() ? 0 : ids[0];
  }

  static std::vector<TokenId> Concat(std::initializer_list<std::vector<TokenId>> parts) {
    std::vector<TokenId> out;
    for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
    return out;
  }

  static TokenId Eos() { return demo_->eot_id; }

  // Appends `ids` until a result says finished; never appends after that.
  static Generated Feed(OutputProcessor& processor, const std::vector<TokenId>& ids) {
    Generated run;
    for (const TokenId id : ids) {
      SampledToken token;
      token.token = id;
      token.logprob = -0.5f - static_cast<float>(id) / 1000.0f;
      token.top_logprobs = {{id, *token.logprob}, {id + 1, *token.logprob - 1.0f}};
      OutputProcessor::StepResult step = processor.Append(token);
      EXPECT_TRUE(testing::IsStrictUtf8(step.delta.text)) << step.delta.text;
      run.text += step.delta.text;
      run.token_ids.insert(run.token_ids.end(), step.delta.token_ids.begin(),
                           step.delta.token_ids.end());
      run.logprobs.insert(run.logprobs.end(), step.delta.logprobs.begin(),
                          step.delta.logprobs.end());
      run.steps.push_back(step);
      if (step.finished) {
        run.finished = true;
        run.reason = step.reason;
        run.matched_stop_token = step.matched_stop_token;
        run.matched_stop_string = step.matched_stop_string;
        break;
      }
    }
    return run;
  }

  static std::unique_ptr<OutputProcessor> Make(const Options& options) {
    return std::make_unique<OutputProcessor>(
        *tokenizer_, options.prompt.empty() ? Bytes("Q: ") : options.prompt, options.stop,
        options.skip_special_tokens, std::vector<TokenId>{Eos(), demo_->end_of_text_id},
        options.max_output_tokens, options.want_logprobs);
  }

  static Generated Generate(const Options& options, const std::vector<TokenId>& ids) {
    auto processor = Make(options);
    return Feed(*processor, ids);
  }

  static Options WithStops(std::vector<std::string> stop_strings) {
    Options options;
    options.stop.stop_strings = std::move(stop_strings);
    return options;
  }

  static inline DemoTokenizer* demo_ = nullptr;
  static inline Tokenizer* tokenizer_ = nullptr;
};

// ---- stop strings ---------------------------------------------------------------

TEST_F(OutputProcessorTest, StopStringSplitAcrossTwoTokensEndsTextBeforeIt) {
  const Generated run = Generate(WithStops({"ab"}), Bytes("xyabzz"));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kStopString);
  EXPECT_EQ(run.matched_stop_string, "ab");
  EXPECT_EQ(run.text, "xy");
  EXPECT_EQ(run.steps.size(), 4u);  // stopped on the token completing "ab"
  // The completing token is still reported.
  EXPECT_THAT(run.token_ids, ElementsAreArray(Bytes("xyab")));
}

TEST_F(OutputProcessorTest, StopStringSplitAcrossThreeTokensIsHeldUntilItCompletes) {
  const Generated run = Generate(WithStops({"abc"}), Bytes("zabcd"));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kStopString);
  EXPECT_EQ(run.text, "z");
  ASSERT_EQ(run.steps.size(), 4u);
  EXPECT_EQ(run.steps[0].delta.text, "z");
  EXPECT_EQ(run.steps[1].delta.text, "");  // "a" could begin "abc"
  EXPECT_EQ(run.steps[2].delta.text, "");  // "ab" too
  EXPECT_EQ(run.steps[3].delta.text, "");
}

TEST_F(OutputProcessorTest, StopStringInsideOneTokenReleasesOnlyTheTextBeforeIt) {
  const TokenId the = Word(" the");
  const Generated run = Generate(WithStops({"he"}), {Bytes("A")[0], the, Bytes("x")[0]});
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kStopString);
  EXPECT_EQ(run.text, "A t");
  EXPECT_EQ(run.steps.size(), 2u);
  EXPECT_THAT(run.token_ids, ElementsAre(Bytes("A")[0], the));
}

TEST_F(OutputProcessorTest, HeldBackPrefixIsReleasedByTheTokenThatRulesItOut) {
  const Generated run = Generate(WithStops({"abc"}), Bytes("xabd"));
  EXPECT_FALSE(run.finished);
  ASSERT_EQ(run.steps.size(), 4u);
  EXPECT_EQ(run.steps[0].delta.text, "x");
  EXPECT_EQ(run.steps[1].delta.text, "");
  EXPECT_EQ(run.steps[2].delta.text, "");
  EXPECT_EQ(run.steps[3].delta.text, "abd");
}

TEST_F(OutputProcessorTest, ReleaseKeepsTheLongestSuffixThatCouldStillMatch) {
  // After "aa" a third "a" rules out a match starting at the first one only:
  // "a" is released and "aa" is still held for "aab".
  const Generated run = Generate(WithStops({"aab"}), Bytes("aaab"));
  ASSERT_EQ(run.steps.size(), 4u);
  EXPECT_EQ(run.steps[2].delta.text, "a");
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kStopString);
  EXPECT_EQ(run.text, "a");
}

TEST_F(OutputProcessorTest, StopStringEndingFirstWinsWhateverTheTokenization) {
  // "bc" is complete before "abcd": byte by byte, "bc" fires at "c".
  const Generated bytes = Generate(WithStops({"abcd", "bc"}), Bytes("xabcd"));
  ASSERT_TRUE(bytes.finished);
  EXPECT_EQ(bytes.matched_stop_string, "bc");
  EXPECT_EQ(bytes.text, "xa");
  // Within one token the same rule holds: " th" ends before "the" and "he".
  const Generated word = Generate(WithStops({"he", " th"}), {Word(" the")});
  ASSERT_TRUE(word.finished);
  EXPECT_EQ(word.matched_stop_string, " th");
  EXPECT_EQ(word.text, "");
}

TEST_F(OutputProcessorTest, StopStringsEndingTogetherGoToTheLongest) {
  for (const std::vector<TokenId>& ids : {std::vector<TokenId>{Word(" the")}, Bytes(" the")}) {
    const Generated run = Generate(WithStops({"he", "the"}), ids);
    ASSERT_TRUE(run.finished);
    EXPECT_EQ(run.matched_stop_string, "the");
    EXPECT_EQ(run.text, " ");
  }
  // Same start: the shorter one is complete first.
  const Generated same_start = Generate(WithStops({"the", "th"}), {Word(" the")});
  ASSERT_TRUE(same_start.finished);
  EXPECT_EQ(same_start.matched_stop_string, "th");
  EXPECT_EQ(same_start.text, " ");
}

TEST_F(OutputProcessorTest, MultiByteStopStringSplitInsideCharactersIsMatched) {
  // "日本" is six bytes, here six tokens; the detokenizer releases whole
  // characters only, and the match still lands on the right one.
  const Generated run = Generate(WithStops({"日本"}), Bytes("é日本語"));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kStopString);
  EXPECT_EQ(run.text, "é");
  EXPECT_EQ(run.token_ids.size(), 2u + 6u);
}

TEST_F(OutputProcessorTest, MultiByteHeldPrefixIsReleasedWhole) {
  // "日" and "本" share their lead byte E6; "日本x" rules out "日本語".
  const Generated run = Generate(WithStops({"日本語", "本当"}), Bytes("日本x"));
  EXPECT_FALSE(run.finished);
  EXPECT_EQ(run.text, "日本x");
  ASSERT_EQ(run.steps.size(), 7u);
  EXPECT_EQ(run.steps[5].delta.text, "");  // "日本" held
  EXPECT_EQ(run.steps[6].delta.text, "日本x");
}

TEST_F(OutputProcessorTest, StopStringMatchesSpecialTokenTextOnlyWhenSpecialTokensAreKept) {
  const std::vector<TokenId> ids = Concat({Bytes("hi"), {demo_->start_header_id}, Bytes("ok")});
  Options options = WithStops({"<|start_header_id|>"});
  options.skip_special_tokens = false;
  const Generated kept = Generate(options, ids);
  ASSERT_TRUE(kept.finished);
  EXPECT_EQ(kept.reason, FinishReason::kStopString);
  EXPECT_EQ(kept.text, "hi");

  options.skip_special_tokens = true;
  const Generated skipped = Generate(options, ids);
  EXPECT_FALSE(skipped.finished);
  EXPECT_EQ(skipped.text, "hiok");
  EXPECT_THAT(skipped.token_ids, ElementsAreArray(ids));  // the id is still emitted
}

// ---- stop tokens -------------------------------------------------------------------

TEST_F(OutputProcessorTest, EosEndsWithoutEmittingAndReleasesHeldText) {
  auto processor = Make(WithStops({"ab"}));
  const Generated run = Feed(*processor, Concat({Bytes("xa"), {Eos()}, Bytes("b")}));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kEos);
  EXPECT_EQ(run.matched_stop_token, Eos());
  EXPECT_EQ(run.text, "xa");
  ASSERT_EQ(run.steps.size(), 3u);
  EXPECT_EQ(run.steps[2].delta.text, "a");
  EXPECT_THAT(run.token_ids, ElementsAreArray(Bytes("xa")));
  EXPECT_EQ(processor->num_output_tokens(), 3);  // EOS counts in usage
}

TEST_F(OutputProcessorTest, EveryModelEosIdEndsGeneration) {
  const Generated run = Generate(Options{}, Concat({Bytes("x"), {demo_->end_of_text_id}}));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kEos);
  EXPECT_EQ(run.matched_stop_token, demo_->end_of_text_id);
}

TEST_F(OutputProcessorTest, IgnoreEosTreatsEosAsAnOrdinaryToken) {
  Options options;
  options.stop.ignore_eos = true;
  options.skip_special_tokens = false;
  const std::vector<TokenId> ids = Concat({Bytes("x"), {Eos()}, Bytes("y")});
  const Generated run = Generate(options, ids);
  EXPECT_FALSE(run.finished);
  EXPECT_THAT(run.token_ids, ElementsAreArray(ids));
  EXPECT_EQ(run.text, "x<|eot_id|>y");
}

TEST_F(OutputProcessorTest, StopTokenIdEndsWithoutEmitting) {
  Options options;
  const TokenId stop_id = Bytes("!")[0];
  options.stop.stop_token_ids = {stop_id};
  const Generated run = Generate(options, Bytes("hey!you"));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kStopToken);
  EXPECT_EQ(run.matched_stop_token, stop_id);
  EXPECT_EQ(run.text, "hey");
  EXPECT_THAT(run.token_ids, ElementsAreArray(Bytes("hey")));
}

TEST_F(OutputProcessorTest, EosListedAsStopTokenStopsEvenWithIgnoreEos) {
  Options options;
  options.stop.ignore_eos = true;
  options.stop.stop_token_ids = {Eos()};
  const Generated run = Generate(options, Concat({Bytes("x"), {Eos()}}));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kStopToken);
  options.stop.ignore_eos = false;
  EXPECT_EQ(Generate(options, Concat({Bytes("x"), {Eos()}})).reason, FinishReason::kEos);
}

// ---- min_tokens ----------------------------------------------------------------------

TEST_F(OutputProcessorTest, MinTokensSuppressesEosUntilThatManyTokensWereEmitted) {
  Options options;
  options.stop.min_tokens = 2;
  // The first EOS comes after one emitted token: too early.
  const std::vector<TokenId> ids = Concat({Bytes("a"), {Eos()}, Bytes("b"), {Eos()}});
  const Generated run = Generate(options, ids);
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kEos);
  EXPECT_EQ(run.steps.size(), 4u);
  // The early EOS is an ordinary token (its text skipped as special).
  EXPECT_THAT(run.token_ids, ElementsAre(ids[0], Eos(), ids[2]));
  EXPECT_EQ(run.text, "ab");
}

TEST_F(OutputProcessorTest, MinTokensSuppressesStopTokenIds) {
  Options options;
  options.stop.min_tokens = 2;
  options.stop.stop_token_ids = {Bytes("!")[0]};
  const Generated run = Generate(options, Bytes("a!b!c"));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kStopToken);
  EXPECT_EQ(run.text, "a!b");
}

TEST_F(OutputProcessorTest, MinTokensSuppressesStopStringsCompletedBeforeIt) {
  Options options = WithStops({"ab"});
  options.stop.min_tokens = 3;
  const Generated run = Generate(options, Bytes("abcabd"));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kStopString);
  EXPECT_EQ(run.text, "abc");
  EXPECT_EQ(run.steps.size(), 5u);
  EXPECT_EQ(run.steps[1].delta.text, "ab");  // a suppressed match is ordinary text
}

TEST_F(OutputProcessorTest, StopStringCompletedByTokenNumberMinTokensFires) {
  Options options = WithStops({"ab"});
  options.stop.min_tokens = 2;
  const Generated run = Generate(options, Bytes("abc"));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.text, "");
  EXPECT_EQ(run.steps.size(), 2u);
}

TEST_F(OutputProcessorTest, AfterMinTokensOnlyMatchesEndingInNewTextFire) {
  // "ab" completed (suppressed) at token 2 is not found again at token 3;
  // "abc", begun before min_tokens and completed after, is.
  Options options = WithStops({"ab", "abc"});
  options.stop.min_tokens = 3;
  const Generated run = Generate(options, Bytes("abcd"));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.matched_stop_string, "abc");
  EXPECT_EQ(run.text, "");
  EXPECT_EQ(run.steps.size(), 3u);
}

// ---- length and aborts ------------------------------------------------------------------

TEST_F(OutputProcessorTest, MaxTokensEndsWithLengthAndReleasesHeldText) {
  Options options = WithStops({"abc"});
  options.stop.max_tokens = 2;
  options.max_output_tokens = 2;
  const Generated run = Generate(options, Bytes("xabc"));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kLength);
  EXPECT_EQ(run.text, "xa");
  EXPECT_EQ(run.steps.size(), 2u);
  EXPECT_EQ(run.steps[1].delta.text, "a");
}

TEST_F(OutputProcessorTest, ContextCapBelowMaxTokensEndsWithLength) {
  Options options;
  options.stop.max_tokens = 50;
  options.max_output_tokens = 3;
  const Generated run = Generate(options, Bytes("abcdef"));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kLength);
  EXPECT_EQ(run.text, "abc");
}

TEST_F(OutputProcessorTest, LastTokenReleasesAnIncompleteCharacterAsReplacement) {
  Options options;
  options.max_output_tokens = 2;
  const Generated run = Generate(options, Bytes("x\xE6\x97\xA5"));  // "x" + 2 of 日's 3 bytes
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kLength);
  EXPECT_EQ(run.text, "x\xEF\xBF\xBD");
}

TEST_F(OutputProcessorTest, StopStringOnTheLastAllowedTokenReportsTheStopString) {
  Options options = WithStops({"ab"});
  options.max_output_tokens = 2;
  const Generated run = Generate(options, Bytes("ab"));
  ASSERT_TRUE(run.finished);
  EXPECT_EQ(run.reason, FinishReason::kStopString);
  EXPECT_EQ(run.text, "");
}

TEST_F(OutputProcessorTest, FinishReleasesHeldTextOnlyWhenAsked) {
  for (const bool release : {true, false}) {
    auto processor = Make(WithStops({"abc"}));
    const Generated run = Feed(*processor, Bytes("xab"));
    EXPECT_EQ(run.text, "x");
    EXPECT_EQ(processor->Finish(release).text, release ? "ab" : "");
    EXPECT_TRUE(processor->finished());
    EXPECT_EQ(processor->Finish(true).text, "");  // only once
  }
}

TEST_F(OutputProcessorTest, FinishFlushesTheDetokenizersIncompleteTail) {
  auto processor = Make(Options{});
  const Generated run = Feed(*processor, Bytes("y\xE6"));
  EXPECT_EQ(run.text, "y");
  EXPECT_EQ(processor->Finish(true).text, "\xEF\xBF\xBD");
}

// ---- ids, logprobs, and the text as a whole -----------------------------------------------

TEST_F(OutputProcessorTest, LogprobsAccompanyEachEmittedTokenOnlyWhenWanted) {
  Options options;
  options.want_logprobs = true;
  const std::vector<TokenId> ids = Concat({Bytes("ab"), {Eos()}});
  const Generated run = Generate(options, ids);
  ASSERT_EQ(run.logprobs.size(), 2u);  // none for the EOS
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(run.logprobs[i].token, ids[i]);
    EXPECT_FLOAT_EQ(run.logprobs[i].logprob, -0.5f - static_cast<float>(ids[i]) / 1000.0f);
    ASSERT_EQ(run.logprobs[i].top.size(), 2u);
    EXPECT_EQ(run.logprobs[i].top[1].first, ids[i] + 1);
  }
  options.want_logprobs = false;
  EXPECT_THAT(Generate(options, ids).logprobs, IsEmpty());
}

TEST_F(OutputProcessorTest, DeltasConcatenateToTheDecodeCutAtTheStopString) {
  const std::string text =
      "Hello there, the quick brown fox jumps over the lazy dog. Ünïcödé 日本語 🎉 and "
      "code: for (int i = 0; i < n; ++i) { sum += i; } Done.";
  const std::vector<TokenId> ids = tokenizer_->Encode(text, false);
  for (const std::string stop :
       {"", "fox", "the lazy", "日本", "🎉 and", "++i", "Done.", "not present"}) {
    SCOPED_TRACE("stop '" + stop + "'");
    Options options = stop.empty() ? Options{} : WithStops({stop});
    auto processor = Make(options);
    Generated run = Feed(*processor, ids);
    if (!run.finished) run.text += processor->Finish(true).text;
    const std::string full = tokenizer_->Decode(run.token_ids, true);
    const size_t at = stop.empty() ? std::string::npos : full.find(stop);
    EXPECT_EQ(run.text, full.substr(0, at));
    EXPECT_EQ(run.finished, at != std::string::npos);
    if (at != std::string::npos) {
      EXPECT_TRUE(full.ends_with(stop)) << "stopped on the token completing the match";
    } else {
      EXPECT_EQ(run.token_ids, ids);
    }
  }
}

TEST_F(OutputProcessorTest, DeltasConcatenateToTheDecodeWithByteFallbackTokenizer) {
  auto loaded = Tokenizer::FromFile(testing::FixturePath("tokenizer/llama2/tokenizer.json"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tokenizer& llama2 = **loaded;
  const std::vector<TokenId> prompt = llama2.Encode("Say:", true);
  const std::vector<TokenId> ids = llama2.Encode(" well, 日本語 is 🎉 fun. The end", false);
  const std::string prompt_text = llama2.Decode(prompt, true);
  for (const std::string stop : {"", "語 is", "🎉", "end"}) {
    SCOPED_TRACE("stop '" + stop + "'");
    StopParams params;
    if (!stop.empty()) params.stop_strings = {stop};
    OutputProcessor processor(llama2, prompt, params, true, {2}, 100, false);
    Generated run = Feed(processor, ids);
    if (!run.finished) run.text += processor.Finish(true).text;
    std::vector<TokenId> all = prompt;
    all.insert(all.end(), run.token_ids.begin(), run.token_ids.end());
    const std::string full = llama2.Decode(all, true).substr(prompt_text.size());
    const size_t at = stop.empty() ? std::string::npos : full.find(stop);
    EXPECT_EQ(run.text, full.substr(0, at));
    EXPECT_EQ(run.finished, !stop.empty());
  }
}

// ---- StopParams::Validate and FinishReasonName ------------------------------------------------

absl::Status ValidateWith(void (*edit)(StopParams&)) {
  StopParams params;
  edit(params);
  return params.Validate();
}

TEST(StopParamsTest, DefaultsAndBoundaryValuesAreValid) {
  EXPECT_TRUE(StopParams{}.Validate().ok());
  EXPECT_TRUE(ValidateWith([](StopParams& p) {
                p.max_tokens = 1;
                p.min_tokens = 1;
                p.stop_token_ids = {0};
                p.stop_strings = std::vector<std::string>(16, "x");
                p.stop_strings[0] = std::string(1024, 'y');
                p.stop_strings[1] = "日本🎉";
              }).ok());
}

TEST(StopParamsTest, EachInvalidFieldIsNamed) {
  struct Case {
    void (*edit)(StopParams&);
    const char* field;
  };
  const Case cases[] = {
      {[](StopParams& p) { p.max_tokens = 0; }, "max_tokens"},
      {[](StopParams& p) { p.min_tokens = -1; }, "min_tokens"},
      {[](StopParams& p) { p.min_tokens = p.max_tokens + 1; }, "min_tokens"},
      {[](StopParams& p) {
         p.stop_token_ids = {3, -1};
       },
       "stop_token_ids[1]"},
      {[](StopParams& p) {
         p.stop_strings = {"a", ""};
       },
       "stop_strings[1]"},
      {[](StopParams& p) { p.stop_strings = std::vector<std::string>(17, "x"); }, "stop_strings"},
      {[](StopParams& p) { p.stop_strings = {std::string(1025, 'x')}; }, "stop_strings[0]"},
      {[](StopParams& p) {
         p.stop_strings = {"ok", "\xE6\x97"};
       },
       "stop_strings[1]"},
  };
  for (const Case& c : cases) {
    const absl::Status status = ValidateWith(c.edit);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.field));
  }
}

TEST(FinishReasonTest, EveryReasonHasItsOwnName) {
  const FinishReason reasons[] = {FinishReason::kEos, FinishReason::kStopToken,
                                  FinishReason::kStopString, FinishReason::kLength,
                                  FinishReason::kAborted, FinishReason::kDeadline};
  std::vector<std::string> names;
  for (const FinishReason reason : reasons) names.push_back(FinishReasonName(reason));
  EXPECT_THAT(names, ElementsAre("eos", "stop_token", "stop_string", "length", "aborted",
                                     "deadline"));
}

}  // namespace
}  // namespace muserve
