// The one way CUDA return codes become absl::Status: every call goes through
// MUSERVE_GPU_RETURN_IF_ERROR, whose message names the call and the library's
// own description of the error. NCCL's codes: cuda/nccl_status.h.
#pragma once

#include <cuda_runtime_api.h>

#include "absl/status/status.h"

namespace muserve::cuda {

// OK for cudaSuccess; otherwise Internal (a bug of ours: invalid value,
// misuse) or Unavailable (no device, device lost, out of device memory), with
// `call` and the runtime's error string in the message.
absl::Status ToStatus(cudaError_t error, const char* call);

}  // namespace muserve::cuda

#define MUSERVE_GPU_RETURN_IF_ERROR(call)                                         \
  do {                                                                            \
    if (absl::Status muserve_gpu_status = ::muserve::cuda::ToStatus(call, #call); \
        !muserve_gpu_status.ok())                                                 \
      return muserve_gpu_status;                                                  \
  } while (false)
