// tokenizer.json "post_processor", applied when encoding with
// add_special_tokens: adds template special tokens (e.g. Llama's BOS).
// Supported types: TemplateProcessing, ByteLevel (ids unchanged), Sequence,
// BertProcessing and RobertaProcessing (CLS ... SEP). Only the single-sequence
// template matters here: the server never encodes pairs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/json_fields.h"

namespace muserve::tokenizer_internal {

class PostProcessor {
 public:
  // [0]: ids added before the sequence, [1]: ids added after it.
  explicit PostProcessor(std::vector<std::vector<int32_t>> prefix_and_suffix_ids)
      : items_(std::move(prefix_and_suffix_ids)) {}
  // Wraps `ids` in the template.
  void Apply(std::vector<int32_t>* ids) const;

 private:
  // [0]: ids before the sequence, [1]: ids after it.
  std::vector<std::vector<int32_t>> items_;
};

// Whether an id names a token (of the model's vocabulary or an added token).
using IsKnownId = std::function<bool(int32_t)>;

// Every id the template adds must satisfy `is_known_id`.
absl::StatusOr<std::unique_ptr<PostProcessor>> ParsePostProcessor(const Json& json,
                                                                  const std::string& path,
                                                                  const IsKnownId& is_known_id);

}  // namespace muserve::tokenizer_internal
