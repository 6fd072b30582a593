#include "server/api/generation_options.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/api/absl_string_view.h"
#include "engine/api/check.h"

namespace muserve::server {
namespace {

// The engine's validators name their own fields ("top_p must be in ...");
// the client knows them by their path in the request.
absl::Status UnderPath(const absl::Status& status, std::string_view path) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(AsAbsl(path), status.message()));
}

absl::StatusOr<SamplingParams> ConvertSampling(const v1::SamplingOptions& sampling,
                                               const v1::LogprobsOptions& logprobs) {
  SamplingParams params;  // its defaults are the .proto's
  if (sampling.has_temperature()) params.temperature = sampling.temperature();
  if (sampling.has_top_k()) params.top_k = sampling.top_k();
  if (sampling.has_top_p()) params.top_p = sampling.top_p();
  if (sampling.has_min_p()) params.min_p = sampling.min_p();
  if (sampling.has_repetition_penalty()) params.repetition_penalty = sampling.repetition_penalty();
  if (sampling.has_presence_penalty()) params.presence_penalty = sampling.presence_penalty();
  if (sampling.has_frequency_penalty()) params.frequency_penalty = sampling.frequency_penalty();
  if (sampling.has_seed()) params.seed = sampling.seed();
  params.logprobs = logprobs.has_enabled() && logprobs.enabled();
  if (logprobs.has_top_logprobs()) {
    const int32_t top = logprobs.top_logprobs();
    if (top < 0 || top > kMaxTopLogprobs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "options.logprobs.top_logprobs must be in [0, ", kMaxTopLogprobs, "], got ", top));
    }
    params.top_logprobs = top;
  }
  // top_logprobs is already in range, so anything refused here is under sampling.
  if (absl::Status status = UnderPath(params.Validate(), "options.sampling."); !status.ok()) {
    return status;
  }
  return params;
}

absl::StatusOr<StopParams> ConvertStopping(const v1::StoppingOptions& stopping, int32_t vocab_size,
                                           bool& max_tokens_given) {
  StopParams stop;
  max_tokens_given = stopping.has_max_tokens();
  if (max_tokens_given && stopping.max_tokens() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.stopping.max_tokens must be >= 1, got ", stopping.max_tokens()));
  }
  // Unset: every value of min_tokens >= 0 passes StopParams::Validate until
  // FitOutputToModel knows the real limit.
  stop.max_tokens = max_tokens_given ? stopping.max_tokens() : std::numeric_limits<int32_t>::max();
  if (stopping.has_min_tokens()) {
    if (stopping.min_tokens() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "options.stopping.min_tokens must be in [0, max_tokens], got ", stopping.min_tokens()));
    }
    stop.min_tokens = stopping.min_tokens();
  }
  stop.stop_strings.assign(stopping.stop_strings().begin(), stopping.stop_strings().end());
  stop.stop_token_ids.assign(stopping.stop_token_ids().begin(), stopping.stop_token_ids().end());
  stop.ignore_eos = stopping.has_ignore_eos() && stopping.ignore_eos();
  if (absl::Status status = UnderPath(stop.Validate(), "options.stopping."); !status.ok()) {
    return status;
  }
  // Validate has checked ids >= 0; the vocabulary is the model's.
  for (size_t i = 0; i < stop.stop_token_ids.size(); ++i) {
    if (stop.stop_token_ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("options.stopping.stop_token_ids[", i, "] = ", stop.stop_token_ids[i],
                       " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  return stop;
}

}  // namespace

absl::StatusOr<ConvertedOptions> ConvertGenerationOptions(const v1::GenerationOptions& options,
                                                          int32_t vocab_size) {
  ConvertedOptions out;
  absl::StatusOr<SamplingParams> sampling = ConvertSampling(options.sampling(), options.logprobs());
  if (!sampling.ok()) return sampling.status();
  out.sampling = *std::move(sampling);
  absl::StatusOr<StopParams> stop =
      ConvertStopping(options.stopping(), vocab_size, out.max_tokens_given);
  if (!stop.ok()) return stop.status();
  out.stop = *std::move(stop);
  if (options.priority() < -kMaxPriorityMagnitude || options.priority() > kMaxPriorityMagnitude) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.priority must be in [-", kMaxPriorityMagnitude, ", ",
                     kMaxPriorityMagnitude, "], got ", options.priority()));
  }
  out.priority = options.priority();
  const v1::PrefixCacheOptions& cache = options.prefix_cache();
  if (cache.salt().size() > PrefixCacheParams::kMaxCacheSaltBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.prefix_cache.salt is ", cache.salt().size(), " bytes; at most ",
                     PrefixCacheParams::kMaxCacheSaltBytes, " are allowed"));
  }
  out.prefix_cache.enabled = !cache.has_enabled() || cache.enabled();
  out.prefix_cache.salt = cache.salt();
  const v1::StreamOptions& stream = options.stream();
  out.shape.stream = !stream.has_stream() || stream.stream();
  out.shape.include_token_ids = !stream.has_include_token_ids() || stream.include_token_ids();
  out.skip_special_tokens = !stream.has_skip_special_tokens() || stream.skip_special_tokens();
  return out;
}

