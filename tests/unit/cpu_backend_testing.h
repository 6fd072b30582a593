// Helpers shared by the CpuBackend tests: loading the transformers reference
// fixtures (tests/reference/make_model_fixtures.py) and running steps.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/fixtures.h"

namespace muserve::testing {

// reference.json and reference_logits.bin of tests/fixtures/models/<name>.
struct ModelReference {
  nlohmann::json json;
  std::vector<float> logits;  // rows of vocab_size floats
  int64_t vocab_size = 0;

  // `count` rows starting at float offset `offset`.
  std::vector<float> Rows(int64_t offset, int64_t count) const {
    return std::vector<float>(logits.begin() + offset,
                              logits.begin() + offset + count * vocab_size);
  }
};

inline ModelReference LoadModelReference(const std::string& name) {
  ModelReference ref;
  ref.json = ReadJsonOrFail(FixturePath("models/" + name + "/reference.json"));
  ref.vocab_size = ref.json.value("vocab_size", int64_t{0});
  const std::string bin = ReadFileOrFail(FixturePath("models/" + name + "/reference_logits.bin"));
  ref.logits.resize(bin.size() / sizeof(float));
  std::memcpy(ref.logits.data(), bin.data(), ref.logits.size() * sizeof(float));
  return ref;
}

inline std::unique_ptr<CpuBackend> MakeFixtureBackend(const std::string& name, int32_t threads = 1,
                                                      int32_t block_size = 16,
                                                      int32_t num_blocks = 64) {
  absl::StatusOr<LoadedModel> model = LoadModel(FixturePath("models/" + name));
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  CpuBackendOptions options;
  options.num_threads = threads;
  options.block_size = block_size;
  options.num_blocks = num_blocks;
  absl::StatusOr<std::unique_ptr<CpuBackend>> backend =
      CpuBackend::Create(*std::move(model), options);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? *std::move(backend) : nullptr;
}

// Runs one step; returns [num_sampled x vocab] logits (empty on failure).
inline std::vector<float> RunStep(CpuBackend& backend, const StepBatch& batch) {
  std::vector<float> logits(static_cast<size_t>(batch.num_sampled()) * backend.config().vocab_size);
  const absl::Status status = backend.Forward(batch, logits);
  EXPECT_TRUE(status.ok()) << status;
  return status.ok() ? logits : std::vector<float>();
}

inline int32_t Argmax(const float* row, int64_t n) {
  int32_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (row[i] > row[best]) best = static_cast<int32_t>(i);
  return best;
}

}  // namespace muserve::testing
