#include "cuda/weight_upload.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cuda/cuda_status.h"
#include "cuda/device_buffer.h"
#include "cuda/kernels/convert.h"
#include "engine/api/absl_string_view.h"

namespace muserve::cuda {
namespace {

// Halves are whole multiples of this, so each device half is as aligned as
// the allocation.
constexpr int64_t kHalfAlignment = 256;

absl::Status BadArg(const char* call, const char* field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("WeightUploader::", call, ": ", field, " ", what));
}

// A cudaHostAlloc'd (pinned) buffer, freed with its owner.
struct PinnedDeleter {
  void operator()(std::byte* p) const { cudaFreeHost(p); }
};
using PinnedBuffer = std::unique_ptr<std::byte, PinnedDeleter>;

}  // namespace

// Invariants: half h of the host staging (and of the device conversion
// buffer) is free for the host to refill once halves_free_[h] has completed:
// that event is recorded on stream_ after the last device work reading the
// half. next_half_ alternates, so the host fills one half while the device
// copies and converts the other. Used from one thread at a time.
class WeightUploader::Impl {
 public:
  Impl(int64_t half_bytes, PinnedBuffer host, DeviceBuffer device, cudaStream_t stream,
       std::array<cudaEvent_t, 2> halves_free)
      : half_bytes_(half_bytes),
        host_(std::move(host)),
        device_(std::move(device)),
        stream_(stream),
        halves_free_(halves_free) {}

  ~Impl() {
    // The device may still read the staging: wait before freeing it.
    cudaStreamSynchronize(stream_);
    for (cudaEvent_t event : halves_free_) cudaEventDestroy(event);
    cudaStreamDestroy(stream_);
  }

  absl::Status UploadRows(const char* call, const std::byte* src, DType src_dtype, int64_t rows,
                          int64_t row_elements, int64_t src_row_stride_elements, DType dst_dtype,
                          void* dst) {
    if (dst_dtype != DType::kBF16 && dst_dtype != DType::kF16)
      return BadArg(call, "dst_dtype",
                    absl::StrCat("must be BF16 or F16, got ", AsAbsl(DTypeName(dst_dtype))));
    if (rows < 0) return BadArg(call, "rows", absl::StrCat("must be >= 0, got ", rows));
    if (row_elements < 0)
      return BadArg(call, "row_elements", absl::StrCat("must be >= 0, got ", row_elements));
    if (src_row_stride_elements < row_elements)
      return BadArg(
          call, "src_row_stride_elements",
          absl::StrCat(src_row_stride_elements, " is less than row_elements = ", row_elements));
    const int64_t total = rows * row_elements;
    if (total == 0) return absl::OkStatus();
    if (src == nullptr) return BadArg(call, "src", "is null");
    if (dst == nullptr) return BadArg(call, "dst", "is null");

    const int64_t src_size = static_cast<int64_t>(DTypeSize(src_dtype));
    const int64_t dst_size = static_cast<int64_t>(DTypeSize(dst_dtype));
    const int64_t chunk_elements = half_bytes_ / src_size;
    int64_t row = 0, column = 0;  // the next source element to stage
    for (int64_t done = 0; done < total;) {
      const int64_t count = std::min(chunk_elements, total - done);
      const int half = next_half_;
      next_half_ ^= 1;
      MUSERVE_GPU_RETURN_IF_ERROR(cudaEventSynchronize(halves_free_[half]));
      std::byte* staging = host_.get() + half * half_bytes_;
      for (int64_t filled = 0; filled < count;) {
        const int64_t take = std::min(row_elements - column, count - filled);
        std::memcpy(staging + filled * src_size,
                    src + (row * src_row_stride_elements + column) * src_size,
                    static_cast<size_t>(take * src_size));
        filled += take;
        column += take;
        if (column == row_elements) {
          column = 0;
          ++row;
        }
      }
      bytes_read_ += count * src_size;
      std::byte* out = static_cast<std::byte*>(dst) + done * dst_size;
      const size_t staged_bytes = static_cast<size_t>(count * src_size);
      if (src_dtype == dst_dtype) {
        MUSERVE_GPU_RETURN_IF_ERROR(
            cudaMemcpyAsync(out, staging, staged_bytes, cudaMemcpyHostToDevice, stream_));
      } else {
        std::byte* converting = device_.as<std::byte>() + half * half_bytes_;
        MUSERVE_GPU_RETURN_IF_ERROR(
            cudaMemcpyAsync(converting, staging, staged_bytes, cudaMemcpyHostToDevice, stream_));
        if (absl::Status s = LaunchConvert(src_dtype, converting, dst_dtype, out, count, stream_);
            !s.ok())
          return s;
      }
      MUSERVE_GPU_RETURN_IF_ERROR(cudaEventRecord(halves_free_[half], stream_));
      done += count;
    }
    return absl::OkStatus();
  }

