// CudaBackend: the model's forward pass on one NVIDIA GPU.
//
//  - Weights in bf16 or f16 on the device (DeviceModel; F32 checkpoints
//    become bf16 at load, through pinned staging with no second host copy).
//  - Per layer: fused residual-add + RMSNorm, one QKV GEMM (cuBLASLt, fp32
//    accumulation, bias in the epilogue), RoPE, the KV write through the
//    slot mapping, paged attention over the mixed varlen batch, the O GEMM,
//    add + RMSNorm, one gate-up GEMM, SiLU-mul and the down GEMM. The
//    residual stream is fp32; what feeds a GEMM is bf16 / f16.
//  - The final norm and LM head only for the sampled rows, and sampling on
//    the GPU (GpuSampler): logits never travel to the host in ForwardSample.
//  - Decode-only steps replay CUDA graphs captured at start-up for a ladder
//    of batch sizes (padded up to the next size); other steps run eagerly.
//  - The KV pool fills what --gpu-memory-utilization leaves after the
//    weights and a measured worst-case step (see CudaBackendOptions).
// Every step buffer is allocated in Create; the one exception is the
// sampler's upload of penalty lists, which grows to the longest histories
// seen (int32 per token: megabytes) out of what the memory fraction leaves.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/api/backend.h"
#include "engine/model/weights.h"

namespace muserve::cuda {

class NcclCommunicator;  // cuda/nccl_communicator.h, in builds with NCCL

struct CudaBackendOptions {
  int32_t device = 0;  // CUDA device ordinal
  int32_t block_size = 16;
  // Fraction of the device's memory to fill in all: weights, activations
  // and workspaces of a worst-case step, CUDA graphs, and the KV pool, which
  // gets the rest. (0, 1]. Memory other processes hold on the device counts
  // against it (it is measured as in use), so a co-tenant shrinks the pool.
  double gpu_memory_utilization = 0.9;
  // KV blocks to allocate instead of sizing from gpu_memory_utilization
  // (tests; 0 = size from memory).
  int32_t num_blocks = 0;
  // When sizing from memory, at most this many blocks (0 = no cap): what
  // max_num_seqs full contexts can use, so that a small model does not hold
  // memory it can never fill.
  int32_t max_num_blocks = 0;
  // Most tokens (summed query_len) and sequences one step carries.
  int32_t max_num_batched_tokens = 8192;
  int32_t max_num_seqs = 256;
  // Decode steps of up to this many sequences replay CUDA graphs; 0 turns
  // graphs off. Capped at max_num_seqs.
  int32_t max_graph_batch = 256;
  // Decode steps whose longest context is at most this many tokens use the
  // graphs (their block tables have a fixed width); longer ones run
  // eagerly. Capped at max_position_embeddings.
  int32_t max_graph_context = 8192;

  absl::Status Validate() const;
};

// What Create measured and decided, for the start-up log.
struct CudaMemoryReport {
  std::string device_name;
  int64_t total_bytes = 0;       // device memory
  int64_t weight_bytes = 0;      // the model on the device
  int64_t activation_bytes = 0;  // per-step buffers, workspaces, sampler
  int64_t peak_step_bytes = 0;   // measured over a worst-case step beyond the buffers
  int64_t kv_bytes = 0;          // the pool
  int64_t kv_bytes_per_token = 0;
  int32_t num_graphs = 0;  // decode batch sizes captured
};

class CudaBackend final : public Backend {
 public:
  // Uploads `model` (the mapping can be dropped afterwards: the weights live
  // on the device) and sizes the KV pool. Unavailable without a device;
  // ResourceExhausted when the weights or a worst-case step do not fit.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(const LoadedModel& model,
                                                             const CudaBackendOptions& options);
  // A model of `config`'s shapes with random weights generated on the
  // device (RandomModel): benchmarks of models too large to write to disk.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> CreateRandom(
      const ModelConfig& config, const CudaBackendOptions& options, uint64_t seed);
#if MUSERVE_HAVE_NCCL
  // Rank communicator.rank() of a tensor-parallel group of
  // communicator.size() GPUs (engine/model/shard.h: its heads, KV heads,
  // intermediate and vocabulary slices), on options.device, which must be
  // the communicator's. Every rank of the group must be created at the same
  // time, each on its own thread (the KV pool size is agreed on, and the
  // start-up steps run collectives; every start-up stage ends in an
  // agreement, so the ranks fail together). Ranks run every step eagerly
  // (no CUDA graphs: see CaptureGraphs). Collectives go on the backend's stream;
  // a dead peer fails a step at the communicator's deadline. Rank 0
  // gathers the logits and samples; the other ranks accept the same calls
  // and never touch `logits` or `out`. `model` and `communicator` must
  // outlive the backend only as long as Create runs / the backend lives.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> CreateRank(const LoadedModel& model,
                                                                 NcclCommunicator& communicator,
                                                                 const CudaBackendOptions& options);
#endif
  ~CudaBackend() override;

  const ModelConfig& config() const override;
  KvCacheGeometry kv_cache() const override;
  int32_t max_num_batched_tokens() const override;
  // Copies the sampled rows' logits to the host.
  absl::Status Forward(const StepBatch& batch, std::span<float> logits) override;
  bool samples_on_device() const override { return true; }
  absl::Status ForwardSample(const StepBatch& batch, std::span<const SampleInput> inputs,
                             std::span<SampledToken> out) override;

  const CudaMemoryReport& memory_report() const;
  // The decode batch sizes with a captured graph, ascending.
  std::span<const int32_t> graph_batch_sizes() const;

 private:
  class Impl;
  explicit CudaBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The graph ladder for decode batches up to max_batch: 1, 2, 4, 8, then
// every multiple of 16 up to 256 and every multiple of 64 beyond, ending
// with max_batch itself.
std::vector<int32_t> GraphBatchSizes(int32_t max_batch);

}  // namespace muserve::cuda
