#include "server/grpc/active_requests.h"

#include <utility>

namespace muserve::server {

bool ActiveRequests::Add(const std::string& id, std::shared_ptr<GenerateStream> stream,
                         bool* closed) {
  std::lock_guard lock(mutex_);
  *closed = closed_;
  if (closed_) return false;
  return streams_.emplace(id, std::move(stream)).second;
}

void ActiveRequests::Remove(const std::string& id, const GenerateStream* stream) {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(id);
  if (it == streams_.end() || it->second.get() != stream) return;
  closing_.emplace(stream, std::move(it->second));
  streams_.erase(it);
}

void ActiveRequests::Forget(const GenerateStream* stream) {
  std::lock_guard lock(mutex_);
  closing_.erase(stream);
  if (streams_.empty() && closing_.empty()) emptied_.notify_all();
}

void ActiveRequests::Close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
}

std::shared_ptr<GenerateStream> ActiveRequests::Find(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second;
}

size_t ActiveRequests::size() const {
  std::lock_guard lock(mutex_);
  return streams_.size() + closing_.size();
}

bool ActiveRequests::WaitUntilEmpty(std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock lock(mutex_);
  return emptied_.wait_until(lock, deadline,
                             [this] { return streams_.empty() && closing_.empty(); });
}

std::vector<std::shared_ptr<GenerateStream>> ActiveRequests::Snapshot() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<GenerateStream>> out;
  out.reserve(streams_.size() + closing_.size());
  for (const auto& [id, stream] : streams_) out.push_back(stream);
  for (const auto& [key, stream] : closing_) out.push_back(stream);
  return out;
}

}  // namespace muserve::server
