// Token sampling for one sequence from its logits row, with the per-request
// controls of an OpenAI-style API. Processing order (as vLLM's sampler):
//   1. repetition penalty (prompt and output tokens), then presence and
//      frequency penalties (output tokens only) on the raw logits;
//   2. temperature (0, or below kGreedyTemperature as in vLLM, selects
//      greedy: argmax of the penalised logits, lowest id on ties);
//   3. min_p, top_k, top_p filtering (top_k and min_p commute; top_p is
//      computed on what they leave, renormalised);
//   4. an inverse-CDF draw from the request's own generator over the
//      surviving tokens in id order, consuming exactly one uniform.
// Filters follow transformers' TopK/TopP/MinPLogitsWarper: top_k keeps every
// token tied with the k-th largest logit; top_p keeps the most likely tokens
// until their mass reaches top_p (the one that crosses it included; ties at
// the cut broken by lowest id); min_p keeps p >= min_p * p_max. Each keeps at
// least the most likely token.
// Reported logprobs (chosen token and top-n) are log_softmax of the model's
// raw logits, before penalties, temperature and filtering.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"

namespace muserve {

struct SamplingParams {
  float temperature = 1.0f;         // [0, 100]; 0 = greedy
  int32_t top_k = 0;                // >= 0; 0 = no limit
  float top_p = 1.0f;               // (0, 1]
  float min_p = 0.0f;               // [0, 1]
  float repetition_penalty = 1.0f;  // (0, 10]; 1 = off (HF/vLLM semantics)
  float presence_penalty = 0.0f;    // [-2, 2]
  float frequency_penalty = 0.0f;   // [-2, 2]
  // Seed of this request's generator: the same seed gives the same tokens
  // whatever else is in the batch. Unset: drawn from std::random_device.
  std::optional<uint64_t> seed;
  // Report each chosen token's logprob. Costs a log-softmax over the whole
  // vocabulary per token, so it is computed only when asked for.
  bool logprobs = false;
  int32_t top_logprobs = 0;  // [0, 20]: how many alternatives to report (implies logprobs)

  bool wants_logprobs() const { return logprobs || top_logprobs > 0; }

  // InvalidArgument naming the field ("top_p must be in (0, 1], got 0").
  absl::Status Validate() const;
};

struct SampledToken {
  int32_t token = 0;
  // log_softmax(raw logits)[token], when SamplingParams::wants_logprobs().
  std::optional<float> logprob;
  // The top_logprobs most likely tokens under the raw logits, most likely
  // first (lowest id first on ties).
  std::vector<std::pair<int32_t, float>> top_logprobs;
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

// The tokens a sequence has seen, for the penalties. Kept by the sequence and
// updated as it generates (not rebuilt per step).
struct TokenHistory {
  absl::flat_hash_set<int32_t> prompt_tokens;           // distinct prompt tokens
  absl::flat_hash_map<int32_t, int32_t> output_counts;  // output token -> occurrences
};

// Temperatures below this are greedy (vLLM's _SAMPLING_EPS): dividing by a
// smaller one would overflow float logits.
inline constexpr float kGreedyTemperature = 1e-5f;

// What a sampler (the host's Sampler or a backend's on its device) needs for
// one sampled row. The engine loop fills it before the step: `uniform` comes
// from the request's SamplerRng through DrawSampleUniform, so a request's
// generator advances exactly as with Sampler::Sample(..., rng) whichever
// sampler runs. The pointers and span must outlive the call that uses it.
struct SampleInput {
  const SamplingParams* params = nullptr;
  const TokenHistory* history = nullptr;
  std::span<const int32_t> banned_tokens;  // see Sampler::Sample
  double uniform = 0.0;                    // in [0, 1); unused when greedy
};

// One uniform from `rng` when `params` samples (temperature >=
// kGreedyTemperature), else 0 without touching `rng`.
double DrawSampleUniform(const SamplingParams& params, SamplerRng& rng);

// A token still in the running after the filters, with its logit after
// penalties and temperature.
struct SamplingCandidate {
  float logit = 0;
  int32_t token = 0;
};

// Samples tokens for one sequence at a time, reusing its scratch buffers so
// that a step allocates nothing beyond the returned top_logprobs. Not
// thread-safe: one per engine-loop thread (or per worker).
class Sampler {
 public:
  // See SampleToken.
  // `banned_tokens` can never be chosen (e.g. stop tokens under min_tokens);
  // they are removed after the logprobs are measured, so reported logprobs
  // stay those of the raw distribution. Ids outside the vocabulary are ignored.
  SampledToken Sample(std::span<float> logits, const SamplingParams& params,
                      const TokenHistory& history, SamplerRng& rng,
                      std::span<const int32_t> banned_tokens = {});
  // The same with the uniform drawn beforehand (SampleInput): equal results
  // for equal logits, parameters, history and generator state.
  SampledToken Sample(std::span<float> logits, const SampleInput& input);

  // The tokens that survive temperature, min_p, top_k and top_p for
  // already-penalised `logits`, in id order, each with logit / temperature.
  // Requires params.temperature >= kGreedyTemperature. The span is valid until
  // the next call. Exposed for tests against transformers' warpers.
  std::span<const SamplingCandidate> Filter(std::span<const float> logits,
                                            const SamplingParams& params);

 private:
  int32_t DrawUnfiltered(std::span<const float> logits, float temperature, double uniform);
  int32_t DrawFiltered(std::span<const float> logits, const SamplingParams& params, double uniform);

  std::optional<float> KthLargest(std::span<const float> logits, size_t k);

  std::vector<SamplingCandidate> candidates_;
  std::vector<float> heap_;
  std::vector<float> weights_;  // exps: of the raw row, then of the candidates
  std::vector<std::pair<int32_t, float>> raw_penalised_;
};

// Applies the repetition, frequency and presence penalties in place, exactly
// as vLLM does in float32: for every token seen in the prompt or the output, a
// positive logit is divided by repetition_penalty and any other multiplied by
// it; then each output token's logit loses frequency_penalty * count, and
// then presence_penalty once.
void ApplyPenalties(std::span<float> logits, const SamplingParams& params,
                    const TokenHistory& history);

// Samples one token. `logits` [vocab] is used as scratch and left modified.
// It must not be empty (checked: a backend always produces vocab_size >= 1
// logits). -inf masks a token; NaN is treated as -inf. History token ids
// outside [0, vocab) are ignored. `rng` is used only when sampling (temperature
// >= kGreedyTemperature): exactly one uniform per call. If every logit is
// masked the token is 0 with logprob -inf. Allocates its scratch per call: the
// engine loop keeps a Sampler instead.
SampledToken SampleToken(std::span<float> logits, const SamplingParams& params,
                         const TokenHistory& history, SamplerRng& rng);

}  // namespace muserve
