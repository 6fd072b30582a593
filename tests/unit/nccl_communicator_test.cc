// NcclCommunicator on real GPUs (label `gpu`): the collectives of a group of
// one rank per visible device, driven by one thread per rank as the CUDA
// backend will drive them. Skipped where no CUDA device is visible.
#include "cuda/nccl_communicator.h"

#include <cuda_runtime_api.h>

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

// A device buffer of floats on `device`, copied from / to host vectors.
class DeviceBuffer {
 public:
  DeviceBuffer(int device, const std::vector<float>& host) : size_(host.size()) {
    EXPECT_EQ(cudaSetDevice(device), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&data_, size_ * sizeof(float)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(data_, host.data(), size_ * sizeof(float), cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(data_); }
  std::span<float> span() { return {data_, size_}; }
  std::vector<float> ToHost() const {
    std::vector<float> host(size_);
    EXPECT_EQ(cudaMemcpy(host.data(), data_, size_ * sizeof(float), cudaMemcpyDeviceToHost),
              cudaSuccess);
    return host;
  }

 private:
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
  std::vector<std::unique_ptr<NcclCommunicator>> group_;
};

TEST_F(NcclCommunicatorTest, AllReduceSumsEveryRanksBuffer) {
  const int n = static_cast<int>(group_.size());
  OnEveryRank([&](int r) {
    std::vector<float> host(1000);
    for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(i * (r + 1));
    DeviceBuffer buffer(devices_[r], host);
    ASSERT_TRUE(group_[r]->AllReduceSum(buffer.span()).ok());
    const std::vector<float> result = buffer.ToHost();
    const float factor = static_cast<float>(n * (n + 1) / 2);
    for (size_t i = 0; i < result.size(); ++i) ASSERT_EQ(result[i], i * factor) << i;
  });
}

TEST_F(NcclCommunicatorTest, AllGatherConcatenatesInRankOrder) {
  const int n = static_cast<int>(group_.size());
  OnEveryRank([&](int r) {
    DeviceBuffer in(devices_[r], {static_cast<float>(r), static_cast<float>(10 * r)});
    DeviceBuffer out(devices_[r], std::vector<float>(2 * n, -1.0f));
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
    DeviceBuffer buffer(devices_[r], std::vector<float>(7, static_cast<float>(r)));
    ASSERT_TRUE(group_[r]->Broadcast(buffer.span(), root).ok());
    EXPECT_EQ(buffer.ToHost(), std::vector<float>(7, static_cast<float>(root)));
  });
}

TEST_F(NcclCommunicatorTest, BadArgumentsAreInvalidArgument) {
  DeviceBuffer in(devices_[0], {1.0f});
  DeviceBuffer out(devices_[0], std::vector<float>(group_.size() + 1));
  EXPECT_EQ(group_[0]->AllGather(in.span(), out.span()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(group_[0]->Broadcast(in.span(), static_cast<int>(group_.size())).code(),
            absl::StatusCode::kInvalidArgument);
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
