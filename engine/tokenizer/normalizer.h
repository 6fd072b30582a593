// tokenizer.json "normalizer": text -> normalized text, applied to each piece
// of input between added tokens (as `tokenizers` does). Supported types:
// Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/tokenizer/json_fields.h"

namespace muserve::tokenizer_internal {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // `text` is valid UTF-8; so is the result.
  virtual std::string Normalize(std::string_view text) const = 0;
};

// Parses the normalizer object at `path` (not null).
absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const Json& json,
                                                            const std::string& path);

}  // namespace muserve::tokenizer_internal
