// WeightUploader and FillRandom (label `gpu`): the device conversions equal
// engine/api/dtype.h's host conversions bit for bit (NaN payloads, inf,
// subnormals, ties, every bf16 / f16 pattern), tensors many times the
// staging size arrive intact, row slices land packed, and the random fill is
// the documented function of (seed, index). The staging is 1 KiB so that
// every tensor here crosses many chunks and both halves. Skipped where no
// CUDA device is visible, but for the check of Create's argument.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cuda/weight_upload.h"
#include "engine/api/dtype.h"
#include "gtest/gtest.h"
#include "tests/testing/cuda_test_util.h"

namespace muserve::cuda {
namespace {

using ::muserve::testing::DeviceArray;
using ::muserve::testing::Sync;

constexpr int64_t kStagingBytes = 1024;

template <class T>
std::vector<std::byte> Bytes(const std::vector<T>& values, size_t offset = 0) {
  std::vector<std::byte> bytes(offset + values.size() * sizeof(T));
  std::memcpy(bytes.data() + offset, values.data(), values.size() * sizeof(T));
  return bytes;
}

// The floats whose rounding is easiest to get wrong, then random bit
// patterns (every class: NaNs, subnormals, huge and tiny normals).
std::vector<float> HardFloats() {
  std::vector<uint32_t> bits = {
      0x00000000u, 0x80000000u, 0x3f800000u, 0xbf800000u,  // +-0, +-1
      0x7f800000u, 0xff800000u,                            // +-inf
      0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff812345u,  // quiet and signalling NaNs
      0x7fa5a5a5u, 0x7fffffffu,                            // NaN payloads
      0x00000001u, 0x80000001u, 0x007fffffu, 0x00400000u,  // fp32 subnormals
      0x00800000u, 0x7f7fffffu, 0xff7fffffu,               // smallest normal, +-max
      0x3f808000u, 0x3f818000u, 0x3f808001u, 0x3f807fffu,  // bf16 ties 1 + 2^-8, 1 + 3 * 2^-8
      0x3f801000u, 0x3f803000u, 0x3f801001u, 0x3f800fffu,  // f16 ties 1 + 2^-11, 1 + 3 * 2^-11
      0x7f7f8000u, 0x7f7f7fffu,                            // bf16 overflow tie / just below
  };
  const float f16_edges[] = {65504.0f, 65519.99f, 65520.0f,   -65520.0f, 0x1p-24f,     0x1p-25f,
                             0x3p-25f, 0x1p-26f,  0x1.8p-24f, 0x1p-14f,  0x1.ff8p-15f, -0x1p-24f};
  for (float f : f16_edges) bits.push_back(std::bit_cast<uint32_t>(f));
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) bits.push_back(static_cast<uint32_t>(rng()));
  std::vector<float> floats;
  for (uint32_t b : bits) floats.push_back(std::bit_cast<float>(b));
  return floats;
}

std::vector<uint16_t> AllHalfPatterns() {
  std::vector<uint16_t> bits(65536);
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = static_cast<uint16_t>(i);
  return bits;
}

// Element i that differs first, or -1.
template <class T>
int64_t FirstDifference(const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size()) return 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i]) return static_cast<int64_t>(i);
  return -1;
}

class WeightUploadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MUSERVE_SKIP_WITHOUT_CUDA_DEVICE();
    absl::StatusOr<std::unique_ptr<WeightUploader>> uploader =
        WeightUploader::Create(kStagingBytes);
    ASSERT_TRUE(uploader.ok()) << uploader.status();
    uploader_ = *std::move(uploader);
  }

  // Uploads `src` (host bytes of `src_dtype`, starting `offset` bytes in) as
  // `dst_dtype` and returns the device's bits.
  std::vector<uint16_t> UploadAndRead(const std::vector<std::byte>& bytes, size_t offset,
                                      DType src_dtype, DType dst_dtype) {
    const int64_t elements = static_cast<int64_t>((bytes.size() - offset) / DTypeSize(src_dtype));
    DeviceArray<uint16_t> dst(static_cast<size_t>(elements));
    const absl::Status uploaded =
        uploader_->Upload(bytes.data() + offset, src_dtype, elements, dst_dtype, dst.get());
    EXPECT_TRUE(uploaded.ok()) << uploaded;
    const absl::Status finished = uploader_->Finish();
    EXPECT_TRUE(finished.ok()) << finished;
    return dst.ToHost();
  }

  std::unique_ptr<WeightUploader> uploader_;
};

TEST_F(WeightUploadTest, F32ToBf16EqualsTheHostConversionBitForBit) {
  const std::vector<float> values = HardFloats();
  std::vector<uint16_t> want;
  for (float v : values) want.push_back(F32ToBf16(v));
  const std::vector<uint16_t> got = UploadAndRead(Bytes(values), 0, DType::kF32, DType::kBF16);
  const int64_t i = FirstDifference(got, want);
  EXPECT_EQ(i, -1) << "F32 bits 0x" << std::hex << std::bit_cast<uint32_t>(values[i]) << ": got 0x"
                   << got[i] << ", want 0x" << want[i];
}

