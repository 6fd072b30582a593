// GemmRunner (label `gpu`) against a double-precision reference on the same
// rounded inputs, on uneven shapes, strided rows, misaligned row offsets,
// bias, F32 output and beta = 1 accumulation. Skipped where no CUDA device
// is visible.
//
// Tolerance: the products of bf16 / f16 inputs are exact in fp32, so the
// error is the fp32 accumulation's, at most K * u32 * sum |a_k w_k| for any
// summation order (u32 = 2^-24; taken as 2^-23 to allow accumulators that
// truncate rather than round), plus one rounding of the result to the output
// type, u_out * |result|. A transposed, misstrided or unbiased result misses
// by the size of the result itself, far above that bound.
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cuda/gemm.h"
#include "gtest/gtest.h"
#include "tests/testing/cuda_test_util.h"

namespace muserve::cuda {
namespace {

using ::muserve::testing::DeviceArray;
using ::muserve::testing::FromHalfBits;
using ::muserve::testing::Sync;
using ::muserve::testing::ToHalfBits;
using ::muserve::testing::UnitRoundoff;

struct Shape {
  int64_t m, n, k;
  int64_t lda_pad = 0;   // lda = k + lda_pad
  int64_t ldo_pad = 0;   // ldo = n + ldo_pad
  int64_t a_offset = 0;  // a starts this many elements into its buffer
  bool bias = false;
  bool f32_out = false;
  bool accumulate = false;  // beta = 1 (F32 out only)
};

std::string Describe(const Shape& s) {
  return absl::StrCat("m=", s.m, " n=", s.n, " k=", s.k, " lda=", s.k + s.lda_pad,
                      " ldo=", s.n + s.ldo_pad, " a_offset=", s.a_offset, " bias=", s.bias,
                      " f32_out=", s.f32_out, " beta=", s.accumulate ? 1 : 0);
}

// Written into every output element first: padding columns must keep it.
constexpr float kSentinel = 1024.0f;  // exact in bf16 and f16

class CudaGemmTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    MUSERVE_SKIP_WITHOUT_CUDA_DEVICE();
    ASSERT_EQ(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), cudaSuccess);
    absl::StatusOr<std::unique_ptr<GemmRunner>> runner = GemmRunner::Create(stream_);
    ASSERT_TRUE(runner.ok()) << runner.status();
    runner_ = *std::move(runner);
  }
  void TearDown() override {
    runner_.reset();
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  DType dtype() const { return GetParam(); }

  std::vector<uint16_t> RandomHalf(int64_t n, float scale) {
    std::uniform_real_distribution<float> dist(-scale, scale);
    std::vector<uint16_t> bits(static_cast<size_t>(n));
    for (uint16_t& b : bits) b = ToHalfBits(dtype(), dist(rng_));
    return bits;
  }
  float Half(uint16_t bits) const { return FromHalfBits(dtype(), bits); }

  // Runs one GEMM of `shape` on fresh random data and checks every output
  // element (and that padding columns are untouched). `runs` > 1 repeats it
  // on new data through the cached plan.
  void CheckGemm(const Shape& shape, int runs = 1) {
    SCOPED_TRACE(Describe(shape));
    for (int run = 0; run < runs; ++run) CheckOnce(shape);
  }

  void CheckOnce(const Shape& s) {
    const int64_t lda = s.k + s.lda_pad, ldo = s.n + s.ldo_pad;
    const std::vector<uint16_t> a = RandomHalf(s.a_offset + s.m * lda, 1.0f);
    const std::vector<uint16_t> w = RandomHalf(s.n * s.k, 0.5f);
    const std::vector<uint16_t> bias = RandomHalf(s.n, 2.0f);
    const DType out_dtype = s.f32_out ? DType::kF32 : dtype();
    std::vector<float> initial(static_cast<size_t>(s.m * ldo), kSentinel);
    if (s.accumulate) {
      std::uniform_real_distribution<float> dist(-4.0f, 4.0f);
      for (int64_t r = 0; r < s.m; ++r)
        for (int64_t c = 0; c < s.n; ++c) initial[r * ldo + c] = dist(rng_);
    }
    std::vector<uint16_t> initial_half(initial.size());
    for (size_t i = 0; i < initial.size(); ++i) initial_half[i] = ToHalfBits(dtype(), initial[i]);

    DeviceArray<uint16_t> d_a(a), d_w(w), d_bias(bias), d_out_half(initial_half);
    DeviceArray<float> d_out_f32(initial);
    GemmArgs args;
    args.dtype = dtype();
    args.out_dtype = out_dtype;
    args.a = d_a.get() + s.a_offset;
    args.lda = lda;
    args.w = d_w.get();
    args.bias = s.bias ? d_bias.get() : nullptr;
    args.out = s.f32_out ? static_cast<void*>(d_out_f32.get()) : d_out_half.get();
    args.ldo = ldo;
    args.m = s.m;
    args.n = s.n;
    args.k = s.k;
    args.beta = s.accumulate ? 1.0f : 0.0f;
    ASSERT_TRUE(runner_->Run(args).ok());
    ASSERT_EQ(Sync(), cudaSuccess);

    std::vector<float> got(initial.size());
    if (s.f32_out) {
      got = d_out_f32.ToHost();
    } else {
      const std::vector<uint16_t> bits = d_out_half.ToHost();
      for (size_t i = 0; i < bits.size(); ++i) got[i] = Half(bits[i]);
    }
    const double u_out = s.f32_out ? 0x1p-24 : UnitRoundoff(dtype());
    int misses = 0;
    for (int64_t r = 0; r < s.m; ++r) {
      for (int64_t c = 0; c < ldo; ++c) {
        const float value = got[r * ldo + c];
        if (c >= s.n) {
          if (value != kSentinel && ++misses <= 5)
            ADD_FAILURE() << "padding out[" << r << ", " << c << "] changed to " << value;
          continue;
        }
        double want = 0.0, magnitude = 0.0;
        for (int64_t i = 0; i < s.k; ++i) {
          const double product =
              static_cast<double>(Half(a[s.a_offset + r * lda + i])) * Half(w[c * s.k + i]);
          want += product;
          magnitude += std::fabs(product);
        }
        if (s.bias) {
          want += Half(bias[c]);
          magnitude += std::fabs(Half(bias[c]));
        }
        if (s.accumulate) {
          want += initial[r * ldo + c];
          magnitude += std::fabs(initial[r * ldo + c]);
        }
        const double tolerance =
            u_out * std::fabs(want) + static_cast<double>(s.k + 2) * 0x1p-23 * magnitude;
        if (std::fabs(value - want) > tolerance && ++misses <= 5) {
          ADD_FAILURE() << "out[" << r << ", " << c << "]: got " << value << ", want " << want
                        << " (tolerance " << tolerance << ")";
        }
      }
    }
    EXPECT_EQ(misses, 0) << misses << " elements of " << s.m * ldo << " differ";
  }

  cudaStream_t stream_ = nullptr;
  std::unique_ptr<GemmRunner> runner_;
  std::mt19937 rng_{20261126};
};

