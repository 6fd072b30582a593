#include "cuda/cuda_tensor_parallel.h"

#include <cuda_runtime_api.h>

#include <numeric>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cuda/nccl_communicator.h"
#include "engine/model/shard.h"
#include "engine/parallel/tensor_parallel_backend.h"

namespace muserve::cuda {

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaTensorParallelBackend(
    const LoadedModel& model, int32_t tensor_parallel_size, const CudaBackendOptions& options,
    CudaMemoryReport* report) {
  if (absl::Status s = ValidateTensorParallelSize(model.config, tensor_parallel_size); !s.ok())
    return s;
  int count = 0;
  if (const cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess || count == 0)
    return absl::UnavailableError(absl::StrCat(
        "no usable CUDA device: ",
        e != cudaSuccess ? absl::StrCat(cudaGetErrorName(e), ": ", cudaGetErrorString(e))
                         : std::string("none visible")));
  if (count < tensor_parallel_size)
    return absl::UnavailableError(absl::StrCat("tensor_parallel_size ", tensor_parallel_size,
                                               " needs as many GPUs; ", count, " visible"));
  std::vector<int> devices(static_cast<size_t>(tensor_parallel_size));
  std::iota(devices.begin(), devices.end(), 0);
  absl::StatusOr<std::vector<std::unique_ptr<NcclCommunicator>>> group =
      NcclCommunicator::CreateGroup(devices);
  if (!group.ok()) return group.status();

  // Every rank at once: their start-up steps meet in collectives.
  std::vector<absl::StatusOr<std::unique_ptr<CudaBackend>>> ranks;
  for (size_t r = 0; r < devices.size(); ++r) ranks.emplace_back(absl::UnknownError("not created"));
  {
    std::vector<std::thread> threads;
    for (size_t r = 0; r < devices.size(); ++r) {
      threads.emplace_back([&, r] {
        CudaBackendOptions rank_options = options;
        rank_options.device = devices[r];
        ranks[r] = CudaBackend::CreateRank(model, *(*group)[r], rank_options);
      });
    }
    for (std::thread& t : threads) t.join();
  }
  // The rank whose own step failed, rather than the peers it made give up
  // (Aborted: Agree in cuda_backend.cc) or time out waiting for it.
  const auto secondary = [](const absl::Status& s) {
    return absl::IsAborted(s) || absl::IsDeadlineExceeded(s);
  };
  const absl::Status* failed = nullptr;
  for (const auto& rank : ranks)
    if (!rank.ok() && (failed == nullptr || secondary(*failed))) failed = &rank.status();
  if (failed != nullptr) return *failed;
  std::vector<std::unique_ptr<Backend>> backends;
  for (auto& rank : ranks) backends.push_back(std::move(*rank));
  if (report != nullptr) *report = static_cast<CudaBackend&>(*backends[0]).memory_report();
  std::vector<std::unique_ptr<Communicator>> communicators;
  for (auto& c : *group) communicators.push_back(std::move(c));
  // The weights are on the GPUs: the ranks keep nothing of the mapping.
  absl::StatusOr<std::unique_ptr<TensorParallelBackend>> backend =
      TensorParallelBackend::Create(std::move(backends), std::move(communicators), std::nullopt);
  if (!backend.ok()) return backend.status();
  return std::unique_ptr<Backend>(std::move(*backend));
}

}  // namespace muserve::cuda
