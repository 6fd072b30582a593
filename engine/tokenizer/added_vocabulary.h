// tokenizer.json "added_tokens": tokens matched in the input before the model
// runs, as `tokenizers`' AddedVocabulary does:
//  1. tokens with normalized=false are found in the raw input;
//  2. the text between them is normalized, then tokens with normalized=true
//     (their content normalized the same way) are found in it.
// Matching is leftmost-longest; lstrip/rstrip widen a match over adjacent
// whitespace; single_word accepts a match only between non-word characters.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/pre_tokenizer.h"

namespace muserve::tokenizer_internal {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
  // What Decode emits for this token: the content, normalized when
  // `normalized` is set (so Llama 2's normalized "<s>" decodes as "▁<s>" and
  // then no longer counts as special text), as `tokenizers` 0.2x does.
  std::string decoded;
};

// One part of the input: an added token (id set) or normalized text to be
// pre-tokenized and encoded by the model.
struct Segment {
  std::optional<int32_t> id;
  Piece text;
};

class AddedVocabulary {
 public:
  // `normalizer` (may be null) normalizes the normalized tokens' patterns.
  AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Splits `text` (valid UTF-8) into segments; text segments come out
  // normalized by `normalizer` (may be null). Empty text segments are dropped.
  std::vector<Segment> Split(std::string_view text, const Normalizer* normalizer) const;

  const AddedToken* FindById(int32_t id) const;
  std::optional<int32_t> FindByContent(std::string_view content) const;
  // Whether `content` is the content of a special added token.
  bool IsSpecialContent(std::string_view content) const {
    return special_contents_.contains(absl::string_view(content.data(), content.size()));
  }
  int32_t max_id() const { return max_id_; }

 private:
  // A byte trie over token patterns for leftmost-longest matching.
  class Trie {
   public:
    Trie();
    void Add(std::string_view pattern, int32_t token_index);
    // Longest pattern starting at `pos`: (length, token index).
    std::optional<std::pair<size_t, int32_t>> LongestAt(std::string_view text, size_t pos) const;
    bool empty() const { return nodes_.size() == 1; }

   private:
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
      int32_t token_index = -1;
    };
    std::vector<Node> nodes_;
    bool first_byte_[256] = {};
  };

  // `tokenizers`' find_matches + split_with_indices on one piece of text.
  void SplitWith(const Trie& trie, const Piece& piece, std::vector<Segment>* out) const;

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<int32_t, size_t> by_id_;
  absl::flat_hash_map<std::string, int32_t> by_content_;
  absl::flat_hash_set<std::string> special_contents_;
  Trie raw_trie_;         // tokens with normalized=false
  Trie normalized_trie_;  // tokens with normalized=true, patterns normalized
  int32_t max_id_ = -1;
};

}  // namespace muserve::tokenizer_internal
