// CPU kernels against straightforward double-precision references on awkward
// sizes, and the determinism guarantees of kernel_table.h: every instruction
// set gives bit-identical results, independent of rows, tiles and threads.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/api/dtype.h"
#include "engine/api/step_batch.h"
#include "engine/cpu/attention.h"
#include "engine/cpu/kernel_table.h"
#include "engine/cpu/layer_ops.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/thread_pool.h"
#include "gtest/gtest.h"
#include "tests/testing/step_builder.h"

namespace muserve::cpu {
namespace {

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
    if (IsaSupported(isa)) isas.push_back(isa);
  return isas;
}

std::vector<float> RandomFloats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A weight matrix in `dtype` plus its exact fp32 values.
struct TestWeights {
  std::vector<uint16_t> half_bits;
  std::vector<float> f32;  // exact values of the stored elements
  WeightMatrix matrix;
};

TestWeights MakeWeights(int64_t rows, int64_t cols, DType dtype, uint32_t seed) {
  TestWeights w;
  w.f32 = RandomFloats(rows * cols, seed);
  if (dtype != DType::kF32) {
    w.half_bits.resize(w.f32.size());
    for (size_t i = 0; i < w.f32.size(); ++i) {
      w.half_bits[i] = dtype == DType::kBF16 ? F32ToBf16(w.f32[i]) : F32ToF16(w.f32[i]);
      w.f32[i] = dtype == DType::kBF16 ? Bf16ToF32(w.half_bits[i]) : F16ToF32(w.half_bits[i]);
    }
    w.matrix = {w.half_bits.data(), dtype, rows, cols};
  } else {
    w.matrix = {w.f32.data(), dtype, rows, cols};
  }
  return w;
}

// Reference y = x W^T in double, and the bound sum |x||w| for the tolerance.
void ReferenceMatMul(const std::vector<float>& x, int64_t M, const std::vector<float>& w, int64_t N,
                     int64_t K, std::vector<double>& y, std::vector<double>& bound) {
  y.assign(M * N, 0.0);
  bound.assign(M * N, 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        y[m * N + n] += static_cast<double>(x[m * K + k]) * w[n * K + k];
        bound[m * N + n] += std::abs(static_cast<double>(x[m * K + k]) * w[n * K + k]);
      }
}

TEST(CpuKernelsTest, MatMulMatchesReferenceOnAwkwardSizesForEveryIsaAndDtype) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (int64_t K : {1, 15, 16, 17, 40, 100}) {
      for (int64_t M : {1, 3, 17}) {
        for (int64_t N : {1, 5, 33}) {
          TestWeights w = MakeWeights(N, K, dtype, static_cast<uint32_t>(K * 1000 + N));
          std::vector<float> x = RandomFloats(M * K, static_cast<uint32_t>(M * 7 + K));
          std::vector<double> ref, bound;
          ReferenceMatMul(x, M, w.f32, N, K, ref, bound);
          std::vector<float> scalar_y;
          for (Isa isa : SupportedIsas()) {
            std::vector<float> y(M * N, -1.0f);
            KernelsFor(isa).matmul(x.data(), K, M, w.matrix.data, dtype, K, 0, N, y.data(), N,
                                   nullptr);
            for (int64_t i = 0; i < M * N; ++i)
              ASSERT_NEAR(y[i], ref[i], 1e-6 * bound[i] + 1e-30)
                  << IsaName(isa) << " " << DTypeName(dtype) << " M=" << M << " N=" << N
                  << " K=" << K << " i=" << i;
            if (isa == Isa::kScalar) {
              scalar_y = y;
            } else {
              ASSERT_EQ(0, std::memcmp(y.data(), scalar_y.data(), y.size() * sizeof(float)))
                  << IsaName(isa) << " differs from scalar, " << DTypeName(dtype) << " M=" << M
                  << " N=" << N << " K=" << K;
            }
          }
        }
      }
    }
  }
}

