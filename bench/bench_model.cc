#include "bench/bench_model.h"

#include <unistd.h>

#include <fstream>
#include <system_error>

namespace muserve::bench {

absl::StatusOr<std::unique_ptr<BenchModel>> BenchModel::Create(const std::string& preset,
                                                               const std::string& bench_name) {
  absl::StatusOr<ModelPreset> parsed = ParseModelPreset(preset);
  if (!parsed.ok()) return parsed.status();
  std::unique_ptr<BenchModel> model(new BenchModel());
  model->preset_ = *parsed;
  model->dir_ = std::filesystem::temp_directory_path() /
                ("muserve_" + bench_name + "_" + preset + "_" + std::to_string(::getpid()));
  MakeModelOptions options;
  options.out_dir = model->dir_;
  options.preset = *parsed;
  if (absl::Status made = MakeModel(options); !made.ok()) return made;
  auto tokenizer = Tokenizer::FromFile(model->dir_ / "tokenizer.json");
  if (!tokenizer.ok()) return tokenizer.status();
  model->tokenizer_ = std::move(*tokenizer);
  return model;
}

BenchModel::~BenchModel() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace muserve::bench
