// Tensor parallelism on the CPU when a rank fails: a rank that cannot grow
// its logits buffers fails the step on every rank (no rank waits for it
// forever), and the group stays usable and correct afterwards.
//
// Allocation failures are injected by replacing the global operator new in
// this test binary: an allocation above an armed size throws bad_alloc.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/cpu_tensor_parallel.h"
#include "engine/parallel/in_process_communicator.h"
#include "gtest/gtest.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/step_builder.h"

namespace {

constexpr size_t kNever = std::numeric_limits<size_t>::max();
// This thread's allocations above this many bytes throw.
thread_local size_t fail_above = kNever;
// The next allocation above this many bytes, on any thread, throws (once).
std::atomic<size_t> fail_once_above{kNever};
// How many allocations above count_above bytes this thread made.
thread_local size_t count_above = kNever;
thread_local int64_t counted = 0;

void* Allocate(size_t bytes) {
  if (bytes > fail_above) throw std::bad_alloc();
  size_t once = fail_once_above.load();
  if (bytes > once && fail_once_above.compare_exchange_strong(once, kNever)) throw std::bad_alloc();
  if (bytes > count_above) ++counted;
  if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(size_t bytes) { return Allocate(bytes); }
void* operator new[](size_t bytes) { return Allocate(bytes); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace muserve {
namespace {

using testing::FixturePath;
using testing::StepBuilder;

// Runs body(rank) on one thread per rank; false if some rank is still
// running after `limit` (its thread is then left detached, so that a rank
// stuck in a collective fails the test instead of hanging it).
bool RunRanksWithin(int32_t size, std::chrono::seconds limit,
                    const std::function<void(int32_t)>& body) {
  struct State {
    std::function<void(int32_t)> body;
    std::mutex mu;
    std::condition_variable cv;
    int32_t done = 0;
  };
  auto state = std::make_shared<State>();
  state->body = body;
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < size; ++r)
    threads.emplace_back([state, r] {
      state->body(r);
      std::lock_guard<std::mutex> lock(state->mu);
      ++state->done;
      state->cv.notify_all();
    });
  std::unique_lock<std::mutex> lock(state->mu);
  const bool finished = state->cv.wait_for(lock, limit, [&] { return state->done == size; });
  lock.unlock();
  for (std::thread& t : threads) finished ? t.join() : t.detach();
  return finished;
}

CpuBackendOptions Options() {
  CpuBackendOptions options;
  options.num_threads = 1;
  options.num_blocks = 32;
  return options;
}

// Largest |a - b| over a row, relative to the row's largest |b|.
void ExpectClose(const std::vector<float>& actual, const std::vector<float>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  float scale = 0;
  for (float v : expected) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < actual.size(); ++i)
    ASSERT_LE(std::abs(actual[i] - expected[i]), 1e-5f * scale) << "element " << i;
}

TEST(TensorParallelFailureTest, ALogitsBufferThatFailedToGrowIsGrownOnTheNextStep) {
  absl::StatusOr<LoadedModel> model = LoadModel(FixturePath("models/llama"));
  ASSERT_TRUE(model.ok()) << model.status();
  const int64_t vocab = model->config.vocab_size;
  std::vector<std::unique_ptr<InProcessCommunicator>> group = MakeInProcessCommunicators(2);
  std::vector<std::unique_ptr<CpuBackend>> ranks;
  for (const auto& communicator : group) {
    absl::StatusOr<std::unique_ptr<CpuBackend>> rank =
        CpuBackend::CreateRank(*model, *communicator, Options());
    ASSERT_TRUE(rank.ok()) << rank.status();
    ranks.push_back(*std::move(rank));
  }
  StepBuilder builder(16, 32);
  const int a = builder.AddSequence();
  const int b = builder.AddSequence();
  builder.Append(a, testing::TestTokens(6, static_cast<int32_t>(vocab), 1));
  const StepBatch one_row = builder.Build();
  builder.Append(a, std::vector<int32_t>{3});
  builder.Append(b, testing::TestTokens(4, static_cast<int32_t>(vocab), 2));
  const StepBatch two_rows = builder.Build();

  // Rank 0's local logits of 2 rows (2 x vocab / 2 floats) fit under the
  // limit; its gathered logits of 2 rows (2 x vocab floats) do not.
  const size_t limit = static_cast<size_t>(vocab) * sizeof(float) + 64;
  std::vector<absl::Status> statuses(2);
  std::vector<std::vector<float>> logits(2);
  std::vector<int64_t> big_allocations(2);
  auto step = [&](const StepBatch& batch, bool fail) {
    return RunRanksWithin(2, std::chrono::seconds(60), [&](int32_t r) {
      logits[r].assign(static_cast<size_t>(batch.num_sampled() * vocab), 0.0f);
      if (fail && r == 0) fail_above = limit;
      count_above = limit;
      counted = 0;
      statuses[r] = ranks[r]->Forward(batch, logits[r]);
      big_allocations[r] = counted;
      fail_above = count_above = kNever;
    });
  };
  ASSERT_TRUE(step(one_row, false));
  ASSERT_TRUE(statuses[0].ok() && statuses[1].ok()) << statuses[0] << statuses[1];

  ASSERT_TRUE(step(two_rows, true)) << "a rank is stuck in a collective";
  for (const absl::Status& s : statuses)
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;

  // The same step again, with memory to spare: rank 0 grows the buffer that
  // failed (rather than gathering 2 rows into room for 1), and the logits
  // are those of one rank.
  ASSERT_TRUE(step(two_rows, false)) << "a rank is stuck in a collective";
  ASSERT_TRUE(statuses[0].ok() && statuses[1].ok()) << statuses[0] << statuses[1];
  EXPECT_GE(big_allocations[0], 1) << "rank 0 did not grow its gathered logits buffer";

  absl::StatusOr<LoadedModel> reference_model = LoadModel(FixturePath("models/llama"));
  ASSERT_TRUE(reference_model.ok()) << reference_model.status();
  absl::StatusOr<std::unique_ptr<CpuBackend>> reference =
      CpuBackend::Create(*std::move(reference_model), Options());
  ASSERT_TRUE(reference.ok()) << reference.status();
  std::vector<float> expected(static_cast<size_t>(vocab));
  ASSERT_TRUE((*reference)->Forward(one_row, expected).ok());
  expected.assign(static_cast<size_t>(2 * vocab), 0.0f);
  ASSERT_TRUE((*reference)->Forward(two_rows, expected).ok());
  ExpectClose(logits[0], expected);
}

TEST(TensorParallelFailureTest, ARankThatRunsOutOfMemoryFailsTheStepOnEveryRankWithoutHanging) {
  absl::StatusOr<LoadedModel> model = LoadModel(FixturePath("models/llama"));
  ASSERT_TRUE(model.ok()) << model.status();
  const int64_t vocab = model->config.vocab_size;
  absl::StatusOr<std::unique_ptr<Backend>> backend =
      CreateCpuBackend(*std::move(model), 2, Options());
  ASSERT_TRUE(backend.ok()) << backend.status();
  StepBuilder builder(16, 32);
  builder.Append(builder.AddSequence(), testing::TestTokens(5, static_cast<int32_t>(vocab), 3));
  const StepBatch batch = builder.Build();
  // Whichever rank first grows its logits buffers fails to.
  auto logits = std::make_shared<std::vector<float>>(static_cast<size_t>(vocab));
  auto status = std::make_shared<absl::Status>();
  Backend* tp = backend->get();
  fail_once_above = static_cast<size_t>(vocab) * sizeof(float) / 2 - 1;
  const bool finished = RunRanksWithin(1, std::chrono::seconds(60),
                                       [=](int32_t) { *status = tp->Forward(batch, *logits); });
  fail_once_above = kNever;
  if (!finished) {
    backend->release();  // its ranks are stuck: leave them be
    FAIL() << "TensorParallelBackend::Forward is stuck";
  }
  EXPECT_EQ(status->code(), absl::StatusCode::kResourceExhausted) << *status;
  // The ranks are still in step: the same batch runs afterwards.
  EXPECT_TRUE((*backend)->Forward(batch, *logits).ok());
}

}  // namespace
}  // namespace muserve
