// `muserve bench` as a process against the tiny model: a short sweep of
// conversations on an in-process server succeeds with consistent counts, a
// JSON holding every figure and non-empty plots; a server with a tiny queue
// gets RESOURCE_EXHAUSTED counted, not a crash; --target drives a running
// server (given twice here, as two replicas); compare reads two results.
// Against a server that never answers, or refuses everything: deadlines,
// the end-of-duration cancellation, the back-off, Ctrl-C and the exit status
// keep the bench from hanging or passing for a measurement.
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "muserve/v1/inference.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/testing/fixtures.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/subprocess.h"

namespace muserve::server::testing {
namespace {

using muserve::testing::ProcessResult;
using muserve::testing::RunProcess;
using muserve::testing::TempDir;
using ::testing::HasSubstr;

ProcessResult Bench(std::vector<std::string> flags) {
  std::vector<std::string> argv = {MUSERVE_BINARY, "bench"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return RunProcess(argv);
}

std::vector<std::string> InProcess(std::vector<std::string> flags) {
  std::vector<std::string> all = {"--in-process", "--model", TinyModelDir().string()};
  all.insert(all.end(), flags.begin(), flags.end());
  return all;
}

// Every figure of a load point, and the counts adding up.
void ExpectCompleteFigures(const nlohmann::json& figures) {
  for (const char* key :
       {"requests_sent", "succeeded", "failed", "cancelled", "errors_by_code", "duration_s",
        "prompt_tokens", "output_tokens", "cached_prompt_tokens", "request_throughput",
        "output_token_throughput", "goodput", "good_requests", "turns"}) {
    EXPECT_TRUE(figures.contains(key)) << key;
  }
  for (const char* latency : {"ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "send_lag_ms"}) {
    for (const char* stat : {"count", "mean", "p50", "p90", "p99", "max"}) {
      EXPECT_TRUE(figures[latency].contains(stat)) << latency << "." << stat;
    }
  }
  EXPECT_EQ(figures["requests_sent"].get<int64_t>(), figures["succeeded"].get<int64_t>() +
                                                         figures["failed"].get<int64_t>() +
                                                         figures["cancelled"].get<int64_t>());
}

TEST(BenchCommandTest, ASweepOfConversationsOnTheTinyModelWritesEveryFigureAndThePlots) {
  TempDir out;
  const ProcessResult run =
      Bench(InProcess({"--num-requests", "12", "--turns", "3", "--input-len", "uniform:8:24",
                       "--output-len", "6", "--concurrency", "1,3", "--slo-ttft-ms", "60000",
                       "--slo-tpot-ms", "60000", "--result-dir", out.path().string()}));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("== concurrency 1: 12 requests (12 succeeded, 0 failed)"));
  EXPECT_THAT(run.stdout_text, HasSubstr("== concurrency 3: 12 requests (12 succeeded, 0 failed)"));
  EXPECT_EQ(run.stderr_text.find("\033[K"), std::string::npos);  // no progress bar off a terminal

  const nlohmann::json result = muserve::testing::ReadJsonOrFail(out.path() / "bench.json");
  EXPECT_EQ(result["config"]["turns"], 3);
  EXPECT_EQ(result["config"]["in_process"]["model"], TinyModelDir().string());
  EXPECT_EQ(result["config"]["in_process"]["threads"], 2);
  EXPECT_EQ(result["config"]["load_values"], nlohmann::json::array({1.0, 3.0}));
  ASSERT_EQ(result["points"].size(), 2u);
  for (const nlohmann::json& point : result["points"]) {
    const nlohmann::json& figures = point["figures"];
    ExpectCompleteFigures(figures);
    EXPECT_EQ(figures["requests_sent"], 12);
    EXPECT_EQ(figures["succeeded"], 12);
    EXPECT_EQ(figures["output_tokens"], 12 * 6);  // ignore_eos: exactly --output-len each
    EXPECT_EQ(figures["good_requests"], 12);      // objectives no run can miss
    EXPECT_EQ(figures["ttft_ms"]["count"], 12);
    EXPECT_EQ(figures["itl_ms"]["count"], 12 * 5);
    EXPECT_GT(figures["ttft_ms"]["p50"].get<double>(), 0);
    // Later turns resend the history, of which the prefix cache holds blocks.
    ASSERT_EQ(figures["turns"].size(), 3u);
    for (const nlohmann::json& turn : figures["turns"]) EXPECT_EQ(turn["succeeded"], 4);
    EXPECT_EQ(figures["turns"][0]["mean_cached_prompt_tokens"], 0);
    EXPECT_GT(figures["turns"][2]["mean_cached_prompt_tokens"].get<double>(), 0);
  }
  for (const char* plot : {"ttft_vs_throughput.svg", "tpot_vs_throughput.svg",
                           "e2e_vs_throughput.svg", "ttft_per_turn.svg"}) {
    const std::string svg = muserve::testing::ReadFileOrFail(out.path() / plot);
    EXPECT_THAT(svg, HasSubstr("<polyline")) << plot;
  }

  // A run compared with itself: every ratio is 1.
  const ProcessResult compare =
      RunProcess({MUSERVE_BINARY, "bench", "compare", (out.path() / "bench.json").string(),
                  (out.path() / "bench.json").string()});
  ASSERT_EQ(compare.exit_code, 0) << compare.stderr_text;
  EXPECT_THAT(compare.stdout_text, HasSubstr("same configuration"));
  EXPECT_THAT(compare.stdout_text,
              ::testing::ContainsRegex("ttft_ms.p99 +[0-9.e+-]+ +[0-9.e+-]+ +1.000"));
}

TEST(BenchCommandTest, AnOpenLoopBudgetsWholeConversations) {
  TempDir out;
  // All conversations at once: the 12 requests are 4 conversations of 3 turns,
  // not 12 first turns.
  const ProcessResult run = Bench(InProcess(
      {"--request-rate", "inf", "--turns", "3", "--num-requests", "12", "--warmup-requests", "0",
       "--input-len", "8", "--output-len", "4", "--result-dir", out.path().string()}));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  const nlohmann::json figures =
      muserve::testing::ReadJsonOrFail(out.path() / "bench.json")["points"][0]["figures"];
  EXPECT_EQ(figures["requests_sent"], 12);
  EXPECT_EQ(figures["send_lag_ms"]["count"], 12);
  EXPECT_GE(figures["send_lag_ms"]["p50"].get<double>(), 0);
  EXPECT_THAT(run.stdout_text, HasSubstr("send lag (client behind schedule): p50 "));
  ASSERT_EQ(figures["turns"].size(), 3u);
  for (int turn = 0; turn < 3; ++turn) {
    EXPECT_EQ(figures["turns"][turn]["turn"], turn);
    EXPECT_EQ(figures["turns"][turn]["succeeded"], 4) << "turn " << turn;
  }
}

TEST(BenchCommandTest, RequestsRefusedByAFullQueueAreCountedAsResourceExhausted) {
  TempDir out;
  const ProcessResult run =
      Bench(InProcess({"--max-num-seqs", "1", "--max-queue", "1", "--request-rate", "inf",
                       "--num-requests", "16", "--warmup-requests", "0", "--input-len", "16",
                       "--output-len", "32", "--result-dir", out.path().string()}));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  const nlohmann::json figures =
      muserve::testing::ReadJsonOrFail(out.path() / "bench.json")["points"][0]["figures"];
  ExpectCompleteFigures(figures);
  EXPECT_EQ(figures["requests_sent"], 16);
  EXPECT_GE(figures["succeeded"].get<int64_t>(), 1);
  EXPECT_GE(figures["failed"].get<int64_t>(), 1);
  EXPECT_EQ(figures["errors_by_code"]["RESOURCE_EXHAUSTED"], figures["failed"]);
  EXPECT_THAT(run.stdout_text, HasSubstr("errors: RESOURCE_EXHAUSTED"));
}

TEST(BenchCommandTest, AShareGptFileIsPlayedAsChatConversations) {
  TempDir out;
  const std::filesystem::path data = out.path() / "sharegpt.jsonl";
  std::ofstream(data)
      << R"({"conversations": [{"from": "human", "value": "hello there"},)"
         R"( {"from": "gpt", "value": "hi"}, {"from": "human", "value": "tell me more"},)"
         R"( {"from": "gpt", "value": "more words here"}]})"
         "\n"
         R"({"conversations": [{"from": "system", "value": "be brief"},)"
         R"( {"from": "human", "value": "why"}, {"from": "gpt", "value": "because"}]})"
         "\n";
  const ProcessResult run =
      Bench(InProcess({"--dataset", data.string(), "--num-requests", "6", "--warmup-requests", "0",
                       "--result-dir", out.path().string()}));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("dataset sharegpt.jsonl: 2 entries, 3 turns"));
  const nlohmann::json result = muserve::testing::ReadJsonOrFail(out.path() / "bench.json");
  const nlohmann::json& figures = result["points"][0]["figures"];
  ExpectCompleteFigures(figures);
  EXPECT_EQ(figures["requests_sent"], 6);  // the two conversations, cycled
  EXPECT_EQ(figures["succeeded"], 6);
  EXPECT_EQ(figures["turns"].size(), 2u);
  EXPECT_GT(figures["turns"][1]["mean_prompt_tokens"].get<double>(),
            figures["turns"][0]["mean_prompt_tokens"].get<double>());
}

TEST(BenchCommandTest, DurationAloneBoundsAnOpenLoopPhase) {
  TempDir out;
  // No --num-requests: the default of 100 does not apply with --duration.
  const ProcessResult run =
      Bench(InProcess({"--request-rate", "250", "--duration", "1s", "--input-len", "8",
                       "--output-len", "4", "--result-dir", out.path().string()}));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  const nlohmann::json figures =
      muserve::testing::ReadJsonOrFail(out.path() / "bench.json")["points"][0]["figures"];
  ExpectCompleteFigures(figures);
  // Poisson arrivals at 250/s for 1 s: about 250 (sd 16), well beyond 100.
  EXPECT_GT(figures["requests_sent"].get<int64_t>(), 100);
  EXPECT_LT(figures["requests_sent"].get<int64_t>(), 500);
  EXPECT_EQ(figures["failed"], 0);
  const nlohmann::json config =
      muserve::testing::ReadJsonOrFail(out.path() / "bench.json")["config"];
  EXPECT_TRUE(config["num_requests"].is_null());
  // Conversations built up front are capped; instances cycle over them.
  EXPECT_THAT(run.stdout_text, HasSubstr("synthetic: 10000 conversations"));
}

// A server that describes a model and accepts streams, then never answers
// them (a hung replica), or refuses them at once with UNAVAILABLE (a
// draining or broken one).
class SilentService final : public v1::Inference::Service {
 public:
  explicit SilentService(bool refuse) : refuse_(refuse) {}

