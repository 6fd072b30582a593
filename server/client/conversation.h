// A multi-turn chat kept on the client: the server is stateless, so every
// turn sends the whole history.
//
// Invariant: `messages_` is the optional system message followed by
// alternating user and assistant messages, ending with an assistant message
// (every completed turn appends exactly one of each). A turn that fails
// leaves the history as it was, so the user can simply send again.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "muserve/v1/inference.pb.h"
#include "server/client/call_options.h"
#include "server/client/inference_client.h"

namespace muserve::client {

class Conversation {
 public:
  // `client` is not owned and must outlive the conversation. `options` go on
  // every turn's ChatRequest.
  Conversation(InferenceClient* client, std::optional<std::string> system_message,
               v1::GenerationOptions options);

  // Sends the history plus `user_text` as one Chat call, streaming the reply's
  // chunks to `on_chunk`. On success appends the user message and the reply
  // (every chunk's text concatenated) to the history, whatever the finish
  // reason, and returns the Finished event.
  absl::StatusOr<v1::Finished> Send(std::string_view user_text, const ChunkCallback& on_chunk,
                                    const CallOptions& call_options = {});

  // Forgets every turn; the system message stays.
  void Reset();

  const std::vector<v1::ChatMessage>& messages() const { return messages_; }

 private:
  InferenceClient* client_;
  std::optional<std::string> system_message_;
  v1::GenerationOptions options_;
  std::vector<v1::ChatMessage> messages_;
};

}  // namespace muserve::client
