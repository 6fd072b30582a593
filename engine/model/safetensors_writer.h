// Writes safetensors checkpoints: one file, or shards plus
// model.safetensors.index.json as transformers' save_pretrained does. Tensor
// data is produced one tensor at a time by a callback, so a checkpoint larger
// than memory can be written with one tensor's worth of buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/api/dtype.h"

namespace muserve {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;

  size_t num_bytes() const;
};

// Fills `out` (exactly spec.num_bytes() bytes, little-endian dtype elements,
// row-major) with the data of tensor `spec`.
using TensorFiller = std::function<absl::Status(const TensorSpec& spec, std::span<std::byte> out)>;

// Writes one .safetensors file at `path`. Tensors are laid out by element size,
// largest first, and otherwise in the order of `specs` (so every tensor is
// aligned to its element size, as the `safetensors` library also ensures);
// `fill` is called in that layout order. The header is padded to a multiple
// of 8 bytes so that the data area is 8-byte aligned. `metadata` becomes
// __metadata__ (transformers wants {"format": "pt"}). Names must be unique.
absl::Status WriteSafetensors(const std::filesystem::path& path,
                              const std::vector<TensorSpec>& specs, const TensorFiller& fill,
                              const std::map<std::string, std::string>& metadata = {
                                  {"format", "pt"}});

// Writes `specs` into `dir` as model-0000i-of-0000n.safetensors shards of at
// most `max_shard_bytes` of data each (a larger tensor gets a shard of its own)
// plus model.safetensors.index.json {"metadata": {"total_size"}, "weight_map"}.
absl::Status WriteShardedSafetensors(const std::filesystem::path& dir,
                                     const std::vector<TensorSpec>& specs, const TensorFiller& fill,
                                     size_t max_shard_bytes);

// An in-memory tensor, for tests and small files.
struct TensorData {
  TensorSpec spec;
  std::vector<std::byte> bytes;
};

// Builds F32/F16/BF16 tensor data from float values (converted with
// round-to-nearest-even).
TensorData MakeTensorData(std::string name, DType dtype, std::vector<int64_t> shape,
                          std::span<const float> values);

// Writes in-memory tensors (their bytes must match dtype x shape).
absl::Status WriteSafetensors(const std::filesystem::path& path,
                              const std::vector<TensorData>& tensors);

}  // namespace muserve
