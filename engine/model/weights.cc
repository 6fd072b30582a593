#include "engine/model/weights.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace muserve {
namespace {

// Binds views by name and shape, remembering the first error.
class Binder {
 public:
  explicit Binder(const Checkpoint& checkpoint) : checkpoint_(checkpoint) {}

  void Bind(const std::string& name, std::initializer_list<int64_t> shape, TensorView& out) {
    if (!status_.ok()) return;
    absl::StatusOr<TensorView> view =
        checkpoint_.Get(name, std::span<const int64_t>(shape.begin(), shape.size()));
    if (!view.ok()) {
      status_ = view.status();
      return;
    }
    out = std::move(*view);
  }

  void Bind(const std::string& name, std::initializer_list<int64_t> shape,
            std::optional<TensorView>& out) {
    TensorView view;
    Bind(name, shape, view);
    if (status_.ok()) out = std::move(view);
  }

  const absl::Status& status() const { return status_; }

 private:
  const Checkpoint& checkpoint_;
  absl::Status status_;
};

}  // namespace

absl::StatusOr<ModelWeights> BindWeights(const ModelConfig& config, const Checkpoint& checkpoint) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  const int64_t hidden = config.hidden_size;
  const int64_t q_size = config.q_size();
  const int64_t kv_size = config.kv_size();
  const int64_t intermediate = config.intermediate_size;
  const int64_t vocab = config.vocab_size;

  ModelWeights weights;
  Binder binder(checkpoint);
  binder.Bind("model.embed_tokens.weight", {vocab, hidden}, weights.embed_tokens);
  weights.layers.resize(static_cast<size_t>(config.num_hidden_layers));
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    LayerWeights& layer = weights.layers[static_cast<size_t>(i)];
    const std::string prefix = absl::StrCat("model.layers.", i, ".");
    binder.Bind(prefix + "input_layernorm.weight", {hidden}, layer.input_layernorm);
    binder.Bind(prefix + "self_attn.q_proj.weight", {q_size, hidden}, layer.q_proj);
    binder.Bind(prefix + "self_attn.k_proj.weight", {kv_size, hidden}, layer.k_proj);
    binder.Bind(prefix + "self_attn.v_proj.weight", {kv_size, hidden}, layer.v_proj);
    if (config.attention_bias) {
      binder.Bind(prefix + "self_attn.q_proj.bias", {q_size}, layer.q_bias);
      binder.Bind(prefix + "self_attn.k_proj.bias", {kv_size}, layer.k_bias);
      binder.Bind(prefix + "self_attn.v_proj.bias", {kv_size}, layer.v_bias);
    }
    binder.Bind(prefix + "self_attn.o_proj.weight", {hidden, q_size}, layer.o_proj);
    binder.Bind(prefix + "post_attention_layernorm.weight", {hidden},
                layer.post_attention_layernorm);
    binder.Bind(prefix + "mlp.gate_proj.weight", {intermediate, hidden}, layer.gate_proj);
    binder.Bind(prefix + "mlp.up_proj.weight", {intermediate, hidden}, layer.up_proj);
    binder.Bind(prefix + "mlp.down_proj.weight", {hidden, intermediate}, layer.down_proj);
  }
  binder.Bind("model.norm.weight", {hidden}, weights.norm);
  if (!binder.status().ok()) return binder.status();

  if (config.tie_word_embeddings) {
    // transformers ties lm_head to the embedding even when a (redundant)
    // lm_head.weight was saved.
    weights.lm_head = weights.embed_tokens;
  } else if (!checkpoint.Contains("lm_head.weight")) {
    return absl::NotFoundError(
        "tensor 'lm_head.weight' is missing from the checkpoint and tie_word_embeddings is false");
  } else {
    binder.Bind("lm_head.weight", {vocab, hidden}, weights.lm_head);
    if (!binder.status().ok()) return binder.status();
  }
  return weights;
}

absl::StatusOr<LoadedModel> LoadModel(const std::filesystem::path& model_dir) {
  LoadedModel model;
  absl::StatusOr<ModelConfig> config = LoadModelConfig(model_dir);
  if (!config.ok()) return config.status();
  model.config = std::move(*config);
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(model_dir);
  if (!checkpoint.ok()) return checkpoint.status();
  model.checkpoint = std::move(*checkpoint);
  absl::StatusOr<ModelWeights> weights = BindWeights(model.config, *model.checkpoint);
  if (!weights.ok()) {
    return absl::Status(weights.status().code(),
                        absl::StrCat(model_dir.string(), ": ", weights.status().message()));
  }
  model.weights = std::move(*weights);
  return model;
}

}  // namespace muserve
