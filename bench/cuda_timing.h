// What the GPU benchmarks share: timing with CUDA events, and the device's
// copy bandwidth, the limit a memory-bound kernel is measured against.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cuda/cuda_status.h"
#include "cuda/device_buffer.h"

namespace muserve::cuda {

// Milliseconds per call of fn() (which enqueues on the default stream) over
// `iterations` calls after one warm-up call.
template <class Fn>
absl::StatusOr<double> TimeMs(int iterations, Fn fn) {
  if (absl::Status s = fn(); !s.ok()) return s;
  struct Events {
    cudaEvent_t start = nullptr, stop = nullptr;
    ~Events() {
      if (start != nullptr) cudaEventDestroy(start);
      if (stop != nullptr) cudaEventDestroy(stop);
    }
  } e;
  MUSERVE_GPU_RETURN_IF_ERROR(cudaEventCreate(&e.start));
  MUSERVE_GPU_RETURN_IF_ERROR(cudaEventCreate(&e.stop));
  MUSERVE_GPU_RETURN_IF_ERROR(cudaEventRecord(e.start));
  for (int i = 0; i < iterations; ++i)
    if (absl::Status s = fn(); !s.ok()) return s;
  MUSERVE_GPU_RETURN_IF_ERROR(cudaEventRecord(e.stop));
  MUSERVE_GPU_RETURN_IF_ERROR(cudaEventSynchronize(e.stop));
  float ms = 0.0f;
  MUSERVE_GPU_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, e.start, e.stop));
  return static_cast<double>(ms) / iterations;
}

// Device-to-device cudaMemcpy of `bytes`: bytes read + written per second.
inline absl::StatusOr<double> CopyBandwidth(int64_t bytes, int iterations) {
  absl::StatusOr<DeviceBuffer> a = DeviceBuffer::Allocate(bytes);
  if (!a.ok()) return a.status();
  absl::StatusOr<DeviceBuffer> b = DeviceBuffer::Allocate(bytes);
  if (!b.ok()) return b.status();
  absl::StatusOr<double> ms = TimeMs(iterations, [&]() -> absl::Status {
    MUSERVE_GPU_RETURN_IF_ERROR(
        cudaMemcpyAsync(b->get(), a->get(), static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice));
    return absl::OkStatus();
  });
  if (!ms.ok()) return ms.status();
  return 2.0 * static_cast<double>(bytes) / (*ms * 1e-3);
}

}  // namespace muserve::cuda
