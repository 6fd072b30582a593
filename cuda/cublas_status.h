// cuBLAS / cuBLASLt return codes as absl::Status, beside the CUDA ones of
// cuda_status.h, so that MUSERVE_GPU_RETURN_IF_ERROR takes cuBLASLt's calls.
#pragma once

#include <cublasLt.h>

#include "absl/status/status.h"
#include "cuda/cuda_status.h"

namespace muserve::cuda {

// OK for CUBLAS_STATUS_SUCCESS; otherwise Unavailable (not initialized: no
// device or driver; out of memory) or Internal (a bad value, an unsupported
// combination, a failed kernel: bugs of ours), with `call` and cuBLASLt's
// name and description of the status.
absl::Status ToStatus(cublasStatus_t status, const char* call);

}  // namespace muserve::cuda
