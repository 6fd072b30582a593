#include "cuda/kernels/launch_status.h"

#include "absl/strings/str_cat.h"
#include "cuda/cuda_status.h"
#include "engine/api/absl_string_view.h"

namespace muserve::cuda {

absl::Status CheckArg(bool ok, const char* kernel, const char* what) {
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(kernel, ": ", what));
}

absl::Status CheckHalfDType(DType dtype, const char* kernel) {
  if (dtype == DType::kBF16 || dtype == DType::kF16) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(kernel, ": dtype must be BF16 or F16, got ", AsAbsl(DTypeName(dtype))));
}

absl::Status LaunchResult(const char* kernel) { return ToStatus(cudaGetLastError(), kernel); }

}  // namespace muserve::cuda
