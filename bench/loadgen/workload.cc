#include "bench/loadgen/workload.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"

namespace muserve::loadgen {

absl::StatusOr<Workload> SyntheticWorkload(const SyntheticOptions& options) {
  if (options.turns < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--turns must be >= 1, got ", options.turns));
  }
  if (options.conversations < 1 || options.vocab_size < 1) {
    return absl::InvalidArgumentError("a synthetic workload needs conversations and a vocabulary");
  }
  const int64_t longest = int64_t{options.turns} * (int64_t{options.input_len.UpperBound()} +
                                                    options.output_len.UpperBound());
  if (longest > options.max_context) {
    return absl::InvalidArgumentError(
        absl::StrCat("--turns x (--input-len + --output-len) can reach ", longest,
                     " tokens, more than the model's context of ", options.max_context,
                     " (--turns ", options.turns, ", --input-len ", options.input_len.ToString(),
                     ", --output-len ", options.output_len.ToString(), ")"));
  }
  std::vector<int32_t> allowed;
  for (int32_t id = 0; id < options.vocab_size; ++id) {
    if (std::find(options.eos_token_ids.begin(), options.eos_token_ids.end(), id) ==
        options.eos_token_ids.end()) {
      allowed.push_back(id);
    }
  }
  if (allowed.empty()) return absl::InvalidArgumentError("the vocabulary has only EOS tokens");
  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<size_t> pick(0, allowed.size() - 1);
  Workload workload;
  workload.conversations.reserve(options.conversations);
  for (int64_t c = 0; c < options.conversations; ++c) {
    ConversationSpec conversation;
    conversation.api = ApiKind::kGenerateTokens;
    for (int32_t t = 0; t < options.turns; ++t) {
      TurnSpec turn;
      turn.token_ids.resize(options.input_len.Sample(rng));
      for (int32_t& id : turn.token_ids) id = allowed[pick(rng)];
      turn.max_tokens = options.output_len.Sample(rng);
      conversation.turns.push_back(std::move(turn));
    }
    workload.conversations.push_back(std::move(conversation));
  }
  workload.description = absl::StrCat("synthetic: ", options.conversations, " conversations x ",
                                      options.turns, " turns, input ", options.input_len.ToString(),
                                      ", output ", options.output_len.ToString(), " tokens");
  return workload;
}

}  // namespace muserve::loadgen
