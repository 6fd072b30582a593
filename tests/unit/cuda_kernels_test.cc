// The CUDA backend's row-wise kernels (label `gpu`) against the CPU backend's
// implementations (engine/cpu/layer_ops.h, attention.h), which are the
// reference, on uneven sizes. Inputs are rounded to the kernel dtype first, so
// that both sides read identical values; what is left is fp32 rounding order
// and the one rounding of each output to bf16 / f16, bounded per test.
// Skipped where no CUDA device is visible.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cuda/kernels/embedding.h"
#include "cuda/kernels/gather_rows.h"
#include "cuda/kernels/kv_cache_layout.h"
#include "cuda/kernels/kv_cache_write.h"
#include "cuda/kernels/rms_norm.h"
#include "cuda/kernels/rope.h"
#include "cuda/kernels/silu_mul.h"
#include "engine/api/model_config.h"
#include "engine/api/step_batch.h"
#include "engine/cpu/attention.h"
#include "engine/cpu/kernel_table.h"
#include "engine/cpu/layer_ops.h"
#include "gtest/gtest.h"
#include "tests/testing/cuda_test_util.h"

namespace muserve::cuda {
namespace {

using ::muserve::testing::DeviceArray;
using ::muserve::testing::FromHalfBits;
using ::muserve::testing::RoundTo;
using ::muserve::testing::Sync;
using ::muserve::testing::ToHalfBits;
using ::muserve::testing::UnitRoundoff;

class CudaKernelsTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override { MUSERVE_SKIP_WITHOUT_CUDA_DEVICE(); }
  DType dtype() const { return GetParam(); }

  // n values uniform in [-scale, scale], as the dtype's bits.
  std::vector<uint16_t> RandomHalf(size_t n, float scale = 1.0f) {
    std::uniform_real_distribution<float> dist(-scale, scale);
    std::vector<uint16_t> bits(n);
    for (uint16_t& b : bits) b = ToHalfBits(dtype(), dist(rng_));
    return bits;
  }
  std::vector<float> ToFloats(const std::vector<uint16_t>& bits) const {
    std::vector<float> out(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) out[i] = FromHalfBits(dtype(), bits[i]);
    return out;
  }
  // Expects |got - want| <= rel * |want| + abs elementwise; names the first misses.
  static void ExpectNear(const std::vector<float>& got, const std::vector<float>& want, float rel,
                         float abs, const char* what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    int misses = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (std::fabs(got[i] - want[i]) <= rel * std::fabs(want[i]) + abs) continue;
      if (++misses <= 5)
        ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i];
    }
    EXPECT_EQ(misses, 0) << what << ": " << misses << " of " << got.size() << " elements differ";
  }

  const cpu::KernelTable& kernels_ = cpu::KernelsFor(cpu::BestIsa());
  std::mt19937 rng_{20260126};
};

TEST_P(CudaKernelsTest, EmbeddingGathersRowsAndZeroesTokensOutsideTheRankRange) {
  const int64_t vocab_rows = 37, hidden = 333, vocab_begin = 5, rows = 29;
  std::vector<uint16_t> table = RandomHalf(vocab_rows * hidden);
  std::uniform_int_distribution<int32_t> token(0, vocab_begin + vocab_rows + 3);
  std::vector<int32_t> tokens(rows);
  for (int32_t& t : tokens) t = token(rng_);
  tokens[0] = vocab_begin - 1;               // just below this rank's range
  tokens[1] = vocab_begin + vocab_rows;      // just above
  tokens[2] = vocab_begin + vocab_rows - 1;  // its last row

  std::vector<float> want(rows * hidden);
  cpu::Embed(kernels_, {table.data(), dtype(), vocab_rows, hidden}, tokens.data(), rows,
             want.data(), vocab_begin);

  DeviceArray<uint16_t> d_table(table);
  DeviceArray<int32_t> d_tokens(tokens);
  DeviceArray<float> d_out(std::vector<float>(rows * hidden, NAN));
  ASSERT_TRUE(LaunchEmbedding(dtype(), d_tokens.get(), rows, d_table.get(), vocab_rows, hidden,
                              vocab_begin, d_out.get(), nullptr)
                  .ok());
  ASSERT_EQ(Sync(), cudaSuccess);
  EXPECT_EQ(d_out.ToHost(), want);  // a conversion to fp32 is exact
}

