#include "engine/api/dtype.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace muserve {

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
  }
  return 0;
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  return "?";
}

absl::StatusOr<DType> ParseSafetensorsDType(std::string_view name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported safetensors dtype '", std::string(name), "' (supported: F32, F16, BF16)"));
}

absl::StatusOr<DType> ParseTorchDType(std::string_view name) {
  // transformers writes "float32"; older configs sometimes keep the "torch." prefix.
  if (name.starts_with("torch.")) name.remove_prefix(6);
  if (name == "float32" || name == "float") return DType::kF32;
  if (name == "float16" || name == "half") return DType::kF16;
  if (name == "bfloat16") return DType::kBF16;
  return absl::InvalidArgumentError(absl::StrCat("unsupported dtype '", std::string(name),
                                                 "' (supported: float32, float16, bfloat16)"));
}

float F16ToF32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in binary32 (mantissa < 2^10).
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(magnitude));
  }
  if (exponent == 0x1f) {
    // Inf, or NaN with its payload kept and made quiet, as PyTorch's (F16C) conversion does.
    const uint32_t quiet = mantissa != 0 ? 0x00400000u : 0u;
    return std::bit_cast<float>(sign | 0x7f800000u | quiet | (mantissa << 13));
  }
  return std::bit_cast<float>(sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13));
}

uint16_t F32ToF16(float value) {
  // The algorithm of the FP16 library that PyTorch uses (c10/util/Half.h):
  // the float unit itself does the round-to-nearest-even, including into the
  // subnormal range, by adding a power of two that aligns the kept bits.
  const float scale_to_inf = 0x1.0p+112f;
  const float scale_to_zero = 0x1.0p-110f;
  float base = (std::fabs(value) * scale_to_inf) * scale_to_zero;

  const uint32_t w = std::bit_cast<uint32_t>(value);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xff000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;

  base = std::bit_cast<float>((bias >> 1) + 0x07800000u) + base;
  const uint32_t result_bits = std::bit_cast<uint32_t>(base);
  const uint32_t exp_bits = (result_bits >> 13) & 0x00007c00u;
  const uint32_t mantissa_bits = result_bits & 0x00000fffu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

}  // namespace muserve
