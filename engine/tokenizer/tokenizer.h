// Tokenizer: a Hugging Face `tokenizer.json` (the `tokenizers` library's
// format) for the BPE models used by Llama-family checkpoints:
//  - byte-level BPE (GPT-2, Llama 3, Qwen2): ByteLevel pre-tokenizer after a
//    regex Split, ByteLevel decoder;
//  - SentencePiece-style BPE with byte fallback (Llama 2, Mistral): Metaspace
//    (or Prepend/Replace normalizers), `<0xNN>` byte tokens, fused decoding.
// Added tokens (special or not) are matched before the model runs, honouring
// their lstrip/rstrip/single_word/normalized flags. Anything in tokenizer.json
// that is not supported is an error at load time naming the field, never a
// silently different tokenization.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace muserve {

using TokenId = int32_t;

// Strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF.
bool IsValidUtf8(std::string_view bytes);

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Parses tokenizer.json text; `file_name` is used in error messages.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(
      std::string_view json_text, std::string_view file_name = "tokenizer.json");
  // Reads `path` (a tokenizer.json file).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::filesystem::path& path);

  // Encodes text. `add_special_tokens` applies the post-processor's template
  // (e.g. Llama's BOS), as `tokenizers`' encode(text, add_special_tokens) does.
  virtual std::vector<TokenId> Encode(std::string_view text, bool add_special_tokens) const = 0;

  // Decodes ids to text as `tokenizers`' decode(ids, skip_special_tokens) does.
  // Invalid UTF-8 produced by byte tokens becomes U+FFFD, as in `tokenizers`.
  virtual std::string Decode(const std::vector<TokenId>& ids, bool skip_special_tokens) const = 0;

  // Size including added tokens (max id + 1).
  virtual int32_t vocab_size() const = 0;
  virtual std::optional<TokenId> TokenToId(std::string_view token) const = 0;
  virtual std::optional<std::string> IdToToken(TokenId id) const = 0;
  virtual bool IsSpecial(TokenId id) const = 0;
};

// Streams text out of a growing token sequence without ever emitting half a
// UTF-8 character or text that a later token would change: each Step returns
// the newly final text. Holds a reference to the tokenizer. Each Step decodes
// only a short window of recent tokens (at most kMaxPendingTokens past the
// last emitted text plus that text's context), so its cost does not grow with
// the prompt or the output. The concatenated output equals a full Decode
// except when a later token turns bytes already emitted into an invalid
// sequence (byte fallback then replaces the whole run): emitted text cannot be
// taken back, so the stream goes on from the first changed character.
class IncrementalDetokenizer {
 public:
  // Tokens held back while their text is incomplete (ends in U+FFFD) or
  // empty. Past this, all but the last kHeldTailTokens are released as they
  // decode: a UTF-8 character has at most 4 bytes, so no later token can
  // complete a U+FFFD that far back.
  static constexpr size_t kMaxPendingTokens = 8;
  static constexpr size_t kHeldTailTokens = 3;

  IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens);
  // `prompt_ids` seeds context so the first generated token decodes as it
  // would after the prompt (e.g. no spurious leading-space strip).
  void SetPrompt(const std::vector<TokenId>& prompt_ids);
  // Appends one token; returns text that is now final (may be empty).
  std::string Step(TokenId id);
  // Returns whatever is still held back (e.g. an incomplete UTF-8 tail, as U+FFFD).
  std::string Flush();

 private:
  // Emits the part of `text` (the decode of window_[0, end)) past what was
  // already emitted, and makes window_[read_, end) the new context.
  std::string Advance(size_t end, const std::string& text);
  std::string DecodePrefix(size_t end);

  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  // Invariants: window_[0, read_) is the context, already emitted, decoded
  // again so neighbour-sensitive decoders (leading-space strip, byte fallback,
  // byte-level UTF-8 assembly) see the same surroundings as a full Decode;
  // context_text_ == Decode(window_[0, read_)); window_[read_, end) is pending
  // and window_.size() - read_ <= kMaxPendingTokens after every Step.
  std::vector<TokenId> window_;
  size_t read_ = 0;
  std::string context_text_;
  std::vector<TokenId> scratch_;  // reused for decoding a prefix of window_
};

}  // namespace muserve
