#include "engine/api/model_config.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/api/absl_string_view.h"
#include "engine/api/file_util.h"
#include "nlohmann/json.hpp"

namespace muserve {
namespace {

using Json = nlohmann::json;

std::string JsonTypeName(const Json& value) {
  if (value.is_number_integer()) return "integer";
  if (value.is_number_float()) return "number";
  return value.type_name();
}

// Reads typed fields of one JSON object; every error names the file and the
// field path ("config.json: field 'rope_scaling.factor' must be a number").
class FieldReader {
 public:
  FieldReader(const Json& object, std::string_view file_name, std::string prefix = "")
      : object_(object), file_name_(file_name), prefix_(std::move(prefix)) {}

  // A present, non-null field.
  bool Has(std::string_view key) const {
    auto it = object_.find(key);
    return it != object_.end() && !it->is_null();
  }

  absl::Status Error(std::string_view key, std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(file_name_), ": field '", prefix_, AsAbsl(key), "' ", AsAbsl(what)));
  }

  absl::Status TypeError(std::string_view key, std::string_view expected) const {
    return Error(key, absl::StrCat("must be ", AsAbsl(expected), ", found ",
                                   JsonTypeName(object_.at(std::string(key)))));
  }

  absl::StatusOr<int64_t> Int(std::string_view key) const {
    if (!Has(key)) return Error(key, "is missing");
    const Json& value = object_.at(std::string(key));
    if (!value.is_number_integer()) return TypeError(key, "an integer");
    return value.get<int64_t>();
  }

  absl::StatusOr<int64_t> IntOr(std::string_view key, int64_t fallback) const {
    if (!Has(key)) return fallback;
    return Int(key);
  }

  absl::StatusOr<std::optional<int64_t>> OptionalInt(std::string_view key) const {
    if (!Has(key)) return std::optional<int64_t>();
    absl::StatusOr<int64_t> value = Int(key);
    if (!value.ok()) return value.status();
    return std::optional<int64_t>(*value);
  }

  absl::StatusOr<double> Number(std::string_view key) const {
    if (!Has(key)) return Error(key, "is missing");
    const Json& value = object_.at(std::string(key));
    if (!value.is_number()) return TypeError(key, "a number");
    return value.get<double>();
  }

  absl::StatusOr<double> NumberOr(std::string_view key, double fallback) const {
    if (!Has(key)) return fallback;
    return Number(key);
  }

  absl::StatusOr<bool> BoolOr(std::string_view key, bool fallback) const {
    if (!Has(key)) return fallback;
    const Json& value = object_.at(std::string(key));
    if (!value.is_boolean()) return TypeError(key, "a boolean");
    return value.get<bool>();
  }

  absl::StatusOr<std::string> String(std::string_view key) const {
    if (!Has(key)) return Error(key, "is missing");
    const Json& value = object_.at(std::string(key));
    if (!value.is_string()) return TypeError(key, "a string");
    return value.get<std::string>();
  }

  // A nested object, or null when absent / null.
  absl::StatusOr<const Json*> Object(std::string_view key) const {
    if (!Has(key)) return static_cast<const Json*>(nullptr);
    const Json& value = object_.at(std::string(key));
    if (!value.is_object()) return TypeError(key, "an object");
    return &value;
  }

  const Json& object() const { return object_; }
  std::string_view file_name() const { return file_name_; }
  // The field's full name ("rope_scaling.factor"), and that as a prefix.
  std::string FieldName(std::string_view key) const { return absl::StrCat(prefix_, AsAbsl(key)); }
  std::string Path(std::string_view key) const { return absl::StrCat(FieldName(key), "."); }

 private:
  const Json& object_;
  std::string_view file_name_;
  std::string prefix_;
};

#define MUSERVE_ASSIGN_OR_RETURN_CONFIG(lhs, expr)              \
  do {                                                          \
    auto status_or_value = (expr);                              \
    if (!status_or_value.ok()) return status_or_value.status(); \
    lhs = std::move(*status_or_value);                          \
  } while (0)

