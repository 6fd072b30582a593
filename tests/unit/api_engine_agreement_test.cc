// A request that converts is one the engine loop accepts: around every
// boundary of the model's context and of the KV pool, ConvertGenerateRequest
// refuses whatever EngineLoop::Submit would, and the default max_tokens ("as
// many as fit") is generated in full without the engine running out of room.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/model/make_model.h"
#include "engine/model/weights.h"
#include "gtest/gtest.h"
#include "scheduler/engine_loop.h"
#include "server/api/request_conversion.h"
#include "tests/testing/fixtures.h"

namespace muserve::server {
namespace {

// The tiny demo model (context 2048, vocabulary 512) served on the CPU with
// a KV pool of `num_blocks` blocks of 16 tokens.
class TinyServed {
 public:
  explicit TinyServed(int32_t num_blocks) {
    const absl::Status made = MakeModel({.out_dir = dir_.path(), .preset = ModelPreset::kTiny});
    Require(made.ok(), made.ToString());
    auto tokenizer = Tokenizer::FromFile(dir_.path() / "tokenizer.json");
    Require(tokenizer.ok(), tokenizer.status().ToString());
    tokenizer_ = *std::move(tokenizer);
    auto loaded = LoadModel(dir_.path());
    Require(loaded.ok(), loaded.status().ToString());
    std::vector<TokenId> eos;
    for (int64_t id : loaded->config.eos_token_ids) eos.push_back(static_cast<TokenId>(id));
    auto backend = CpuBackend::Create(
        *std::move(loaded), {.num_threads = 2, .block_size = 16, .num_blocks = num_blocks});
    Require(backend.ok(), backend.status().ToString());
    backend_ = *std::move(backend);
    auto loop = EngineLoop::Create(*backend_, *tokenizer_, eos, {});
    Require(loop.ok(), loop.status().ToString());
    loop_ = *std::move(loop);
    loop_->Start();
  }

  // What the server derives from the backend at start-up.
  ModelLimits Limits() const {
    ModelLimits limits;
    limits.vocab_size = static_cast<int32_t>(backend_->config().vocab_size);
    limits.context_len = backend_->config().max_position_embeddings;
    limits.kv_block_size = backend_->kv_cache().block_size;
    limits.kv_capacity_tokens =
        static_cast<int64_t>(backend_->kv_cache().num_blocks) * limits.kv_block_size;
    return limits;
  }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  EngineLoop& loop() { return *loop_; }

 private:
  static void Require(bool ok, const std::string& what) {
    if (!ok) {
      std::fprintf(stderr, "tiny model setup failed: %s\n", what.c_str());
      std::abort();
    }
  }
  muserve::testing::TempDir dir_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<CpuBackend> backend_;
  std::unique_ptr<EngineLoop> loop_;
};

v1::GenerateRequest TokenPrompt(int64_t prompt_len, std::optional<int64_t> max_tokens) {
  v1::GenerateRequest request;
  for (int64_t i = 0; i < prompt_len; ++i) request.mutable_token_ids()->add_ids(3 + i % 400);
  v1::GenerationOptions& options = *request.mutable_options();
  if (max_tokens.has_value()) {
    options.mutable_stopping()->set_max_tokens(static_cast<int32_t>(*max_tokens));
  }
  options.mutable_stopping()->set_ignore_eos(true);
  options.mutable_sampling()->set_temperature(0);
  return request;
}

// Every request that converts around the limits' edges is accepted by
// Submit; returns how many converted.
int ExpectConvertedAreAccepted(TinyServed& served) {
  const ModelLimits limits = served.Limits();
  const int64_t context = limits.context_len;
  const int64_t kv = limits.kv_capacity_tokens;
  int converted_count = 0;
  for (int64_t prompt_len : {int64_t{1}, kv - 1, kv, kv + 1, context - 1, context}) {
    if (prompt_len < 1) continue;
    for (std::optional<int64_t> max_tokens : {std::optional<int64_t>(), std::optional<int64_t>(1),
                                              std::optional<int64_t>(context - prompt_len),
                                              std::optional<int64_t>(context - prompt_len + 1),
                                              std::optional<int64_t>(kv - prompt_len + 1),
                                              std::optional<int64_t>(kv - prompt_len + 2)}) {
      if (max_tokens.has_value() && (*max_tokens < 1 || *max_tokens > INT32_MAX)) continue;
      const v1::GenerateRequest request = TokenPrompt(prompt_len, max_tokens);
      auto converted = ConvertGenerateRequest(request, served.tokenizer(), limits);
      if (!converted.ok()) continue;
      ++converted_count;
      auto handle = served.loop().Submit(converted->engine);
      EXPECT_TRUE(handle.ok()) << "prompt " << prompt_len << ", max_tokens "
                               << (max_tokens ? std::to_string(*max_tokens) : "unset")
                               << " converted but the engine refused: " << handle.status();
      if (handle.ok()) served.loop().Abort((*handle)->id());
    }
  }
  return converted_count;
}

// Runs a request to its end; returns (completion tokens, reason).
Finished RunToEnd(TinyServed& served, const Request& request) {
  auto handle = served.loop().Submit(request);
  EXPECT_TRUE(handle.ok()) << handle.status();
  if (!handle.ok()) return {};
  while (true) {
    RequestHandle::Event event = (*handle)->Next();
    if (auto* finished = std::get_if<Finished>(&event)) return *finished;
  }
}

TEST(ApiEngineAgreementTest, KvBoundPoolAcceptsEveryConvertedRequestAndFillsIt) {
  TinyServed served(/*num_blocks=*/8);  // 128 tokens of KV, context 2048
  ASSERT_EQ(served.Limits().kv_capacity_tokens, 128);
  EXPECT_GE(ExpectConvertedAreAccepted(served), 6);

  auto converted =
      ConvertGenerateRequest(TokenPrompt(100, std::nullopt), served.tokenizer(), served.Limits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(converted->engine.stop.max_tokens, 29);  // 100 + 29 - 1 = 128 tokens of KV
  const Finished finished = RunToEnd(served, converted->engine);
  EXPECT_EQ(finished.reason, FinishReason::kLength);
  EXPECT_EQ(finished.usage.completion_tokens, 29);
}

TEST(ApiEngineAgreementTest, ContextBoundModelAcceptsEveryConvertedRequestAndFillsIt) {
  TinyServed served(/*num_blocks=*/160);  // 2560 tokens of KV, context 2048
  ASSERT_EQ(served.Limits().context_len, 2048);
  EXPECT_GE(ExpectConvertedAreAccepted(served), 6);

  auto converted =
      ConvertGenerateRequest(TokenPrompt(2000, std::nullopt), served.tokenizer(), served.Limits());
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(converted->engine.stop.max_tokens, 48);
  const Finished finished = RunToEnd(served, converted->engine);
  EXPECT_EQ(finished.reason, FinishReason::kLength);
  EXPECT_EQ(finished.usage.completion_tokens, 48);
}

}  // namespace
}  // namespace muserve::server
