// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; only called
// after the CPU was checked at run time). A 16-lane register is two ymm.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "engine/cpu/kernel_table.h"

namespace muserve::cpu::avx2 {
namespace {

struct V {
  static constexpr int kTileRows = 2;
  static constexpr int kTileCols = 3;
  static constexpr int kSingleRowCols = 4;
  struct Reg {
    __m256 lo, hi;
  };
  static float ToF32(float x) { return x; }
  static float ToF32(Bf16 x) {
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(x.bits << 16)));
  }
  static float ToF32(Half x) { return _cvtsh_ss(x.bits); }
  static Reg Zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static Reg Load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  static __m256 Bf16x8(__m128i raw) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
  }
  static Reg Load(const Bf16* p) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return {Bf16x8(_mm256_castsi256_si128(raw)), Bf16x8(_mm256_extracti128_si256(raw, 1))};
  }
  static Reg Load(const Half* p) {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
  }
  template <class T>
  static Reg LoadTail(const T* p, int n) {
    T buf[16] = {};
    std::memcpy(buf, static_cast<const void*>(p), n * sizeof(T));  // p: any alignment
    return Load(buf);
  }
  static void Store(float* p, const Reg& r) {
    _mm256_storeu_ps(p, r.lo);
    _mm256_storeu_ps(p + 8, r.hi);
  }
  static Reg Fma(const Reg& a, const Reg& b, const Reg& c) {
    return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
  }
  static float Reduce(const Reg& a) {
    const __m256 r8 = _mm256_add_ps(a.lo, a.hi);
    const __m128 r4 = _mm_add_ps(_mm256_castps256_ps128(r8), _mm256_extractf128_ps(r8, 1));
    const __m128 r2 = _mm_add_ps(r4, _mm_movehl_ps(r4, r4));
    return _mm_cvtss_f32(_mm_add_ss(r2, _mm_shuffle_ps(r2, r2, 1)));
  }
  static void Axpy(float a, const float* x, float* y, int64_t n) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] = std::fma(a, x[i], y[i]);
  }
};

#include "engine/cpu/kernel_impl.inc"

}  // namespace
}  // namespace muserve::cpu::avx2

namespace muserve::cpu {

const KernelTable& Avx2Kernels() {
  static const KernelTable table{
      Isa::kAvx2,      &avx2::MatMulImpl,      &avx2::StridedDotImpl, &avx2::DotImpl,
      &avx2::AxpyImpl, &avx2::Rank1UpdateImpl, &avx2::ConvertRowsImpl};
  return table;
}

}  // namespace muserve::cpu