  absl::Status Finish() {
    MUSERVE_GPU_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return absl::OkStatus();
  }

  int64_t bytes_read() const { return bytes_read_; }

 private:
  const int64_t half_bytes_;
  PinnedBuffer host_;    // [2 * half_bytes_] pinned
  DeviceBuffer device_;  // [2 * half_bytes_] on the device
  cudaStream_t stream_;
  std::array<cudaEvent_t, 2> halves_free_;
  int next_half_ = 0;
  int64_t bytes_read_ = 0;
};

absl::StatusOr<std::unique_ptr<WeightUploader>> WeightUploader::Create(int64_t staging_bytes) {
  if (staging_bytes < 2 * kHalfAlignment)
    return absl::InvalidArgumentError(absl::StrCat(
        "WeightUploader staging_bytes must be >= ", 2 * kHalfAlignment, ", got ", staging_bytes));
  const int64_t half_bytes = staging_bytes / 2 / kHalfAlignment * kHalfAlignment;

  void* host = nullptr;
  MUSERVE_GPU_RETURN_IF_ERROR(
      cudaHostAlloc(&host, static_cast<size_t>(2 * half_bytes), cudaHostAllocDefault));
  PinnedBuffer pinned(static_cast<std::byte*>(host));
  absl::StatusOr<DeviceBuffer> device = DeviceBuffer::Allocate(2 * half_bytes);
  if (!device.ok()) return device.status();

  cudaStream_t stream = nullptr;
  MUSERVE_GPU_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::array<cudaEvent_t, 2> events = {nullptr, nullptr};
  for (cudaEvent_t& event : events) {
    if (absl::Status s =
            ToStatus(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate");
        !s.ok()) {
      for (cudaEvent_t made : events)
        if (made != nullptr) cudaEventDestroy(made);
      cudaStreamDestroy(stream);
      return s;
    }
  }
  return std::unique_ptr<WeightUploader>(new WeightUploader(
      std::make_unique<Impl>(half_bytes, std::move(pinned), *std::move(device), stream, events)));
}

WeightUploader::WeightUploader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WeightUploader::~WeightUploader() = default;

absl::Status WeightUploader::Upload(const std::byte* src, DType src_dtype, int64_t elements,
                                    DType dst_dtype, void* dst) {
  if (elements < 0)
    return BadArg("Upload", "elements", absl::StrCat("must be >= 0, got ", elements));
  return impl_->UploadRows("Upload", src, src_dtype, 1, elements, elements, dst_dtype, dst);
}

absl::Status WeightUploader::UploadRows(const std::byte* src, DType src_dtype, int64_t rows,
                                        int64_t row_elements, int64_t src_row_stride_elements,
                                        DType dst_dtype, void* dst) {
  return impl_->UploadRows("UploadRows", src, src_dtype, rows, row_elements,
                           src_row_stride_elements, dst_dtype, dst);
}

absl::Status WeightUploader::Finish() { return impl_->Finish(); }

int64_t WeightUploader::bytes_read() const { return impl_->bytes_read(); }

absl::Status FillRandom(DType dtype, void* dst, int64_t elements, uint64_t seed, float scale,
                        cudaStream_t stream) {
  return LaunchFillRandom(dtype, dst, elements, seed, scale, stream);
}

}  // namespace muserve::cuda
