#include "engine/model/make_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/model/safetensors_writer.h"
#include "engine/tokenizer/demo_chat_template.h"
#include "engine/tokenizer/demo_tokenizer.h"
#include "nlohmann/json.hpp"

namespace muserve {
namespace {

using Json = nlohmann::json;

// The transformers release whose config.json layout make-model reproduces
// (tests/fixtures/configs/make_model_tiny_expected.json was saved by it).
constexpr char kTransformersVersion[] = "5.24.0";
constexpr char kBosToken[] = "<|begin_of_text|>";
constexpr char kEndOfTextToken[] = "<|end_of_text|>";
constexpr char kEotToken[] = "<|eot_id|>";
// transformers' LlamaConfig.initializer_range: std of the random matrices.
constexpr double kInitializerRange = 0.02;

// ---- deterministic weights ---------------------------------------------------
// Every element is a pure function of (seed, tensor name, index), computed with
// integer arithmetic and one IEEE multiply, so files are identical on every
// platform and tensors can be generated in any order.

uint64_t Mix64(uint64_t z) {  // splitmix64's finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a(std::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (char c : text) hash = (hash ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return hash;
}

// Approximately normal(0, kInitializerRange): the sum of four 16-bit uniforms
// (Irwin-Hall, variance 4/12 of 2^32) centred and scaled; bounded at ±3.46 std.
class NormalStream {
 public:
  NormalStream(uint64_t seed, std::string_view tensor_name)
      : key_(Mix64(seed ^ Mix64(Fnv1a(tensor_name)))) {}

  float At(uint64_t index) const {
    const uint64_t bits = Mix64(key_ + (index + 1) * 0x9e3779b97f4a7c15ull);
    const int64_t sum = static_cast<int64_t>((bits & 0xffff) + ((bits >> 16) & 0xffff) +
                                             ((bits >> 32) & 0xffff) + (bits >> 48));
    const int64_t centred_twice = 2 * sum - 4 * 65535;  // even integers in [-262140, 262140]
    // std of sum = 65536 * sqrt(1/3): scale = 0.02 / (2 * 65536 * sqrt(1/3)).
    static const double kScale = kInitializerRange * std::sqrt(3.0) / (2.0 * 65536.0);
    return static_cast<float>(static_cast<double>(centred_twice) * kScale);
  }

 private:
  uint64_t key_;
};

void StoreElement(DType dtype, float value, std::byte* out) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(out, &value, 4);
      return;
    case DType::kF16: {
      const uint16_t bits = F32ToF16(value);
      std::memcpy(out, &bits, 2);
      return;
    }
    case DType::kBF16: {
      const uint16_t bits = F32ToBf16(value);
      std::memcpy(out, &bits, 2);
      return;
    }
  }
}

bool IsNormWeight(std::string_view name) { return name.ends_with("norm.weight"); }

absl::Status FillTensor(uint64_t seed, const TensorSpec& spec, std::span<std::byte> out) {
  const size_t element_bytes = DTypeSize(spec.dtype);
  const size_t count = out.size() / element_bytes;
  if (IsNormWeight(spec.name)) {  // RMSNorm weights start at 1, as in HF's init
    for (size_t i = 0; i < count; ++i)
      StoreElement(spec.dtype, 1.0f, out.data() + i * element_bytes);
    return absl::OkStatus();
  }
  const NormalStream stream(seed, spec.name);
  for (size_t i = 0; i < count; ++i) {
    StoreElement(spec.dtype, stream.At(i), out.data() + i * element_bytes);
  }
  return absl::OkStatus();
}

std::vector<TensorSpec> TensorSpecs(const ModelConfig& config) {
  const DType dtype = config.torch_dtype;
  const int64_t h = config.hidden_size, q = config.q_size(), kv = config.kv_size();
  const int64_t inter = config.intermediate_size;
  std::vector<TensorSpec> specs = {{"model.embed_tokens.weight", dtype, {config.vocab_size, h}}};
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    specs.push_back({p + "input_layernorm.weight", dtype, {h}});
    specs.push_back({p + "self_attn.q_proj.weight", dtype, {q, h}});
    specs.push_back({p + "self_attn.k_proj.weight", dtype, {kv, h}});
    specs.push_back({p + "self_attn.v_proj.weight", dtype, {kv, h}});
    specs.push_back({p + "self_attn.o_proj.weight", dtype, {h, q}});
    specs.push_back({p + "post_attention_layernorm.weight", dtype, {h}});
    specs.push_back({p + "mlp.gate_proj.weight", dtype, {inter, h}});
    specs.push_back({p + "mlp.up_proj.weight", dtype, {inter, h}});
    specs.push_back({p + "mlp.down_proj.weight", dtype, {h, inter}});
  }
  specs.push_back({"model.norm.weight", dtype, {h}});
  if (!config.tie_word_embeddings)
    specs.push_back({"lm_head.weight", dtype, {config.vocab_size, h}});
  return specs;
}

// ---- tokenizer and JSON files ------------------------------------------------