  grpc::Status GetModelInfo(grpc::ServerContext*, const v1::GetModelInfoRequest*,
                            v1::ModelInfo* response) override {
    response->set_model("silent");
    response->set_vocab_size(64);
    response->set_max_context_length(256);
    return grpc::Status::OK;
  }
  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest*,
                        grpc::ServerWriter<v1::GenerateResponse>*) override {
    ++calls_;
    if (refuse_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
    while (!context->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return grpc::Status::CANCELLED;
  }
  int calls() const { return calls_; }

 private:
  const bool refuse_;
  std::atomic<int> calls_ = 0;
};

class SilentServer {
 public:
  explicit SilentServer(bool refuse = false) : service_(refuse) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~SilentServer() { server_->Shutdown(std::chrono::system_clock::now()); }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }
  int calls() const { return service_.calls(); }

 private:
  SilentService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST(BenchCommandTest, AServerThatNeverAnswersFailsRequestsAtTheirDeadline) {
  SilentServer silent;
  TempDir out;
  const ProcessResult run = Bench({"--target", silent.target(), "--timeout-ms", "200",
                                   "--num-requests", "3", "--warmup-requests", "0", "--input-len",
                                   "4", "--output-len", "4", "--result-dir", out.path().string()});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.stderr_text,
              HasSubstr("concurrency 1: no request succeeded on " + silent.target()));
  EXPECT_THAT(run.stdout_text, HasSubstr("3 requests (0 succeeded, 3 failed)"));
  const nlohmann::json figures =
      muserve::testing::ReadJsonOrFail(out.path() / "bench.json")["points"][0]["figures"];
  ExpectCompleteFigures(figures);
  EXPECT_EQ(figures["errors_by_code"]["DEADLINE_EXCEEDED"], 3);
}

TEST(BenchCommandTest, CallsInFlightAtTheEndOfADurationAreCancelledAndCounted) {
  SilentServer silent;
  TempDir out;
  const auto started = std::chrono::steady_clock::now();
  const ProcessResult run = Bench({"--target", silent.target(), "--duration", "300ms",
                                   "--request-rate", "20", "--warmup-requests", "0", "--input-len",
                                   "4", "--output-len", "4", "--result-dir", out.path().string()});
  // The default 10 min deadline never came into play: the grace (300 ms) did.
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  const nlohmann::json figures =
      muserve::testing::ReadJsonOrFail(out.path() / "bench.json")["points"][0]["figures"];
  ExpectCompleteFigures(figures);
  EXPECT_GE(figures["cancelled"].get<int64_t>(), 1);
  EXPECT_EQ(figures["cancelled"], figures["requests_sent"]);
  EXPECT_EQ(figures["failed"], 0);
  EXPECT_THAT(run.stdout_text, HasSubstr("cancelled at the end"));
}

TEST(BenchCommandTest, AClosedLoopBacksOffATargetThatRefusesEverything) {
  SilentServer refusing(/*refuse=*/true);
  TempDir out;
  const ProcessResult run = Bench({"--target", refusing.target(), "--duration", "1s",
                                   "--concurrency", "2", "--warmup-requests", "0", "--input-len",
                                   "4", "--output-len", "4", "--result-dir", out.path().string()});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.stderr_text, HasSubstr("concurrency 2: no request succeeded"));
  const nlohmann::json figures =
      muserve::testing::ReadJsonOrFail(out.path() / "bench.json")["points"][0]["figures"];
  // Each place waits 10, 20, 40 ... ms after a refusal: about 2 x 7 in 1 s,
  // where spinning would send thousands.
  EXPECT_GE(figures["requests_sent"].get<int64_t>(), 2);
  EXPECT_LT(figures["requests_sent"].get<int64_t>(), 60);
  EXPECT_EQ(figures["errors_by_code"]["UNAVAILABLE"], figures["requests_sent"]);
}

TEST(BenchCommandTest, CtrlCEndsThePointAndWritesWhatWasMeasured) {
  SilentServer silent;
  TempDir out;
  muserve::testing::BackgroundProcess bench({MUSERVE_BINARY, "bench", "--target", silent.target(),
                                             "--concurrency", "1,2", "--warmup-requests", "0",
                                             "--input-len", "4", "--output-len", "4",
                                             "--result-dir", out.path().string()});
  ASSERT_TRUE(bench.started());
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (silent.calls() == 0 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GT(silent.calls(), 0);
  bench.Signal(SIGINT);
  // The call held by the server is cancelled, not waited for (10 min).
  EXPECT_EQ(bench.Wait(std::chrono::seconds(20)), 1);  // the point had no success
  EXPECT_THAT(bench.StderrText(), HasSubstr("interrupted"));
  const nlohmann::json result = muserve::testing::ReadJsonOrFail(out.path() / "bench.json");
  EXPECT_EQ(result["interrupted"], true);
  ASSERT_EQ(result["points"].size(), 1u);  // the sweep's second point never started
  EXPECT_EQ(result["points"][0]["figures"]["cancelled"], 1);
}

class BenchTargetTest : public ServerTest {};

TEST_F(BenchTargetTest, DrivesRunningServersGivenByTarget) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string address = absl::StrCat("127.0.0.1:", server_->port());
  const ProcessResult run =
      Bench({"--target", absl::StrCat(address, ",", address), "--num-requests", "6",
             "--request-rate", "50", "--input-len", "8", "--output-len", "4"});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("running server"));
  EXPECT_THAT(run.stdout_text, HasSubstr("== rate 50/s: 6 requests (6 succeeded, 0 failed)"));
  // Conversations alternate over the two targets: 3 requests each.
  EXPECT_THAT(run.stdout_text, ::testing::ContainsRegex("target +requests +succeeded"));
  EXPECT_THAT(run.stdout_text, ::testing::ContainsRegex(address + " +3 +3 +0 +[0-9.]+"));
}

TEST(BenchCommandTest, BadFlagsAreRefusedNamingTheFlag) {
  ProcessResult run = Bench({"--concurrency", "2", "--request-rate", "3"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.stderr_text, HasSubstr("--concurrency or --request-rate, not both"));
  run = Bench(InProcess({"--input-len", "uniform:9:3"}));
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.stderr_text, HasSubstr("--input-len"));
  run = Bench({"--max-queue", "3"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.stderr_text, HasSubstr("--max-queue sets up the in-process server"));
  run = Bench(InProcess({"--turns", "40", "--input-len", "64", "--output-len", "64"}));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.stderr_text, HasSubstr("more than the model's context"));
}

}  // namespace
}  // namespace muserve::server::testing
