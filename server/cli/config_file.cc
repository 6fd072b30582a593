#include "server/cli/config_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/api/absl_string_view.h"
#include "engine/api/check.h"
#include "yaml-cpp/yaml.h"

namespace muserve::cli {
namespace {

std::string UnderscoredName(std::string_view key) {
  std::string name(key);
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

absl::CommandLineFlag& FindFlag(std::string_view name) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(AsAbsl(name));
  MUSERVE_CHECK(flag != nullptr);  // a command lists only flags it defines
  return *flag;
}

const char* KindOf(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    default:
      return "a single value";
  }
}

// Levenshtein distance, for suggesting the key a typo meant.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// One key of the file that passed every check, to be applied.
struct Setting {
  absl::CommandLineFlag* flag;
  std::string value;
  std::string location;  // FILE:LINE
};

// Checks the file's `key: value` pairs one by one, collecting a problem or
// a setting for each.
class EntryChecker {
 public:
  EntryChecker(std::string file, const std::vector<std::string_view>& keys,
               const std::vector<std::string_view>& command_line_only)
      : file_(std::move(file)), keys_(keys), command_line_only_(command_line_only) {}

  void Check(const YAML::Node& key, const YAML::Node& value) {
    const int line = key.Mark().line + 1;
    const std::string where = absl::StrCat(file_, ":", line);
    if (!key.IsScalar()) {
      return Error(where, absl::StrCat("a key must be a flag name, got ", KindOf(key)));
    }
    const std::string name = UnderscoredName(key.Scalar());
    const std::string dashed = DashedFlagName(name);
    if (std::find(command_line_only_.begin(), command_line_only_.end(), name) !=
        command_line_only_.end()) {
      return Error(where,
                   absl::StrCat("'", key.Scalar(), "' can only be given on the command line"));
    }
    if (std::find(keys_.begin(), keys_.end(), name) == keys_.end()) {
      return Error(where, absl::StrCat("unknown key '", key.Scalar(), "'", Suggestion(name)));
    }
    if (auto [first, inserted] = seen_.emplace(name, line); !inserted) {
      return Error(where, absl::StrCat("duplicate key '", dashed, "' (first set on line ",
                                       first->second, ")"));
    }
    if (!value.IsNull() && !value.IsScalar()) {
      return Error(where, absl::StrCat(dashed, ": expected a single value, got ", KindOf(value)));
    }
    const std::string text = value.IsNull() ? std::string() : value.Scalar();
    absl::CommandLineFlag& flag = FindFlag(name);
    // The flag's own parser is the judge; its value is put back at once, so
    // that nothing changes until the whole file has passed.
    const std::string before = flag.CurrentValue();
    std::string parse_error;
    if (!flag.ParseFrom(AsAbsl(text), &parse_error)) {
      return Error(where, absl::StrCat(dashed, ": invalid value '", text, "'", Detail(parse_error),
                                       " (the default is '", flag.DefaultValue(), "')"));
    }
    std::string restore_error;
    MUSERVE_CHECK(flag.ParseFrom(before, &restore_error));  // absl checks round trips
    settings_.push_back({&flag, text, where});
  }

  const std::vector<std::string>& errors() const { return errors_; }
  const std::vector<Setting>& settings() const { return settings_; }

 private:
  void Error(std::string_view where, std::string_view message) {
    errors_.push_back(absl::StrCat(AsAbsl(where), ": ", AsAbsl(message)));
  }

  // " (did you mean 'max-num-seqs'?)" for a near miss, else a pointer to
  // where the keys are listed.
  std::string Suggestion(std::string_view name) const {
    std::string_view best;
    size_t best_distance = SIZE_MAX;
    for (std::string_view key : keys_) {
      const size_t distance = EditDistance(name, key);
      if (distance < best_distance) best = key, best_distance = distance;
    }
    if (best_distance <= std::max<size_t>(1, name.size() / 3)) {
      return absl::StrCat(" (did you mean '", DashedFlagName(best), "'?)");
    }
    return " (--print-config lists every key)";
  }

  // absl's message is "Illegal value 'x' specified for flag 'y'[; detail]":
  // the key and value are already said, the detail is worth keeping.
  static std::string Detail(std::string_view parse_error) {
    const size_t at = parse_error.find("; ");
    if (at == std::string_view::npos) return "";
    return absl::StrCat(": ", AsAbsl(parse_error.substr(at + 2)));
  }

  const std::string file_;
  const std::vector<std::string_view>& keys_;
  const std::vector<std::string_view>& command_line_only_;
  absl::flat_hash_map<std::string, int> seen_;  // underscored key -> line
  std::vector<std::string> errors_;
  std::vector<Setting> settings_;
};

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": is a directory"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": cannot read: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::string DashedFlagName(std::string_view flag) {
  std::string name(flag);
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

std::string FlagSources::Describe(std::string_view flag) const {
  const auto it = file_locations_.find(AsAbsl(flag));
  if (it == file_locations_.end()) return absl::StrCat("--", DashedFlagName(flag));
  return absl::StrCat(DashedFlagName(flag), " (", it->second, ")");
}

void FlagSources::SetFromFile(std::string_view flag, std::string location) {
  file_locations_[AsAbsl(flag)] = std::move(location);
}

ConfigSchema::ConfigSchema(std::vector<std::string_view> flags,
                           std::vector<std::string_view> command_line_only)
    : command_line_only_(std::move(command_line_only)) {
  for (std::string_view flag : flags) {
    FindFlag(flag);
    if (std::find(command_line_only_.begin(), command_line_only_.end(), flag) ==
        command_line_only_.end()) {
      keys_.push_back(flag);
    }
  }
}

absl::StatusOr<FlagSources> ConfigSchema::Apply(
    const std::filesystem::path& path,
    absl::FunctionRef<bool(std::string_view flag)> given_on_command_line) const {
  const std::string file = path.string();
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(*text);
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(file, ":", error.mark.line + 1, ":",
                                                   error.mark.column + 1,
                                                   ": malformed YAML: ", error.msg));
  }
  if (documents.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": holds ", documents.size(), " YAML documents; expected one"));
  }
  if (documents.empty() || documents[0].IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": no settings (expected a mapping of flag names to values, e.g. 'port: 50051')"));
  }
  const YAML::Node& root = documents[0];
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(file, ":", root.Mark().line + 1,
                                                   ": expected a mapping of flag names to ",
                                                   "values, got ", KindOf(root)));
  }

  EntryChecker checker(file, keys_, command_line_only_);
  for (const auto& entry : root) checker.Check(entry.first, entry.second);
  if (!checker.errors().empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(checker.errors(), "\n"));
  }
  FlagSources sources;
  for (const Setting& setting : checker.settings()) {
    const std::string name(setting.flag->Name());
    if (given_on_command_line(name)) continue;
    std::string error;
    MUSERVE_CHECK(setting.flag->ParseFrom(setting.value, &error));  // parsed above
    sources.SetFromFile(name, setting.location);
  }
  return sources;
}

std::string ConfigSchema::PrintYaml() const {
  std::string out;
  for (std::string_view key : keys_) {
    const absl::CommandLineFlag& flag = FindFlag(key);
    for (absl::string_view line : absl::StrSplit(flag.Help(), '\n')) {
      absl::StrAppend(&out, "# ", line, "\n");
    }
    YAML::Emitter value;
    value << flag.CurrentValue();
    absl::StrAppend(&out, DashedFlagName(key), ": ", value.c_str(), "\n");
  }
  return out;
}

}  // namespace muserve::cli
