// A one-line progress bar on stderr while a phase runs, redrawn a few times
// a second from its own thread: requests sent, succeeded and failed, and the
// elapsed time. The caller decides whether to show one (a terminal, not CI).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "bench/loadgen/driver.h"

namespace muserve::loadgen {

class ProgressBar {
 public:
  // `progress` is not owned and outlives the bar. `total` is the phase's
  // request bound (int64 max: none).
  ProgressBar(std::string label, int64_t total, const PhaseProgress* progress);
  ~ProgressBar();  // stops drawing and clears the line
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

 private:
  void Draw();

  const std::string label_;
  const int64_t total_;
  const PhaseProgress* progress_;
  const std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace muserve::loadgen
