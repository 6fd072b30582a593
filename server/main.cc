// The `muserve` executable: `muserve <command> [flags] [args]`.
#include <cctype>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "server/cli/argv.h"
#include "server/cli/command.h"

namespace {

using muserve::cli::Command;

std::vector<const Command*> AllCommands() {
  return {&muserve::cli::ServeCommand(),     &muserve::cli::GenerateCommand(),
          &muserve::cli::MakeModelCommand(), &muserve::cli::ChatCommand(),
          &muserve::cli::CompleteCommand(),  &muserve::cli::HealthCommand(),
          &muserve::cli::BenchCommand()};
}

void PrintTopLevelUsage(FILE* out) {
  std::fprintf(out, "Usage: muserve <command> [flags] [args]\n\nCommands:\n");
  for (const Command* command : AllCommands()) {
    std::fprintf(out, "  %-12.*s %.*s\n", static_cast<int>(command->name.size()),
                 command->name.data(), static_cast<int>(command->summary.size()),
                 command->summary.data());
  }
  std::fprintf(out, "\nRun `muserve <command> --help` for a command's flags.\n");
}

// Flags belong to subcommands, but absl's registry is global: reject any flag
// on the command line that the chosen command does not read, so that a
// misplaced flag is an error rather than silently ignored. `args` are already
// normalized (underscored names); boolean flags may be written --noNAME.
bool CheckFlagsBelongTo(const Command& command, const std::vector<std::string>& args) {
  const absl::flat_hash_set<std::string_view> allowed(command.flags.begin(), command.flags.end());
  bool ok = true;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') continue;
    // A negative number is a value ("--metrics-port -1"), not a flag.
    if (std::isdigit(static_cast<unsigned char>(arg[1]))) continue;
    std::string_view name = arg.substr(arg[1] == '-' ? 2 : 1);
    name = name.substr(0, name.find('='));
    const bool negated_bool = name.starts_with("no") && allowed.contains(name.substr(2));
    if (!allowed.contains(name) && !negated_bool && name != "flagfile") {
      std::fprintf(stderr, "muserve %.*s: unknown flag --%.*s\n",
                   static_cast<int>(command.name.size()), command.name.data(),
                   static_cast<int>(name.size()), name.data());
      ok = false;
    }
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) == "help" || std::string_view(argv[1]) == "--help" ||
      std::string_view(argv[1]) == "-h") {
    PrintTopLevelUsage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string_view name = argv[1];
  const Command* command = nullptr;
  for (const Command* candidate : AllCommands()) {
    if (candidate->name == name) command = candidate;
  }
  if (command == nullptr) {
    std::fprintf(stderr, "muserve: unknown command '%s'\n\n", argv[1]);
    PrintTopLevelUsage(stderr);
    return 2;
  }

  std::vector<std::string> raw = {"muserve " + std::string(name)};
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fprintf(stdout, "%.*s", static_cast<int>(command->usage.size()), command->usage.data());
      return 0;
    }
    raw.emplace_back(arg);
  }
  std::vector<std::string> normalized = muserve::cli::NormalizeFlagNames(raw);
  std::vector<char*> cargv;
  for (std::string& arg : normalized) cargv.push_back(arg.data());
  if (!CheckFlagsBelongTo(*command, normalized)) return 2;
  absl::SetProgramUsageMessage(std::string(command->usage));
  std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(cargv.size()), cargv.data());
  std::vector<std::string_view> args(positional.begin() + 1, positional.end());
  return command->run(args);
}
