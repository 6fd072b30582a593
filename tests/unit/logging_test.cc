// Logging: the text and JSON line formats, hostile strings, level filtering
// and flag validation, read back through an ostream sink.
#include "server/observability/logging.h"

#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace muserve::server {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// Installs logging into `out_` for one test, and stderr logging at info again
// afterwards so that no later test writes into a destroyed stream.
class LoggingTest : public ::testing::Test {
 protected:
  void Configure(std::string_view level, std::string_view format) {
    ASSERT_TRUE(
        ConfigureLogging(level, format, std::make_shared<spdlog::sinks::ostream_sink_mt>(out_))
            .ok());
  }
  void TearDown() override { ASSERT_TRUE(ConfigureLogging("info", "text").ok()); }

  // The single line logged so far, parsed; fails the test unless exactly one.
  nlohmann::json OnlyJsonLine() {
    const std::vector<std::string> lines = Lines(out_.str());
    EXPECT_EQ(lines.size(), 1u) << out_.str();
    if (lines.empty()) return nullptr;
    const nlohmann::json parsed = nlohmann::json::parse(lines.front(), nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << lines.front();
    return parsed;
  }

  std::ostringstream out_;
};

TEST_F(LoggingTest, JsonLineHasTimestampLevelMessageAndTypedFields) {
  Configure("info", "json");
  LogEvent(spdlog::level::info, "model loaded",
           {{"layers", int64_t{24}}, {"load_seconds", 1.5}, {"cuda", false}, {"path", "/m"}});
  const nlohmann::json line = OnlyJsonLine();
  EXPECT_THAT(line["ts"].get<std::string>(),
              MatchesRegex(R"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z)"));
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["msg"], "model loaded");
  EXPECT_EQ(line["layers"], 24);
  EXPECT_EQ(line["load_seconds"], 1.5);
  EXPECT_EQ(line["cuda"], false);
  EXPECT_EQ(line["path"], "/m");
}

TEST_F(LoggingTest, JsonEscapesHostileStringsAndReplacesInvalidUtf8) {
  Configure("info", "json");
  const std::string hostile = "say \"hi\"\\\n\r\t\x01 end";
  const std::string invalid_utf8 = "a\xff\xfe b \xe2\x82 c \xc0\xaf d \xed\xa0\x80";
  const std::string valid_utf8 = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80";
  LogEvent(spdlog::level::warn, "bad \"prompt\"\n{\"injected\":1}",
           {{"hostile", hostile},
            {"invalid", invalid_utf8},
            {"valid", valid_utf8},
            {"nan", std::numeric_limits<double>::quiet_NaN()}});
  const nlohmann::json line = OnlyJsonLine();
  EXPECT_EQ(line["level"], "warn");
  EXPECT_EQ(line["msg"], "bad \"prompt\"\n{\"injected\":1}");
  EXPECT_FALSE(line.contains("injected"));
  EXPECT_EQ(line["hostile"], hostile);
  // Each byte of an ill-formed sequence becomes U+FFFD (EF BF BD).
  const std::string r = "\xef\xbf\xbd";
  EXPECT_EQ(line["invalid"], "a" + r + r + " b " + r + r + " c " + r + r + " d " + r + r + r);
  EXPECT_EQ(line["valid"], valid_utf8);
  EXPECT_TRUE(line["nan"].is_null());
}

TEST_F(LoggingTest, ArbitraryBytesAlwaysGiveOneParsableJsonLine) {
  Configure("info", "json");
  std::mt19937 random(20240501);  // fixed seed: the same strings on every run
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 24);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes(static_cast<size_t>(length(random)), '\0');
    for (char& c : bytes) c = static_cast<char>(byte(random));
    out_.str("");
    LogEvent(spdlog::level::info, bytes, {{"value", bytes}});
    const nlohmann::json line = OnlyJsonLine();
    ASSERT_TRUE(line.is_object()) << i;
    EXPECT_EQ(line["msg"], line["value"]);
  }
}

TEST_F(LoggingTest, PlainSpdlogCallsAreJsonLinesToo) {
  Configure("debug", "json");
  spdlog::debug("weights at \"{}\"", "/tmp/a\nb");
  const nlohmann::json line = OnlyJsonLine();
  EXPECT_EQ(line["level"], "debug");
  EXPECT_EQ(line["msg"], "weights at \"/tmp/a\nb\"");
}

TEST_F(LoggingTest, TextLineIsMessageThenKeyValueFieldsQuotingWhereNeeded) {
  Configure("info", "text");
  LogEvent(spdlog::level::info, "request finished",
           {{"id", "r1"},
            {"n", int64_t{3}},
            {"ratio", 0.25},
            {"ok", true},
            {"text", "two words"},
            {"quote", "a\"b"},
            {"empty", ""},
            {"eq", "a=b"}});
  const std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(
      lines[0],
      MatchesRegex(R"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z info .*)"));
  EXPECT_THAT(lines[0], EndsWith(" info request finished id=r1 n=3 ratio=0.25 ok=true "
                                 "text=\"two words\" quote=\"a\\\"b\" empty=\"\" eq=\"a=b\""));
}

