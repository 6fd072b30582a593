// Element types of checkpoint tensors and their conversions to fp32.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace muserve {

enum class DType { kF32, kF16, kBF16 };

// Bytes per element.
size_t DTypeSize(DType dtype);

// "F32", "F16", "BF16" as written in safetensors headers.
std::string_view DTypeName(DType dtype);

// Parses a safetensors dtype string ("F32", "F16", "BF16").
absl::StatusOr<DType> ParseSafetensorsDType(std::string_view name);

// Parses a config.json `torch_dtype` ("float32", "float16", "bfloat16").
absl::StatusOr<DType> ParseTorchDType(std::string_view name);

// bf16 -> f32 is exact: bf16 is the top half of an IEEE binary32.
inline float Bf16ToF32(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

// f32 -> bf16 with round-to-nearest-even (NaN stays NaN), as PyTorch does.
inline uint16_t F32ToBf16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// IEEE binary16 <-> binary32, exact for f16 -> f32; round-to-nearest-even the other way.
float F16ToF32(uint16_t bits);
uint16_t F32ToF16(float value);

}  // namespace muserve
