// The driver's schedule against a server in this process that answers every
// call after a fixed delay: open-loop arrival times follow the gamma
// distribution asked for (mean 1 / rate, coefficient of variation
// 1 / sqrt(burstiness)) without waiting for replies, no request starts before
// its time, a closed loop holds its conversations in flight and waits the
// think time between turns.
//
// The arrival statistics are taken from the times the driver scheduled,
// which a fixed seed makes the same on every run, so the bounds cannot
// flake; timing of the machine only shows in the lower bounds checked
// (nothing early, think time waited).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/loadgen/driver.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace muserve::loadgen {
namespace {

constexpr int64_t kMs = 1'000'000;  // ns
constexpr auto kReplyDelay = std::chrono::milliseconds(20);

// Every call: one token after kReplyDelay, then Finished.
class SlowService final : public v1::Inference::Service {
 public:
  grpc::Status Generate(grpc::ServerContext*, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override {
    std::this_thread::sleep_for(kReplyDelay);
    v1::GenerateResponse chunk;
    chunk.mutable_chunk()->add_token_ids(7);
    writer->Write(chunk);
    v1::GenerateResponse finished;
    v1::Usage* usage = finished.mutable_finished()->mutable_usage();
    usage->set_prompt_tokens(request->token_ids().ids_size());
    usage->set_completion_tokens(1);
    writer->Write(finished);
    return grpc::Status::OK;
  }
};

class DriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
    stub_ = v1::Inference::NewStub(channel_);
  }
  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now()); }

  static Workload Conversations(int turns) {
    ConversationSpec conversation;
    for (int t = 0; t < turns; ++t) conversation.turns.push_back({{1, 2, 3}, "", 1});
    return Workload{{conversation}, "test"};
  }

  PhaseResult Run(const Workload& workload, const PhaseOptions& options) {
    return RunPhase({stub_.get()}, workload, options, nullptr);
  }

  SlowService service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

struct GapStats {
  double mean_s = 0;
  double cv = 0;
};

GapStats ScheduledGaps(const PhaseResult& result) {
  std::vector<int64_t> times;
  for (const RequestRecord& record : result.records) times.push_back(record.scheduled_ns);
  std::sort(times.begin(), times.end());
  std::vector<double> gaps;
  for (size_t i = 1; i < times.size(); ++i) gaps.push_back((times[i] - times[i - 1]) / 1e9);
  const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / gaps.size();
  double variance = 0;
  for (double gap : gaps) variance += (gap - mean) * (gap - mean);
  variance /= gaps.size() - 1;
  return {mean, std::sqrt(variance) / mean};
}

void ExpectNothingEarlyAndAllSucceeded(const PhaseResult& result) {
  for (const RequestRecord& record : result.records) {
    EXPECT_TRUE(record.succeeded()) << record.error_message;
    EXPECT_GE(record.start_ns, record.scheduled_ns);
  }
}

TEST_F(DriverTest, OpenLoopArrivalsAreGammaWithTheRateAndBurstinessAsked) {
  // 800 gaps: the sample mean's and CV's standard errors are a few percent;
  // the bounds allow about four of them.
  for (const double burstiness : {1.0, 0.25, 4.0}) {
    SCOPED_TRACE(absl::StrCat("burstiness ", burstiness));
    PhaseOptions options;
    options.load.mode = LoadSpec::Mode::kRequestRate;
    options.load.value = 2000;
    options.load.burstiness = burstiness;
    options.max_requests = 801;
    options.seed = 42;
    const PhaseResult result = Run(Conversations(1), options);
    ASSERT_EQ(result.records.size(), 801u);
    ExpectNothingEarlyAndAllSucceeded(result);
    const GapStats gaps = ScheduledGaps(result);
    EXPECT_NEAR(gaps.mean_s, 1.0 / 2000, 0.15 / 2000);
    const double expected_cv = 1 / std::sqrt(burstiness);
    EXPECT_NEAR(gaps.cv, expected_cv, 0.2 * expected_cv);
  }
}

// The most requests in flight at once, from their start and end times.
int MaxInFlight(const PhaseResult& result) {
  std::vector<std::pair<int64_t, int>> edges;
  for (const RequestRecord& record : result.records) {
    edges.emplace_back(record.start_ns, +1);
    edges.emplace_back(record.end_ns, -1);  // sorts before a start at the same time
  }
  std::sort(edges.begin(), edges.end());
  int in_flight = 0;
  int most = 0;
  for (const auto& [time, delta] : edges) {
    in_flight += delta;
    most = std::max(most, in_flight);
  }
  return most;
}

TEST_F(DriverTest, AnOpenLoopDoesNotWaitForReplies) {
  // Arrivals about 1 ms apart, replies after 20 ms: requests overlap, which
  // they never would if each arrival waited for the previous reply.
  PhaseOptions options;
  options.load.mode = LoadSpec::Mode::kRequestRate;
  options.load.value = 1000;
  options.max_requests = 50;
  options.seed = 1;
  const PhaseResult result = Run(Conversations(1), options);
  ASSERT_EQ(result.records.size(), 50u);
  ExpectNothingEarlyAndAllSucceeded(result);
  EXPECT_GE(MaxInFlight(result), 2);
}

TEST_F(DriverTest, AClosedLoopKeepsItsConversationsInFlightAndThinksBetweenTurns) {
  PhaseOptions options;
  options.load.mode = LoadSpec::Mode::kConcurrency;
  options.load.value = 3;
  options.max_requests = 18;  // 6 conversations of 3 turns
  options.think_time = std::chrono::milliseconds(30);
  const PhaseResult result = Run(Conversations(3), options);
  ASSERT_EQ(result.records.size(), 18u);
  ExpectNothingEarlyAndAllSucceeded(result);
  EXPECT_LE(MaxInFlight(result), 3);
  // Each later turn starts at least the think time after its predecessor ended.
  for (const RequestRecord& later : result.records) {
    if (later.turn == 0) continue;
    const auto previous =
        std::find_if(result.records.begin(), result.records.end(), [&](const RequestRecord& r) {
          return r.conversation == later.conversation && r.turn == later.turn - 1;
        });
    ASSERT_NE(previous, result.records.end());
    EXPECT_GE(later.scheduled_ns - previous->end_ns, 30 * kMs);
    EXPECT_GE(later.start_ns - previous->end_ns, 30 * kMs);
  }
}

}  // namespace
}  // namespace muserve::loadgen
