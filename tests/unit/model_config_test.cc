// ModelConfig parsing: real-shaped config.json files written by transformers
// (tests/reference/make_safetensors_fixtures.py) and hand-broken variants.
#include "engine/api/model_config.h"

#include <sys/stat.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/api/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/fixtures.h"

namespace muserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

Json FixtureConfig(const std::string& name) {
  return testing::ReadJsonOrFail(testing::FixturePath("configs/" + name));
}

absl::StatusOr<ModelConfig> Parse(const Json& json) {
  return ParseModelConfig(json.dump(), "config.json");
}

// A minimal legacy-style (transformers 4.x) Llama config.
Json MinimalLlama() {
  return Json{{"architectures", {"LlamaForCausalLM"}},
              {"hidden_size", 64},
              {"num_hidden_layers", 2},
              {"num_attention_heads", 4},
              {"intermediate_size", 128},
              {"vocab_size", 512},
              {"max_position_embeddings", 256},
              {"rms_norm_eps", 1e-5},
              {"rope_theta", 10000.0},
              {"torch_dtype", "float32"}};
}

void ExpectError(const Json& json, const std::string& field) {
  absl::StatusOr<ModelConfig> config = Parse(json);
  ASSERT_FALSE(config.ok()) << json.dump();
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("config.json"));
  EXPECT_THAT(config.status().message(), HasSubstr("'" + field + "'"));
}

