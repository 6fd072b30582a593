// NCCL return codes as absl::Status, beside the CUDA ones of cuda_status.h, so
// that MUSERVE_GPU_RETURN_IF_ERROR takes either library's calls.
#pragma once

#include <nccl.h>

#include "absl/status/status.h"
#include "cuda/cuda_status.h"

namespace muserve::cuda {

// OK for ncclSuccess; otherwise Unavailable (system error, remote peer gone,
// CUDA failure underneath) or Internal, with `call` and NCCL's error string.
absl::Status ToStatus(ncclResult_t result, const char* call);

}  // namespace muserve::cuda
