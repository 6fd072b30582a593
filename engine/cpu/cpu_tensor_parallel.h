// The CPU backend for a tensor-parallel size: one CpuBackend for size 1 (no
// wrapper, no collectives), otherwise a TensorParallelBackend over `size`
// CpuBackend ranks that share the mapped checkpoint and talk through an
// in-process communicator.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "engine/api/backend.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"

namespace muserve {

// options apply to each rank: num_threads threads and num_blocks KV blocks
// (of its own KV heads: CpuKvBytesPerToken(config, size) bytes per token)
// per rank. InvalidArgument when the model does not split over `size`
// (naming the size at fault) or size < 1.
absl::StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(LoadedModel model,
                                                          int32_t tensor_parallel_size,
                                                          const CpuBackendOptions& options);

}  // namespace muserve
