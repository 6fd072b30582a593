// tokenizer.json "pre_tokenizer": splits normalized text into the pieces the
// BPE model encodes independently. Supported types: Sequence, Split,
// ByteLevel, Metaspace, Digits.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/json_fields.h"

namespace muserve::tokenizer_internal {

struct Piece {
  std::string text;
  // True when the piece starts at offset 0 of the original input (Metaspace's
  // prepend_scheme "first" only prepends to such a piece).
  bool at_origin = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their split (and possibly transformed) parts. Empty
  // pieces are dropped, as `tokenizers` drops them.
  virtual void PreTokenize(std::vector<Piece>* pieces) const = 0;
};

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const Json& json,
                                                                const std::string& path);

}  // namespace muserve::tokenizer_internal
