#include "engine/sampling/sampler.h"

#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/api/check.h"

namespace muserve {
namespace {

constexpr double kNegativeInfinity = -std::numeric_limits<double>::infinity();

// A logit as the sampler sees it: NaN counts as masked.
double Logit(float value) { return std::isnan(value) ? kNegativeInfinity : value; }

// log(sum(exp(x * scale - max))) + max, in double so the logprob of the
// chosen token does not lose precision on large vocabularies.
double LogSumExp(std::span<const float> values, double scale) {
  double max_value = kNegativeInfinity;
  for (float v : values) max_value = std::max(max_value, Logit(v) * scale);
  if (std::isinf(max_value)) return max_value;
  double sum = 0;
  for (float v : values) sum += std::exp(Logit(v) * scale - max_value);
  return max_value + std::log(sum);
}

int32_t ArgMax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (Logit(logits[i]) > Logit(logits[best])) best = static_cast<int32_t>(i);
  }
  return best;
}

}  // namespace

absl::Status SamplingParams::Validate() const {
  if (!(temperature >= 0.0f && temperature <= 100.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be in [0, 100], got ", temperature));
  }
  return absl::OkStatus();
}

SampledToken SampleToken(std::span<const float> logits, const SamplingParams& params,
                         SamplerRng& rng) {
  MUSERVE_CHECK(!logits.empty());
  SampledToken result;
  if (params.temperature == 0.0f) {
    result.token = ArgMax(logits);
  } else {
    // Inverse-CDF draw over softmax(logits / T); a fixed scan order keeps the
    // result a pure function of (logits, T, uniform draw).
    const double scale = 1.0 / params.temperature;
    const double log_norm = LogSumExp(logits, scale);
    const double target = rng.NextUniform();
    double cumulative = 0;
    result.token = -1;
    int32_t last_nonzero = 0;
    for (size_t i = 0; i < logits.size() && !std::isinf(log_norm); ++i) {
      const double p = std::exp(Logit(logits[i]) * scale - log_norm);
      if (p > 0) last_nonzero = static_cast<int32_t>(i);
      cumulative += p;
      if (target < cumulative) {
        result.token = static_cast<int32_t>(i);
        break;
      }
    }
    // Rounding can leave the cumulative sum just under 1.
    if (result.token < 0) result.token = last_nonzero;
  }
  result.logprob = static_cast<float>(Logit(logits[result.token]) - LogSumExp(logits, 1.0));
  return result;
}

}  // namespace muserve
