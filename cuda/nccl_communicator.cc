#include "cuda/nccl_communicator.h"

#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cuda/nccl_status.h"

namespace muserve::cuda {
namespace {

using Clock = std::chrono::steady_clock;

// Between two polls of NCCL's or a stream's state.
constexpr std::chrono::microseconds kPollInterval{50};
// How long Synchronize spins before it sleeps between polls.
constexpr std::chrono::milliseconds kSpin{5};

absl::StatusOr<cudaStream_t> NewStream(int device) {
  MUSERVE_GPU_RETURN_IF_ERROR(cudaSetDevice(device));
  cudaStream_t stream = nullptr;
  MUSERVE_GPU_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return stream;
}

// The non-blocking configuration every communicator is made with, so that
// no NCCL call can block the host forever.
ncclConfig_t NonBlockingConfig() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  return config;
}

bool Started(ncclResult_t result) { return result == ncclSuccess || result == ncclInProgress; }

}  // namespace

absl::StatusOr<NcclCommunicator::UniqueId> NcclCommunicator::NewUniqueId() {
  ncclUniqueId id;
  MUSERVE_GPU_RETURN_IF_ERROR(ncclGetUniqueId(&id));
  UniqueId bytes;
  std::memcpy(bytes.data(), id.internal, bytes.size());
  return bytes;
}

