// The CUDA backend over the GPUs of this host: a TensorParallelBackend of
// `tensor_parallel_size` CudaBackend ranks on devices 0..N-1, one NCCL
// communicator each (NcclCommunicator::CreateGroup), created on one thread
// per rank as CreateRank requires.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "cuda/cuda_backend.h"
#include "engine/api/backend.h"
#include "engine/model/weights.h"

namespace muserve::cuda {

// options.device is ignored: rank r runs on device r. Unavailable when fewer
// GPUs are visible than ranks; else the error of the rank that failed (not
// its peers' Aborted). The returned backend's rank 0 reports memory_report() through
// `report` when not null.
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaTensorParallelBackend(
    const LoadedModel& model, int32_t tensor_parallel_size, const CudaBackendOptions& options,
    CudaMemoryReport* report = nullptr);

}  // namespace muserve::cuda
