#include "engine/tokenizer/chat_template.h"

#include <new>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/api/file_util.h"
#include "engine/tokenizer/jinja/template.h"
#include "engine/tokenizer/jinja/value.h"

namespace muserve {
namespace {

// The context transformers' render_jinja_template builds: messages, tools and
// documents (None unless given), add_generation_prompt, the special tokens
// that are set, then the caller's extra variables.
class JinjaChatTemplate final : public ChatTemplate {
 public:
  JinjaChatTemplate(std::unique_ptr<jinja::Template> tmpl, std::string bos, std::string eos)
      : template_(std::move(tmpl)), bos_token_(std::move(bos)), eos_token_(std::move(eos)) {}

  absl::StatusOr<std::string> Render(const std::vector<ChatMessage>& messages,
                                     const ChatTemplateOptions& options) const override {
    // Building the context allocates in proportion to the request; a
    // bad_alloc there must not escape a Status function.
    try {
      return RenderUnchecked(messages, options);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError("chat template: out of memory building the context");
    }
  }

 private:
  absl::StatusOr<std::string> RenderUnchecked(const std::vector<ChatMessage>& messages,
                                              const ChatTemplateOptions& options) const {
    if (!options.extra_context.is_object()) {
      return absl::InvalidArgumentError("chat template extra_context must be a JSON object");
    }
    jinja::Value context = jinja::Value::NewDict();
    jinja::DictData& vars = context.as_dict();
    std::vector<jinja::Value> list;
    list.reserve(messages.size());
    for (const ChatMessage& m : messages) {
      jinja::Value msg = jinja::Value::NewDict();
      msg.as_dict().Set("role", jinja::Value(m.role));
      msg.as_dict().Set("content", jinja::Value(m.content));
      if (m.name) msg.as_dict().Set("name", jinja::Value(*m.name));
      list.push_back(std::move(msg));
    }
    vars.Set("messages", jinja::Value::NewList(std::move(list)));
    vars.Set("tools", jinja::Value::None());
    vars.Set("documents", jinja::Value::None());
    vars.Set("add_generation_prompt", jinja::Value(options.add_generation_prompt));
    // transformers passes only the special tokens a tokenizer has; an unset
    // one is undefined in the template, not "".
    if (!bos_token_.empty()) vars.Set("bos_token", jinja::Value(bos_token_));
    if (!eos_token_.empty()) vars.Set("eos_token", jinja::Value(eos_token_));
    for (const auto& [key, value] : options.extra_context.items()) {
      if (key == "messages" || key == "add_generation_prompt") {
        return absl::InvalidArgumentError(
            absl::StrCat("chat template extra_context may not set '", key, "'"));
      }
      vars.Set(key, jinja::Value::FromJson(value));
    }
    return template_->Render(context);
  }

  std::unique_ptr<jinja::Template> template_;
  std::string bos_token_;
  std::string eos_token_;
};

// A special token in tokenizer_config.json: a string, an AddedToken object
// ({"content": ...}), or null / absent ("").
std::string SpecialToken(const nlohmann::json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::Compile(std::string_view source,
                                                                    std::string bos_token,
                                                                    std::string eos_token) {
  auto tmpl = jinja::Template::Compile(source);
  if (!tmpl.ok()) {
    // A construct this interpreter lacks is, to a caller that supplied the
    // template, as much a problem with its input as a syntax error.
    if (absl::IsUnimplemented(tmpl.status())) {
      return absl::InvalidArgumentError(tmpl.status().message());
    }
    return tmpl.status();
  }
  return std::unique_ptr<ChatTemplate>(
      new JinjaChatTemplate(*std::move(tmpl), std::move(bos_token), std::move(eos_token)));
}

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::FromTokenizerConfig(
    const std::filesystem::path& tokenizer_config_path,
    const std::optional<std::filesystem::path>& override_path) {
  auto text = ReadFileToString(tokenizer_config_path);
  if (!text.ok()) return text.status();
  const nlohmann::json config = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(tokenizer_config_path.string(), " is not a JSON object"));
  }
  std::string source;
  if (override_path) {
    auto override_text = ReadFileToString(*override_path);
    if (!override_text.ok()) return override_text.status();
    source = *std::move(override_text);
  } else {
    auto it = config.find("chat_template");
    if (it == config.end() || it->is_null()) {
      return absl::NotFoundError(
          absl::StrCat(tokenizer_config_path.string(), " has no chat_template"));
    }
    if (it->is_string()) {
      source = it->get<std::string>();
    } else if (it->is_array()) {
      // transformers turns the list into {name: template}: entries with any
      // other name (or a non-string one) are simply not "default", and a
      // later "default" replaces an earlier one.
      bool found = false;
      for (const auto& entry : *it) {
        if (!entry.is_object()) continue;
        const auto name = entry.find("name");
        if (name == entry.end() || !name->is_string() || *name != "default") continue;
        const auto tmpl = entry.find("template");
        if (tmpl == entry.end() || !tmpl->is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat(tokenizer_config_path.string(),
                           ": chat_template \"default\" has no template string"));
        }
        source = tmpl->get<std::string>();
        found = true;
      }
      if (!found) {
        return absl::InvalidArgumentError(absl::StrCat(
            tokenizer_config_path.string(), ": chat_template list has no \"default\" template"));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(tokenizer_config_path.string(),
                                                     ": chat_template must be a string or a list"));
    }
  }
  return Compile(source, SpecialToken(config, "bos_token"), SpecialToken(config, "eos_token"));
}

}  // namespace muserve
