// Moving checkpoint tensors from the mmapped safetensors to the GPU in the
// backend's dtype (bf16 or f16), without a second full host copy: each
// tensor streams through a fixed pinned staging buffer in chunks, with two
// halves in flight (the host fills one while the device copies and converts
// the other), so host memory stays at the staging size whatever the model.
// F32 checkpoints are converted on the device (round to nearest even, as
// PyTorch's .to(torch.bfloat16)); bf16 <-> f16 likewise; same dtypes copy.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/api/dtype.h"

namespace muserve::cuda {

class WeightUploader {
 public:
  // Pinned staging of staging_bytes (split in two halves, each rounded down
  // to a multiple of 256 bytes; staging_bytes >= 512), a device conversion
  // buffer of the same size, and its own non-blocking stream. One uploader
  // is used from one thread at a time.
  static absl::StatusOr<std::unique_ptr<WeightUploader>> Create(int64_t staging_bytes = 64 << 20);
  ~WeightUploader();
  WeightUploader(const WeightUploader&) = delete;
  WeightUploader& operator=(const WeightUploader&) = delete;

  // Copies `elements` elements of `src_dtype` at host address `src` (any
  // alignment) to `dst` (device, element-aligned) as `dst_dtype` (bf16 or
  // f16), rounded as engine/api/dtype.h's F32ToBf16 / F32ToF16 bit for bit.
  // Returns when `src` may be released (all of it has been staged); the
  // device side may still be running: Finish() waits for it. InvalidArgument
  // naming the parameter for a bad dtype, count, stride or null pointer.
  // Also takes a 2-D slice: `rows` rows of `row_elements` elements, row r
  // starting at src + r * src_row_stride_elements (a tensor-parallel rank's
  // column slice), packed contiguously at dst.
  absl::Status Upload(const std::byte* src, DType src_dtype, int64_t elements, DType dst_dtype,
                      void* dst);
  absl::Status UploadRows(const std::byte* src, DType src_dtype, int64_t rows, int64_t row_elements,
                          int64_t src_row_stride_elements, DType dst_dtype, void* dst);

  // Waits for every upload; the first device error, if any.
  absl::Status Finish();

  // Bytes read from host memory so far (for the load log line).
  int64_t bytes_read() const;

 private:
  class Impl;
  explicit WeightUploader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Fills `elements` elements of `dtype` (F32, F16 or BF16) at `dst` (device)
// with deterministic pseudo-random values uniform in [-scale, scale] from
// (seed, index) alone (the formula: cuda/kernels/convert.h), enqueued on
// `stream`: the weights of a benchmark model that exists only on the GPU
// (no checkpoint of 16 GB to write and read).
absl::Status FillRandom(DType dtype, void* dst, int64_t elements, uint64_t seed, float scale,
                        cudaStream_t stream);

}  // namespace muserve::cuda