TEST(ModelConfigTest, ParsesLlama31WithLlama3RopeScaling) {
  absl::StatusOr<ModelConfig> config = Parse(FixtureConfig("llama31_8b.json"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, Architecture::kLlama);
  EXPECT_EQ(config->hidden_size, 4096);
  EXPECT_EQ(config->num_hidden_layers, 32);
  EXPECT_EQ(config->num_attention_heads, 32);
  EXPECT_EQ(config->num_key_value_heads, 8);
  EXPECT_EQ(config->head_dim, 128);
  EXPECT_EQ(config->intermediate_size, 14336);
  EXPECT_EQ(config->vocab_size, 128256);
  EXPECT_EQ(config->max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(config->rope_theta, 500000.0);
  EXPECT_EQ(config->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_DOUBLE_EQ(config->rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(config->rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(config->rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(config->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_FALSE(config->attention_bias);
  EXPECT_FALSE(config->sliding_window.has_value());
  EXPECT_EQ(config->torch_dtype, DType::kBF16);
  EXPECT_EQ(config->bos_token_id, 128000);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(128001, 128008, 128009));
  EXPECT_EQ(config->q_size(), 4096);
  EXPECT_EQ(config->kv_size(), 1024);
}

TEST(ModelConfigTest, ParsesMistralNemoWithExplicitHeadDim) {
  absl::StatusOr<ModelConfig> config = Parse(FixtureConfig("mistral_nemo.json"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, Architecture::kMistral);
  EXPECT_EQ(config->hidden_size, 5120);
  EXPECT_EQ(config->head_dim, 128);  // not 5120 / 32
  EXPECT_EQ(config->q_size(), 4096);
  EXPECT_EQ(config->kv_size(), 1024);
  EXPECT_DOUBLE_EQ(config->rope_theta, 1e6);
  EXPECT_EQ(config->rope_scaling.type, RopeScalingType::kNone);
  EXPECT_FALSE(config->sliding_window.has_value());  // "sliding_window": null
  EXPECT_EQ(config->max_position_embeddings, 1024000);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(2));
}

TEST(ModelConfigTest, ParsesQwen25WithAttentionBiasAndNoSlidingWindow) {
  absl::StatusOr<ModelConfig> config = Parse(FixtureConfig("qwen25_7b.json"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, Architecture::kQwen2);
  EXPECT_EQ(config->num_attention_heads, 28);
  EXPECT_EQ(config->num_key_value_heads, 4);
  EXPECT_EQ(config->head_dim, 128);
  EXPECT_EQ(config->vocab_size, 152064);
  EXPECT_TRUE(config->attention_bias);
  // use_sliding_window is false, so sliding_window 131072 does not apply.
  EXPECT_FALSE(config->sliding_window.has_value());
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-6);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(151645));
}

TEST(ModelConfigTest, ParsesQwen25SmallWithTiedEmbeddings) {
  absl::StatusOr<ModelConfig> config = Parse(FixtureConfig("qwen25_05b.json"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_EQ(config->head_dim, 64);
  EXPECT_EQ(config->num_key_value_heads, 2);
}

TEST(ModelConfigTest, ReadsLegacyRopeThetaRopeScalingAndTorchDtype) {
  Json json = MinimalLlama();
  json["rope_theta"] = 250000.0;
  json["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  json["torch_dtype"] = "float16";
  absl::StatusOr<ModelConfig> config = Parse(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_DOUBLE_EQ(config->rope_theta, 250000.0);
  EXPECT_EQ(config->rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_DOUBLE_EQ(config->rope_scaling.factor, 2.0);
  EXPECT_EQ(config->torch_dtype, DType::kF16);
}

TEST(ModelConfigTest, ReadsLlama3RopeScalingUnderLegacyKeyWithRopeType) {
  Json json = MinimalLlama();
  json["max_position_embeddings"] = 131072;
  json["rope_scaling"] = {{"rope_type", "llama3"},
                          {"factor", 32.0},
                          {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}};
  absl::StatusOr<ModelConfig> config = Parse(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_DOUBLE_EQ(config->rope_scaling.factor, 32.0);
  EXPECT_EQ(config->rope_scaling.original_max_position_embeddings, 8192);
}

TEST(ModelConfigTest, NullRopeScalingMeansNone) {
  Json json = MinimalLlama();
  json["rope_scaling"] = nullptr;
  absl::StatusOr<ModelConfig> config = Parse(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->rope_scaling.type, RopeScalingType::kNone);
}

TEST(ModelConfigTest, KvHeadsDefaultToHeadsAndHeadDimToHiddenOverHeads) {
  absl::StatusOr<ModelConfig> config = Parse(MinimalLlama());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_key_value_heads, 4);
  EXPECT_EQ(config->head_dim, 16);
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_FALSE(config->bos_token_id.has_value());
  EXPECT_TRUE(config->eos_token_ids.empty());
}

// Expected values from transformers' config classes (kv_head_defaults.json).
TEST(ModelConfigTest, KvHeadsDefaultPerArchitectureAsTransformersDoes) {
  const Json cases = FixtureConfig("kv_head_defaults.json");
  ASSERT_EQ(cases.size(), 4u);
  for (const Json& test_case : cases) {
    const Json& json = test_case.at("config");
    ASSERT_FALSE(json.contains("num_key_value_heads"));
    absl::StatusOr<ModelConfig> config = Parse(json);
    ASSERT_TRUE(config.ok()) << config.status() << "\n" << json.dump();
    EXPECT_EQ(config->num_key_value_heads, test_case.at("num_key_value_heads").get<int64_t>())
        << json.dump();
  }
}

TEST(ModelConfigTest, OversizedDimensionsAreRejectedNamingTheField) {
  const std::pair<const char*, int64_t> limits[] = {
      {"hidden_size", kMaxConfigDim},        {"num_hidden_layers", kMaxNumLayers},
      {"num_attention_heads", kMaxNumHeads}, {"num_key_value_heads", kMaxNumHeads},
      {"head_dim", kMaxConfigDim},           {"intermediate_size", kMaxConfigDim},
      {"vocab_size", kMaxVocabSize},         {"max_position_embeddings", kMaxPositions},
  };
  absl::StatusOr<ModelConfig> valid = Parse(MinimalLlama());
  ASSERT_TRUE(valid.ok()) << valid.status();
  for (const auto& [field, limit] : limits) {
    for (int64_t value : {limit + 1, int64_t{1} << 40, std::numeric_limits<int64_t>::max()}) {
      ModelConfig config = *valid;
      const std::map<std::string, int64_t*> fields = {
          {"hidden_size", &config.hidden_size},
          {"num_hidden_layers", &config.num_hidden_layers},
          {"num_attention_heads", &config.num_attention_heads},
          {"num_key_value_heads", &config.num_key_value_heads},
          {"head_dim", &config.head_dim},
          {"intermediate_size", &config.intermediate_size},
          {"vocab_size", &config.vocab_size},
          {"max_position_embeddings", &config.max_position_embeddings},
      };
      *fields.at(field) = value;
      absl::Status status = config.Validate();
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field << " " << value;
      EXPECT_THAT(status.message(),
                  HasSubstr(std::string(field) + " must be at most " + std::to_string(limit)));
    }
  }
  // Through the parser, the error also names the file.
  Json json = MinimalLlama();
  json["vocab_size"] = int64_t{1} << 40;
  absl::StatusOr<ModelConfig> parsed = Parse(json);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("config.json"));
  EXPECT_THAT(parsed.status().message(), HasSubstr("vocab_size must be at most 16777216"));
}

TEST(ModelConfigTest, ProjectionSizesAreBoundedAndLimitsThemselvesAreAccepted) {
  absl::StatusOr<ModelConfig> valid = Parse(MinimalLlama());
  ASSERT_TRUE(valid.ok()) << valid.status();
  // 1024 heads x head_dim 2048 = 2^21 query features: each factor within its
  // bound, the product not.
  ModelConfig config = *valid;
  config.num_attention_heads = 1024;
  config.num_key_value_heads = 1;
  config.head_dim = 2048;
  EXPECT_THAT(config.Validate().message(),
              HasSubstr("num_attention_heads (1024) x head_dim (2048) must be at most 1048576"));

  config = *valid;
  config.vocab_size = kMaxVocabSize;
  config.max_position_embeddings = kMaxPositions;
  config.num_hidden_layers = kMaxNumLayers;
  config.num_attention_heads = 1024;
  config.num_key_value_heads = 1024;
  config.head_dim = 1024;
  config.hidden_size = kMaxConfigDim;
  config.intermediate_size = kMaxConfigDim;
  EXPECT_TRUE(config.Validate().ok()) << config.Validate();
  EXPECT_EQ(config.q_size(), kMaxConfigDim);
  EXPECT_EQ(config.kv_size(), kMaxConfigDim);

  config.sliding_window = kMaxPositions + 1;
  EXPECT_THAT(config.Validate().message(), HasSubstr("sliding_window"));
}

TEST(ModelConfigTest, ArchitectureFallsBackToModelType) {
  Json json = MinimalLlama();
  json.erase("architectures");
  json["model_type"] = "mistral";
  json["num_key_value_heads"] = 4;  // MistralConfig's default, 8, does not divide 4 heads
  absl::StatusOr<ModelConfig> config = Parse(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, Architecture::kMistral);
  // MistralConfig's default when the key is absent.
  EXPECT_EQ(config->sliding_window, 4096);
}

TEST(ModelConfigTest, MistralSlidingWindowIsRead) {
  Json json = MinimalLlama();
  json["architectures"] = {"MistralForCausalLM"};
  json["num_key_value_heads"] = 4;
  json["sliding_window"] = 32;
  absl::StatusOr<ModelConfig> config = Parse(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sliding_window, 32);
}

TEST(ModelConfigTest, Qwen2SlidingWindowOnEveryLayerIsRead) {
  Json json = MinimalLlama();
  json["architectures"] = {"Qwen2ForCausalLM"};
  json["num_key_value_heads"] = 4;  // Qwen2Config's default, 32, does not divide 4 heads
  json["use_sliding_window"] = true;
  json["sliding_window"] = 64;
  json["max_window_layers"] = 0;
  absl::StatusOr<ModelConfig> config = Parse(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sliding_window, 64);
  EXPECT_TRUE(config->attention_bias);
}

TEST(ModelConfigTest, Qwen2SlidingWindowBeyondLastLayerIsFullAttention) {
  Json json = MinimalLlama();
  json["architectures"] = {"Qwen2ForCausalLM"};
  json["num_key_value_heads"] = 4;  // Qwen2Config's default, 32, does not divide 4 heads
  json["use_sliding_window"] = true;
  json["sliding_window"] = 64;
  json["max_window_layers"] = 2;  // == num_hidden_layers: no layer slides
  absl::StatusOr<ModelConfig> config = Parse(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->sliding_window.has_value());
}

TEST(ModelConfigTest, Qwen2MixOfSlidingAndFullLayersIsRejected) {
  Json json = MinimalLlama();
  json["architectures"] = {"Qwen2ForCausalLM"};
  json["num_key_value_heads"] = 4;  // Qwen2Config's default, 32, does not divide 4 heads
  json["use_sliding_window"] = true;
  json["sliding_window"] = 64;
  json["layer_types"] = {"full_attention", "sliding_attention"};
  ExpectError(json, "use_sliding_window");
}

TEST(ModelConfigTest, EosTokenIdMayBeAnInteger) {
  Json json = MinimalLlama();
  json["bos_token_id"] = 1;
  json["eos_token_id"] = 2;
  absl::StatusOr<ModelConfig> config = Parse(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->bos_token_id, 1);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(2));
}

TEST(ModelConfigTest, DtypeKeyTakesPrecedenceOverTorchDtype) {
  Json json = MinimalLlama();
  json["dtype"] = "bfloat16";
  absl::StatusOr<ModelConfig> config = Parse(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->torch_dtype, DType::kBF16);
}

TEST(ModelConfigTest, MissingFieldNamesFileAndField) {
  for (const char* field : {"hidden_size", "num_hidden_layers", "num_attention_heads",
                            "intermediate_size", "vocab_size"}) {
    Json json = MinimalLlama();
    json.erase(field);
    ExpectError(json, field);
    absl::StatusOr<ModelConfig> config = Parse(json);
    EXPECT_THAT(config.status().message(), HasSubstr("missing"));
  }
}

TEST(ModelConfigTest, IllTypedFieldNamesFieldAndType) {
  Json json = MinimalLlama();
  json["hidden_size"] = "64";
  ExpectError(json, "hidden_size");
  EXPECT_THAT(Parse(json).status().message(), HasSubstr("must be an integer, found string"));

  json = MinimalLlama();
  json["rms_norm_eps"] = "1e-5";
  ExpectError(json, "rms_norm_eps");

  json = MinimalLlama();
  json["tie_word_embeddings"] = 1;
  ExpectError(json, "tie_word_embeddings");

  json = MinimalLlama();
  json["eos_token_id"] = {1, "two"};
  ExpectError(json, "eos_token_id");

  json = MinimalLlama();
  json["num_hidden_layers"] = 2.5;
  ExpectError(json, "num_hidden_layers");

  json = MinimalLlama();
  json["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", "1e4"}};
  ExpectError(json, "rope_parameters.rope_theta");

  json = MinimalLlama();
  json["rope_scaling"] = "linear";
  ExpectError(json, "rope_scaling");

  json = MinimalLlama();
  json["architectures"] = "LlamaForCausalLM";
  ExpectError(json, "architectures");
}

TEST(ModelConfigTest, UnknownArchitectureIsAnError) {
  Json json = MinimalLlama();
  json["architectures"] = {"GPT2LMHeadModel"};
  ExpectError(json, "architectures");
  EXPECT_THAT(Parse(json).status().message(), HasSubstr("GPT2LMHeadModel"));

  json.erase("architectures");
  json["model_type"] = "gpt2";
  ExpectError(json, "model_type");

  json.erase("model_type");
  ExpectError(json, "architectures");
}

TEST(ModelConfigTest, UnsupportedRopeScalingTypesNameTheField) {
  for (const char* type : {"yarn", "dynamic", "longrope"}) {
    Json json = MinimalLlama();
    json["rope_scaling"] = {{"rope_type", type}, {"factor", 4.0}};
    ExpectError(json, "rope_scaling.rope_type");
    EXPECT_THAT(Parse(json).status().message(), HasSubstr(type));
  }
  Json json = MinimalLlama();
  json["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 1e4}, {"factor", 4.0}};
  ExpectError(json, "rope_parameters.rope_type");
  json = MinimalLlama();
  json["rope_scaling"] = {{"type", "dynamic"}, {"factor", 4.0}};
  ExpectError(json, "rope_scaling.type");
}

TEST(ModelConfigTest, Llama3RopeScalingWithoutItsFieldsNamesTheField) {
  Json json = MinimalLlama();
  json["rope_scaling"] = {{"rope_type", "llama3"},
                          {"factor", 8.0},
                          {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0}};
  ExpectError(json, "rope_scaling.original_max_position_embeddings");
  json = MinimalLlama();
  json["rope_scaling"] = {{"type", "linear"}};
  ExpectError(json, "rope_scaling.factor");
}

TEST(ModelConfigTest, MlpBiasIsUnsupported) {
  Json json = MinimalLlama();
  json["mlp_bias"] = true;
  ExpectError(json, "mlp_bias");
}

TEST(ModelConfigTest, LlamaAttentionBiasIsUnsupportedBecauseOfOProjBias) {
  Json json = MinimalLlama();
  json["attention_bias"] = true;
  ExpectError(json, "attention_bias");
  EXPECT_THAT(Parse(json).status().message(), HasSubstr("o_proj"));
}

TEST(ModelConfigTest, UnsupportedActivationIsAnError) {
  Json json = MinimalLlama();
  json["hidden_act"] = "gelu";
  ExpectError(json, "hidden_act");
}

TEST(ModelConfigTest, UnknownTorchDtypeNamesTheField) {
  Json json = MinimalLlama();
  json["torch_dtype"] = "float8_e4m3fn";
  ExpectError(json, "torch_dtype");
}

TEST(ModelConfigTest, HeadDimCannotBeDerivedFromIndivisibleHiddenSize) {
  Json json = MinimalLlama();
  json["num_attention_heads"] = 5;
  json["num_key_value_heads"] = 5;
  ExpectError(json, "head_dim");
}

TEST(ModelConfigTest, InconsistentSizesFailValidation) {
  Json json = MinimalLlama();
  json["num_key_value_heads"] = 3;  // 4 heads are not a multiple of 3
  absl::StatusOr<ModelConfig> config = Parse(json);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("num_key_value_heads"));
  EXPECT_THAT(config.status().message(), HasSubstr("config.json"));

  json = MinimalLlama();
  json["eos_token_id"] = 512;  // == vocab_size
  config = Parse(json);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("eos_token_id 512"));

  json = MinimalLlama();
  json["vocab_size"] = 0;
  config = Parse(json);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("vocab_size"));
}

TEST(ModelConfigTest, ValidateAcceptsAConsistentConfigAndRejectsOddHeadDim) {
  absl::StatusOr<ModelConfig> config = Parse(MinimalLlama());
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(config->Validate().ok());
  ModelConfig odd = *config;
  odd.head_dim = 15;
  EXPECT_THAT(odd.Validate().message(), HasSubstr("head_dim"));
}

TEST(ModelConfigTest, InvalidJsonIsAnError) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig("{\"hidden_size\": ", "my/config.json");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("my/config.json"));
  EXPECT_FALSE(ParseModelConfig("[1, 2]").ok());
}

TEST(ModelConfigTest, LoadModelConfigReadsTheFileAndNamesItInErrors) {
  testing::TempDir dir;
  absl::StatusOr<ModelConfig> missing = LoadModelConfig(dir.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("config.json"));

  Json json = MinimalLlama();
  json.erase("vocab_size");
  {
    std::ofstream out(dir.path() / "config.json");
    out << json.dump(2);
  }
  absl::StatusOr<ModelConfig> broken = LoadModelConfig(dir.path());
  ASSERT_FALSE(broken.ok());
  EXPECT_THAT(broken.status().message(), HasSubstr((dir.path() / "config.json").string()));
  EXPECT_THAT(broken.status().message(), HasSubstr("'vocab_size'"));
}

TEST(ModelConfigTest, ConfigJsonThatIsADirectoryIsInvalidArgumentNamingIt) {
  testing::TempDir dir;
  std::filesystem::create_directory(dir.path() / "config.json");
  absl::StatusOr<ModelConfig> config = LoadModelConfig(dir.path());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr((dir.path() / "config.json").string()));
}

TEST(ModelConfigTest, ArchitectureNames) {
  EXPECT_EQ(ArchitectureName(Architecture::kLlama), "LlamaForCausalLM");
  EXPECT_EQ(ArchitectureName(Architecture::kMistral), "MistralForCausalLM");
  EXPECT_EQ(ArchitectureName(Architecture::kQwen2), "Qwen2ForCausalLM");
}

// ---- ParseTokenIdList ---------------------------------------------------------------

TEST(ParseTokenIdListTest, AcceptsAnIntegerAListOrNull) {
  absl::StatusOr<std::vector<int64_t>> ids = ParseTokenIdList(Json(7), "g.json", "eos_token_id");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(7));
  ids = ParseTokenIdList(Json::parse("[128001, 128008, 128009]"), "g.json", "eos_token_id");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(128001, 128008, 128009));
  ids = ParseTokenIdList(Json(nullptr), "g.json", "eos_token_id");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_TRUE(ids->empty());
  ids = ParseTokenIdList(Json::array(), "g.json", "eos_token_id");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_TRUE(ids->empty());
}

