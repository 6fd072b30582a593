#include "engine/cpu/layer_ops.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace muserve::cpu {

void RmsNorm(const KernelTable& kernels, const float* x, int64_t rows, int64_t n,
             const float* weight, float eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* o = out + r * n;
    const float variance = kernels.dot(xr, xr, n) / static_cast<float>(n);
    const float scale = 1.0f / std::sqrt(variance + eps);
    for (int64_t i = 0; i < n; ++i) o[i] = weight[i] * (xr[i] * scale);
  }
}

std::vector<float> RopeInverseFrequencies(const ModelConfig& config) {
  const int64_t dim = config.head_dim;
  std::vector<float> inv_freq(dim / 2);
  // transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all fp32.
  const float base = static_cast<float>(config.rope_theta);
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    inv_freq[i] = 1.0f / std::pow(base, exponent);
  }
  const RopeScaling& s = config.rope_scaling;
  const float factor = static_cast<float>(s.factor);
  if (s.type == RopeScalingType::kLinear) {
    for (float& f : inv_freq) f /= factor;
  } else if (s.type == RopeScalingType::kLlama3) {
    // _compute_llama3_parameters, with the python scalars rounded to fp32 as
    // torch does when it combines them with an fp32 tensor.
    const double old_context = static_cast<double>(s.original_max_position_embeddings);
    const float low_freq_wavelen = static_cast<float>(old_context / s.low_freq_factor);
    const float high_freq_wavelen = static_cast<float>(old_context / s.high_freq_factor);
    const float low = static_cast<float>(s.low_freq_factor);
    const float high_minus_low = static_cast<float>(s.high_freq_factor - s.low_freq_factor);
    const float two_pi = static_cast<float>(2 * std::numbers::pi);
    for (float& f : inv_freq) {
      const float wavelen = two_pi / f;
      const float llama = wavelen > low_freq_wavelen ? f / factor : f;
      const float smooth = (static_cast<float>(old_context) / wavelen - low) / high_minus_low;
      const float smoothed = (1.0f - smooth) * llama / factor + smooth * llama;
      const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      f = medium ? smoothed : llama;
    }
  }
  return inv_freq;
}

void RopeCosSin(std::span<const float> inv_freq, const int32_t* positions, int64_t rows,
                float* cos_out, float* sin_out) {
  const int64_t half = static_cast<int64_t>(inv_freq.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float pos = static_cast<float>(positions[r]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];
      cos_out[r * half + i] = std::cos(angle);
      sin_out[r * half + i] = std::sin(angle);
    }
  }
}

void ApplyRope(float* x, int64_t rows, int64_t ld, int64_t num_heads, int64_t head_dim,
               const float* cos, const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = cos + r * half;
    const float* s = sin + r * half;
    for (int64_t h = 0; h < num_heads; ++h) {
      float* v = x + r * ld + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        // q * cos + rotate_half(q) * sin, rotate_half(q) = [-q2, q1].
        const float a = v[i];
        const float b = v[i + half];
        const float a_cos = a * c[i];
        const float b_sin = b * s[i];
        const float b_cos = b * c[i];
        const float a_sin = a * s[i];
        v[i] = a_cos + (-b_sin);
        v[i + half] = b_cos + a_sin;
      }
    }
  }
}

void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float silu = g / (1.0f + std::exp(-g));
    out[i] = silu * up[i];
  }
}

void AddInPlace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void AddBias(float* x, int64_t rows, int64_t n, const float* bias) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) x[r * n + i] += bias[i];
}

void Embed(const KernelTable& kernels, const WeightMatrix& embedding, const int32_t* tokens,
           int64_t rows, float* out, int64_t vocab_begin) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row = tokens[r] - vocab_begin;
    float* dst = out + r * embedding.cols;
    if (row < 0 || row >= embedding.rows) {
      std::fill_n(dst, embedding.cols, 0.0f);
      continue;
    }
    kernels.convert_rows(embedding.data, embedding.dtype, embedding.cols, row, row + 1, dst);
  }
}

std::vector<float> ToF32Vector(const KernelTable& kernels, const WeightMatrix& vector) {
  std::vector<float> out(vector.rows * vector.cols);
  kernels.convert_rows(vector.data, vector.dtype, vector.rows * vector.cols, 0, 1, out.data());
  return out;
}

}  // namespace muserve::cpu
