// SamplingParams::Validate: every field's range, named in the message so that
// a client sees which of its request fields to fix.
#include "absl/strings/str_cat.h"
#include "engine/sampling/sampler.h"

namespace muserve {
namespace {

// Written as !(in range) so that NaN fails every check.
absl::Status OutOfRange(const char* field, const char* range, double value) {
  return absl::InvalidArgumentError(absl::StrCat(field, " must be in ", range, ", got ", value));
}

}  // namespace

absl::Status SamplingParams::Validate() const {
  if (!(temperature >= 0.0f && temperature <= 100.0f)) {
    return OutOfRange("temperature", "[0, 100]", temperature);
  }
  if (!(top_k >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k must be >= 0 (0 = no limit), got ", top_k));
  }
  if (!(top_p > 0.0f && top_p <= 1.0f)) return OutOfRange("top_p", "(0, 1]", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return OutOfRange("min_p", "[0, 1]", min_p);
  if (!(repetition_penalty > 0.0f && repetition_penalty <= 10.0f)) {
    return OutOfRange("repetition_penalty", "(0, 10]", repetition_penalty);
  }
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) {
    return OutOfRange("presence_penalty", "[-2, 2]", presence_penalty);
  }
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) {
    return OutOfRange("frequency_penalty", "[-2, 2]", frequency_penalty);
  }
  if (!(top_logprobs >= 0 && top_logprobs <= 20)) {
    return OutOfRange("top_logprobs", "[0, 20]", top_logprobs);
  }
  return absl::OkStatus();
}

}  // namespace muserve
