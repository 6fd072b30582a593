#include "cuda/nccl_communicator.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cuda/nccl_status.h"

namespace muserve::cuda {
namespace {

absl::StatusOr<cudaStream_t> NewStream(int device) {
  MUSERVE_GPU_RETURN_IF_ERROR(cudaSetDevice(device));
  cudaStream_t stream = nullptr;
  MUSERVE_GPU_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return stream;
}

}  // namespace

absl::StatusOr<NcclCommunicator::UniqueId> NcclCommunicator::NewUniqueId() {
  ncclUniqueId id;
  MUSERVE_GPU_RETURN_IF_ERROR(ncclGetUniqueId(&id));
  UniqueId bytes;
  std::memcpy(bytes.data(), id.internal, bytes.size());
  return bytes;
}

absl::StatusOr<std::vector<std::unique_ptr<NcclCommunicator>>> NcclCommunicator::CreateGroup(
    std::span<const int> devices) {
  if (devices.empty()) return absl::InvalidArgumentError("an NCCL group needs a device");
  const int n = static_cast<int>(devices.size());
  std::vector<ncclComm_t> comms(devices.size(), nullptr);
  MUSERVE_GPU_RETURN_IF_ERROR(ncclCommInitAll(comms.data(), n, devices.data()));
  std::vector<std::unique_ptr<NcclCommunicator>> group;
  absl::Status status;
  for (int r = 0; r < n; ++r) {
    absl::StatusOr<cudaStream_t> stream =
        status.ok() ? NewStream(devices[r]) : absl::StatusOr<cudaStream_t>(status);
    if (!stream.ok()) {
      status = stream.status();
      ncclCommDestroy(comms[r]);  // ranks already wrapped are destroyed with `group`
      continue;
    }
    group.emplace_back(new NcclCommunicator(comms[r], *stream, devices[r], r, n));
  }
  if (!status.ok()) return status;
  return group;
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::CreateRank(const UniqueId& id,
                                                                               int32_t rank,
                                                                               int32_t size,
                                                                               int device) {
  if (size < 1 || rank < 0 || rank >= size)
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL rank ", rank, " is outside a group of ", size));
  absl::StatusOr<cudaStream_t> stream = NewStream(device);
  if (!stream.ok()) return stream.status();
  ncclUniqueId nccl_id;
  std::memcpy(nccl_id.internal, id.data(), id.size());
  ncclComm_t comm = nullptr;
  if (absl::Status s = ToStatus(ncclCommInitRank(&comm, size, nccl_id, rank), "ncclCommInitRank");
      !s.ok()) {
    cudaStreamDestroy(*stream);
    return s;
  }
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(comm, *stream, device, rank, size));
}

NcclCommunicator::NcclCommunicator(ncclComm_t comm, cudaStream_t stream, int device, int32_t rank,
                                   int32_t size)
    : comm_(comm), stream_(stream), device_(device), rank_(rank), size_(size) {}

NcclCommunicator::~NcclCommunicator() {
  // Errors cannot be reported from here; the process is shutting the group
  // down either way.
  cudaSetDevice(device_);
  ncclCommDestroy(comm_);
  cudaStreamDestroy(stream_);
}

absl::Status NcclCommunicator::UseDevice() const {
  MUSERVE_GPU_RETURN_IF_ERROR(cudaSetDevice(device_));
  return absl::OkStatus();
}

absl::Status NcclCommunicator::Wait() const {
  MUSERVE_GPU_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return absl::OkStatus();
}

absl::Status NcclCommunicator::AllReduceSum(std::span<float> buffer) {
  if (absl::Status s = UseDevice(); !s.ok()) return s;
  MUSERVE_GPU_RETURN_IF_ERROR(ncclAllReduce(buffer.data(), buffer.data(), buffer.size(), ncclFloat,
                                            ncclSum, comm_, stream_));
  return Wait();
}

absl::Status NcclCommunicator::AllGather(std::span<const float> in, std::span<float> out) {
  if (out.size() != in.size() * static_cast<size_t>(size_))
    return absl::InvalidArgumentError(absl::StrCat(
        "all-gather: output holds ", out.size(), " elements, expected ", size_, " x ", in.size()));
  if (absl::Status s = UseDevice(); !s.ok()) return s;
  MUSERVE_GPU_RETURN_IF_ERROR(
      ncclAllGather(in.data(), out.data(), in.size(), ncclFloat, comm_, stream_));
  return Wait();
}

absl::Status NcclCommunicator::Broadcast(std::span<float> buffer, int32_t root) {
  if (root < 0 || root >= size_)
    return absl::InvalidArgumentError(
        absl::StrCat("broadcast: root ", root, " is not a rank of a group of ", size_));
  if (absl::Status s = UseDevice(); !s.ok()) return s;
  MUSERVE_GPU_RETURN_IF_ERROR(
      ncclBroadcast(buffer.data(), buffer.data(), buffer.size(), ncclFloat, root, comm_, stream_));
  return Wait();
}

}  // namespace muserve::cuda
