// NcclCommunicator on real GPUs (label `gpu`): the collectives of a group of
// one rank per visible device, driven by one thread per rank as the CUDA
// backend will drive them: each rank's buffers are filled and read on the
// rank's own stream, which the collectives are enqueued on (no host wait
// between producer, collective and consumer). Skipped where no CUDA device is
// visible.
#include "cuda/nccl_communicator.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <numeric>
#include <span>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace muserve::cuda {
namespace {

int VisibleDevices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

// A device buffer of floats on `device`, filled from a host vector by a copy
// enqueued on `stream` (ordered before the collectives enqueued there after
// it, with no host wait), and read back on the same stream.
class DeviceBuffer {
 public:
  DeviceBuffer(int device, cudaStream_t stream, const std::vector<float>& host)
      : stream_(stream), size_(host.size()) {
    EXPECT_EQ(cudaSetDevice(device), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&data_, std::max<size_t>(size_, 1) * sizeof(float)), cudaSuccess);
    EXPECT_EQ(
        cudaMemcpyAsync(data_, host.data(), size_ * sizeof(float), cudaMemcpyHostToDevice, stream_),
        cudaSuccess);
  }
  ~DeviceBuffer() {
    cudaStreamSynchronize(stream_);
    cudaFree(data_);
  }
  std::span<float> span() { return {data_, size_}; }
  // Enqueues the copy after the work on the stream, then waits for it.
  std::vector<float> ToHost() const {
    std::vector<float> host(size_);
    EXPECT_EQ(
        cudaMemcpyAsync(host.data(), data_, size_ * sizeof(float), cudaMemcpyDeviceToHost, stream_),
        cudaSuccess);
    EXPECT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    return host;
  }

 private:
  cudaStream_t stream_;
  float* data_ = nullptr;
  size_t size_;
};

class NcclCommunicatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const int devices = VisibleDevices();
    if (devices == 0) GTEST_SKIP() << "no CUDA device";
    devices_.resize(devices);
    std::iota(devices_.begin(), devices_.end(), 0);
    auto group = NcclCommunicator::CreateGroup(devices_);
    ASSERT_TRUE(group.ok()) << group.status();
    group_ = std::move(*group);
    // Each rank's "compute stream", as the CUDA backend's would be.
    for (int d : devices_) {
      ASSERT_EQ(cudaSetDevice(d), cudaSuccess);
      cudaStream_t stream = nullptr;
      ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
      streams_.push_back(stream);
      group_[streams_.size() - 1]->set_stream(stream);
    }
  }

  void TearDown() override {
    group_.clear();
    for (cudaStream_t s : streams_) cudaStreamDestroy(s);
  }

  // Runs body(rank) on one thread per rank.
  template <class Body>
  void OnEveryRank(Body body) {
    std::vector<std::thread> threads;
    for (int r = 0; r < static_cast<int>(group_.size()); ++r)
      threads.emplace_back([&, r] { body(r); });
    for (std::thread& t : threads) t.join();
  }

  std::vector<int> devices_;
  std::vector<cudaStream_t> streams_;
  std::vector<std::unique_ptr<NcclCommunicator>> group_;
};

TEST_F(NcclCommunicatorTest, AllReduceSumsEveryRanksBuffer) {
  const int n = static_cast<int>(group_.size());
  OnEveryRank([&](int r) {
    std::vector<float> host(1000);
    for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(i * (r + 1));
    DeviceBuffer buffer(devices_[r], streams_[r], host);
    ASSERT_TRUE(group_[r]->AllReduceSum(buffer.span()).ok());
    ASSERT_TRUE(group_[r]->Synchronize().ok());
    const std::vector<float> result = buffer.ToHost();
    const float factor = static_cast<float>(n * (n + 1) / 2);
    for (size_t i = 0; i < result.size(); ++i) ASSERT_EQ(result[i], i * factor) << i;
  });
}