struct SpecialTokens {
  Json added_tokens_decoder = Json::object();  // tokenizer_config.json's view of them
  int64_t bos_id = 0;
  int64_t end_of_text_id = 0;
  int64_t eot_id = 0;
  int64_t vocab_size = 0;  // one past the largest id in tokenizer.json
};

bool BoolField(const Json& object, const char* key, bool fallback) {
  auto it = object.find(key);
  return it != object.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

absl::StatusOr<SpecialTokens> ReadSpecialTokens(const std::string& tokenizer_json) {
  const Json tokenizer = Json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (tokenizer.is_discarded() || !tokenizer.is_object()) {
    return absl::InternalError("the demo tokenizer is not valid JSON");
  }
  SpecialTokens tokens;
  auto model = tokenizer.find("model");
  if (model != tokenizer.end() && model->is_object()) {
    auto vocab = model->find("vocab");
    if (vocab != model->end() && vocab->is_object()) {
      for (const auto& [token, id] : vocab->items()) {
        if (id.is_number_integer()) {
          tokens.vocab_size = std::max(tokens.vocab_size, id.get<int64_t>() + 1);
        }
      }
    }
  }
  std::map<std::string, int64_t> ids;
  auto added_tokens = tokenizer.find("added_tokens");
  if (added_tokens == tokenizer.end() || !added_tokens->is_array()) {
    return absl::InternalError("the demo tokenizer has no added_tokens list");
  }
  for (const Json& added : *added_tokens) {
    if (!added.is_object() || !added.contains("id") || !added["id"].is_number_integer() ||
        !added.contains("content") || !added["content"].is_string()) {
      return absl::InternalError("the demo tokenizer has a malformed added token");
    }
    const int64_t id = added["id"].get<int64_t>();
    const std::string content = added["content"].get<std::string>();
    ids[content] = id;
    tokens.vocab_size = std::max(tokens.vocab_size, id + 1);
    tokens.added_tokens_decoder[std::to_string(id)] = {
        {"content", content},
        {"lstrip", BoolField(added, "lstrip", false)},
        {"normalized", BoolField(added, "normalized", false)},
        {"rstrip", BoolField(added, "rstrip", false)},
        {"single_word", BoolField(added, "single_word", false)},
        {"special", BoolField(added, "special", true)}};
  }
  for (const char* name : {kBosToken, kEndOfTextToken, kEotToken}) {
    if (!ids.contains(name)) {
      return absl::InternalError(absl::StrCat("the demo tokenizer lacks the special token ", name));
    }
  }
  tokens.bos_id = ids[kBosToken];
  tokens.end_of_text_id = ids[kEndOfTextToken];
  tokens.eot_id = ids[kEotToken];
  return tokens;
}

// config.json with the keys, in the order, transformers' LlamaConfig writes.
Json ConfigJson(const ModelConfig& config) {
  const std::string dtype = config.torch_dtype == DType::kBF16  ? "bfloat16"
                            : config.torch_dtype == DType::kF16 ? "float16"
                                                                : "float32";
  Json eos = Json::array();
  for (int64_t id : config.eos_token_ids) eos.push_back(id);
  return Json{{"architectures", {std::string(ArchitectureName(config.architecture))}},
              {"attention_bias", false},
              {"attention_dropout", 0.0},
              {"bos_token_id", config.bos_token_id.value_or(0)},
              {"dtype", dtype},
              {"eos_token_id", eos},
              {"head_dim", config.head_dim},
              {"hidden_act", "silu"},
              {"hidden_size", config.hidden_size},
              {"initializer_range", kInitializerRange},
              {"intermediate_size", config.intermediate_size},
              {"max_position_embeddings", config.max_position_embeddings},
              {"mlp_bias", false},
              {"model_type", "llama"},
              {"num_attention_heads", config.num_attention_heads},
              {"num_hidden_layers", config.num_hidden_layers},
              {"num_key_value_heads", config.num_key_value_heads},
              {"pad_token_id", nullptr},
              {"pretraining_tp", 1},
              {"rms_norm_eps", config.rms_norm_eps},
              {"rope_parameters", {{"rope_theta", config.rope_theta}, {"rope_type", "default"}}},
              {"tie_word_embeddings", config.tie_word_embeddings},
              {"transformers_version", kTransformersVersion},
              {"use_cache", true},
              {"vocab_size", config.vocab_size}};
}

// tokenizer_config.json as a Llama 3 Instruct checkpoint has it.
Json TokenizerConfigJson(const ModelConfig& config, const SpecialTokens& tokens) {
  return Json{{"add_bos_token", true},
              {"add_eos_token", false},
              {"added_tokens_decoder", tokens.added_tokens_decoder},
              {"bos_token", kBosToken},
              {"chat_template", std::string(kDemoChatTemplate)},
              {"clean_up_tokenization_spaces", false},
              {"eos_token", kEotToken},
              {"model_input_names", {"input_ids", "attention_mask"}},
              {"model_max_length", config.max_position_embeddings},
              {"tokenizer_class", "PreTrainedTokenizerFast"}};
}

Json GenerationConfigJson(const ModelConfig& config) {
  Json eos = Json::array();
  for (int64_t id : config.eos_token_ids) eos.push_back(id);
  return Json{{"bos_token_id", config.bos_token_id.value_or(0)},
              {"eos_token_id", eos},
              {"transformers_version", kTransformersVersion}};
}

// Writes `text` to `path` through a temporary file and a rename, so that a
// reader never sees a half-written file.
absl::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) return absl::InternalError(absl::StrCat(tmp.string(), ": write failed"));
  }
  std::error_code error;
  std::filesystem::rename(tmp, path, error);
  if (error) return absl::InternalError(absl::StrCat(path.string(), ": ", error.message()));
  return absl::OkStatus();
}

