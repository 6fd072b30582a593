#include "server/api/request_conversion.h"

#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/api/absl_string_view.h"
#include "engine/api/check.h"
#include "server/api/generation_options.h"

namespace muserve::server {
namespace {

// Checks made before anything costly (tokenizing, rendering), in the order a
// client would fix them.
absl::Status ValidateEnvelope(size_t request_bytes, const std::string& request_id,
                              const ModelLimits& limits) {
  MUSERVE_CHECK(limits.vocab_size > 0 && limits.kv_block_size > 0);
  if (absl::Status status = ValidateRequestSize(request_bytes, limits); !status.ok()) {
    return status;
  }
  return ValidateRequestId(request_id);
}

// A tokenizer may know more ids than the model has embedding rows (a
// mismatched checkpoint); the engine would refuse such a prompt, so say here
// which text produced the id.
absl::Status CheckEncodedInVocabulary(const std::vector<TokenId>& tokens,
                                      std::string_view prompt_field, int32_t vocab_size) {
  if (tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(prompt_field), " encodes to no tokens"));
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(AsAbsl(prompt_field), " encodes to token id ", tokens[i], " at position ", i,
                       ", outside the model's vocabulary [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

// The prompt of a GenerateRequest as token ids; `field` is set to its path
// for later messages.
absl::StatusOr<std::vector<TokenId>> GeneratePrompt(const v1::GenerateRequest& request,
                                                    const Tokenizer& tokenizer, int32_t vocab_size,
                                                    std::string_view& field) {
  switch (request.prompt_case()) {
    case v1::GenerateRequest::kText: {
      field = "prompt.text";
      const std::string& text = request.text();
      if (text.empty()) return absl::InvalidArgumentError("prompt.text must not be empty");
      // Parsing a proto3 string checks UTF-8 in C++, but a request built in
      // process (or by a lenient client library) may not have been parsed.
      if (!IsValidUtf8(text)) {
        return absl::InvalidArgumentError("prompt.text must be valid UTF-8");
      }
      const bool add_special = !request.has_add_special_tokens() || request.add_special_tokens();
      std::vector<TokenId> tokens = tokenizer.Encode(text, add_special);
      if (absl::Status status = CheckEncodedInVocabulary(tokens, field, vocab_size); !status.ok()) {
        return status;
      }
      return tokens;
    }
    case v1::GenerateRequest::kTokenIds: {
      field = "prompt.token_ids.ids";
      const auto& ids = request.token_ids().ids();
      if (ids.empty()) {
        return absl::InvalidArgumentError("prompt.token_ids.ids must not be empty");
      }
      for (int i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= vocab_size) {
          return absl::InvalidArgumentError(absl::StrCat("prompt.token_ids.ids[", i, "] = ", ids[i],
                                                         " is outside the vocabulary [0, ",
                                                         vocab_size, ")"));
        }
      }
      return std::vector<TokenId>(ids.begin(), ids.end());
    }
    case v1::GenerateRequest::PROMPT_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("prompt must be set (text or token_ids)");
}

absl::StatusOr<ConvertedRequest> Assemble(const std::string& request_id, ConvertedOptions options,
                                          std::vector<TokenId> prompt_tokens,
                                          std::string_view prompt_field,
                                          const ModelLimits& limits) {
  if (absl::Status status = FitOutputToModel(static_cast<int64_t>(prompt_tokens.size()),
                                             prompt_field, limits, options);
      !status.ok()) {
    return status;
  }
  ConvertedRequest out;
  out.request_id = request_id;
  out.engine.prompt_tokens = std::move(prompt_tokens);
  out.engine.sampling = std::move(options.sampling);
  out.engine.stop = std::move(options.stop);
  out.engine.priority = options.priority;
  out.engine.skip_special_tokens = options.skip_special_tokens;
  out.engine.prefix_cache = options.prefix_cache;
  out.shape = options.shape;
  return out;
}

std::optional<std::string_view> RoleName(int role) {
  switch (role) {
    case v1::ChatMessage::ROLE_SYSTEM:
      return "system";
    case v1::ChatMessage::ROLE_USER:
      return "user";
    case v1::ChatMessage::ROLE_ASSISTANT:
      return "assistant";
    default:
      return std::nullopt;
  }
}

absl::StatusOr<std::vector<ChatMessage>> ConvertMessages(
    const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages) {
  if (messages.empty()) return absl::InvalidArgumentError("messages must not be empty");
  if (messages.size() > kMaxChatMessages) {
    return absl::InvalidArgumentError(absl::StrCat(
        "messages has ", messages.size(), " entries; at most ", kMaxChatMessages, " are allowed"));
  }
  std::vector<ChatMessage> out;
  out.reserve(messages.size());
  for (int i = 0; i < messages.size(); ++i) {
    const v1::ChatMessage& message = messages[i];
    const std::optional<std::string_view> role = RoleName(message.role());
    if (!role.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "messages[", i, "].role must be ROLE_SYSTEM, ROLE_USER or ROLE_ASSISTANT, got ",
          static_cast<int>(message.role()),
          message.role() == v1::ChatMessage::ROLE_UNSPECIFIED ? " (ROLE_UNSPECIFIED)" : ""));
    }
    if (!IsValidUtf8(message.content())) {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", i, "].content must be valid UTF-8"));
    }
    if (!IsValidUtf8(message.name())) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "].name must be valid UTF-8"));
    }
    ChatMessage& converted = out.emplace_back();
    converted.role = std::string(*role);
    converted.content = message.content();
    if (!message.name().empty()) converted.name = message.name();
  }
  return out;
}

}  // namespace

