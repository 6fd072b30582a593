// Runs a program to completion and captures its exit code and output, for
// tests that exercise the `muserve` executable end to end.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
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

class TempDir;

// A program running in the background (a server under test), its stdout and
// stderr going to files the test can poll. Killed (SIGKILL) on destruction
// if still running.
class BackgroundProcess {
 public:
  explicit BackgroundProcess(const std::vector<std::string>& argv);
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  bool started() const { return pid_ > 0; }
  std::string StderrText() const;
  // Polls stderr until it contains `text`; false on timeout or exit.
  bool WaitForStderr(const std::string& text, std::chrono::milliseconds timeout);
  void Signal(int signal);
  // The exit code once it exits within `timeout` (-1 when killed by a
  // signal); nullopt when it is still running.
  std::optional<int> Wait(std::chrono::milliseconds timeout);

 private:
  std::unique_ptr<TempDir> dir_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

}  // namespace muserve::testing
