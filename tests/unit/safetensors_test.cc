// Safetensors reading (mmap views, header validation, shards), writing, and
// the F16/BF16 conversions, checked against files written by the Python
// `safetensors` library and transformers (tests/reference/make_safetensors_fixtures.py).
#include "engine/model/safetensors.h"

#include <sys/stat.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/api/dtype.h"
#include "engine/model/safetensors_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/fixtures.h"

namespace muserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

std::filesystem::path DtypesFixture() {
  return testing::FixturePath("safetensors/dtypes.safetensors");
}

std::unique_ptr<SafetensorsFile> OpenOrDie(const std::filesystem::path& path) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  return file.ok() ? std::move(*file) : nullptr;
}

const TensorView& Tensor(const SafetensorsFile& file, const std::string& name) {
  auto it = file.tensors().find(name);
  EXPECT_NE(it, file.tensors().end()) << name;
  return it->second;
}

std::vector<uint16_t> Bits16(const TensorView& view) {
  std::vector<uint16_t> bits(view.num_bytes / 2);
  std::memcpy(bits.data(), view.data, view.num_bytes);
  return bits;
}

std::vector<uint32_t> Bits32(const TensorView& view) {
  std::vector<uint32_t> bits(view.num_bytes / 4);
  std::memcpy(bits.data(), view.data, view.num_bytes);
  return bits;
}

// Writes a raw safetensors file: the 8-byte length, `header`, then `data`.
void WriteRaw(const std::filesystem::path& path, const std::string& header,
              const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  uint64_t length = header.size();
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  out.write(bytes, 8);
  out << header << data;
}

absl::Status OpenStatus(const std::filesystem::path& path) {
  return SafetensorsFile::Open(path).status();
}

// ---- dtype conversions --------------------------------------------------------

TEST(DTypeTest, SizesNamesAndParsing) {
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    absl::StatusOr<DType> parsed = ParseSafetensorsDType(DTypeName(dtype));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, dtype);
  }
  EXPECT_FALSE(ParseSafetensorsDType("I64").ok());
  EXPECT_EQ(*ParseTorchDType("bfloat16"), DType::kBF16);
  EXPECT_EQ(*ParseTorchDType("float16"), DType::kF16);
  EXPECT_EQ(*ParseTorchDType("float32"), DType::kF32);
  EXPECT_EQ(*ParseTorchDType("torch.bfloat16"), DType::kBF16);
  EXPECT_FALSE(ParseTorchDType("int8").ok());
}

TEST(DTypeTest, F16ToF32IsExactForEveryBitPatternAsInPyTorch) {
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(DtypesFixture());
  ASSERT_NE(file, nullptr);
  std::vector<uint16_t> f16 = Bits16(Tensor(*file, "all_f16"));
  std::vector<uint32_t> f32 = Bits32(Tensor(*file, "all_f16_as_f32"));
  ASSERT_EQ(f16.size(), 65536u);
  ASSERT_EQ(f32.size(), 65536u);
  for (size_t i = 0; i < f16.size(); ++i) {
    ASSERT_EQ(f16[i], i);  // the fixture enumerates bit patterns in order
    ASSERT_EQ(std::bit_cast<uint32_t>(F16ToF32(f16[i])), f32[i]) << "f16 bits 0x" << std::hex << i;
  }
}

TEST(DTypeTest, F32ToF16RoundsLikePyTorch) {
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(DtypesFixture());
  ASSERT_NE(file, nullptr);
  std::vector<uint32_t> inputs = Bits32(Tensor(*file, "f32_inputs"));
  std::vector<uint16_t> expected = Bits16(Tensor(*file, "f32_inputs_to_f16"));
  ASSERT_EQ(inputs.size(), expected.size());
  ASSERT_GT(inputs.size(), 4000u);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const float value = std::bit_cast<float>(inputs[i]);
    const uint16_t got = F32ToF16(value);
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(F16ToF32(got))) << i;
      EXPECT_TRUE(std::isnan(F16ToF32(expected[i]))) << i;
    } else {
      ASSERT_EQ(got, expected[i]) << "input " << value << " (bits 0x" << std::hex << inputs[i]
                                  << ")";
    }
  }
}

