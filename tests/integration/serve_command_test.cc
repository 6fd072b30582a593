// `muserve serve` as a process: the demo model is created when no --model is
// given, SIGTERM drains (health NOT_SERVING at once, new requests
// UNAVAILABLE, the stream in flight completes, exit 0), and a second signal
// exits at once; --tensor-parallel-size 2 serves the model over two ranks.
#include <csignal>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/subprocess.h"

namespace muserve::server::testing {
namespace {

using muserve::testing::BackgroundProcess;
using ::testing::HasSubstr;

// The gRPC port from the "listening" log line (the server was given --port 0).
int ListeningPort(const std::string& log) {
  const std::string key = "grpc=127.0.0.1:";
  const size_t at = log.find(key);
  if (at == std::string::npos) return -1;
  size_t end = at + key.size();
  while (end < log.size() && std::isdigit(static_cast<unsigned char>(log[end]))) ++end;
  int port = -1;
  if (!absl::SimpleAtoi(log.substr(at + key.size(), end - at - key.size()), &port)) return -1;
  return port;
}

class ServeCommandTest : public ::testing::Test {
 protected:
  void Launch(std::vector<std::string> extra) {
    std::vector<std::string> argv = {MUSERVE_BINARY, "serve", "--host",         "127.0.0.1",
                                     "--port",       "0",     "--metrics-port", "-1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<BackgroundProcess>(argv);
    ASSERT_TRUE(process_->started());
    ASSERT_TRUE(process_->WaitForStderr("serving", std::chrono::seconds(60)))
        << process_->StderrText();
    const int port = ListeningPort(process_->StderrText());
    ASSERT_GT(port, 0) << process_->StderrText();
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
    stub_ = v1::Inference::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
  }

  HealthCheckResponse::ServingStatus Health() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    HealthCheckResponse response;
    if (!health_->Check(&context, HealthCheckRequest(), &response).ok()) {
      return HealthCheckResponse::UNKNOWN;
    }
    return response.status();
  }

  std::unique_ptr<BackgroundProcess> process_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

TEST_F(ServeCommandTest, SigtermDrainsTheStreamInFlightAndExitsZero) {
  ASSERT_NO_FATAL_FAILURE(Launch({"--model", TinyModelDir().string(), "--drain-timeout", "60s"}));
  EXPECT_EQ(Health(), HealthCheckResponse::SERVING);
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, Greedy("a story to finish", 400));
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));

  process_->Signal(SIGTERM);
  const auto until = Clock::now() + std::chrono::seconds(5);
  while (Health() == HealthCheckResponse::SERVING && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(Health(), HealthCheckResponse::NOT_SERVING);
  {
    grpc::ClientContext refused_context;
    const Stream refused = Read(stub_->Generate(&refused_context, Greedy("new work", 4)));
    EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  ExpectRanToLength(ReadRest(*reader, response), 400);
  EXPECT_EQ(process_->Wait(std::chrono::seconds(20)), 0) << process_->StderrText();
  EXPECT_THAT(process_->StderrText(), HasSubstr("request finished"));
}

TEST_F(ServeCommandTest, SecondSignalExitsAtOnce) {
  ASSERT_NO_FATAL_FAILURE(Launch({"--model", TinyModelDir().string(), "--drain-timeout", "600s"}));
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, Greedy("a long story", 2000));
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));
  process_->Signal(SIGTERM);
  ASSERT_TRUE(process_->WaitForStderr("draining", std::chrono::seconds(10)));
  process_->Signal(SIGTERM);
  const std::optional<int> code = process_->Wait(std::chrono::seconds(10));
  ASSERT_TRUE(code.has_value()) << "still running after the second signal";
  EXPECT_EQ(*code, 128 + SIGTERM);
  context.TryCancel();
}

TEST_F(ServeCommandTest, WithoutModelServesTheDemoModelCreatedOnce) {
  muserve::testing::TempDir cache;
  ASSERT_EQ(setenv("MUSERVE_CACHE_DIR", cache.path().c_str(), 1), 0);
  ASSERT_NO_FATAL_FAILURE(Launch({}));
  EXPECT_TRUE(std::filesystem::exists(cache.path() / "demo-model-tiny-v1" / "config.json"));
  EXPECT_EQ(Health(), HealthCheckResponse::SERVING);
  grpc::ClientContext context;
  v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.model(), "demo-model-tiny-v1");
  process_->Signal(SIGINT);
  EXPECT_EQ(process_->Wait(std::chrono::seconds(20)), 0);
  unsetenv("MUSERVE_CACHE_DIR");
}

TEST_F(ServeCommandTest, TensorParallelSizeTwoServesTheModelOverTwoRanks) {
  ASSERT_NO_FATAL_FAILURE(Launch(
      {"--model", TinyModelDir().string(), "--tensor-parallel-size", "2", "--threads", "1"}));
  {
    grpc::ClientContext context;
    v1::ModelInfo info;
    ASSERT_TRUE(stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
    EXPECT_EQ(info.tensor_parallel_size(), 2);
  }
  grpc::ClientContext context;
  const Stream stream = Read(stub_->Generate(&context, Greedy("two ranks", 8)));
  ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
  ExpectRanToLength(stream, 8);
  process_->Signal(SIGTERM);
  EXPECT_EQ(process_->Wait(std::chrono::seconds(20)), 0) << process_->StderrText();
}

}  // namespace
}  // namespace muserve::server::testing
