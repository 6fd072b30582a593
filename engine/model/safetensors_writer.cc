#include "engine/model/safetensors_writer.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace muserve {
namespace {

using Json = nlohmann::json;

absl::Status WriteError(const std::filesystem::path& path) {
  return absl::InternalError(absl::StrCat(path.string(), ": write failed"));
}

}  // namespace

size_t TensorSpec::num_bytes() const {
  size_t count = 1;
  for (int64_t dim : shape) count *= static_cast<size_t>(dim);
  return count * DTypeSize(dtype);
}

absl::Status WriteSafetensors(const std::filesystem::path& path,
                              const std::vector<TensorSpec>& unordered_specs,
                              const TensorFiller& fill,
                              const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs = unordered_specs;
  std::stable_sort(specs.begin(), specs.end(), [](const TensorSpec& a, const TensorSpec& b) {
    return DTypeSize(a.dtype) > DTypeSize(b.dtype);
  });
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  size_t offset = 0;
  for (const TensorSpec& spec : specs) {
    if (spec.name == "__metadata__" || !names.insert(spec.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ": duplicate or reserved tensor name '", spec.name, "'"));
    }
    for (int64_t dim : spec.shape) {
      if (dim < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(path.string(), ": tensor '", spec.name, "' has a negative dimension"));
      }
    }
    const size_t bytes = spec.num_bytes();
    header[spec.name] = {{"dtype", std::string(DTypeName(spec.dtype))},
                         {"shape", spec.shape},
                         {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text = header.dump();
  header_text.append((8 - (8 + header_text.size()) % 8) % 8, ' ');

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat(path.string(), ": cannot create"));
  uint64_t header_bytes = header_text.size();
  char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((header_bytes >> (8 * i)) & 0xff);
  out.write(length, 8);
  out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));

  std::vector<std::byte> buffer;
  for (const TensorSpec& spec : specs) {
    buffer.assign(spec.num_bytes(), std::byte{0});
    if (absl::Status s = fill(spec, std::span<std::byte>(buffer)); !s.ok()) return s;
    out.write(reinterpret_cast<const char*>(buffer.data()),
              static_cast<std::streamsize>(buffer.size()));
    if (!out) return WriteError(path);
  }
  out.close();
  if (!out) return WriteError(path);
  return absl::OkStatus();
}

absl::Status WriteShardedSafetensors(const std::filesystem::path& dir,
                                     const std::vector<TensorSpec>& specs, const TensorFiller& fill,
                                     size_t max_shard_bytes) {
  // Greedy packing in order, as transformers' shard_checkpoint does.
  std::vector<std::vector<TensorSpec>> shards;
  size_t shard_bytes = 0;
  size_t total_bytes = 0;
  for (const TensorSpec& spec : specs) {
    const size_t bytes = spec.num_bytes();
    if (shards.empty() || (shard_bytes + bytes > max_shard_bytes && shard_bytes > 0)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(spec);
    shard_bytes += bytes;
    total_bytes += bytes;
  }
  Json weight_map = Json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string file_name =
        absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, shards.size());
    if (absl::Status s = WriteSafetensors(dir / file_name, shards[i], fill); !s.ok()) return s;
    for (const TensorSpec& spec : shards[i]) weight_map[spec.name] = file_name;
  }
  const Json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
  const std::filesystem::path index_path = dir / "model.safetensors.index.json";
  std::ofstream out(index_path, std::ios::binary | std::ios::trunc);
  out << index.dump(2) << "\n";
  out.close();
  if (!out) return WriteError(index_path);
  return absl::OkStatus();
}

TensorData MakeTensorData(std::string name, DType dtype, std::vector<int64_t> shape,
                          std::span<const float> values) {
  TensorData tensor{TensorSpec{std::move(name), dtype, std::move(shape)}, {}};
  tensor.bytes.resize(values.size() * DTypeSize(dtype));
  std::byte* out = tensor.bytes.data();
  for (size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
      case DType::kF32:
        std::memcpy(out + 4 * i, &values[i], 4);
        break;
      case DType::kF16: {
        const uint16_t bits = F32ToF16(values[i]);
        std::memcpy(out + 2 * i, &bits, 2);
        break;
      }
      case DType::kBF16: {
        const uint16_t bits = F32ToBf16(values[i]);
        std::memcpy(out + 2 * i, &bits, 2);
        break;
      }
    }
  }
  return tensor;
}

absl::Status WriteSafetensors(const std::filesystem::path& path,
                              const std::vector<TensorData>& tensors) {
  std::vector<TensorSpec> specs;
  std::map<std::string, const TensorData*> by_name;
  for (const TensorData& tensor : tensors) {
    if (tensor.bytes.size() != tensor.spec.num_bytes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", tensor.spec.name, "': ", tensor.bytes.size(),
                       " bytes given, dtype x shape need ", tensor.spec.num_bytes()));
    }
    specs.push_back(tensor.spec);
    by_name[tensor.spec.name] = &tensor;
  }
  return WriteSafetensors(path, specs, [&](const TensorSpec& spec, std::span<std::byte> out) {
    const TensorData& tensor = *by_name.at(spec.name);
    if (out.empty()) return absl::OkStatus();
    std::memcpy(out.data(), tensor.bytes.data(), out.size());
    return absl::OkStatus();
  });
}

}  // namespace muserve
