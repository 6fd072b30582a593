#include "bench/loadgen/dataset.h"

#include <fstream>
#include <random>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace muserve::loadgen {
namespace {

using nlohmann::json;

// Per-message overhead the chat template adds (role markers); a margin for
// the context check, which cannot render the template itself.
constexpr int64_t kTemplateTokensPerMessage = 8;

enum class Role { kSystem, kUser, kAssistant };

absl::StatusOr<Role> ParseRole(const std::string& role, const std::string& where) {
  if (role == "system") return Role::kSystem;
  if (role == "user" || role == "human") return Role::kUser;
  if (role == "assistant" || role == "gpt" || role == "chatgpt" || role == "bard" ||
      role == "bing") {
    return Role::kAssistant;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": unknown role '", role,
                   "' (expected system, user/human or assistant/gpt/chatgpt/bard/bing)"));
}

struct Message {
  Role role;
  std::string text;
};

// The messages of a "messages" or "conversations" entry.
absl::StatusOr<std::vector<Message>> ReadMessages(const json& list, bool sharegpt,
                                                  const std::string& where) {
  const char* list_key = sharegpt ? "conversations" : "messages";
  const char* role_key = sharegpt ? "from" : "role";
  const char* text_key = sharegpt ? "value" : "content";
  if (!list.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": \"", list_key, "\" must be an array"));
  }
  std::vector<Message> messages;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = absl::StrCat(where, ": ", list_key, "[", i, "]");
    const json& item = list[i];
    if (!item.is_object() || !item.contains(role_key) || !item[role_key].is_string() ||
        !item.contains(text_key) || !item[text_key].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, " needs string keys \"", role_key, "\" and \"", text_key, "\""));
    }
    auto role = ParseRole(item[role_key].get<std::string>(), absl::StrCat(at, ".", role_key));
    if (!role.ok()) return role.status();
    messages.push_back({*role, item[text_key].get<std::string>()});
  }
  return messages;
}

class Loader {
 public:
  Loader(const DatasetOptions& options, const TokenCounter& count)
      : options_(options), count_(count), rng_(options.seed) {}

  // Adds `entry` to `workload` unless it has no turn that fits.
  absl::Status Add(const json& entry, const std::string& where, Workload& workload) {
    if (!entry.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": an entry must be a JSON object"));
    }
    if (entry.contains("prompt")) return AddPrompt(entry, where, workload);
    const bool sharegpt = entry.contains("conversations");
    if (!sharegpt && !entry.contains("messages")) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": an entry needs \"prompt\", \"messages\" or \"conversations\" (ShareGPT)"));
    }
    auto messages = ReadMessages(entry[sharegpt ? "conversations" : "messages"], sharegpt, where);
    if (!messages.ok()) return messages.status();
    return AddConversation(*messages, workload);
  }

  int64_t skipped() const { return skipped_; }

 private:
  absl::Status AddPrompt(const json& entry, const std::string& where, Workload& workload) {
    if (!entry["prompt"].is_string() || entry["prompt"].get<std::string>().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": \"prompt\" must be a non-empty string"));
    }
    TurnSpec turn;
    turn.text = entry["prompt"].get<std::string>();
    if (entry.contains("max_tokens")) {
      if (!entry["max_tokens"].is_number_integer() || entry["max_tokens"].get<int64_t>() < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": \"max_tokens\" must be an integer >= 1"));
      }
      turn.max_tokens = entry["max_tokens"].get<int32_t>();
    } else {
      turn.max_tokens = options_.output_len.Sample(rng_);
    }
    auto prompt_tokens = count_(turn.text);
    if (!prompt_tokens.ok()) return prompt_tokens.status();
    if (*prompt_tokens + int64_t{turn.max_tokens} + 1 > options_.max_context) {
      ++skipped_;
      return absl::OkStatus();
    }
    ConversationSpec conversation;
    conversation.api = ApiKind::kGenerateText;
    conversation.turns.push_back(std::move(turn));
    workload.conversations.push_back(std::move(conversation));
    return absl::OkStatus();
  }

  absl::Status AddConversation(const std::vector<Message>& messages, Workload& workload) {
    ConversationSpec conversation;
    conversation.api = ApiKind::kChat;
    int64_t context = 0;  // tokens of the history the next turn sends, before its own
    size_t i = 0;
    if (!messages.empty() && messages[0].role == Role::kSystem) {
      conversation.system = messages[0].text;
      auto tokens = count_(messages[0].text);
      if (!tokens.ok()) return tokens.status();
      context += *tokens + kTemplateTokensPerMessage;
      i = 1;
    }
    for (; i < messages.size(); ++i) {
      if (messages[i].role != Role::kUser) continue;  // a reply without its question
      TurnSpec turn;
      turn.text = messages[i].text;
      if (i + 1 < messages.size() && messages[i + 1].role == Role::kAssistant) {
        auto reply = count_(messages[i + 1].text);
        if (!reply.ok()) return reply.status();
        turn.max_tokens = std::max<int32_t>(1, *reply);
      } else {
        turn.max_tokens = options_.output_len.Sample(rng_);
      }
      auto user = count_(turn.text);
      if (!user.ok()) return user.status();
      const int64_t needed = context + *user + turn.max_tokens + 2 * kTemplateTokensPerMessage;
      if (needed > options_.max_context) break;
      context = needed;
      conversation.turns.push_back(std::move(turn));
    }
    if (conversation.turns.empty()) {
      ++skipped_;
      return absl::OkStatus();
    }
    workload.conversations.push_back(std::move(conversation));
    return absl::OkStatus();
  }

  const DatasetOptions& options_;
  const TokenCounter& count_;
  std::mt19937_64 rng_;
  int64_t skipped_ = 0;
};

}  // namespace

absl::StatusOr<Workload> LoadDataset(const DatasetOptions& options, const TokenCounter& count) {
  const std::string name = options.path.string();
  std::ifstream in(options.path);
  if (!in) return absl::NotFoundError(absl::StrCat("--dataset: cannot open ", name));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--dataset: ", name, " is empty"));
  }
  Loader loader(options, count);
  Workload workload;
  const auto full = [&] {
    return static_cast<int64_t>(workload.conversations.size()) >= options.max_entries;
  };
  if (text[first] == '[') {  // one JSON array (ShareGPT's own distribution)
    const json all = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (all.is_discarded() || !all.is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": not a valid JSON array"));
    }
    for (size_t i = 0; i < all.size() && !full(); ++i) {
      if (absl::Status added = loader.Add(all[i], absl::StrCat(name, "[", i, "]"), workload);
          !added.ok()) {
        return added;
      }
    }
  } else {
    std::istringstream lines(text);
    std::string line;
    for (int64_t number = 1; std::getline(lines, line) && !full(); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = absl::StrCat(name, ":", number);
      const json entry = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (entry.is_discarded()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON"));
      }
      if (absl::Status added = loader.Add(entry, where, workload); !added.ok()) return added;
    }
  }
  if (workload.conversations.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": no entry with a user turn that fits the model's context"));
  }
  int64_t turns = 0;
  for (const ConversationSpec& c : workload.conversations) turns += c.turns.size();
  workload.description =
      absl::StrCat("dataset ", options.path.filename().string(), ": ",
                   workload.conversations.size(), " entries, ", turns, " turns",
                   loader.skipped() > 0 ? absl::StrCat(" (", loader.skipped(), " skipped)") : "");
  return workload;
}

}  // namespace muserve::loadgen