TEST_P(CudaGemmTest, MatchesTheReferenceOnUnevenShapes) {
  for (int64_t m : {1, 3, 17, 64, 257}) {
    CheckGemm({.m = m, .n = 96, .k = 64});
    CheckGemm({.m = m, .n = 64, .k = 96});
  }
  CheckGemm({.m = 3, .n = 33, .k = 40});
  CheckGemm({.m = 5, .n = 4096, .k = 64});
  CheckGemm({.m = 17, .n = 64, .k = 4096});
}

TEST_P(CudaGemmTest, ReadsAndWritesRowsThroughTheirLeadingDimensions) {
  CheckGemm({.m = 17, .n = 96, .k = 64, .lda_pad = 8, .ldo_pad = 32});
  CheckGemm({.m = 64, .n = 64, .k = 96, .lda_pad = 3, .ldo_pad = 5});
}

TEST_P(CudaGemmTest, ReadsActivationsThatStartOffTheAllocationAlignment) {
  // 2-byte aligned rows (odd offset, odd lda) need kernels that do not
  // assume 16-byte loads; the heuristic must be told.
  CheckGemm({.m = 17, .n = 64, .k = 96, .lda_pad = 1, .a_offset = 1});
  CheckGemm({.m = 3, .n = 96, .k = 64, .a_offset = 8});
}

