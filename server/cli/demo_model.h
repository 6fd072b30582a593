// The demo model that `muserve serve` and `muserve bench` use when no
// --model is given: the tiny preset, written once into the cache directory
// ($MUSERVE_CACHE_DIR, else $XDG_CACHE_HOME/muserve, else ~/.cache/muserve).
#pragma once

#include <filesystem>

#include "absl/status/statusor.h"

namespace muserve::cli {

// The demo model's directory, created on first use (into a temporary
// sibling, then renamed, so that a crash or a concurrent process never
// leaves a half-written model).
absl::StatusOr<std::filesystem::path> EnsureDemoModel();

}  // namespace muserve::cli
