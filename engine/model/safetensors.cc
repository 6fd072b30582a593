#include "engine/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <tuple>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/api/absl_string_view.h"
#include "engine/api/file_util.h"
#include "nlohmann/json.hpp"

namespace muserve {
namespace {

using Json = nlohmann::json;

std::string ShapeString(std::span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status FileError(const std::filesystem::path& path, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", AsAbsl(what)));
}

// Parses one header entry ("name": {"dtype", "shape", "data_offsets"}) into
// `view` (offsets relative to the data area); checks dtype x shape = bytes.
absl::Status ParseEntry(const std::filesystem::path& path, const std::string& name,
                        const Json& entry, TensorView& view, uint64_t& begin, uint64_t& end) {
  const std::string where = absl::StrCat("tensor '", name, "'");
  if (!entry.is_object())
    return FileError(path, absl::StrCat(where, ": header entry is not an object"));
  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return FileError(path, absl::StrCat(where, ": 'dtype' is missing or not a string"));
  }
  absl::StatusOr<DType> dtype = ParseSafetensorsDType(dtype_it->get<std::string>());
  if (!dtype.ok()) return FileError(path, absl::StrCat(where, ": ", dtype.status().message()));

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return FileError(path, absl::StrCat(where, ": 'shape' is missing or not a list"));
  }
  view.shape.clear();
  // Every partial product must fit int64 (the type of shapes and element
  // counts downstream), and so must the byte count; the byte count must then
  // equal the data_offsets span, which lies inside the file.
  int64_t num_elements = 1;
  for (const Json& dim : *shape_it) {
    if (!dim.is_number_unsigned()) {
      return FileError(path, absl::StrCat(where, ": 'shape' must hold non-negative integers"));
    }
    const uint64_t size = dim.get<uint64_t>();
    if (size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(num_elements, static_cast<int64_t>(size), &num_elements)) {
      return FileError(path, absl::StrCat(where, ": shape ", shape_it->dump(),
                                          " has more elements than fit in 64 bits"));
    }
    view.shape.push_back(static_cast<int64_t>(size));
  }
  int64_t expected_bytes = 0;
  if (__builtin_mul_overflow(num_elements, static_cast<int64_t>(DTypeSize(*dtype)),
                             &expected_bytes)) {
    return FileError(path,
                     absl::StrCat(where, ": dtype ", AsAbsl(DTypeName(*dtype)), " and shape ",
                                  ShapeString(view.shape), " need more bytes than fit in 64 bits"));
  }

  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
    return FileError(path, absl::StrCat(where, ": 'data_offsets' must be [begin, end]"));
  }
  begin = (*offsets_it)[0].get<uint64_t>();
  end = (*offsets_it)[1].get<uint64_t>();
  if (end < begin) {
    return FileError(
        path, absl::StrCat(where, ": data_offsets [", begin, ", ", end, "] end before they begin"));
  }
  if (end - begin != static_cast<uint64_t>(expected_bytes)) {
    return FileError(
        path, absl::StrCat(where, ": dtype ", AsAbsl(DTypeName(*dtype)), " and shape ",
                           ShapeString(view.shape), " need ", expected_bytes,
                           " bytes, data_offsets [", begin, ", ", end, "] hold ", end - begin));
  }
  view.name = name;
  view.dtype = *dtype;
  view.num_bytes = static_cast<size_t>(expected_bytes);
  view.element_count = num_elements;
  return absl::OkStatus();
}

}  // namespace