// K = 2085 with scratch takes the K-blocked path for several rows
// (kernel_impl.inc), a single row never does: their results must still agree
// bit for bit, and with the unblocked path.
TEST(CpuKernelsTest, MatMulRowIsIndependentOfRowCountColumnRangeAndKBlocking) {
  for (int64_t K : {77, 2085}) {
    const int64_t N = 37, M = 19;
    TestWeights w = MakeWeights(N, K, DType::kBF16, 5);
    std::vector<float> x = RandomFloats(M * K, 6);
    std::vector<double> ref, bound;
    ReferenceMatMul(x, M, w.f32, N, K, ref, bound);
    std::vector<float> state(MatMulStateFloats(N));
    for (Isa isa : SupportedIsas()) {
      const KernelTable& k = KernelsFor(isa);
      std::vector<float> all(M * N), unblocked(M * N);
      k.matmul(x.data(), K, M, w.matrix.data, DType::kBF16, K, 0, N, all.data(), N, state.data());
      for (int64_t i = 0; i < M * N; ++i) ASSERT_NEAR(all[i], ref[i], 1e-6 * bound[i]) << i;
      k.matmul(x.data(), K, M, w.matrix.data, DType::kBF16, K, 0, N, unblocked.data(), N, nullptr);
      ASSERT_EQ(all, unblocked) << IsaName(isa) << " K=" << K;
      for (int64_t m = 0; m < M; ++m) {
        // One row alone, split into two odd column ranges.
        std::vector<float> row(N);
        k.matmul(x.data() + m * K, K, 1, w.matrix.data, DType::kBF16, K, 0, 13, row.data(), N,
                 nullptr);
        k.matmul(x.data() + m * K, K, 1, w.matrix.data, DType::kBF16, K, 13, N, row.data() + 13, N,
                 nullptr);
        ASSERT_EQ(0, std::memcmp(row.data(), all.data() + m * N, N * sizeof(float)))
            << IsaName(isa) << " K=" << K << " row " << m;
      }
    }
  }
}

// Checkpoint tensors can sit at any byte offset of the mapping (a float
// tensor after an odd number of bf16 elements is 2 bytes off): every ISA must
// read misaligned weights and give the aligned results bit for bit.
TEST(CpuKernelsTest, MisalignedWeightsGiveTheAlignedResults) {
  const int64_t N = 21, K = 2085, M = 9;  // K-blocked, with a K tail
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    TestWeights w = MakeWeights(N, K, dtype, 21);
    const size_t bytes = static_cast<size_t>(N * K) * DTypeSize(dtype);
    std::vector<float> x = RandomFloats(M * K, 22);
    std::vector<float> state(MatMulStateFloats(N));
    for (size_t offset : {1, 2, 3}) {
      std::vector<unsigned char> storage(bytes + 64);
      std::memcpy(storage.data() + offset, w.matrix.data, bytes);
      const void* misaligned = storage.data() + offset;
      for (Isa isa : SupportedIsas()) {
        const KernelTable& k = KernelsFor(isa);
        for (int64_t m : {int64_t{1}, M}) {
          std::vector<float> aligned_y(m * N), y(m * N);
          k.matmul(x.data(), K, m, w.matrix.data, dtype, K, 0, N, aligned_y.data(), N,
                   state.data());
          k.matmul(x.data(), K, m, misaligned, dtype, K, 0, N, y.data(), N, state.data());
          ASSERT_EQ(y, aligned_y) << IsaName(isa) << " " << DTypeName(dtype) << " offset " << offset
                                  << " M=" << m;
        }
        std::vector<float> rows(3 * K);
        k.convert_rows(misaligned, dtype, K, 2, 5, rows.data());
        ASSERT_EQ(0, std::memcmp(rows.data(), w.f32.data() + 2 * K, rows.size() * sizeof(float)))
            << IsaName(isa) << " " << DTypeName(dtype) << " offset " << offset;
      }
    }
  }
}

TEST(CpuKernelsTest, ThreadedMatMulIsBitIdenticalForAnyThreadCountAndRowCount) {
  const int64_t K = 96, N = 130;
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    TestWeights w = MakeWeights(N, K, dtype, 9);
    std::vector<float> x = RandomFloats(40 * K, 10);
    const KernelTable& k = KernelsFor(BestIsa());
    std::vector<float> single(40 * N);
    // Reference: every row alone on one thread (no panel conversion).
    ThreadPool one(1);
    MatMulScratch one_scratch(1);
    for (int64_t m = 0; m < 40; ++m)
      MatMul(one, k, one_scratch, x.data() + m * K, 1, w.matrix, single.data() + m * N);
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      MatMulScratch scratch(threads);
      for (int64_t M : {3, 8, 40}) {  // 8 and 40 use the converted fp32 panels
        std::vector<float> y(M * N);
        MatMul(pool, k, scratch, x.data(), M, w.matrix, y.data());
        ASSERT_EQ(0, std::memcmp(y.data(), single.data(), y.size() * sizeof(float)))
            << DTypeName(dtype) << " threads=" << threads << " M=" << M;
      }
    }
  }
}

