// The gRPC server in-process on a free port with the tiny model, driven by a
// real gRPC client: streaming under concurrency (outputs equal the engine's
// own), cancellation, deadlines, the Abort RPC, slow readers, bad input,
// queue limits, health and drain. KV usage is read back from /metrics, as an
// operator would.
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cli/offline_generation.h"
#include "tests/testing/server_fixture.h"

namespace muserve::server::testing {
namespace {

using ::testing::HasSubstr;

TEST_F(ServerTest, HealthIsNotServingUntilTheModelIsLoaded) {
  StartServer(TinyServerOptions(), /*load=*/false);
  EXPECT_EQ(Health(), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Health("muserve.v1.Inference"), HealthCheckResponse::NOT_SERVING);
  const Stream early = Run(Greedy("hello", 4));
  EXPECT_EQ(early.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(early.status.error_message(), HasSubstr("loading"));

  ASSERT_TRUE(server_->LoadModel().ok());
  EXPECT_EQ(Health(), HealthCheckResponse::SERVING);
  EXPECT_EQ(Health("muserve.v1.Inference"), HealthCheckResponse::SERVING);
  const Stream served = Run(Greedy("hello", 4));
  EXPECT_TRUE(served.status.ok()) << served.status.error_message();
  ASSERT_TRUE(served.finished.has_value());
  EXPECT_EQ(served.finished->reason(), v1::FINISH_REASON_LENGTH);
}

TEST_F(ServerTest, ATensorParallelSizeThatDoesNotDivideTheModelFailsToLoadNamingIt) {
  ServerOptions options = TinyServerOptions();
  options.model.tensor_parallel_size = 3;  // the tiny model has 4 heads
  StartServer(options, /*load=*/false);
  const absl::Status loaded = server_->LoadModel();
  EXPECT_EQ(loaded.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(loaded.message()),
              HasSubstr("--tensor-parallel-size: num_attention_heads 4 is not divisible by "
                        "tensor_parallel_size 3"));
  EXPECT_EQ(Health(), HealthCheckResponse::NOT_SERVING);
}

// Where the CUDA backend cannot run (no GPU, or a build without CUDA),
// --device cuda fails at load with a message naming the flag, and the
// server stays up, not serving. Skipped where it can run.
TEST_F(ServerTest, CudaDeviceThatCannotRunFailsToLoadNamingTheFlag) {
  ServerOptions options = TinyServerOptions();
  options.model.device = "cuda";
  StartServer(options, /*load=*/false);
  const absl::Status loaded = server_->LoadModel();
  if (loaded.ok()) GTEST_SKIP() << "the CUDA backend runs here";
  EXPECT_THAT(std::string(loaded.message()), HasSubstr("--device cuda"));
  EXPECT_THAT(std::string(loaded.message()), ::testing::AnyOf(HasSubstr("no usable CUDA device"),
                                                              HasSubstr("built without CUDA")));
  EXPECT_EQ(Health(), HealthCheckResponse::NOT_SERVING);
}

TEST_F(ServerTest, ModelInfoDescribesTheServedModel) {
  StartServer();
  grpc::ClientContext context;
  v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.architecture(), "LlamaForCausalLM");
  EXPECT_EQ(info.max_context_length(), 2048);
  EXPECT_EQ(info.vocab_size(), 512);
  EXPECT_EQ(info.device(), kTestDevice);
  EXPECT_EQ(info.dtype(), "float32");
  EXPECT_EQ(info.tensor_parallel_size(), kTestTensorParallelSize);
  EXPECT_EQ(info.kv_block_size(), 16);
  EXPECT_EQ(info.kv_capacity_tokens(), int64_t{info.kv_num_blocks()} * 16);
  EXPECT_GT(info.kv_num_blocks(), 0);
  EXPECT_TRUE(info.has_chat_template());
}

// 64 concurrent streams, each equal to the same request served alone.
TEST_F(ServerTest, ConcurrentStreamsMatchTheOutputOfEachRequestAlone) {
  StartServer();
  constexpr int kPrompts = 16;
  constexpr int kClients = 64;
  std::vector<v1::GenerateRequest> requests;
  for (int i = 0; i < kPrompts; ++i) {
    v1::GenerateRequest request =
        Greedy(absl::StrCat("Story number ", i, ": once upon a time"), 8 + 3 * i);
    if (i % 3 == 1) {  // seeded sampling is batch-invariant too
      request.mutable_options()->mutable_sampling()->set_temperature(0.9f);
      request.mutable_options()->mutable_sampling()->set_top_p(0.9f);
      request.mutable_options()->mutable_sampling()->set_seed(100 + i);
    }
    requests.push_back(request);
  }
  std::vector<Stream> alone;
  for (const auto& request : requests) alone.push_back(Run(request));
  // Greedy streams equal the offline generator's tokens: an independent
  // driver of the backend, without the scheduler or the server. It stops at
  // EOS where the server (ignore_eos) goes on with the EOS as a token.
  for (int i = 0; i < kPrompts; i += 3) {
    cli::OfflineGenerationOptions offline;
    offline.model_dir = TinyModelDir();
    offline.prompt = requests[i].text();
    offline.max_tokens = requests[i].options().stopping().max_tokens();
    offline.sampling.temperature = 0;
    offline.num_threads = 2;
    auto expected = cli::RunOfflineGeneration(offline, [](std::string_view) {});
    ASSERT_TRUE(expected.ok()) << expected.status();
    const std::vector<int32_t>& served = alone[i].token_ids;
    ASSERT_GE(served.size(), expected->output_ids.size()) << i;
    EXPECT_TRUE(
        std::equal(expected->output_ids.begin(), expected->output_ids.end(), served.begin()))
        << i;
    if (expected->stopped_on_eos) {
      // The server's next token is the EOS the offline run stopped at.
      ASSERT_GT(served.size(), expected->output_ids.size()) << i;
      EXPECT_THAT(server_->model()->eos_token_ids(),
                  ::testing::Contains(served[expected->output_ids.size()]))
          << i;
    } else {
      EXPECT_EQ(served.size(), expected->output_ids.size()) << i;
    }
  }

  std::vector<Stream> together(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] { together[c] = Run(requests[c % kPrompts]); });
  }
  for (auto& client : clients) client.join();
  for (int c = 0; c < kClients; ++c) {
    const Stream& expected = alone[c % kPrompts];
    const Stream& got = together[c];
    ASSERT_TRUE(got.status.ok()) << c << ": " << got.status.error_message();
    ASSERT_TRUE(got.finished.has_value()) << c;
    EXPECT_EQ(got.token_ids, expected.token_ids) << c;
    EXPECT_EQ(got.text, expected.text) << c;
    EXPECT_EQ(got.finished->reason(), v1::FINISH_REASON_LENGTH);
    EXPECT_EQ(got.finished->usage().completion_tokens(), 8 + 3 * (c % kPrompts));
    EXPECT_EQ(static_cast<int>(got.token_ids.size()), 8 + 3 * (c % kPrompts));
    EXPECT_THAT(got.request_id, ::testing::StartsWith("req-"));
  }
  EXPECT_TRUE(WaitForIdle());
}

