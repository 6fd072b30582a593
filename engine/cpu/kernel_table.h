// The vector primitives every CPU kernel is built from, one table per
// instruction set, chosen at run time (AVX-512, AVX2+FMA, or portable scalar).
//
// Determinism: every table computes a dot product the same way, so results are
// bit-identical across instruction sets, tile positions and row counts:
//   - 16 lanes; lane j accumulates, in order of increasing k, the products of
//     the elements k = 16 * i + j with one fused multiply-add each, starting
//     from +0 (a K tail is zero-padded, adding fma(0, 0, acc));
//   - the lanes are summed by a fixed tree: r8[i] = a[i] + a[i + 8],
//     r4[i] = r8[i] + r8[i + 4], r2[i] = r4[i] + r4[i + 2], r2[0] + r2[1].
// Weights are converted exactly to fp32 (bf16 and f16 are subsets of fp32).
#pragma once

#include <cstdint>
#include <cstring>

#include "engine/api/dtype.h"

namespace muserve::cpu {

// Checkpoint element types as kernels see them (raw bits of bf16 / f16).
struct Bf16 {
  uint16_t bits;
};
struct Half {
  uint16_t bits;
};

// Checkpoint tensors are only as aligned as the file makes them (a float
// tensor after an odd number of bf16 elements sits 2 bytes off), so weights
// are read through memcpy or unaligned vector loads, never by dereferencing a
// `const float*` / `const Bf16*` into the mapping.
template <class T>
inline T LoadUnaligned(const T* p) {
  T value;
  std::memcpy(&value, static_cast<const void*>(p), sizeof(T));
  return value;
}

// K blocking of matmul: rows longer than kKBlockThreshold are processed in
// blocks of kKBlock (a multiple of 16) when the caller provides scratch for
// the partial accumulators; every lane still sees the same fused
// multiply-adds in the same order, so the results are unchanged.
inline constexpr int64_t kKBlock = 1024;
inline constexpr int64_t kKBlockThreshold = 2048;
// Largest register tile of any instruction set (static_asserted per ISA).
inline constexpr int64_t kMaxTileRows = 8;
inline constexpr int64_t kMaxTileCols = 8;

// Floats of K-blocking scratch that matmul needs for a column range of
// `columns`: 16 lanes per accumulator of one row tile against every column tile.
inline constexpr int64_t MatMulStateFloats(int64_t columns) {
  return (columns + kMaxTileCols) * kMaxTileRows * 16;
}

enum class Isa { kScalar, kAvx2, kAvx512 };

const char* IsaName(Isa isa);

struct KernelTable {
  Isa isa;

  // y[m * ldy + (n - n0)] = dot(x[m * ldx + 0 .. K), w row n) for m in [0, M),
  // n in [n0, n1). w: [N, K] row-major of dtype `wt` (row stride K), any
  // alignment. k_block_state: nullptr, or MatMulStateFloats(n1 - n0) floats
  // of scratch that let long rows be processed in K blocks (same results).
  void (*matmul)(const float* x, int64_t ldx, int64_t M, const void* w, DType wt, int64_t K,
                 int64_t n0, int64_t n1, float* y, int64_t ldy, float* k_block_state);

  // y[m * ldy + j] = dot(x[m * ldx + 0 .. K), rows[j * ldr + 0 .. K)) for
  // m in [0, M), j in [0, count): matmul over fp32 rows of any stride
  // (attention scores of a group of query heads against cached keys).
  void (*strided_dot)(const float* x, int64_t ldx, int64_t M, const float* rows, int64_t ldr,
                      int64_t count, int64_t K, float* y, int64_t ldy);

  // dot(a[0..K), b[0..K)) with the lane partition above.
  float (*dot)(const float* a, const float* b, int64_t K);

  // y[i] = fma(a, x[i], y[i]) for i in [0, n).
  void (*axpy)(float a, const float* x, float* y, int64_t n);

  // out[m * ldo + i] = fma(a[m], v[i], out[m * ldo + i]) for m < M, i < n.
  void (*rank1_update)(const float* a, int64_t M, const float* v, float* out, int64_t ldo,
                       int64_t n);

  // out[(n - n0) * K + k] = fp32(w[n * K + k]) for n in [n0, n1); w: any alignment.
  void (*convert_rows)(const void* w, DType wt, int64_t K, int64_t n0, int64_t n1, float* out);
};

// The instruction sets this CPU supports, best first ends with kScalar.
Isa BestIsa();
bool IsaSupported(Isa isa);

// The table for `isa`; `isa` must be supported (CHECKed).
const KernelTable& KernelsFor(Isa isa);

// Per-ISA tables, defined in kernels_<isa>.cc.
const KernelTable& ScalarKernels();
const KernelTable& Avx2Kernels();
const KernelTable& Avx512Kernels();

}  // namespace muserve::cpu
