#include "engine/parallel/in_process_communicator.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/api/check.h"

namespace muserve {

// What each rank publishes on entering a collective. Rank r writes slot r
// before the collective's first barrier and nobody writes it again before the
// last barrier, so every rank reads all slots race-free in between.
struct Published {
  float* data = nullptr;
  const float* input = nullptr;  // AllGather's input
  size_t count = 0;
  int32_t root = 0;
  // Non-empty when this rank's own arguments are invalid. The rank still
  // passes every barrier of the collective, so the others see the error and
  // return it too instead of waiting for it forever.
  std::string error;
};

class InProcessGroup {
 public:
  explicit InProcessGroup(int32_t size) : size_(size), barrier_(size), slots_(size) {}

  int32_t size() const { return size_; }
  void Wait() { barrier_.arrive_and_wait(); }
  Published& slot(int32_t rank) { return slots_[static_cast<size_t>(rank)]; }

  // Whether every rank published the same count (and root); read between
  // barriers, so every rank reaches the same answer.
  absl::Status CheckAgreement(const char* op) {
    for (int32_t r = 0; r < size_; ++r) {
      if (!slots_[r].error.empty())
        return absl::InvalidArgumentError(absl::StrCat("rank ", r, ": ", slots_[r].error));
    }
    for (int32_t r = 1; r < size_; ++r) {
      if (slots_[r].count != slots_[0].count)
        return absl::InvalidArgumentError(absl::StrCat(
            op, ": rank ", r, " passed ", slots_[r].count, " elements, rank 0 ", slots_[0].count));
      if (slots_[r].root != slots_[0].root)
        return absl::InvalidArgumentError(absl::StrCat(
            op, ": rank ", r, " names root ", slots_[r].root, ", rank 0 names ", slots_[0].root));
    }
    return absl::OkStatus();
  }

