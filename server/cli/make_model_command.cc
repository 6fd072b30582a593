// `muserve make-model`: writes a random-weight demo model as a Hugging Face
// checkpoint directory.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "engine/model/make_model.h"
#include "server/cli/command.h"
#include "server/cli/shared_flags.h"

ABSL_FLAG(std::string, out, "", "Directory to write the model into (created if missing)");
ABSL_FLAG(std::string, preset, "tiny", "tiny, small or 1b");
ABSL_FLAG(std::string, dtype, "f32", "Weight dtype: f32 or bf16");

namespace muserve::cli {
namespace {

constexpr std::string_view kUsage = R"(Usage: muserve make-model --out DIR [flags]

Writes a random-weight Llama model as a Hugging Face directory (config.json,
model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json).
The same flags always give byte-identical files.

Flags:
  --out DIR        output directory (required)
  --preset NAME    tiny (default; for tests), small, or 1b (TinyLlama-1.1B's shape)
  --seed N         weights' seed (default 0)
  --dtype NAME     f32 (default) or bf16
)";

int RunMakeModel(const std::vector<std::string_view>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "muserve make-model: unexpected argument '%s'\n",
                 std::string(args[0]).c_str());
    return 2;
  }
  MakeModelOptions options;
  options.out_dir = absl::GetFlag(FLAGS_out);
  if (options.out_dir.empty()) {
    std::fprintf(stderr, "muserve make-model: --out is required\n");
    return 2;
  }
  auto preset = ParseModelPreset(absl::GetFlag(FLAGS_preset));
  if (!preset.ok()) {
    std::fprintf(stderr, "muserve make-model: --preset: %s\n",
                 std::string(preset.status().message()).c_str());
    return 2;
  }
  options.preset = *preset;
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  if (dtype == "f32") {
    options.dtype = DType::kF32;
  } else if (dtype == "bf16") {
    options.dtype = DType::kBF16;
  } else {
    std::fprintf(stderr, "muserve make-model: --dtype must be f32 or bf16, got '%s'\n",
                 dtype.c_str());
    return 2;
  }
  options.seed = absl::GetFlag(FLAGS_seed).value_or(0);
  if (absl::Status status = MakeModel(options); !status.ok()) {
    std::fprintf(stderr, "muserve make-model: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "wrote %s\n", options.out_dir.string().c_str());
  return 0;
}

}  // namespace

const Command& MakeModelCommand() {
  static const Command command{"make-model",
                               "write a random-weight demo model as a Hugging Face directory",
                               kUsage,
                               {"out", "preset", "seed", "dtype"},
                               &RunMakeModel};
  return command;
}

}  // namespace muserve::cli
