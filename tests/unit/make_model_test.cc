// make-model: presets, determinism, and that the written directory is a real
// Hugging Face checkpoint our loader, tokenizer and chat template accept.
#include "engine/model/make_model.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "engine/model/weights.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/fixtures.h"

namespace muserve {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr const char* kFiles[] = {"config.json", "model.safetensors", "tokenizer.json",
                                  "tokenizer_config.json", "generation_config.json"};

void Make(const std::filesystem::path& dir, ModelPreset preset, uint64_t seed, DType dtype) {
  absl::Status status = MakeModel({.out_dir = dir, .preset = preset, .seed = seed, .dtype = dtype});
  ASSERT_TRUE(status.ok()) << status;
}

std::vector<float> ToFloats(const TensorView& view) {
  std::vector<float> values(static_cast<size_t>(view.num_elements()));
  for (size_t i = 0; i < values.size(); ++i) {
    if (view.dtype == DType::kF32) {
      std::memcpy(&values[i], view.data + 4 * i, 4);
    } else {
      uint16_t bits;
      std::memcpy(&bits, view.data + 2 * i, 2);
      values[i] = view.dtype == DType::kBF16 ? Bf16ToF32(bits) : F16ToF32(bits);
    }
  }
  return values;
}

TEST(MakeModelTest, ParsesPresetNames) {
  EXPECT_EQ(*ParseModelPreset("tiny"), ModelPreset::kTiny);
  EXPECT_EQ(*ParseModelPreset("small"), ModelPreset::kSmall);
  EXPECT_EQ(*ParseModelPreset("1b"), ModelPreset::k1b);
  absl::Status status = ParseModelPreset("7b").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("7b"));
}

TEST(MakeModelTest, EveryPresetConfigValidates) {
  for (ModelPreset preset : {ModelPreset::kTiny, ModelPreset::kSmall, ModelPreset::k1b}) {
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      ModelConfig config = PresetConfig(preset, dtype);
      EXPECT_TRUE(config.Validate().ok()) << config.Validate();
      EXPECT_EQ(config.torch_dtype, dtype);
      EXPECT_EQ(config.architecture, Architecture::kLlama);
    }
  }
}

TEST(MakeModelTest, OneBillionPresetHasTinyLlamasShape) {
  const ModelConfig config = PresetConfig(ModelPreset::k1b, DType::kBF16);
  EXPECT_EQ(config.hidden_size, 2048);
  EXPECT_EQ(config.num_hidden_layers, 22);
  EXPECT_EQ(config.num_attention_heads, 32);
  EXPECT_EQ(config.num_key_value_heads, 4);
  EXPECT_EQ(config.head_dim, 64);
  EXPECT_EQ(config.intermediate_size, 5632);
  EXPECT_EQ(config.vocab_size, 32000);
  EXPECT_EQ(config.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(config.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(config.rms_norm_eps, 1e-5);
  EXPECT_FALSE(config.tie_word_embeddings);
}

TEST(MakeModelTest, TinyModelLoadsWithItsTokenizerAndChatTemplate) {
  testing::TempDir dir;
  Make(dir.path(), ModelPreset::kTiny, 7, DType::kF32);
  for (const char* file : kFiles) EXPECT_TRUE(std::filesystem::exists(dir.path() / file)) << file;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "model.safetensors.tmp"));

  absl::StatusOr<LoadedModel> model = LoadModel(dir.path());
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig preset = PresetConfig(ModelPreset::kTiny, DType::kF32);
  EXPECT_EQ(model->config.hidden_size, preset.hidden_size);
  EXPECT_EQ(model->config.num_hidden_layers, preset.num_hidden_layers);
  EXPECT_EQ(model->config.num_key_value_heads, preset.num_key_value_heads);
  EXPECT_EQ(model->config.vocab_size, preset.vocab_size);
  EXPECT_EQ(model->weights.layers.size(), 2u);
  EXPECT_EQ(model->weights.embed_tokens.dtype, DType::kF32);

  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      Tokenizer::FromFile(dir.path() / "tokenizer.json");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_LE((*tokenizer)->vocab_size(), model->config.vocab_size);
  EXPECT_EQ((*tokenizer)->TokenToId("<|begin_of_text|>"), model->config.bos_token_id);
  const std::optional<TokenId> eot = (*tokenizer)->TokenToId("<|eot_id|>");
  const std::optional<TokenId> end_of_text = (*tokenizer)->TokenToId("<|end_of_text|>");
  ASSERT_TRUE(eot.has_value() && end_of_text.has_value());
  EXPECT_THAT(model->config.eos_token_ids, ElementsAre(*end_of_text, *eot));

  Json generation = testing::ReadJsonOrFail(dir.path() / "generation_config.json");
  EXPECT_EQ(generation["bos_token_id"], *model->config.bos_token_id);
  EXPECT_EQ(generation["eos_token_id"], Json(model->config.eos_token_ids));
  Json tokenizer_config = testing::ReadJsonOrFail(dir.path() / "tokenizer_config.json");
  EXPECT_EQ(tokenizer_config["bos_token"], "<|begin_of_text|>");
  EXPECT_EQ(tokenizer_config["eos_token"], "<|eot_id|>");
  EXPECT_EQ(tokenizer_config["added_tokens_decoder"][std::to_string(*eot)]["content"],
            "<|eot_id|>");

  absl::StatusOr<std::unique_ptr<ChatTemplate>> chat =
      ChatTemplate::FromTokenizerConfig(dir.path() / "tokenizer_config.json");
  ASSERT_TRUE(chat.ok()) << chat.status();
  absl::StatusOr<std::string> prompt =
      (*chat)->Render({{.role = "user", .content = "Hello!"}}, ChatTemplateOptions{});
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_THAT(*prompt, HasSubstr("Hello!"));
  const std::vector<TokenId> ids = (*tokenizer)->Encode(*prompt, /*add_special_tokens=*/false);
  for (TokenId id : ids) EXPECT_LT(id, model->config.vocab_size);
}

