#include "server/cli/shared_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::optional<uint64_t>, seed, std::nullopt,
          "generate, chat, complete: the sampler's seed (random when unset); make-model: the "
          "weights' seed (0 when unset)");
ABSL_FLAG(std::string, model, "",
          "Hugging Face model directory (config.json, safetensors, tokenizer.json)");
ABSL_FLAG(int32_t, threads, 2, "CPU threads for the forward pass");
ABSL_FLAG(int32_t, block_size, 16, "KV cache block size in tokens");
ABSL_FLAG(int32_t, max_tokens, 128, "Maximum number of tokens to generate");
ABSL_FLAG(float, temperature, 0.0f, "Sampling temperature; 0 is greedy decoding");
ABSL_FLAG(std::optional<std::string>, system, std::nullopt, "System message");
ABSL_FLAG(std::optional<std::string>, chat_template, std::nullopt,
          "File whose Jinja text replaces the model's chat template");
ABSL_FLAG(std::string, target, "localhost:50051", "host:port of a running muserve server");
ABSL_FLAG(std::optional<int32_t>, timeout_ms, std::nullopt,
          "chat, complete: deadline of each call in milliseconds (none when unset); health: time "
          "allowed for connecting and checking (1000 when unset)");
