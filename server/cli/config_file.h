// Configuration files: a YAML mapping from a command's flag names to values,
// equivalent to giving the same flags on the command line.
//
//   # /etc/muserve/config.yaml
//   max-num-seqs: 64
//   metrics-port: 9464
//   log-format: json
//
// Keys are the flag names in their dashed form (underscores are accepted
// too). Values are scalars, parsed by each flag's own parser, so a value is
// written exactly as it would be after `--flag=` (`30s`, `4GiB`, `true`; an
// empty or null value is the empty string). Nothing here knows any
// particular flag: the schema is the command's flag list, read through
// Abseil's flag reflection, so a flag added to the command is a key at once.
//
// Precedence: a flag's built-in default < the file < the command line.
//
// Thread safety: flags are process-global; call from main's thread, after
// the command line is parsed and before other threads read flags.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace muserve::cli {

// Where the value of each flag came from, so that an error about a value
// names what the operator has to edit.
class FlagSources {
 public:
  // "--max-num-seqs" when the value came from the command line or is the
  // default; "max-num-seqs (FILE:LINE)" when it came from the file.
  // `flag` is the absl (underscored) name.
  std::string Describe(std::string_view flag) const;

  // `location` is "FILE:LINE" of the key that set `flag`.
  void SetFromFile(std::string_view flag, std::string location);

 private:
  absl::flat_hash_map<std::string, std::string> file_locations_;  // underscored flag -> FILE:LINE
};

// "max_num_seqs" -> "max-num-seqs": how flags are shown to users.
std::string DashedFlagName(std::string_view flag);

// The keys a configuration file may hold: a command's flags, less those that
// only make sense on a command line (the --config flag itself, --print-config).
class ConfigSchema {
 public:
  // `flags`: absl flag names (underscored), each registered (checked), in
  // the order PrintYaml lists them; `command_line_only` are among them.
  ConfigSchema(std::vector<std::string_view> flags,
               std::vector<std::string_view> command_line_only);

  // Reads `path` and sets every flag it names that `given_on_command_line`
  // says was not on the command line. All of the file is checked before any
  // flag changes, and every problem is reported, one line each, as
  // "FILE[:LINE]: ...": an unreadable or empty file, malformed YAML, more
  // than one document, a top level that is not a mapping, an unknown key
  // (with the nearest known one), a command-line-only key, a key given
  // twice, a mapping or list where a value belongs, and a value the flag's
  // parser refuses. On error (InvalidArgument) no flag has changed.
  absl::StatusOr<FlagSources> Apply(
      const std::filesystem::path& path,
      absl::FunctionRef<bool(std::string_view flag)> given_on_command_line) const;

  // The effective configuration: every key with its current value, each
  // preceded by a comment holding the flag's help text. Read back by Apply,
  // it sets every flag to the value it has now.
  std::string PrintYaml() const;

 private:
  std::vector<std::string_view> keys_;  // underscored, in print order
  std::vector<std::string_view> command_line_only_;
};

}  // namespace muserve::cli
