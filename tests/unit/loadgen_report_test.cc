// The load generator's outputs: plot axes, the SVG, the JSON result and the
// comparison of two results.
#include <string>

#include "bench/loadgen/compare.h"
#include "bench/loadgen/report.h"
#include "bench/loadgen/stats.h"
#include "bench/loadgen/svg_plot.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace muserve::loadgen {
namespace {

using ::testing::HasSubstr;

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

void ExpectTicks(const std::vector<double>& actual, const std::vector<double>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) EXPECT_NEAR(actual[i], expected[i], 1e-9) << i;
}

TEST(NiceTicksTest, RoundStepsThatCoverTheRange) {
  ExpectTicks(NiceTicks(0, 1), {0, 0.2, 0.4, 0.6, 0.8, 1.0});
  ExpectTicks(NiceTicks(0, 7300), {0, 2000, 4000, 6000, 8000});
  ExpectTicks(NiceTicks(0, 46), {0, 10, 20, 30, 40, 50});
  ExpectTicks(NiceTicks(3, 3), {3, 3.2, 3.4, 3.6, 3.8, 4});  // an empty range becomes [lo, lo + 1]
  ExpectTicks(NiceTicks(1, 3, 5, 1), {1, 2, 3});             // whole numbers only (turns)
}

TEST(RenderSvgTest, OneLinePerSeriesWithLegendLabelsAndEscapedText) {
  Plot plot;
  plot.title = "TTFT <against> throughput";
  plot.x_label = "output tokens/s";
  plot.y_label = "TTFT (ms)";
  plot.series.push_back({"p50", {10, 20, 30}, {1, 2, 4}, {"c=1", "c=4", "c=16"}});
  plot.series.push_back({"p99", {10, 20, 30}, {2, 5, 9}, {}});
  const std::string svg = RenderSvg(plot);
  EXPECT_TRUE(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_TRUE(svg.ends_with("</svg>\n"));
  EXPECT_EQ(Count(svg, "<polyline"), 2);
  EXPECT_EQ(Count(svg, "<circle"), 6 + 2);  // points + legend markers
  EXPECT_THAT(svg, HasSubstr("TTFT &lt;against&gt; throughput"));
  EXPECT_THAT(svg, HasSubstr(">c=16</text>"));
  EXPECT_THAT(svg, HasSubstr(">p99</text>"));
  EXPECT_THAT(svg, HasSubstr(">output tokens/s</text>"));
}

BenchResult TwoPointResult(double throughput_scale) {
  BenchResult result;
  result.config.targets = {"127.0.0.1:1"};
  result.config.load_values = {1, 4};
  result.workload = "synthetic";
  result.started_at = "2026-11-26T00:00:00Z";
  for (double value : {1.0, 4.0}) {
    PointResult point;
    point.load.value = value;
    point.figures.requests_sent = 10;
    point.figures.succeeded = 10;
    point.figures.request_throughput = value * throughput_scale;
    point.figures.ttft_ms = Summary{.count = 10, .mean = 5, .p50 = 4, .p90 = 8, .p99 = 9, .max = 9};
    result.points.push_back(point);
  }
  return result;
}

TEST(ResultJsonTest, HoldsTheConfigurationAndEveryFigure) {
  const nlohmann::json json = ResultJson(TwoPointResult(1));
  EXPECT_EQ(json["format"], "muserve-bench/1");
  EXPECT_EQ(json["config"]["mode"], "concurrency");
  EXPECT_EQ(json["config"]["load_values"], nlohmann::json::array({1.0, 4.0}));
  ASSERT_EQ(json["points"].size(), 2u);
  const nlohmann::json& figures = json["points"][1]["figures"];
  for (const char* key : {"requests_sent", "succeeded", "failed", "errors_by_code", "duration_s",
                          "output_tokens", "request_throughput", "output_token_throughput",
                          "goodput", "ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "turns"}) {
    EXPECT_TRUE(figures.contains(key)) << key;
  }
  EXPECT_EQ(figures["ttft_ms"]["p90"], 8);
  EXPECT_EQ(json["points"][1]["load"]["label"], "concurrency 4");
}

TEST(ResultJsonTest, AFigureWithoutSamplesIsNullNotZero) {
  BenchResult result = TwoPointResult(1);
  result.points[1].figures.succeeded = 0;
  result.points[1].figures.ttft_ms = Summary{};
  const nlohmann::json json = ResultJson(result);
  const nlohmann::json& ttft = json["points"][1]["figures"]["ttft_ms"];
  EXPECT_EQ(ttft["count"], 0);
  for (const char* stat : {"mean", "p50", "p90", "p99", "max"}) {
    EXPECT_TRUE(ttft[stat].is_null()) << stat;
  }
  EXPECT_EQ(json["points"][0]["figures"]["ttft_ms"]["p50"], 4);
  // In the sweep table: "-", not 0.00.
  const std::string table = FormatReport(result);
  EXPECT_THAT(table, testing::ContainsRegex("concurrency 4 +[0-9.]+ +[0-9.]+ +- +- +- +-"));
  EXPECT_THAT(table, testing::ContainsRegex("concurrency 1 +[0-9.]+ +[0-9.]+ +4.00 +9.00"));
}

TEST(ResultJsonTest, SeveralTargetsGetFiguresEach) {
  std::vector<RequestRecord> records(3);
  for (int i = 0; i < 3; ++i) {
    records[i].target = i % 2;
    records[i].finished = true;
    records[i].start_ns = 0;
    records[i].chunks = {{(i + 1) * 1'000'000, 1}};
    records[i].end_ns = (i + 1) * 1'000'000;
  }
  records[2].status_code = 14;  // UNAVAILABLE
  BenchResult result = TwoPointResult(1);
  result.config.targets = {"a:1", "b:2"};
  result.points[0].figures = ComputeFigures(records, 1.0, Slo{});
  const nlohmann::json json = ResultJson(result);
  const nlohmann::json& by_target = json["points"][0]["figures"]["by_target"];
  ASSERT_EQ(by_target.size(), 2u);
  EXPECT_EQ(by_target[0]["target"], "a:1");
  EXPECT_EQ(by_target[0]["requests_sent"], 2);
  EXPECT_EQ(by_target[0]["failed"], 1);
  EXPECT_EQ(by_target[0]["ttft_ms"]["p50"], 1);
  EXPECT_EQ(by_target[1]["target"], "b:2");
  EXPECT_EQ(by_target[1]["succeeded"], 1);
  EXPECT_EQ(by_target[1]["ttft_ms"]["p99"], 2);
  EXPECT_THAT(FormatReport(result), testing::ContainsRegex("a:1 +2 +1 +1 +1.00 +1.00"));
  // One target: nothing per target.
  result.config.targets = {"a:1"};
  EXPECT_FALSE(ResultJson(result)["points"][0]["figures"].contains("by_target"));
}

TEST(CompareTest, PrintsRatiosOfBToAPointByPoint) {
  BenchResult b = TwoPointResult(2);
  b.config.num_requests = 50;
  auto text = CompareResults(ResultJson(TwoPointResult(1)), ResultJson(b));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("config.num_requests: 100 vs 50"));
  EXPECT_THAT(*text, HasSubstr("\nconcurrency 4\n"));
  EXPECT_THAT(*text, testing::ContainsRegex("request_throughput +4 +8 +2.000"));
  EXPECT_THAT(*text, testing::ContainsRegex("ttft_ms.p90 +8 +8 +1.000"));
}

TEST(CompareTest, MatchesPointsByLoadAndShowsOneSidedFigures) {
  BenchResult a = TwoPointResult(1);  // concurrency 1 and 4
  BenchResult b = TwoPointResult(2);
  b.points[0].load.value = 16;  // B: concurrency 16 and 4
  b.points[1].figures.errors_by_code["UNAVAILABLE"] = 2;
  nlohmann::json ja = ResultJson(a);
  ja["points"][1]["figures"].erase("goodput");
  ja["config"].erase("seed");
  auto text = CompareResults(ja, ResultJson(b));
  ASSERT_TRUE(text.ok()) << text.status();
  // Concurrency 4 is A's second point and B's second: compared; 1 and 16 are not.
  EXPECT_THAT(*text, HasSubstr("\nconcurrency 4\n"));
  EXPECT_THAT(*text, testing::ContainsRegex("request_throughput +4 +8 +2.000"));
  EXPECT_THAT(*text, HasSubstr("only in A: concurrency 1"));
  EXPECT_THAT(*text, HasSubstr("only in B: concurrency 16"));
  EXPECT_THAT(*text, testing::ContainsRegex("errors_by_code.UNAVAILABLE +0 +2 "));
  EXPECT_THAT(*text, testing::ContainsRegex("goodput +\\(absent\\) +null +-"));
  EXPECT_THAT(*text, HasSubstr("config.seed: (absent) vs 0"));
}

TEST(CompareTest, AFileThatIsNotAResultIsRefused) {
  auto text = CompareResults(nlohmann::json{{"points", 3}}, ResultJson(TwoPointResult(1)));
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(text.status().message(), HasSubstr("A is not a muserve bench result"));
}

}  // namespace
}  // namespace muserve::loadgen
