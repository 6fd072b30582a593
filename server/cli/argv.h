// Command-line preprocessing shared by main and its tests.
#pragma once

#include <string>
#include <vector>

namespace muserve::cli {

// absl flag names cannot contain '-', but users write `--max-tokens`: rewrite
// the name part of every `--long-flag[=value]` argument to underscores. The
// value, positional arguments and everything after a bare `--` are untouched.
std::vector<std::string> NormalizeFlagNames(const std::vector<std::string>& args);

}  // namespace muserve::cli
