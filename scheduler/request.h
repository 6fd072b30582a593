// What a caller submits to the engine loop and what it gets back: plain data,
// no gRPC types (the server converts).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "engine/sampling/sampler.h"
#include "engine/tokenizer/tokenizer.h"

namespace muserve {

// The engine loop's id of a request; unique for the loop's lifetime.
enum class RequestId : uint64_t {};

struct StopParams {
  int32_t max_tokens = 256;             // >= 1; also capped by the model's context
  int32_t min_tokens = 0;               // [0, max_tokens]: no stop (EOS, ids, strings) fires before
  std::vector<TokenId> stop_token_ids;  // extra ids that end generation (not emitted)
  std::vector<std::string> stop_strings;  // non-empty; the output ends before the match
  bool ignore_eos = false;                // the model's EOS ids do not stop generation

  // InvalidArgument naming the field.
  absl::Status Validate() const;
};

// How a request uses the prefix cache (when the server has it on).
struct PrefixCacheParams {
  // False: the request neither reuses cached blocks nor leaves its own behind.
  bool enabled = true;
  // Requests share cached blocks only with requests of the same salt (one
  // per tenant, say). At most kMaxCacheSaltBytes bytes.
  std::string salt;

  static constexpr size_t kMaxCacheSaltBytes = 256;
};

struct Request {
  std::vector<TokenId> prompt_tokens;  // non-empty, each in [0, vocab)
  SamplingParams sampling;
  StopParams stop;
  int32_t priority = 0;  // lower value is served first; FIFO within a priority
  bool skip_special_tokens = true;
  PrefixCacheParams prefix_cache;
  // When set, the request ends with kDeadline at the first step boundary at
  // or after this time (for a gRPC call's deadline).
  std::optional<std::chrono::steady_clock::time_point> deadline;
};

enum class FinishReason {
  kEos,         // one of the model's end-of-sequence ids
  kStopToken,   // one of StopParams::stop_token_ids
  kStopString,  // one of StopParams::stop_strings
  kLength,      // max_tokens, or the model's context is full
  kAborted,     // Abort() or EngineLoop::Stop()
  kDeadline,    // Request::deadline passed
};

const char* FinishReasonName(FinishReason reason);

struct TokenLogprob {
  TokenId token = 0;
  float logprob = 0;
  std::vector<std::pair<TokenId, float>> top;  // SamplingParams::top_logprobs alternatives
};

// New output since the previous delta. `text` is valid UTF-8 and never
// contains text that a stop string could still claim.
struct Delta {
  std::string text;
  std::vector<TokenId> token_ids;
  std::vector<TokenLogprob> logprobs;  // one per token id when SamplingParams::wants_logprobs()
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  // Prompt tokens whose KV was reused rather than computed (prefix caching).
  int32_t cached_prompt_tokens = 0;
};

struct Timings {
  std::chrono::steady_clock::time_point arrived;
  std::optional<std::chrono::steady_clock::time_point> first_scheduled;
  std::optional<std::chrono::steady_clock::time_point> first_token;
  std::chrono::steady_clock::time_point finished;
};

struct Finished {
  FinishReason reason = FinishReason::kLength;
  std::optional<TokenId> matched_stop_token;       // kEos or kStopToken
  std::optional<std::string> matched_stop_string;  // kStopString
  Usage usage;
  Timings timings;
  int32_t num_preemptions = 0;
};

}  // namespace muserve
