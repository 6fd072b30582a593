#include "cuda/kernels/gather_rows.h"
#include "cuda/kernels/launch_status.h"

namespace muserve::cuda {
namespace {

constexpr int kThreads = 256;

// One block per output row, copied as 32-bit words.
__global__ void GatherRowsKernel(const uint32_t* __restrict__ in, int64_t row_words,
                                 const int32_t* __restrict__ rows, uint32_t* __restrict__ out) {
  const int64_t r = blockIdx.x;
  const uint32_t* src = in + static_cast<int64_t>(rows[r]) * row_words;
  uint32_t* dst = out + r * row_words;
  for (int64_t i = threadIdx.x; i < row_words; i += kThreads) dst[i] = src[i];
}

}  // namespace

absl::Status LaunchGatherRows(const void* in, int64_t row_bytes, const int32_t* rows,
                              int64_t num_rows, void* out, cudaStream_t stream) {
  constexpr const char* kName = "LaunchGatherRows";
  MUSERVE_KERNEL_ARG(row_bytes > 0 && row_bytes % 4 == 0, kName);
  MUSERVE_KERNEL_ARG(num_rows >= 0 && num_rows <= INT32_MAX, kName);
  if (num_rows == 0) return absl::OkStatus();
  GatherRowsKernel<<<static_cast<unsigned>(num_rows), kThreads, 0, stream>>>(
      static_cast<const uint32_t*>(in), row_bytes / 4, rows, static_cast<uint32_t*>(out));
  return LaunchResult(kName);
}

}  // namespace muserve::cuda
