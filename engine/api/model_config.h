// ModelConfig: the architecture hyper-parameters read from a Hugging Face
// checkpoint's config.json. Only Llama-family decoders are supported.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/api/dtype.h"
#include "nlohmann/json_fwd.hpp"

namespace muserve {

enum class Architecture { kLlama, kMistral, kQwen2 };

// "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM".
std::string_view ArchitectureName(Architecture arch);

enum class RopeScalingType { kNone, kLinear, kLlama3 };

// `rope_scaling` in config.json. Fields other than `type` are meaningful only
// for the types that use them (see transformers' modeling_rope_utils.py).
struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;                           // linear and llama3
  double low_freq_factor = 1.0;                  // llama3
  double high_freq_factor = 4.0;                 // llama3
  int64_t original_max_position_embeddings = 0;  // llama3
};

// Upper bounds that Validate() enforces. They sit far above every published
// checkpoint (largest today: vocab 262144, hidden 16384, 126 layers, 128
// heads, 10M positions) and keep every derived size small: q_size() and
// kv_size() are at most kMaxConfigDim (2^20), so for instance
// layers x 2 x kv_size x 8 bytes < 2^35 and vocab x hidden < 2^44. A product
// of a validated config's sizes therefore fits int64 when its factors'
// bounds multiply to less than 2^63; code multiplying more than that checks.
inline constexpr int64_t kMaxConfigDim = int64_t{1} << 20;  // hidden, head_dim, intermediate
inline constexpr int64_t kMaxVocabSize = int64_t{1} << 24;
inline constexpr int64_t kMaxNumLayers = 1024;
inline constexpr int64_t kMaxNumHeads = 1024;               // query and KV heads
inline constexpr int64_t kMaxPositions = int64_t{1} << 30;  // positions and windows

struct ModelConfig {
  Architecture architecture = Architecture::kLlama;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  // When absent: transformers' per-class default (LlamaConfig:
  // num_attention_heads; MistralConfig: 8; Qwen2Config: 32).
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // defaults to hidden_size / num_attention_heads
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  // q/k/v projections carry a bias (Qwen2 always; Llama when attention_bias).
  bool attention_bias = false;
  // Mistral's sliding-window attention: a query at position p attends to keys
  // at positions (p - sliding_window, p]. Absent or null means full attention.
  std::optional<int64_t> sliding_window;
  DType torch_dtype = DType::kF32;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json's eos_token_id (int or list)

  // Checks internal consistency (positive sizes within the k* bounds above,
  // heads divisible by KV heads, q_size() and kv_size() <= kMaxConfigDim...).
  // Errors name the field ("hidden_size must be at most 1048576, got ...").
  absl::Status Validate() const;

  // Derived sizes; overflow-free once Validate() has succeeded.
  int64_t q_size() const { return num_attention_heads * head_dim; }
  int64_t kv_size() const { return num_key_value_heads * head_dim; }
};

// Parses config.json text. `file_name` is used in error messages, which name
// the file and the field ("config.json: field 'hidden_size' is missing").
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text,
                                             std::string_view file_name = "config.json");

// Parses a token-id field that transformers writes as an int or a list of ints
// (config.json / generation_config.json `eos_token_id`). null gives an empty
// list. Errors are InvalidArgument naming `file` and `field`: another type, or
// an id outside [0, 2^31 - 1] (ids are int32 TokenIds downstream).
absl::StatusOr<std::vector<int64_t>> ParseTokenIdList(const nlohmann::json& value,
                                                      std::string_view file,
                                                      std::string_view field);

// Reads and parses `model_dir`/config.json.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::filesystem::path& model_dir);

}  // namespace muserve
