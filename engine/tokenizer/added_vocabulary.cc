#include "engine/tokenizer/added_vocabulary.h"

#include <algorithm>
#include <utility>

#include "engine/tokenizer/unicode.h"

namespace muserve::tokenizer_internal {
namespace {

// Start of the code point that ends at `end` (exclusive).
size_t PreviousCodePointStart(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return start;
}

bool EndsWithWordChar(std::string_view text, size_t end) {
  if (end == 0) return false;
  size_t pos = PreviousCodePointStart(text, end);
  return IsAlphanumeric(NextCodePoint(text, &pos));
}

bool StartsWithWordChar(std::string_view text, size_t begin) {
  if (begin >= text.size()) return false;
  return IsAlphanumeric(NextCodePoint(text, &begin));
}

}  // namespace

AddedVocabulary::Trie::Trie() : nodes_(1) {}

void AddedVocabulary::Trie::Add(std::string_view pattern, int32_t token_index) {
  if (pattern.empty()) return;
  first_byte_[static_cast<unsigned char>(pattern[0])] = true;
  int32_t node = 0;
  for (const char c : pattern) {
    const auto byte = static_cast<unsigned char>(c);
    auto& children = nodes_[node].children;
    auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{-1}));
    if (it != children.end() && it->first == byte) {
      node = it->second;
      continue;
    }
    const auto child = static_cast<int32_t>(nodes_.size());
    children.insert(it, {byte, child});
    nodes_.emplace_back();
    node = child;
  }
  // The first token with a given pattern wins, as in `tokenizers`.
  if (nodes_[node].token_index < 0) nodes_[node].token_index = token_index;
}

std::optional<std::pair<size_t, int32_t>> AddedVocabulary::Trie::LongestAt(std::string_view text,
                                                                           size_t pos) const {
  if (!first_byte_[static_cast<unsigned char>(text[pos])]) return std::nullopt;
  std::optional<std::pair<size_t, int32_t>> best;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const auto& children = nodes_[node].children;
    auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{-1}));
    if (it == children.end() || it->first != byte) break;
    node = it->second;
    if (nodes_[node].token_index >= 0) best = {i + 1 - pos, nodes_[node].token_index};
  }
  return best;
}

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer)
    : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    AddedToken& token = tokens_[i];
    token.decoded =
        token.normalized && normalizer ? normalizer->Normalize(token.content) : token.content;
    by_id_[token.id] = i;
    by_content_.emplace(token.content, token.id);
    if (token.special) special_contents_.insert(token.content);
    max_id_ = std::max(max_id_, token.id);
    if (token.normalized) {
      normalized_trie_.Add(token.decoded, static_cast<int32_t>(i));
    } else {
      raw_trie_.Add(token.content, static_cast<int32_t>(i));
    }
  }
}

void AddedVocabulary::SplitWith(const Trie& trie, const Piece& piece,
                                std::vector<Segment>* out) const {
  const std::string_view text = piece.text;
  auto emit_text = [&](size_t begin, size_t end) {
    if (end <= begin) return;
    out->push_back(Segment{std::nullopt, Piece{std::string(text.substr(begin, end - begin)),
                                               piece.at_origin && begin == 0}});
  };
  size_t start_offset = 0;  // end of the previous emitted match
  size_t pos = 0;           // where the matcher resumes (the raw match end)
  while (pos < text.size()) {
    auto match = trie.empty() ? std::nullopt : trie.LongestAt(text, pos);
    if (!match) {
      ++pos;
      continue;
    }
    size_t begin = pos;
    size_t end = pos + match->first;
    pos = end;
    const AddedToken& token = tokens_[static_cast<size_t>(match->second)];
    if (token.single_word && (EndsWithWordChar(text, begin) || StartsWithWordChar(text, end))) {
      continue;
    }
    if (token.lstrip) {
      size_t new_begin = begin;
      while (new_begin > 0) {
        const size_t prev_start = PreviousCodePointStart(text, new_begin);
        size_t p = prev_start;
        if (!IsWhitespace(NextCodePoint(text, &p))) break;
        new_begin = prev_start;
      }
      // Whitespace already consumed by the previous match stays there.
      begin = std::max(new_begin, start_offset);
    }
    if (token.rstrip) {
      while (end < text.size()) {
        size_t p = end;
        if (!IsWhitespace(NextCodePoint(text, &p))) break;
        end = p;
      }
    }
    emit_text(start_offset, begin);
    out->push_back(Segment{token.id, Piece{}});
    start_offset = end;
  }
  emit_text(start_offset, text.size());
}

std::vector<Segment> AddedVocabulary::Split(std::string_view text,
                                            const Normalizer* normalizer) const {
  std::vector<Segment> raw;
  SplitWith(raw_trie_, Piece{std::string(text), true}, &raw);
  std::vector<Segment> out;
  for (Segment& segment : raw) {
    if (segment.id) {
      out.push_back(std::move(segment));
      continue;
    }
    if (normalizer) segment.text.text = normalizer->Normalize(segment.text.text);
    if (segment.text.text.empty()) continue;
    SplitWith(normalized_trie_, segment.text, &out);
  }
  return out;
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::FindByContent(std::string_view content) const {
  auto it = by_content_.find(AsAbsl(content));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

}  // namespace muserve::tokenizer_internal