TEST(ParseTokenIdListTest, OtherTypesNameFileFieldAndType) {
  absl::StatusOr<std::vector<int64_t>> ids =
      ParseTokenIdList(Json("2"), "generation_config.json", "eos_token_id");
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ids.status().message(),
            "generation_config.json: field 'eos_token_id' must be an integer or a list of "
            "integers, found string");
  ids = ParseTokenIdList(Json::parse("[1, 2.5]"), "generation_config.json", "eos_token_id");
  ASSERT_FALSE(ids.ok());
  EXPECT_THAT(ids.status().message(), HasSubstr("found a list holding number"));
  ids = ParseTokenIdList(Json::parse("[[1]]"), "generation_config.json", "eos_token_id");
  EXPECT_FALSE(ids.ok());
}

TEST(ParseTokenIdListTest, IdsOutsideInt32TokenRangeAreRejected) {
  for (const char* text : {"-1", "[1, -5]", "2147483648", "18446744073709551615"}) {
    absl::StatusOr<std::vector<int64_t>> ids =
        ParseTokenIdList(Json::parse(text), "g.json", "pad_token_id");
    ASSERT_FALSE(ids.ok()) << text;
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(ids.status().message(), HasSubstr("g.json: field 'pad_token_id' holds token id"));
  }
  absl::StatusOr<std::vector<int64_t>> ids =
      ParseTokenIdList(Json::parse("2147483647"), "g.json", "pad_token_id");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(2147483647));
}

