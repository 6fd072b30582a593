// DeviceBuffer: one cudaMalloc'd allocation, freed with its owner. Every
// device allocation of the CUDA backend goes through it, so that a failed
// start-up (out of memory half way through loading) frees what it took.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "cuda/cuda_status.h"

namespace muserve::cuda {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // ResourceExhausted when device memory runs out, Unavailable without a
  // device; the message has the byte count.
  static absl::StatusOr<DeviceBuffer> Allocate(int64_t bytes) {
    DeviceBuffer buffer;
    if (bytes <= 0) return buffer;
    const cudaError_t error = cudaMalloc(&buffer.data_, static_cast<size_t>(bytes));
    if (error != cudaSuccess) {
      buffer.data_ = nullptr;
      const absl::Status s = ToStatus(error, "cudaMalloc");
      return absl::Status(
          error == cudaErrorMemoryAllocation ? absl::StatusCode::kResourceExhausted : s.code(),
          std::string(s.message()) + " (" + std::to_string(bytes) + " bytes)");
    }
    buffer.bytes_ = bytes;
    return buffer;
  }
  ~DeviceBuffer() { Reset(); }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      Reset();
      data_ = std::exchange(other.data_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return data_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  int64_t bytes() const { return bytes_; }

 private:
  void Reset() {
    if (data_ != nullptr) cudaFree(data_);
    data_ = nullptr;
    bytes_ = 0;
  }
  void* data_ = nullptr;
  int64_t bytes_ = 0;
};

}  // namespace muserve::cuda
