// OutputProcessor: one request's output side. It turns each sampled token into
// a Delta (token ids, logprobs, and text from the incremental detokenizer) and
// decides when generation stops. Owned and called by the engine-loop thread.
//
// Invariants and semantics:
//  - Text is released only when final: valid UTF-8 (IncrementalDetokenizer)
//    and not a possible beginning of any stop string ("held back"). Held-back
//    text is released as soon as it can no longer become a stop string, or
//    when generation ends for a reason other than a stop string.
//  - A stop string is matched across token boundaries on the detokenized
//    text; the returned text ends right before the match. When several could
//    match, the one completed first in the text wins, ties going to the
//    longest (StopStringMatcher), so the result does not depend on how the
//    text was split into tokens. The token that completed the match is still
//    reported in token_ids. A stop string also applies to text released at
//    the end (the detokenizer's incomplete tail): it came before the end.
//  - The model's EOS ids (unless ignore_eos) and stop_token_ids end generation;
//    that token is counted in usage but not emitted (no id, no text). EOS is
//    checked before stop_token_ids, so an id in both reports kEos.
//  - At least min_tokens tokens are emitted before any stop fires: an EOS or
//    stop id fires only after min_tokens emitted tokens (before that it is an
//    ordinary token, emitted and decoded: the sampler should mask those ids
//    while under min_tokens, as vLLM does); a stop string fires only when
//    completed by token number min_tokens or later, and only on text that
//    token added. max_output_tokens (max_tokens, or the context) ends with
//    kLength, unless that last token also completes a stop string or is EOS.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampling/sampler.h"
#include "engine/tokenizer/tokenizer.h"
#include "scheduler/request.h"
#include "scheduler/stop_string_matcher.h"

namespace muserve {

class OutputProcessor {
 public:
  // `tokenizer` must outlive this object. `stop` must have passed Validate().
  // `eos_token_ids` are the model's. `max_output_tokens` is
  // min(stop.max_tokens, context - prompt length) and must be >= 1 (the
  // caller rejects a prompt that fills the context).
  OutputProcessor(const Tokenizer& tokenizer, const std::vector<TokenId>& prompt_tokens,
                  const StopParams& stop, bool skip_special_tokens,
                  const std::vector<TokenId>& eos_token_ids, int32_t max_output_tokens,
                  bool want_logprobs);

  struct StepResult {
    Delta delta;  // may be empty
    bool finished = false;
    FinishReason reason = FinishReason::kLength;  // when finished
    std::optional<TokenId> matched_stop_token;
    std::optional<std::string> matched_stop_string;
  };

  // Appends one sampled token. Must not be called after a finished result or
  // Finish() (checked).
  StepResult Append(const SampledToken& token);

  // Generation ended from outside (abort): returns whatever text is held
  // back only if `release_held_text`; the engine loop passes false on abort.
  // Released text is still cut before a stop string. Returns an empty delta
  // once generation has finished.
  Delta Finish(bool release_held_text);

  // Tokens appended so far, including an EOS or stop id that ended generation.
  int32_t num_output_tokens() const { return num_output_tokens_; }
  bool finished() const { return finished_; }

 private:
  // Adds `text` (newly final detokenized text) to the held-back text and
  // releases into `delta` what no stop string can claim. Returns the index of
  // the stop string that fired, having released only the text before it.
  std::optional<size_t> ConsumeText(std::string_view text, bool stop_strings_allowed, Delta& delta);
  // Generation ends for a reason other than a stop string so far: flushes the
  // detokenizer and releases all text, unless that text completes a stop
  // string (returned, as in ConsumeText).
  std::optional<size_t> ReleaseAll(bool stop_strings_allowed, Delta& delta);
  void EmitToken(const SampledToken& token, Delta& delta) const;
  bool IsEos(TokenId id) const;
  bool IsStopToken(TokenId id) const;

  StopParams stop_;
  std::vector<TokenId> eos_token_ids_;
  int32_t max_output_tokens_ = 0;
  bool want_logprobs_ = false;
  IncrementalDetokenizer detokenizer_;
  StopStringMatcher matcher_;
  // Detokenized but held back: always the last matcher_.held_length() bytes
  // of the text so far (a possible stop-string prefix).
  std::string pending_text_;
  int32_t num_output_tokens_ = 0;
  bool finished_ = false;
};

}  // namespace muserve
