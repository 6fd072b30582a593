// Sequence: the scheduler's view of one request. In the vLLM v1 manner it has
// no prefill or decode phase: it has tokens (prompt, then output so far) and
// a count of those whose K/V are already in the cache. A step computes some of
// the rest; when it computes the last one, the step samples the next token.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "scheduler/kv/block_hash.h"
#include "scheduler/kv/block_pool.h"
#include "scheduler/request.h"

namespace muserve {

struct Sequence {
  RequestId id{};
  int32_t priority = 0;
  // Order of arrival; with `priority` it fixes the place in the waiting queue,
  // which a preempted sequence gets back.
  uint64_t arrival = 0;
  std::vector<TokenId> tokens;  // prompt, then every sampled token
  int32_t num_prompt_tokens = 0;
  // Tokens whose K/V are in the cache: a prefix of `tokens`. Invariant:
  // block_table holds exactly BlocksFor(num_computed) blocks between steps,
  // and none while waiting.
  int32_t num_computed = 0;
  std::vector<BlockId> block_table;
  int32_t num_preemptions = 0;
  bool running = false;

  // Prefix caching: whether this sequence takes part, the seed of its hash
  // chain (from its salt), and the hashes of its first full blocks (those
  // found in the cache or indexed after being computed; a prefix of
  // block_table, cleared with it).
  bool use_prefix_cache = false;
  BlockHash cache_seed = 0;
  std::vector<BlockHash> block_hashes;
  // Prompt tokens found in the cache when first admitted; -1 before.
  int32_t num_cached_prompt_tokens = -1;

  int32_t num_tokens() const { return static_cast<int32_t>(tokens.size()); }
  int32_t num_remaining() const { return num_tokens() - num_computed; }
  int32_t num_output_tokens() const { return num_tokens() - num_prompt_tokens; }
};

}  // namespace muserve
