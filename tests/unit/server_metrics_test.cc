// ServerMetrics, LoadCollector and MetricsEndpoint: the exact exposition
// lines a Prometheus scrape sees, and /metrics over real HTTP.
#include "server/observability/server_metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "server/observability/load_collector.h"
#include "server/observability/metrics_endpoint.h"
#include "tests/testing/http_get.h"

namespace muserve::server {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Render(const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables) {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& collectable : collectables) {
    for (auto& family : collectable->Collect()) families.push_back(std::move(family));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

std::string Line(const std::string& line) { return "\n" + line + "\n"; }

LoadSnapshot NoLoad() { return {}; }

RequestRecord FinishedRequest() {
  RequestRecord record;
  record.request_id = "r1";
  record.rpc = "Generate";
  record.finish_reason = "stop";
  record.prompt_tokens = 7;
  record.completion_tokens = 5;
  record.cached_prompt_tokens = 4;
  record.queue_seconds = 0.0625;
  record.time_to_first_token_seconds = 0.25;
  record.e2e_seconds = 2.25;
  return record;
}

TEST(ServerMetricsTest, FinishedRequestIsCountedAndObservedInEveryHistogram) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry, NoLoad);
  metrics.RecordFinished(FinishedRequest());
  metrics.RecordFinished(FinishedRequest());

  const std::string text = Render({registry});
  EXPECT_THAT(text,
              HasSubstr(Line(
                  R"(muserve_requests_total{code="OK",finish_reason="stop",rpc="Generate"} 2)")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_prompt_tokens_total 14")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_generation_tokens_total 10")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_cached_prompt_tokens_total 8")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_time_to_first_token_seconds_count 2")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_time_to_first_token_seconds_sum 0.5")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_time_to_first_token_seconds_bucket{le="0.1"} 0)")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_time_to_first_token_seconds_bucket{le="0.25"} 2)")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_time_to_first_token_seconds_bucket{le="+Inf"} 2)")));
  // (2.25 - 0.25) / (5 - 1) = 0.5 per output token after the first.
  EXPECT_THAT(text, HasSubstr(Line("muserve_time_per_output_token_seconds_count 2")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_time_per_output_token_seconds_sum 1")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_time_per_output_token_seconds_bucket{le="0.4"} 0)")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_time_per_output_token_seconds_bucket{le="0.5"} 2)")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_e2e_request_latency_seconds_sum 4.5")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_e2e_request_latency_seconds_bucket{le="2"} 0)")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_e2e_request_latency_seconds_bucket{le="2.5"} 2)")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_request_queue_time_seconds_count 2")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_request_queue_time_seconds_sum 0.125")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_request_prompt_tokens_bucket{le="4"} 0)")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_request_prompt_tokens_bucket{le="8"} 2)")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_request_prompt_tokens_sum 14")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_request_generation_tokens_bucket{le="4"} 0)")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_request_generation_tokens_bucket{le="8"} 2)")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_request_generation_tokens_sum 10")));
  EXPECT_THAT(text, HasSubstr(Line("# TYPE muserve_requests_total counter")));
  EXPECT_THAT(text, HasSubstr(Line("# TYPE muserve_e2e_request_latency_seconds histogram")));
}

TEST(ServerMetricsTest, LabelSetsSeparateRpcFinishReasonAndCode) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry, NoLoad);
  RequestRecord cancelled = FinishedRequest();
  cancelled.rpc = "Chat";
  cancelled.finish_reason = "cancelled";
  cancelled.code = absl::StatusCode::kCancelled;
  metrics.RecordFinished(cancelled);
  RequestRecord deadline = FinishedRequest();
  deadline.finish_reason = "deadline";
  deadline.code = absl::StatusCode::kDeadlineExceeded;
  metrics.RecordFinished(deadline);
  metrics.RecordFinished(FinishedRequest());

  const std::string text = Render({registry});
  EXPECT_THAT(
      text,
      HasSubstr(Line(
          R"(muserve_requests_total{code="CANCELLED",finish_reason="cancelled",rpc="Chat"} 1)")));
  EXPECT_THAT(
      text,
      HasSubstr(Line(
          R"(muserve_requests_total{code="DEADLINE_EXCEEDED",finish_reason="deadline",rpc="Generate"} 1)")));
  EXPECT_THAT(text,
              HasSubstr(Line(
                  R"(muserve_requests_total{code="OK",finish_reason="stop",rpc="Generate"} 1)")));
}

