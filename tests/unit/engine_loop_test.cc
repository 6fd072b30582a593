// EngineLoop over the CPU backend and the tiny demo model: batch invariance
// (every request gets the tokens it gets alone, also under heavy preemption),
// bad requests refused with a status naming the field while others are
// served, queue bound, abort, usage and timings.
#include "scheduler/engine_loop.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/make_model.h"
#include "engine/model/weights.h"
#include "engine/sampling/sampler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fixtures.h"

namespace muserve {
namespace {

using ::testing::HasSubstr;

// One tiny model directory for the whole test program.
class TinyModel {
 public:
  static const TinyModel& Get() {
    static const TinyModel* model = new TinyModel();
    return *model;
  }
  const std::filesystem::path& dir() const { return dir_.path(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  TinyModel() {
    const absl::Status made = MakeModel({.out_dir = dir_.path(), .preset = ModelPreset::kTiny});
    Require(made.ok(), made.ToString());
    auto tokenizer = Tokenizer::FromFile(dir_.path() / "tokenizer.json");
    Require(tokenizer.ok(), tokenizer.status().ToString());
    tokenizer_ = std::move(*tokenizer);
  }
  static void Require(bool ok, const std::string& what) {
    if (!ok) {
      std::fprintf(stderr, "tiny model setup failed: %s\n", what.c_str());
      std::abort();
    }
  }
  testing::TempDir dir_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

// A backend and a started loop over the tiny model.
struct Served {
  std::unique_ptr<CpuBackend> backend;
  std::unique_ptr<EngineLoop> loop;
};

Served Serve(int32_t num_blocks, const EngineLoopOptions& options) {
  const TinyModel& model = TinyModel::Get();
  Served served;
  auto loaded = LoadModel(model.dir());
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  if (!loaded.ok()) return served;
  std::vector<TokenId> eos;
  for (int64_t id : loaded->config.eos_token_ids) eos.push_back(static_cast<TokenId>(id));
  auto backend = CpuBackend::Create(std::move(*loaded),
                                    {.num_threads = 2,
                                     .block_size = 16,
                                     .num_blocks = num_blocks,
                                     .max_num_batched_tokens = options.max_num_batched_tokens});
  EXPECT_TRUE(backend.ok()) << backend.status();
  if (!backend.ok()) return served;
  served.backend = std::move(*backend);
  auto loop = EngineLoop::Create(*served.backend, model.tokenizer(), eos, options);
  EXPECT_TRUE(loop.ok()) << loop.status();
  if (!loop.ok()) return served;
  served.loop = std::move(*loop);
  served.loop->Start();
  return served;
}

struct Outcome {
  std::vector<TokenId> tokens;
  std::string text;
  Finished finished;
};

Outcome Collect(RequestHandle& handle) {
  Outcome outcome;
  while (true) {
    RequestHandle::Event event = handle.Next();
    if (auto* delta = std::get_if<Delta>(&event)) {
      outcome.tokens.insert(outcome.tokens.end(), delta->token_ids.begin(), delta->token_ids.end());
      outcome.text += delta->text;
    } else {
      outcome.finished = std::get<Finished>(event);
      return outcome;
    }
  }
}

Request SimpleRequest(std::vector<TokenId> prompt, int32_t max_tokens) {
  Request request;
  request.prompt_tokens = std::move(prompt);
  request.sampling.temperature = 0;
  request.stop.max_tokens = max_tokens;
  request.stop.ignore_eos = true;
  return request;
}

// 64 requests, prompts of 1 to 2,000 tokens (mostly short: log-uniform),
// greedy and seeded sampling.
std::vector<Request> InvarianceRequests() {
  std::mt19937 rng(7);
  std::vector<Request> requests;
  for (int i = 0; i < 64; ++i) {
    int32_t len = static_cast<int32_t>(
        std::exp(std::uniform_real_distribution<double>(0, std::log(2000.0))(rng)));
    if (i == 5) len = 2000;
    if (i == 9) len = 1;
    std::vector<TokenId> prompt(std::max(len, 1));
    for (auto& t : prompt) t = std::uniform_int_distribution<TokenId>(3, 500)(rng);
    Request request = SimpleRequest(std::move(prompt), 8 + (i * 7) % 33);
    request.stop.ignore_eos = i % 4 != 0;
    if (i % 2 == 1) {
      request.sampling.temperature = 0.8f;
      request.sampling.top_k = 40;
      request.sampling.seed = 1000 + i;
    }
    request.priority = i % 3 == 0 ? 1 : 0;
    requests.push_back(std::move(request));
  }
  return requests;
}

std::vector<Outcome> RunTogether(EngineLoop& loop, const std::vector<Request>& requests) {
  std::mt19937 rng(99);
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (const Request& request : requests) {
    // Staggered arrivals: some land mid-step, some together.
    if (rng() % 3 == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    }
    auto handle = loop.Submit(request);
    EXPECT_TRUE(handle.ok()) << handle.status();
    if (!handle.ok()) return {};
    handles.push_back(*handle);
  }
  std::vector<Outcome> outcomes;
  for (auto& handle : handles) outcomes.push_back(Collect(*handle));
  return outcomes;
}

TEST(EngineLoopTest, EveryRequestGetsItsAloneTokensInsideAnyBatch) {
  const std::vector<Request> requests = InvarianceRequests();
  std::vector<Outcome> alone;
  {
    Served served = Serve(512, {.max_num_seqs = 8, .max_num_batched_tokens = 512});
    ASSERT_NE(served.loop, nullptr);
    for (const Request& request : requests) {
      auto handle = served.loop->Submit(request);
      ASSERT_TRUE(handle.ok()) << handle.status();
      alone.push_back(Collect(**handle));
    }
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_GE(alone[i].finished.usage.completion_tokens, 1) << i;
    EXPECT_EQ(alone[i].finished.usage.prompt_tokens,
              static_cast<int32_t>(requests[i].prompt_tokens.size()));
  }
  struct Config {
    const char* name;
    int32_t num_blocks;
    EngineLoopOptions options;
    bool expect_preemption;
  };
  const Config configs[] = {
      {"roomy", 2048, {.max_num_seqs = 32, .max_num_batched_tokens = 512}, false},
      // 130 blocks of 16 hold the 2,000-token prompt and little else.
      {"tight", 130, {.max_num_seqs = 64, .max_num_batched_tokens = 256}, true},
  };
  for (const Config& config : configs) {
    SCOPED_TRACE(config.name);
    Served served = Serve(config.num_blocks, config.options);
    ASSERT_NE(served.loop, nullptr);
    const std::vector<Outcome> together = RunTogether(*served.loop, requests);
    ASSERT_EQ(together.size(), requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_EQ(together[i].tokens, alone[i].tokens) << "request " << i;
      EXPECT_EQ(together[i].text, alone[i].text) << "request " << i;
      EXPECT_EQ(together[i].finished.reason, alone[i].finished.reason) << "request " << i;
    }
    const LoadSnapshot load = served.loop->GetLoad();
    RecordProperty(std::string(config.name) + "_preemptions", std::to_string(load.num_preemptions));
    if (config.expect_preemption) {
      EXPECT_GT(load.num_preemptions, 10);
    }
    EXPECT_EQ(load.kv_blocks_free, config.num_blocks);
    EXPECT_EQ(load.running + load.waiting, 0);
  }
}

TEST(EngineLoopTest, BadRequestsNameTheFieldAndOthersAreServed) {
  Served served = Serve(64, {.max_num_seqs = 8, .max_num_batched_tokens = 256});
  ASSERT_NE(served.loop, nullptr);
  EngineLoop& loop = *served.loop;
  auto good = loop.Submit(SimpleRequest({10, 11, 12}, 40));
  ASSERT_TRUE(good.ok());

  struct Case {
    const char* name;
    void (*mutate)(Request&);
    absl::StatusCode code;
    const char* field;
  };
  const Case cases[] = {
      {"empty prompt", [](Request& r) { r.prompt_tokens.clear(); },
       absl::StatusCode::kInvalidArgument, "prompt_tokens"},
      {"token past vocab", [](Request& r) { r.prompt_tokens[1] = 512; },
       absl::StatusCode::kInvalidArgument, "prompt_tokens[1]"},
      {"negative token", [](Request& r) { r.prompt_tokens[0] = -1; },
       absl::StatusCode::kInvalidArgument, "prompt_tokens[0]"},
      {"prompt fills the context", [](Request& r) { r.prompt_tokens.assign(2048, 7); },
       absl::StatusCode::kInvalidArgument, "prompt_tokens"},
      {"larger than the pool",  // 64 blocks of 16 = 1,024 tokens
       [](Request& r) {
         r.prompt_tokens.assign(1000, 7);
         r.stop.max_tokens = 100;
       },
       absl::StatusCode::kInvalidArgument, "KV blocks"},
      {"temperature", [](Request& r) { r.sampling.temperature = -1; },
       absl::StatusCode::kInvalidArgument, "temperature"},
      {"top_p", [](Request& r) { r.sampling.top_p = 0; }, absl::StatusCode::kInvalidArgument,
       "top_p"},
      {"top_k", [](Request& r) { r.sampling.top_k = -3; }, absl::StatusCode::kInvalidArgument,
       "top_k"},
      {"max_tokens", [](Request& r) { r.stop.max_tokens = 0; }, absl::StatusCode::kInvalidArgument,
       "max_tokens"},
      {"min_tokens", [](Request& r) { r.stop.min_tokens = 100; },
       absl::StatusCode::kInvalidArgument, "min_tokens"},
      {"stop_token_ids outside the vocabulary",
       [](Request& r) {
         r.stop.stop_token_ids = {3, 1 << 20};
       },
       absl::StatusCode::kInvalidArgument, "stop_token_ids[1]"},
      {"too many stop_token_ids", [](Request& r) { r.stop.stop_token_ids.assign(100000, 3); },
       absl::StatusCode::kInvalidArgument, "stop_token_ids"},
      {"empty stop string",
       [](Request& r) {
         r.stop.stop_strings = {"ok", ""};
       },
       absl::StatusCode::kInvalidArgument, "stop_strings"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Request request = SimpleRequest({1, 2, 3}, 8);
    c.mutate(request);
    auto handle = loop.Submit(std::move(request));
    ASSERT_FALSE(handle.ok());
    EXPECT_EQ(handle.status().code(), c.code);
    EXPECT_THAT(std::string(handle.status().message()), HasSubstr(c.field));
  }
  // A request exactly as large as the pool allows is accepted.
  Request largest = SimpleRequest(std::vector<TokenId>(1000, 7), 25);  // 1,024 K/V tokens
  auto fits = loop.Submit(std::move(largest));
  ASSERT_TRUE(fits.ok()) << fits.status();

  const Outcome first = Collect(**good);
  EXPECT_EQ(first.finished.reason, FinishReason::kLength);
  EXPECT_EQ(first.tokens.size(), 40u);
  EXPECT_EQ(Collect(**fits).finished.usage.completion_tokens, 25);
  auto after = loop.Submit(SimpleRequest({10, 11, 12}, 40));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(Collect(**after).tokens, first.tokens);
  EXPECT_EQ(loop.GetLoad().kv_blocks_free, 64);
}

TEST(EngineLoopTest, FinishedCarriesUsageAndOrderedTimings) {
  Served served = Serve(64, {});
  ASSERT_NE(served.loop, nullptr);
  auto handle = served.loop->Submit(SimpleRequest({4, 5, 6, 7, 8}, 6));
  ASSERT_TRUE(handle.ok());
  const Outcome outcome = Collect(**handle);
  const Finished& f = outcome.finished;
  EXPECT_EQ(f.reason, FinishReason::kLength);
  EXPECT_EQ(f.usage.prompt_tokens, 5);
  EXPECT_EQ(f.usage.completion_tokens, 6);
  EXPECT_EQ(outcome.tokens.size(), 6u);
  ASSERT_TRUE(f.timings.first_scheduled.has_value());
  ASSERT_TRUE(f.timings.first_token.has_value());
  EXPECT_LE(f.timings.arrived, *f.timings.first_scheduled);
  EXPECT_LE(*f.timings.first_scheduled, *f.timings.first_token);
  EXPECT_LE(*f.timings.first_token, f.timings.finished);
  // Finished is returned again after the end.
  EXPECT_TRUE(std::holds_alternative<Finished>((*handle)->Next()));
}

TEST(EngineLoopTest, AbortEndsTheRequestAndFreesItsBlocks) {
  Served served = Serve(64, {.max_num_seqs = 4, .max_num_batched_tokens = 64});
  ASSERT_NE(served.loop, nullptr);
  EngineLoop& loop = *served.loop;
  auto endless = loop.Submit(SimpleRequest(std::vector<TokenId>(100, 9), 900));
  ASSERT_TRUE(endless.ok());
  // Wait for its first token, then abort.
  auto first = (*endless)->NextFor(std::chrono::seconds(30));
  ASSERT_TRUE(first.has_value());
  loop.Abort((*endless)->id());
  loop.Abort(RequestId{999999});  // unknown: ignored
  const Outcome rest = Collect(**endless);
  EXPECT_EQ(rest.finished.reason, FinishReason::kAborted);
  EXPECT_LT(rest.finished.usage.completion_tokens, 900);
  auto other = loop.Submit(SimpleRequest({1, 2}, 3));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(Collect(**other).tokens.size(), 3u);
  EXPECT_EQ(loop.GetLoad().kv_blocks_free, 64);
}

TEST(EngineLoopTest, FullQueueIsResourceExhaustedAndNeverBlocks) {
  // One sequence at a time and a queue of 2: a burst overflows.
  Served served = Serve(64, {.max_num_seqs = 1, .max_num_batched_tokens = 64, .max_queue = 2});
  ASSERT_NE(served.loop, nullptr);
  std::vector<std::shared_ptr<RequestHandle>> accepted;
  int refused = 0;
  for (int i = 0; i < 20; ++i) {
    // Long enough that none finishes during the burst.
    auto handle = served.loop->Submit(SimpleRequest({1, 2, 3}, 1000));
    if (handle.ok()) {
      accepted.push_back(*handle);
    } else {
      EXPECT_EQ(handle.status().code(), absl::StatusCode::kResourceExhausted);
      EXPECT_THAT(std::string(handle.status().message()), HasSubstr("max_queue"));
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_LE(accepted.size(), 3u);  // 2 queued and at most 1 admitted
  for (auto& handle : accepted) served.loop->Abort(handle->id());
  for (auto& handle : accepted) {
    EXPECT_EQ(Collect(*handle).finished.reason, FinishReason::kAborted);
  }
  EXPECT_EQ(served.loop->GetLoad().kv_blocks_free, 64);
}

TEST(EngineLoopTest, StopAbortsEverythingAndRefusesNewRequests) {
  Served served = Serve(64, {.max_num_seqs = 2});
  ASSERT_NE(served.loop, nullptr);
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < 4; ++i) {
    auto handle = served.loop->Submit(SimpleRequest({1, 2, 3}, 1000));
    ASSERT_TRUE(handle.ok());
    handles.push_back(*handle);
  }
  served.loop->Stop();
  for (auto& handle : handles) {
    EXPECT_EQ(Collect(*handle).finished.reason, FinishReason::kAborted);
  }
  auto late = served.loop->Submit(SimpleRequest({1}, 1));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnavailable);
}

TEST(EngineLoopTest, DeadlineEndsTheRequestAndFreesItsBlocks) {
  Served served = Serve(64, {.max_num_seqs = 4});
  ASSERT_NE(served.loop, nullptr);
  Request late = SimpleRequest({1, 2, 3}, 1000);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  late.deadline = deadline;
  auto expiring = served.loop->Submit(std::move(late));
  auto unbounded = served.loop->Submit(SimpleRequest({4, 5, 6}, 20));
  ASSERT_TRUE(expiring.ok());
  ASSERT_TRUE(unbounded.ok());
  const Outcome expired = Collect(**expiring);
  EXPECT_EQ(expired.finished.reason, FinishReason::kDeadline);
  EXPECT_LT(expired.finished.usage.completion_tokens, 1000);
  EXPECT_GE(expired.finished.timings.finished, deadline);
  // The other request is unaffected.
  EXPECT_EQ(Collect(**unbounded).finished.usage.completion_tokens, 20);
  EXPECT_EQ(served.loop->GetLoad().kv_blocks_free, 64);

  Request past = SimpleRequest({1, 2, 3}, 10);
  past.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  auto dead = served.loop->Submit(std::move(past));
  ASSERT_TRUE(dead.ok());
  const Outcome never = Collect(**dead);
  EXPECT_EQ(never.finished.reason, FinishReason::kDeadline);
  EXPECT_EQ(never.finished.usage.completion_tokens, 0);
}

// An asynchronous reader (the gRPC server) polls with TryNext when its
// listener fires: every event arrives, in order, as a blocking reader gets it.
TEST(EngineLoopTest, ListenerAnnouncesEveryEventToAPollingReader) {
  Served served = Serve(64, {.max_num_seqs = 4});
  ASSERT_NE(served.loop, nullptr);
  auto blocking = served.loop->Submit(SimpleRequest({7, 8, 9}, 24));
  ASSERT_TRUE(blocking.ok());
  const Outcome expected = Collect(**blocking);

  auto handle = served.loop->Submit(SimpleRequest({7, 8, 9}, 24));
  ASSERT_TRUE(handle.ok());
  std::mutex mutex;
  std::condition_variable done_cv;
  Outcome polled;
  bool done = false;
  std::atomic<int> calls{0};
  RequestHandle* raw = handle->get();
  raw->SetListener([&] {
    ++calls;
    std::lock_guard lock(mutex);
    while (!done) {
      std::optional<RequestHandle::Event> event = raw->TryNext();
      if (!event) break;
      if (auto* delta = std::get_if<Delta>(&*event)) {
        polled.tokens.insert(polled.tokens.end(), delta->token_ids.begin(), delta->token_ids.end());
        polled.text += delta->text;
      } else {
        polled.finished = std::get<Finished>(*event);
        done = true;
        done_cv.notify_all();
      }
    }
  });
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(done_cv.wait_for(lock, std::chrono::seconds(30), [&] { return done; }));
  }
  raw->SetListener({});
  EXPECT_EQ(polled.tokens, expected.tokens);
  EXPECT_EQ(polled.text, expected.text);
  EXPECT_EQ(polled.finished.usage.completion_tokens, 24);
  EXPECT_GT(calls.load(), 0);
}

TEST(EngineLoopTest, OptionsAreValidated) {
  EngineLoopOptions options;
  options.max_num_seqs = 0;
  EXPECT_THAT(std::string(options.Validate().message()), HasSubstr("max_num_seqs"));
  options = {};
  options.max_num_batched_tokens = 0;
  EXPECT_THAT(std::string(options.Validate().message()), HasSubstr("max_num_batched_tokens"));
  options = {};
  options.max_queue = 0;
  EXPECT_THAT(std::string(options.Validate().message()), HasSubstr("max_queue"));
}

TEST(EngineLoopTest, StepsLargerThanTheBackendAcceptsAreRefusedAtCreate) {
  auto loaded = LoadModel(TinyModel::Get().dir());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto backend = CpuBackend::Create(
      std::move(*loaded),
      {.num_threads = 1, .block_size = 16, .num_blocks = 8, .max_num_batched_tokens = 64});
  ASSERT_TRUE(backend.ok()) << backend.status();
  EngineLoopOptions options;
  options.max_num_batched_tokens = 65;
  auto loop = EngineLoop::Create(**backend, TinyModel::Get().tokenizer(), {}, options);
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(loop.status().message()), HasSubstr("max_num_batched_tokens"));
  options.max_num_batched_tokens = 64;
  EXPECT_TRUE(EngineLoop::Create(**backend, TinyModel::Get().tokenizer(), {}, options).ok());
}

TEST(EngineLoopTest, ConcurrentStopsJoinOnceAndLaterCallsAreHarmless) {
  Served served = Serve(64, EngineLoopOptions{});
  ASSERT_NE(served.loop, nullptr);
  auto handle = served.loop->Submit(SimpleRequest({1, 2, 3}, 200));
  ASSERT_TRUE(handle.ok()) << handle.status();
  std::thread a([&] { served.loop->Stop(); });
  std::thread b([&] { served.loop->Stop(); });
  a.join();
  b.join();
  // Either it finished or Stop aborted it; either way exactly one Finished.
  const Outcome outcome = Collect(**handle);
  EXPECT_TRUE(outcome.finished.reason == FinishReason::kAborted ||
              outcome.finished.reason == FinishReason::kLength);
  served.loop->Abort((*handle)->id());  // after Stop: ignored
  auto late = served.loop->Submit(SimpleRequest({1}, 1));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace muserve

namespace muserve {
namespace {

// Under min_tokens a stop token must not be sampled at all (not merely not
// obey it): with the first greedy token declared a stop id and min_tokens 4,
// the first four tokens avoid it, and a later occurrence stops generation.
TEST(EngineLoopTest, StopTokensAreNeverSampledUnderMinTokens) {
  Served served = Serve(256, EngineLoopOptions{});
  ASSERT_NE(served.loop, nullptr);
  const std::vector<TokenId> prompt = {5, 6, 7, 8};
  auto free_handle = served.loop->Submit(SimpleRequest(prompt, 8));
  ASSERT_TRUE(free_handle.ok()) << free_handle.status();
  const Outcome free_run = Collect(**free_handle);
  ASSERT_FALSE(free_run.tokens.empty());
  const TokenId first = free_run.tokens[0];

  Request request = SimpleRequest(prompt, 8);
  request.stop.stop_token_ids = {first};
  request.stop.min_tokens = 4;
  auto handle = served.loop->Submit(std::move(request));
  ASSERT_TRUE(handle.ok()) << handle.status();
  const Outcome outcome = Collect(**handle);
  ASSERT_GE(outcome.tokens.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_NE(outcome.tokens[i], first) << "token " << i;
  if (outcome.finished.reason == FinishReason::kStopToken) {
    EXPECT_EQ(outcome.finished.matched_stop_token, first);
  } else {
    EXPECT_EQ(outcome.finished.reason, FinishReason::kLength);
    EXPECT_EQ(outcome.tokens.size(), 8u);
  }
}

// A backend that samples "on its device" as CudaBackend does: the loop must
// call ForwardSample, never Forward, and hand it the inputs (pre-drawn
// uniforms, histories, min_tokens bans) that give the host path's tokens.
class DeviceSamplingBackend final : public Backend {
 public:
  explicit DeviceSamplingBackend(Backend& inner) : inner_(inner) {}
  const ModelConfig& config() const override { return inner_.config(); }
  KvCacheGeometry kv_cache() const override { return inner_.kv_cache(); }
  int32_t max_num_batched_tokens() const override { return inner_.max_num_batched_tokens(); }
  absl::Status Forward(const StepBatch&, std::span<float>) override {
    ++forward_calls;
    return absl::InternalError("the loop must call ForwardSample");
  }
  bool samples_on_device() const override { return true; }
  absl::Status ForwardSample(const StepBatch& batch, std::span<const SampleInput> inputs,
                             std::span<SampledToken> out) override {
    ++forward_sample_calls;
    const int32_t rows = batch.num_sampled();
    if (inputs.size() != static_cast<size_t>(rows) || out.size() != inputs.size())
      return absl::InvalidArgumentError("inputs and out must have num_sampled() elements");
    const size_t vocab = static_cast<size_t>(config().vocab_size);
    logits_.resize(static_cast<size_t>(rows) * vocab);
    if (absl::Status s = inner_.Forward(batch, logits_); !s.ok()) return s;
    for (int32_t r = 0; r < rows; ++r)
      out[r] = sampler_.Sample(std::span<float>(logits_.data() + r * vocab, vocab), inputs[r]);
    return absl::OkStatus();
  }
  int forward_calls = 0;
  int forward_sample_calls = 0;

 private:
  Backend& inner_;
  Sampler sampler_;
  std::vector<float> logits_;
};

TEST(EngineLoopTest, DeviceSamplingBackendGetsTheHostPathsTokens) {
  std::vector<Request> requests = InvarianceRequests();
  requests.resize(24);
  for (size_t i = 0; i < requests.size(); ++i) {
    if (i % 3 == 0) {
      requests[i].sampling.repetition_penalty = 1.2f;
      requests[i].sampling.frequency_penalty = 0.5f;
    }
    if (i % 5 == 0) requests[i].sampling.top_logprobs = 3;
    if (i % 4 == 1) {
      requests[i].stop.min_tokens = 3;
      requests[i].stop.ignore_eos = false;
    }
  }
  std::vector<Outcome> host;
  {
    Served served = Serve(512, {.max_num_seqs = 8, .max_num_batched_tokens = 512});
    ASSERT_NE(served.loop, nullptr);
    host = RunTogether(*served.loop, requests);
  }
  Served served = Serve(512, {.max_num_seqs = 8, .max_num_batched_tokens = 512});
  ASSERT_NE(served.loop, nullptr);
  served.loop.reset();  // only its backend is reused
  DeviceSamplingBackend device(*served.backend);
  std::vector<TokenId> eos;
  for (int64_t id : device.config().eos_token_ids) eos.push_back(static_cast<TokenId>(id));
  auto loop = EngineLoop::Create(device, TinyModel::Get().tokenizer(), eos,
                                 {.max_num_seqs = 8, .max_num_batched_tokens = 512});
  ASSERT_TRUE(loop.ok()) << loop.status();
  (*loop)->Start();
  const std::vector<Outcome> on_device = RunTogether(**loop, requests);
  ASSERT_EQ(on_device.size(), host.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(on_device[i].tokens, host[i].tokens) << "request " << i;
    EXPECT_EQ(on_device[i].text, host[i].text) << "request " << i;
    EXPECT_EQ(on_device[i].finished.reason, host[i].finished.reason) << "request " << i;
  }
  EXPECT_EQ(device.forward_calls, 0);
  EXPECT_GT(device.forward_sample_calls, 0);
}

}  // namespace
}  // namespace muserve
