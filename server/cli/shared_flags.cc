#include "server/cli/shared_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::optional<uint64_t>, seed, std::nullopt,
          "generate: the sampler's seed (random when unset); make-model: the weights' seed (0 "
          "when unset)");
