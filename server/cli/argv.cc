#include "server/cli/argv.h"

#include <algorithm>

namespace muserve::cli {

std::vector<std::string> NormalizeFlagNames(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  out.reserve(args.size());
  bool after_terminator = false;
  for (const std::string& arg : args) {
    if (after_terminator || arg.size() < 3 || arg[0] != '-' || arg[1] != '-') {
      if (arg == "--") after_terminator = true;
      out.push_back(arg);
      continue;
    }
    std::string normalized = arg;
    const size_t name_end = std::min(normalized.find('='), normalized.size());
    std::replace(normalized.begin() + 2, normalized.begin() + name_end, '-', '_');
    out.push_back(std::move(normalized));
  }
  return out;
}

}  // namespace muserve::cli
