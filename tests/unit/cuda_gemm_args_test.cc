// GemmRunner's host-side argument checks (ValidateGemmArgs): no device is
// touched, so these run on any machine. Each bad argument is rejected with
// InvalidArgument naming its field; every valid combination passes.
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "cuda/gemm.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace muserve::cuda {
namespace {

using ::testing::HasSubstr;

// Addresses that are never dereferenced: validation only looks at them.
alignas(256) const uint16_t kA[1] = {};
alignas(256) const uint16_t kW[1] = {};
alignas(256) const uint16_t kBias[1] = {};
alignas(256) float kOut[1] = {};

GemmArgs ValidArgs() {
  GemmArgs args;
  args.dtype = DType::kBF16;
  args.out_dtype = DType::kBF16;
  args.a = kA;
  args.lda = 96;
  args.w = kW;
  args.out = kOut;
  args.ldo = 64;
  args.m = 17;
  args.n = 64;
  args.k = 96;
  return args;
}

void ExpectRejected(const GemmArgs& args, const std::string& field) {
  const absl::Status status = ValidateGemmArgs(args);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field << ": " << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("GemmArgs." + field + ":"));
}

TEST(GemmArgsTest, AcceptsEveryValidCombination) {
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    GemmArgs args = ValidArgs();
    args.dtype = dtype;
    args.out_dtype = dtype;
    EXPECT_TRUE(ValidateGemmArgs(args).ok()) << DTypeName(dtype);
    args.bias = kBias;
    EXPECT_TRUE(ValidateGemmArgs(args).ok()) << DTypeName(dtype) << " with bias";
    args.bias = nullptr;
    args.out_dtype = DType::kF32;
    EXPECT_TRUE(ValidateGemmArgs(args).ok()) << DTypeName(dtype) << " F32 out";
    args.beta = 1.0f;
    EXPECT_TRUE(ValidateGemmArgs(args).ok()) << DTypeName(dtype) << " F32 out, beta 1";
  }
}

TEST(GemmArgsTest, AcceptsStridesWiderThanTheRowsAndAnEmptyBatch) {
  GemmArgs args = ValidArgs();
  args.lda = args.k + 5;
  args.ldo = args.n + 3;
  EXPECT_TRUE(ValidateGemmArgs(args).ok());
  args.m = 0;
  EXPECT_TRUE(ValidateGemmArgs(args).ok());
}

TEST(GemmArgsTest, RejectsInputDTypesOtherThanBf16AndF16) {
  GemmArgs args = ValidArgs();
  args.dtype = DType::kF32;
  args.out_dtype = DType::kF32;
  ExpectRejected(args, "dtype");
}

TEST(GemmArgsTest, RejectsAnOutputDTypeOtherThanTheInputsOrF32) {
  GemmArgs args = ValidArgs();
  args.out_dtype = DType::kF16;
  ExpectRejected(args, "out_dtype");
}

TEST(GemmArgsTest, RejectsNegativeMAndNonPositiveNOrK) {
  GemmArgs args = ValidArgs();
  args.m = -1;
  ExpectRejected(args, "m");
  args = ValidArgs();
  args.n = 0;
  ExpectRejected(args, "n");
  args = ValidArgs();
  args.k = 0;
  ExpectRejected(args, "k");
}

TEST(GemmArgsTest, RejectsLeadingDimensionsNarrowerThanTheRows) {
  GemmArgs args = ValidArgs();
  args.lda = args.k - 1;
  ExpectRejected(args, "lda");
  args = ValidArgs();
  args.ldo = args.n - 1;
  ExpectRejected(args, "ldo");
}

TEST(GemmArgsTest, RejectsNullMatrices) {
  GemmArgs args = ValidArgs();
  args.a = nullptr;
  ExpectRejected(args, "a");
  args = ValidArgs();
  args.w = nullptr;
  ExpectRejected(args, "w");
  args = ValidArgs();
  args.out = nullptr;
  ExpectRejected(args, "out");
}

TEST(GemmArgsTest, RejectsBetaOtherThanZeroOrOne) {
  GemmArgs args = ValidArgs();
  args.out_dtype = DType::kF32;
  args.beta = 0.5f;
  ExpectRejected(args, "beta");
}

TEST(GemmArgsTest, RejectsAccumulatingIntoAHalfOutput) {
  GemmArgs args = ValidArgs();
  args.beta = 1.0f;
  ExpectRejected(args, "beta");
}

TEST(GemmArgsTest, RejectsABiasWithAnF32Output) {
  GemmArgs args = ValidArgs();
  args.out_dtype = DType::kF32;
  args.bias = kBias;
  ExpectRejected(args, "bias");
}

}  // namespace
}  // namespace muserve::cuda
