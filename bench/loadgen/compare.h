// `muserve bench compare A.json B.json`: the figures of two runs side by
// side with their ratio B / A, load point by load point (matched by mode
// and value; points of one side only are listed), after the configuration
// keys that differ.
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace muserve::loadgen {

// `a` and `b` as ResultJson writes them. INVALID_ARGUMENT naming the side
// ("A" or "B") when one is not a bench result.
absl::StatusOr<std::string> CompareResults(const nlohmann::json& a, const nlohmann::json& b);

// Reads the files, then CompareResults; errors name the file.
absl::StatusOr<std::string> CompareResultFiles(const std::filesystem::path& a,
                                               const std::filesystem::path& b);

}  // namespace muserve::loadgen
