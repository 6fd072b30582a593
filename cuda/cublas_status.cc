#include "cuda/cublas_status.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "cuda/cublaslt_library.h"

namespace muserve::cuda {

absl::Status ToStatus(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  // Only cuBLASLt's own calls return a cublasStatus_t, so it is loaded.
  const std::string message = absl::StrCat(call, ": ", CublasLt().GetStatusName(status), ": ",
                                           CublasLt().GetStatusString(status));
  switch (status) {
    case CUBLAS_STATUS_NOT_INITIALIZED:
    case CUBLAS_STATUS_ALLOC_FAILED:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace muserve::cuda
