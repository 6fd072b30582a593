// `muserve generate`: runs the model in-process on one prompt and streams the
// text to stdout; timing goes to stderr.
#include <cstdio>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_join.h"
#include "server/cli/command.h"
#include "server/cli/offline_generation.h"
#include "server/cli/shared_flags.h"

ABSL_FLAG(bool, chat, false, "Render the prompt as a user message through the chat template");
ABSL_FLAG(int32_t, prefill_chunk, 512, "Prompt tokens per forward pass while prefilling");

namespace muserve::cli {
namespace {

constexpr std::string_view kUsage = R"(Usage: muserve generate --model DIR [flags] "prompt"

Runs the model in-process (no server) and streams the generated text.

Flags:
  --model DIR          Hugging Face model directory (required)
  --max-tokens N       maximum tokens to generate (default 128)
  --temperature T      0 = greedy (default), otherwise sample from softmax(logits / T)
  --seed N             sampler seed (default: random)
  --chat               render the prompt as one user message with the chat template
  --system TEXT        system message, with --chat
  --chat-template FILE use this Jinja template instead of tokenizer_config.json's
  --threads N          CPU threads (default 2)
  --block-size N       KV cache block size in tokens (default 16)
  --prefill-chunk N    prompt tokens per forward pass (default 512)
)";

int RunGenerate(const std::vector<std::string_view>& args) {
  if (args.size() != 1) {
    std::fprintf(stderr, "muserve generate: expected exactly one prompt argument, got %zu\n%s",
                 args.size(), std::string(kUsage).c_str());
    return 2;
  }
  OfflineGenerationOptions options;
  options.model_dir = absl::GetFlag(FLAGS_model);
  if (options.model_dir.empty()) {
    std::fprintf(stderr, "muserve generate: --model is required\n");
    return 2;
  }
  options.prompt = std::string(args[0]);
  options.chat = absl::GetFlag(FLAGS_chat);
  options.system_prompt = absl::GetFlag(FLAGS_system);
  if (auto path = absl::GetFlag(FLAGS_chat_template)) options.chat_template = *path;
  if (options.system_prompt && !options.chat) {
    std::fprintf(stderr, "muserve generate: --system needs --chat\n");
    return 2;
  }
  options.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  options.sampling.temperature = absl::GetFlag(FLAGS_temperature);
  options.sampling.seed = absl::GetFlag(FLAGS_seed);
  options.num_threads = absl::GetFlag(FLAGS_threads);
  options.block_size = absl::GetFlag(FLAGS_block_size);
  options.prefill_chunk = absl::GetFlag(FLAGS_prefill_chunk);

  auto result = RunOfflineGeneration(options, [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  if (!result.ok()) {
    std::fprintf(stderr, "\nmuserve generate: %s\n",
                 std::string(result.status().message()).c_str());
    return 1;
  }
  std::fprintf(stdout, "\n");
  const double prefill_rate = result->prompt_ids.size() / std::max(result->prefill_seconds, 1e-9);
  const double decode_rate = result->output_ids.size() / std::max(result->decode_seconds, 1e-9);
  std::fprintf(stderr,
               "[%zu prompt tokens, %.1f tok/s prefill; %zu generated tokens, %.1f tok/s decode; "
               "stopped by %s]\n",
               result->prompt_ids.size(), prefill_rate, result->output_ids.size(), decode_rate,
               result->stopped_on_eos ? "end-of-sequence token" : "max tokens");
  return 0;
}

}  // namespace

const Command& GenerateCommand() {
  static const Command command{"generate",
                               "run the model in-process on one prompt and stream the text",
                               kUsage,
                               {"model", "max_tokens", "temperature", "seed", "chat", "system",
                                "chat_template", "threads", "block_size", "prefill_chunk"},
                               &RunGenerate};
  return command;
}

}  // namespace muserve::cli
