// LaunchSampleRows: the kernel of sampling_kernel.cuh with 1024 threads per
// block (one row each).
#include "cuda/kernels/launch_status.h"
#include "cuda/kernels/sampling.h"
#include "cuda/kernels/sampling_kernel.cuh"

namespace muserve::cuda {
namespace {

constexpr int kThreads = 1024;

}  // namespace

absl::Status LaunchSampleRows(float* logits, int32_t rows, int32_t vocab_size,
                              const SamplerRowParams* params, const int32_t* lists, float* saved,
                              SamplerRowResult* results, cudaStream_t stream) {
  constexpr const char* kName = "LaunchSampleRows";
  MUSERVE_KERNEL_ARG(rows >= 0, kName);
  MUSERVE_KERNEL_ARG(vocab_size > 0, kName);
  if (rows == 0) return absl::OkStatus();
  MUSERVE_KERNEL_ARG(logits != nullptr && params != nullptr && results != nullptr, kName);
  sampling_kernel::SampleRowsKernel<kThreads><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
      logits, vocab_size, params, lists, saved, results);
  return LaunchResult(kName);
}

}  // namespace muserve::cuda
