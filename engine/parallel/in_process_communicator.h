// InProcessCommunicator: a Communicator whose ranks are threads of this
// process (the CPU backend's tensor parallelism, and tests of the sharding
// math on any machine). Buffers are host memory.
//
// A collective publishes every rank's buffer pointer, waits at a barrier,
// then reads the other ranks' buffers directly (no copies through a shared
// staging area). AllReduceSum splits the elements into one chunk per rank;
// rank r sums chunk r over all ranks in rank order and writes it into its own
// buffer, then every rank copies the other chunks from their owners. Each
// element's sum is therefore b0 + b1 + ... in that order, whoever computes it.
#pragma once

#include <barrier>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/parallel/communicator.h"

namespace muserve {

// The state shared by the ranks of one group; created by
// MakeInProcessCommunicators and kept alive by its communicators.
class InProcessGroup;

class InProcessCommunicator final : public Communicator {
 public:
  InProcessCommunicator(std::shared_ptr<InProcessGroup> group, int32_t rank);
  ~InProcessCommunicator() override;

  int32_t rank() const override { return rank_; }
  int32_t size() const override;

  // Arguments are checked: a bad argument on one rank (a wrong output size, a
  // root outside the group, a size differing from rank 0's) makes every rank
  // return InvalidArgument naming that rank, after the collective's barriers
  // (so that no rank blocks), with no buffer touched.
  absl::Status AllReduceSum(std::span<float> buffer) override;
  absl::Status AllGather(std::span<const float> in, std::span<float> out) override;
  absl::Status Gather(std::span<const float> in, std::span<float> out, int32_t root) override;
  absl::Status Broadcast(std::span<float> buffer, int32_t root) override;

 private:
  // Shared by every rank's communicator: the group lives until the last one
  // is destroyed, whichever rank thread that is.
  std::shared_ptr<InProcessGroup> group_;
  const int32_t rank_;
};

// The `size` communicators of one group, rank r at index r (size >= 1).
std::vector<std::unique_ptr<InProcessCommunicator>> MakeInProcessCommunicators(int32_t size);

}  // namespace muserve
