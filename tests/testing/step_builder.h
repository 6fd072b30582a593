// StepBuilder: builds StepBatches for tests the way a scheduler would, with a
// trivial block allocator. Sequences grow as tokens are appended; blocks are
// handed out from a free list in a caller-chosen order (to exercise
// non-contiguous, shuffled physical layouts).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/api/step_batch.h"

namespace muserve::testing {

class StepBuilder {
 public:
  // Blocks are allocated in `block_order` order (default 0, 1, ..., num_blocks - 1).
  StepBuilder(int32_t block_size, int32_t num_blocks, std::vector<int32_t> block_order = {});

  // A new, empty sequence; returns its id (0, 1, ...).
  int AddSequence();

  // Adds `tokens` as the next tokens of sequence `seq` to the step being built
  // (one slice per call; a sequence appears at most once per step).
  // Allocates blocks as needed; fails the current test when the pool is empty.
  void Append(int seq, std::span<const int32_t> tokens, bool sample = true);

  // Returns the step built so far and starts a new, empty one.
  StepBatch Build();

  // Returns all blocks of `seq` to the free list (front first).
  void Free(int seq);

  int32_t context_len(int seq) const { return sequences_[seq].length; }
  const std::vector<int32_t>& block_table(int seq) const { return sequences_[seq].blocks; }
  int32_t num_free_blocks() const { return static_cast<int32_t>(free_.size()); }

 private:
  struct Sequence {
    int32_t length = 0;
    std::vector<int32_t> blocks;
  };
  int32_t block_size_;
  std::vector<int32_t> free_;  // next block to hand out is free_.back()
  std::vector<Sequence> sequences_;
  StepBatch batch_;
};

// A simple pseudo-random token sequence in [0, vocab_size) for tests.
std::vector<int32_t> TestTokens(int32_t count, int32_t vocab_size, uint32_t seed);

}  // namespace muserve::testing
