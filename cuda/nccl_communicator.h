// NcclCommunicator: a Communicator over NCCL, one GPU per rank, for the CUDA
// backend's tensor parallelism. Buffers are device memory of the rank's GPU.
//
// Ordering: each collective is enqueued on stream() -- the caller's stream,
// given with set_stream(), which produces and consumes the buffers -- so it
// runs after the work enqueued there before it and before the work enqueued
// after it, and the call returns without waiting on the host. "The result is
// in place" (Communicator) therefore holds in that stream's order; a host
// that reads a buffer first calls Synchronize(). Without set_stream() the
// communicator uses a non-blocking stream of its own, which the caller must
// then order its own work against.
//
// Failures: the communicator is non-blocking (ncclConfig_t.blocking = 0).
// Forming the group, Synchronize() and the destructor poll NCCL's state
// against a deadline (`timeout`); on an NCCL error or when the deadline
// passes (a rank died or never joined), the communicator is aborted
// (ncclCommAbort) and this and every later call fail: the whole group is
// down and must be rebuilt, on every rank. A bad argument (a wrong output
// size, a root outside the group) fails only the rank that passed it, before
// anything is enqueued; its peers' collective then never completes, and they
// fail at their deadline.
//
// Two ways to form a group:
//  - one process driving N GPUs of one host, one thread per GPU:
//    CreateGroup(devices) (ncclCommInitRankConfig for every device inside
//    one ncclGroupStart/End);
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
#include <chrono>
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
  // How long forming the group, one Synchronize() or the teardown may take
  // before the communicator is aborted.
  static constexpr std::chrono::milliseconds kDefaultTimeout{std::chrono::minutes(5)};

  static absl::StatusOr<UniqueId> NewUniqueId();
  // Rank r on devices[r], all in this process (devices non-empty, distinct).
  static absl::StatusOr<std::vector<std::unique_ptr<NcclCommunicator>>> CreateGroup(
      std::span<const int> devices, std::chrono::milliseconds timeout = kDefaultTimeout);
  // This process's rank of a group of `size` processes sharing `id`; waits
  // until every rank has joined, DeadlineExceeded after `timeout`.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> CreateRank(
      const UniqueId& id, int32_t rank, int32_t size, int device,
      std::chrono::milliseconds timeout = kDefaultTimeout);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int32_t rank() const override { return rank_; }
  int32_t size() const override { return size_; }
  int device() const { return device_; }
  // The stream collectives are enqueued on (see the top of this file). The
  // caller's stream must belong to device() and outlive its use here.
  cudaStream_t stream() const { return stream_; }
  void set_stream(cudaStream_t stream) { stream_ = stream; }

  // Spans point into this rank's device memory. Enqueued on stream(); they
  // return once enqueued, not once done.
  absl::Status AllReduceSum(std::span<float> buffer) override;
  absl::Status AllGather(std::span<const float> in, std::span<float> out) override;
  absl::Status Gather(std::span<const float> in, std::span<float> out, int32_t root) override;
  absl::Status Broadcast(std::span<float> buffer, int32_t root) override;

  // Waits on the host until everything enqueued on stream() so far,
  // collectives included, is done. Unavailable (an NCCL error) or
  // DeadlineExceeded (after the timeout: a peer is gone) abort the group.
  absl::Status Synchronize();

 private:
  // Takes ownership of `comm` and `own_stream` (collectives go there until
  // set_stream).
  NcclCommunicator(ncclComm_t comm, cudaStream_t own_stream, int device, int32_t rank, int32_t size,
                   std::chrono::milliseconds timeout);
  // OK unless the group was aborted; then makes device_ current on the
  // calling thread (rank threads may differ from the one that built it).
  absl::Status Usable();
  // Polls NCCL until the communicator's pending operation (init, an
  // enqueue, finalize) is no longer in progress; aborts on error or after
  // `deadline`.
  absl::Status Await(const char* what, std::chrono::steady_clock::time_point deadline);
  // The result of a non-blocking NCCL call: in progress is awaited.
  absl::Status Enqueued(ncclResult_t result, const char* call);
  // Aborts the communicator (once) and makes `status` every later call's.
  absl::Status Fail(absl::Status status);
  std::chrono::steady_clock::time_point Deadline() const;

  ncclComm_t comm_;
  cudaStream_t own_stream_;
  cudaStream_t stream_;
  const int device_;
  const int32_t rank_;
  const int32_t size_;
  const std::chrono::milliseconds timeout_;
  bool aborted_ = false;
  absl::Status error_;  // why the communicator was aborted
};

}  // namespace muserve::cuda
