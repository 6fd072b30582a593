// Writes a random-weight Llama-family model as a real Hugging Face checkpoint
// directory: config.json, model.safetensors, tokenizer.json (byte-level BPE),
// tokenizer_config.json (with a chat template) and generation_config.json.
// Deterministic: the same options give byte-identical files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/api/model_config.h"

namespace muserve {

enum class ModelPreset {
  kTiny,   // seconds to run; for unit tests
  kSmall,  // a few layers of realistic proportions; for integration tests
  k1b,     // TinyLlama-1.1B's shape: hidden 2048, 22 layers, 32/4 heads, 5632, vocab 32000
};

absl::StatusOr<ModelPreset> ParseModelPreset(std::string_view name);

struct MakeModelOptions {
  std::filesystem::path out_dir;
  ModelPreset preset = ModelPreset::kTiny;
  uint64_t seed = 0;
  DType dtype = DType::kF32;  // F32 or BF16
};

// The config a preset produces (Llama architecture).
ModelConfig PresetConfig(ModelPreset preset, DType dtype);

absl::Status MakeModel(const MakeModelOptions& options);

}  // namespace muserve
