// Token sampling for one sequence from its logits row. This first version has
// greedy and temperature sampling; top-k/top-p/min-p and penalties join it
// with the scheduler.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>

#include "absl/status/status.h"

namespace muserve {

struct SamplingParams {
  // 0 selects greedy decoding (argmax, lowest id on ties, as torch.argmax).
  // Otherwise tokens are drawn from softmax(logits / temperature).
  float temperature = 1.0f;
  // Seed of this request's generator. The same seed and logits give the same
  // tokens whatever else is in the batch.
  std::optional<uint64_t> seed;

  // InvalidArgument naming the field when out of range (temperature in [0, 100]).
  absl::Status Validate() const;
};

struct SampledToken {
  int32_t token = 0;
  float logprob = 0;  // log-probability of `token` under softmax(logits) (temperature 1)
};

// A request's random generator: std::mt19937_64 has a sequence fixed by the
// C++ standard, so seeded outputs are reproducible across platforms and
// library versions (absl::BitGen's are not).
class SamplerRng {
 public:
  explicit SamplerRng(uint64_t seed) : engine_(seed) {}
  // Uniform double in [0, 1) with 53 random bits.
  double NextUniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

 private:
  std::mt19937_64 engine_;
};

// Samples one token from `logits` [vocab], which must not be empty (a
// backend always produces vocab_size >= 1 logits; checked). `rng` is used only
// when params.temperature > 0. -inf masks a token; a NaN logit (a numerical
// fault upstream) is treated as -inf so it can never be chosen. If every
// logit is masked, token 0 is returned with logprob -inf.
SampledToken SampleToken(std::span<const float> logits, const SamplingParams& params,
                         SamplerRng& rng);

}  // namespace muserve
