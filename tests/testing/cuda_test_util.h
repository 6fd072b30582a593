// Helpers of the GPU kernel tests (label `gpu`): device buffers, half-type
// element conversions, and the device check that skips a test where no CUDA
// device is visible. Header-only, included only by targets linking cudart.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/api/dtype.h"
#include "gtest/gtest.h"

namespace muserve::testing {

inline bool HaveCudaDevice() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

// A device copy of a host vector; ToHost() copies back. Failures are test
// failures (EXPECT), never crashes.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) : size_(host.size()) {
    if (size_ == 0) return;
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&data_), size_ * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(data_, host.data(), size_ * sizeof(T), cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  explicit DeviceArray(size_t size) : DeviceArray(std::vector<T>(size)) {}
  ~DeviceArray() { cudaFree(data_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() { return data_; }
  const T* get() const { return data_; }
  std::vector<T> ToHost() const {
    std::vector<T> host(size_);
    if (size_ > 0) {
      EXPECT_EQ(cudaMemcpy(host.data(), data_, size_ * sizeof(T), cudaMemcpyDeviceToHost),
                cudaSuccess);
    }
    return host;
  }

 private:
  T* data_ = nullptr;
  size_t size_;
};

// fp32 <-> the bits of a bf16 / f16 element (round to nearest even).
inline uint16_t ToHalfBits(DType dtype, float value) {
  return dtype == DType::kBF16 ? F32ToBf16(value) : F32ToF16(value);
}
inline float FromHalfBits(DType dtype, uint16_t bits) {
  return dtype == DType::kBF16 ? Bf16ToF32(bits) : F16ToF32(bits);
}
// `value` rounded to `dtype` and back: what a kernel reading it sees.
inline float RoundTo(DType dtype, float value) {
  return FromHalfBits(dtype, ToHalfBits(dtype, value));
}
// Unit roundoff of `dtype`: half the distance between 1 and the next value.
inline float UnitRoundoff(DType dtype) { return dtype == DType::kBF16 ? 0x1p-8f : 0x1p-11f; }

// Waits for the device and returns its first error (asynchronous kernel faults).
inline cudaError_t Sync() { return cudaDeviceSynchronize(); }

}  // namespace muserve::testing

#define MUSERVE_SKIP_WITHOUT_CUDA_DEVICE()                                       \
  do {                                                                           \
    if (!::muserve::testing::HaveCudaDevice()) GTEST_SKIP() << "no CUDA device"; \
  } while (false)