TEST(DTypeTest, F32ToBf16RoundsLikePyTorch) {
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(DtypesFixture());
  ASSERT_NE(file, nullptr);
  std::vector<uint32_t> inputs = Bits32(Tensor(*file, "f32_inputs"));
  std::vector<uint16_t> expected = Bits16(Tensor(*file, "f32_inputs_to_bf16"));
  ASSERT_EQ(inputs.size(), expected.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const float value = std::bit_cast<float>(inputs[i]);
    const uint16_t got = F32ToBf16(value);
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(Bf16ToF32(got))) << i;
      EXPECT_TRUE(std::isnan(Bf16ToF32(expected[i]))) << i;
    } else {
      ASSERT_EQ(got, expected[i]) << "input " << value << " (bits 0x" << std::hex << inputs[i]
                                  << ")";
    }
  }
}

TEST(DTypeTest, SpecialValuesDecodeAsInPyTorch) {
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(DtypesFixture());
  ASSERT_NE(file, nullptr);
  std::vector<uint16_t> f16 = Bits16(Tensor(*file, "special_f16"));
  std::vector<uint16_t> bf16 = Bits16(Tensor(*file, "special_bf16"));
  std::vector<uint32_t> f16_as_f32 = Bits32(Tensor(*file, "special_f16_as_f32"));
  std::vector<uint32_t> bf16_as_f32 = Bits32(Tensor(*file, "special_bf16_as_f32"));
  std::vector<uint32_t> f32 = Bits32(Tensor(*file, "special_f32"));
  ASSERT_EQ(f16.size(), f32.size());
  bool saw_negative_zero = false, saw_subnormal = false, saw_inf = false, saw_nan = false;
  for (size_t i = 0; i < f16.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(F16ToF32(f16[i])), f16_as_f32[i]) << i;
    EXPECT_EQ(std::bit_cast<uint32_t>(Bf16ToF32(bf16[i])), bf16_as_f32[i]) << i;
    const float value = std::bit_cast<float>(f32[i]);
    saw_negative_zero |= value == 0 && std::signbit(value);
    saw_subnormal |= std::fpclassify(F16ToF32(f16[i])) != FP_ZERO && std::fabs(value) < 6.1e-5f;
    saw_inf |= std::isinf(value);
    saw_nan |= std::isnan(value);
    if (!std::isnan(value)) {
      EXPECT_EQ(F32ToF16(value), f16[i]) << value;
      EXPECT_EQ(F32ToBf16(value), bf16[i]) << value;
    }
  }
  EXPECT_TRUE(saw_negative_zero && saw_subnormal && saw_inf && saw_nan);
}

// ---- reading one file -----------------------------------------------------------

TEST(SafetensorsTest, ReadsDtypesShapesAndMetadataWrittenByPython) {
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(DtypesFixture());
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  const TensorView& matrix = Tensor(*file, "matrix_bf16");
  EXPECT_EQ(matrix.name, "matrix_bf16");
  EXPECT_EQ(matrix.dtype, DType::kBF16);
  EXPECT_THAT(matrix.shape, ElementsAre(3, 4));
  EXPECT_EQ(matrix.num_elements(), 12);
  EXPECT_EQ(matrix.num_bytes, 24u);
  std::vector<uint16_t> bits = Bits16(matrix);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(Bf16ToF32(bits[i]), static_cast<float>(i - 6));

  const TensorView& scalar = Tensor(*file, "scalar_f32");
  EXPECT_TRUE(scalar.shape.empty());
  EXPECT_EQ(scalar.num_elements(), 1);
  float value = 0;
  std::memcpy(&value, scalar.data, 4);
  EXPECT_EQ(value, 42.5f);
  EXPECT_EQ(Tensor(*file, "special_f32").dtype, DType::kF32);
  EXPECT_EQ(Tensor(*file, "special_f16").dtype, DType::kF16);
}

// The tensors must point into the file mapping itself (no copy): the address
// lies in a /proc/self/maps region backed by the fixture file.
TEST(SafetensorsTest, TensorsAreViewsIntoTheFileMapping) {
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(DtypesFixture());
  ASSERT_NE(file, nullptr);
  const auto address = reinterpret_cast<uintptr_t>(Tensor(*file, "all_f16_as_f32").data);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  bool found = false;
  while (std::getline(maps, line)) {
    std::istringstream fields(line);
    std::string range, perms, offset, device, inode, path;
    fields >> range >> perms >> offset >> device >> inode >> path;
    const size_t dash = range.find('-');
    const uintptr_t begin = std::stoull(range.substr(0, dash), nullptr, 16);
    const uintptr_t end = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (address >= begin && address < end) {
      EXPECT_EQ(std::filesystem::weakly_canonical(path),
                std::filesystem::weakly_canonical(DtypesFixture()));
      EXPECT_EQ(perms.substr(0, 2), "r-");  // PROT_READ only
      EXPECT_EQ(perms[3], 'p');             // MAP_PRIVATE
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  absl::Status status = OpenStatus("/nonexistent/model.safetensors");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("/nonexistent/model.safetensors"));
}

TEST(SafetensorsTest, FileShorterThanTheLengthPrefixIsTruncated) {
  testing::TempDir dir;
  const auto path = dir.path() / "short.safetensors";
  std::ofstream(path, std::ios::binary) << "abc";
  absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("short.safetensors"));
  EXPECT_THAT(status.message(), HasSubstr("truncated: 3 bytes"));
}