TEST(ServerMetricsTest, RefusedRequestCountsOnlyInRequestsTotalWithFinishReasonNone) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry, NoLoad);
  metrics.RecordRefused("Chat", absl::StatusCode::kResourceExhausted);
  metrics.RecordRefused("Generate", absl::StatusCode::kInvalidArgument);
  metrics.RecordRefused("Generate", absl::StatusCode::kInvalidArgument);

  const std::string text = Render({registry});
  EXPECT_THAT(
      text,
      HasSubstr(Line(
          R"(muserve_requests_total{code="RESOURCE_EXHAUSTED",finish_reason="none",rpc="Chat"} 1)")));
  EXPECT_THAT(
      text,
      HasSubstr(Line(
          R"(muserve_requests_total{code="INVALID_ARGUMENT",finish_reason="none",rpc="Generate"} 2)")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_e2e_request_latency_seconds_count 0")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_request_prompt_tokens_count 0")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_prompt_tokens_total 0")));
}

TEST(ServerMetricsTest, RequestWithoutTokensSkipsTimeToFirstTokenAndTimePerOutputToken) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry, NoLoad);
  RequestRecord never_scheduled;
  never_scheduled.rpc = "Generate";
  never_scheduled.code = absl::StatusCode::kCancelled;
  never_scheduled.prompt_tokens = 3;
  never_scheduled.e2e_seconds = 0.5;
  metrics.RecordFinished(never_scheduled);
  RequestRecord one_token = FinishedRequest();
  one_token.completion_tokens = 1;
  metrics.RecordFinished(one_token);

  const std::string text = Render({registry});
  EXPECT_THAT(
      text,
      HasSubstr(Line(
          R"(muserve_requests_total{code="CANCELLED",finish_reason="none",rpc="Generate"} 1)")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_time_to_first_token_seconds_count 1")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_request_queue_time_seconds_count 1")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_time_per_output_token_seconds_count 0")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_e2e_request_latency_seconds_count 2")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_e2e_request_latency_seconds_sum 2.75")));
}

TEST(ServerMetricsTest, InterTokenLatencyObservesEachTokenOfABurst) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry, NoLoad);
  metrics.RecordInterTokenLatency(0.036, 3);  // 0.012 s per token: bucket le=0.015
  metrics.RecordInterTokenLatency(0.5, 1);    // bucket le=0.5
  metrics.RecordInterTokenLatency(1.0, 0);    // no token: ignored

  const std::string text = Render({registry});
  EXPECT_THAT(text, HasSubstr(Line("muserve_inter_token_latency_seconds_count 4")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_inter_token_latency_seconds_sum 0.536")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_inter_token_latency_seconds_bucket{le="0.01"} 0)")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_inter_token_latency_seconds_bucket{le="0.015"} 3)")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_inter_token_latency_seconds_bucket{le="0.4"} 3)")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_inter_token_latency_seconds_bucket{le="0.5"} 4)")));
}

TEST(ServerMetricsTest, InterTokenLatencyOnABoundaryCountsInThatBucketLikeObserve) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry, NoLoad);
  metrics.RecordInterTokenLatency(0.2, 2);  // exactly 0.1
  const std::string text = Render({registry});
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_inter_token_latency_seconds_bucket{le="0.075"} 0)")));
  EXPECT_THAT(text, HasSubstr(Line(R"(muserve_inter_token_latency_seconds_bucket{le="0.1"} 2)")));
}

TEST(ServerMetricsTest, ServingGaugeFollowsSetServing) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry, NoLoad);
  EXPECT_THAT(Render({registry}), HasSubstr(Line("muserve_serving 0")));
  metrics.SetServing(true);
  EXPECT_THAT(Render({registry}), HasSubstr(Line("muserve_serving 1")));
  metrics.SetServing(false);
  EXPECT_THAT(Render({registry}), HasSubstr(Line("muserve_serving 0")));
}

