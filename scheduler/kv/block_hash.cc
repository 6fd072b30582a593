#include "scheduler/kv/block_hash.h"

namespace muserve {
namespace {

// splitmix64's finalizer: every input bit affects every output bit.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace

BlockHash PrefixCacheSeed(std::string_view cache_salt) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the salt's bytes
  for (const char c : cache_salt) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return Mix(h ^ (uint64_t{cache_salt.size()} << 32));
}

BlockHash HashBlock(BlockHash parent, std::span<const TokenId> tokens) {
  uint64_t h = Mix(parent + 0x9e3779b97f4a7c15ull);
  for (const TokenId token : tokens) h = Mix(h ^ static_cast<uint32_t>(token));
  return Mix(h + tokens.size());
}

}  // namespace muserve
