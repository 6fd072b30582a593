// Argument checks and launch results of the kernel launchers, as absl::Status:
// a bad argument is a bug of the caller (the backend), so InvalidArgument
// names the parameter; a failed launch goes through cuda_status.h.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "engine/api/dtype.h"

namespace muserve::cuda {

// InvalidArgument "<kernel>: <what>" unless `ok`.
absl::Status CheckArg(bool ok, const char* kernel, const char* what);

// InvalidArgument unless `dtype` is bf16 or f16.
absl::Status CheckHalfDType(DType dtype, const char* kernel);

// The status of the launch just made (cudaGetLastError), naming `kernel`.
absl::Status LaunchResult(const char* kernel);

// Blocks of `threads` covering `n` items, or 0 if n <= 0.
inline int64_t BlocksFor(int64_t n, int64_t threads) {
  return n <= 0 ? 0 : (n + threads - 1) / threads;
}

}  // namespace muserve::cuda

// Returns InvalidArgument "<kernel>: <condition> does not hold" from the
// enclosing launcher unless `condition` holds.
#define MUSERVE_KERNEL_ARG(condition, kernel)                                       \
  do {                                                                              \
    if (!(condition))                                                               \
      return ::muserve::cuda::CheckArg(false, kernel, #condition " does not hold"); \
  } while (false)
