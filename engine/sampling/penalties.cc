// ApplyPenalties: vLLM's apply_penalties, operation for operation in float32
// (repetition, then frequency, then presence), so that penalised logits match
// it bit for bit. Costs O(distinct history tokens), never O(vocab).
#include <cstddef>

#include "engine/sampling/sampler.h"

namespace muserve {
namespace {

bool InVocab(int32_t token, size_t vocab) {
  return token >= 0 && static_cast<size_t>(token) < vocab;
}

// vLLM: where(logits > 0, logits / penalty, logits * penalty).
void Repeat(float& logit, float penalty) { logit = logit > 0 ? logit / penalty : logit * penalty; }

}  // namespace

void ApplyPenalties(std::span<float> logits, const SamplingParams& params,
                    const TokenHistory& history) {
  const size_t vocab = logits.size();
  if (params.repetition_penalty != 1.0f) {
    // Each token seen in the prompt or the output is penalised once.
    for (int32_t token : history.prompt_tokens) {
      if (InVocab(token, vocab)) Repeat(logits[token], params.repetition_penalty);
    }
    for (const auto& [token, count] : history.output_counts) {
      if (count > 0 && InVocab(token, vocab) && !history.prompt_tokens.contains(token)) {
        Repeat(logits[token], params.repetition_penalty);
      }
    }
  }
  if (params.frequency_penalty == 0.0f && params.presence_penalty == 0.0f) return;
  for (const auto& [token, count] : history.output_counts) {
    if (count <= 0 || !InVocab(token, vocab)) continue;
    float& logit = logits[token];
    // Two separate roundings, as vLLM's two in-place subtractions.
    logit = logit - params.frequency_penalty * static_cast<float>(count);
    logit = logit - params.presence_penalty;
  }
}

}  // namespace muserve
