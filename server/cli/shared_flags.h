// Flags read by more than one subcommand (absl flags are process-global, so
// each name is defined once). Each command's usage text documents the
// meaning it gives a flag, and its default where the command overrides it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(std::optional<uint64_t>, seed);
ABSL_DECLARE_FLAG(std::string, model);                     // generate, serve
ABSL_DECLARE_FLAG(int32_t, threads);                       // generate, serve
ABSL_DECLARE_FLAG(int32_t, block_size);                    // generate, serve
ABSL_DECLARE_FLAG(int32_t, max_tokens);                    // generate, chat, complete
ABSL_DECLARE_FLAG(float, temperature);                     // generate, chat, complete
ABSL_DECLARE_FLAG(std::optional<std::string>, system);     // generate, chat
ABSL_DECLARE_FLAG(std::string, target);                    // chat, complete, health
ABSL_DECLARE_FLAG(std::optional<std::string>, chat_template);  // generate, serve
ABSL_DECLARE_FLAG(std::optional<int32_t>, timeout_ms);     // chat, complete, health