TEST(ServerMetricsTest, BucketsAreIncreasingAndSpanMillisecondsToMinutesAndLongContexts) {
  for (const auto* buckets :
       {&MetricBuckets::TimeToFirstTokenSeconds(), &MetricBuckets::TokenLatencySeconds(),
        &MetricBuckets::RequestLatencySeconds(), &MetricBuckets::TokenCounts()}) {
    ASSERT_FALSE(buckets->empty());
    for (size_t i = 1; i < buckets->size(); ++i) EXPECT_LT((*buckets)[i - 1], (*buckets)[i]);
  }
  EXPECT_LE(MetricBuckets::TimeToFirstTokenSeconds().front(), 0.001);
  EXPECT_GE(MetricBuckets::RequestLatencySeconds().back(), 600.0);
  EXPECT_EQ(MetricBuckets::TokenCounts().front(), 1);
  EXPECT_EQ(MetricBuckets::TokenCounts().back(), 32768);
}

struct FakeEngine {
  std::atomic<int32_t> running{0};
  std::atomic<int32_t> free_blocks{100};
  std::atomic<int64_t> steps{0};
  LoadSnapshot GetLoad() const {
    LoadSnapshot load;
    load.running = running.load();
    load.waiting = 2;
    load.kv_blocks_total = 100;
    load.kv_blocks_free = free_blocks.load();
    load.num_preemptions = 3;
    load.num_steps = steps.load();
    load.step_time_ns = 1'500'000'000;
    return load;
  }
};

TEST(LoadCollectorTest, ReflectsTheSnapshotAtEachScrape) {
  auto registry = std::make_shared<prometheus::Registry>();
  FakeEngine engine;
  ServerMetrics metrics(registry, [&engine] { return engine.GetLoad(); });

  std::string text = Render(metrics.Collectables());
  EXPECT_THAT(text, HasSubstr(Line("muserve_running_requests 0")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_waiting_requests 2")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_kv_cache_blocks 100")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_kv_cache_used_blocks 0")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_kv_cache_usage_ratio 0")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_engine_steps_total 0")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_preemptions_total 3")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_engine_step_seconds_total 1.5")));
  EXPECT_THAT(text, HasSubstr(Line("# TYPE muserve_preemptions_total counter")));
  EXPECT_THAT(text, HasSubstr(Line("# TYPE muserve_kv_cache_usage_ratio gauge")));
  // Registry families are in the same rendering.
  EXPECT_THAT(text, HasSubstr(Line("muserve_serving 0")));

  engine.running = 4;
  engine.free_blocks = 75;
  engine.steps = 12;
  text = Render(metrics.Collectables());
  EXPECT_THAT(text, HasSubstr(Line("muserve_running_requests 4")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_kv_cache_used_blocks 25")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_kv_cache_usage_ratio 0.25")));
  EXPECT_THAT(text, HasSubstr(Line("muserve_engine_steps_total 12")));
}

TEST(LoadCollectorTest, EmptyKvCacheHasUsageZeroNotNan) {
  LoadSnapshot load;  // kv_blocks_total == 0, e.g. before the engine has allocated
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, LoadCollector::ToFamilies(load));
  EXPECT_THAT(out.str(), HasSubstr(Line("muserve_kv_cache_usage_ratio 0")));
  EXPECT_THAT(out.str(), Not(HasSubstr("nan")));
}

TEST(LoadCollectorTest, StopsCallingTheEngineOnceServerMetricsIsDestroyed) {
  auto registry = std::make_shared<prometheus::Registry>();
  int calls = 0;
  auto metrics = std::make_unique<ServerMetrics>(registry, [&calls] {
    ++calls;
    return LoadSnapshot{};
  });
  const auto collectables = metrics->Collectables();  // as an endpoint would keep them
  Render(collectables);
  EXPECT_EQ(calls, 1);
  metrics.reset();
  const std::string text = Render(collectables);
  EXPECT_EQ(calls, 1);
  EXPECT_THAT(text, Not(HasSubstr("muserve_running_requests")));
}