TEST_F(ServerTest, ClientRequestIdIsEchoedAndStreamOptionsShapeTheStream) {
  StartServer();
  // Long enough that the first chunk is written before generation ends even
  // on a loaded machine: deltas produced while a write is in flight merge into
  // the next chunk, so a short reply may legitimately arrive as one chunk.
  constexpr int kTokens = 200;
  v1::GenerateRequest request = Greedy("echo my id", kTokens);
  request.set_request_id("client-42");
  const Stream streamed = Run(request);
  ASSERT_TRUE(streamed.status.ok());
  EXPECT_EQ(streamed.request_id, "client-42");
  EXPECT_GT(streamed.num_chunks, 1);

  request.mutable_options()->mutable_stream()->set_stream(false);
  const Stream whole = Run(request);
  ASSERT_TRUE(whole.status.ok());
  EXPECT_EQ(whole.num_chunks, 1);
  EXPECT_EQ(whole.token_ids, streamed.token_ids);
  EXPECT_EQ(whole.text, streamed.text);
  ASSERT_TRUE(whole.finished.has_value());
  EXPECT_EQ(whole.finished->usage().completion_tokens(), kTokens);
  EXPECT_GT(whole.finished->usage().prompt_tokens(), 0);
  EXPECT_GT(whole.finished->timings().total_us(), 0);
  EXPECT_GE(whole.finished->timings().total_us(),
            whole.finished->timings().time_to_first_token_us());
}