TEST_F(WeightUploadTest, F32ToF16EqualsTheHostConversionBitForBit) {
  const std::vector<float> values = HardFloats();
  std::vector<uint16_t> want;
  for (float v : values) want.push_back(F32ToF16(v));
  const std::vector<uint16_t> got = UploadAndRead(Bytes(values), 0, DType::kF32, DType::kF16);
  const int64_t i = FirstDifference(got, want);
  EXPECT_EQ(i, -1) << "F32 bits 0x" << std::hex << std::bit_cast<uint32_t>(values[i]) << ": got 0x"
                   << got[i] << ", want 0x" << want[i];
}

TEST_F(WeightUploadTest, ConvertsEveryBf16AndF16PatternToTheOtherAsTheHostDoes) {
  const std::vector<uint16_t> all = AllHalfPatterns();
  std::vector<uint16_t> want_f16, want_bf16;
  for (uint16_t b : all) {
    want_f16.push_back(F32ToF16(Bf16ToF32(b)));
    want_bf16.push_back(F32ToBf16(F16ToF32(b)));
  }
  const std::vector<uint16_t> got_f16 = UploadAndRead(Bytes(all), 0, DType::kBF16, DType::kF16);
  int64_t i = FirstDifference(got_f16, want_f16);
  EXPECT_EQ(i, -1) << "bf16 0x" << std::hex << all[i] << ": got f16 0x" << got_f16[i] << ", want 0x"
                   << want_f16[i];
  const std::vector<uint16_t> got_bf16 = UploadAndRead(Bytes(all), 0, DType::kF16, DType::kBF16);
  i = FirstDifference(got_bf16, want_bf16);
  EXPECT_EQ(i, -1) << "f16 0x" << std::hex << all[i] << ": got bf16 0x" << got_bf16[i]
                   << ", want 0x" << want_bf16[i];
}

TEST_F(WeightUploadTest, SameDTypeUploadsAreIdentityCopies) {
  const std::vector<uint16_t> all = AllHalfPatterns();
  EXPECT_EQ(UploadAndRead(Bytes(all), 0, DType::kBF16, DType::kBF16), all);
  EXPECT_EQ(UploadAndRead(Bytes(all), 0, DType::kF16, DType::kF16), all);
}

TEST_F(WeightUploadTest, ReadsSourcesAtAnyAlignmentAndCountsTheBytesRead) {
  const std::vector<float> values = HardFloats();
  std::vector<uint16_t> want;
  for (float v : values) want.push_back(F32ToBf16(v));
  EXPECT_EQ(UploadAndRead(Bytes(values, 3), 3, DType::kF32, DType::kBF16), want);
  const std::vector<uint16_t> all = AllHalfPatterns();
  EXPECT_EQ(UploadAndRead(Bytes(all, 1), 1, DType::kBF16, DType::kBF16), all);
  EXPECT_EQ(uploader_->bytes_read(),
            static_cast<int64_t>(values.size() * sizeof(float) + all.size() * 2));
}

TEST_F(WeightUploadTest, BackToBackUploadsThroughTheSameStagingAllArriveIntact) {
  // No Finish between uploads: the host refills each half only once the
  // device is done with it.
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  std::vector<std::vector<float>> tensors;
  std::vector<std::unique_ptr<DeviceArray<uint16_t>>> dsts;
  for (int64_t elements : {1, 127, 128, 129, 5000, 100003}) {
    std::vector<float>& t = tensors.emplace_back(static_cast<size_t>(elements));
    for (float& v : t) v = dist(rng);
    dsts.push_back(std::make_unique<DeviceArray<uint16_t>>(t.size()));
    ASSERT_TRUE(uploader_
                    ->Upload(reinterpret_cast<const std::byte*>(t.data()), DType::kF32, elements,
                             DType::kBF16, dsts.back()->get())
                    .ok());
  }
  ASSERT_TRUE(uploader_->Finish().ok());
  for (size_t n = 0; n < tensors.size(); ++n) {
    std::vector<uint16_t> want;
    for (float v : tensors[n]) want.push_back(F32ToBf16(v));
    EXPECT_EQ(dsts[n]->ToHost(), want) << "tensor " << n << " of " << tensors[n].size();
  }
}

TEST_F(WeightUploadTest, UploadRowsPacksAColumnSliceOfEachRow) {
  // A [37, 211] F32 matrix; columns [50, 50 + 71) of each row, as a
  // tensor-parallel rank's slice of a row-parallel weight. 37 * 71 elements
  // cross chunk boundaries mid-row.
  const int64_t rows = 37, stride = 211, begin = 50, width = 71;
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> matrix(static_cast<size_t>(rows * stride));
  for (float& v : matrix) v = dist(rng);
  for (DType dst_dtype : {DType::kBF16, DType::kF16}) {
    DeviceArray<uint16_t> dst(static_cast<size_t>(rows * width));
    ASSERT_TRUE(uploader_
                    ->UploadRows(reinterpret_cast<const std::byte*>(matrix.data() + begin),
                                 DType::kF32, rows, width, stride, dst_dtype, dst.get())
                    .ok());
    ASSERT_TRUE(uploader_->Finish().ok());
    std::vector<uint16_t> want;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < width; ++c)
        want.push_back(dst_dtype == DType::kBF16 ? F32ToBf16(matrix[r * stride + begin + c])
                                                 : F32ToF16(matrix[r * stride + begin + c]));
    EXPECT_EQ(dst.ToHost(), want) << DTypeName(dst_dtype);
  }
}

