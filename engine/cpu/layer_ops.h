// Row-wise layer operations of the Llama graph (RMSNorm, RoPE, SwiGLU,
// residual adds, embedding lookup), written to match transformers' fp32
// arithmetic operation by operation. Each row is computed on its own, so a
// row's result never depends on the other rows of the batch.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/api/model_config.h"
#include "engine/cpu/kernel_table.h"
#include "engine/cpu/matmul.h"

namespace muserve::cpu {

// LlamaRMSNorm: var = mean(x^2) (fp32), out = weight * (x * rsqrt(var + eps)).
// x, out: [rows, n]; weight: [n]. out may alias x.
void RmsNorm(const KernelTable& kernels, const float* x, int64_t rows, int64_t n,
             const float* weight, float eps, float* out);

// The inverse frequencies of the rotary embedding, [head_dim / 2], computed in
// fp32 as transformers' rope init functions do (default, linear, llama3).
std::vector<float> RopeInverseFrequencies(const ModelConfig& config);

// Applies RoPE in place (rotate_half convention) to `num_heads` heads of
// `head_dim` at the start of each of `rows` rows of stride `ld`, row r being
// at position positions[r]. cos/sin: [rows, head_dim / 2] from RopeCosSin.
void RopeCosSin(std::span<const float> inv_freq, const int32_t* positions, int64_t rows,
                float* cos_out, float* sin_out);
void ApplyRope(float* x, int64_t rows, int64_t ld, int64_t num_heads, int64_t head_dim,
               const float* cos, const float* sin);

// out[i] = silu(gate[i]) * up[i] with silu(g) = g / (1 + exp(-g)).
void SiluMul(const float* gate, const float* up, int64_t n, float* out);

// x[i] += y[i].
void AddInPlace(float* x, const float* y, int64_t n);

// x[r * n + i] += bias[i] for each of `rows` rows.
void AddBias(float* x, int64_t rows, int64_t n, const float* bias);

// out[r] = fp32(embedding row tokens[r] - vocab_begin); embedding: [vocab, n]
// holding the rows of tokens [vocab_begin, vocab_begin + vocab). A token
// outside that range gets a zero row (a tensor-parallel rank embeds only its
// vocabulary range; the ranks' rows are then summed).
void Embed(const KernelTable& kernels, const WeightMatrix& embedding, const int32_t* tokens,
           int64_t rows, float* out, int64_t vocab_begin = 0);

// A 1-D checkpoint tensor (norm weight, bias) converted to fp32.
std::vector<float> ToF32Vector(const KernelTable& kernels, const WeightMatrix& vector);

}  // namespace muserve::cpu
