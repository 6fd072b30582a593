// tokenizer.json "decoder": token strings -> text. Each decoder transforms the
// list of token strings (`tokenizers`' decode_chain); the results are then
// concatenated. Supported types: Sequence, ByteLevel, ByteFallback, Fuse,
// Strip, Replace, Metaspace.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/json_fields.h"

namespace muserve::tokenizer_internal {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const Json& json, const std::string& path);

}  // namespace muserve::tokenizer_internal
