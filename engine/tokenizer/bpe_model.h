// tokenizer.json "model" of type BPE: vocabulary, ranked merges, and the
// ignore_merges / byte_fallback / unk_token / fuse_unk options.
//
// Merging follows `tokenizers`' Word::merge_all exactly: a priority queue of
// adjacent pairs ordered by (merge rank, position), symbols kept in a linked
// list, stale queue entries skipped. That makes a word of n symbols cost
// O(n log n), so long unsplit pieces (Metaspace with split=false) stay cheap.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/tokenizer/json_fields.h"

namespace muserve::tokenizer_internal {

class BpeModel {
 public:
  // Ids index dense tables (here, in the added vocabulary, in the model's
  // embedding), so an id far past the number of tokens would make the
  // tokenizer allocate for nothing, or for gigabytes. Ids may leave holes
  // (added tokens often own ids the model vocabulary skips), but at most this
  // many: every id must be below (number of tokens) + kMaxIdHoles.
  static constexpr int64_t kMaxIdHoles = int64_t{1} << 16;

  // Parses the "model" object; `path` is its field path ("model").
  static absl::StatusOr<std::unique_ptr<BpeModel>> Parse(const Json& json, const std::string& path);

  // Appends the ids of one pre-tokenized piece. Characters with neither a
  // vocabulary entry nor byte-fallback tokens become unk_token (fused when
  // fuse_unk) or, with no unk_token, are dropped, as in `tokenizers`.
  void Tokenize(std::string_view piece, std::vector<int32_t>* ids) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // Null when `id` is not in the vocabulary.
  const std::string* IdToToken(int32_t id) const;
  // Number of vocabulary entries.
  size_t num_tokens() const { return vocab_.size(); }
  // Largest id in the vocabulary, or -1 when it is empty.
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }

 private:
  struct MergeTarget {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  // Initial symbols of `piece` (vocabulary chars, byte fallback, unk).
  void InitialSymbols(std::string_view piece, std::vector<int32_t>* symbols) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::optional<std::string>> id_to_token_;
  absl::flat_hash_map<uint64_t, MergeTarget> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t byte_ids_[256];  // <0xNN> token ids, -1 where absent
};

}  // namespace muserve::tokenizer_internal
