#include "server/cli/offline_generation.h"

#include <algorithm>
#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/api/file_util.h"
#include "engine/api/model_config.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/generation_config.h"
#include "engine/model/weights.h"
#include "engine/tokenizer/chat_template.h"
#include "nlohmann/json.hpp"

namespace muserve::cli {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

absl::StatusOr<std::vector<TokenId>> EncodePrompt(const OfflineGenerationOptions& options,
                                                  const Tokenizer& tokenizer) {
  if (!options.chat) return tokenizer.Encode(options.prompt, /*add_special_tokens=*/true);
  auto chat_template = ChatTemplate::FromTokenizerConfig(
      options.model_dir / "tokenizer_config.json", options.chat_template);
  if (!chat_template.ok()) return chat_template.status();
  std::vector<ChatMessage> messages;
  if (options.system_prompt) messages.push_back({"system", *options.system_prompt, std::nullopt});
  messages.push_back({"user", options.prompt, std::nullopt});
  ChatTemplateOptions template_options;
  template_options.add_generation_prompt = true;
  auto rendered = (*chat_template)->Render(messages, template_options);
  if (!rendered.ok()) return rendered.status();
  // The template already wrote BOS where the model wants it, so encode
  // without the post-processor, as transformers' apply_chat_template does.
  return tokenizer.Encode(*rendered, /*add_special_tokens=*/false);
}

}  // namespace

absl::StatusOr<OfflineGenerationResult> RunOfflineGeneration(
    const OfflineGenerationOptions& options, const std::function<void(std::string_view)>& on_text) {
  if (options.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-tokens must be at least 1, got ", options.max_tokens));
  }
  if (options.prefill_chunk < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefill-chunk must be at least 1, got ", options.prefill_chunk));
  }
  if (absl::Status status = options.sampling.Validate(); !status.ok()) return status;

  auto model = LoadModel(options.model_dir);
  if (!model.ok()) return model.status();
  auto tokenizer = Tokenizer::FromFile(options.model_dir / "tokenizer.json");
  if (!tokenizer.ok()) return tokenizer.status();
  auto stop_ids = LoadEosTokenIds(options.model_dir, model->config);
  if (!stop_ids.ok()) return stop_ids.status();

  OfflineGenerationResult result;
  auto prompt_ids = EncodePrompt(options, **tokenizer);
  if (!prompt_ids.ok()) return prompt_ids.status();
  result.prompt_ids = std::move(*prompt_ids);
  const int64_t prompt_len = static_cast<int64_t>(result.prompt_ids.size());
  if (prompt_len == 0) return absl::InvalidArgumentError("prompt encodes to no tokens");
  const int64_t context = model->config.max_position_embeddings;
  if (prompt_len >= context) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt has ", prompt_len, " tokens; the model's context is ", context));
  }
  for (TokenId id : result.prompt_ids) {
    if (id < 0 || id >= model->config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt token id ", id, " is outside the model's vocabulary of ",
                       model->config.vocab_size, " (tokenizer.json and config.json disagree)"));
    }
  }
  const int64_t max_len = std::min<int64_t>(context, prompt_len + options.max_tokens);

  CpuBackendOptions backend_options;
  backend_options.num_threads = options.num_threads;
  backend_options.block_size = options.block_size;
  // Steps never exceed one prefill chunk, so the backend reserves no more.
  backend_options.max_num_batched_tokens = options.prefill_chunk;
  backend_options.num_blocks =
      static_cast<int32_t>((max_len + options.block_size - 1) / options.block_size);
  const int64_t vocab = model->config.vocab_size;
  auto backend = CpuBackend::Create(std::move(*model), backend_options);
  if (!backend.ok()) return backend.status();

  std::vector<int32_t> block_table(backend_options.num_blocks);
  for (int32_t i = 0; i < backend_options.num_blocks; ++i) block_table[i] = i;
  std::vector<float> logits(vocab);
  SamplerRng rng(options.sampling.seed.value_or(std::random_device{}()));
  Sampler sampler;
  // The tokens the penalties see, kept up to date as output is generated.
  TokenHistory history;
  history.prompt_tokens.insert(result.prompt_ids.begin(), result.prompt_ids.end());
  IncrementalDetokenizer detokenizer(**tokenizer, /*skip_special_tokens=*/true);
  detokenizer.SetPrompt(result.prompt_ids);

  // Runs tokens [begin, end) of the full sequence; the last one is sampled.
  std::vector<TokenId> sequence = result.prompt_ids;
  auto run_step = [&](int64_t begin, int64_t end) -> absl::Status {
    StepBatch batch;
    for (int64_t pos = begin; pos < end; ++pos) {
      batch.tokens.push_back(sequence[pos]);
      batch.positions.push_back(static_cast<int32_t>(pos));
      batch.slot_mapping.push_back(block_table[pos / options.block_size] *
                                       int64_t{options.block_size} +
                                   pos % options.block_size);
    }
    StepSequence seq;
    seq.query_start = 0;
    seq.query_len = static_cast<int32_t>(end - begin);
    seq.context_len = static_cast<int32_t>(end);
    seq.block_table = block_table;
    seq.sample = end == static_cast<int64_t>(sequence.size());
    batch.sequences.push_back(std::move(seq));
    return (*backend)->Forward(batch,
                               batch.num_sampled() ? std::span<float>(logits) : std::span<float>());
  };

  const auto prefill_start = Clock::now();
  for (int64_t begin = 0; begin < prompt_len; begin += options.prefill_chunk) {
    const int64_t end = std::min<int64_t>(prompt_len, begin + options.prefill_chunk);
    if (absl::Status status = run_step(begin, end); !status.ok()) return status;
  }
  result.prefill_seconds = SecondsSince(prefill_start);

  const auto decode_start = Clock::now();
  while (true) {
    const SampledToken next = sampler.Sample(logits, options.sampling, history, rng);
    if (std::find(stop_ids->begin(), stop_ids->end(), next.token) != stop_ids->end()) {
      result.stopped_on_eos = true;
      break;
    }
    result.output_ids.push_back(next.token);
    ++history.output_counts[next.token];
    sequence.push_back(next.token);
    std::string piece = detokenizer.Step(next.token);
    if (!piece.empty()) {
      result.text += piece;
      on_text(piece);
    }
    if (static_cast<int64_t>(sequence.size()) >= max_len) break;
    const int64_t pos = static_cast<int64_t>(sequence.size()) - 1;
    if (absl::Status status = run_step(pos, pos + 1); !status.ok()) return status;
  }
  std::string tail = detokenizer.Flush();
  if (!tail.empty()) {
    result.text += tail;
    on_text(tail);
  }
  result.decode_seconds = SecondsSince(decode_start);
  return result;
}

}  // namespace muserve::cli