TEST_P(CudaKernelsTest, AddRmsNormMatchesCpuAddThenRmsNorm) {
  const int64_t rows = 13, n = 1000;  // n: not a multiple of the block size
  const float eps = 1e-5f;
  std::vector<float> residual(rows * n);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  for (float& x : residual) x = dist(rng_);
  std::vector<uint16_t> add = RandomHalf(rows * n, 2.0f);
  std::vector<uint16_t> weight = RandomHalf(n, 1.5f);
  const std::vector<float> weight_f = ToFloats(weight);

  for (bool with_add : {true, false}) {
    SCOPED_TRACE(with_add ? "with add" : "norm only");
    std::vector<float> want_residual = residual;
    if (with_add) cpu::AddInPlace(want_residual.data(), ToFloats(add).data(), rows * n);
    std::vector<float> want(rows * n);
    cpu::RmsNorm(kernels_, want_residual.data(), rows, n, weight_f.data(), eps, want.data());

    DeviceArray<float> d_residual(residual);
    DeviceArray<uint16_t> d_add(add), d_weight(weight), d_out(rows * n);
    ASSERT_TRUE(LaunchAddRmsNorm(dtype(), d_residual.get(), with_add ? d_add.get() : nullptr,
                                 d_weight.get(), rows, n, eps, d_out.get(), nullptr)
                    .ok());
    ASSERT_EQ(Sync(), cudaSuccess);
    // The sum is the same single fp32 addition on both sides.
    EXPECT_EQ(d_residual.ToHost(), want_residual);
    // One rounding to the dtype, plus the variance's summation order.
    ExpectNear(ToFloats(d_out.ToHost()), want, 2 * UnitRoundoff(dtype()), 1e-6f, "normed");
  }
}

// Llama 3.1's rope_scaling, and the default (unscaled) rotary embedding.
ModelConfig RopeConfig(int64_t head_dim, bool llama3) {
  ModelConfig c;
  c.head_dim = head_dim;
  c.rope_theta = llama3 ? 500000.0 : 10000.0;
  if (llama3) {
    c.rope_scaling.type = RopeScalingType::kLlama3;
    c.rope_scaling.factor = 8.0;
    c.rope_scaling.low_freq_factor = 1.0;
    c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position_embeddings = 8192;
  }
  return c;
}

TEST_P(CudaKernelsTest, RopeMatchesCpuRotationForDefaultAndLlama3Scaling) {
  for (int64_t head_dim : {64, 128}) {
    for (bool llama3 : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "head_dim " << head_dim << (llama3 ? " llama3" : ""));
      const int64_t rows = 19, q_heads = 8, kv_heads = 2;
      // A fused QKV row: queries, then keys, then values (not rotated).
      const int64_t ld = (q_heads + 2 * kv_heads) * head_dim;
      std::vector<uint16_t> qkv = RandomHalf(rows * ld, 2.0f);
      std::vector<int32_t> positions(rows);
      std::uniform_int_distribution<int32_t> pos(0, 32767);
      for (int32_t& p : positions) p = pos(rng_);
      positions[0] = 0;
      positions[1] = 32767;
      const std::vector<float> inv_freq = cpu::RopeInverseFrequencies(RopeConfig(head_dim, llama3));
      std::vector<float> cos(rows * head_dim / 2), sin(rows * head_dim / 2);
      cpu::RopeCosSin(inv_freq, positions.data(), rows, cos.data(), sin.data());
      std::vector<float> want = ToFloats(qkv);
      cpu::ApplyRope(want.data(), rows, ld, q_heads, head_dim, cos.data(), sin.data());
      cpu::ApplyRope(want.data() + q_heads * head_dim, rows, ld, kv_heads, head_dim, cos.data(),
                     sin.data());

      DeviceArray<uint16_t> d_qkv(qkv);
      DeviceArray<int32_t> d_positions(positions);
      DeviceArray<float> d_inv_freq(inv_freq);
      uint16_t* base = d_qkv.get();
      ASSERT_TRUE(LaunchRope(dtype(), base, ld, q_heads, base + q_heads * head_dim, ld, kv_heads,
                             head_dim, d_positions.get(), d_inv_freq.get(), rows, nullptr)
                      .ok());
      ASSERT_EQ(Sync(), cudaSuccess);
      const std::vector<uint16_t> got_bits = d_qkv.ToHost();
      const std::vector<float> got = ToFloats(got_bits);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = (q_heads + kv_heads) * head_dim; i < ld; ++i)
          ASSERT_EQ(got_bits[r * ld + i], qkv[r * ld + i]) << "value row " << r << " touched";
      // cos / sin of angles up to 32767 rad differ by a few fp32 ulps
      // between libm and CUDA; then one rounding to the dtype.
      ExpectNear(got, want, 2 * UnitRoundoff(dtype()), 1e-5f, "rotated");
    }
  }
}

