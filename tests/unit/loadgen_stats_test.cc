// The load generator's arithmetic on synthetic timelines with known answers:
// percentiles (numpy's linear method), TTFT / ITL / TPOT from chunk arrival
// times, goodput under objectives, error counts, per-turn cache figures.
#include <cmath>
#include <vector>

#include "bench/loadgen/stats.h"
#include "bench/loadgen/timeline.h"
#include "gtest/gtest.h"

namespace muserve::loadgen {
namespace {

constexpr int64_t kMs = 1'000'000;  // ns

// A succeeded request started at `start_ms`, with chunks (arrival ms, tokens)
// and ending at `end_ms`.
RequestRecord Request(int64_t start_ms, std::vector<std::pair<int64_t, int32_t>> chunks,
                      int64_t end_ms) {
  RequestRecord record;
  record.start_ns = start_ms * kMs;
  record.end_ns = end_ms * kMs;
  for (const auto& [at_ms, tokens] : chunks) record.chunks.push_back({at_ms * kMs, tokens});
  record.finished = true;
  return record;
}

TEST(PercentileTest, InterpolatesLinearlyBetweenClosestRanksLikeNumpy) {
  // numpy.percentile([1, 2, 3, 4], [0, 50, 90, 99, 100])
  const std::vector<double> four = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(Percentile(four, 0), 1);
  EXPECT_DOUBLE_EQ(Percentile(four, 50), 2.5);
  EXPECT_NEAR(Percentile(four, 90), 3.7, 1e-12);
  EXPECT_NEAR(Percentile(four, 99), 3.97, 1e-12);
  EXPECT_DOUBLE_EQ(Percentile(four, 100), 4);
  // numpy.percentile([15, 20, 35, 40, 50], 40) == 29.0
  EXPECT_NEAR(Percentile({15, 20, 35, 40, 50}, 40), 29, 1e-12);
  EXPECT_DOUBLE_EQ(Percentile({7}, 99), 7);
}

TEST(SummarizeTest, SortsAndReportsMeanPercentilesAndMax) {
  std::vector<double> values;
  for (int i = 100; i >= 1; --i) values.push_back(i);  // 1..100, unsorted
  const Summary s = Summarize(values);
  EXPECT_EQ(s.count, 100);
  EXPECT_DOUBLE_EQ(s.mean, 50.5);
  EXPECT_DOUBLE_EQ(s.p50, 50.5);
  EXPECT_NEAR(s.p90, 90.1, 1e-9);
  EXPECT_NEAR(s.p99, 99.01, 1e-9);
  EXPECT_DOUBLE_EQ(s.max, 100);
  EXPECT_EQ(Summarize({}).count, 0);
}

TEST(MeasureTest, TokenByTokenStreamGivesGapsAsItlAndTpotUpToTheLastToken) {
  // Start 0; tokens at 100, 130, 170, 200 ms; the call ends at 210 ms.
  const RequestLatencies l = Measure(Request(0, {{100, 1}, {130, 1}, {170, 1}, {200, 1}}, 210));
  ASSERT_TRUE(l.ttft_ms.has_value());
  EXPECT_DOUBLE_EQ(*l.ttft_ms, 100);
  EXPECT_EQ(l.itl_ms, (std::vector<double>{30, 40, 30}));
  EXPECT_EQ(l.output_tokens, 4);
  EXPECT_DOUBLE_EQ(l.e2e_ms, 210);
  ASSERT_TRUE(l.tpot_ms.has_value());
  // From the first token to the last (200 ms), not to the call's end (210 ms).
  EXPECT_DOUBLE_EQ(*l.tpot_ms, (200.0 - 100.0) / 3);
}

TEST(MeasureTest, AChunkOfSeveralTokensSpreadsItsGapOverThem) {
  // First chunk: 3 tokens at 50 ms (no ITL samples for its extra tokens);
  // then 2 tokens 40 ms later (two samples of 20), 1 token 10 ms later.
  const RequestLatencies l = Measure(Request(10, {{50, 3}, {90, 2}, {100, 1}}, 120));
  EXPECT_DOUBLE_EQ(*l.ttft_ms, 40);
  EXPECT_EQ(l.itl_ms, (std::vector<double>{20, 20, 10}));
  EXPECT_EQ(l.output_tokens, 6);
  EXPECT_DOUBLE_EQ(*l.tpot_ms, (100.0 - 50.0) / 5);
}

TEST(MeasureTest, OneTokenHasNoTpotAndNoTokenHasNoTtft) {
  const RequestLatencies one = Measure(Request(0, {{20, 1}}, 25));
  EXPECT_DOUBLE_EQ(*one.ttft_ms, 20);
  EXPECT_FALSE(one.tpot_ms.has_value());
  EXPECT_TRUE(one.itl_ms.empty());
  const RequestLatencies none = Measure(Request(0, {}, 25));
  EXPECT_FALSE(none.ttft_ms.has_value());
  EXPECT_EQ(none.output_tokens, 0);
}

TEST(ComputeFiguresTest, SendLagIsStartMinusScheduleForEveryRequestSent) {
  std::vector<RequestRecord> records;
  for (int lag_ms : {0, 2, 10}) {
    RequestRecord record = Request(100, {{150, 1}}, 150);
    record.scheduled_ns = (100 - lag_ms) * kMs;
    records.push_back(record);
  }
  RequestRecord failed;
  failed.status_code = 14;  // UNAVAILABLE: sent late all the same
  failed.scheduled_ns = 0;
  failed.start_ns = 4 * kMs;
  records.push_back(failed);
  const RunFigures f = ComputeFigures(records, 1.0, Slo{});
  EXPECT_EQ(f.send_lag_ms.count, 4);
  EXPECT_DOUBLE_EQ(f.send_lag_ms.max, 10);
  EXPECT_DOUBLE_EQ(f.send_lag_ms.p50, 3);  // 0, 2, 4, 10
}

TEST(ComputeFiguresTest, GoodputCountsSucceededRequestsMeetingEveryObjective) {
  std::vector<RequestRecord> records;
  records.push_back(Request(0, {{100, 1}, {150, 1}}, 150));  // TTFT 100, TPOT 50: good
  records.push_back(Request(0, {{200, 1}, {210, 1}}, 210));  // TTFT 200: too slow
  records.push_back(Request(0, {{50, 1}, {150, 1}}, 150));   // TPOT 100: too slow
  records.push_back(Request(0, {{80, 1}}, 80));              // one token: TTFT only, good
  RequestRecord rejected;
  rejected.status_code = 8;  // RESOURCE_EXHAUSTED
  records.push_back(rejected);
  const RunFigures f = ComputeFigures(records, 2.0, Slo{.ttft_ms = 120, .tpot_ms = 60});
  EXPECT_EQ(f.requests_sent, 5);
  EXPECT_EQ(f.succeeded, 4);
  EXPECT_EQ(f.failed, 1);
  EXPECT_EQ(f.good_requests, 2);
  ASSERT_TRUE(f.goodput.has_value());
  EXPECT_DOUBLE_EQ(*f.goodput, 1.0);
  EXPECT_DOUBLE_EQ(f.request_throughput, 2.0);
  EXPECT_EQ(f.output_tokens, 7);
  EXPECT_DOUBLE_EQ(f.output_token_throughput, 3.5);
  EXPECT_EQ(f.ttft_ms.count, 4);
  EXPECT_DOUBLE_EQ(f.ttft_ms.max, 200);
  EXPECT_EQ(f.tpot_ms.count, 3);
  EXPECT_EQ(f.e2e_ms.count, 4);
}

TEST(ComputeFiguresTest, NoObjectiveMeansNoGoodput) {
  const RunFigures f = ComputeFigures({Request(0, {{10, 1}}, 10)}, 1.0, Slo{});
  EXPECT_FALSE(f.goodput.has_value());
}

TEST(ComputeFiguresTest, FailuresAreCountedByStatusCodeAndAStreamWithoutFinishedIsInternal) {
  RequestRecord exhausted;
  exhausted.status_code = 8;
  RequestRecord unavailable;
  unavailable.status_code = 14;
  RequestRecord truncated = Request(0, {{10, 1}}, 20);
  truncated.finished = false;  // OK status but the stream broke its contract
  const RunFigures f = ComputeFigures({exhausted, exhausted, unavailable, truncated}, 1.0, Slo{});
  EXPECT_EQ(f.requests_sent, f.succeeded + f.failed);
  EXPECT_EQ(f.failed, 4);
  EXPECT_EQ(f.errors_by_code.at("RESOURCE_EXHAUSTED"), 2);
  EXPECT_EQ(f.errors_by_code.at("UNAVAILABLE"), 1);
  EXPECT_EQ(f.errors_by_code.at("INTERNAL"), 1);
  EXPECT_EQ(f.ttft_ms.count, 0);
}

TEST(ComputeFiguresTest, TurnsReportTtftAndCachedPromptTokens) {
  std::vector<RequestRecord> records;
  for (int conversation = 0; conversation < 2; ++conversation) {
    RequestRecord first = Request(0, {{100 + 10 * conversation, 1}}, 120);
    first.turn = 0;
    first.prompt_tokens = 32;
    RequestRecord second = Request(200, {{230, 1}}, 240);
    second.turn = 1;
    second.prompt_tokens = 80;
    second.cached_prompt_tokens = 32 + 16 * conversation;  // 32 and 48
    records.push_back(first);
    records.push_back(second);
  }
  const RunFigures f = ComputeFigures(records, 1.0, Slo{});
  ASSERT_EQ(f.turns.size(), 2u);
  EXPECT_EQ(f.turns[0].succeeded, 2);
  EXPECT_DOUBLE_EQ(f.turns[0].ttft_ms.mean, 105);
  EXPECT_DOUBLE_EQ(f.turns[0].cached_fraction, 0);
  EXPECT_DOUBLE_EQ(f.turns[1].ttft_ms.p50, 30);
  EXPECT_DOUBLE_EQ(f.turns[1].mean_prompt_tokens, 80);
  EXPECT_DOUBLE_EQ(f.turns[1].mean_cached_prompt_tokens, 40);
  EXPECT_DOUBLE_EQ(f.turns[1].cached_fraction, 80.0 / 160);
  EXPECT_EQ(f.cached_prompt_tokens, 80);
}

}  // namespace
}  // namespace muserve::loadgen
