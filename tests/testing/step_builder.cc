#include "tests/testing/step_builder.h"

#include <algorithm>

#include "gtest/gtest.h"

namespace muserve::testing {

StepBuilder::StepBuilder(int32_t block_size, int32_t num_blocks, std::vector<int32_t> block_order)
    : block_size_(block_size) {
  if (block_order.empty()) {
    for (int32_t b = 0; b < num_blocks; ++b) block_order.push_back(b);
  }
  free_.assign(block_order.rbegin(), block_order.rend());
}

int StepBuilder::AddSequence() {
  sequences_.emplace_back();
  return static_cast<int>(sequences_.size()) - 1;
}

void StepBuilder::Append(int seq, std::span<const int32_t> tokens, bool sample) {
  Sequence& s = sequences_[seq];
  StepSequence step;
  step.query_start = batch_.num_tokens();
  step.query_len = static_cast<int32_t>(tokens.size());
  for (int32_t token : tokens) {
    const int32_t position = s.length++;
    if (position / block_size_ >= static_cast<int32_t>(s.blocks.size())) {
      if (free_.empty()) {
        ADD_FAILURE() << "StepBuilder: out of KV blocks";
        return;
      }
      s.blocks.push_back(free_.back());
      free_.pop_back();
    }
    batch_.tokens.push_back(token);
    batch_.positions.push_back(position);
    batch_.slot_mapping.push_back(static_cast<int64_t>(s.blocks[position / block_size_]) *
                                      block_size_ +
                                  position % block_size_);
  }
  step.context_len = s.length;
  step.block_table = s.blocks;
  step.sample = sample;
  batch_.sequences.push_back(std::move(step));
}

StepBatch StepBuilder::Build() {
  StepBatch out = std::move(batch_);
  batch_ = StepBatch();
  return out;
}

void StepBuilder::Free(int seq) {
  Sequence& s = sequences_[seq];
  for (auto it = s.blocks.rbegin(); it != s.blocks.rend(); ++it) free_.push_back(*it);
  s.blocks.clear();
  s.length = 0;
}

std::vector<int32_t> TestTokens(int32_t count, int32_t vocab_size, uint32_t seed) {
  std::vector<int32_t> tokens(count);
  uint32_t state = seed * 2654435761u + 12345u;
  for (int32_t& t : tokens) {
    state = state * 1664525u + 1013904223u;
    t = static_cast<int32_t>((state >> 8) % static_cast<uint32_t>(vocab_size));
  }
  return tokens;
}

}  // namespace muserve::testing