absl::Status FitOutputToModel(int64_t prompt_tokens, std::string_view prompt_field,
                              const ModelLimits& limits, ConvertedOptions& options) {
  MUSERVE_CHECK(limits.context_len > 0 && limits.kv_capacity_tokens > 0);
  const int64_t context = limits.context_len;
  const int64_t kv_tokens = limits.kv_capacity_tokens;
  if (prompt_tokens + 1 > context) {
    return absl::InvalidArgumentError(absl::StrCat(
        AsAbsl(prompt_field), " has ", prompt_tokens, " tokens; the model's context of ", context,
        " tokens leaves no room for output (at most ", context - 1, " prompt tokens)"));
  }
  // The KV a request can need: every token but the last sampled one.
  if (prompt_tokens > kv_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(prompt_field), " has ", prompt_tokens,
                                                   " tokens; the whole KV cache holds ", kv_tokens,
                                                   " tokens (", kv_tokens / limits.kv_block_size,
                                                   " blocks of ", limits.kv_block_size, ")"));
  }
  const int64_t fits = std::min(context - prompt_tokens, kv_tokens - prompt_tokens + 1);
  StopParams& stop = options.stop;
  if (options.max_tokens_given) {
    const int64_t max_tokens = stop.max_tokens;
    if (prompt_tokens + max_tokens > context) {
      return absl::InvalidArgumentError(
          absl::StrCat("options.stopping.max_tokens (", max_tokens, ") + prompt tokens (",
                       prompt_tokens, ") exceed the model's context of ", context,
                       " tokens (max_tokens can be at most ", context - prompt_tokens, ")"));
    }
    if (prompt_tokens + max_tokens - 1 > kv_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          "options.stopping.max_tokens (", max_tokens, ") + prompt tokens (", prompt_tokens,
          ") need KV for ", prompt_tokens + max_tokens - 1, " tokens; the whole KV cache holds ",
          kv_tokens, " (max_tokens can be at most ", fits, ")"));
    }
    return absl::OkStatus();
  }
  stop.max_tokens =
      static_cast<int32_t>(std::min<int64_t>(fits, std::numeric_limits<int32_t>::max()));
  if (stop.min_tokens > stop.max_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.stopping.min_tokens must be in [0, max_tokens], got ", stop.min_tokens,
        "; max_tokens is unset and defaults to ", stop.max_tokens,
        ", what the model's context and KV cache leave after ", prompt_tokens, " prompt tokens"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequestSize(size_t request_bytes, const ModelLimits& limits) {
  if (request_bytes > limits.max_request_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request is ", request_bytes, " bytes; the limit is ",
                     limits.max_request_bytes, " (--max-request-bytes)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequestId(const std::string& request_id) {
  if (request_id.size() > kMaxRequestIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id is ", request_id.size(), " characters; at most ",
                     kMaxRequestIdLength, " printable ASCII characters (0x21..0x7e) are allowed"));
  }
  for (size_t i = 0; i < request_id.size(); ++i) {
    const auto c = static_cast<unsigned char>(request_id[i]);
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "request_id[%d] is 0x%02x; only printable ASCII (0x21..0x7e) is allowed", i, c));
    }
  }
  return absl::OkStatus();
}

}  // namespace muserve::server