absl::StatusOr<ConvertedRequest> ConvertGenerateRequest(const v1::GenerateRequest& request,
                                                        const Tokenizer& tokenizer,
                                                        const ModelLimits& limits) {
  if (absl::Status status = ValidateEnvelope(request.ByteSizeLong(), request.request_id(), limits);
      !status.ok()) {
    return status;
  }
  absl::StatusOr<ConvertedOptions> options =
      ConvertGenerationOptions(request.options(), limits.vocab_size);
  if (!options.ok()) return options.status();
  std::string_view prompt_field;
  absl::StatusOr<std::vector<TokenId>> prompt =
      GeneratePrompt(request, tokenizer, limits.vocab_size, prompt_field);
  if (!prompt.ok()) return prompt.status();
  return Assemble(request.request_id(), *std::move(options), *std::move(prompt), prompt_field,
                  limits);
}

absl::StatusOr<ConvertedRequest> ConvertChatRequest(const v1::ChatRequest& request,
                                                    const Tokenizer& tokenizer,
                                                    const ChatTemplate* chat_template,
                                                    const ModelLimits& limits) {
  if (absl::Status status = ValidateEnvelope(request.ByteSizeLong(), request.request_id(), limits);
      !status.ok()) {
    return status;
  }
  if (chat_template == nullptr) {
    return absl::FailedPreconditionError(
        "the model has no chat template (tokenizer_config.json has no chat_template); use "
        "Generate with a prompt");
  }
  absl::StatusOr<std::vector<ChatMessage>> messages = ConvertMessages(request.messages());
  if (!messages.ok()) return messages.status();
  absl::StatusOr<ConvertedOptions> options =
      ConvertGenerationOptions(request.options(), limits.vocab_size);
  if (!options.ok()) return options.status();

  ChatTemplateOptions render_options;
  render_options.add_generation_prompt =
      !request.has_add_generation_prompt() || request.add_generation_prompt();
  // The template's errors (raise_exception on a bad role order, say) are
  // InvalidArgument with a message written for the client: passed as they are.
  absl::StatusOr<std::string> text = chat_template->Render(*messages, render_options);
  if (!text.ok()) return text.status();
  // The template has written the special tokens (BOS, turn markers) itself.
  std::vector<TokenId> prompt = tokenizer.Encode(*text, /*add_special_tokens=*/false);
  constexpr std::string_view kPromptField = "messages (as rendered by the chat template)";
  if (absl::Status status = CheckEncodedInVocabulary(prompt, kPromptField, limits.vocab_size);
      !status.ok()) {
    return status;
  }
  return Assemble(request.request_id(), *std::move(options), std::move(prompt), kPromptField,
                  limits);
}

}  // namespace muserve::server