absl::StatusOr<Architecture> ReadArchitecture(const FieldReader& reader) {
  static constexpr std::pair<std::string_view, Architecture> kByClass[] = {
      {"LlamaForCausalLM", Architecture::kLlama},
      {"MistralForCausalLM", Architecture::kMistral},
      {"Qwen2ForCausalLM", Architecture::kQwen2},
  };
  static constexpr std::pair<std::string_view, Architecture> kByModelType[] = {
      {"llama", Architecture::kLlama},
      {"mistral", Architecture::kMistral},
      {"qwen2", Architecture::kQwen2},
  };
  if (reader.Has("architectures")) {
    const Json& list = reader.object().at("architectures");
    if (!list.is_array()) return reader.TypeError("architectures", "a list of strings");
    std::vector<std::string> names;
    for (const Json& item : list) {
      if (!item.is_string()) return reader.TypeError("architectures", "a list of strings");
      names.push_back(item.get<std::string>());
      for (const auto& [name, arch] : kByClass) {
        if (names.back() == name) return arch;
      }
    }
    return reader.Error(
        "architectures",
        absl::StrCat("names no supported architecture: [", absl::StrJoin(names, ", "),
                     "] (supported: LlamaForCausalLM, MistralForCausalLM, "
                     "Qwen2ForCausalLM)"));
  }
  // Configs saved from a bare config class (not a model) carry only model_type.
  absl::StatusOr<std::string> model_type = reader.String("model_type");
  if (!model_type.ok()) {
    return reader.Error("architectures", "is missing (and so is 'model_type')");
  }
  for (const auto& [name, arch] : kByModelType) {
    if (*model_type == name) return arch;
  }
  return reader.Error("model_type", absl::StrCat("'", *model_type,
                                                 "' is not supported (supported: llama, mistral, "
                                                 "qwen2)"));
}

// Reads one rope-scaling object: either legacy `rope_scaling` or the newer
// `rope_parameters` (transformers >= 5), whose `rope_type` "default" means none.
absl::StatusOr<RopeScaling> ReadRopeScaling(const FieldReader& reader) {
  RopeScaling scaling;
  std::string type;
  if (reader.Has("rope_type")) {
    MUSERVE_ASSIGN_OR_RETURN_CONFIG(type, reader.String("rope_type"));
  } else if (reader.Has("type")) {
    MUSERVE_ASSIGN_OR_RETURN_CONFIG(type, reader.String("type"));
  } else {
    return reader.Error("rope_type", "is missing");
  }
  if (type == "default") return scaling;
  if (type == "linear") {
    scaling.type = RopeScalingType::kLinear;
    MUSERVE_ASSIGN_OR_RETURN_CONFIG(scaling.factor, reader.Number("factor"));
    return scaling;
  }
  if (type == "llama3") {
    scaling.type = RopeScalingType::kLlama3;
    MUSERVE_ASSIGN_OR_RETURN_CONFIG(scaling.factor, reader.Number("factor"));
    MUSERVE_ASSIGN_OR_RETURN_CONFIG(scaling.low_freq_factor, reader.Number("low_freq_factor"));
    MUSERVE_ASSIGN_OR_RETURN_CONFIG(scaling.high_freq_factor, reader.Number("high_freq_factor"));
    MUSERVE_ASSIGN_OR_RETURN_CONFIG(scaling.original_max_position_embeddings,
                                    reader.Int("original_max_position_embeddings"));
    return scaling;
  }
  return reader.Error(
      reader.Has("rope_type") ? "rope_type" : "type",
      absl::StrCat("'", type, "' is not supported (supported: default, linear, llama3)"));
}