TEST(SafetensorsTest, HeaderLongerThanTheFileIsTruncated) {
  testing::TempDir dir;
  const auto path = dir.path() / "header.safetensors";
  WriteRaw(path, std::string(100, ' '), "");
  std::filesystem::resize_file(path, 50);
  absl::Status status = OpenStatus(path);
  EXPECT_THAT(status.message(), HasSubstr("header length is 100 bytes but only 42 follow"));
}

TEST(SafetensorsTest, HeaderThatIsNotJsonIsAnError) {
  testing::TempDir dir;
  const auto path = dir.path() / "bad.safetensors";
  WriteRaw(path, "{\"a\": [1, 2", "");
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("header is not a JSON object"));
  WriteRaw(path, "[1]", "");
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("header is not a JSON object"));
}

TEST(SafetensorsTest, TruncatedFileNamesTheTensorAndSizes) {
  testing::TempDir dir;
  const auto path = dir.path() / "model.safetensors";
  const std::vector<float> first(10, 1.0f);
  const std::vector<float> second(90, 2.0f);
  ASSERT_TRUE(WriteSafetensors(path, {MakeTensorData("first", DType::kF32, {10}, first),
                                      MakeTensorData("second", DType::kF32, {90}, second)})
                  .ok());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 8);
  absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("truncated"));
  EXPECT_THAT(status.message(), HasSubstr("'second'"));
  EXPECT_THAT(status.message(), HasSubstr("[40, 400)"));
  EXPECT_THAT(status.message(), HasSubstr("holds 392"));
}

TEST(SafetensorsTest, DtypeTimesShapeMustMatchTheOffsets) {
  testing::TempDir dir;
  const auto path = dir.path() / "mismatch.safetensors";
  WriteRaw(path, R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})",
           std::string(20, '\0'));
  absl::Status status = OpenStatus(path);
  EXPECT_THAT(status.message(), HasSubstr("tensor 'w'"));
  EXPECT_THAT(status.message(), HasSubstr("shape [2, 3] need 24 bytes"));
  EXPECT_THAT(status.message(), HasSubstr("hold 20"));
}

TEST(SafetensorsTest, OverlappingOrGappedOffsetsAreRejected) {
  testing::TempDir dir;
  const auto path = dir.path() / "overlap.safetensors";
  WriteRaw(path,
           R"({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},)"
           R"( "b": {"dtype": "F16", "shape": [2], "data_offsets": [2, 6]}})",
           std::string(6, '\0'));
  EXPECT_THAT(OpenStatus(path).message(),
              HasSubstr("tensor 'b' data_offsets begin at 2, expected 4"));
  WriteRaw(path, R"({"a": {"dtype": "F16", "shape": [2], "data_offsets": [2, 6]}})",
           std::string(6, '\0'));
  EXPECT_THAT(OpenStatus(path).message(),
              HasSubstr("tensor 'a' data_offsets begin at 2, expected 0"));
}

TEST(SafetensorsTest, TrailingBytesAfterTheLastTensorAreRejected) {
  testing::TempDir dir;
  const auto path = dir.path() / "trailing.safetensors";
  WriteRaw(path, R"({"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}})",
           std::string(10, '\0'));
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("tensors cover 4 bytes"));
}

TEST(SafetensorsTest, UnsupportedDtypeOrMalformedEntryNamesTheTensor) {
  testing::TempDir dir;
  const auto path = dir.path() / "dtype.safetensors";
  WriteRaw(path, R"({"ids": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})",
           std::string(8, '\0'));
  absl::Status status = OpenStatus(path);
  EXPECT_THAT(status.message(), HasSubstr("tensor 'ids'"));
  EXPECT_THAT(status.message(), HasSubstr("I64"));
  WriteRaw(path, R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})",
           std::string(4, '\0'));
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("tensor 'w'"));
  WriteRaw(path, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})",
           std::string(4, '\0'));
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("end before they begin"));
  WriteRaw(path, R"({"w": {"dtype": "F32", "shape": [1]}})", std::string(4, '\0'));
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("'data_offsets'"));
}