absl::Status WriteJson(const std::filesystem::path& path, const Json& json) {
  return WriteFileAtomically(path, json.dump(2) + "\n");
}

}  // namespace

absl::StatusOr<ModelPreset> ParseModelPreset(std::string_view name) {
  if (name == "tiny") return ModelPreset::kTiny;
  if (name == "small") return ModelPreset::kSmall;
  if (name == "1b") return ModelPreset::k1b;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown model preset '", std::string(name), "' (presets: tiny, small, 1b)"));
}

ModelConfig PresetConfig(ModelPreset preset, DType dtype) {
  ModelConfig config;
  config.architecture = Architecture::kLlama;
  config.rms_norm_eps = 1e-5;
  config.rope_theta = 10000.0;
  config.tie_word_embeddings = false;
  config.torch_dtype = dtype;
  switch (preset) {
    case ModelPreset::kTiny:
      config.hidden_size = 64;
      config.num_hidden_layers = 2;
      config.num_attention_heads = 4;
      config.num_key_value_heads = 2;
      config.intermediate_size = 128;
      config.vocab_size = 512;
      config.max_position_embeddings = 2048;
      break;
    case ModelPreset::kSmall:
      config.hidden_size = 256;
      config.num_hidden_layers = 4;
      config.num_attention_heads = 8;
      config.num_key_value_heads = 2;
      config.intermediate_size = 688;
      config.vocab_size = 2048;
      config.max_position_embeddings = 4096;
      break;
    case ModelPreset::k1b:  // TinyLlama/TinyLlama-1.1B-Chat-v1.0
      config.hidden_size = 2048;
      config.num_hidden_layers = 22;
      config.num_attention_heads = 32;
      config.num_key_value_heads = 4;
      config.intermediate_size = 5632;
      config.vocab_size = 32000;
      config.max_position_embeddings = 2048;
      break;
  }
  config.head_dim = config.hidden_size / config.num_attention_heads;
  return config;
}

absl::Status MakeModel(const MakeModelOptions& options) {
  if (options.out_dir.empty()) return absl::InvalidArgumentError("make-model: no output directory");
  ModelConfig config = PresetConfig(options.preset, options.dtype);

  // The tokenizer decides the special-token ids that config.json names.
  const std::string tokenizer_json =
      MakeDemoTokenizerJson(DemoTokenizerSpec{static_cast<int32_t>(config.vocab_size)});
  absl::StatusOr<SpecialTokens> tokens = ReadSpecialTokens(tokenizer_json);
  if (!tokens.ok()) return tokens.status();
  if (tokens->vocab_size > config.vocab_size) {
    return absl::InternalError(absl::StrCat("the demo tokenizer has ", tokens->vocab_size,
                                            " tokens, more than the model's vocab_size ",
                                            config.vocab_size));
  }
  config.bos_token_id = tokens->bos_id;
  config.eos_token_ids = {tokens->end_of_text_id, tokens->eot_id};
  if (absl::Status s = config.Validate(); !s.ok()) return s;

  std::error_code error;
  std::filesystem::create_directories(options.out_dir, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.out_dir.string(), ": cannot create directory: ", error.message()));
  }
  const std::filesystem::path& dir = options.out_dir;
  // Weights first, through a temporary name: a directory whose config.json
  // exists has complete weights.
  const std::filesystem::path weights_tmp = dir / "model.safetensors.tmp";
  const uint64_t seed = options.seed;
  absl::Status status = WriteSafetensors(weights_tmp, TensorSpecs(config),
                                         [seed](const TensorSpec& spec, std::span<std::byte> out) {
                                           return FillTensor(seed, spec, out);
                                         });
  if (!status.ok()) return status;
  std::filesystem::rename(weights_tmp, dir / "model.safetensors", error);
  if (error) return absl::InternalError(absl::StrCat(dir.string(), ": ", error.message()));

  if (absl::Status s = WriteFileAtomically(dir / "tokenizer.json", tokenizer_json); !s.ok())
    return s;
  if (absl::Status s =
          WriteJson(dir / "tokenizer_config.json", TokenizerConfigJson(config, *tokens));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteJson(dir / "generation_config.json", GenerationConfigJson(config));
      !s.ok()) {
    return s;
  }
  return WriteJson(dir / "config.json", ConfigJson(config));
}

}  // namespace muserve