// ---- MetricsEndpoint over real HTTP -----------------------------------------------

// The whole response, status line and headers included.
std::string HttpGet(int port, const std::string& path) {
  std::optional<std::string> response = muserve::testing::HttpGetResponse(port, path);
  EXPECT_TRUE(response.has_value()) << "connect to port " << port << " failed";
  return response.value_or("");
}

// A listening socket on 127.0.0.1 that holds a port for the test's duration.
class HeldPort {
 public:
  HeldPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(listen(fd_, 1), 0);
    socklen_t length = sizeof(address);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length), 0);
    port_ = ntohs(address.sin_port);
  }
  ~HeldPort() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(MetricsEndpointTest, ServesRegistryAndLoadFamiliesInOneScrapeOverHttp) {
  auto registry = std::make_shared<prometheus::Registry>();
  FakeEngine engine;
  ServerMetrics metrics(registry, [&engine] { return engine.GetLoad(); });
  metrics.RecordRefused("Chat", absl::StatusCode::kUnavailable);
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", metrics.Collectables());
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  ASSERT_GT((*endpoint)->port(), 0);

  std::string response = HttpGet((*endpoint)->port(), "/metrics");
  EXPECT_THAT(response, HasSubstr("200 OK"));
  EXPECT_THAT(response, HasSubstr("text/plain"));
  EXPECT_THAT(response, HasSubstr(Line("muserve_kv_cache_used_blocks 0")));
  EXPECT_THAT(
      response,
      HasSubstr(
          Line(R"(muserve_requests_total{code="UNAVAILABLE",finish_reason="none",rpc="Chat"} 1)")));

  // Valid exposition: each family has one TYPE line, and every sample line
  // names a declared family.
  std::map<std::string, int> type_lines;
  std::istringstream lines(response.substr(response.find("\r\n\r\n") + 4));
  std::string line;
  std::string family;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
      ++type_lines[family];
    } else if (line[0] != '#') {
      EXPECT_EQ(line.rfind(family, 0), 0u) << line;
    }
  }
  EXPECT_EQ(type_lines.count("muserve_requests_total"), 1u);
  EXPECT_EQ(type_lines.count("muserve_kv_cache_used_blocks"), 1u);
  for (const auto& [name, count] : type_lines) EXPECT_EQ(count, 1) << name;

  engine.free_blocks = 90;
  response = HttpGet((*endpoint)->port(), "/metrics");
  EXPECT_THAT(response, HasSubstr(Line("muserve_kv_cache_used_blocks 10")));
}

TEST(MetricsEndpointTest, RegistryOnlyOverloadServesTheRegistry) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry, NoLoad);
  metrics.SetServing(true);
  auto endpoint = MetricsEndpoint::Start(":0", registry);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const std::string response = HttpGet((*endpoint)->port(), "/metrics");
  EXPECT_THAT(response, AllOf(HasSubstr(Line("muserve_serving 1")),
                              Not(HasSubstr("muserve_running_requests"))));
}

TEST(MetricsEndpointTest, PortInUseIsUnavailableNamingTheAddress) {
  HeldPort held;
  const std::string address = "127.0.0.1:" + std::to_string(held.port());
  auto endpoint = MetricsEndpoint::Start(address, std::make_shared<prometheus::Registry>());
  ASSERT_FALSE(endpoint.ok());
  EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(endpoint.status().message(), HasSubstr(address));
}

TEST(MetricsEndpointTest, MalformedAddressIsInvalidArgumentNamingIt) {
  for (const std::string address : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:80s",
                                    "127.0.0.1:-1", "127.0.0.1:1,127.0.0.1:2", "[::1:0"}) {
    auto endpoint = MetricsEndpoint::Start(address, std::make_shared<prometheus::Registry>());
    ASSERT_FALSE(endpoint.ok()) << address;
    EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_THAT(endpoint.status().message(), HasSubstr(address));
  }
}

}  // namespace
}  // namespace muserve::server