TEST(SafetensorsTest, ShapeWhoseByteCountWrapsTo64BitsIsRejected) {
  testing::TempDir dir;
  const auto path = dir.path() / "wrap.safetensors";
  // 2^40 x 2^22 = 2^62 elements; x 4 bytes = 2^64, which wraps to 0 and would
  // match the empty data_offsets were the product unchecked.
  WriteRaw(path,
           R"({"w": {"dtype": "F32", "shape": [1099511627776, 4194304], "data_offsets": [0, 0]}})",
           "");
  absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("tensor 'w'"));
  EXPECT_THAT(status.message(), HasSubstr("more bytes than fit in 64 bits"));

  // An element count past int64 (2^32 x 2^32 = 2^64, which wraps to 0).
  WriteRaw(path,
           R"({"w": {"dtype": "BF16", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})",
           "");
  status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("more elements than fit in 64 bits"));

  // A single dimension past int64, even next to a zero one.
  WriteRaw(path,
           R"({"w": {"dtype": "F16", "shape": [0, 9223372036854775808], "data_offsets": [0, 0]}})",
           "");
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("more elements than fit in 64 bits"));
}

TEST(SafetensorsTest, EmptyTensorWithHugeButRepresentableShapeIsAccepted) {
  testing::TempDir dir;
  const auto path = dir.path() / "empty.safetensors";
  WriteRaw(path,
           R"({"w": {"dtype": "F32", "shape": [0, 4611686018427387904], "data_offsets": [0, 0]}})",
           "");
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(path);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(Tensor(*file, "w").num_elements(), 0);
  EXPECT_EQ(Tensor(*file, "w").num_bytes, 0u);
}

TEST(SafetensorsTest, DirectoryIsNotASafetensorsFile) {
  testing::TempDir dir;
  const auto path = dir.path() / "model.safetensors";
  std::filesystem::create_directory(path);
  absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(path.string()));
  EXPECT_THAT(status.message(), HasSubstr("is a directory"));
}

TEST(SafetensorsTest, FifoIsRejectedWithoutBlocking) {
  testing::TempDir dir;
  const auto path = dir.path() / "model.safetensors";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  // Without O_NONBLOCK this open would wait forever for a writer.
  absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(path.string()));
  EXPECT_THAT(status.message(), HasSubstr("not a regular file"));
}

// ---- writing ------------------------------------------------------------------------

TEST(SafetensorsWriterTest, RoundTripsAllDtypesWithAnAlignedDataArea) {
  testing::TempDir dir;
  const auto path = dir.path() / "model.safetensors";
  const std::vector<float> values = {1.5f, -2.0f, 0.0f, 65504.0f, 1e-7f, -0.0f};
  ASSERT_TRUE(WriteSafetensors(path, {MakeTensorData("f32", DType::kF32, {2, 3}, values),
                                      MakeTensorData("f16", DType::kF16, {6}, values),
                                      MakeTensorData("bf16", DType::kBF16, {3, 2}, values)})
                  .ok());
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(path);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  std::vector<uint32_t> f32 = Bits32(Tensor(*file, "f32"));
  std::vector<uint16_t> f16 = Bits16(Tensor(*file, "f16"));
  std::vector<uint16_t> bf16 = Bits16(Tensor(*file, "bf16"));
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(f32[i], std::bit_cast<uint32_t>(values[i]));
    EXPECT_EQ(f16[i], F32ToF16(values[i]));
    EXPECT_EQ(bf16[i], F32ToBf16(values[i]));
  }
  EXPECT_THAT(Tensor(*file, "bf16").shape, ElementsAre(3, 2));
  // The data area starts 8-byte aligned (header padded as the Rust library does).
  const auto* first = Tensor(*file, "f32").data;
  EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 8, 0u);
}

