// cuBLASLt, loaded with dlopen on first use rather than linked.
//
// Why: libcublasLt carries about 94 KiB of thread-local storage. A library
// linked into the executable has its TLS in every thread's static TLS block,
// which glibc takes out of each new thread's stack; civetweb (the Prometheus
// endpoint's HTTP server) starts its threads with a fixed ~100 KiB stack, so
// with cuBLASLt linked every `muserve serve` failed to start its metrics
// endpoint ("Cannot create threads"), GPU or not. Loaded with dlopen, the
// library's TLS is allocated per thread on demand instead.
#pragma once

#include <cublasLt.h>

#include "absl/status/statusor.h"

namespace muserve::cuda {

// The entry points the project calls, with cuBLASLt's own signatures.
struct CublasLtLibrary {
  decltype(&::cublasLtCreate) Create;
  decltype(&::cublasLtDestroy) Destroy;
  decltype(&::cublasLtGetStatusName) GetStatusName;
  decltype(&::cublasLtGetStatusString) GetStatusString;
  decltype(&::cublasLtMatmul) Matmul;
  decltype(&::cublasLtMatmulAlgoGetHeuristic) MatmulAlgoGetHeuristic;
  decltype(&::cublasLtMatmulDescCreate) MatmulDescCreate;
  decltype(&::cublasLtMatmulDescDestroy) MatmulDescDestroy;
  decltype(&::cublasLtMatmulDescSetAttribute) MatmulDescSetAttribute;
  decltype(&::cublasLtMatmulPreferenceCreate) MatmulPreferenceCreate;
  decltype(&::cublasLtMatmulPreferenceDestroy) MatmulPreferenceDestroy;
  decltype(&::cublasLtMatmulPreferenceSetAttribute) MatmulPreferenceSetAttribute;
  decltype(&::cublasLtMatrixLayoutCreate) MatrixLayoutCreate;
  decltype(&::cublasLtMatrixLayoutDestroy) MatrixLayoutDestroy;
};

// Loads libcublasLt.so.<major of the headers built against> once (thread
// safe) and resolves every entry point. Unavailable, with dlerror's message,
// when the library or a symbol is missing; the same result on every call.
absl::StatusOr<const CublasLtLibrary*> LoadCublasLt();

// The loaded library; only after LoadCublasLt() succeeded (checked).
const CublasLtLibrary& CublasLt();

}  // namespace muserve::cuda