TEST_F(ServerTest, StopStringIsReportedAndCutFromTheText) {
  StartServer();
  const Stream plain = Run(Greedy("find a stop", 40));
  ASSERT_TRUE(plain.status.ok());
  ASSERT_GE(plain.text.size(), 6u);
  // A stop string taken from the middle of the greedy output.
  const std::string stop = plain.text.substr(plain.text.size() / 2, 3);
  v1::GenerateRequest request = Greedy("find a stop", 40);
  request.mutable_options()->mutable_stopping()->add_stop_strings(stop);
  const Stream stopped = Run(request);
  ASSERT_TRUE(stopped.status.ok());
  ASSERT_TRUE(stopped.finished.has_value());
  EXPECT_EQ(stopped.finished->reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(stopped.finished->stop().stop_string(), stop);
  EXPECT_EQ(stopped.text, plain.text.substr(0, plain.text.find(stop)));
}

TEST_F(ServerTest, ChatRendersTheTemplateAndStreams) {
  StartServer();
  v1::ChatRequest request;
  auto* system = request.add_messages();
  system->set_role(v1::ChatMessage::ROLE_SYSTEM);
  system->set_content("You are terse.");
  auto* user = request.add_messages();
  user->set_role(v1::ChatMessage::ROLE_USER);
  user->set_content("Tell me a story");
  request.mutable_options()->mutable_sampling()->set_temperature(0);
  request.mutable_options()->mutable_stopping()->set_max_tokens(10);
  request.mutable_options()->mutable_stopping()->set_ignore_eos(true);
  const Stream stream = RunChat(request);
  ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
  ASSERT_TRUE(stream.finished.has_value());
  EXPECT_EQ(stream.finished->usage().completion_tokens(), 10);
  // The template wraps the two messages: far more tokens than their words.
  EXPECT_GT(stream.finished->usage().prompt_tokens(), 10);
}

TEST_F(ServerTest, CancellingMidStreamFreesTheRequestAndItsBlocks) {
  StartServer();
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, Greedy("a very long story", 1500));
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));
  context.TryCancel();
  EXPECT_EQ(ReadRest(*reader, response).status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(WaitForIdle());
  // Recorded as cancelled only if the engine was still generating when the
  // cancellation reached it (a request that had finished would say length).
  EXPECT_TRUE(WaitForMetric("finish_reason=\"cancelled\""));
}