TEST_P(CudaKernelsTest, KvCacheWriteStoresEachTokenAtItsSlotAndSkipsNegativeSlots) {
  const int64_t rows = 23, kv_heads = 3, head_dim = 64, block_size = 16, num_blocks = 10;
  const int64_t width = kv_heads * head_dim;
  const int64_t ld = 2 * width + 7;  // k and v inside wider rows
  std::vector<uint16_t> kv = RandomHalf(rows * ld);
  std::vector<int64_t> slots(num_blocks * block_size);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng_);
  slots.resize(rows);
  slots[5] = -1;  // a padding row

  // The CPU writes [slot, width] fp32 rows; the GPU layout is converted below.
  std::vector<float> kv_f = ToFloats(kv);
  std::vector<float> k_rows, v_rows;
  StepBatch written;  // the non-padding rows
  for (int64_t t = 0; t < rows; ++t) {
    if (slots[t] < 0) continue;
    written.tokens.push_back(0);
    written.slot_mapping.push_back(slots[t]);
    k_rows.insert(k_rows.end(), kv_f.begin() + t * ld, kv_f.begin() + t * ld + width);
    v_rows.insert(v_rows.end(), kv_f.begin() + t * ld + width, kv_f.begin() + t * ld + 2 * width);
  }
  const float kSentinel = -1536.0f;  // exact in bf16 and f16, outside the data
  std::vector<float> k_cache(num_blocks * block_size * width, kSentinel), v_cache = k_cache;
  cpu::WriteKv(written, {kv_heads, kv_heads, head_dim, block_size, std::nullopt}, k_rows.data(),
               v_rows.data(), k_cache.data(), v_cache.data());

  const KvCacheLayout layout{kv_heads, block_size, head_dim};
  const uint16_t sentinel = ToHalfBits(dtype(), kSentinel);
  DeviceArray<uint16_t> d_kv(kv);
  DeviceArray<int64_t> d_slots(slots);
  DeviceArray<uint16_t> d_k(std::vector<uint16_t>(k_cache.size(), sentinel));
  DeviceArray<uint16_t> d_v(std::vector<uint16_t>(v_cache.size(), sentinel));
  ASSERT_TRUE(LaunchKvCacheWrite(dtype(), d_kv.get(), ld, d_kv.get() + width, ld, d_slots.get(),
                                 rows, layout, d_k.get(), d_v.get(), nullptr)
                  .ok());
  ASSERT_EQ(Sync(), cudaSuccess);
  const std::vector<float> got_k = ToFloats(d_k.ToHost()), got_v = ToFloats(d_v.ToHost());
  for (int64_t slot = 0; slot < num_blocks * block_size; ++slot)
    for (int64_t h = 0; h < kv_heads; ++h)
      for (int64_t d = 0; d < head_dim; ++d) {
        const int64_t cpu_index = slot * width + h * head_dim + d;
        ASSERT_EQ(got_k[layout.Index(slot, h, d)], k_cache[cpu_index]) << "K slot " << slot;
        ASSERT_EQ(got_v[layout.Index(slot, h, d)], v_cache[cpu_index]) << "V slot " << slot;
      }
}

TEST_P(CudaKernelsTest, SiluMulMatchesCpuOnFusedGateUpRows) {
  const int64_t rows = 7, n = 333;
  std::vector<uint16_t> gate_up = RandomHalf(rows * 2 * n, 6.0f);
  const std::vector<float> gu = ToFloats(gate_up);
  std::vector<float> want(rows * n);
  for (int64_t r = 0; r < rows; ++r)
    cpu::SiluMul(gu.data() + r * 2 * n, gu.data() + r * 2 * n + n, n, want.data() + r * n);

  DeviceArray<uint16_t> d_gate_up(gate_up), d_out(rows * n);
  ASSERT_TRUE(LaunchSiluMul(dtype(), d_gate_up.get(), d_gate_up.get() + n, 2 * n, rows, n,
                            d_out.get(), nullptr)
                  .ok());
  ASSERT_EQ(Sync(), cudaSuccess);
  // expf differs from libm's by an ulp or two; then one rounding.
  ExpectNear(ToFloats(d_out.ToHost()), want, 2 * UnitRoundoff(dtype()), 1e-6f, "silu_mul");
}

TEST_P(CudaKernelsTest, GatherRowsCopiesTheSampledRowsInOrder) {
  const int64_t rows = 41, n = 98;
  std::vector<uint16_t> in = RandomHalf(rows * n);
  const std::vector<int32_t> picked = {40, 0, 17, 17, 3};
  DeviceArray<uint16_t> d_in(in), d_out(picked.size() * n);
  DeviceArray<int32_t> d_picked(picked);
  ASSERT_TRUE(LaunchGatherRows(d_in.get(), n * 2, d_picked.get(),
                               static_cast<int64_t>(picked.size()), d_out.get(), nullptr)
                  .ok());
  ASSERT_EQ(Sync(), cudaSuccess);
  const std::vector<uint16_t> got = d_out.ToHost();
  for (size_t r = 0; r < picked.size(); ++r)
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(got[r * n + i], in[picked[r] * n + i]) << "row " << r << " element " << i;
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaKernelsTest, ::testing::Values(DType::kBF16, DType::kF16),
                         [](const auto& param_info) {
                           return param_info.param == DType::kBF16 ? std::string("BF16")
                                                                   : std::string("F16");
                         });

}  // namespace
}  // namespace muserve::cuda
