#include "bench/loadgen/progress_bar.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>

namespace muserve::loadgen {

namespace {
constexpr int kWidth = 30;
}  // namespace

ProgressBar::ProgressBar(std::string label, int64_t total, const PhaseProgress* progress)
    : label_(std::move(label)),
      total_(std::max<int64_t>(1, total)),
      progress_(progress),
      start_(std::chrono::steady_clock::now()) {
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      Draw();
      stop_cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_; });
    }
  });
}

ProgressBar::~ProgressBar() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
}

void ProgressBar::Draw() {
  const int64_t done = progress_->succeeded + progress_->failed;
  const double elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (total_ == std::numeric_limits<int64_t>::max()) {  // bounded by time only
    std::fprintf(stderr, "\r\033[K%s %lld done, %lld sent, %lld failed, %.1f s", label_.c_str(),
                 static_cast<long long>(done), static_cast<long long>(progress_->sent.load()),
                 static_cast<long long>(progress_->failed.load()), elapsed_s);
    std::fflush(stderr);
    return;
  }
  const int filled = static_cast<int>(std::min<int64_t>(kWidth, done * kWidth / total_));
  std::fprintf(stderr, "\r\033[K%s [%s%s] %lld/%lld done, %lld sent, %lld failed, %.1f s",
               label_.c_str(), std::string(filled, '#').c_str(),
               std::string(kWidth - filled, '.').c_str(), static_cast<long long>(done),
               static_cast<long long>(total_), static_cast<long long>(progress_->sent.load()),
               static_cast<long long>(progress_->failed.load()), elapsed_s);
  std::fflush(stderr);
}

}  // namespace muserve::loadgen
