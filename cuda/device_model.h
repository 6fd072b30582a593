// DeviceModel: the weights of the layer graph in GPU memory, in the
// backend's dtype (bf16 or f16), laid out for the CUDA forward pass:
//  - q, k and v projections stacked into one [q_size + 2 kv_size, hidden]
//    matrix (and their biases into one vector), so that a layer reads its
//    input once for all three in one GEMM;
//  - gate and up stacked into one [2 intermediate, hidden] matrix;
//  - o, down, the embedding and the LM head as stored ([out, in] row-major),
//    the LM head shared with the embedding when the checkpoint ties them;
//  - the RoPE inverse frequencies in fp32 (cpu::RopeInverseFrequencies).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "cuda/device_buffer.h"
#include "cuda/weight_upload.h"
#include "engine/api/dtype.h"
#include "engine/api/model_config.h"
#include "engine/model/weights.h"

namespace muserve::cuda {

struct DeviceLayer {
  DeviceBuffer input_norm, post_norm;  // [hidden]
  DeviceBuffer qkv;                    // [q_size + 2 kv_size, hidden]
  DeviceBuffer qkv_bias;               // [q_size + 2 kv_size], or empty without attention_bias
  DeviceBuffer o;                      // [hidden, q_size]
  DeviceBuffer gate_up;                // [2 intermediate, hidden]
  DeviceBuffer down;                   // [hidden, intermediate]
};

struct DeviceModel {
  DType dtype = DType::kBF16;
  std::vector<DeviceLayer> layers;
  DeviceBuffer embed;       // [vocab, hidden]
  DeviceBuffer lm_head;     // [vocab, hidden]; empty when tied to embed
  DeviceBuffer final_norm;  // [hidden]
  DeviceBuffer inv_freq;    // [head_dim / 2] fp32

  const void* lm_head_weights() const {
    return lm_head.get() != nullptr ? lm_head.get() : embed.get();
  }
  // Device bytes of all of the above.
  int64_t bytes() const;
};

// The dtype the weights are kept in: the checkpoint's when bf16 or f16,
// bf16 for an f32 checkpoint.
DType DeviceDTypeFor(DType checkpoint_dtype);

// Uploads `weights` (bound to `config`) through `uploader`, converting to
// `dtype`. Unavailable when device memory runs out (the message says how
// much the model needs).
absl::StatusOr<DeviceModel> UploadModel(const ModelConfig& config, const ModelWeights& weights,
                                        DType dtype, WeightUploader& uploader);

// A model of `config`'s shapes with pseudo-random weights generated on the
// device (FillRandom, scaled by 1 / sqrt(in_features) so that activations
// stay O(1) through the layers) and unit norms: a benchmark model with no
// checkpoint to write or read.
absl::StatusOr<DeviceModel> RandomModel(const ModelConfig& config, DType dtype, uint64_t seed);

}  // namespace muserve::cuda