TEST(CpuKernelsTest, DotAndAxpyMatchReference) {
  for (int64_t n : {1, 7, 16, 31, 64, 100}) {
    std::vector<float> a = RandomFloats(n, 1), b = RandomFloats(n, 2);
    double ref = 0, bound = 0;
    for (int64_t i = 0; i < n; ++i) {
      ref += static_cast<double>(a[i]) * b[i];
      bound += std::abs(static_cast<double>(a[i]) * b[i]);
    }
    const float scalar_dot = ScalarKernels().dot(a.data(), b.data(), n);
    for (Isa isa : SupportedIsas()) {
      const KernelTable& k = KernelsFor(isa);
      const float d = k.dot(a.data(), b.data(), n);
      EXPECT_NEAR(d, ref, 1e-6 * bound) << IsaName(isa) << " n=" << n;
      EXPECT_EQ(d, scalar_dot) << IsaName(isa) << " n=" << n;
      std::vector<float> y = b;
      k.axpy(0.37f, a.data(), y.data(), n);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[i], std::fma(0.37f, a[i], b[i])) << i;
    }
  }
}

TEST(CpuKernelsTest, StridedDotEqualsMatMulOverTheSameRows) {
  const int64_t K = 24, ldr = 56, count = 11, M = 5;
  std::vector<float> rows = RandomFloats(count * ldr, 11), x = RandomFloats(M * K, 12);
  std::vector<float> packed(count * K);
  for (int64_t j = 0; j < count; ++j)
    std::copy(rows.begin() + j * ldr, rows.begin() + j * ldr + K, packed.begin() + j * K);
  for (Isa isa : SupportedIsas()) {
    const KernelTable& k = KernelsFor(isa);
    std::vector<float> strided(M * count), dense(M * count);
    k.strided_dot(x.data(), K, M, rows.data(), ldr, count, K, strided.data(), count);
    k.matmul(x.data(), K, M, packed.data(), DType::kF32, K, 0, count, dense.data(), count, nullptr);
    EXPECT_EQ(strided, dense) << IsaName(isa);
  }
}

TEST(CpuKernelsTest, Rank1UpdateIsOneFmaPerElement) {
  const int64_t M = 3, n = 21, ldo = 25;
  std::vector<float> a = RandomFloats(M, 1), v = RandomFloats(n, 2), out = RandomFloats(M * ldo, 3);
  for (Isa isa : SupportedIsas()) {
    std::vector<float> y = out;
    KernelsFor(isa).rank1_update(a.data(), M, v.data(), y.data(), ldo, n);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t i = 0; i < ldo; ++i)
        EXPECT_EQ(y[m * ldo + i], i < n ? std::fma(a[m], v[i], out[m * ldo + i]) : out[m * ldo + i])
            << IsaName(isa) << " " << m << "," << i;
  }
}

TEST(CpuKernelsTest, ConvertRowsIsExact) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    TestWeights w = MakeWeights(5, 37, dtype, 3);
    for (Isa isa : SupportedIsas()) {
      std::vector<float> out(3 * 37);
      KernelsFor(isa).convert_rows(w.matrix.data, dtype, 37, 1, 4, out.data());
      ASSERT_EQ(0, std::memcmp(out.data(), w.f32.data() + 37, out.size() * sizeof(float)))
          << IsaName(isa) << " " << DTypeName(dtype);
    }
  }
}

TEST(CpuKernelsTest, RmsNormMatchesReference) {
  const int64_t n = 67;
  std::vector<float> x = RandomFloats(3 * n, 4), weight = RandomFloats(n, 5);
  std::vector<float> out(3 * n);
  RmsNorm(KernelsFor(BestIsa()), x.data(), 3, n, weight.data(), 1e-5f, out.data());
  for (int64_t r = 0; r < 3; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[r * n + i]) * x[r * n + i];
    const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_NEAR(out[r * n + i], weight[i] * x[r * n + i] * scale, 1e-5) << r << "," << i;
  }
}

TEST(CpuKernelsTest, RopeRotatesHalvesByPositionTimesFrequency) {
  const int64_t head_dim = 8, heads = 2, half = 4;
  const std::vector<float> inv_freq = {1.0f, 0.1f, 0.01f, 0.001f};
  const int32_t positions[2] = {0, 5};
  std::vector<float> cos(2 * half), sin(2 * half);
  RopeCosSin(inv_freq, positions, 2, cos.data(), sin.data());
  std::vector<float> x = RandomFloats(2 * heads * head_dim, 8);
  std::vector<float> rotated = x;
  ApplyRope(rotated.data(), 2, heads * head_dim, heads, head_dim, cos.data(), sin.data());
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double angle = positions[r] * static_cast<double>(inv_freq[i]);
        const float a = x[r * 16 + h * 8 + i], b = x[r * 16 + h * 8 + i + half];
        EXPECT_NEAR(rotated[r * 16 + h * 8 + i], a * std::cos(angle) - b * std::sin(angle), 1e-5);
        EXPECT_NEAR(rotated[r * 16 + h * 8 + i + half], b * std::cos(angle) + a * std::sin(angle),
                    1e-5);
      }
}

