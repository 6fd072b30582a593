#include "scheduler/output_processor.h"

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/api/check.h"

namespace muserve {

OutputProcessor::OutputProcessor(const Tokenizer& tokenizer,
                                 const std::vector<TokenId>& prompt_tokens, const StopParams& stop,
                                 bool skip_special_tokens,
                                 const std::vector<TokenId>& eos_token_ids,
                                 int32_t max_output_tokens, bool want_logprobs)
    : stop_(stop),
      eos_token_ids_(eos_token_ids),
      max_output_tokens_(max_output_tokens),
      want_logprobs_(want_logprobs),
      detokenizer_(tokenizer, skip_special_tokens),
      matcher_(stop.stop_strings) {
  MUSERVE_CHECK(max_output_tokens_ >= 1);
  MUSERVE_CHECK(stop_.Validate().ok());
  detokenizer_.SetPrompt(prompt_tokens);
}

OutputProcessor::StepResult OutputProcessor::Append(const SampledToken& token) {
  MUSERVE_CHECK(!finished_);
  StepResult result;
  // An end token needs min_tokens emitted tokens before it; the token that
  // completes a stop string may itself be number min_tokens.
  const bool end_token_allowed = num_output_tokens_ >= stop_.min_tokens;
  ++num_output_tokens_;
  const bool stop_strings_allowed = num_output_tokens_ >= stop_.min_tokens;

  std::optional<FinishReason> end_token_reason;
  if (end_token_allowed && !stop_.ignore_eos && IsEos(token.token)) {
    end_token_reason = FinishReason::kEos;
  } else if (end_token_allowed && IsStopToken(token.token)) {
    end_token_reason = FinishReason::kStopToken;
  }

  std::optional<size_t> stop_index;
  if (end_token_reason.has_value()) {
    // Not emitted and not decoded; what was held back is final now.
    stop_index = ReleaseAll(stop_strings_allowed, result.delta);
    if (!stop_index.has_value()) {
      result.reason = *end_token_reason;
      result.matched_stop_token = token.token;
    }
  } else {
    EmitToken(token, result.delta);
    stop_index = ConsumeText(detokenizer_.Step(token.token), stop_strings_allowed, result.delta);
    if (!stop_index.has_value() && num_output_tokens_ >= max_output_tokens_) {
      stop_index = ReleaseAll(stop_strings_allowed, result.delta);
      result.reason = FinishReason::kLength;
    }
  }

  if (stop_index.has_value()) {
    result.reason = FinishReason::kStopString;
    result.matched_stop_string = stop_.stop_strings[*stop_index];
  }
  result.finished = end_token_reason.has_value() || stop_index.has_value() ||
                    num_output_tokens_ >= max_output_tokens_;
  finished_ = result.finished;
  return result;
}

Delta OutputProcessor::Finish(bool release_held_text) {
  Delta delta;
  if (finished_) return delta;
  finished_ = true;
  if (release_held_text) ReleaseAll(num_output_tokens_ >= stop_.min_tokens, delta);
  return delta;
}

std::optional<size_t> OutputProcessor::ConsumeText(std::string_view text, bool stop_strings_allowed,
                                                   Delta& delta) {
  const size_t old_size = pending_text_.size();
  pending_text_.append(text);
  const std::optional<StopStringMatcher::Match> match = matcher_.Feed(text, stop_strings_allowed);
  if (match.has_value()) {
    // The match lies within pending_text_: anything released earlier could
    // not begin a stop string (it was not held back).
    const size_t match_end = old_size + match->end;
    const size_t match_size = stop_.stop_strings[match->stop_index].size();
    MUSERVE_CHECK(match_end >= match_size);
    delta.text.append(pending_text_, 0, match_end - match_size);
    pending_text_.clear();
    return match->stop_index;
  }
  const size_t held = matcher_.held_length();
  MUSERVE_CHECK(held <= pending_text_.size());
  const size_t release = pending_text_.size() - held;
  delta.text.append(pending_text_, 0, release);
  pending_text_.erase(0, release);
  return std::nullopt;
}

std::optional<size_t> OutputProcessor::ReleaseAll(bool stop_strings_allowed, Delta& delta) {
  std::optional<size_t> stop_index = ConsumeText(detokenizer_.Flush(), stop_strings_allowed, delta);
  if (!stop_index.has_value()) {
    delta.text.append(pending_text_);
    pending_text_.clear();
  }
  return stop_index;
}

void OutputProcessor::EmitToken(const SampledToken& token, Delta& delta) const {
  delta.token_ids.push_back(token.token);
  if (!want_logprobs_) return;
  TokenLogprob& logprob = delta.logprobs.emplace_back();
  logprob.token = token.token;
  MUSERVE_CHECK(token.logprob.has_value());  // the loop asks the sampler for it
  logprob.logprob = *token.logprob;
  logprob.top.assign(token.top_logprobs.begin(), token.top_logprobs.end());
}

bool OutputProcessor::IsEos(TokenId id) const {
  return std::find(eos_token_ids_.begin(), eos_token_ids_.end(), id) != eos_token_ids_.end();
}

bool OutputProcessor::IsStopToken(TokenId id) const {
  return std::find(stop_.stop_token_ids.begin(), stop_.stop_token_ids.end(), id) !=
         stop_.stop_token_ids.end();
}

}  // namespace muserve