SafetensorsFile::Mapping::~Mapping() { ::munmap(const_cast<void*>(data_), num_bytes_); }

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::filesystem::path& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int error = errno;
    std::string message = absl::StrCat(path.string(), ": cannot open: ", std::strerror(error));
    if (error == ENOENT || error == ENOTDIR) return absl::NotFoundError(message);
    if (error == EACCES || error == EPERM) return absl::PermissionDeniedError(message);
    return absl::InternalError(message);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    return absl::InternalError(
        absl::StrCat(path.string(), ": fstat failed: ", std::strerror(error)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return FileError(path, S_ISDIR(st.st_mode) ? "is a directory, not a safetensors file"
                                               : "is not a regular file");
  }
  const size_t file_bytes = static_cast<size_t>(st.st_size);
  if (file_bytes < 8) {
    ::close(fd);
    return FileError(path, absl::StrCat("truncated: ", file_bytes,
                                        " bytes, fewer than the 8-byte header length"));
  }
  // MAP_PRIVATE + PROT_READ: pages come from the page cache, shared with any
  // other process reading the same checkpoint, and are never copied.
  void* mapping = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  const int mmap_error = errno;  // before close() can overwrite it
  ::close(fd);                   // the mapping keeps its own reference to the file
  if (mapping == MAP_FAILED) {
    return absl::InternalError(
        absl::StrCat(path.string(), ": mmap failed: ", std::strerror(mmap_error)));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->mapping_ = std::make_unique<Mapping>(mapping, file_bytes);
  const std::byte* bytes = file->mapping_->bytes();

  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | static_cast<uint8_t>(bytes[i]);
  if (header_bytes > file_bytes - 8) {
    return FileError(path, absl::StrCat("truncated: header length is ", header_bytes,
                                        " bytes but only ", file_bytes - 8, " follow it"));
  }
  const char* header_text = reinterpret_cast<const char*>(bytes + 8);
  Json header = Json::parse(header_text, header_text + header_bytes, nullptr,
                            /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return FileError(path, "header is not a JSON object");
  }
  const std::byte* data = bytes + 8 + header_bytes;
  const uint64_t data_bytes = file_bytes - 8 - header_bytes;

  // (begin, end, name) of every tensor, to check that they tile the data area.
  std::vector<std::tuple<uint64_t, uint64_t, std::string>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return FileError(path, "__metadata__ is not an object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          return FileError(path, absl::StrCat("__metadata__ '", key, "' is not a string"));
        }
        file->metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    TensorView view;
    uint64_t begin = 0;
    uint64_t end = 0;
    if (absl::Status s = ParseEntry(path, name, entry, view, begin, end); !s.ok()) return s;
    if (end > data_bytes) {
      return FileError(
          path, absl::StrCat("truncated: tensor '", name, "' needs data bytes [", begin, ", ", end,
                             ") but the data area holds ", data_bytes));
    }
    view.data = data + begin;
    ranges.emplace_back(begin, end, name);
    file->tensors_.emplace(name, std::move(view));
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t expected_begin = 0;
  for (const auto& [begin, end, name] : ranges) {
    if (begin != expected_begin) {
      return FileError(
          path, absl::StrCat("tensor '", name, "' data_offsets begin at ", begin, ", expected ",
                             expected_begin, " (tensors must be contiguous and not overlap)"));
    }
    expected_begin = end;
  }
  if (expected_begin != data_bytes) {
    return FileError(path, absl::StrCat("tensors cover ", expected_begin,
                                        " bytes of data but the data area holds ", data_bytes));
  }
  // Weights are read front to back at start-up: ask for read-ahead.
  ::madvise(mapping, file_bytes, MADV_WILLNEED);
  return file;
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::filesystem::path& dir) {
  auto checkpoint = std::unique_ptr<Checkpoint>(new Checkpoint());
  const std::filesystem::path index_path = dir / "model.safetensors.index.json";
  const std::filesystem::path single_path = dir / "model.safetensors";
  std::error_code error;
  if (!std::filesystem::exists(index_path, error)) {
    if (!std::filesystem::exists(single_path, error)) {
      return absl::NotFoundError(absl::StrCat(dir.string(),
                                              ": neither model.safetensors nor "
                                              "model.safetensors.index.json exists"));
    }
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(single_path);
    if (!file.ok()) return file.status();
    checkpoint->tensors_.insert((*file)->tensors().begin(), (*file)->tensors().end());
    checkpoint->files_.push_back(std::move(*file));
    return checkpoint;
  }

  absl::StatusOr<std::string> text = ReadFileToString(index_path);
  if (!text.ok()) return text.status();
  Json index = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object()) {
    return FileError(index_path, "not a JSON object");
  }
  auto map_it = index.find("weight_map");
  if (map_it == index.end() || !map_it->is_object()) {
    return FileError(index_path, "field 'weight_map' is missing or not an object");
  }
  // Shard file name -> the tensors the index places in it.
  std::map<std::string, std::vector<std::string>> shards;
  for (const auto& [tensor, shard] : map_it->items()) {
    if (!shard.is_string()) {
      return FileError(index_path, absl::StrCat("field 'weight_map.", tensor, "' is not a string"));
    }
    const std::string shard_name = shard.get<std::string>();
    if (shard_name.empty() || shard_name.find('/') != std::string::npos || shard_name == "..") {
      return FileError(index_path, absl::StrCat("tensor '", tensor, "' names shard '", shard_name,
                                                "', which is not a file name in the directory"));
    }
    shards[shard_name].push_back(tensor);
  }
  for (const auto& [shard_name, names] : shards) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(dir / shard_name);
    if (!file.ok()) {
      return absl::Status(file.status().code(),
                          absl::StrCat(index_path.string(), ": shard '", shard_name, "' (holding '",
                                       names.front(), "'): ", file.status().message()));
    }
    for (const std::string& name : names) {
      if (!(*file)->tensors().contains(name)) {
        return FileError(index_path, absl::StrCat("tensor '", name, "' is listed in shard '",
                                                  shard_name, "' but that file does not hold it"));
      }
    }
    for (const auto& [name, view] : (*file)->tensors()) {
      if (!checkpoint->tensors_.emplace(name, view).second) {
        return FileError(dir / shard_name,
                         absl::StrCat("tensor '", name, "' appears in more than one shard"));
      }
    }
    checkpoint->files_.push_back(std::move(*file));
  }
  return checkpoint;
}

absl::StatusOr<TensorView> Checkpoint::Get(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(
        absl::StrCat("tensor '", AsAbsl(name), "' is missing from the checkpoint"));
  }
  return it->second;
}

absl::StatusOr<TensorView> Checkpoint::Get(std::string_view name,
                                           std::span<const int64_t> shape) const {
  absl::StatusOr<TensorView> view = Get(name);
  if (!view.ok()) return view;
  if (!std::equal(view->shape.begin(), view->shape.end(), shape.begin(), shape.end())) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(name), ": expected shape ",
                                                   ShapeString(shape), ", found ",
                                                   ShapeString(view->shape)));
  }
  return view;
}

bool Checkpoint::Contains(std::string_view name) const {
  return tensors_.find(name) != tensors_.end();
}

size_t Checkpoint::total_bytes() const {
  size_t total = 0;
  for (const auto& [name, view] : tensors_) total += view.num_bytes;
  return total;
}

}  // namespace muserve