absl::StatusOr<std::vector<std::unique_ptr<NcclCommunicator>>> NcclCommunicator::CreateGroup(
    std::span<const int> devices, std::chrono::milliseconds timeout) {
  if (devices.empty()) return absl::InvalidArgumentError("an NCCL group needs a device");
  const int n = static_cast<int>(devices.size());
  std::vector<cudaStream_t> streams;
  for (int device : devices) {
    absl::StatusOr<cudaStream_t> stream = NewStream(device);
    if (!stream.ok()) {
      for (cudaStream_t s : streams) cudaStreamDestroy(s);
      return stream.status();
    }
    streams.push_back(*stream);
  }
  ncclUniqueId id;
  ncclResult_t result = ncclGetUniqueId(&id);
  std::vector<ncclComm_t> comms(devices.size(), nullptr);
  if (result == ncclSuccess) {
    // One thread initialising several ranks: inside one group call, as NCCL
    // requires, each rank with the non-blocking configuration.
    ncclConfig_t config = NonBlockingConfig();
    result = ncclGroupStart();
    for (int r = 0; r < n && Started(result); ++r) {
      if (cudaSetDevice(devices[r]) != cudaSuccess) result = ncclUnhandledCudaError;
      if (Started(result)) result = ncclCommInitRankConfig(&comms[r], n, id, r, &config);
    }
    const ncclResult_t end = ncclGroupEnd();
    if (Started(result)) result = end;
  }
  // From here every communicator made is owned by `group`, whose destructor
  // aborts those that failed.
  std::vector<std::unique_ptr<NcclCommunicator>> group;
  for (int r = 0; r < n; ++r) {
    if (comms[r] == nullptr) {
      cudaStreamDestroy(streams[r]);
      continue;
    }
    group.emplace_back(new NcclCommunicator(comms[r], streams[r], devices[r], r, n, timeout));
  }
  if (!Started(result) || static_cast<int>(group.size()) != n) {
    for (auto& rank : group) rank->Fail(ToStatus(result, "ncclCommInitRankConfig")).IgnoreError();
    return ToStatus(Started(result) ? ncclInternalError : result, "ncclCommInitRankConfig");
  }
  const Clock::time_point deadline = Clock::now() + timeout;
  for (auto& rank : group) {
    if (absl::Status s = rank->Await("ncclCommInitRankConfig", deadline); !s.ok()) {
      for (auto& other : group) other->Fail(s).IgnoreError();
      return s;
    }
  }
  return group;
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::CreateRank(
    const UniqueId& id, int32_t rank, int32_t size, int device, std::chrono::milliseconds timeout) {
  if (size < 1 || rank < 0 || rank >= size)
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL rank ", rank, " is outside a group of ", size));
  absl::StatusOr<cudaStream_t> stream = NewStream(device);
  if (!stream.ok()) return stream.status();
  ncclUniqueId nccl_id;
  std::memcpy(nccl_id.internal, id.data(), id.size());
  ncclComm_t comm = nullptr;
  ncclConfig_t config = NonBlockingConfig();
  const ncclResult_t result = ncclCommInitRankConfig(&comm, size, nccl_id, rank, &config);
  if (comm == nullptr) {
    cudaStreamDestroy(*stream);
    return ToStatus(Started(result) ? ncclInternalError : result, "ncclCommInitRankConfig");
  }
  std::unique_ptr<NcclCommunicator> communicator(
      new NcclCommunicator(comm, *stream, device, rank, size, timeout));
  if (absl::Status s = communicator->Enqueued(result, "ncclCommInitRankConfig"); !s.ok()) {
    if (s.code() == absl::StatusCode::kDeadlineExceeded)
      return absl::DeadlineExceededError(absl::StrCat(
          "NCCL rank ", rank, " of ", size, ": not every rank joined within the timeout"));
    return s;
  }
  return communicator;
}

NcclCommunicator::NcclCommunicator(ncclComm_t comm, cudaStream_t own_stream, int device,
                                   int32_t rank, int32_t size, std::chrono::milliseconds timeout)
    : comm_(comm),
      own_stream_(own_stream),
      stream_(own_stream),
      device_(device),
      rank_(rank),
      size_(size),
      timeout_(timeout) {}

NcclCommunicator::~NcclCommunicator() {
  // Errors cannot be reported from here. A healthy communicator is finalized
  // (which flushes its operations) within the timeout, else aborted; an
  // aborted one is already released.
  cudaSetDevice(device_);
  if (!aborted_) {
    const ncclResult_t result = ncclCommFinalize(comm_);
    if (!Started(result))
      Fail(ToStatus(result, "ncclCommFinalize")).IgnoreError();
    else
      Await("ncclCommFinalize", Deadline()).IgnoreError();
    if (!aborted_) ncclCommDestroy(comm_);
  }
  cudaStreamDestroy(own_stream_);
}

std::chrono::steady_clock::time_point NcclCommunicator::Deadline() const {
  return Clock::now() + timeout_;
}

absl::Status NcclCommunicator::Fail(absl::Status status) {
  if (!aborted_) {
    ncclCommAbort(comm_);
    aborted_ = true;
    error_ = status;
  }
  return status;
}

absl::Status NcclCommunicator::Usable() {
  if (aborted_)
    return absl::UnavailableError(absl::StrCat(
        "NCCL rank ", rank_, " was aborted (the group must be rebuilt): ", error_.message()));
  MUSERVE_GPU_RETURN_IF_ERROR(cudaSetDevice(device_));
  return absl::OkStatus();
}

absl::Status NcclCommunicator::Await(const char* what, Clock::time_point deadline) {
  while (true) {
    ncclResult_t state = ncclSuccess;
    if (const ncclResult_t r = ncclCommGetAsyncError(comm_, &state); r != ncclSuccess)
      return Fail(ToStatus(r, "ncclCommGetAsyncError"));
    if (state == ncclSuccess) return absl::OkStatus();
    if (state != ncclInProgress) return Fail(ToStatus(state, what));
    if (Clock::now() > deadline)
      return Fail(absl::DeadlineExceededError(
          absl::StrCat(what, ": NCCL rank ", rank_, " timed out; aborted the communicator")));
    std::this_thread::sleep_for(kPollInterval);
  }
}

absl::Status NcclCommunicator::Enqueued(ncclResult_t result, const char* call) {
  if (!Started(result)) return Fail(ToStatus(result, call));
  return Await(call, Deadline());
}

absl::Status NcclCommunicator::Synchronize() {
  if (absl::Status s = Usable(); !s.ok()) return s;
  const Clock::time_point deadline = Deadline();
  // A step's work usually ends within a few milliseconds: spin on the
  // stream that long (a sleep costs 60-100 us per wake on every decode
  // step), then poll at kPollInterval.
  const Clock::time_point spin_until = Clock::now() + kSpin;
  while (true) {
    const cudaError_t e = cudaStreamQuery(stream_);
    if (e == cudaSuccess) return Await("ncclCommGetAsyncError", deadline);
    if (e != cudaErrorNotReady) return Fail(ToStatus(e, "cudaStreamQuery"));
    ncclResult_t state = ncclSuccess;
    if (const ncclResult_t r = ncclCommGetAsyncError(comm_, &state); r != ncclSuccess)
      return Fail(ToStatus(r, "ncclCommGetAsyncError"));
    if (state != ncclSuccess && state != ncclInProgress)
      return Fail(ToStatus(state, "NCCL collective"));
    if (Clock::now() > deadline)
      return Fail(absl::DeadlineExceededError(
          absl::StrCat("NCCL rank ", rank_,
                       ": the stream's collectives did not complete within the timeout "
                       "(a peer is gone?); aborted the communicator")));
    if (Clock::now() > spin_until) std::this_thread::sleep_for(kPollInterval);
  }
}

absl::Status NcclCommunicator::AllReduceSum(std::span<float> buffer) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  return Enqueued(ncclAllReduce(buffer.data(), buffer.data(), buffer.size(), ncclFloat, ncclSum,
                                comm_, stream_),
                  "ncclAllReduce");
}