TEST_F(NcclCommunicatorTest, ACollectiveRunsAfterTheWorkEnqueuedBeforeItOnTheStream) {
  // The producer (a memset standing in for a kernel) is only enqueued when
  // the all-reduce is: the sum must see its zeros, not the initial values.
  OnEveryRank([&](int r) {
    DeviceBuffer buffer(devices_[r], streams_[r], std::vector<float>(1 << 20, 1.0f));
    ASSERT_EQ(cudaMemsetAsync(buffer.span().data(), 0, buffer.span().size_bytes(), streams_[r]),
              cudaSuccess);
    ASSERT_TRUE(group_[r]->AllReduceSum(buffer.span()).ok());
    EXPECT_EQ(buffer.ToHost(), std::vector<float>(1 << 20, 0.0f));
  });
}

TEST_F(NcclCommunicatorTest, GatherConcatenatesInRankOrderOnTheRoot) {
  const int n = static_cast<int>(group_.size());
  OnEveryRank([&](int r) {
    DeviceBuffer in(devices_[r], streams_[r], {static_cast<float>(r), static_cast<float>(10 * r)});
    DeviceBuffer out(devices_[r], streams_[r], std::vector<float>(r == 0 ? 2 * n : 0, -1.0f));
    ASSERT_TRUE(group_[r]->Gather(in.span(), out.span(), 0).ok());
    ASSERT_TRUE(group_[r]->Synchronize().ok());
    if (r != 0) return;
    const std::vector<float> result = out.ToHost();
    for (int k = 0; k < n; ++k) {
      EXPECT_EQ(result[2 * k], static_cast<float>(k));
      EXPECT_EQ(result[2 * k + 1], static_cast<float>(10 * k));
    }
  });
}

TEST_F(NcclCommunicatorTest, AllGatherConcatenatesInRankOrder) {
  const int n = static_cast<int>(group_.size());
  OnEveryRank([&](int r) {
    DeviceBuffer in(devices_[r], streams_[r], {static_cast<float>(r), static_cast<float>(10 * r)});
    DeviceBuffer out(devices_[r], streams_[r], std::vector<float>(2 * n, -1.0f));
    ASSERT_TRUE(group_[r]->AllGather(in.span(), out.span()).ok());
    const std::vector<float> result = out.ToHost();
    for (int k = 0; k < n; ++k) {
      EXPECT_EQ(result[2 * k], static_cast<float>(k));
      EXPECT_EQ(result[2 * k + 1], static_cast<float>(10 * k));
    }
  });
}

TEST_F(NcclCommunicatorTest, BroadcastCopiesTheLastRanksBuffer) {
  const int root = static_cast<int>(group_.size()) - 1;
  OnEveryRank([&](int r) {
    DeviceBuffer buffer(devices_[r], streams_[r], std::vector<float>(7, static_cast<float>(r)));
    ASSERT_TRUE(group_[r]->Broadcast(buffer.span(), root).ok());
    EXPECT_EQ(buffer.ToHost(), std::vector<float>(7, static_cast<float>(root)));
  });
}

TEST_F(NcclCommunicatorTest, BadArgumentsAreInvalidArgument) {
  DeviceBuffer in(devices_[0], streams_[0], {1.0f});
  DeviceBuffer out(devices_[0], streams_[0], std::vector<float>(group_.size() + 1));
  EXPECT_EQ(group_[0]->AllGather(in.span(), out.span()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(group_[0]->Broadcast(in.span(), static_cast<int>(group_.size())).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(NcclTimeoutTest, ARankWhosePeerNeverJoinsFailsAtItsDeadlineInsteadOfHanging) {
  if (VisibleDevices() == 0) GTEST_SKIP() << "no CUDA device";
  auto id = NcclCommunicator::NewUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  // Rank 1 of 2 never comes.
  const auto start = std::chrono::steady_clock::now();
  auto rank = NcclCommunicator::CreateRank(*id, 0, 2, 0, std::chrono::seconds(3));
  EXPECT_EQ(rank.status().code(), absl::StatusCode::kDeadlineExceeded) << rank.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
}

TEST(NcclUniqueIdTest, RankZeroCanMakeAnIdToShare) {
  if (VisibleDevices() == 0) GTEST_SKIP() << "no CUDA device";
  auto a = NcclCommunicator::NewUniqueId();
  auto b = NcclCommunicator::NewUniqueId();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(*a, *b);
}

}  // namespace
}  // namespace muserve::cuda