// The config.json keys and values are those transformers' LlamaConfig writes
// for the same shapes (saved by tests/reference/make_safetensors_fixtures.py);
// only the special-token ids, which come from the demo tokenizer, differ.
TEST(MakeModelTest, ConfigJsonMatchesWhatTransformersWrites) {
  testing::TempDir dir;
  Make(dir.path(), ModelPreset::kTiny, 0, DType::kF32);
  Json written = testing::ReadJsonOrFail(dir.path() / "config.json");
  Json expected =
      testing::ReadJsonOrFail(testing::FixturePath("configs/make_model_tiny_expected.json"));
  for (Json* json : {&written, &expected}) {
    json->erase("bos_token_id");
    json->erase("eos_token_id");
  }
  EXPECT_EQ(written, expected) << "written:\n"
                               << written.dump(2) << "\nexpected:\n"
                               << expected.dump(2);
}

TEST(MakeModelTest, SameSeedWritesByteIdenticalFiles) {
  testing::TempDir a, b;
  Make(a.path(), ModelPreset::kTiny, 42, DType::kBF16);
  Make(b.path(), ModelPreset::kTiny, 42, DType::kBF16);
  for (const char* file : kFiles) {
    EXPECT_EQ(testing::ReadFileOrFail(a.path() / file), testing::ReadFileOrFail(b.path() / file))
        << file;
  }
}

TEST(MakeModelTest, DifferentSeedsWriteDifferentWeightsAndTheSameEverythingElse) {
  testing::TempDir a, b;
  Make(a.path(), ModelPreset::kTiny, 1, DType::kF32);
  Make(b.path(), ModelPreset::kTiny, 2, DType::kF32);
  for (const char* file : kFiles) {
    const bool same =
        testing::ReadFileOrFail(a.path() / file) == testing::ReadFileOrFail(b.path() / file);
    EXPECT_EQ(same, std::string(file) != "model.safetensors") << file;
  }
  absl::StatusOr<LoadedModel> ma = LoadModel(a.path());
  absl::StatusOr<LoadedModel> mb = LoadModel(b.path());
  ASSERT_TRUE(ma.ok() && mb.ok());
  EXPECT_NE(ToFloats(ma->weights.layers[0].q_proj), ToFloats(mb->weights.layers[0].q_proj));
  EXPECT_NE(ToFloats(ma->weights.embed_tokens), ToFloats(mb->weights.embed_tokens));
}

TEST(MakeModelTest, WeightsFollowHuggingFaceInit) {
  testing::TempDir dir;
  Make(dir.path(), ModelPreset::kSmall, 3, DType::kF32);
  absl::StatusOr<LoadedModel> model = LoadModel(dir.path());
  ASSERT_TRUE(model.ok()) << model.status();
  for (const TensorView* norm : {&model->weights.norm, &model->weights.layers[3].input_layernorm,
                                 &model->weights.layers[0].post_attention_layernorm}) {
    for (float value : ToFloats(*norm)) ASSERT_EQ(value, 1.0f) << norm->name;
  }
  for (const TensorView* matrix :
       {&model->weights.embed_tokens, &model->weights.lm_head, &model->weights.layers[1].up_proj,
        &model->weights.layers[2].k_proj}) {
    const std::vector<float> values = ToFloats(*matrix);
    double sum = 0, sum_sq = 0, max_abs = 0;
    for (float v : values) {
      sum += v;
      sum_sq += static_cast<double>(v) * v;
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(v)));
    }
    const double mean = sum / values.size();
    const double std = std::sqrt(sum_sq / values.size() - mean * mean);
    EXPECT_NEAR(mean, 0.0, 0.001) << matrix->name;
    EXPECT_NEAR(std, 0.02, 0.0005) << matrix->name;
    EXPECT_LE(max_abs, 0.02 * 2 * std::sqrt(3.0) + 1e-6) << matrix->name;
  }
  // Each tensor has its own stream: no two matrices share their values.
  EXPECT_NE(ToFloats(model->weights.layers[0].gate_proj),
            ToFloats(model->weights.layers[0].up_proj));
}

TEST(MakeModelTest, Bf16WeightsAreTheRoundedF32Weights) {
  testing::TempDir f32_dir, bf16_dir;
  Make(f32_dir.path(), ModelPreset::kTiny, 5, DType::kF32);
  Make(bf16_dir.path(), ModelPreset::kTiny, 5, DType::kBF16);
  absl::StatusOr<LoadedModel> f32 = LoadModel(f32_dir.path());
  absl::StatusOr<LoadedModel> bf16 = LoadModel(bf16_dir.path());
  ASSERT_TRUE(f32.ok() && bf16.ok());
  EXPECT_EQ(bf16->config.torch_dtype, DType::kBF16);
  EXPECT_EQ(bf16->weights.layers[1].down_proj.dtype, DType::kBF16);
  const std::vector<float> full = ToFloats(f32->weights.layers[1].down_proj);
  const std::vector<float> rounded = ToFloats(bf16->weights.layers[1].down_proj);
  ASSERT_EQ(full.size(), rounded.size());
  for (size_t i = 0; i < full.size(); ++i) ASSERT_EQ(Bf16ToF32(F32ToBf16(full[i])), rounded[i]);
}

TEST(MakeModelTest, UnwritableDirectoryIsAnError) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "file") << "x";
  absl::Status status = MakeModel({.out_dir = dir.path() / "file" / "model"});
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("file"));
  EXPECT_FALSE(MakeModel({}).ok());
}

}  // namespace
}  // namespace muserve
