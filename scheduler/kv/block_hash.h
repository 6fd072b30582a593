// Content hashes of full KV blocks for prefix caching. A block's hash chains
// its parent's (the previous block's, or the chain's seed for the first
// block) with its tokens, so equal hashes mean equal prefixes up to that
// block. The seed folds in what else changes a block's contents or who may
// share it: the cache salt of a tenant. (One server serves one model, so the
// model needs no place in the seed.)
//
// Hashes only find candidates: the cache also compares the parent hash and
// the tokens before reusing a block, so a 64-bit collision costs a miss, not
// a wrong answer.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "engine/tokenizer/tokenizer.h"

namespace muserve {

using BlockHash = uint64_t;

// The seed of every chain of requests that share `cache_salt` (empty: the
// default, shared by all requests without a salt).
BlockHash PrefixCacheSeed(std::string_view cache_salt);

// The hash of a full block of `tokens` following a block (or seed) `parent`.
BlockHash HashBlock(BlockHash parent, std::span<const TokenId> tokens);

}  // namespace muserve
