// NcclCommunicator: a Communicator over NCCL, one GPU per rank, for the CUDA
// backend's tensor parallelism. Buffers are device memory of the rank's GPU.
// Each call enqueues the collective on the communicator's own stream and
// waits for it, so that, as the Communicator contract says, the result is in
// place when the call returns.
//
// Two ways to form a group:
//  - one process driving N GPUs of one host, one thread per GPU:
//    CreateGroup(devices) (ncclCommInitAll);
//  - one process per rank, on one or several hosts: rank 0 calls
//    NewUniqueId(), hands its bytes to every other rank out of band (README,
//    "Tensor parallelism"), and each rank calls CreateRank(id, rank, size,
//    device).
//
// Determinism: NCCL fixes its reduction order by algorithm and topology
// rather than by rank; with the algorithm and protocol pinned (NCCL_ALGO,
// NCCL_PROTO), repeated runs on the same GPUs give identical bits.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/parallel/communicator.h"

namespace muserve::cuda {

class NcclCommunicator final : public Communicator {
 public:
  // The bytes rank 0 shares with the other ranks of a multi-process group.
  using UniqueId = std::array<char, NCCL_UNIQUE_ID_BYTES>;

  static absl::StatusOr<UniqueId> NewUniqueId();
  // Rank r on devices[r], all in this process (devices non-empty, distinct).
  static absl::StatusOr<std::vector<std::unique_ptr<NcclCommunicator>>> CreateGroup(
      std::span<const int> devices);
  // This process's rank of a group of `size` processes sharing `id`; blocks
  // until every rank has joined.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> CreateRank(const UniqueId& id,
                                                                      int32_t rank, int32_t size,
                                                                      int device);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int32_t rank() const override { return rank_; }
  int32_t size() const override { return size_; }
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }

  // Spans point into this rank's device memory.
  absl::Status AllReduceSum(std::span<float> buffer) override;
  absl::Status AllGather(std::span<const float> in, std::span<float> out) override;
  absl::Status Gather(std::span<const float> in, std::span<float> out, int32_t root) override;
  absl::Status Broadcast(std::span<float> buffer, int32_t root) override;

 private:
  // Takes ownership of `comm` and `stream`.
  NcclCommunicator(ncclComm_t comm, cudaStream_t stream, int device, int32_t rank, int32_t size);
  // Makes device_ current on the calling thread (rank threads may differ
  // from the one that built the group).
  absl::Status UseDevice() const;
  absl::Status Wait() const;

  ncclComm_t comm_;
  cudaStream_t stream_;
  const int device_;
  const int32_t rank_;
  const int32_t size_;
};

}  // namespace muserve::cuda
