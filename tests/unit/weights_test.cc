// BindWeights / LoadModel: checkpoints written by transformers' save_pretrained
// (tests/reference/make_safetensors_fixtures.py) and broken synthetic ones.
#include "engine/model/weights.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "engine/model/safetensors_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/fixtures.h"

namespace muserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

double Sum(const TensorView& view) {
  double sum = 0;
  for (int64_t i = 0; i < view.num_elements(); ++i) {
    switch (view.dtype) {
      case DType::kF32: {
        float value;
        std::memcpy(&value, view.data + 4 * i, 4);
        sum += value;
        break;
      }
      case DType::kF16:
      case DType::kBF16: {
        uint16_t bits;
        std::memcpy(&bits, view.data + 2 * i, 2);
        sum += view.dtype == DType::kF16 ? F16ToF32(bits) : Bf16ToF32(bits);
        break;
      }
    }
  }
  return sum;
}

// Checks that every bound view holds the tensor PyTorch saved under its name.
void ExpectSumsMatch(const ModelWeights& weights, const Json& expected) {
  const Json& sums = expected["tensor_sums"];
  auto expect = [&](const std::string& name, const TensorView& view) {
    ASSERT_TRUE(sums.contains(name)) << name;
    EXPECT_NEAR(Sum(view), sums[name].get<double>(), 1e-9 * (1 + std::fabs(Sum(view)))) << name;
  };
  expect("model.embed_tokens.weight", weights.embed_tokens);
  expect("model.norm.weight", weights.norm);
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    const LayerWeights& layer = weights.layers[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    expect(p + "input_layernorm.weight", layer.input_layernorm);
    expect(p + "post_attention_layernorm.weight", layer.post_attention_layernorm);
    expect(p + "self_attn.q_proj.weight", layer.q_proj);
    expect(p + "self_attn.k_proj.weight", layer.k_proj);
    expect(p + "self_attn.v_proj.weight", layer.v_proj);
    expect(p + "self_attn.o_proj.weight", layer.o_proj);
    expect(p + "mlp.gate_proj.weight", layer.gate_proj);
    expect(p + "mlp.up_proj.weight", layer.up_proj);
    expect(p + "mlp.down_proj.weight", layer.down_proj);
    if (layer.q_bias) expect(p + "self_attn.q_proj.bias", *layer.q_bias);
    if (layer.k_bias) expect(p + "self_attn.k_proj.bias", *layer.k_bias);
    if (layer.v_bias) expect(p + "self_attn.v_proj.bias", *layer.v_bias);
  }
}

