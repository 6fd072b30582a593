// What the engine-loop benchmarks share: a make-model preset written to a
// temporary directory (removed again at the end) with its tokenizer, and the
// machine's load average for the record.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/model/make_model.h"
#include "engine/tokenizer/tokenizer.h"

namespace muserve::bench {

class BenchModel {
 public:
  // Writes preset `preset` (f32) under the temporary directory, in a folder
  // named after `bench_name` and the process id.
  static absl::StatusOr<std::unique_ptr<BenchModel>> Create(const std::string& preset,
                                                            const std::string& bench_name);
  ~BenchModel();  // removes the directory

  const std::filesystem::path& dir() const { return dir_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  ModelPreset preset() const { return preset_; }

 private:
  BenchModel() = default;
  std::filesystem::path dir_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ModelPreset preset_ = ModelPreset::kTiny;
};

// /proc/loadavg's line: benchmark figures mean little on a busy machine.
std::string LoadAverage();

}  // namespace muserve::bench