TEST_F(WeightUploadTest, RejectsBadArgumentsNamingThem) {
  DeviceArray<uint16_t> dst(16);
  const std::vector<float> src(16);
  const auto* bytes = reinterpret_cast<const std::byte*>(src.data());
  absl::Status s = uploader_->Upload(bytes, DType::kF32, 16, DType::kF32, dst.get());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("dst_dtype"), std::string::npos) << s;
  s = uploader_->UploadRows(bytes, DType::kF32, 2, 8, 7, DType::kBF16, dst.get());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("src_row_stride_elements"), std::string::npos) << s;
  s = uploader_->Upload(bytes, DType::kF32, 16, DType::kBF16, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("dst"), std::string::npos) << s;
}

// Checked before any CUDA call: runs without a device too.
TEST(WeightUploaderCreateTest, RejectsAStagingTooSmallForTwoAlignedHalves) {
  const absl::Status s = WeightUploader::Create(511).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("staging_bytes"), std::string::npos) << s;
}

// cuda/kernels/convert.h's documented fill: splitmix64 of seed + i * golden
// ratio, the top 24 bits as u in [0, 1), scale * (2u - 1) in fp32.
float ExpectedRandom(uint64_t seed, int64_t i, float scale) {
  uint64_t x = seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ull;
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  const float u = static_cast<float>(x >> 40) * 0x1p-24f;
  return scale * (2.0f * u - 1.0f);
}

TEST_F(WeightUploadTest, FillRandomIsTheDocumentedFunctionOfSeedAndIndex) {
  const int64_t elements = 100003;
  const float scale = 0.02f;
  DeviceArray<float> f32(static_cast<size_t>(elements));
  DeviceArray<uint16_t> bf16(static_cast<size_t>(elements)), f16(static_cast<size_t>(elements));
  ASSERT_TRUE(FillRandom(DType::kF32, f32.get(), elements, 42, scale, nullptr).ok());
  ASSERT_TRUE(FillRandom(DType::kBF16, bf16.get(), elements, 42, scale, nullptr).ok());
  ASSERT_TRUE(FillRandom(DType::kF16, f16.get(), elements, 42, scale, nullptr).ok());
  ASSERT_EQ(Sync(), cudaSuccess);
  const std::vector<float> got = f32.ToHost();
  const std::vector<uint16_t> got_bf16 = bf16.ToHost(), got_f16 = f16.ToHost();
  float lowest = scale, highest = -scale;
  double sum = 0.0;
  for (int64_t i = 0; i < elements; ++i) {
    const float want = ExpectedRandom(42, i, scale);
    ASSERT_EQ(got[i], want) << i;
    ASSERT_EQ(got_bf16[i], F32ToBf16(want)) << i;
    ASSERT_EQ(got_f16[i], F32ToF16(want)) << i;
    ASSERT_LE(std::fabs(got[i]), scale) << i;
    lowest = std::min(lowest, got[i]);
    highest = std::max(highest, got[i]);
    sum += got[i];
  }
  // Uniform over the whole range: the extremes are within 0.1% of it and
  // the mean is near 0 (its standard error is scale / sqrt(3 * elements)).
  EXPECT_LT(lowest, -0.999f * scale);
  EXPECT_GT(highest, 0.999f * scale);
  EXPECT_LT(std::fabs(sum / elements), 5.0 * scale / std::sqrt(3.0 * elements));
}

TEST_F(WeightUploadTest, FillRandomRepeatsForASeedAndDiffersAcrossSeeds) {
  const int64_t elements = 4099;
  DeviceArray<uint16_t> first(static_cast<size_t>(elements)), again(static_cast<size_t>(elements)),
      other(static_cast<size_t>(elements));
  ASSERT_TRUE(FillRandom(DType::kBF16, first.get(), elements, 7, 1.0f, nullptr).ok());
  ASSERT_TRUE(FillRandom(DType::kBF16, again.get(), elements, 7, 1.0f, nullptr).ok());
  ASSERT_TRUE(FillRandom(DType::kBF16, other.get(), elements, 8, 1.0f, nullptr).ok());
  ASSERT_EQ(Sync(), cudaSuccess);
  const std::vector<uint16_t> a = first.ToHost(), b = again.ToHost(), c = other.ToHost();
  EXPECT_EQ(a, b);
  int64_t same = 0;
  for (int64_t i = 0; i < elements; ++i) same += a[i] == c[i];
  // bf16 has 2^8 values per binade: chance agreements stay a small fraction.
  EXPECT_LT(same, elements / 20);
}

}  // namespace
}  // namespace muserve::cuda
