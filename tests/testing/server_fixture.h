// ServerTest: the gRPC server in-process on free ports with the tiny model,
// and a real gRPC client to it; shared by the server's integration tests.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model/make_model.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "muserve/v1/inference.grpc.pb.h"
#include "server/grpc/inference_server.h"
#include "server/observability/logging.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/http_get.h"
#if defined(MUSERVE_TEST_CUDA)
#include "tests/testing/cuda_test_util.h"
#endif

namespace muserve::server::testing {

using Clock = std::chrono::steady_clock;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// The tensor-parallel size the server tests run at: 1, or what the test
// program was built for (tests/CMakeLists.txt builds the server tests a
// second time with the model split over two CPU ranks).
#ifndef MUSERVE_TEST_TENSOR_PARALLEL_SIZE
#define MUSERVE_TEST_TENSOR_PARALLEL_SIZE 1
#endif
inline constexpr int32_t kTestTensorParallelSize = MUSERVE_TEST_TENSOR_PARALLEL_SIZE;

// The backend the server tests run on: cpu, or cuda for the copy built with
// MUSERVE_TEST_DEVICE="cuda" (label gpu), whose every test skips where no
// CUDA device is visible.
#ifndef MUSERVE_TEST_DEVICE
#define MUSERVE_TEST_DEVICE "cpu"
#endif
inline constexpr std::string_view kTestDevice = MUSERVE_TEST_DEVICE;

// One tiny model directory per test program.
inline const std::filesystem::path& TinyModelDir() {
  static muserve::testing::TempDir* dir = [] {
    auto* d = new muserve::testing::TempDir();
    const absl::Status made = MakeModel({.out_dir = d->path(), .preset = ModelPreset::kTiny});
    if (!made.ok()) {
      std::fprintf(stderr, "cannot make the tiny model: %s\n", made.ToString().c_str());
      std::abort();
    }
    return d;
  }();
  return dir->path();
}

inline ServerOptions TinyServerOptions() {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_port = 0;
  options.model.model_dir = TinyModelDir();
  // Two threads in all, whatever the number of ranks.
  options.model.num_threads = std::max(1, 2 / kTestTensorParallelSize);
  options.model.tensor_parallel_size = kTestTensorParallelSize;
  options.model.kv_cache_bytes = 64 << 20;
  options.model.device = std::string(kTestDevice);
  // Several test programs may share the GPU.
  options.model.gpu_memory_utilization = 0.2;
  return options;
}

// A greedy text request for exactly max_tokens tokens.
inline v1::GenerateRequest Greedy(std::string text, int32_t max_tokens) {
  v1::GenerateRequest request;
  request.set_text(std::move(text));
  request.mutable_options()->mutable_sampling()->set_temperature(0);
  request.mutable_options()->mutable_stopping()->set_max_tokens(max_tokens);
  request.mutable_options()->mutable_stopping()->set_ignore_eos(true);
  return request;
}

struct Stream {
  std::string text;
  std::vector<int32_t> token_ids;
  int num_chunks = 0;
  std::optional<v1::Finished> finished;
  std::string request_id;
  grpc::Status status;
};

inline Stream ReadRest(grpc::ClientReader<v1::GenerateResponse>& reader,
                       const v1::GenerateResponse& first);

// A stream that ended normally after exactly `tokens` output tokens
// (max_tokens, FINISH_REASON_LENGTH).
inline void ExpectRanToLength(const Stream& stream, size_t tokens) {
  EXPECT_TRUE(stream.status.ok()) << stream.status.error_message();
  ASSERT_TRUE(stream.finished.has_value());
  EXPECT_EQ(stream.finished->reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(stream.token_ids.size(), tokens);
}

// A whole stream.
inline Stream Read(std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader) {
  v1::GenerateResponse first;
  if (!reader->Read(&first)) {
    Stream stream;
    stream.status = reader->Finish();
    return stream;
  }
  return ReadRest(*reader, first);
}

// The rest of a stream whose first response the test already read.
inline Stream ReadRest(grpc::ClientReader<v1::GenerateResponse>& reader,
                       const v1::GenerateResponse& first) {
  Stream stream;
  v1::GenerateResponse response = first;
  do {
    stream.request_id = response.request_id();
    if (response.has_chunk()) {
      ++stream.num_chunks;
      stream.text += response.chunk().text();
      stream.token_ids.insert(stream.token_ids.end(), response.chunk().token_ids().begin(),
                              response.chunk().token_ids().end());
    } else if (response.has_finished()) {
      stream.finished = response.finished();
    }
  } while (reader.Read(&response));
  stream.status = reader.Finish();
  return stream;
}

// A started server plus a client channel to it.
class ServerTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options = TinyServerOptions(), bool load = true) {
    auto server = InferenceServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    if (load) {
      const absl::Status loaded = server_->LoadModel();
      ASSERT_TRUE(loaded.ok()) << loaded;
    }
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Inference::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
  }

  static void SetUpTestSuite() { ASSERT_TRUE(ConfigureLogging("warn", "text").ok()); }
  // The cuda copy of the suites skips every test where no device is visible
  // (a fixture overriding SetUp calls this first and returns if skipped).
  void SetUp() override {
#if defined(MUSERVE_TEST_CUDA)
    MUSERVE_SKIP_WITHOUT_CUDA_DEVICE();
#endif
  }

  Stream Run(const v1::GenerateRequest& request,
             std::optional<std::chrono::milliseconds> deadline = std::nullopt) {
    grpc::ClientContext context;
    if (deadline) context.set_deadline(std::chrono::system_clock::now() + *deadline);
    return Read(stub_->Generate(&context, request));
  }

  Stream RunChat(const v1::ChatRequest& request) {
    grpc::ClientContext context;
    return Read(stub_->Chat(&context, request));
  }

  // /metrics as Prometheus reads it (empty when the endpoint does not answer).
  std::string ScrapeMetrics() {
    return muserve::testing::HttpGet(server_->metrics_port(), "/metrics").value_or("");
  }

  // Scrapes until /metrics contains `text`: a request's record is written
  // once both its call and its engine request have ended, which can trail
  // what the client sees by a moment.
  bool WaitForMetric(const std::string& text,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (ScrapeMetrics().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  HealthCheckResponse::ServingStatus Health(const std::string& service = "") {
    grpc::ClientContext context;
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    const grpc::Status status = health_->Check(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.status();
  }

  v1::Load GetLoad() {
    grpc::ClientContext context;
    v1::Load load;
    EXPECT_TRUE(stub_->GetLoad(&context, v1::GetLoadRequest(), &load).ok());
    return load;
  }

  // Waits until no request runs or waits and every KV block is free, as the
  // metrics endpoint reports it. False on timeout.
  bool WaitForIdle(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      const auto metrics = muserve::testing::HttpGet(server_->metrics_port(), "/metrics");
      if (metrics) {
        const auto running =
            muserve::testing::PrometheusValue(*metrics, "muserve_running_requests");
        const auto waiting =
            muserve::testing::PrometheusValue(*metrics, "muserve_waiting_requests");
        const auto used =
            muserve::testing::PrometheusValue(*metrics, "muserve_kv_cache_used_blocks");
        if (running == 0.0 && waiting == 0.0 && used == 0.0) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::unique_ptr<InferenceServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace muserve::server::testing
