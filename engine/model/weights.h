// ModelWeights: typed, shape-checked views of a Llama-family checkpoint's
// tensors (HF names: model.layers.N.self_attn.q_proj.weight, ...). Matrices
// keep the checkpoint's layout, [out_features, in_features] row-major, and
// dtype (F32, F16 or BF16); backends convert on the fly.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/api/model_config.h"
#include "engine/model/safetensors.h"

namespace muserve {

struct LayerWeights {
  TensorView input_layernorm;           // [hidden]
  TensorView q_proj;                    // [heads * head_dim, hidden]
  TensorView k_proj;                    // [kv_heads * head_dim, hidden]
  TensorView v_proj;                    // [kv_heads * head_dim, hidden]
  std::optional<TensorView> q_bias;     // [heads * head_dim]     when attention_bias
  std::optional<TensorView> k_bias;     // [kv_heads * head_dim]  when attention_bias
  std::optional<TensorView> v_bias;     // [kv_heads * head_dim]  when attention_bias
  TensorView o_proj;                    // [hidden, heads * head_dim]
  TensorView post_attention_layernorm;  // [hidden]
  TensorView gate_proj;                 // [intermediate, hidden]
  TensorView up_proj;                   // [intermediate, hidden]
  TensorView down_proj;                 // [hidden, intermediate]
};

struct ModelWeights {
  TensorView embed_tokens;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  TensorView norm;     // [hidden]
  TensorView lm_head;  // [vocab, hidden]; the embedding itself when tied
};

// A loaded model: its config, the mapped checkpoint and the weight views into it.
// The views point into the checkpoint's mappings: they stay valid while the
// LoadedModel (precisely, `checkpoint`) lives, including across moves of the
// LoadedModel, since the mappings are owned through the unique_ptr and never
// move. Copying `weights` out and dropping the LoadedModel leaves them dangling.
struct LoadedModel {
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;
  ModelWeights weights;
};

// Binds `checkpoint`'s tensors to `config`'s layer graph; every tensor must be
// present with the expected shape (errors name the tensor and both shapes).
absl::StatusOr<ModelWeights> BindWeights(const ModelConfig& config, const Checkpoint& checkpoint);

// Reads config.json and the safetensors of `model_dir`, then binds the weights.
absl::StatusOr<LoadedModel> LoadModel(const std::filesystem::path& model_dir);

}  // namespace muserve