 private:
  const int32_t size_;
  std::barrier<> barrier_;
  std::vector<Published> slots_;
};

namespace {

// [begin, end) of chunk `c` of n elements split over `parts` ranks.
std::pair<size_t, size_t> Chunk(size_t n, int32_t c, int32_t parts) {
  return {n * static_cast<size_t>(c) / static_cast<size_t>(parts),
          n * static_cast<size_t>(c + 1) / static_cast<size_t>(parts)};
}

}  // namespace

InProcessCommunicator::InProcessCommunicator(std::shared_ptr<InProcessGroup> group, int32_t rank)
    : group_(std::move(group)), rank_(rank) {
  MUSERVE_CHECK(rank_ >= 0 && rank_ < group_->size());
}

InProcessCommunicator::~InProcessCommunicator() = default;

int32_t InProcessCommunicator::size() const { return group_->size(); }

absl::Status InProcessCommunicator::AllReduceSum(std::span<float> buffer) {
  const int32_t n = size();
  if (n == 1) return absl::OkStatus();
  group_->slot(rank_) = {buffer.data(), nullptr, buffer.size(), 0, {}};
  group_->Wait();  // A: every buffer is published
  absl::Status agreement = group_->CheckAgreement("all-reduce");
  if (agreement.ok()) {
    // Reduce my chunk over all ranks, in rank order, into my own buffer.
    // Only I read or write chunk `rank_` of any buffer until barrier B.
    // Tile by tile through a local accumulator, so that the inner loops
    // vectorise (my own buffer is an input and the output).
    const auto [begin, end] = Chunk(buffer.size(), rank_, n);
    constexpr size_t kTile = 512;
    float sum[kTile];
    for (size_t t0 = begin; t0 < end; t0 += kTile) {
      const size_t len = std::min(kTile, end - t0);
      const float* first = group_->slot(0).data + t0;
      for (size_t j = 0; j < len; ++j) sum[j] = first[j];
      for (int32_t r = 1; r < n; ++r) {
        const float* other = group_->slot(r).data + t0;
        for (size_t j = 0; j < len; ++j) sum[j] += other[j];
      }
      std::copy_n(sum, len, buffer.data() + t0);
    }
  }
  group_->Wait();  // B: every chunk is reduced in its owner's buffer
  if (agreement.ok()) {
    // Chunk c is final in rank c's buffer, which rank c no longer writes there.
    for (int32_t c = 0; c < n; ++c) {
      if (c == rank_) continue;
      const auto [begin, end] = Chunk(buffer.size(), c, n);
      std::copy(group_->slot(c).data + begin, group_->slot(c).data + end, buffer.data() + begin);
    }
  }
  group_->Wait();  // C: nobody reads my buffer any more
  return agreement;
}

absl::Status InProcessCommunicator::AllGather(std::span<const float> in, std::span<float> out) {
  const int32_t n = size();
  std::string error;
  if (out.size() != in.size() * static_cast<size_t>(n))
    error = absl::StrCat("all-gather: output holds ", out.size(), " elements, expected ", n, " x ",
                         in.size());
  if (n == 1) {
    if (!error.empty()) return absl::InvalidArgumentError(absl::StrCat("rank 0: ", error));
    std::copy(in.begin(), in.end(), out.begin());
    return absl::OkStatus();
  }
  group_->slot(rank_) = {nullptr, in.data(), in.size(), 0, std::move(error)};
  group_->Wait();  // A: every input is published
  absl::Status agreement = group_->CheckAgreement("all-gather");
  if (agreement.ok()) {
    for (int32_t r = 0; r < n; ++r)
      std::copy_n(group_->slot(r).input, in.size(), out.data() + in.size() * r);
  }
  group_->Wait();  // B: nobody reads my input any more
  return agreement;
}

absl::Status InProcessCommunicator::Gather(std::span<const float> in, std::span<float> out,
                                           int32_t root) {
  const int32_t n = size();
  std::string error;
  if (root < 0 || root >= n)
    error = absl::StrCat("gather: root ", root, " is not a rank of a group of ", n);
  else if (rank_ == root && out.size() != in.size() * static_cast<size_t>(n))
    error = absl::StrCat("gather: the root's output holds ", out.size(), " elements, expected ", n,
                         " x ", in.size());
  if (n == 1) {
    if (!error.empty()) return absl::InvalidArgumentError(absl::StrCat("rank 0: ", error));
    std::copy(in.begin(), in.end(), out.begin());
    return absl::OkStatus();
  }
  group_->slot(rank_) = {nullptr, in.data(), in.size(), root, std::move(error)};
  group_->Wait();  // A: every input is published
  absl::Status agreement = group_->CheckAgreement("gather");
  if (agreement.ok() && rank_ == root) {
    for (int32_t r = 0; r < n; ++r)
      std::copy_n(group_->slot(r).input, in.size(), out.data() + in.size() * r);
  }
  group_->Wait();  // B: the root no longer reads the inputs
  return agreement;
}

absl::Status InProcessCommunicator::Broadcast(std::span<float> buffer, int32_t root) {
  const int32_t n = size();
  std::string error;
  if (root < 0 || root >= n)
    error = absl::StrCat("broadcast: root ", root, " is not a rank of a group of ", n);
  if (n == 1) {
    if (!error.empty()) return absl::InvalidArgumentError(absl::StrCat("rank 0: ", error));
    return absl::OkStatus();
  }
  group_->slot(rank_) = {buffer.data(), nullptr, buffer.size(), root, std::move(error)};
  group_->Wait();  // A: every buffer is published
  absl::Status agreement = group_->CheckAgreement("broadcast");
  if (agreement.ok() && rank_ != root)
    std::copy_n(group_->slot(root).data, buffer.size(), buffer.data());
  group_->Wait();  // B: nobody reads the root's buffer any more
  return agreement;
}

std::vector<std::unique_ptr<InProcessCommunicator>> MakeInProcessCommunicators(int32_t size) {
  MUSERVE_CHECK(size >= 1);
  auto group = std::make_shared<InProcessGroup>(size);
  std::vector<std::unique_ptr<InProcessCommunicator>> ranks;
  for (int32_t r = 0; r < size; ++r)
    ranks.push_back(std::make_unique<InProcessCommunicator>(group, r));
  return ranks;
}

}  // namespace muserve
