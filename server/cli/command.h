// A `muserve` subcommand: its name, one-line summary, the flags it accepts and
// its entry point. Flags are absl flags; only main parses the command line.
#pragma once

#include <string_view>
#include <vector>

namespace muserve::cli {

struct Command {
  std::string_view name;
  std::string_view summary;
  std::string_view usage;               // synopsis and flag descriptions, shown by --help
  std::vector<std::string_view> flags;  // absl flag names (underscored) this command reads
  // Runs with the positional arguments left after flag parsing; returns the exit code.
  int (*run)(const std::vector<std::string_view>& args);
};

// Implemented in the command's own file.
const Command& ServeCommand();
const Command& GenerateCommand();
const Command& MakeModelCommand();
const Command& ChatCommand();
const Command& CompleteCommand();
const Command& HealthCommand();
const Command& BenchCommand();

}  // namespace muserve::cli