absl::Status ReadRope(const FieldReader& reader, ModelConfig& config) {
  const Json* parameters = nullptr;
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(parameters, reader.Object("rope_parameters"));
  const Json* legacy = nullptr;
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(legacy, reader.Object("rope_scaling"));
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.rope_theta, reader.NumberOr("rope_theta", 10000.0));
  if (parameters != nullptr) {
    // transformers >= 5 writes rope_theta inside rope_parameters.
    FieldReader nested(*parameters, reader.file_name(), reader.Path("rope_parameters"));
    MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.rope_theta,
                                    nested.NumberOr("rope_theta", config.rope_theta));
    MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.rope_scaling, ReadRopeScaling(nested));
  } else if (legacy != nullptr) {
    FieldReader nested(*legacy, reader.file_name(), reader.Path("rope_scaling"));
    MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.rope_scaling, ReadRopeScaling(nested));
  }
  return absl::OkStatus();
}

// Sliding-window attention as each architecture's transformers class defines it.
absl::Status ReadSlidingWindow(const FieldReader& reader, ModelConfig& config) {
  switch (config.architecture) {
    case Architecture::kLlama:
      config.sliding_window.reset();
      return absl::OkStatus();
    case Architecture::kMistral: {
      // MistralConfig defaults sliding_window to 4096 when the key is absent;
      // an explicit null means full attention.
      if (!reader.object().contains("sliding_window")) {
        config.sliding_window = 4096;
        return absl::OkStatus();
      }
      MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.sliding_window, reader.OptionalInt("sliding_window"));
      return absl::OkStatus();
    }
    case Architecture::kQwen2: {
      // Qwen2Config: the window applies only with use_sliding_window, and then
      // only to layers i >= max_window_layers (or as `layer_types` says). One
      // window for every layer is supported; a mix of layer kinds is not.
      bool use_sliding_window = false;
      MUSERVE_ASSIGN_OR_RETURN_CONFIG(use_sliding_window,
                                      reader.BoolOr("use_sliding_window", false));
      if (!use_sliding_window) {
        config.sliding_window.reset();
        return absl::OkStatus();
      }
      std::optional<int64_t> window;
      if (!reader.object().contains("sliding_window")) {
        window = 4096;
      } else {
        MUSERVE_ASSIGN_OR_RETURN_CONFIG(window, reader.OptionalInt("sliding_window"));
      }
      if (!window.has_value()) {
        config.sliding_window.reset();
        return absl::OkStatus();
      }
      int64_t sliding_layers = 0;
      if (reader.Has("layer_types")) {
        const Json& types = reader.object().at("layer_types");
        if (!types.is_array()) return reader.TypeError("layer_types", "a list of strings");
        for (const Json& type : types) {
          if (!type.is_string()) return reader.TypeError("layer_types", "a list of strings");
          if (type.get<std::string>() == "sliding_attention") ++sliding_layers;
        }
      } else {
        int64_t max_window_layers = 0;
        MUSERVE_ASSIGN_OR_RETURN_CONFIG(max_window_layers, reader.IntOr("max_window_layers", 28));
        sliding_layers = std::max<int64_t>(0, config.num_hidden_layers - max_window_layers);
      }
      if (sliding_layers == 0) {
        config.sliding_window.reset();
      } else if (sliding_layers == config.num_hidden_layers) {
        config.sliding_window = window;
      } else {
        return reader.Error("use_sliding_window",
                            absl::StrCat("is true with sliding-window attention on ",
                                         sliding_layers, " of ", config.num_hidden_layers,
                                         " layers; a mix of sliding and full layers is not "
                                         "supported"));
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

absl::Status ReadTokenIds(const FieldReader& reader, ModelConfig& config) {
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.bos_token_id, reader.OptionalInt("bos_token_id"));
  config.eos_token_ids.clear();
  if (!reader.Has("eos_token_id")) return absl::OkStatus();
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(
      config.eos_token_ids, ParseTokenIdList(reader.object().at("eos_token_id"), reader.file_name(),
                                             reader.FieldName("eos_token_id")));
  return absl::OkStatus();
}

absl::Status ReadDType(const FieldReader& reader, ModelConfig& config) {
  // transformers >= 4.56 writes `dtype`; older versions `torch_dtype`.
  std::string_view key = reader.Has("dtype") ? "dtype" : "torch_dtype";
  if (!reader.Has(key)) {
    config.torch_dtype = DType::kF32;  // transformers' default when unspecified
    return absl::OkStatus();
  }
  std::string name;
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(name, reader.String(key));
  absl::StatusOr<DType> dtype = ParseTorchDType(name);
  if (!dtype.ok()) return reader.Error(key, std::string(dtype.status().message()));
  config.torch_dtype = *dtype;
  return absl::OkStatus();
}

absl::Status ReadBiases(const FieldReader& reader, ModelConfig& config) {
  bool mlp_bias = false;
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(mlp_bias, reader.BoolOr("mlp_bias", false));
  if (mlp_bias) return reader.Error("mlp_bias", "is true; MLP biases are not supported");
  switch (config.architecture) {
    case Architecture::kQwen2:
      config.attention_bias = true;  // Qwen2Attention: q/k/v always biased, o never
      return absl::OkStatus();
    case Architecture::kMistral:
      config.attention_bias = false;  // MistralAttention has no biases
      return absl::OkStatus();
    case Architecture::kLlama: {
      bool attention_bias = false;
      MUSERVE_ASSIGN_OR_RETURN_CONFIG(attention_bias, reader.BoolOr("attention_bias", false));
      // LlamaAttention puts the bias on o_proj too, which ModelWeights has no slot for.
      if (attention_bias) {
        return reader.Error("attention_bias",
                            "is true; Llama's o_proj bias is not supported (only q/k/v biases "
                            "as in Qwen2)");
      }
      config.attention_bias = false;
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

// transformers' per-class default for num_key_value_heads (transformers 5.24:
// LlamaConfig falls back to num_attention_heads, MistralConfig's default is 8
// and Qwen2Config's 32, whatever num_attention_heads is).
int64_t DefaultKvHeads(Architecture arch, int64_t num_attention_heads) {
  switch (arch) {
    case Architecture::kLlama:
      return num_attention_heads;
    case Architecture::kMistral:
      return 8;
    case Architecture::kQwen2:
      return 32;
  }
  return num_attention_heads;
}

// transformers' per-class default for max_position_embeddings.
int64_t DefaultMaxPositions(Architecture arch) {
  switch (arch) {
    case Architecture::kLlama:
      return 2048;
    case Architecture::kMistral:
      return 4096 * 32;
    case Architecture::kQwen2:
      return 32768;
  }
  return 2048;
}

absl::Status InvalidConfig(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("invalid model config: ", AsAbsl(what)));
}

}  // namespace

std::string_view ArchitectureName(Architecture arch) {
  switch (arch) {
    case Architecture::kLlama:
      return "LlamaForCausalLM";
    case Architecture::kMistral:
      return "MistralForCausalLM";
    case Architecture::kQwen2:
      return "Qwen2ForCausalLM";
  }
  return "?";
}

absl::Status ModelConfig::Validate() const {
  const std::pair<std::string_view, int64_t> positives[] = {
      {"hidden_size", hidden_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"num_key_value_heads", num_key_value_heads},
      {"head_dim", head_dim},
      {"intermediate_size", intermediate_size},
      {"vocab_size", vocab_size},
      {"max_position_embeddings", max_position_embeddings},
  };
  for (const auto& [name, value] : positives) {
    if (value <= 0)
      return InvalidConfig(absl::StrCat(AsAbsl(name), " must be positive, got ", value));
  }
  const std::pair<std::string_view, int64_t> upper_bounds[] = {
      {"hidden_size", kMaxConfigDim},        {"num_hidden_layers", kMaxNumLayers},
      {"num_attention_heads", kMaxNumHeads}, {"num_key_value_heads", kMaxNumHeads},
      {"head_dim", kMaxConfigDim},           {"intermediate_size", kMaxConfigDim},
      {"vocab_size", kMaxVocabSize},         {"max_position_embeddings", kMaxPositions},
  };
  for (size_t i = 0; i < std::size(upper_bounds); ++i) {
    const auto& [name, limit] = upper_bounds[i];
    const int64_t value = positives[i].second;
    if (value > limit) {
      return InvalidConfig(absl::StrCat(AsAbsl(name), " must be at most ", limit, ", got ", value));
    }
  }
  // Both factors are bounded above, so the products cannot overflow; checked
  // anyway so that loosening a bound cannot silently introduce overflow.
  const std::pair<std::string_view, int64_t> projections[] = {
      {"num_attention_heads", num_attention_heads},
      {"num_key_value_heads", num_key_value_heads},
  };
  for (const auto& [name, heads] : projections) {
    int64_t size = 0;
    if (__builtin_mul_overflow(heads, head_dim, &size) || size > kMaxConfigDim) {
      return InvalidConfig(absl::StrCat(AsAbsl(name), " (", heads, ") x head_dim (", head_dim,
                                        ") must be at most ", kMaxConfigDim));
    }
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    return InvalidConfig(absl::StrCat("num_attention_heads (", num_attention_heads,
                                      ") must be a multiple of num_key_value_heads (",
                                      num_key_value_heads, ")"));
  }
  if (head_dim % 2 != 0) {
    return InvalidConfig(
        absl::StrCat("head_dim must be even for rotary embeddings, got ", head_dim));
  }
  if (!(rms_norm_eps > 0)) {
    return InvalidConfig(absl::StrCat("rms_norm_eps must be positive, got ", rms_norm_eps));
  }
  if (!(rope_theta > 0)) {
    return InvalidConfig(absl::StrCat("rope_theta must be positive, got ", rope_theta));
  }
  if (rope_scaling.type != RopeScalingType::kNone && !(rope_scaling.factor > 0)) {
    return InvalidConfig(
        absl::StrCat("rope_scaling.factor must be positive, got ", rope_scaling.factor));
  }
  if (rope_scaling.type == RopeScalingType::kLlama3) {
    if (!(rope_scaling.low_freq_factor > 0) ||
        !(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor)) {
      return InvalidConfig(
          absl::StrCat("rope_scaling needs 0 < low_freq_factor < high_freq_factor, got ",
                       rope_scaling.low_freq_factor, " and ", rope_scaling.high_freq_factor));
    }
    if (rope_scaling.original_max_position_embeddings <= 0) {
      return InvalidConfig(
          absl::StrCat("rope_scaling.original_max_position_embeddings must be positive, got ",
                       rope_scaling.original_max_position_embeddings));
    }
  }
  if (rope_scaling.original_max_position_embeddings > kMaxPositions) {
    return InvalidConfig(
        absl::StrCat("rope_scaling.original_max_position_embeddings must be at most ",
                     kMaxPositions, ", got ", rope_scaling.original_max_position_embeddings));
  }
  if (sliding_window.has_value() && (*sliding_window <= 0 || *sliding_window > kMaxPositions)) {
    return InvalidConfig(
        absl::StrCat("sliding_window must be in [1, ", kMaxPositions, "], got ", *sliding_window));
  }
  if (bos_token_id.has_value() && (*bos_token_id < 0 || *bos_token_id >= vocab_size)) {
    return InvalidConfig(absl::StrCat("bos_token_id ", *bos_token_id,
                                      " is outside the vocabulary [0, ", vocab_size, ")"));
  }
  for (int64_t eos : eos_token_ids) {
    if (eos < 0 || eos >= vocab_size) {
      return InvalidConfig(
          absl::StrCat("eos_token_id ", eos, " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text,
                                             std::string_view file_name) {
  Json root = Json::parse(json_text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(file_name), ": not valid JSON"));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(file_name), ": expected a JSON object"));
  }
  FieldReader reader(root, file_name);
  ModelConfig config;
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.architecture, ReadArchitecture(reader));
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.hidden_size, reader.Int("hidden_size"));
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.num_hidden_layers, reader.Int("num_hidden_layers"));
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.num_attention_heads, reader.Int("num_attention_heads"));
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(
      config.num_key_value_heads,
      reader.IntOr("num_key_value_heads",
                   DefaultKvHeads(config.architecture, config.num_attention_heads)));
  if (reader.Has("head_dim")) {
    MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.head_dim, reader.Int("head_dim"));
  } else {
    if (config.num_attention_heads <= 0 || config.hidden_size % config.num_attention_heads != 0) {
      return reader.Error("head_dim",
                          absl::StrCat("is missing and hidden_size (", config.hidden_size,
                                       ") is not a multiple of num_attention_heads (",
                                       config.num_attention_heads, ")"));
    }
    config.head_dim = config.hidden_size / config.num_attention_heads;
  }
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.intermediate_size, reader.Int("intermediate_size"));
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.vocab_size, reader.Int("vocab_size"));
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(
      config.max_position_embeddings,
      reader.IntOr("max_position_embeddings", DefaultMaxPositions(config.architecture)));
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.rms_norm_eps, reader.NumberOr("rms_norm_eps", 1e-6));
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(config.tie_word_embeddings,
                                  reader.BoolOr("tie_word_embeddings", false));
  std::string hidden_act;
  MUSERVE_ASSIGN_OR_RETURN_CONFIG(hidden_act, reader.Has("hidden_act")
                                                  ? reader.String("hidden_act")
                                                  : absl::StatusOr<std::string>("silu"));
  if (hidden_act != "silu") {
    return reader.Error("hidden_act",
                        absl::StrCat("is '", hidden_act, "'; only 'silu' is supported"));
  }
  if (absl::Status s = ReadRope(reader, config); !s.ok()) return s;
  if (absl::Status s = ReadBiases(reader, config); !s.ok()) return s;
  if (absl::Status s = ReadSlidingWindow(reader, config); !s.ok()) return s;
  if (absl::Status s = ReadDType(reader, config); !s.ok()) return s;
  if (absl::Status s = ReadTokenIds(reader, config); !s.ok()) return s;
  if (absl::Status s = config.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(file_name), ": ", s.message()));
  }
  return config;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::filesystem::path& model_dir) {
  const std::filesystem::path path = model_dir / "config.json";
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  return ParseModelConfig(*text, path.string());
}

