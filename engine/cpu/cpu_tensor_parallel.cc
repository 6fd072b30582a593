#include "engine/cpu/cpu_tensor_parallel.h"

#include <utility>
#include <vector>

#include "engine/model/shard.h"
#include "engine/parallel/in_process_communicator.h"
#include "engine/parallel/tensor_parallel_backend.h"

namespace muserve {

absl::StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(LoadedModel model,
                                                          int32_t tensor_parallel_size,
                                                          const CpuBackendOptions& options) {
  if (absl::Status s = model.config.Validate(); !s.ok()) return s;
  if (absl::Status s = ValidateTensorParallelSize(model.config, tensor_parallel_size); !s.ok())
    return s;
  if (tensor_parallel_size == 1) {
    absl::StatusOr<std::unique_ptr<CpuBackend>> backend =
        CpuBackend::Create(std::move(model), options);
    if (!backend.ok()) return backend.status();
    return std::unique_ptr<Backend>(std::move(*backend));
  }
  std::vector<std::unique_ptr<InProcessCommunicator>> group =
      MakeInProcessCommunicators(tensor_parallel_size);
  std::vector<std::unique_ptr<Backend>> ranks;
  for (const auto& communicator : group) {
    absl::StatusOr<std::unique_ptr<CpuBackend>> rank =
        CpuBackend::CreateRank(model, *communicator, options);
    if (!rank.ok()) return rank.status();
    ranks.push_back(std::move(*rank));
  }
  std::vector<std::unique_ptr<Communicator>> communicators(std::make_move_iterator(group.begin()),
                                                           std::make_move_iterator(group.end()));
  // The ranks point into the model's mapping, whose storage does not move
  // with the LoadedModel (weights.h).
  absl::StatusOr<std::unique_ptr<TensorParallelBackend>> backend =
      TensorParallelBackend::Create(std::move(ranks), std::move(communicators), std::move(model));
  if (!backend.ok()) return backend.status();
  return std::unique_ptr<Backend>(std::move(*backend));
}

}  // namespace muserve
