// ChatTemplate: renders a Hugging Face `chat_template` (Jinja) exactly as
// transformers' apply_chat_template does. Implements the Jinja subset that
// real templates use; a template that uses anything else fails to compile,
// at load time, with an error naming the construct and its line.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace muserve {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool"
  std::string content;
  std::optional<std::string> name;
};

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  // Extra variables visible to the template (tools, documents, date_string...).
  // `messages` and `add_generation_prompt` may not be set here. Ordered so
  // that a tool schema renders (`tojson`, dict iteration) with the caller's
  // key order, as transformers does with Python dicts: parse request JSON
  // straight into nlohmann::ordered_json, not through nlohmann::json (which
  // sorts keys).
  nlohmann::ordered_json extra_context = nlohmann::ordered_json::object();
};

class ChatTemplate {
 public:
  virtual ~ChatTemplate() = default;

  // Compiles `source`. `bos_token` / `eos_token` are the strings from
  // tokenizer_config.json that templates see as variables.
  //
  // Errors: every failure caused by the template or by what a request fed it
  // is InvalidArgument with a message naming the problem and its line, so a
  // server can pass it through as INVALID_ARGUMENT: syntax errors, constructs
  // this interpreter does not implement, runtime errors, raise_exception, and
  // exceeding the render limits (jinja::RenderLimits). Only running out of
  // memory is ResourceExhausted. Nothing is Internal; nothing throws.
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> Compile(std::string_view source,
                                                               std::string bos_token,
                                                               std::string eos_token);

  // Reads `chat_template` (string, or the list-of-{name, template} form, taking
  // "default"), `bos_token` and `eos_token` from tokenizer_config.json.
  // `override_path`, when set, replaces the template with that file's text.
  // File errors are those of ReadFileToString (engine/api/file_util.h:
  // NotFound, PermissionDenied, InvalidArgument for a non-regular file);
  // a malformed config or template is InvalidArgument; a config without a
  // chat_template is NotFound.
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> FromTokenizerConfig(
      const std::filesystem::path& tokenizer_config_path,
      const std::optional<std::filesystem::path>& override_path = std::nullopt);

  // Renders the conversation. A `raise_exception(...)` in the template becomes
  // InvalidArgument with exactly its message; other failures as for Compile.
  virtual absl::StatusOr<std::string> Render(const std::vector<ChatMessage>& messages,
                                             const ChatTemplateOptions& options) const = 0;
};

}  // namespace muserve