absl::StatusOr<std::vector<int64_t>> ParseTokenIdList(const nlohmann::json& value,
                                                      std::string_view file,
                                                      std::string_view field) {
  std::vector<int64_t> ids;
  if (value.is_null()) return ids;
  const auto append = [&](const Json& id) -> absl::Status {
    if (!id.is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat(AsAbsl(file), ": field '", AsAbsl(field),
                       "' must be an integer or a list of integers, found ",
                       value.is_array() ? "a list holding " : "", JsonTypeName(id)));
    }
    // An unsigned value above int64's range is out of range too.
    const bool in_range =
        id.is_number_unsigned()
            ? id.get<uint64_t>() <= uint64_t{std::numeric_limits<int32_t>::max()}
            : id.get<int64_t>() >= 0 && id.get<int64_t>() <= std::numeric_limits<int32_t>::max();
    if (!in_range) {
      return absl::InvalidArgumentError(
          absl::StrCat(AsAbsl(file), ": field '", AsAbsl(field), "' holds token id ", id.dump(),
                       ", outside [0, ", std::numeric_limits<int32_t>::max(), "]"));
    }
    ids.push_back(id.get<int64_t>());
    return absl::OkStatus();
  };
  if (!value.is_array()) {
    if (absl::Status s = append(value); !s.ok()) return s;
    return ids;
  }
  for (const Json& id : value) {
    if (absl::Status s = append(id); !s.ok()) return s;
  }
  return ids;
}

}  // namespace muserve