TEST_F(ServerTest, DeadlineEndsTheRequestAndFreesItsBlocks) {
  StartServer();
  const auto start = Clock::now();
  const Stream stream = Run(Greedy("a very long story", 2000), std::chrono::milliseconds(300));
  // Whichever sees the deadline first ends the call: gRPC (DEADLINE_EXCEEDED)
  // or the engine (a finished event with FINISH_REASON_DEADLINE, then OK).
  if (stream.status.ok()) {
    ASSERT_TRUE(stream.finished.has_value());
    EXPECT_EQ(stream.finished->reason(), v1::FINISH_REASON_DEADLINE);
  } else {
    EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  EXPECT_LT(stream.token_ids.size(), 2000u);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(WaitForIdle());
  EXPECT_TRUE(WaitForMetric("finish_reason=\"deadline\""));
}

TEST_F(ServerTest, AbortByIdEndsAnotherConnectionsStream) {
  StartServer();
  v1::GenerateRequest request = Greedy("a very long story", 1500);
  request.set_request_id("to-abort");
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, request);
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));

  auto other_channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                           grpc::InsecureChannelCredentials());
  auto gateway = v1::Inference::NewStub(other_channel);
  grpc::ClientContext abort_context;
  v1::AbortRequest abort;
  abort.set_request_id("to-abort");
  v1::AbortResponse aborted;
  ASSERT_TRUE(gateway->Abort(&abort_context, abort, &aborted).ok());
  EXPECT_TRUE(aborted.found());

  const Stream rest = ReadRest(*reader, response);
  EXPECT_TRUE(rest.status.ok());
  ASSERT_TRUE(rest.finished.has_value());
  EXPECT_EQ(rest.finished->reason(), v1::FINISH_REASON_CANCELLED);
  EXPECT_LT(rest.finished->usage().completion_tokens(), 1500);
  EXPECT_TRUE(WaitForIdle());

  grpc::ClientContext again;
  ASSERT_TRUE(gateway->Abort(&again, abort, &aborted).ok());
  EXPECT_FALSE(aborted.found());
}

TEST_F(ServerTest, DuplicateRequestIdInFlightIsRefused) {
  StartServer();
  v1::GenerateRequest request = Greedy("a very long story", 1500);
  request.set_request_id("same");
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, request);
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));
  const Stream second = Run(request);
  EXPECT_EQ(second.status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(second.status.error_message(), HasSubstr("same"));
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  reader->Finish();
  EXPECT_TRUE(WaitForIdle());
}

// A client that stops reading is cancelled after the stall timeout, with a
// status saying why, and its blocks are freed; the engine never waits on it.
// A client on small flow-control windows, so that unread responses back up
// quickly, streaming top-20 logprobs (a few hundred bytes per token).
class SlowReaderTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    if (IsSkipped()) return;
    ServerOptions options = TinyServerOptions();
    options.stream_stall_timeout = std::chrono::milliseconds(300);
    StartServer(options);
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
    slow_ = v1::Inference::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials(), args));
    v1::GenerateRequest request = Greedy("a very long story", 2000);
    request.mutable_options()->mutable_logprobs()->set_top_logprobs(20);
    reader_ = slow_->Generate(&context_, request);
    ASSERT_TRUE(reader_->Read(&first_));
  }

  std::unique_ptr<v1::Inference::Stub> slow_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader_;
  v1::GenerateResponse first_;
};

