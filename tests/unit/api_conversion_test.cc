// GenerateRequest -> engine Request: every bad field is refused with
// INVALID_ARGUMENT naming its proto path and range, and every default is the
// one proto/muserve/v1/inference.proto documents (unset differs from an
// explicit zero).
#include <cmath>
#include <functional>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/api/request_conversion.h"
#include "tests/unit/api_testing.h"

namespace muserve::server {
namespace {

using ::muserve::server::testing::Demo;
using ::muserve::server::testing::DemoTokenizerInstance;
using ::muserve::server::testing::TestLimits;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

v1::GenerateRequest ValidRequest() {
  v1::GenerateRequest request;
  request.set_request_id("client-7");
  request.set_text("Hello, world.");
  return request;
}

void SetTokenIds(v1::GenerateRequest& request, int count, int32_t id = 65) {
  request.mutable_token_ids()->clear_ids();
  for (int i = 0; i < count; ++i) request.mutable_token_ids()->add_ids(id);
}

struct BadCase {
  std::string name;
  std::function<void(v1::GenerateRequest&, ModelLimits&)> mutate;
  // The field path and the allowed range (or the limit), each expected in
  // the message.
  std::vector<std::string> message_parts;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

v1::SamplingOptions& Sampling(v1::GenerateRequest& r) {
  return *r.mutable_options()->mutable_sampling();
}
v1::StoppingOptions& Stopping(v1::GenerateRequest& r) {
  return *r.mutable_options()->mutable_stopping();
}

std::vector<BadCase> BadCases() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  using R = v1::GenerateRequest;
  using L = ModelLimits;
  return {
      {"RequestTooLarge",
       [](R& r, L&) { r.set_text(std::string(5000000, 'a')); },
       {"request is 50000", "bytes; the limit is 4194304 (--max-request-bytes)"}},
      {"RequestOverSmallerLimit",
       [](R&, L& l) { l.max_request_bytes = 10; },
       {"bytes; the limit is 10 (--max-request-bytes)"}},
      {"RequestIdTooLong",
       [](R& r, L&) { r.set_request_id(std::string(129, 'x')); },
       {"request_id is 129 characters", "at most 128", "0x21..0x7e"}},
      {"RequestIdWithSpace",
       [](R& r, L&) { r.set_request_id("a b"); },
       {"request_id[1] is 0x20", "0x21..0x7e"}},
      {"RequestIdWithDel",
       [](R& r, L&) { r.set_request_id("ab\x7f"); },
       {"request_id[2] is 0x7f", "0x21..0x7e"}},
      {"RequestIdNonAscii",
       [](R& r, L&) { r.set_request_id("caf\xc3\xa9"); },
       {"request_id[3] is 0xc3", "0x21..0x7e"}},
      {"PromptUnset",
       [](R& r, L&) { r.clear_prompt(); },
       {"prompt must be set (text or token_ids)"}},
      {"TextEmpty", [](R& r, L&) { r.set_text(""); }, {"prompt.text must not be empty"}},
      {"TextInvalidUtf8",
       [](R& r, L&) { r.set_text("ab\xff"); },
       {"prompt.text must be valid UTF-8"}},
      {"TextSurrogate",
       [](R& r, L&) { r.set_text("\xed\xa0\x80"); },
       {"prompt.text must be valid UTF-8"}},
      {"TokenIdsEmpty",
       [](R& r, L&) { r.mutable_token_ids(); },
       {"prompt.token_ids.ids must not be empty"}},
      {"TokenIdNegative",
       [](R& r, L&) {
         SetTokenIds(r, 3);
         r.mutable_token_ids()->set_ids(1, -1);
       },
       {"prompt.token_ids.ids[1] = -1 is outside the vocabulary [0, 512)"}},
      {"TokenIdPastVocabulary",
       [](R& r, L&) {
         SetTokenIds(r, 4);
         r.mutable_token_ids()->set_ids(3, 512);
       },
       {"prompt.token_ids.ids[3] = 512 is outside the vocabulary [0, 512)"}},
      {"TemperatureNegative",
       [](R& r, L&) { Sampling(r).set_temperature(-0.5f); },
       {"options.sampling.temperature must be in [0, 100], got -0.5"}},
      {"TemperatureTooHigh",
       [](R& r, L&) { Sampling(r).set_temperature(101); },
       {"options.sampling.temperature must be in [0, 100], got 101"}},
      {"TemperatureNaN",
       [nan](R& r, L&) { Sampling(r).set_temperature(nan); },
       {"options.sampling.temperature must be in [0, 100]"}},
      {"TopKNegative",
       [](R& r, L&) { Sampling(r).set_top_k(-1); },
       {"options.sampling.top_k must be >= 0", "got -1"}},
      {"TopPZero",
       [](R& r, L&) { Sampling(r).set_top_p(0); },
       {"options.sampling.top_p must be in (0, 1], got 0"}},
      {"TopPAboveOne",
       [](R& r, L&) { Sampling(r).set_top_p(1.5f); },
       {"options.sampling.top_p must be in (0, 1], got 1.5"}},
      {"MinPNegative",
       [](R& r, L&) { Sampling(r).set_min_p(-0.25f); },
       {"options.sampling.min_p must be in [0, 1], got -0.25"}},
      {"MinPAboveOne",
       [](R& r, L&) { Sampling(r).set_min_p(2); },
       {"options.sampling.min_p must be in [0, 1], got 2"}},
      {"RepetitionPenaltyZero",
       [](R& r, L&) { Sampling(r).set_repetition_penalty(0); },
       {"options.sampling.repetition_penalty must be in (0, 10], got 0"}},
      {"RepetitionPenaltyTooHigh",
       [](R& r, L&) { Sampling(r).set_repetition_penalty(10.5f); },
       {"options.sampling.repetition_penalty must be in (0, 10], got 10.5"}},
      {"PresencePenaltyLow",
       [](R& r, L&) { Sampling(r).set_presence_penalty(-2.5f); },
       {"options.sampling.presence_penalty must be in [-2, 2], got -2.5"}},
      {"PresencePenaltyHigh",
       [](R& r, L&) { Sampling(r).set_presence_penalty(3); },
       {"options.sampling.presence_penalty must be in [-2, 2], got 3"}},
      {"FrequencyPenaltyLow",
       [](R& r, L&) { Sampling(r).set_frequency_penalty(-3); },
       {"options.sampling.frequency_penalty must be in [-2, 2], got -3"}},
      {"FrequencyPenaltyHigh",
       [](R& r, L&) { Sampling(r).set_frequency_penalty(2.5f); },
       {"options.sampling.frequency_penalty must be in [-2, 2], got 2.5"}},
      {"TopLogprobsNegative",
       [](R& r, L&) { r.mutable_options()->mutable_logprobs()->set_top_logprobs(-1); },
       {"options.logprobs.top_logprobs must be in [0, 20], got -1"}},
      {"TopLogprobsTooMany",
       [](R& r, L&) { r.mutable_options()->mutable_logprobs()->set_top_logprobs(21); },
       {"options.logprobs.top_logprobs must be in [0, 20], got 21"}},
      {"MaxTokensZero",
       [](R& r, L&) { Stopping(r).set_max_tokens(0); },
       {"options.stopping.max_tokens must be >= 1, got 0"}},
      {"MaxTokensNegative",
       [](R& r, L&) { Stopping(r).set_max_tokens(-5); },
       {"options.stopping.max_tokens must be >= 1, got -5"}},
      {"MinTokensNegative",
       [](R& r, L&) { Stopping(r).set_min_tokens(-1); },
       {"options.stopping.min_tokens must be in [0, max_tokens", "got -1"}},
      {"MinTokensAboveExplicitMaxTokens",
       [](R& r, L&) {
         Stopping(r).set_max_tokens(5);
         Stopping(r).set_min_tokens(6);
       },
       {"options.stopping.min_tokens must be in [0, max_tokens=5], got 6"}},
      {"MinTokensAboveDefaultMaxTokens",
       [](R& r, L&) {
         SetTokenIds(r, 1000);
         Stopping(r).set_min_tokens(25);
       },
       {"options.stopping.min_tokens must be in [0, max_tokens], got 25", "defaults to 24"}},
      {"TooManyStopStrings",
       [](R& r, L&) {
         for (int i = 0; i < 17; ++i) Stopping(r).add_stop_strings("s" + std::to_string(i));
       },
       {"options.stopping.stop_strings has 17 entries; at most 16"}},
      {"EmptyStopString",
       [](R& r, L&) {
         Stopping(r).add_stop_strings("end");
         Stopping(r).add_stop_strings("");
       },
       {"options.stopping.stop_strings[1] must not be empty"}},
      {"LongStopString",
       [](R& r, L&) { Stopping(r).add_stop_strings(std::string(1025, 'x')); },
       {"options.stopping.stop_strings[0] is 1025 bytes; at most 1024"}},
      {"InvalidUtf8StopString",
       [](R& r, L&) { Stopping(r).add_stop_strings("\xc3"); },
       {"options.stopping.stop_strings[0] must be valid UTF-8"}},
      {"TooManyStopTokenIds",
       [](R& r, L&) {
         for (int i = 0; i < 257; ++i) Stopping(r).add_stop_token_ids(i % 500);
       },
       {"options.stopping.stop_token_ids has 257 entries; at most 256"}},
      {"StopTokenIdNegative",
       [](R& r, L&) {
         Stopping(r).add_stop_token_ids(3);
         Stopping(r).add_stop_token_ids(-2);
       },
       {"options.stopping.stop_token_ids[1] must be >= 0, got -2"}},
      {"StopTokenIdPastVocabulary",
       [](R& r, L&) { Stopping(r).add_stop_token_ids(512); },
       {"options.stopping.stop_token_ids[0] = 512 is outside the vocabulary [0, 512)"}},
      {"PriorityTooLow",
       [](R& r, L&) { r.mutable_options()->set_priority(-1000001); },
       {"options.priority must be in [-1000000, 1000000], got -1000001"}},
      {"PriorityTooHigh",
       [](R& r, L&) { r.mutable_options()->set_priority(1000001); },
       {"options.priority must be in [-1000000, 1000000], got 1000001"}},
      {"PromptFillsTheContext",
       [](R& r, L&) { SetTokenIds(r, 1024); },
       {"prompt.token_ids.ids has 1024 tokens", "context of 1024 tokens leaves no room",
        "at most 1023 prompt tokens"}},
      {"TextPromptFillsTheContext",
       [](R& r, L& l) {
         l.context_len = 3;
         r.set_text("one two three four five");
       },
       {"prompt.text has", "context of 3 tokens leaves no room", "at most 2 prompt tokens"}},
      {"PromptLargerThanKvCache",
       [](R& r, L& l) {
         l.kv_capacity_tokens = 256;
         SetTokenIds(r, 300);
       },
       {"prompt.token_ids.ids has 300 tokens", "the whole KV cache holds 256 tokens"}},
      {"MaxTokensPastTheContext",
       [](R& r, L&) {
         SetTokenIds(r, 700);
         Stopping(r).set_max_tokens(500);
       },
       {"options.stopping.max_tokens (500) + prompt tokens (700) exceed the model's context of "
        "1024 tokens",
        "at most 324"}},
      {"MaxTokensPastTheKvCache",
       [](R& r, L& l) {
         l.kv_capacity_tokens = 512;
         SetTokenIds(r, 100);
         Stopping(r).set_max_tokens(414);
       },
       {"options.stopping.max_tokens (414) + prompt tokens (100)", "the whole KV cache holds 512",
        "at most 413"}},
  };
}

class GenerateRequestRefusedTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(GenerateRequestRefusedTest, NamesTheFieldAndItsRange) {
  const BadCase& c = GetParam();
  v1::GenerateRequest request = ValidRequest();
  ModelLimits limits = TestLimits();
  // The unmutated request converts: the failure is the mutation's.
  ASSERT_TRUE(ConvertGenerateRequest(request, DemoTokenizerInstance(), limits).ok());
  c.mutate(request, limits);
  absl::StatusOr<ConvertedRequest> converted =
      ConvertGenerateRequest(request, DemoTokenizerInstance(), limits);
  ASSERT_FALSE(converted.ok()) << "accepted: " << request.ShortDebugString().substr(0, 300);
  EXPECT_EQ(converted.status().code(), absl::StatusCode::kInvalidArgument) << converted.status();
  for (const std::string& part : c.message_parts) {
    EXPECT_THAT(converted.status().message(), HasSubstr(part));
  }
}

INSTANTIATE_TEST_SUITE_P(EveryBadField, GenerateRequestRefusedTest, ::testing::ValuesIn(BadCases()),
                         [](const auto& test_info) { return test_info.param.name; });

TEST(ConvertGenerateRequestTest, UnsetOptionsTakeTheDocumentedDefaults) {
  auto converted = ConvertGenerateRequest(ValidRequest(), DemoTokenizerInstance(), TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  const Request& engine = converted->engine;
  EXPECT_EQ(converted->request_id, "client-7");
  EXPECT_EQ(engine.sampling.temperature, 1.0f);
  EXPECT_EQ(engine.sampling.top_k, 0);
  EXPECT_EQ(engine.sampling.top_p, 1.0f);
  EXPECT_EQ(engine.sampling.min_p, 0.0f);
  EXPECT_EQ(engine.sampling.repetition_penalty, 1.0f);
  EXPECT_EQ(engine.sampling.presence_penalty, 0.0f);
  EXPECT_EQ(engine.sampling.frequency_penalty, 0.0f);
  EXPECT_FALSE(engine.sampling.seed.has_value());
  EXPECT_FALSE(engine.sampling.wants_logprobs());
  // As many as the context leaves after the prompt.
  EXPECT_EQ(engine.stop.max_tokens, 1024 - static_cast<int32_t>(engine.prompt_tokens.size()));
  EXPECT_EQ(engine.stop.min_tokens, 0);
  EXPECT_TRUE(engine.stop.stop_strings.empty());
  EXPECT_TRUE(engine.stop.stop_token_ids.empty());
  EXPECT_FALSE(engine.stop.ignore_eos);
  EXPECT_EQ(engine.priority, 0);
  EXPECT_TRUE(engine.skip_special_tokens);
  EXPECT_FALSE(engine.deadline.has_value());
  EXPECT_TRUE(converted->shape.stream);
  EXPECT_TRUE(converted->shape.include_token_ids);
}

TEST(ConvertGenerateRequestTest, ExplicitZerosAndFalsesAreKeptNotDefaulted) {
  v1::GenerateRequest request = ValidRequest();
  v1::GenerationOptions& options = *request.mutable_options();
  options.mutable_sampling()->set_temperature(0);  // greedy, not the default 1.0
  options.mutable_sampling()->set_top_k(0);
  options.mutable_sampling()->set_min_p(0);
  options.mutable_sampling()->set_presence_penalty(0);
  options.mutable_sampling()->set_seed(0);  // a seed of 0, not a random one
  options.mutable_stopping()->set_min_tokens(0);
  options.mutable_stopping()->set_ignore_eos(false);
  options.mutable_logprobs()->set_enabled(false);
  options.mutable_logprobs()->set_top_logprobs(0);
  options.mutable_stream()->set_stream(false);
  options.mutable_stream()->set_include_token_ids(false);
  options.mutable_stream()->set_skip_special_tokens(false);
  auto converted = ConvertGenerateRequest(request, DemoTokenizerInstance(), TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  const Request& engine = converted->engine;
  EXPECT_EQ(engine.sampling.temperature, 0.0f);
  EXPECT_EQ(engine.sampling.top_k, 0);
  ASSERT_TRUE(engine.sampling.seed.has_value());
  EXPECT_EQ(*engine.sampling.seed, 0u);
  EXPECT_FALSE(engine.sampling.wants_logprobs());
  EXPECT_FALSE(engine.skip_special_tokens);
  EXPECT_FALSE(converted->shape.stream);
  EXPECT_FALSE(converted->shape.include_token_ids);
}

TEST(ConvertGenerateRequestTest, ExplicitValuesPassThrough) {
  v1::GenerateRequest request = ValidRequest();
  v1::GenerationOptions& options = *request.mutable_options();
  v1::SamplingOptions& sampling = *options.mutable_sampling();
  sampling.set_temperature(0.7f);
  sampling.set_top_k(40);
  sampling.set_top_p(0.9f);
  sampling.set_min_p(0.05f);
  sampling.set_repetition_penalty(1.1f);
  sampling.set_presence_penalty(-2);
  sampling.set_frequency_penalty(2);
  sampling.set_seed(0xfedcba9876543210ull);
  v1::StoppingOptions& stopping = *options.mutable_stopping();
  stopping.set_max_tokens(64);
  stopping.set_min_tokens(64);
  stopping.add_stop_strings("\n\n");
  stopping.add_stop_strings("END");
  stopping.add_stop_token_ids(Demo().eot_id);
  stopping.add_stop_token_ids(0);
  stopping.set_ignore_eos(true);
  options.mutable_logprobs()->set_top_logprobs(20);
  options.set_priority(-1000000);
  auto converted = ConvertGenerateRequest(request, DemoTokenizerInstance(), TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  const Request& engine = converted->engine;
  EXPECT_EQ(engine.sampling.temperature, 0.7f);
  EXPECT_EQ(engine.sampling.top_k, 40);
  EXPECT_EQ(engine.sampling.top_p, 0.9f);
  EXPECT_EQ(engine.sampling.min_p, 0.05f);
  EXPECT_EQ(engine.sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(engine.sampling.presence_penalty, -2.0f);
  EXPECT_EQ(engine.sampling.frequency_penalty, 2.0f);
  EXPECT_EQ(engine.sampling.seed, 0xfedcba9876543210ull);
  EXPECT_EQ(engine.sampling.top_logprobs, 20);
  EXPECT_TRUE(engine.sampling.wants_logprobs());  // top_logprobs > 0 implies enabled
  EXPECT_EQ(engine.stop.max_tokens, 64);
  EXPECT_EQ(engine.stop.min_tokens, 64);
  EXPECT_THAT(engine.stop.stop_strings, ElementsAre("\n\n", "END"));
  EXPECT_THAT(engine.stop.stop_token_ids, ElementsAre(Demo().eot_id, 0));
  EXPECT_TRUE(engine.stop.ignore_eos);
  EXPECT_EQ(engine.priority, -1000000);
}

TEST(ConvertGenerateRequestTest, LogprobsEnabledWithoutAlternatives) {
  v1::GenerateRequest request = ValidRequest();
  request.mutable_options()->mutable_logprobs()->set_enabled(true);
  auto converted = ConvertGenerateRequest(request, DemoTokenizerInstance(), TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_TRUE(converted->engine.sampling.logprobs);
  EXPECT_EQ(converted->engine.sampling.top_logprobs, 0);
}

TEST(ConvertGenerateRequestTest, TextPromptGetsTheTokenizersBosByDefault) {
  const Tokenizer& tokenizer = DemoTokenizerInstance();
  auto converted = ConvertGenerateRequest(ValidRequest(), tokenizer, TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  const std::vector<TokenId>& prompt = converted->engine.prompt_tokens;
  ASSERT_FALSE(prompt.empty());
  EXPECT_EQ(prompt.front(), Demo().begin_of_text_id);
  EXPECT_EQ(prompt, tokenizer.Encode("Hello, world.", true));
  EXPECT_EQ(tokenizer.Decode(prompt, /*skip_special_tokens=*/true), "Hello, world.");
}

TEST(ConvertGenerateRequestTest, TextPromptWithoutSpecialTokensWhenAsked) {
  const Tokenizer& tokenizer = DemoTokenizerInstance();
  v1::GenerateRequest request = ValidRequest();
  request.set_add_special_tokens(false);
  auto converted = ConvertGenerateRequest(request, tokenizer, TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(converted->engine.prompt_tokens, tokenizer.Encode("Hello, world.", false));
  EXPECT_NE(converted->engine.prompt_tokens.front(), Demo().begin_of_text_id);
}

TEST(ConvertGenerateRequestTest, TokenIdsPassThroughUnchanged) {
  v1::GenerateRequest request = ValidRequest();
  const std::vector<int32_t> ids = {0, 7, 511, 300, 7};
  for (int32_t id : ids) request.mutable_token_ids()->add_ids(id);
  request.set_add_special_tokens(true);  // ignored for token ids
  auto converted = ConvertGenerateRequest(request, DemoTokenizerInstance(), TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_THAT(converted->engine.prompt_tokens, ElementsAreArray(ids));
  EXPECT_EQ(converted->engine.stop.max_tokens, 1024 - 5);
}

TEST(ConvertGenerateRequestTest, DefaultMaxTokensIsBoundedByTheKvCache) {
  v1::GenerateRequest request = ValidRequest();
  SetTokenIds(request, 100);
  ModelLimits limits = TestLimits();
  limits.kv_capacity_tokens = 256;
  auto converted = ConvertGenerateRequest(request, DemoTokenizerInstance(), limits);
  ASSERT_TRUE(converted.ok()) << converted.status();
  // The last sampled token needs no KV: 100 + 157 - 1 = 256 tokens of KV.
  EXPECT_EQ(converted->engine.stop.max_tokens, 157);
}

TEST(ConvertGenerateRequestTest, PromptOfContextMinusOneLeavesOneToken) {
  v1::GenerateRequest request = ValidRequest();
  SetTokenIds(request, 1023);
  auto converted = ConvertGenerateRequest(request, DemoTokenizerInstance(), TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(converted->engine.stop.max_tokens, 1);
}

TEST(ConvertGenerateRequestTest, ExplicitMaxTokensExactlyFillingContextAndKvIsAccepted) {
  v1::GenerateRequest request = ValidRequest();
  SetTokenIds(request, 700);
  request.mutable_options()->mutable_stopping()->set_max_tokens(324);
  EXPECT_TRUE(ConvertGenerateRequest(request, DemoTokenizerInstance(), TestLimits()).ok());

  ModelLimits limits = TestLimits();
  limits.kv_capacity_tokens = 512;
  SetTokenIds(request, 100);
  request.mutable_options()->mutable_stopping()->set_max_tokens(413);
  auto converted = ConvertGenerateRequest(request, DemoTokenizerInstance(), limits);
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(converted->engine.stop.max_tokens, 413);
}

TEST(ConvertGenerateRequestTest, RequestIdMayBeEmptyOrOf128PrintableCharacters) {
  v1::GenerateRequest request = ValidRequest();
  request.clear_request_id();
  auto converted = ConvertGenerateRequest(request, DemoTokenizerInstance(), TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(converted->request_id, "");
  std::string id;
  for (int i = 0; i < 128; ++i) id.push_back(static_cast<char>(0x21 + i % (0x7f - 0x21)));
  request.set_request_id(id);
  converted = ConvertGenerateRequest(request, DemoTokenizerInstance(), TestLimits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(converted->request_id, id);
}

TEST(ConvertGenerateRequestTest, PriorityBoundsAreInclusive) {
  for (int32_t priority : {-1000000, 1000000}) {
    v1::GenerateRequest request = ValidRequest();
    request.mutable_options()->set_priority(priority);
    auto converted = ConvertGenerateRequest(request, DemoTokenizerInstance(), TestLimits());
    ASSERT_TRUE(converted.ok()) << converted.status();
    EXPECT_EQ(converted->engine.priority, priority);
  }
}

TEST(ConvertGenerateRequestTest, SizeLimitAllowsARequestOfExactlyTheLimit) {
  v1::GenerateRequest request = ValidRequest();
  ModelLimits limits = TestLimits();
  limits.max_request_bytes = request.ByteSizeLong();
  EXPECT_TRUE(ConvertGenerateRequest(request, DemoTokenizerInstance(), limits).ok());
  limits.max_request_bytes -= 1;
  EXPECT_FALSE(ConvertGenerateRequest(request, DemoTokenizerInstance(), limits).ok());
}

}  // namespace
}  // namespace muserve::server