TEST(WeightsTest, LoadsAShardedTransformersLlama) {
  const auto dir = testing::FixturePath("safetensors/tiny_llama_sharded");
  absl::StatusOr<LoadedModel> model = LoadModel(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelWeights& w = model->weights;
  EXPECT_EQ(model->config.architecture, Architecture::kLlama);
  ASSERT_EQ(w.layers.size(), 2u);
  EXPECT_THAT(w.embed_tokens.shape, ElementsAre(64, 16));
  EXPECT_THAT(w.lm_head.shape, ElementsAre(64, 16));
  EXPECT_NE(w.lm_head.data, w.embed_tokens.data);
  EXPECT_THAT(w.layers[1].q_proj.shape, ElementsAre(16, 16));
  EXPECT_THAT(w.layers[1].k_proj.shape, ElementsAre(8, 16));
  EXPECT_THAT(w.layers[1].v_proj.shape, ElementsAre(8, 16));
  EXPECT_THAT(w.layers[1].o_proj.shape, ElementsAre(16, 16));
  EXPECT_THAT(w.layers[0].gate_proj.shape, ElementsAre(32, 16));
  EXPECT_THAT(w.layers[0].down_proj.shape, ElementsAre(16, 32));
  EXPECT_FALSE(w.layers[0].q_bias.has_value());
  EXPECT_EQ(w.layers[0].q_proj.name, "model.layers.0.self_attn.q_proj.weight");
  Json expected = testing::ReadJsonOrFail(dir / "expected.json");
  ExpectSumsMatch(w, expected);
  EXPECT_NEAR(Sum(w.lm_head), expected["tensor_sums"]["lm_head.weight"].get<double>(), 1e-9);
}

TEST(WeightsTest, LoadsABf16Qwen2WithBiasesAndTiedEmbeddings) {
  const auto dir = testing::FixturePath("safetensors/tiny_qwen2_bf16");
  absl::StatusOr<LoadedModel> model = LoadModel(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelWeights& w = model->weights;
  EXPECT_EQ(model->config.torch_dtype, DType::kBF16);
  EXPECT_EQ(w.embed_tokens.dtype, DType::kBF16);
  EXPECT_EQ(w.lm_head.data, w.embed_tokens.data);  // tied: the same bytes
  ASSERT_TRUE(w.layers[0].q_bias.has_value());
  EXPECT_THAT(w.layers[0].q_bias->shape, ElementsAre(16));
  EXPECT_THAT(w.layers[0].k_bias->shape, ElementsAre(8));
  EXPECT_THAT(w.layers[0].v_bias->shape, ElementsAre(8));
  ExpectSumsMatch(w, testing::ReadJsonOrFail(dir / "expected.json"));
}

// A synthetic Llama checkpoint of `config`'s shapes, minus `skip`, with
// `reshape` given a wrong shape.
void WriteCheckpoint(const std::filesystem::path& dir, const ModelConfig& config,
                     const std::string& skip = "", const std::string& reshape = "") {
  const int64_t h = config.hidden_size, q = config.q_size(), kv = config.kv_size();
  const int64_t inter = config.intermediate_size, vocab = config.vocab_size;
  std::vector<TensorSpec> specs = {{"model.embed_tokens.weight", DType::kF32, {vocab, h}},
                                   {"model.norm.weight", DType::kF32, {h}},
                                   {"lm_head.weight", DType::kF32, {vocab, h}}};
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    specs.push_back({p + "input_layernorm.weight", DType::kF32, {h}});
    specs.push_back({p + "post_attention_layernorm.weight", DType::kF32, {h}});
    specs.push_back({p + "self_attn.q_proj.weight", DType::kBF16, {q, h}});
    specs.push_back({p + "self_attn.k_proj.weight", DType::kBF16, {kv, h}});
    specs.push_back({p + "self_attn.v_proj.weight", DType::kBF16, {kv, h}});
    specs.push_back({p + "self_attn.o_proj.weight", DType::kBF16, {h, q}});
    specs.push_back({p + "mlp.gate_proj.weight", DType::kF16, {inter, h}});
    specs.push_back({p + "mlp.up_proj.weight", DType::kF16, {inter, h}});
    specs.push_back({p + "mlp.down_proj.weight", DType::kF16, {h, inter}});
    if (config.attention_bias) {
      specs.push_back({p + "self_attn.q_proj.bias", DType::kF32, {q}});
      specs.push_back({p + "self_attn.k_proj.bias", DType::kF32, {kv}});
      specs.push_back({p + "self_attn.v_proj.bias", DType::kF32, {kv}});
    }
  }
  std::erase_if(specs, [&](const TensorSpec& spec) { return spec.name == skip; });
  for (TensorSpec& spec : specs) {
    if (spec.name == reshape) spec.shape.back() += 1;
  }
  ASSERT_TRUE(WriteSafetensors(dir / "model.safetensors", specs,
                               [](const TensorSpec&, std::span<std::byte> out) {
                                 std::fill(out.begin(), out.end(), std::byte{0});
                                 return absl::OkStatus();
                               })
                  .ok());
}

ModelConfig SmallConfig() {
  ModelConfig config;
  config.hidden_size = 8;
  config.num_hidden_layers = 3;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  config.head_dim = 4;
  config.intermediate_size = 12;
  config.vocab_size = 10;
  config.max_position_embeddings = 32;
  return config;
}

absl::Status Bind(const std::filesystem::path& dir, const ModelConfig& config) {
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir);
  if (!checkpoint.ok()) return checkpoint.status();
  return BindWeights(config, **checkpoint).status();
}

