// The vLLM / TGI incremental detokenization scheme, on a window that is
// trimmed as text is emitted (like `tokenizers`' DecodeStream). Text is
// released when the window's decode is longer than its context's and does not
// end in U+FFFD (an incomplete UTF-8 sequence that a later byte token may
// complete), or when too many tokens are pending (see kMaxPendingTokens).
#include <algorithm>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace muserve {
namespace {

// How many prompt tokens are decoded as context for the first new token.
constexpr size_t kPromptContextTokens = 5;

bool EndsWithReplacementChar(const std::string& text) {
  return text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

// The part of `text` after what it shares with `emitted`. Normally `emitted`
// is a prefix of `text`; when a later token rewrote it (a byte run that
// became invalid), the text from the first difference, cut back to a
// character boundary, since what was emitted cannot be taken back.
std::string TextAfter(const std::string& emitted, const std::string& text) {
  size_t common = 0;
  const size_t limit = std::min(emitted.size(), text.size());
  while (common < limit && emitted[common] == text[common]) ++common;
  while (common > 0 && common < text.size() &&
         (static_cast<unsigned char>(text[common]) & 0xC0) == 0x80) {
    --common;
  }
  return text.substr(common);
}

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

void IncrementalDetokenizer::SetPrompt(const std::vector<TokenId>& prompt_ids) {
  const size_t context = std::min(prompt_ids.size(), kPromptContextTokens);
  window_.assign(prompt_ids.end() - static_cast<std::ptrdiff_t>(context), prompt_ids.end());
  read_ = window_.size();
  context_text_ =
      window_.empty() ? std::string() : tokenizer_.Decode(window_, skip_special_tokens_);
}

std::string IncrementalDetokenizer::Step(TokenId id) {
  window_.push_back(id);
  std::string text = tokenizer_.Decode(window_, skip_special_tokens_);
  if (text.size() > context_text_.size() && !EndsWithReplacementChar(text)) {
    return Advance(window_.size(), text);
  }
  if (window_.size() - read_ <= kMaxPendingTokens) return std::string();
  const size_t release_end = window_.size() - kHeldTailTokens;
  return Advance(release_end, DecodePrefix(release_end));
}

std::string IncrementalDetokenizer::Flush() {
  if (read_ == window_.size()) return std::string();
  return Advance(window_.size(), tokenizer_.Decode(window_, skip_special_tokens_));
}

std::string IncrementalDetokenizer::Advance(size_t end, const std::string& text) {
  std::string delta = TextAfter(context_text_, text);
  window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(read_));
  read_ = end - read_;
  context_text_ = DecodePrefix(read_);
  return delta;
}

std::string IncrementalDetokenizer::DecodePrefix(size_t end) {
  if (end == 0) return std::string();
  if (end == window_.size()) return tokenizer_.Decode(window_, skip_special_tokens_);
  scratch_.assign(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(end));
  return tokenizer_.Decode(scratch_, skip_special_tokens_);
}

}  // namespace muserve
