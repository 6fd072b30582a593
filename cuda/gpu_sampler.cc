// GpuSampler: packs the batch on the host (PackSamplerInputs), uploads it
// with one asynchronous copy from pinned memory, runs the sampling kernel and
// copies the results back once. Buffers only grow, so a steady batch shape
// allocates nothing after the first call.
#include "cuda/gpu_sampler.h"

#include <cstddef>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cuda/cuda_status.h"
#include "cuda/device_buffer.h"
#include "cuda/kernels/sampling.h"
#include "cuda/sampler_pack.h"

namespace muserve::cuda {
namespace {

// Page-locked host memory (cudaMallocHost), freed with its owner.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { Reset(); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  // At least `bytes` bytes; the contents are not kept.
  absl::Status Reserve(size_t bytes) {
    if (bytes <= bytes_) return absl::OkStatus();
    Reset();
    const size_t grown = bytes + bytes / 2;
    MUSERVE_GPU_RETURN_IF_ERROR(cudaMallocHost(&data_, grown));
    bytes_ = grown;
    return absl::OkStatus();
  }
  std::byte* get() const { return static_cast<std::byte*>(data_); }

 private:
  void Reset() {
    if (data_ != nullptr) cudaFreeHost(data_);
    data_ = nullptr;
    bytes_ = 0;
  }
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// A device allocation of at least `bytes`, reallocated (contents dropped)
// when it is smaller.
absl::Status Grow(DeviceBuffer& buffer, int64_t bytes) {
  if (bytes <= buffer.bytes()) return absl::OkStatus();
  absl::StatusOr<DeviceBuffer> grown = DeviceBuffer::Allocate(bytes + bytes / 2);
  if (!grown.ok()) return grown.status();
  buffer = std::move(*grown);
  return absl::OkStatus();
}

}  // namespace

class GpuSampler::Impl {
 public:
  Impl(int32_t vocab_size, int32_t max_rows, cudaStream_t stream)
      : vocab_size_(vocab_size), max_rows_(max_rows), stream_(stream) {}

  absl::Status Init() {
    const int64_t result_bytes = static_cast<int64_t>(max_rows_) * sizeof(SamplerRowResult);
    if (absl::Status s = Grow(results_, result_bytes); !s.ok()) return s;
    if (absl::Status s = host_results_.Reserve(static_cast<size_t>(result_bytes)); !s.ok())
      return s;
    // Room for max_rows rows with no lists; lists grow it on demand.
    const int64_t param_bytes = static_cast<int64_t>(max_rows_) * sizeof(SamplerRowParams);
    if (absl::Status s = Grow(upload_, param_bytes); !s.ok()) return s;
    return host_upload_.Reserve(static_cast<size_t>(param_bytes));
  }

  absl::Status Sample(float* logits, std::span<const SampleInput> inputs,
                      std::span<SampledToken> out) {
    if (inputs.size() != out.size()) {
      return absl::InvalidArgumentError(absl::StrCat("GpuSampler::Sample: ", inputs.size(),
                                                     " inputs but ", out.size(), " outputs"));
    }
    if (inputs.size() > static_cast<size_t>(max_rows_)) {
      return absl::InvalidArgumentError(
          absl::StrCat("GpuSampler::Sample: ", inputs.size(), " rows exceed max_rows ", max_rows_));
    }
    if (inputs.empty()) return absl::OkStatus();
    if (logits == nullptr) return absl::InvalidArgumentError("GpuSampler::Sample: logits is null");
    if (absl::Status s = PackSamplerInputs(inputs, vocab_size_, pack_); !s.ok()) return s;

    const size_t bytes = pack_.Bytes();
    if (absl::Status s = Grow(upload_, static_cast<int64_t>(bytes)); !s.ok()) return s;
    if (absl::Status s = Grow(saved_, static_cast<int64_t>(pack_.saved_floats * sizeof(float)));
        !s.ok())
      return s;
    if (absl::Status s = host_upload_.Reserve(bytes); !s.ok()) return s;
    pack_.CopyTo(host_upload_.get());
    // The previous call ended with a stream synchronisation, so the pinned
    // buffers are free to reuse.
    MUSERVE_GPU_RETURN_IF_ERROR(
        cudaMemcpyAsync(upload_.get(), host_upload_.get(), bytes, cudaMemcpyHostToDevice, stream_));
    const auto* params = upload_.as<const SamplerRowParams>();
    const auto* lists =
        reinterpret_cast<const int32_t*>(upload_.as<const std::byte>() + pack_.ListsOffset());
    const auto rows = static_cast<int32_t>(inputs.size());
    if (absl::Status s =
            LaunchSampleRows(logits, rows, vocab_size_, params, lists, saved_.as<float>(),
                             results_.as<SamplerRowResult>(), stream_);
        !s.ok())
      return s;
    MUSERVE_GPU_RETURN_IF_ERROR(cudaMemcpyAsync(host_results_.get(), results_.get(),
                                                inputs.size() * sizeof(SamplerRowResult),
                                                cudaMemcpyDeviceToHost, stream_));
    MUSERVE_GPU_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));

    const auto* results = reinterpret_cast<const SamplerRowResult*>(host_results_.get());
    for (size_t r = 0; r < inputs.size(); ++r) {
      UnpackSamplerResult(results[r], *inputs[r].params, out[r]);
    }
    return absl::OkStatus();
  }

 private:
  int32_t vocab_size_;
  int32_t max_rows_;
  cudaStream_t stream_;
  SamplerPack pack_;
  PinnedBuffer host_upload_;
  PinnedBuffer host_results_;
  DeviceBuffer upload_;
  DeviceBuffer saved_;
  DeviceBuffer results_;
};

absl::StatusOr<std::unique_ptr<GpuSampler>> GpuSampler::Create(int32_t vocab_size, int32_t max_rows,
                                                               cudaStream_t stream) {
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("GpuSampler: vocab_size must be > 0, got ", vocab_size));
  }
  if (max_rows <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("GpuSampler: max_rows must be > 0, got ", max_rows));
  }
  auto impl = std::make_unique<Impl>(vocab_size, max_rows, stream);
  if (absl::Status s = impl->Init(); !s.ok()) return s;
  return std::unique_ptr<GpuSampler>(new GpuSampler(std::move(impl)));
}

GpuSampler::GpuSampler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuSampler::~GpuSampler() = default;

absl::Status GpuSampler::Sample(float* logits, std::span<const SampleInput> inputs,
                                std::span<SampledToken> out) {
  return impl_->Sample(logits, inputs, out);
}

}  // namespace muserve::cuda
