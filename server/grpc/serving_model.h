// ServingModel: everything one model needs to be served, loaded from a
// Hugging Face directory: config, tokenizer, chat template, the backend with
// its KV pool, and the started engine loop. The gRPC service only reads it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/api/backend.h"
#include "engine/api/model_config.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "muserve/v1/inference.pb.h"
#include "scheduler/engine_loop.h"
#include "server/api/request_conversion.h"

namespace muserve::server {

struct ServingModelOptions {
  std::filesystem::path model_dir;
  std::string device = "cpu";  // "cpu", or "cuda" in a build with CUDA
  int32_t num_threads = 2;     // CPU threads of the forward pass (>= 1), per rank
  // Ranks the model is split over (engine/model/shard.h); on the CPU each
  // rank is a thread with num_threads threads of its own.
  int32_t tensor_parallel_size = 1;
  int32_t block_size = 16;  // KV tokens per block (>= 1)
  // KV cache memory of each rank (which holds only its own KV heads). The
  // pool is also capped at what max_num_seqs sequences of full context can
  // use, so a small model does not reserve memory it can never fill.
  int64_t kv_cache_bytes = int64_t{1} << 30;
  // On cuda: the fraction of the GPU's memory used in all; the KV pool gets
  // what the weights, a measured worst-case step and the CUDA graphs leave
  // (capped as above). kv_cache_bytes does not apply.
  double gpu_memory_utilization = 0.9;
  EngineLoopOptions loop;
  std::optional<std::filesystem::path> chat_template;  // replaces tokenizer_config.json's
  size_t max_request_bytes = 4 << 20;
};

class ServingModel {
 public:
  // Errors name the file or flag at fault. The loop is started.
  static absl::StatusOr<std::unique_ptr<ServingModel>> Load(const ServingModelOptions& options);
  ~ServingModel();  // stops the loop before the backend goes away

  // Runs one short greedy request through the whole path (tokenizer, loop,
  // backend, detokenizer) so that the first client does not pay for first
  // touches of weights and buffers, and a broken model fails before the
  // server reports SERVING.
  absl::Status WarmUp();

  EngineLoop& loop() { return *loop_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // nullptr when the model has no chat template.
  const ChatTemplate* chat_template() const { return chat_template_.get(); }
  const ModelConfig& config() const { return backend_->config(); }
  const std::vector<TokenId>& eos_token_ids() const { return eos_token_ids_; }
  const ModelLimits& limits() const { return limits_; }
  const v1::ModelInfo& info() const { return info_; }

 private:
  ServingModel() = default;

  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ChatTemplate> chat_template_;
  std::vector<TokenId> eos_token_ids_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<EngineLoop> loop_;
  ModelLimits limits_;
  v1::ModelInfo info_;
};

}  // namespace muserve::server
