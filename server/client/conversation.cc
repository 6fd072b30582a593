#include "server/client/conversation.h"

#include <utility>

namespace muserve::client {
namespace {

v1::ChatMessage Message(v1::ChatMessage::Role role, std::string content) {
  v1::ChatMessage message;
  message.set_role(role);
  message.set_content(std::move(content));
  return message;
}

}  // namespace

Conversation::Conversation(InferenceClient* client, std::optional<std::string> system_message,
                           v1::GenerationOptions options)
    : client_(client), system_message_(std::move(system_message)), options_(std::move(options)) {
  Reset();
}

absl::StatusOr<v1::Finished> Conversation::Send(std::string_view user_text,
                                                const ChunkCallback& on_chunk,
                                                const CallOptions& call_options) {
  v1::ChatRequest request;
  for (const v1::ChatMessage& message : messages_) *request.add_messages() = message;
  *request.add_messages() = Message(v1::ChatMessage::ROLE_USER, std::string(user_text));
  *request.mutable_options() = options_;

  std::string reply;
  absl::StatusOr<v1::Finished> finished = client_->Chat(
      request,
      [&](const v1::Chunk& chunk) {
        reply += chunk.text();
        if (on_chunk) on_chunk(chunk);
      },
      call_options);
  if (!finished.ok()) return finished;
  messages_.push_back(request.messages(request.messages_size() - 1));
  messages_.push_back(Message(v1::ChatMessage::ROLE_ASSISTANT, std::move(reply)));
  return finished;
}

void Conversation::Reset() {
  messages_.clear();
  if (system_message_) messages_.push_back(Message(v1::ChatMessage::ROLE_SYSTEM, *system_message_));
}

}  // namespace muserve::client
