// Flags read by more than one subcommand (absl flags are process-global, so
// each name is defined once).
#pragma once

#include <cstdint>
#include <optional>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(std::optional<uint64_t>, seed);
