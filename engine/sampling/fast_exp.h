// exp over float rows without a libm call per element, so that the compiler
// can vectorise the sampler's passes over a 150k-token vocabulary.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>

namespace muserve::sampling_internal {

// exp(x) for x <= 0 (a logit minus the row's maximum), within 2e-7 relative
// of the true value; 0 below -87 (where float exp underflows anyway), for
// -inf and for NaN. Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, a degree-6
// polynomial for exp(r), then 2^n built in the exponent bits. Branch-free.
inline float ExpNonPositive(float x) {
  // All-ones when x >= -87 (false for NaN). Selections are bit masks, not
  // conditionals, so that the loops calling this vectorise under
  // -ftrapping-math.
  const uint32_t keep = 0u - static_cast<uint32_t>(x >= -87.0f);
  x = std::bit_cast<float>((std::bit_cast<uint32_t>(x) & keep) |
                           (std::bit_cast<uint32_t>(-87.0f) & ~keep));
  // Rounds x log2(e) to the nearest integer: truncation of a value <= 0 - 0.5.
  const int32_t n = static_cast<int32_t>(x * 1.44269504088896341f - 0.5f);
  const float nf = static_cast<float>(n);
  float r = x - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>(static_cast<uint32_t>(n + 127) << 23);
  return std::bit_cast<float>(std::bit_cast<uint32_t>(y * scale) & keep);
}

// The largest value, ignoring NaN (v > m is false for it); -inf when there is
// none. Eight independent lanes, so the loop is not one long dependency chain.
inline float MaxIgnoringNan(std::span<const float> values) {
  constexpr float kMinusInf = -__builtin_inff();
  float lanes[8] = {kMinusInf, kMinusInf, kMinusInf, kMinusInf,
                    kMinusInf, kMinusInf, kMinusInf, kMinusInf};
  size_t i = 0;
  for (; i + 8 <= values.size(); i += 8) {
    for (size_t j = 0; j < 8; ++j) lanes[j] = values[i + j] > lanes[j] ? values[i + j] : lanes[j];
  }
  for (; i < values.size(); ++i) lanes[0] = values[i] > lanes[0] ? values[i] : lanes[0];
  float result = kMinusInf;
  for (float lane : lanes) result = lane > result ? lane : result;
  return result;
}

// The sum of `values` in double: four lanes in a fixed order (deterministic).
inline double SumInDouble(std::span<const float> values) {
  double lanes[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= values.size(); i += 4) {
    for (size_t j = 0; j < 4; ++j) lanes[j] += values[i + j];
  }
  for (; i < values.size(); ++i) lanes[0] += values[i];
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

// out[i] = exp(values[i] - shift) for values <= shift (0 for NaN); returns
// their sum. `out` has values.size() elements.
inline double ExpShifted(std::span<const float> values, float shift, std::span<float> out) {
  for (size_t i = 0; i < values.size(); ++i) out[i] = ExpNonPositive(values[i] - shift);
  return SumInDouble(out);
}

// out[i] = exp(values[i] / temperature - shift) for values / temperature <=
// shift (0 for NaN and -inf); returns their sum.
inline double ExpScaledShifted(std::span<const float> values, float temperature, float shift,
                               std::span<float> out) {
  for (size_t i = 0; i < values.size(); ++i) {
    out[i] = ExpNonPositive(values[i] / temperature - shift);
  }
  return SumInDouble(out);
}

}  // namespace muserve::sampling_internal
