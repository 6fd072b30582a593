#include "server/grpc/serving_model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/api/absl_string_view.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/cpu_tensor_parallel.h"
#include "engine/model/generation_config.h"
#include "engine/model/shard.h"
#include "engine/model/weights.h"
#include "scheduler/kv/kv_block_manager.h"
#include "server/observability/logging.h"
#include "spdlog/spdlog.h"
#if MUSERVE_HAVE_CUDA
#include "cuda/cuda_backend.h"
#if MUSERVE_HAVE_NCCL
#include "cuda/cuda_tensor_parallel.h"
#endif
#endif

namespace muserve::server {
namespace {

// config.json's spelling (torch_dtype), which users know the model by.
std::string TorchDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "float32";
    case DType::kBF16:
      return "bfloat16";
    case DType::kF16:
      return "float16";
  }
  return "unknown";
}

absl::Status Prefixed(const absl::Status& status, std::string_view what) {
  return absl::Status(status.code(), absl::StrCat(AsAbsl(what), ": ", status.message()));
}

// The CUDA backend on GPU 0, its KV pool sized from the memory fraction and
// capped at `max_blocks`; logs what it measured.
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const LoadedModel& model,
                                                           const ServingModelOptions& options,
                                                           int64_t max_blocks) {
#if MUSERVE_HAVE_CUDA
  cuda::CudaBackendOptions backend_options;
  backend_options.block_size = options.block_size;
  backend_options.gpu_memory_utilization = options.gpu_memory_utilization;
  backend_options.max_num_blocks = static_cast<int32_t>(std::min<int64_t>(max_blocks, INT32_MAX));
  backend_options.max_num_batched_tokens = options.loop.max_num_batched_tokens;
  backend_options.max_num_seqs = options.loop.max_num_seqs;
  std::unique_ptr<Backend> backend;
  cuda::CudaMemoryReport report;
  if (options.tensor_parallel_size == 1) {
    auto one = cuda::CudaBackend::Create(model, backend_options);
    if (!one.ok()) return Prefixed(one.status(), "--device cuda");
    report = (*one)->memory_report();
    backend = std::move(*one);
  } else {
#if MUSERVE_HAVE_NCCL
    auto group = cuda::CreateCudaTensorParallelBackend(model, options.tensor_parallel_size,
                                                       backend_options, &report);
    if (!group.ok()) return Prefixed(group.status(), "--device cuda");
    backend = std::move(*group);
#else
    return absl::InvalidArgumentError(
        "--tensor-parallel-size: this muserve was built without NCCL, so the CUDA backend runs "
        "on one GPU; use 1");
#endif
  }
  const KvCacheGeometry kv = backend->kv_cache();
  LogEvent(spdlog::level::info, "CUDA backend ready",
           {{"gpu", report.device_name},
            {"gpus", int64_t{options.tensor_parallel_size}},
            {"gpu_memory_bytes", report.total_bytes},
            {"weight_bytes", report.weight_bytes},
            {"step_buffer_bytes", report.activation_bytes},
            {"measured_step_bytes", report.peak_step_bytes},
            {"kv_cache_bytes", report.kv_bytes},
            {"kv_capacity_tokens", int64_t{kv.num_blocks} * kv.block_size},
            {"cuda_graphs", int64_t{report.num_graphs}}});
  return backend;
#else
  (void)model;
  (void)options;
  (void)max_blocks;
  return absl::InvalidArgumentError(
      "--device cuda: this muserve was built without CUDA (no nvcc at build time)");
#endif
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServingModel>> ServingModel::Load(
    const ServingModelOptions& options) {
  if (options.device != "cpu" && options.device != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("--device must be cpu or cuda, got '", options.device, "'"));
  }
  if (absl::Status status = options.loop.Validate(); !status.ok()) return status;
  std::unique_ptr<ServingModel> model(new ServingModel());
  const std::filesystem::path& dir = options.model_dir;

  auto loaded = LoadModel(dir);
  if (!loaded.ok()) return loaded.status();
  const ModelConfig config = loaded->config;
  auto eos = LoadEosTokenIds(dir, config);
  if (!eos.ok()) return eos.status();
  model->eos_token_ids_ = std::move(*eos);

  auto tokenizer = Tokenizer::FromFile(dir / "tokenizer.json");
  if (!tokenizer.ok()) return tokenizer.status();
  model->tokenizer_ = std::move(*tokenizer);
  if (model->tokenizer_->vocab_size() > config.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat((dir / "tokenizer.json").string(), " has ", model->tokenizer_->vocab_size(),
                     " tokens; config.json's vocab_size is only ", config.vocab_size));
  }
  auto chat_template =
      ChatTemplate::FromTokenizerConfig(dir / "tokenizer_config.json", options.chat_template);
  if (chat_template.ok()) {
    model->chat_template_ = std::move(*chat_template);
  } else if (!absl::IsNotFound(chat_template.status()) || options.chat_template) {
    // A missing template only disables Chat; a broken one (or a missing
    // --chat-template file) is a start-up error.
    return chat_template.status();
  }

  // The pool: what the memory budget affords, capped at max_num_seqs full
  // contexts (more could never be in use at once).
  if (absl::Status status = ValidateTensorParallelSize(config, options.tensor_parallel_size);
      !status.ok()) {
    return Prefixed(status, "--tensor-parallel-size");
  }
  // Never more blocks than max_num_seqs full contexts can use at once.
  const int64_t blocks_per_context =
      (config.max_position_embeddings + options.block_size - 1) / options.block_size;
  const int64_t useful_blocks = blocks_per_context * options.loop.max_num_seqs;
  if (options.device == "cuda") {
    auto backend = CreateCudaBackend(*loaded, options, useful_blocks);
    if (!backend.ok()) return backend.status();
    model->backend_ = std::move(*backend);
  } else {
    const int64_t bytes_per_token = CpuKvBytesPerToken(config, options.tensor_parallel_size);
    auto budget_blocks = KvBlockManager::NumBlocksForBudget(options.kv_cache_bytes, bytes_per_token,
                                                            options.block_size, "--kv-cache-bytes");
    if (!budget_blocks.ok()) return budget_blocks.status();
    const auto num_blocks = static_cast<int32_t>(std::min<int64_t>(*budget_blocks, useful_blocks));

    CpuBackendOptions backend_options;
    backend_options.num_threads = options.num_threads;
    backend_options.block_size = options.block_size;
    backend_options.num_blocks = num_blocks;
    backend_options.max_num_batched_tokens = options.loop.max_num_batched_tokens;
    if (absl::Status status = backend_options.Validate(); !status.ok()) {
      return Prefixed(status, "backend options");
    }
    auto backend =
        CreateCpuBackend(std::move(*loaded), options.tensor_parallel_size, backend_options);
    if (!backend.ok()) return backend.status();
    model->backend_ = std::move(*backend);
  }

  auto loop =
      EngineLoop::Create(*model->backend_, *model->tokenizer_, model->eos_token_ids_, options.loop);
  if (!loop.ok()) return loop.status();
  model->loop_ = std::move(*loop);
  model->loop_->Start();

  const KvCacheGeometry kv = model->backend_->kv_cache();
  model->limits_.vocab_size = static_cast<int32_t>(config.vocab_size);
  model->limits_.context_len = config.max_position_embeddings;
  model->limits_.kv_capacity_tokens = int64_t{kv.num_blocks} * kv.block_size;
  model->limits_.kv_block_size = kv.block_size;
  model->limits_.max_request_bytes = options.max_request_bytes;

  v1::ModelInfo& info = model->info_;
  info.set_model(std::filesystem::absolute(dir).lexically_normal().filename().string());
  if (info.model().empty()) {
    info.set_model(
        std::filesystem::absolute(dir).lexically_normal().parent_path().filename().string());
  }
  info.set_architecture(std::string(ArchitectureName(config.architecture)));
  info.set_max_context_length(static_cast<int32_t>(config.max_position_embeddings));
  info.set_vocab_size(static_cast<int32_t>(config.vocab_size));
  info.set_dtype(TorchDTypeName(config.torch_dtype));
  info.set_device(options.device);
  info.set_tensor_parallel_size(options.tensor_parallel_size);
  info.set_max_batch_size(options.loop.max_num_seqs);
  info.set_max_batched_tokens(options.loop.max_num_batched_tokens);
  info.set_max_queue(options.loop.max_queue);
  info.set_kv_block_size(kv.block_size);
  info.set_kv_num_blocks(kv.num_blocks);
  info.set_kv_capacity_tokens(model->limits_.kv_capacity_tokens);
  for (TokenId id : model->eos_token_ids_) info.add_eos_token_ids(id);
  info.set_has_chat_template(model->chat_template_ != nullptr);
  info.set_prefix_caching(options.loop.enable_prefix_caching);
  return model;
}

ServingModel::~ServingModel() {
  if (loop_) loop_->Stop();
}

absl::Status ServingModel::WarmUp() {
  Request request;
  request.prompt_tokens = tokenizer_->Encode("Hello", /*add_special_tokens=*/true);
  if (request.prompt_tokens.empty()) request.prompt_tokens.push_back(0);
  request.sampling.temperature = 0;
  request.stop.max_tokens = 2;
  request.stop.ignore_eos = true;
  auto handle = loop_->Submit(std::move(request));
  if (!handle.ok()) return Prefixed(handle.status(), "warm-up request");
  while (true) {
    RequestHandle::Event event = (*handle)->Next();
    if (const auto* finished = std::get_if<Finished>(&event)) {
      if (finished->reason != FinishReason::kLength) {
        return absl::InternalError(
            absl::StrCat("warm-up request ended with ", FinishReasonName(finished->reason)));
      }
      return absl::OkStatus();
    }
  }
}

}  // namespace muserve::server