absl::Status NcclCommunicator::AllGather(std::span<const float> in, std::span<float> out) {
  if (out.size() != in.size() * static_cast<size_t>(size_))
    return absl::InvalidArgumentError(absl::StrCat(
        "all-gather: output holds ", out.size(), " elements, expected ", size_, " x ", in.size()));
  if (absl::Status s = Usable(); !s.ok()) return s;
  return Enqueued(ncclAllGather(in.data(), out.data(), in.size(), ncclFloat, comm_, stream_),
                  "ncclAllGather");
}

absl::Status NcclCommunicator::Gather(std::span<const float> in, std::span<float> out,
                                      int32_t root) {
  if (root < 0 || root >= size_)
    return absl::InvalidArgumentError(
        absl::StrCat("gather: root ", root, " is not a rank of a group of ", size_));
  if (rank_ == root && out.size() != in.size() * static_cast<size_t>(size_))
    return absl::InvalidArgumentError(absl::StrCat("gather: the root's output holds ", out.size(),
                                                   " elements, expected ", size_, " x ",
                                                   in.size()));
  if (absl::Status s = Usable(); !s.ok()) return s;
  // NCCL has no gather: point-to-point sends to the root, in one group.
  ncclResult_t result = ncclGroupStart();
  if (Started(result)) result = ncclSend(in.data(), in.size(), ncclFloat, root, comm_, stream_);
  if (rank_ == root)
    for (int32_t r = 0; r < size_ && Started(result); ++r)
      result = ncclRecv(out.data() + in.size() * r, in.size(), ncclFloat, r, comm_, stream_);
  const ncclResult_t end = ncclGroupEnd();
  return Enqueued(Started(result) ? end : result, "ncclSend/ncclRecv");
}

absl::Status NcclCommunicator::Broadcast(std::span<float> buffer, int32_t root) {
  if (root < 0 || root >= size_)
    return absl::InvalidArgumentError(
        absl::StrCat("broadcast: root ", root, " is not a rank of a group of ", size_));
  if (absl::Status s = Usable(); !s.ok()) return s;
  return Enqueued(
      ncclBroadcast(buffer.data(), buffer.data(), buffer.size(), ncclFloat, root, comm_, stream_),
      "ncclBroadcast");
}

}  // namespace muserve::cuda