TEST(CpuKernelsTest, SiluMulMatchesDefinition) {
  const std::vector<float> gate = {-3.0f, -0.5f, 0.0f, 0.7f, 4.0f};
  const std::vector<float> up = {1.0f, 2.0f, 3.0f, -1.0f, 0.5f};
  std::vector<float> out(5);
  SiluMul(gate.data(), up.data(), 5, out.data());
  for (int i = 0; i < 5; ++i)
    EXPECT_NEAR(out[i], gate[i] / (1.0 + std::exp(-static_cast<double>(gate[i]))) * up[i], 1e-6);
}

// Attention over a paged cache against a dense reference; GQA, a sliding
// window and non-contiguous blocks.
TEST(CpuKernelsTest, PagedAttentionMatchesDenseReference) {
  const AttentionShape shape{4, 2, 24, 3, std::optional<int64_t>(5)};
  const int64_t kv_size = shape.num_kv_heads * shape.head_dim;
  const int64_t q_size = shape.num_heads * shape.head_dim;
  const int32_t num_blocks = 8;
  muserve::testing::StepBuilder builder(3, num_blocks, {6, 1, 4, 0, 7, 2, 5, 3});
  const int seq = builder.AddSequence();
  const std::vector<int32_t> tokens(11, 0);
  builder.Append(seq, tokens);
  StepBatch batch = builder.Build();
  const int64_t T = 11;
  std::vector<float> q = RandomFloats(T * q_size, 1), k = RandomFloats(T * kv_size, 2),
                     v = RandomFloats(T * kv_size, 3);
  std::vector<float> k_cache(num_blocks * 3 * kv_size), v_cache(k_cache.size());
  WriteKv(batch, shape, k.data(), v.data(), k_cache.data(), v_cache.data());
  ThreadPool pool(2);
  std::vector<std::vector<float>> scores(2);
  std::vector<int32_t> token_sequence(T, 0);
  std::vector<float> out(T * q_size);
  PagedAttention(pool, KernelsFor(BestIsa()), batch, token_sequence, shape, q.data(),
                 k_cache.data(), v_cache.data(), scores, out.data());
  const double scale = 1.0 / std::sqrt(24.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < shape.num_heads; ++h) {
      const int64_t g = h / 2;
      const int64_t first = std::max<int64_t>(0, t - 4);
      std::vector<double> p;
      double mx = -1e300, sum = 0;
      for (int64_t j = first; j <= t; ++j) {
        double s = 0;
        for (int64_t d = 0; d < 24; ++d)
          s += static_cast<double>(q[t * q_size + h * 24 + d]) * k[j * kv_size + g * 24 + d];
        p.push_back(s * scale);
        mx = std::max(mx, p.back());
      }
      for (double& x : p) sum += (x = std::exp(x - mx));
      for (int64_t d = 0; d < 24; ++d) {
        double o = 0;
        for (int64_t j = first; j <= t; ++j) o += p[j - first] / sum * v[j * kv_size + g * 24 + d];
        EXPECT_NEAR(out[t * q_size + h * 24 + d], o, 1e-5) << t << "," << h << "," << d;
      }
    }
}

TEST(CpuKernelsTest, ThreadPoolCoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 7, 100}) {
      std::vector<int> hits(n, 0);
      pool.ParallelFor(n, [&](int worker, int64_t b, int64_t e) {
        EXPECT_LT(worker, threads);
        for (int64_t i = b; i < e; ++i) ++hits[i];
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i], 1) << threads << " " << n << " " << i;
    }
  }
}

// A throwing call must neither return while other workers still run the
// caller's callable nor terminate the process: ParallelFor waits for every
// range, rethrows the first exception, and the pool stays usable.
TEST(CpuKernelsTest, ThreadPoolRethrowsAfterEveryWorkerFinished) {
  for (int thrower : {0, 1, 2}) {
    ThreadPool pool(3);
    std::vector<int> done(3, 0);
    try {
      pool.ParallelFor(3, [&](int worker, int64_t, int64_t) {
        if (worker == thrower) throw std::runtime_error("worker " + std::to_string(worker));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        done[worker] = 1;
      });
      ADD_FAILURE() << "no exception from worker " << thrower;
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "worker " + std::to_string(thrower));
    }
    for (int w = 0; w < 3; ++w) EXPECT_EQ(done[w], w == thrower ? 0 : 1) << thrower << " " << w;
    std::vector<int> hits(10, 0);
    pool.ParallelFor(10, [&](int, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) ++hits[i];
    });
    EXPECT_EQ(hits, std::vector<int>(10, 1));
  }
}

}  // namespace
}  // namespace muserve::cpu
