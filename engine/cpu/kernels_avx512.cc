// AVX-512 (F, BW, VL, DQ) kernels, compiled with those target flags and only
// called after the CPU was checked at run time. A 16-lane register is one zmm.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>
#include <vector>

#include "engine/cpu/kernel_table.h"

namespace muserve::cpu::avx512 {
namespace {

struct V {
  static constexpr int kTileRows = 4;
  static constexpr int kTileCols = 4;
  static constexpr int kSingleRowCols = 8;
  using Reg = __m512;
  static float ToF32(float x) { return x; }
  static float ToF32(Bf16 x) {
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(x.bits << 16)));
  }
  static float ToF32(Half x) { return _cvtsh_ss(x.bits); }
  static Reg Zero() { return _mm512_setzero_ps(); }
  static Reg Load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg Bf16x16(__m256i raw) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
  }
  static Reg Load(const Bf16* p) {
    return Bf16x16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static Reg Load(const Half* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __mmask16 Mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static Reg LoadTail(const float* p, int n) { return _mm512_maskz_loadu_ps(Mask(n), p); }
  static Reg LoadTail(const Bf16* p, int n) {
    return Bf16x16(_mm256_maskz_loadu_epi16(Mask(n), p));
  }
  static Reg LoadTail(const Half* p, int n) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(Mask(n), p));
  }
  static void Store(float* p, Reg r) { _mm512_storeu_ps(p, r); }
  static Reg Fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static float Reduce(Reg a) {
    const __m256 lo = _mm512_castps512_ps256(a);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
    const __m256 r8 = _mm256_add_ps(lo, hi);
    const __m128 r4 = _mm_add_ps(_mm256_castps256_ps128(r8), _mm256_extractf128_ps(r8, 1));
    const __m128 r2 = _mm_add_ps(r4, _mm_movehl_ps(r4, r4));
    return _mm_cvtss_f32(_mm_add_ss(r2, _mm_shuffle_ps(r2, r2, 1)));
  }
  static void Axpy(float a, const float* x, float* y, int64_t n) {
    const __m512 av = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
      _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
      const __mmask16 m = Mask(static_cast<int>(n - i));
      _mm512_mask_storeu_ps(
          y + i, m,
          _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
  }
};

#include "engine/cpu/kernel_impl.inc"

}  // namespace
}  // namespace muserve::cpu::avx512

namespace muserve::cpu {

const KernelTable& Avx512Kernels() {
  static const KernelTable table{
      Isa::kAvx512,      &avx512::MatMulImpl,      &avx512::StridedDotImpl, &avx512::DotImpl,
      &avx512::AxpyImpl, &avx512::Rank1UpdateImpl, &avx512::ConvertRowsImpl};
  return table;
}

}  // namespace muserve::cpu
