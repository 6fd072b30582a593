// The parts of a generation request that GenerateRequest and ChatRequest
// share: GenerationOptions, the request id and size, and fitting the output
// to the model once the prompt's length is known. Internal to server/api
// (request_conversion.cc); exposed for its tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/sampling/sampler.h"
#include "muserve/v1/inference.pb.h"
#include "scheduler/request.h"
#include "server/api/request_conversion.h"

namespace muserve::server {

// GenerationOptions with its defaults applied and every field checked that
// does not depend on the prompt.
struct ConvertedOptions {
  SamplingParams sampling;
  // stop.max_tokens is the client's when `max_tokens_given`, else a
  // placeholder until FitOutputToModel sets it.
  StopParams stop;
  bool max_tokens_given = false;
  int32_t priority = 0;
  bool skip_special_tokens = true;
  PrefixCacheParams prefix_cache;
  StreamShape shape;
};

// InvalidArgument naming the field under "options." and its range.
// `vocab_size` bounds stopping.stop_token_ids.
absl::StatusOr<ConvertedOptions> ConvertGenerationOptions(const v1::GenerationOptions& options,
                                                          int32_t vocab_size);

// Checks that a prompt of `prompt_tokens` tokens leaves room for output in
// the model's context and in the whole KV pool, then sets options.stop's
// max_tokens when the client left it unset (as many as fit) or checks the
// client's. `prompt_field` names the prompt in messages ("prompt.text",
// "messages"). InvalidArgument otherwise.
absl::Status FitOutputToModel(int64_t prompt_tokens, std::string_view prompt_field,
                              const ModelLimits& limits, ConvertedOptions& options);

// InvalidArgument when a serialized request of `request_bytes` exceeds
// limits.max_request_bytes.
absl::Status ValidateRequestSize(size_t request_bytes, const ModelLimits& limits);

// Empty (the service generates one), or at most kMaxRequestIdLength printable
// ASCII characters (0x21..0x7e): ids appear in logs and metrics labels.
absl::Status ValidateRequestId(const std::string& request_id);

}  // namespace muserve::server