TEST_F(LoggingTest, TextKeepsHostileValuesOnOneLine) {
  Configure("info", "text");
  LogEvent(spdlog::level::err, "line one\nline two", {{"v", "x\ny\xff"}});
  spdlog::info("plain\r\nsecond");
  const std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 2u) << out_.str();
  EXPECT_THAT(lines[0], EndsWith(" error line one\\nline two v=\"x\\ny\\ufffd\""));
  EXPECT_THAT(lines[1], EndsWith(" info plain\\r\\nsecond"));
}

TEST_F(LoggingTest, LevelFiltersLinesBelowIt) {
  Configure("warn", "text");
  LogEvent(spdlog::level::info, "dropped", {});
  LogEvent(spdlog::level::debug, "dropped", {});
  LogEvent(spdlog::level::warn, "kept", {});
  LogEvent(spdlog::level::err, "kept too", {});
  const std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 2u) << out_.str();
  EXPECT_THAT(lines[0], EndsWith(" warn kept"));
  EXPECT_THAT(lines[1], EndsWith(" error kept too"));
}

TEST_F(LoggingTest, LevelOffLogsNothing) {
  Configure("off", "json");
  LogEvent(spdlog::level::critical, "nothing", {});
  RequestRecord record;
  LogRequestFinished(record);
  EXPECT_EQ(out_.str(), "");
}

TEST_F(LoggingTest, RequestFinishedCarriesEveryFieldInMilliseconds) {
  Configure("info", "json");
  RequestRecord record;
  record.request_id = "req-\"7\"";
  record.rpc = "Chat";
  record.finish_reason = "length";
  record.prompt_tokens = 12;
  record.completion_tokens = 34;
  record.cached_prompt_tokens = 8;
  record.queue_seconds = 0.0015;
  record.time_to_first_token_seconds = 0.25;
  record.e2e_seconds = 1.2345678;
  record.num_preemptions = 2;
  LogRequestFinished(record);
  const nlohmann::json line = OnlyJsonLine();
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["msg"], "request finished");
  EXPECT_EQ(line["id"], "req-\"7\"");
  EXPECT_EQ(line["rpc"], "Chat");
  EXPECT_EQ(line["finish_reason"], "length");
  EXPECT_EQ(line["code"], "OK");
  EXPECT_EQ(line["prompt_tokens"], 12);
  EXPECT_EQ(line["completion_tokens"], 34);
  EXPECT_EQ(line["cached_prompt_tokens"], 8);
  EXPECT_DOUBLE_EQ(line["ttft_ms"].get<double>(), 250.0);
  EXPECT_DOUBLE_EQ(line["queue_ms"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(line["total_ms"].get<double>(), 1234.568);
  EXPECT_EQ(line["preemptions"], 2);
}

TEST_F(LoggingTest, RequestFinishedOmitsUnknownTimesAndNamesMissingReasonNone) {
  Configure("info", "text");
  RequestRecord record;
  record.request_id = "r2";
  record.rpc = "Generate";
  record.code = absl::StatusCode::kCancelled;
  record.e2e_seconds = 0.002;
  LogRequestFinished(record);
  const std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], EndsWith(" info request finished id=r2 rpc=Generate finish_reason=none "
                                 "code=CANCELLED prompt_tokens=0 completion_tokens=0 "
                                 "cached_prompt_tokens=0 total_ms=2 preemptions=0"));
}

TEST_F(LoggingTest, RequestFinishedWithServerFaultIsAWarning) {
  Configure("warn", "json");
  RequestRecord record;
  record.code = absl::StatusCode::kInternal;
  LogRequestFinished(record);
  const nlohmann::json line = OnlyJsonLine();
  EXPECT_EQ(line["level"], "warn");
  EXPECT_EQ(line["code"], "INTERNAL");
}

TEST(ConfigureLoggingTest, RejectsBadLevelNamingTheFlagAndTheChoices) {
  const absl::Status status = ConfigureLogging("verbose", "text");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("--log-level"));
  EXPECT_THAT(status.message(), HasSubstr("verbose"));
  EXPECT_THAT(status.message(), HasSubstr("trace, debug, info, warn, error, off"));
}

TEST(ConfigureLoggingTest, RejectsBadFormatNamingTheFlagAndTheChoices) {
  const absl::Status status = ConfigureLogging("info", "xml");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("--log-format"));
  EXPECT_THAT(status.message(), HasSubstr("xml"));
  EXPECT_THAT(status.message(), HasSubstr("text, json"));
}

TEST(ConfigureLoggingTest, RejectedValuesLeaveLoggingAsItWas) {
  std::ostringstream out;
  ASSERT_TRUE(
      ConfigureLogging("info", "json", std::make_shared<spdlog::sinks::ostream_sink_mt>(out)).ok());
  EXPECT_FALSE(ConfigureLogging("info", "yaml").ok());
  EXPECT_FALSE(ConfigureLogging("loud", "text").ok());
  LogEvent(spdlog::level::info, "still json", {});
  EXPECT_THAT(out.str(), HasSubstr(R"("msg":"still json")"));
  ASSERT_TRUE(ConfigureLogging("info", "text").ok());
}

}  // namespace
}  // namespace muserve::server
