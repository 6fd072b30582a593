// Requests of the public API (GenerateRequest, ChatRequest) to the engine's
// Request. Every check the engine loop's Submit makes is made here first, so
// a client reads the field by its proto path ("options.sampling.top_p must be
// in (0, 1], got 0") rather than the engine's name for it; a request that
// converts is accepted by Submit unless the queue is full or the loop is not
// running. Defaults are those documented in proto/muserve/v1/inference.proto:
// an unset `optional` field takes its documented default, an explicit value is
// validated as given (temperature 0 is greedy; unset is 1.0).
//
// Thread-safe: pure functions of their arguments (the tokenizer and the chat
// template are used through their const interfaces).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "muserve/v1/inference.pb.h"
#include "scheduler/request.h"

namespace muserve::server {

// What the served model and engine can hold. Every field must be set (> 0):
// a zero is a bug in the server's setup, checked.
struct ModelLimits {
  int32_t vocab_size = 0;              // the model's (embedding rows), not the tokenizer's
  int64_t context_len = 0;             // the model's max_position_embeddings
  int64_t kv_capacity_tokens = 0;      // whole KV pool in tokens (num_blocks * block_size)
  int32_t kv_block_size = 16;          // tokens per KV block (for messages)
  size_t max_request_bytes = 4 << 20;  // serialized request size limit (--max-request-bytes)
};

// How the response stream is shaped (GenerationOptions.stream); the engine
// does not see it.
struct StreamShape {
  bool stream = true;             // false: one chunk with the whole output before `finished`
  bool include_token_ids = true;  // Chunk.token_ids are filled
};

struct ConvertedRequest {
  // As given (validated), possibly empty: the service generates one then.
  std::string request_id;
  // Ready for EngineLoop::Submit. `deadline` is left unset: the service sets
  // it from the call's deadline.
  Request engine;
  StreamShape shape;
};

// Limits on what a client may send, from the .proto.
inline constexpr size_t kMaxRequestIdLength = 128;
inline constexpr int kMaxChatMessages = 4096;
inline constexpr int32_t kMaxPriorityMagnitude = 1000000;
inline constexpr int32_t kMaxTopLogprobs = 20;

// Errors: InvalidArgument naming the field by its proto path and its allowed
// range ("prompt.token_ids.ids[3] = 99999 is outside the vocabulary [0, 1024)",
// "options.stopping.max_tokens (500) + prompt tokens (700) exceed the model's
// context of 1024 tokens", "request is 5000000 bytes; the limit is 4194304
// (--max-request-bytes)").
//
// max_tokens when unset: as many as fit, min(context_len - prompt tokens,
// kv_capacity_tokens - prompt tokens + 1) (the last sampled token needs no
// KV). An explicit max_tokens must fit both, as in vLLM.
absl::StatusOr<ConvertedRequest> ConvertGenerateRequest(const v1::GenerateRequest& request,
                                                        const Tokenizer& tokenizer,
                                                        const ModelLimits& limits);

// As ConvertGenerateRequest, with the prompt rendered by `chat_template`
// (add_generation_prompt defaulting to true; a message's `name` passed when
// non-empty) and tokenized without special tokens, since the template writes
// them itself (transformers' apply_chat_template does the same).
// Errors, besides those of ConvertGenerateRequest: FailedPrecondition when
// `chat_template` is null (the model has none); the template's own render
// errors (raise_exception, e.g. for roles out of order) as it reports them:
// InvalidArgument with its message.
absl::StatusOr<ConvertedRequest> ConvertChatRequest(const v1::ChatRequest& request,
                                                    const Tokenizer& tokenizer,
                                                    const ChatTemplate* chat_template,
                                                    const ModelLimits& limits);

}  // namespace muserve::server
