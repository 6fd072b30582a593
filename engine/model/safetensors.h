// Read-only access to safetensors checkpoints through mmap: tensors are views
// into the mapped files, never copied. A checkpoint is one `model.safetensors`
// or shards listed by `model.safetensors.index.json`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/api/dtype.h"

namespace muserve {

// A tensor inside a mapped file. `data` points into the SafetensorsFile's
// mapping: a view (and every copy of it) is valid only while the
// SafetensorsFile it came from lives, i.e. while the Checkpoint, or the
// LoadedModel holding it, lives.
// Invariant for views made by SafetensorsFile::Open: element_count is the
// product of `shape` (which fits int64: every partial product was checked) and
// element_count x DTypeSize(dtype) == num_bytes exactly, all inside the file.
// `data` is NOT necessarily aligned to the element size (a header of any
// length precedes the data area): read elements through memcpy.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // row-major, little-endian, dtype elements
  size_t num_bytes = 0;
  int64_t element_count = 0;  // product of shape, checked at open

  int64_t num_elements() const { return element_count; }
};

// One mapped .safetensors file. The header is validated at open: every
// tensor's byte range lies inside the file and matches dtype x shape, and the
// ranges tile the data area exactly. The mapping lives as long as this object;
// the TensorViews in tensors() point into it.
class SafetensorsFile {
 public:
  // Errors name the file: missing (NotFound), not a regular file (a directory
  // or FIFO: InvalidArgument; it is opened non-blocking so a FIFO cannot
  // hang), truncated, bad header JSON, a shape whose element or byte count
  // overflows, a tensor whose byte range runs past the end of the file, or an
  // unsupported dtype.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::filesystem::path& path);
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  // Owns one read-only mmap of a whole file; unmaps on destruction.
  class Mapping {
   public:
    Mapping(const void* data, size_t num_bytes) : data_(data), num_bytes_(num_bytes) {}
    ~Mapping();
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    const std::byte* bytes() const { return static_cast<const std::byte*>(data_); }
    size_t num_bytes() const { return num_bytes_; }

   private:
    const void* data_;
    size_t num_bytes_;
  };

  SafetensorsFile() = default;
  std::filesystem::path path_;
  // Declared before tensors_, whose views point into it.
  std::unique_ptr<Mapping> mapping_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory, single-file or sharded. Owns the
// mapped files: the TensorViews that Get() returns stay valid while this
// Checkpoint lives (and dangle once it is destroyed).
class Checkpoint {
 public:
  // Opens `dir`/model.safetensors, or every shard named by
  // `dir`/model.safetensors.index.json (an index naming a missing shard, or a
  // tensor absent from the shard the index names, is an error naming both).
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::filesystem::path& dir);

  // Finds a tensor; NotFound naming the tensor if absent.
  absl::StatusOr<TensorView> Get(std::string_view name) const;
  // Finds a tensor and checks its shape; InvalidArgument naming the tensor and
  // both shapes ("model.norm.weight: expected shape [64], found [32]").
  absl::StatusOr<TensorView> Get(std::string_view name, std::span<const int64_t> shape) const;
  bool Contains(std::string_view name) const;
  // Total bytes of tensor data across shards.
  size_t total_bytes() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, TensorView, std::less<>> tensors_;
};

}  // namespace muserve
