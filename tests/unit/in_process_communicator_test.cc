// InProcessCommunicator: the collectives of a group of rank threads, and the
// rank-order summation that makes tensor-parallel results reproducible.
#include "engine/parallel/in_process_communicator.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace muserve {
namespace {

// Runs body(rank, communicator) on one thread per rank of a new group.
void RunGroup(int32_t size, const std::function<void(int32_t, Communicator&)>& body) {
  std::vector<std::unique_ptr<InProcessCommunicator>> group = MakeInProcessCommunicators(size);
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < size; ++r) threads.emplace_back([&, r] { body(r, *group[r]); });
  for (std::thread& t : threads) t.join();
}

// Like RunGroup, but gives up after `limit`: returns false if some rank is
// still blocked then (its threads are left detached, so that a regression
// fails the test instead of hanging the suite).
bool RunGroupWithin(int32_t size, std::chrono::seconds limit,
                    const std::function<void(int32_t, Communicator&)>& body) {
  struct State {
    std::vector<std::unique_ptr<InProcessCommunicator>> group;
    std::function<void(int32_t, Communicator&)> body;
    std::mutex mu;
    std::condition_variable done_cv;
    int32_t done = 0;
  };
  auto state = std::make_shared<State>();
  state->group = MakeInProcessCommunicators(size);
  state->body = body;
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < size; ++r) {
    threads.emplace_back([state, r] {
      state->body(r, *state->group[r]);
      std::lock_guard<std::mutex> lock(state->mu);
      ++state->done;
      state->done_cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(state->mu);
  const bool finished = state->done_cv.wait_for(lock, limit, [&] { return state->done == size; });
  lock.unlock();
  for (std::thread& t : threads) finished ? t.join() : t.detach();
  return finished;
}

TEST(InProcessCommunicatorTest, RanksKnowTheirRankAndSize) {
  std::vector<std::unique_ptr<InProcessCommunicator>> group = MakeInProcessCommunicators(3);
  ASSERT_EQ(group.size(), 3u);
  for (int32_t r = 0; r < 3; ++r) {
    EXPECT_EQ(group[r]->rank(), r);
    EXPECT_EQ(group[r]->size(), 3);
  }
}

TEST(InProcessCommunicatorTest, AllReduceSumsInRankOrderWhateverTheArrivalOrder) {
  // Float addition is not associative: 1e8 + 1 rounds back to 1e8, so rank
  // order gives (1e8 + 1) + -1e8 = 0 where another grouping would give 1.
  const std::vector<float> contributions = {1e8f, 1.0f, -1e8f, 0.5f};
  const float expected =
      ((contributions[0] + contributions[1]) + contributions[2]) + contributions[3];
  ASSERT_EQ(expected, 0.5f);
  for (int trial = 0; trial < 20; ++trial) {
    RunGroup(4, [&](int32_t rank, Communicator& comm) {
      // Ranks arrive in a different order each trial.
      std::this_thread::sleep_for(std::chrono::microseconds(((rank + trial) % 4) * 200));
      std::vector<float> buffer(37, contributions[rank]);  // 37: uneven chunks
      ASSERT_TRUE(comm.AllReduceSum(buffer).ok());
      for (float v : buffer) EXPECT_EQ(v, expected);
    });
  }
}

TEST(InProcessCommunicatorTest, AllReduceOfManyElementsAndRepeatedCalls) {
  RunGroup(3, [](int32_t rank, Communicator& comm) {
    for (int round = 0; round < 50; ++round) {
      std::vector<float> buffer(1000);
      for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<float>(i * (rank + 1));
      ASSERT_TRUE(comm.AllReduceSum(buffer).ok());
      for (size_t i = 0; i < buffer.size(); ++i) ASSERT_EQ(buffer[i], static_cast<float>(i * 6));
    }
  });
}

TEST(InProcessCommunicatorTest, AllGatherConcatenatesInRankOrder) {
  RunGroup(3, [](int32_t rank, Communicator& comm) {
    const std::vector<float> in = {static_cast<float>(rank), static_cast<float>(rank * 10)};
    std::vector<float> out(6, -1.0f);
    ASSERT_TRUE(comm.AllGather(in, out).ok());
    EXPECT_EQ(out, (std::vector<float>{0, 0, 1, 10, 2, 20}));
  });
}

TEST(InProcessCommunicatorTest, AOneRankGroupRejectsAWrongOutputSize) {
  std::vector<std::unique_ptr<InProcessCommunicator>> group = MakeInProcessCommunicators(1);
  std::vector<float> in(3), out(5);
  EXPECT_EQ(group[0]->AllGather(in, out).code(), absl::StatusCode::kInvalidArgument);
}

TEST(InProcessCommunicatorTest, AWrongOutputSizeOnOneRankFailsAllGatherOnEveryRank) {
  // Rank 1's output is too small: rank 0 must not wait for it forever, and
  // both get the error naming rank 1.
  const bool finished =
      RunGroupWithin(2, std::chrono::seconds(20), [](int32_t rank, Communicator& comm) {
        const std::vector<float> in(3, static_cast<float>(rank));
        std::vector<float> out(rank == 1 ? 5 : 6, -1.0f);
        const absl::Status status = comm.AllGather(in, out);
        EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
        EXPECT_NE(status.message().find("rank 1"), std::string::npos) << status;
        EXPECT_EQ(out, std::vector<float>(out.size(), -1.0f));  // untouched
        // The group is still usable afterwards.
        std::vector<float> good(6);
        ASSERT_TRUE(comm.AllGather(in, good).ok());
        EXPECT_EQ(good, (std::vector<float>{0, 0, 0, 1, 1, 1}));
      });
  EXPECT_TRUE(finished) << "a rank is still blocked in AllGather";
}

TEST(InProcessCommunicatorTest, GatherConcatenatesInRankOrderOnTheRootOnly) {
  RunGroup(3, [](int32_t rank, Communicator& comm) {
    const std::vector<float> in = {static_cast<float>(rank), static_cast<float>(rank * 10)};
    std::vector<float> out(rank == 1 ? 6 : 0, -1.0f);
    ASSERT_TRUE(comm.Gather(in, out, 1).ok());
    if (rank == 1) {
      EXPECT_EQ(out, (std::vector<float>{0, 0, 1, 10, 2, 20}));
    }
  });
}

TEST(InProcessCommunicatorTest, AWrongOutputSizeOnTheRootFailsGatherOnEveryRank) {
  const bool finished =
      RunGroupWithin(2, std::chrono::seconds(20), [](int32_t rank, Communicator& comm) {
        const std::vector<float> in(3, static_cast<float>(rank));
        std::vector<float> out(rank == 0 ? 5 : 0, -1.0f);
        const absl::Status status = comm.Gather(in, out, 0);
        EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
        EXPECT_NE(status.message().find("rank 0"), std::string::npos) << status;
        EXPECT_EQ(out, std::vector<float>(out.size(), -1.0f));  // untouched
      });
  EXPECT_TRUE(finished) << "a rank is still blocked in Gather";
}

TEST(InProcessCommunicatorTest, BroadcastCopiesTheRootsBuffer) {
  RunGroup(4, [](int32_t rank, Communicator& comm) {
    std::vector<float> buffer(5, static_cast<float>(rank));
    ASSERT_TRUE(comm.Broadcast(buffer, 2).ok());
    EXPECT_EQ(buffer, std::vector<float>(5, 2.0f));
  });
}

TEST(InProcessCommunicatorTest, AOneRankGroupRejectsARootOutsideTheGroup) {
  std::vector<std::unique_ptr<InProcessCommunicator>> group = MakeInProcessCommunicators(1);
  std::vector<float> buffer(1);
  EXPECT_EQ(group[0]->Broadcast(buffer, 1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(InProcessCommunicatorTest, ABadRootOnOneRankFailsBroadcastOnEveryRank) {
  const bool finished =
      RunGroupWithin(2, std::chrono::seconds(20), [](int32_t rank, Communicator& comm) {
        std::vector<float> buffer(4, static_cast<float>(rank));
        const absl::Status status = comm.Broadcast(buffer, rank == 0 ? 7 : 0);
        EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
        EXPECT_NE(status.message().find("root 7"), std::string::npos) << status;
        EXPECT_EQ(buffer, std::vector<float>(4, static_cast<float>(rank)));  // untouched
        ASSERT_TRUE(comm.Broadcast(buffer, 0).ok());
        EXPECT_EQ(buffer, std::vector<float>(4, 0.0f));
      });
  EXPECT_TRUE(finished) << "a rank is still blocked in Broadcast";
}

TEST(InProcessCommunicatorTest, MismatchedSizesFailOnEveryRankWithoutHanging) {
  RunGroup(2, [](int32_t rank, Communicator& comm) {
    std::vector<float> buffer(rank == 0 ? 4 : 5, 1.0f);
    const absl::Status status = comm.AllReduceSum(buffer);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_EQ(buffer, std::vector<float>(buffer.size(), 1.0f));  // untouched
    // The group is still usable afterwards.
    std::vector<float> again(2, 1.0f);
    ASSERT_TRUE(comm.AllReduceSum(again).ok());
    EXPECT_EQ(again, std::vector<float>(2, 2.0f));
  });
}

TEST(InProcessCommunicatorTest, OneRankGroupIsTheIdentity) {
  std::vector<std::unique_ptr<InProcessCommunicator>> group = MakeInProcessCommunicators(1);
  std::vector<float> buffer = {1.5f, -2.0f};
  ASSERT_TRUE(group[0]->AllReduceSum(buffer).ok());
  EXPECT_EQ(buffer, (std::vector<float>{1.5f, -2.0f}));
  std::vector<float> out(2);
  ASSERT_TRUE(group[0]->AllGather(buffer, out).ok());
  EXPECT_EQ(out, buffer);
}

}  // namespace
}  // namespace muserve
