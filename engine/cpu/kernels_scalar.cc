// Portable kernels: the reference arithmetic of kernel_table.h in plain C++,
// for CPUs without AVX2. std::fma keeps the fused rounding of the SIMD tables.
#include <algorithm>
#include <array>
#include <cmath>
#include <utility>
#include <vector>

#include "engine/api/dtype.h"
#include "engine/cpu/kernel_table.h"

namespace muserve::cpu::scalar {
namespace {

struct V {
  static constexpr int kTileRows = 2;
  static constexpr int kTileCols = 2;
  static constexpr int kSingleRowCols = 2;
  struct Reg {
    float v[16];
  };
  static float ToF32(float x) { return x; }
  static float ToF32(Bf16 x) { return Bf16ToF32(x.bits); }
  static float ToF32(Half x) { return F16ToF32(x.bits); }
  static Reg Zero() {
    Reg r;
    for (float& v : r.v) v = 0.0f;
    return r;
  }
  // p may point into a checkpoint at any alignment: read through memcpy.
  template <class T>
  static Reg Load(const T* p) {
    Reg r;
    for (int i = 0; i < 16; ++i) r.v[i] = ToF32(LoadUnaligned(p + i));
    return r;
  }
  template <class T>
  static Reg LoadTail(const T* p, int n) {
    Reg r = Zero();
    for (int i = 0; i < n; ++i) r.v[i] = ToF32(LoadUnaligned(p + i));
    return r;
  }
  static void Store(float* p, const Reg& r) { std::copy(r.v, r.v + 16, p); }
  static Reg Fma(const Reg& a, const Reg& b, Reg c) {
    for (int i = 0; i < 16; ++i) c.v[i] = std::fma(a.v[i], b.v[i], c.v[i]);
    return c;
  }
  static float Reduce(const Reg& a) {
    float r8[8], r4[4], r2[2];
    for (int i = 0; i < 8; ++i) r8[i] = a.v[i] + a.v[i + 8];
    for (int i = 0; i < 4; ++i) r4[i] = r8[i] + r8[i + 4];
    for (int i = 0; i < 2; ++i) r2[i] = r4[i] + r4[i + 2];
    return r2[0] + r2[1];
  }
  static void Axpy(float a, const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = std::fma(a, x[i], y[i]);
  }
};

#include "engine/cpu/kernel_impl.inc"

}  // namespace
}  // namespace muserve::cpu::scalar

namespace muserve::cpu {

const KernelTable& ScalarKernels() {
  static const KernelTable table{
      Isa::kScalar,      &scalar::MatMulImpl,      &scalar::StridedDotImpl, &scalar::DotImpl,
      &scalar::AxpyImpl, &scalar::Rank1UpdateImpl, &scalar::ConvertRowsImpl};
  return table;
}

}  // namespace muserve::cpu
