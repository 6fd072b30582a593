#include "cuda/device_model.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cuda/cuda_status.h"
#include "engine/cpu/layer_ops.h"

namespace muserve::cuda {
namespace {

// Element offset `elements` into a device buffer of `dtype`.
void* At(const DeviceBuffer& buffer, DType dtype, int64_t elements) {
  return buffer.as<std::byte>() + elements * static_cast<int64_t>(DTypeSize(dtype));
}

absl::StatusOr<DeviceBuffer> Allocate(int64_t elements, DType dtype, const char* what) {
  absl::StatusOr<DeviceBuffer> buffer =
      DeviceBuffer::Allocate(elements * static_cast<int64_t>(DTypeSize(dtype)));
  if (!buffer.ok())
    return absl::Status(buffer.status().code(),
                        absl::StrCat("weights (", what, "): ", buffer.status().message()));
  return buffer;
}

absl::Status Upload(WeightUploader& uploader, const TensorView& t, DType dtype, void* dst) {
  return uploader.Upload(t.data, t.dtype, t.num_elements(), dtype, dst);
}

absl::StatusOr<DeviceBuffer> UploadTensor(WeightUploader& uploader, const TensorView& t,
                                          DType dtype) {
  absl::StatusOr<DeviceBuffer> buffer = Allocate(t.num_elements(), dtype, t.name.c_str());
  if (!buffer.ok()) return buffer.status();
  if (absl::Status s = Upload(uploader, t, dtype, buffer->get()); !s.ok()) return s;
  return buffer;
}

// Uploads tensors one after the other into one buffer (stacked rows).
absl::StatusOr<DeviceBuffer> UploadStacked(WeightUploader& uploader,
                                           std::initializer_list<const TensorView*> parts,
                                           DType dtype, const char* what) {
  int64_t elements = 0;
  for (const TensorView* t : parts) elements += t->num_elements();
  absl::StatusOr<DeviceBuffer> buffer = Allocate(elements, dtype, what);
  if (!buffer.ok()) return buffer.status();
  int64_t offset = 0;
  for (const TensorView* t : parts) {
    if (absl::Status s = Upload(uploader, *t, dtype, At(*buffer, dtype, offset)); !s.ok()) return s;
    offset += t->num_elements();
  }
  return buffer;
}

absl::StatusOr<DeviceBuffer> UploadInvFreq(const ModelConfig& config) {
  const std::vector<float> inv_freq = cpu::RopeInverseFrequencies(config);
  absl::StatusOr<DeviceBuffer> buffer =
      Allocate(static_cast<int64_t>(inv_freq.size()), DType::kF32, "RoPE inverse frequencies");
  if (!buffer.ok()) return buffer.status();
  MUSERVE_GPU_RETURN_IF_ERROR(cudaMemcpy(buffer->get(), inv_freq.data(),
                                         inv_freq.size() * sizeof(float), cudaMemcpyHostToDevice));
  return buffer;
}

}  // namespace

int64_t DeviceModel::bytes() const {
  int64_t total = embed.bytes() + lm_head.bytes() + final_norm.bytes() + inv_freq.bytes();
  for (const DeviceLayer& l : layers)
    total += l.input_norm.bytes() + l.post_norm.bytes() + l.qkv.bytes() + l.qkv_bias.bytes() +
             l.o.bytes() + l.gate_up.bytes() + l.down.bytes();
  return total;
}

DType DeviceDTypeFor(DType checkpoint_dtype) {
  return checkpoint_dtype == DType::kF16 ? DType::kF16 : DType::kBF16;
}

absl::StatusOr<DeviceModel> UploadModel(const ModelConfig& config, const ModelWeights& weights,
                                        DType dtype, WeightUploader& uploader) {
  DeviceModel model;
  model.dtype = dtype;
  for (const LayerWeights& lw : weights.layers) {
    DeviceLayer layer;
    auto assign = [](DeviceBuffer& to, absl::StatusOr<DeviceBuffer> from) -> absl::Status {
      if (!from.ok()) return from.status();
      to = std::move(*from);
      return absl::OkStatus();
    };
    absl::Status s = assign(layer.input_norm, UploadTensor(uploader, lw.input_layernorm, dtype));
    if (s.ok())
      s = assign(layer.post_norm, UploadTensor(uploader, lw.post_attention_layernorm, dtype));
    if (s.ok())
      s = assign(layer.qkv,
                 UploadStacked(uploader, {&lw.q_proj, &lw.k_proj, &lw.v_proj}, dtype, "qkv_proj"));
    if (s.ok() && lw.q_bias && lw.k_bias && lw.v_bias)
      s = assign(layer.qkv_bias, UploadStacked(uploader, {&*lw.q_bias, &*lw.k_bias, &*lw.v_bias},
                                               dtype, "qkv_bias"));
    if (s.ok()) s = assign(layer.o, UploadTensor(uploader, lw.o_proj, dtype));
    if (s.ok())
      s = assign(layer.gate_up,
                 UploadStacked(uploader, {&lw.gate_proj, &lw.up_proj}, dtype, "gate_up_proj"));
    if (s.ok()) s = assign(layer.down, UploadTensor(uploader, lw.down_proj, dtype));
    if (!s.ok()) return s;
    model.layers.push_back(std::move(layer));
  }
  absl::StatusOr<DeviceBuffer> embed = UploadTensor(uploader, weights.embed_tokens, dtype);
  if (!embed.ok()) return embed.status();
  model.embed = std::move(*embed);
  // Tied: the LM head is the embedding's own tensor (weights.h).
  if (weights.lm_head.data != weights.embed_tokens.data) {
    absl::StatusOr<DeviceBuffer> head = UploadTensor(uploader, weights.lm_head, dtype);
    if (!head.ok()) return head.status();
    model.lm_head = std::move(*head);
  }
  absl::StatusOr<DeviceBuffer> norm = UploadTensor(uploader, weights.norm, dtype);
  if (!norm.ok()) return norm.status();
  model.final_norm = std::move(*norm);
  absl::StatusOr<DeviceBuffer> inv_freq = UploadInvFreq(config);
  if (!inv_freq.ok()) return inv_freq.status();
  model.inv_freq = std::move(*inv_freq);
  if (absl::Status s = uploader.Finish(); !s.ok()) return s;
  return model;
}

absl::StatusOr<DeviceModel> RandomModel(const ModelConfig& config, DType dtype, uint64_t seed) {
  DeviceModel model;
  model.dtype = dtype;
  const int64_t H = config.hidden_size, I = config.intermediate_size, V = config.vocab_size;
  const int64_t qkv_rows = config.q_size() + 2 * config.kv_size();
  const std::vector<uint16_t> ones(static_cast<size_t>(H),
                                   dtype == DType::kBF16 ? F32ToBf16(1.0f) : F32ToF16(1.0f));
  // Scaled by 1 / sqrt(cols) unless `scale` is given.
  auto random = [&](int64_t rows, int64_t cols, const char* what,
                    float scale = 0.0f) -> absl::StatusOr<DeviceBuffer> {
    absl::StatusOr<DeviceBuffer> buffer = Allocate(rows * cols, dtype, what);
    if (!buffer.ok()) return buffer.status();
    if (scale == 0.0f) scale = 1.0f / std::sqrt(static_cast<float>(cols));
    if (absl::Status s = FillRandom(dtype, buffer->get(), rows * cols, seed++, scale, nullptr);
        !s.ok())
      return s;
    return buffer;
  };
  auto unit = [&]() -> absl::StatusOr<DeviceBuffer> {
    absl::StatusOr<DeviceBuffer> buffer = Allocate(H, dtype, "norm");
    if (!buffer.ok()) return buffer.status();
    MUSERVE_GPU_RETURN_IF_ERROR(
        cudaMemcpy(buffer->get(), ones.data(), ones.size() * 2, cudaMemcpyHostToDevice));
    return buffer;
  };
  for (int32_t i = 0; i < config.num_hidden_layers; ++i) {
    DeviceLayer layer;
    absl::StatusOr<DeviceBuffer> parts[] = {unit(),
                                            unit(),
                                            random(qkv_rows, H, "qkv_proj"),
                                            random(H, config.q_size(), "o_proj"),
                                            random(2 * I, H, "gate_up_proj"),
                                            random(H, I, "down_proj")};
    for (const auto& part : parts)
      if (!part.ok()) return part.status();
    layer.input_norm = std::move(*parts[0]);
    layer.post_norm = std::move(*parts[1]);
    layer.qkv = std::move(*parts[2]);
    layer.o = std::move(*parts[3]);
    layer.gate_up = std::move(*parts[4]);
    layer.down = std::move(*parts[5]);
    if (config.attention_bias) {
      absl::StatusOr<DeviceBuffer> bias = random(1, qkv_rows, "qkv_bias", 0.1f);
      if (!bias.ok()) return bias.status();
      layer.qkv_bias = std::move(*bias);
    }
    model.layers.push_back(std::move(layer));
  }
  // The embedding's rows are the residual stream's start: unit scale, as
  // initialisers do, rather than 1 / sqrt(hidden).
  absl::StatusOr<DeviceBuffer> embed = random(V, H, "embed_tokens", 1.0f);
  if (!embed.ok()) return embed.status();
  model.embed = std::move(*embed);
  if (!config.tie_word_embeddings) {
    absl::StatusOr<DeviceBuffer> head = random(V, H, "lm_head");
    if (!head.ok()) return head.status();
    model.lm_head = std::move(*head);
  }
  absl::StatusOr<DeviceBuffer> norm = unit();
  if (!norm.ok()) return norm.status();
  model.final_norm = std::move(*norm);
  absl::StatusOr<DeviceBuffer> inv_freq = UploadInvFreq(config);
  if (!inv_freq.ok()) return inv_freq.status();
  model.inv_freq = std::move(*inv_freq);
  MUSERVE_GPU_RETURN_IF_ERROR(cudaDeviceSynchronize());
  return model;
}

}  // namespace muserve::cuda