TEST(SafetensorsWriterTest, AlignsEveryTensorToItsElementSize) {
  testing::TempDir dir;
  const auto path = dir.path() / "mixed.safetensors";
  const std::vector<float> three = {1, 2, 3};
  // An odd number of 2-byte elements first would leave "b" 2-byte aligned.
  ASSERT_TRUE(WriteSafetensors(path, {MakeTensorData("a", DType::kBF16, {3}, three),
                                      MakeTensorData("b", DType::kF32, {3}, three),
                                      MakeTensorData("c", DType::kF16, {3}, three)})
                  .ok());
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(path);
  ASSERT_NE(file, nullptr);
  for (const auto& [name, view] : file->tensors()) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(view.data) % DTypeSize(view.dtype), 0u) << name;
  }
  EXPECT_EQ(Bf16ToF32(Bits16(Tensor(*file, "a"))[2]), 3.0f);
  EXPECT_EQ(F16ToF32(Bits16(Tensor(*file, "c"))[1]), 2.0f);
}

TEST(SafetensorsWriterTest, RejectsDuplicateNamesAndWrongByteCounts) {
  testing::TempDir dir;
  const std::vector<float> values = {1.0f};
  EXPECT_FALSE(WriteSafetensors(dir.path() / "a.safetensors",
                                {MakeTensorData("x", DType::kF32, {1}, values),
                                 MakeTensorData("x", DType::kF32, {1}, values)})
                   .ok());
  EXPECT_FALSE(WriteSafetensors(dir.path() / "b.safetensors",
                                {MakeTensorData("x", DType::kF32, {2}, values)})
                   .ok());
}

TEST(SafetensorsWriterTest, ShardedCheckpointSplitsBySizeAndIndexesEveryTensor) {
  testing::TempDir dir;
  std::vector<TensorSpec> specs;
  for (int i = 0; i < 5; ++i) specs.push_back({"t" + std::to_string(i), DType::kF32, {100}});
  ASSERT_TRUE(WriteShardedSafetensors(
                  dir.path(), specs,
                  [](const TensorSpec& spec, std::span<std::byte> out) {
                    std::memset(out.data(), spec.name.back(), out.size());
                    return absl::OkStatus();
                  },
                  /*max_shard_bytes=*/900)
                  .ok());
  // 400 bytes each, 900 per shard: [t0 t1] [t2 t3] [t4].
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "model-00001-of-00003.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "model-00003-of-00003.safetensors"));
  Json index = testing::ReadJsonOrFail(dir.path() / "model.safetensors.index.json");
  EXPECT_EQ(index["metadata"]["total_size"], 2000);
  EXPECT_EQ(index["weight_map"]["t3"], "model-00002-of-00003.safetensors");
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ((*checkpoint)->total_bytes(), 2000u);
  absl::StatusOr<TensorView> t4 = (*checkpoint)->Get("t4");
  ASSERT_TRUE(t4.ok());
  EXPECT_EQ(static_cast<char>(t4->data[399]), '4');
}

// ---- checkpoints --------------------------------------------------------------------

std::filesystem::path ShardedFixture() {
  return testing::FixturePath("safetensors/tiny_llama_sharded");
}

TEST(CheckpointTest, OpensATransformersShardedCheckpoint) {
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(ShardedFixture());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  Json index = testing::ReadJsonOrFail(ShardedFixture() / "model.safetensors.index.json");
  EXPECT_EQ((*checkpoint)->total_bytes(), index["metadata"]["total_size"].get<size_t>());
  std::set<std::string> shards;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    EXPECT_TRUE((*checkpoint)->Contains(name)) << name;
    shards.insert(shard.get<std::string>());
  }
  EXPECT_EQ(shards.size(), 3u);
  absl::StatusOr<TensorView> norm =
      (*checkpoint)->Get("model.norm.weight", std::vector<int64_t>{16});
  ASSERT_TRUE(norm.ok()) << norm.status();
  EXPECT_EQ(norm->dtype, DType::kF32);
}

TEST(CheckpointTest, MissingTensorIsNotFoundAndNamed) {
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(ShardedFixture());
  ASSERT_TRUE(checkpoint.ok());
  absl::Status status = (*checkpoint)->Get("model.layers.7.mlp.up_proj.weight").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("model.layers.7.mlp.up_proj.weight"));
  EXPECT_FALSE((*checkpoint)->Contains("model.layers.7.mlp.up_proj.weight"));
}

TEST(CheckpointTest, WrongShapeNamesTheTensorAndBothShapes) {
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(ShardedFixture());
  ASSERT_TRUE(checkpoint.ok());
  absl::Status status = (*checkpoint)->Get("model.norm.weight", std::vector<int64_t>{64}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "model.norm.weight: expected shape [64], found [16]");
}

// Copies the sharded fixture so a test can break it.
void CopyFixture(const std::filesystem::path& to) {
  std::filesystem::copy(ShardedFixture(), to, std::filesystem::copy_options::recursive);
}