// ---- ReadFileToString -----------------------------------------------------------

TEST(ReadFileToStringTest, ReadsTheWholeFileIncludingNulBytes) {
  testing::TempDir dir;
  const auto path = dir.path() / "data.bin";
  std::string content(200000, 'x');
  content[5] = '\0';
  std::ofstream(path, std::ios::binary) << content;
  absl::StatusOr<std::string> text = ReadFileToString(path);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, content);
  std::ofstream(dir.path() / "empty.txt");
  text = ReadFileToString(dir.path() / "empty.txt");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "");
}

TEST(ReadFileToStringTest, MissingFileIsNotFoundNamingThePath) {
  testing::TempDir dir;
  for (const auto& path : {dir.path() / "absent.json", dir.path() / "no_dir" / "absent.json"}) {
    absl::StatusOr<std::string> text = ReadFileToString(path);
    ASSERT_FALSE(text.ok());
    EXPECT_EQ(text.status().code(), absl::StatusCode::kNotFound);
    EXPECT_THAT(text.status().message(), HasSubstr(path.string()));
  }
}

TEST(ReadFileToStringTest, DirectoryOrFifoIsInvalidArgumentWithoutBlocking) {
  testing::TempDir dir;
  absl::StatusOr<std::string> text = ReadFileToString(dir.path());
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(text.status().message(), HasSubstr(dir.path().string()));
  EXPECT_THAT(text.status().message(), HasSubstr("is a directory"));

  const auto fifo = dir.path() / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  text = ReadFileToString(fifo);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(text.status().message(), HasSubstr("not a regular file"));
}

}  // namespace
}  // namespace muserve
