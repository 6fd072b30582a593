#include "cuda/nccl_status.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace muserve::cuda {

absl::Status ToStatus(ncclResult_t result, const char* call) {
  if (result == ncclSuccess) return absl::OkStatus();
  const std::string message = absl::StrCat(call, ": ", ncclGetErrorString(result));
  switch (result) {
    case ncclSystemError:
    case ncclRemoteError:
    case ncclUnhandledCudaError:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace muserve::cuda
