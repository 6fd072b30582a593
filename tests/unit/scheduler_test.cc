// Scheduler against tables of expected states (budgets, decodes before
// prefills, chunking, priority order, preemption victim and requeue place),
// and a randomized run of >= 10,000 operations against a fake backend that
// checks the block bookkeeping after every step.
#include "scheduler/scheduler.h"

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace muserve {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

constexpr RequestId Id(uint64_t n) { return RequestId{n}; }

// What one sequence of a step should look like.
struct Slice {
  uint64_t id;
  int32_t query_len;
  bool sample;
  bool operator==(const Slice&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Slice& s) {
  return os << "{id " << s.id << ", len " << s.query_len << (s.sample ? ", sample}" : "}");
}

// The fake engine's token for request `id` at position `pos`: a pure function,
// so a recomputed sequence must reproduce exactly the same stream.
TokenId FakeToken(RequestId id, int32_t pos) {
  return static_cast<TokenId>((static_cast<uint64_t>(id) * 7919 + pos * 31) % 1000);
}

std::vector<uint64_t> Ids(const std::vector<RequestId>& ids) {
  std::vector<uint64_t> out;
  for (RequestId id : ids) out.push_back(static_cast<uint64_t>(id));
  return out;
}

std::vector<TokenId> Prompt(int32_t n) { return std::vector<TokenId>(n, 5); }

// Checks the batch against the StepBatch invariants and the sequences'
// tokens, then samples FakeTokens. Returns the slices.
std::vector<Slice> RunStep(Scheduler& scheduler, SchedulerStep& step) {
  scheduler.Schedule(step);
  const StepBatch& batch = step.batch;
  const int32_t block_size = scheduler.kv().block_size();
  EXPECT_LE(batch.num_tokens(), scheduler.options().max_num_batched_tokens);
  EXPECT_LE(static_cast<int32_t>(batch.sequences.size()), scheduler.options().max_num_seqs);
  std::vector<Slice> slices;
  std::vector<TokenId> sampled;
  int32_t row = 0;
  for (size_t i = 0; i < batch.sequences.size(); ++i) {
    const StepSequence& s = batch.sequences[i];
    const Sequence* seq = scheduler.Find(step.ids[i]);
    EXPECT_NE(seq, nullptr);
    if (seq == nullptr) continue;
    EXPECT_EQ(s.query_start, row);
    EXPECT_GE(s.query_len, 1);
    EXPECT_EQ(s.context_len, seq->num_computed);
    EXPECT_EQ(s.sample, s.context_len == seq->num_tokens());
    EXPECT_GE(static_cast<int32_t>(s.block_table.size()) * block_size, s.context_len);
    for (int32_t j = 0; j < s.query_len; ++j) {
      const int32_t pos = s.context_len - s.query_len + j;
      EXPECT_EQ(batch.positions[row + j], pos);
      EXPECT_EQ(batch.tokens[row + j], seq->tokens[pos]);
      EXPECT_EQ(batch.slot_mapping[row + j],
                int64_t{s.block_table[pos / block_size]} * block_size + pos % block_size);
    }
    row += s.query_len;
    if (s.sample) sampled.push_back(FakeToken(seq->id, s.context_len));
    slices.push_back({static_cast<uint64_t>(seq->id), s.query_len, s.sample});
  }
  EXPECT_EQ(row, batch.num_tokens());
  scheduler.ApplyOutput(step, sampled);
  return slices;
}

TEST(SchedulerTest, DecodesFirstThenPrefillsChunkedToTheTokenBudget) {
  Scheduler scheduler(
      {.max_num_seqs = 8, .max_num_batched_tokens = 8, .num_blocks = 64, .block_size = 4});
  scheduler.Add(Id(1), Prompt(3), 0);
  scheduler.Add(Id(2), Prompt(10), 0);
  scheduler.Add(Id(3), Prompt(2), 0);
  SchedulerStep step;
  // One row per step: the slices, then running and waiting ids.
  struct Expected {
    std::vector<Slice> slices;
    std::vector<uint64_t> running, waiting;
  };
  const std::vector<Expected> table = {
      // 1's whole prompt; 2's prompt chunked to the 5 tokens left; 3 waits.
      {{{1, 3, true}, {2, 5, false}}, {1, 2}, {3}},
      // Decodes first (1), then the rest of 2's prompt, then 3 fits in 2.
      {{{1, 1, true}, {2, 5, true}, {3, 2, true}}, {1, 2, 3}, {}},
      {{{1, 1, true}, {2, 1, true}, {3, 1, true}}, {1, 2, 3}, {}},
  };
  for (size_t i = 0; i < table.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_THAT(RunStep(scheduler, step), ElementsAreArray(table[i].slices));
    EXPECT_THAT(Ids(scheduler.RunningIds()), ElementsAreArray(table[i].running));
    EXPECT_THAT(Ids(scheduler.WaitingIds()), ElementsAreArray(table[i].waiting));
    ASSERT_TRUE(scheduler.CheckConsistency().ok());
  }
}

TEST(SchedulerTest, LongPromptIsPrefilledOverStepsWhileOthersKeepDecoding) {
  Scheduler scheduler(
      {.max_num_seqs = 8, .max_num_batched_tokens = 6, .num_blocks = 64, .block_size = 4});
  scheduler.Add(Id(1), Prompt(2), 0);
  SchedulerStep step;
  EXPECT_THAT(RunStep(scheduler, step), ElementsAre(Slice{1, 2, true}));
  scheduler.Add(Id(2), Prompt(17), 0);
  const std::vector<std::vector<Slice>> table = {
      {{1, 1, true}, {2, 5, false}}, {{1, 1, true}, {2, 5, false}},
      {{1, 1, true}, {2, 5, false}}, {{1, 1, true}, {2, 2, true}},  // 17 = 5 + 5 + 5 + 2
      {{1, 1, true}, {2, 1, true}},
  };
  for (size_t i = 0; i < table.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_THAT(RunStep(scheduler, step), ElementsAreArray(table[i]));
  }
}

TEST(SchedulerTest, MaxNumSeqsAndPriorityOrderAdmission) {
  Scheduler scheduler(
      {.max_num_seqs = 2, .max_num_batched_tokens = 100, .num_blocks = 64, .block_size = 4});
  scheduler.Add(Id(1), Prompt(1), /*priority=*/1);
  scheduler.Add(Id(2), Prompt(1), /*priority=*/0);
  scheduler.Add(Id(3), Prompt(1), /*priority=*/2);
  scheduler.Add(Id(4), Prompt(1), /*priority=*/0);
  EXPECT_THAT(Ids(scheduler.WaitingIds()), ElementsAre(2, 4, 1, 3));
  SchedulerStep step;
  EXPECT_THAT(RunStep(scheduler, step), ElementsAre(Slice{2, 1, true}, Slice{4, 1, true}));
  EXPECT_THAT(Ids(step.admitted), ElementsAre(2, 4));
  EXPECT_THAT(Ids(scheduler.WaitingIds()), ElementsAre(1, 3));
  ASSERT_TRUE(scheduler.Remove(Id(4)));
  EXPECT_THAT(RunStep(scheduler, step), ElementsAre(Slice{2, 1, true}, Slice{1, 1, true}));
  EXPECT_THAT(Ids(scheduler.RunningIds()), ElementsAre(2, 1));
  EXPECT_THAT(Ids(scheduler.WaitingIds()), ElementsAre(3));
  EXPECT_FALSE(scheduler.Remove(Id(4)));
}

TEST(SchedulerTest, PreemptsTheMostRecentlyAdmittedAndRequeuesItInPlace) {
  // 4 blocks of 4 tokens; four 4-token prompts fill the pool exactly.
  Scheduler scheduler(
      {.max_num_seqs = 8, .max_num_batched_tokens = 100, .num_blocks = 4, .block_size = 4});
  for (uint64_t id = 1; id <= 4; ++id) scheduler.Add(Id(id), Prompt(4), 0);
  SchedulerStep step;
  EXPECT_THAT(RunStep(scheduler, step), ElementsAre(Slice{1, 4, true}, Slice{2, 4, true},
                                                    Slice{3, 4, true}, Slice{4, 4, true}));
  EXPECT_EQ(scheduler.kv().num_free_blocks(), 0);
  // Every decode needs a second block: 1 takes 4's, 2 takes 3's.
  EXPECT_THAT(RunStep(scheduler, step), ElementsAre(Slice{1, 1, true}, Slice{2, 1, true}));
  EXPECT_THAT(Ids(step.preempted), ElementsAre(4, 3));
  EXPECT_THAT(step.admitted, IsEmpty());
  EXPECT_EQ(scheduler.num_preemptions(), 2);
  scheduler.Add(Id(5), Prompt(1), 0);
  // 3 and 4 are back at their original places, ahead of the later 5.
  EXPECT_THAT(Ids(scheduler.RunningIds()), ElementsAre(1, 2));
  EXPECT_THAT(Ids(scheduler.WaitingIds()), ElementsAre(3, 4, 5));
  const Sequence* three = scheduler.Find(Id(3));
  ASSERT_NE(three, nullptr);
  EXPECT_EQ(three->num_computed, 0);
  EXPECT_THAT(three->block_table, IsEmpty());
  EXPECT_EQ(three->num_tokens(), 5);  // its sampled token is kept
  ASSERT_TRUE(scheduler.CheckConsistency().ok());

  // 1 finishes: 3 is recomputed (prompt + its output) and samples its second
  // token; 5 must not overtake 4, which does not fit.
  ASSERT_TRUE(scheduler.Remove(Id(1)));
  EXPECT_THAT(RunStep(scheduler, step), ElementsAre(Slice{2, 1, true}, Slice{3, 5, true}));
  EXPECT_THAT(Ids(scheduler.WaitingIds()), ElementsAre(4, 5));
  three = scheduler.Find(Id(3));
  EXPECT_THAT(three->tokens, ElementsAre(5, 5, 5, 5, FakeToken(Id(3), 4), FakeToken(Id(3), 5)));
  ASSERT_TRUE(scheduler.CheckConsistency().ok());
}

TEST(SchedulerTest, PreemptsItselfWhenItIsTheMostRecent) {
  Scheduler scheduler(
      {.max_num_seqs = 8, .max_num_batched_tokens = 100, .num_blocks = 3, .block_size = 4});
  scheduler.Add(Id(1), Prompt(8), 0);
  scheduler.Add(Id(2), Prompt(4), 0);
  SchedulerStep step;
  EXPECT_THAT(RunStep(scheduler, step), ElementsAre(Slice{1, 8, true}, Slice{2, 4, true}));
  // 1's decode needs a third block: 2 (the newest) is preempted; then 2 is
  // not admitted again in the same step.
  EXPECT_THAT(RunStep(scheduler, step), ElementsAre(Slice{1, 1, true}));
  EXPECT_THAT(Ids(step.preempted), ElementsAre(2));
  // 1 goes on alone; 2 waits for the blocks it needs.
  EXPECT_THAT(RunStep(scheduler, step), ElementsAre(Slice{1, 1, true}));
  EXPECT_THAT(Ids(scheduler.WaitingIds()), ElementsAre(2));
  ASSERT_TRUE(scheduler.Remove(Id(1)));
  EXPECT_THAT(RunStep(scheduler, step), ElementsAre(Slice{2, 5, true}));
  ASSERT_TRUE(scheduler.Remove(Id(2)));
  EXPECT_EQ(scheduler.kv().num_free_blocks(), 3);
  EXPECT_TRUE(scheduler.kv().pool().CheckConsistency().ok());
}

// >= 10,000 random operations (submit, abort at any point, step, finish)
// against a fake backend. After every operation: the bookkeeping is exact
// (Scheduler::CheckConsistency: no block both free and owned, exact free
// count) and every token stream is the fake engine's, whatever preemption
// did. Every request ends exactly once; at the end the pool is full again.
TEST(SchedulerTest, RandomOperationsKeepBlocksExactAndEndEveryRequestOnce) {
  constexpr int32_t kBlockSize = 4;
  constexpr int32_t kNumBlocks = 24;  // 96 tokens: preemption is frequent
  Scheduler scheduler({.max_num_seqs = 6,
                       .max_num_batched_tokens = 20,
                       .num_blocks = kNumBlocks,
                       .block_size = kBlockSize});
  std::mt19937 rng(12345);
  struct Live {
    int32_t prompt_len;
    int32_t max_output;
  };
  std::map<uint64_t, Live> live;
  int64_t num_ended = 0;
  uint64_t next_id = 1;
  SchedulerStep step;
  int64_t num_steps = 0;

  auto end = [&](uint64_t id) {
    const Sequence* seq = scheduler.Find(Id(id));
    ASSERT_NE(seq, nullptr);
    // The output is exactly the fake engine's stream: nothing duplicated or
    // lost across preemptions.
    for (int32_t pos = live[id].prompt_len; pos < seq->num_tokens(); ++pos) {
      ASSERT_EQ(seq->tokens[pos], FakeToken(Id(id), pos)) << "request " << id;
    }
    ASSERT_TRUE(scheduler.Remove(Id(id)));
    // Ended means gone: no second end, nothing left to schedule.
    ASSERT_EQ(scheduler.Find(Id(id)), nullptr) << "request " << id;
    ASSERT_FALSE(scheduler.Remove(Id(id))) << "request " << id;
    live.erase(id);
    ++num_ended;
  };

  auto step_once = [&] {
    ASSERT_TRUE(scheduler.has_work());
    RunStep(scheduler, step);
    ASSERT_FALSE(step.empty()) << "no progress with work queued";
    ++num_steps;
    for (const RequestId id : step.ids) {
      const uint64_t n = static_cast<uint64_t>(id);
      // A step only ever serves live requests, never one that already ended.
      ASSERT_TRUE(live.contains(n)) << "ended request " << n << " was scheduled";
      const Sequence* seq = scheduler.Find(id);
      if (seq->num_output_tokens() >= live[n].max_output) end(n);
    }
  };

  for (int op = 0; op < 12000; ++op) {
    const int kind = std::uniform_int_distribution<int>(0, 9)(rng);
    if (kind <= 2) {
      // Prompt + output - 1 <= 96 tokens: fits the pool alone.
      const int32_t prompt = std::uniform_int_distribution<int32_t>(1, 60)(rng);
      const int32_t output = std::uniform_int_distribution<int32_t>(1, 37)(rng);
      const int32_t priority = std::uniform_int_distribution<int32_t>(0, 2)(rng);
      std::vector<TokenId> tokens(prompt);
      for (auto& t : tokens) t = std::uniform_int_distribution<TokenId>(0, 999)(rng);
      live[next_id] = {prompt, output};
      scheduler.Add(Id(next_id), tokens, priority);
      ++next_id;
    } else if (kind == 3 && !live.empty()) {
      auto it = live.begin();
      std::advance(it, std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng));
      end(it->first);
    } else if (kind == 4) {
      EXPECT_FALSE(scheduler.Remove(Id(next_id + 100)));  // unknown ids are refused
    } else if (scheduler.has_work()) {
      step_once();
    }
    if (::testing::Test::HasFatalFailure()) return;
    const absl::Status status = scheduler.CheckConsistency();
    ASSERT_TRUE(status.ok()) << "after operation " << op << ": " << status;
    ASSERT_EQ(scheduler.num_running() + scheduler.num_waiting(), static_cast<int32_t>(live.size()));
  }
  while (scheduler.has_work()) {
    step_once();
    if (::testing::Test::HasFatalFailure()) return;
    ASSERT_TRUE(scheduler.CheckConsistency().ok());
  }
  EXPECT_TRUE(live.empty());
  EXPECT_EQ(num_ended, static_cast<int64_t>(next_id - 1));
  EXPECT_EQ(scheduler.kv().num_free_blocks(), kNumBlocks);
  EXPECT_TRUE(scheduler.kv().pool().CheckConsistency().ok());
  EXPECT_GT(scheduler.num_preemptions(), 100);
  EXPECT_GT(num_steps, 2000);
}

}  // namespace
}  // namespace muserve