// A client that stops reading is cancelled after the stall timeout, with a
// status saying why, and its blocks are freed; other clients are served
// meanwhile and the engine never waits on it.
TEST_F(SlowReaderTest, ClientThatStopsReadingIsCancelledWithTheReason) {
  const Stream other = Run(Greedy("someone else", 8));
  EXPECT_TRUE(other.status.ok());
  EXPECT_EQ(other.token_ids.size(), 8u);
  // Past the stall timeout, before the reset that follows it a second later.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  const Stream rest = ReadRest(*reader_, first_);
  EXPECT_FALSE(rest.finished.has_value());
  EXPECT_EQ(rest.status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_THAT(rest.status.error_message(), HasSubstr("stopped reading"));
  EXPECT_TRUE(WaitForIdle());
  EXPECT_TRUE(WaitForMetric("code=\"CANCELLED\""));
}

// A client that never reads again does not pin the call: the server resets
// the stream, the call ends on the server (its record is written) and the
// drain has nothing left to wait for.
TEST_F(SlowReaderTest, ClientThatNeverReadsAgainIsLetGo) {
  EXPECT_TRUE(WaitForIdle());
  EXPECT_TRUE(WaitForMetric("code=\"CANCELLED\""));
  EXPECT_TRUE(server_->Drain(std::chrono::seconds(10)));
  EXPECT_EQ(server_->num_active(), 0u);
  EXPECT_EQ(ReadRest(*reader_, first_).status.error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(ServerTest, FullQueueRefusesWithResourceExhausted) {
  ServerOptions options = TinyServerOptions();
  options.model.loop.max_num_seqs = 1;
  options.model.loop.max_queue = 1;
  StartServer(options);
  // Six calls at once: one runs, one waits, the rest find the queue full.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>>> readers;
  for (int i = 0; i < 6; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(stub_->Generate(contexts.back().get(), Greedy("a very long story", 1500)));
  }
  int exhausted = 0;
  int completed = 0;
  for (auto& reader : readers) {
    v1::GenerateResponse response;
    bool finished = false;
    while (reader->Read(&response)) finished = finished || response.has_finished();
    const grpc::Status status = reader->Finish();
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      EXPECT_THAT(status.error_message(), HasSubstr("max_queue"));
      ++exhausted;
    } else {
      EXPECT_TRUE(status.ok()) << status.error_message();
      EXPECT_TRUE(finished);
      ++completed;
    }
  }
  // Which calls win depends on arrival order: at least one runs to the end.
  EXPECT_GE(exhausted, 1);
  EXPECT_GE(completed, 1);
  EXPECT_EQ(exhausted + completed, 6);
  EXPECT_TRUE(WaitForIdle());
}

TEST_F(ServerTest, DrainRefusesNewWorkAndLetsStreamsFinish) {
  StartServer();
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, Greedy("a story to finish", 300));
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));
  bool drained = false;
  std::thread drain([&] { drained = server_->Drain(std::chrono::seconds(30)); });
  // Health goes NOT_SERVING and new work is refused while the stream runs.
  const auto until = Clock::now() + std::chrono::seconds(5);
  while (Health() != HealthCheckResponse::NOT_SERVING && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(Health(), HealthCheckResponse::NOT_SERVING);
  const Stream refused = Run(Greedy("new work", 4));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("draining"));
  ExpectRanToLength(ReadRest(*reader, response), 300);
  drain.join();
  EXPECT_TRUE(drained);
}

TEST_F(ServerTest, TokenizeAndDetokenizeRoundTrip) {
  StartServer();
  grpc::ClientContext context;
  v1::TokenizeRequest tokenize;
  tokenize.set_text("Hello world");
  tokenize.set_add_special_tokens(false);
  v1::TokenizeResponse ids;
  ASSERT_TRUE(stub_->Tokenize(&context, tokenize, &ids).ok());
  ASSERT_GT(ids.token_ids_size(), 0);
  grpc::ClientContext context2;
  v1::DetokenizeRequest detokenize;
  detokenize.mutable_token_ids()->CopyFrom(ids.token_ids());
  v1::DetokenizeResponse text;
  ASSERT_TRUE(stub_->Detokenize(&context2, detokenize, &text).ok());
  EXPECT_EQ(text.text(), "Hello world");

  grpc::ClientContext context3;
  detokenize.add_token_ids(100000);
  const grpc::Status bad = stub_->Detokenize(&context3, detokenize, &text);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), HasSubstr("token_ids["));
}

TEST_F(ServerTest, ConnectionsPastTheirMaxAgeAreClosedGracefullyAndClientsReconnect) {
  ServerOptions options = TinyServerOptions();
  options.max_connection_age = std::chrono::milliseconds(200);
  ASSERT_NO_FATAL_FAILURE(StartServer(options));
  ExpectRanToLength(Run(Greedy("before", 4)), 4);
  ASSERT_EQ(channel_->GetState(false), GRPC_CHANNEL_READY);
  // The server's GOAWAY moves the channel out of READY: its next call opens a
  // new connection, re-resolving the target (how DNS clients find new replicas).
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (channel_->GetState(false) == GRPC_CHANNEL_READY && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(channel_->GetState(false), GRPC_CHANNEL_READY);
  ExpectRanToLength(Run(Greedy("after", 4)), 4);
}

}  // namespace
}  // namespace muserve::server::testing
