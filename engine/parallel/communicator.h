// Communicator: the collectives tensor parallelism needs, seen from one rank.
// Implementations: InProcessCommunicator (engine/parallel, ranks are threads
// of one process, buffers in host memory) and NcclCommunicator (cuda/, one
// GPU per rank, buffers in that GPU's memory).
//
// Contract shared by every implementation:
//  - every rank of the group makes the same sequence of calls with the same
//    sizes (a collective blocks until all ranks have entered it);
//  - results are deterministic: the same inputs give the same bits on every
//    run of a given group, whatever the ranks' arrival order. The order of
//    AllReduceSum's additions is fixed per implementation, not across them:
//    the in-process one adds in rank order (rank 0 + rank 1 + ...); NCCL's
//    order is fixed by its algorithm, protocol and topology (pin them: see
//    NcclCommunicator) and is not rank order;
//  - one rank's communicator is used by one thread at a time.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/status.h"

namespace muserve {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int32_t rank() const = 0;
  virtual int32_t size() const = 0;

  // buffer[i] = sum over ranks r of rank r's buffer[i], added in the
  // implementation's fixed order (see above).
  virtual absl::Status AllReduceSum(std::span<float> buffer) = 0;
  // out = [rank 0's in, rank 1's in, ...]; out.size() == size() * in.size().
  virtual absl::Status AllGather(std::span<const float> in, std::span<float> out) = 0;
  // On root: out = [rank 0's in, rank 1's in, ...], out.size() == size() *
  // in.size(). The other ranks' `out` is not used (pass an empty span).
  virtual absl::Status Gather(std::span<const float> in, std::span<float> out, int32_t root) = 0;
  // Every rank's buffer becomes root's buffer.
  virtual absl::Status Broadcast(std::span<float> buffer, int32_t root) = 0;
};

}  // namespace muserve