TEST(WeightsTest, BindsMixedDtypesKeepingEachTensorsDtype) {
  testing::TempDir dir;
  WriteCheckpoint(dir.path(), SmallConfig());
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir.path());
  ASSERT_TRUE(checkpoint.ok());
  absl::StatusOr<ModelWeights> weights = BindWeights(SmallConfig(), **checkpoint);
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ(weights->layers.size(), 3u);
  EXPECT_EQ(weights->layers[2].q_proj.dtype, DType::kBF16);
  EXPECT_EQ(weights->layers[2].up_proj.dtype, DType::kF16);
  EXPECT_EQ(weights->norm.dtype, DType::kF32);
}

TEST(WeightsTest, EveryMissingTensorIsNamed) {
  for (const std::string name :
       {"model.embed_tokens.weight", "model.norm.weight", "model.layers.2.input_layernorm.weight",
        "model.layers.1.post_attention_layernorm.weight", "model.layers.0.self_attn.q_proj.weight",
        "model.layers.2.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight",
        "model.layers.1.self_attn.o_proj.weight", "model.layers.0.mlp.gate_proj.weight",
        "model.layers.2.mlp.up_proj.weight", "model.layers.2.mlp.down_proj.weight"}) {
    testing::TempDir dir;
    WriteCheckpoint(dir.path(), SmallConfig(), /*skip=*/name);
    absl::Status status = Bind(dir.path(), SmallConfig());
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << name;
    EXPECT_THAT(status.message(), HasSubstr("'" + name + "'"));
  }
}

TEST(WeightsTest, WrongShapeNamesTheTensorAndBothShapes) {
  testing::TempDir dir;
  WriteCheckpoint(dir.path(), SmallConfig(), "",
                  /*reshape=*/"model.layers.1.self_attn.k_proj.weight");
  absl::Status status = Bind(dir.path(), SmallConfig());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "model.layers.1.self_attn.k_proj.weight: expected shape [8, 8], found [8, 9]");
}

TEST(WeightsTest, MissingLmHeadWithUntiedEmbeddingsIsAnError) {
  testing::TempDir dir;
  WriteCheckpoint(dir.path(), SmallConfig(), /*skip=*/"lm_head.weight");
  absl::Status status = Bind(dir.path(), SmallConfig());
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("lm_head.weight"));
  EXPECT_THAT(status.message(), HasSubstr("tie_word_embeddings is false"));

  ModelConfig tied = SmallConfig();
  tied.tie_word_embeddings = true;
  EXPECT_TRUE(Bind(dir.path(), tied).ok());
}

TEST(WeightsTest, AttentionBiasRequiresTheBiasTensors) {
  ModelConfig config = SmallConfig();
  config.attention_bias = true;
  {
    testing::TempDir dir;
    WriteCheckpoint(dir.path(), config);
    EXPECT_TRUE(Bind(dir.path(), config).ok());
  }
  testing::TempDir dir;
  WriteCheckpoint(dir.path(), config, /*skip=*/"model.layers.2.self_attn.v_proj.bias");
  absl::Status status = Bind(dir.path(), config);
  EXPECT_THAT(status.message(), HasSubstr("'model.layers.2.self_attn.v_proj.bias'"));
}

TEST(WeightsTest, InvalidConfigIsRejectedBeforeBinding) {
  testing::TempDir dir;
  WriteCheckpoint(dir.path(), SmallConfig());
  ModelConfig config = SmallConfig();
  config.num_key_value_heads = 3;
  EXPECT_EQ(Bind(dir.path(), config).code(), absl::StatusCode::kInvalidArgument);
}

TEST(WeightsTest, LoadModelReportsConfigAndCheckpointErrorsWithTheirFiles) {
  testing::TempDir dir;
  absl::Status status = LoadModel(dir.path()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("config.json"));

  std::filesystem::copy_file(testing::FixturePath("safetensors/tiny_llama_sharded/config.json"),
                             dir.path() / "config.json");
  status = LoadModel(dir.path()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("model.safetensors"));

  // Weights of another shape than config.json says.
  ModelConfig other = SmallConfig();
  WriteCheckpoint(dir.path(), other);
  status = LoadModel(dir.path()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(dir.path().string()));
  EXPECT_THAT(status.message(),
              HasSubstr("model.embed_tokens.weight: expected shape [64, 16], found [10, 8]"));
}

}  // namespace
}  // namespace muserve
