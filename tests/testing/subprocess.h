// Runs a program to completion and captures its exit code and output, for
// tests that exercise the `muserve` executable end to end.
#pragma once

#include <string>
#include <vector>

namespace muserve::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when the process could not run or died of a signal
  std::string stdout_text;
  std::string stderr_text;
};

// Runs argv[0] with arguments argv[1..] (no shell), waiting for it to exit.
ProcessResult RunProcess(const std::vector<std::string>& argv);

}  // namespace muserve::testing