TEST(CheckpointTest, IndexNamingAMissingShardNamesIndexAndShard) {
  testing::TempDir dir;
  const auto model = dir.path() / "model";
  CopyFixture(model);
  std::filesystem::remove(model / "model-00002-of-00003.safetensors");
  absl::Status status = Checkpoint::Open(model).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("model.safetensors.index.json"));
  EXPECT_THAT(status.message(), HasSubstr("model-00002-of-00003.safetensors"));
}

TEST(CheckpointTest, TensorAbsentFromItsIndexedShardNamesBoth) {
  testing::TempDir dir;
  const auto model = dir.path() / "model";
  CopyFixture(model);
  Json index = testing::ReadJsonOrFail(model / "model.safetensors.index.json");
  const std::string shard = index["weight_map"]["model.norm.weight"];
  const std::string other = shard == "model-00001-of-00003.safetensors"
                                ? "model-00002-of-00003.safetensors"
                                : "model-00001-of-00003.safetensors";
  index["weight_map"]["model.norm.weight"] = other;
  std::ofstream(model / "model.safetensors.index.json") << index.dump();
  absl::Status status = Checkpoint::Open(model).status();
  EXPECT_THAT(status.message(), HasSubstr("'model.norm.weight'"));
  EXPECT_THAT(status.message(), HasSubstr(other));
}

TEST(CheckpointTest, TruncatedShardNamesTheShardAndTensor) {
  testing::TempDir dir;
  const auto model = dir.path() / "model";
  CopyFixture(model);
  const auto shard = model / "model-00003-of-00003.safetensors";
  std::filesystem::resize_file(shard, std::filesystem::file_size(shard) - 100);
  absl::Status status = Checkpoint::Open(model).status();
  EXPECT_THAT(status.message(), HasSubstr("model-00003-of-00003.safetensors"));
  EXPECT_THAT(status.message(), HasSubstr("truncated: tensor '"));
}

TEST(CheckpointTest, MalformedIndexIsAnError) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "model.safetensors.index.json") << R"({"metadata": {}})";
  EXPECT_THAT(Checkpoint::Open(dir.path()).status().message(), HasSubstr("'weight_map'"));
  std::ofstream(dir.path() / "model.safetensors.index.json") << R"({"weight_map": {"a": 3}})";
  EXPECT_THAT(Checkpoint::Open(dir.path()).status().message(), HasSubstr("weight_map.a"));
  std::ofstream(dir.path() / "model.safetensors.index.json")
      << R"({"weight_map": {"a": "../x.safetensors"}})";
  EXPECT_THAT(Checkpoint::Open(dir.path()).status().message(), HasSubstr("not a file name"));
}

TEST(CheckpointTest, IndexNamingTheDirectoryItselfAsAShardIsRejected) {
  testing::TempDir dir;
  // "." passes the file-name check but names the directory, not a file.
  std::ofstream(dir.path() / "model.safetensors.index.json")
      << R"({"weight_map": {"model.norm.weight": "."}})";
  absl::Status status = Checkpoint::Open(dir.path()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("shard '.'"));
  EXPECT_THAT(status.message(), HasSubstr("'model.norm.weight'"));
  EXPECT_THAT(status.message(), HasSubstr("is a directory"));
}

TEST(CheckpointTest, IndexThatIsADirectoryIsAnError) {
  testing::TempDir dir;
  std::filesystem::create_directory(dir.path() / "model.safetensors.index.json");
  absl::Status status = Checkpoint::Open(dir.path()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("model.safetensors.index.json"));
}

TEST(CheckpointTest, DirectoryWithoutWeightsIsNotFound) {
  testing::TempDir dir;
  absl::Status status = Checkpoint::Open(dir.path()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("model.safetensors"));
}

TEST(CheckpointTest, OpensASingleFileCheckpoint) {
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint =
      Checkpoint::Open(testing::FixturePath("safetensors/tiny_qwen2_bf16"));
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  absl::StatusOr<TensorView> bias = (*checkpoint)->Get("model.layers.1.self_attn.k_proj.bias");
  ASSERT_TRUE(bias.ok());
  EXPECT_EQ(bias->dtype, DType::kBF16);
  EXPECT_THAT(bias->shape, ElementsAre(8));
  EXPECT_FALSE((*checkpoint)->Contains("lm_head.weight"));  // tied: not saved
}

}  // namespace
}  // namespace muserve