TEST_P(CudaGemmTest, AddsTheBiasOfEachOutputColumn) {
  for (int64_t m : {1, 17, 257}) CheckGemm({.m = m, .n = 96, .k = 64, .bias = true});
  CheckGemm({.m = 3, .n = 64, .k = 96, .ldo_pad = 8, .bias = true});
}

TEST_P(CudaGemmTest, WritesF32Logits) {
  for (int64_t m : {1, 17, 64}) CheckGemm({.m = m, .n = 4096, .k = 96, .f32_out = true});
  CheckGemm({.m = 3, .n = 96, .k = 64, .ldo_pad = 7, .f32_out = true});
}

TEST_P(CudaGemmTest, AccumulatesIntoAnF32OutputWithBetaOne) {
  CheckGemm({.m = 17, .n = 96, .k = 64, .f32_out = true, .accumulate = true});
  CheckGemm({.m = 1, .n = 64, .k = 4096, .ldo_pad = 4, .f32_out = true, .accumulate = true});
}

TEST_P(CudaGemmTest, RerunningAShapeUsesTheNewDataAndBias) {
  // The second and third runs take the cached plan with other buffers.
  CheckGemm({.m = 17, .n = 96, .k = 64, .bias = true}, /*runs=*/3);
  CheckGemm({.m = 3, .n = 64, .k = 96, .f32_out = true, .accumulate = true}, /*runs=*/2);
}

TEST_P(CudaGemmTest, AnEmptyBatchWritesNothing) {
  std::vector<uint16_t> out(64, ToHalfBits(dtype(), kSentinel));
  DeviceArray<uint16_t> d_a(std::vector<uint16_t>(96)), d_w(std::vector<uint16_t>(64 * 96)),
      d_out(out);
  GemmArgs args{.dtype = dtype(),
                .out_dtype = dtype(),
                .a = d_a.get(),
                .lda = 96,
                .w = d_w.get(),
                .out = d_out.get(),
                .ldo = 64,
                .m = 0,
                .n = 64,
                .k = 96};
  ASSERT_TRUE(runner_->Run(args).ok());
  ASSERT_EQ(Sync(), cudaSuccess);
  EXPECT_EQ(d_out.ToHost(), out);
}

TEST_P(CudaGemmTest, RejectsBadArgumentsBeforeEnqueuing) {
  DeviceArray<uint16_t> d_a(std::vector<uint16_t>(96)), d_w(std::vector<uint16_t>(64 * 96)),
      d_out(std::vector<uint16_t>(64));
  GemmArgs args{.dtype = dtype(),
                .out_dtype = dtype(),
                .a = d_a.get(),
                .lda = 95,
                .w = d_w.get(),
                .out = d_out.get(),
                .ldo = 64,
                .m = 1,
                .n = 64,
                .k = 96};
  const absl::Status status = runner_->Run(args);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("GemmArgs.lda"), std::string::npos) << status;
}

TEST_P(CudaGemmTest, ReplaysInACudaGraphOnceTheShapeHasRun) {
  const int64_t m = 17, n = 96, k = 64;
  const std::vector<uint16_t> a = RandomHalf(m * k, 1.0f), w = RandomHalf(n * k, 0.5f);
  DeviceArray<uint16_t> d_a(a), d_w(w), d_eager(static_cast<size_t>(m * n)),
      d_graph(static_cast<size_t>(m * n));
  GemmArgs args{.dtype = dtype(),
                .out_dtype = dtype(),
                .a = d_a.get(),
                .lda = k,
                .w = d_w.get(),
                .out = d_eager.get(),
                .ldo = n,
                .m = m,
                .n = n,
                .k = k};
  ASSERT_TRUE(runner_->Run(args).ok());
  ASSERT_EQ(Sync(), cudaSuccess);

  args.out = d_graph.get();
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  const absl::Status captured = runner_->Run(args);
  ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
  ASSERT_TRUE(captured.ok()) << captured;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
  ASSERT_EQ(Sync(), cudaSuccess);
  // Same algorithm, same inputs: the replay gives the eager result bit for bit.
  EXPECT_EQ(d_graph.ToHost(), d_eager.ToHost());
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

INSTANTIATE_TEST_SUITE_P(HalfTypes, CudaGemmTest, ::testing::Values(DType::kBF16, DType::kF16),
                         [](const auto& param_info) {
                           return std::string(DTypeName(param_info.param));
                         });

}  // namespace
}  // namespace muserve::cuda
