#include "cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cuda/cuda_status.h"
#include "cuda/device_buffer.h"
#include "cuda/device_model.h"
#include "cuda/gemm.h"
#include "cuda/gpu_sampler.h"
#include "cuda/kernels/embedding.h"
#include "cuda/kernels/gather_rows.h"
#include "cuda/kernels/kv_cache_layout.h"
#include "cuda/kernels/kv_cache_write.h"
#include "cuda/kernels/paged_attention.h"
#include "cuda/kernels/rms_norm.h"
#include "cuda/kernels/rope.h"
#include "cuda/kernels/silu_mul.h"
#include "cuda/step_metadata.h"
#include "cuda/weight_upload.h"
#include "engine/cpu/step_validation.h"
#include "engine/model/shard.h"
#include "engine/sampling/sampler.h"
#if MUSERVE_HAVE_NCCL
#include "cuda/nccl_communicator.h"
#endif

namespace muserve::cuda {

absl::Status CudaBackendOptions::Validate() const {
  auto fail = [](std::string_view what) { return absl::InvalidArgumentError(std::string(what)); };
  if (device < 0) return fail(absl::StrCat("device must be >= 0, got ", device));
  if (block_size < 1) return fail(absl::StrCat("block_size must be >= 1, got ", block_size));
  if (!(gpu_memory_utilization > 0.0 && gpu_memory_utilization <= 1.0))
    return fail(
        absl::StrCat("gpu_memory_utilization must be in (0, 1], got ", gpu_memory_utilization));
  if (num_blocks < 0) return fail(absl::StrCat("num_blocks must be >= 0, got ", num_blocks));
  if (max_num_blocks < 0)
    return fail(absl::StrCat("max_num_blocks must be >= 0, got ", max_num_blocks));
  if (max_num_batched_tokens < 1)
    return fail(absl::StrCat("max_num_batched_tokens must be >= 1, got ", max_num_batched_tokens));
  if (max_num_seqs < 1) return fail(absl::StrCat("max_num_seqs must be >= 1, got ", max_num_seqs));
  if (max_graph_batch < 0)
    return fail(absl::StrCat("max_graph_batch must be >= 0, got ", max_graph_batch));
  if (max_graph_context < 1)
    return fail(absl::StrCat("max_graph_context must be >= 1, got ", max_graph_context));
  return absl::OkStatus();
}

std::vector<int32_t> GraphBatchSizes(int32_t max_batch) {
  std::vector<int32_t> sizes;
  for (int32_t b : {1, 2, 4, 8})
    if (b <= max_batch) sizes.push_back(b);
  for (int32_t b = 16; b <= std::min(max_batch, 256); b += 16) sizes.push_back(b);
  for (int32_t b = 320; b <= max_batch; b += 64) sizes.push_back(b);
  if (max_batch >= 1 && (sizes.empty() || sizes.back() != max_batch)) sizes.push_back(max_batch);
  return sizes;
}

namespace {

// Pinned host memory for the packed step arrays.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() {
    if (data_ != nullptr) cudaFreeHost(data_);
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  absl::Status Allocate(int64_t bytes) {
    MUSERVE_GPU_RETURN_IF_ERROR(cudaHostAlloc(&data_, static_cast<size_t>(bytes), 0));
    bytes_ = bytes;
    return absl::OkStatus();
  }
  std::span<std::byte> span() const {
    return {static_cast<std::byte*>(data_), static_cast<size_t>(bytes_)};
  }

 private:
  void* data_ = nullptr;
  int64_t bytes_ = 0;
};

// One decode graph: its batch size, the fixed plan and layout it was
// captured with, and the executable.
struct DecodeGraph {
  int32_t batch = 0;
  AttentionPlan plan;
  StepLayout layout;
  cudaGraphExec_t exec = nullptr;
};

}  // namespace

// Invariants: every device buffer is sized in Create for max_tokens_ rows
// and max_sequences_ sequences; the metadata buffers hold the largest
// layout any step may use; graphs_ is sorted by batch, each captured over
// the buffers it still points to (none is ever reallocated); all work is
// enqueued on stream_ and Forward / ForwardSample return only after it has
// finished, so the pinned metadata may be rewritten by the next step.
class CudaBackend::Impl {
 public:
  // The whole model (`layout` of one rank, no communicator), or rank
  // layout.rank of a tensor-parallel group over `nccl`.
  Impl(const ModelConfig& config, const CudaBackendOptions& options, const ShardLayout& layout,
       NcclCommunicator* nccl)
      : config_(config),
        local_(layout.LocalConfig(config)),
        layout_(layout),
        nccl_(nccl),
        options_(options) {}
  // May run on another thread than Create: selects the device, lets the
  // stream drain, and frees what is bound to the stream before the stream.
  ~Impl() {
    cudaSetDevice(options_.device);
    // In a group, with the communicator's deadline: a collective whose
    // peer is gone must not hang the teardown.
    if (stream_ != nullptr) Drain(absl::OkStatus()).IgnoreError();
    sampler_.reset();
    gemm_.reset();
    for (DecodeGraph& g : graphs_)
      if (g.exec != nullptr) cudaGraphExecDestroy(g.exec);
    if (uploaded_ != nullptr) cudaEventDestroy(uploaded_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  // Uploads `weights` (the whole model's, or this rank's slices), or makes
  // random ones when null.
  absl::Status Init(const ModelWeights* weights, DType checkpoint_dtype, uint64_t seed);

  const ModelConfig& config() const { return config_; }
  KvCacheGeometry kv_cache() const { return {options_.block_size, num_blocks_}; }
  int32_t max_num_batched_tokens() const { return options_.max_num_batched_tokens; }
  const CudaMemoryReport& report() const { return report_; }
  std::span<const int32_t> graph_sizes() const { return graph_sizes_; }

  // Validates `batch` (with the size of the caller's logits, in floats) and
  // enqueues the forward pass up to the logits of the sampled rows in
  // logits_.
  absl::Status RunStep(const StepBatch& batch, size_t logits_size);

  // Rank 0 (or the whole model) has the logits; other ranks only wait.
  bool has_logits() const { return layout_.rank == 0; }
  absl::Status CopyLogits(int32_t rows, std::span<float> logits) {
    if (!has_logits()) return Drain(absl::OkStatus());
    MUSERVE_GPU_RETURN_IF_ERROR(cudaMemcpyAsync(logits.data(), logits_.get(),
                                                static_cast<size_t>(rows) * config_.vocab_size * 4,
                                                cudaMemcpyDeviceToHost, stream_));
    return Drain(absl::OkStatus());
  }
  absl::Status Sample(std::span<const SampleInput> inputs, std::span<SampledToken> out) {
    // A group's collectives are waited for with its deadline first: a dead
    // peer must fail the step, not hang the sampler's stream wait.
    if (nccl_ != nullptr)
      if (absl::Status s = Drain(absl::OkStatus()); !s.ok()) return s;
    if (!has_logits()) return absl::OkStatus();
    return sampler_->Sample(logits_.as<float>(), inputs, out);
  }
  // Waits for the step's work, so that its errors are its own (not the
  // next step's); `status` wins over a device error.
  absl::Status Drain(absl::Status status) {
    absl::Status synced;
#if MUSERVE_HAVE_NCCL
    if (nccl_ != nullptr) synced = nccl_->Synchronize();
#endif
    if (nccl_ == nullptr)
      synced = ToStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    return status.ok() ? synced : status;
  }
  absl::Status SetDevice() {
    MUSERVE_GPU_RETURN_IF_ERROR(cudaSetDevice(options_.device));
    return absl::OkStatus();
  }

 private:
  // The device addresses of one packed step.
  struct DeviceStep {
    int32_t rows = 0;       // token rows (padding included)
    int32_t sequences = 0;  // sequences (padding included)
    int32_t sampled = 0;    // rows of logits to compute
    int32_t block_stride = 0;
    const AttentionPlan* plan = nullptr;
    const int32_t* tokens = nullptr;
    const int32_t* positions = nullptr;
    const int64_t* slots = nullptr;
    const int32_t* query_start = nullptr;
    const int32_t* context_lens = nullptr;
    const int32_t* sample_rows = nullptr;
    const int32_t* tile_sequence = nullptr;
    const int32_t* tile_query_begin = nullptr;
    const int32_t* block_tables = nullptr;
  };
  DeviceStep Locate(const StepLayout& layout, const AttentionPlan& plan, int32_t rows,
                    int32_t sequences, int32_t sampled) const {
    const auto* base = metadata_.as<std::byte>();
    DeviceStep s;
    s.rows = rows;
    s.sequences = sequences;
    s.sampled = sampled;
    s.block_stride = layout.block_stride;
    s.plan = &plan;
    s.tokens = reinterpret_cast<const int32_t*>(base + layout.tokens);
    s.positions = reinterpret_cast<const int32_t*>(base + layout.positions);
    s.slots = reinterpret_cast<const int64_t*>(base + layout.slots);
    s.query_start = reinterpret_cast<const int32_t*>(base + layout.query_start);
    s.context_lens = reinterpret_cast<const int32_t*>(base + layout.context_lens);
    s.sample_rows = reinterpret_cast<const int32_t*>(base + layout.sample_rows);
    s.tile_sequence = reinterpret_cast<const int32_t*>(base + layout.tile_sequence);
    s.tile_query_begin = reinterpret_cast<const int32_t*>(base + layout.tile_query_begin);
    s.block_tables = reinterpret_cast<const int32_t*>(base + layout.block_tables);
    return s;
  }

  // Selects the device, makes the stream and (in a group) GroupMin's buffer.
  absl::Status Setup();
  // Uploads or makes the weights and allocates every per-step buffer.
  absl::Status Prepare(const ModelWeights* weights, uint64_t seed);
  // In a group: whether every rank's `mine` is OK (a collective every rank
  // reaches); `mine` itself, or Aborted when another rank failed.
  absl::Status Agree(absl::Status mine);
  absl::Status AllocateBuffers();
  // Sums a [n] fp32 device buffer over the group (nothing without one).
  absl::Status AllReduce(float* data, int64_t n) {
#if MUSERVE_HAVE_NCCL
    if (nccl_ != nullptr)
      return nccl_->AllReduceSum(std::span<float>(data, static_cast<size_t>(n)));
#endif
    (void)data;
    (void)n;
    return absl::OkStatus();
  }
  // The group's smallest `value` (every rank passes its own).
  absl::StatusOr<int64_t> GroupMin(int64_t value);
  // Rank r's [R, local vocab] logits to rank 0's [R, vocab] logits_.
  absl::Status GatherLogits(int64_t rows);
  absl::Status AllocateKv(int32_t num_blocks);
  absl::Status SizeKvPool();
  absl::Status CaptureGraphs();
  // Packs `batch` (padded to `padded` sequences) with `plan` into `layout`
  // and enqueues its host-to-device copy.
  absl::StatusOr<int32_t> Upload(const StepBatch& batch, const AttentionPlan& plan, int32_t padded,
                                 const StepLayout& layout);
  // Enqueues the whole forward pass of `step` on stream_ (capturable).
  absl::Status Enqueue(const DeviceStep& step);
  // out = a [m, k] . w [n, k]^T (+ bias) (+ beta * out), out in the model's
  // dtype or, with out_dtype F32, in fp32.
  absl::Status Gemm(const void* a, int64_t m, int64_t k, const void* w, int64_t n, const void* bias,
                    void* out, DType out_dtype = DType::kBF16, float beta = 0.0f) {
    GemmArgs g;
    g.dtype = dtype_;
    g.out_dtype = out_dtype == DType::kF32 ? DType::kF32 : dtype_;
    g.a = a;
    g.lda = k;
    g.w = w;
    g.bias = bias;
    g.out = out;
    g.ldo = n;
    g.m = m;
    g.n = n;
    g.k = k;
    g.beta = beta;
    return gemm_->Run(g);
  }
  void* Half(const DeviceBuffer& b, int64_t elements) const {
    return b.as<std::byte>() + elements * 2;
  }
  void* KCache(size_t layer) const {
    return kv_pool_.as<std::byte>() + static_cast<int64_t>(2 * layer) * kv_layer_bytes_;
  }
  void* VCache(size_t layer) const {
    return kv_pool_.as<std::byte>() + static_cast<int64_t>(2 * layer + 1) * kv_layer_bytes_;
  }

  ModelConfig config_;  // the whole model's
  ModelConfig local_;   // this rank's shapes (== config_ without a group)
  ShardLayout layout_;
  NcclCommunicator* nccl_ = nullptr;  // null for the whole model on one GPU
  CudaBackendOptions options_;
  DType dtype_ = DType::kBF16;
  cudaStream_t stream_ = nullptr;
  int32_t num_sms_ = 1;
  AttentionDims dims_;
  KvCacheLayout kv_layout_;
  int32_t max_tokens_ = 0;     // rows of every per-step buffer
  int32_t max_sequences_ = 0;  // sequences (and sampled rows) per step
  int32_t max_stride_ = 0;     // block table entries of the longest context
  int32_t graph_span_ = 0;     // longest context a graph serves
  std::unique_ptr<GemmRunner> gemm_;
  std::unique_ptr<GpuSampler> sampler_;
  DeviceModel model_;
  DeviceBuffer kv_pool_;
  int64_t kv_layer_bytes_ = 0;  // bytes of one layer's K (or V) pool
  int32_t num_blocks_ = 0;
  // Per-step activations: residual fp32 [T, H]; normed, proj [T, H];
  // qkv [T, q + 2 kv]; attn [T, q]; gate_up [T, 2 I]; act [T, I];
  // normed_rows [S, H]; logits fp32 [S, V].
  DeviceBuffer residual_, normed_, proj_, qkv_, attn_, gate_up_, act_, normed_rows_, logits_;
  // A group only: this rank's [S, local vocab] logits, and on rank 0 every
  // rank's, [ranks, S, local vocab].
  DeviceBuffer local_logits_, gathered_logits_;
  DeviceBuffer workspace_, metadata_;
  PinnedBuffer host_metadata_;
  // Recorded after each copy out of host_metadata_: the next Upload waits
  // for it before repacking, whatever the previous step did after its copy
  // (a step with no sampled row returns without waiting for the GPU).
  cudaEvent_t uploaded_ = nullptr;
  DeviceBuffer group_scratch_;  // a group only: GroupMin's [1 + ranks] floats
  std::vector<DecodeGraph> graphs_;
  std::vector<int32_t> graph_sizes_;
  CudaMemoryReport report_;
};

absl::Status CudaBackend::Impl::Init(const ModelWeights* weights, DType checkpoint_dtype,
                                     uint64_t seed) {
  const ModelConfig& c = local_;
  dims_ = {static_cast<int32_t>(c.num_attention_heads), static_cast<int32_t>(c.num_key_value_heads),
           static_cast<int32_t>(c.head_dim), options_.block_size,
           c.sliding_window ? static_cast<int32_t>(*c.sliding_window) : 0};
  if (absl::Status s = dims_.Validate(); !s.ok()) return s;
  if (c.num_attention_heads / c.num_key_value_heads > kMaxTileRows)
    return absl::InvalidArgumentError(absl::StrCat(
        "num_attention_heads / num_key_value_heads must be at most ", kMaxTileRows, " on CUDA"));
  int count = 0;
  if (const cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess || count == 0)
    return absl::UnavailableError(absl::StrCat(
        "no usable CUDA device: ",
        e != cudaSuccess ? absl::StrCat(cudaGetErrorName(e), ": ", cudaGetErrorString(e))
                         : std::string("none visible")));
  if (options_.device >= count)
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA device ", options_.device, " does not exist (", count, " visible)"));
  kv_layout_ = {c.num_key_value_heads, options_.block_size, c.head_dim};
  dtype_ = DeviceDTypeFor(checkpoint_dtype);
  // A rank that fails from here on still meets its peers in Agree, so that
  // the whole group fails together rather than waiting on it (until the
  // communicator's deadline) in a collective.
  if (absl::Status s = Agree(Setup()); !s.ok()) return s;
  if (absl::Status s = Agree(Prepare(weights, seed)); !s.ok()) return s;
  if (absl::Status s = SizeKvPool(); !s.ok()) return s;
  return CaptureGraphs();
}

absl::Status CudaBackend::Impl::Setup() {
  if (absl::Status s = SetDevice(); !s.ok()) return s;
  cudaDeviceProp prop{};
  MUSERVE_GPU_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, options_.device));
  num_sms_ = prop.multiProcessorCount;
  report_.device_name = prop.name;
  report_.total_bytes = static_cast<int64_t>(prop.totalGlobalMem);
  MUSERVE_GPU_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  MUSERVE_GPU_RETURN_IF_ERROR(cudaEventCreateWithFlags(&uploaded_, cudaEventDisableTiming));
  if (nccl_ != nullptr) {
    // GroupMin's buffer, taken before anything large: it must be there
    // when a rank reports that it ran out of memory.
    absl::StatusOr<DeviceBuffer> scratch = DeviceBuffer::Allocate(int64_t{4} * (layout_.size + 1));
    if (!scratch.ok()) return scratch.status();
    group_scratch_ = std::move(*scratch);
  }
#if MUSERVE_HAVE_NCCL
  // Collectives run in this stream's order (nccl_communicator.h).
  if (nccl_ != nullptr) nccl_->set_stream(stream_);
#endif
  return absl::OkStatus();
}

absl::Status CudaBackend::Impl::Prepare(const ModelWeights* weights, uint64_t seed) {
  const ModelConfig& c = local_;
  absl::StatusOr<DeviceModel> model;
  if (weights != nullptr) {
    absl::StatusOr<std::unique_ptr<WeightUploader>> uploader = WeightUploader::Create();
    if (!uploader.ok()) return uploader.status();
    model = UploadModel(c, *weights, dtype_, **uploader);
  } else {
    model = RandomModel(c, dtype_, seed);
  }
  if (!model.ok()) return model.status();
  model_ = std::move(*model);
  report_.weight_bytes = model_.bytes();

  absl::StatusOr<std::unique_ptr<GemmRunner>> gemm = GemmRunner::Create(stream_);
  if (!gemm.ok()) return gemm.status();
  gemm_ = std::move(*gemm);
  if (absl::Status s = AllocateBuffers(); !s.ok()) return s;
  if (has_logits()) {
    absl::StatusOr<std::unique_ptr<GpuSampler>> sampler =
        GpuSampler::Create(static_cast<int32_t>(config_.vocab_size), max_sequences_, stream_);
    if (!sampler.ok()) return sampler.status();
    sampler_ = std::move(*sampler);
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::Impl::Agree(absl::Status mine) {
  if (nccl_ == nullptr) return mine;
  absl::StatusOr<int64_t> all_ok = GroupMin(mine.ok() ? 1 : 0);
  if (!mine.ok()) return mine;
  if (!all_ok.ok()) return all_ok.status();
  if (*all_ok < 1)
    return absl::AbortedError(absl::StrCat(
        "rank ", layout_.rank, ": another rank of the tensor-parallel group failed to start"));
  return absl::OkStatus();
}

absl::Status CudaBackend::Impl::AllocateBuffers() {
  const ModelConfig& c = local_;
  max_tokens_ = options_.max_num_batched_tokens;
  max_sequences_ = std::min(options_.max_num_seqs, max_tokens_);
  max_stride_ = static_cast<int32_t>((c.max_position_embeddings + options_.block_size - 1) /
                                     options_.block_size);
  graph_span_ = static_cast<int32_t>(
      std::min<int64_t>(options_.max_graph_context, c.max_position_embeddings));
  const int64_t T = max_tokens_, S = max_sequences_;
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  // The full vocabulary's logits only where they are sampled (rank 0).
  const int64_t V = has_logits() ? config_.vocab_size : 0;
  const int64_t local_v = nccl_ != nullptr ? c.vocab_size : 0;
  const int64_t gathered_v = nccl_ != nullptr && has_logits() ? config_.vocab_size : 0;
  const int64_t qkv = c.q_size() + 2 * c.kv_size();
  // The attention workspace's bound: splits happen only while tiles x KV
  // heads < 2 x SMs, and then splits x rows <= 2 x (2 x SMs) x kMaxTileRows.
  const int64_t workspace =
      int64_t{4} * num_sms_ * kMaxTileRows * (c.head_dim + 1) * static_cast<int64_t>(sizeof(float));
  const StepLayout largest = StepLayout::For(max_tokens_, max_sequences_, max_tokens_, max_stride_);
  struct Want {
    DeviceBuffer* buffer;
    int64_t bytes;
  };
  const Want wants[] = {
      {&residual_, T * H * 4},
      {&normed_, T * H * 2},
      {&proj_, T * H * 2},
      {&qkv_, T * qkv * 2},
      {&attn_, T * c.q_size() * 2},
      {&gate_up_, T * 2 * I * 2},
      {&act_, T * I * 2},
      {&normed_rows_, S * H * 2},
      {&logits_, S * V * 4},
      {&workspace_, workspace},
      {&metadata_, largest.bytes},
      {&local_logits_, S * local_v * 4},
      {&gathered_logits_, S * gathered_v * 4},
  };
  int64_t total = 0;
  for (const Want& want : wants) {
    absl::StatusOr<DeviceBuffer> buffer = DeviceBuffer::Allocate(want.bytes);
    if (!buffer.ok())
      return absl::ResourceExhaustedError(
          absl::StrCat("the CUDA step buffers for max_num_batched_tokens ", T, " and max_num_seqs ",
                       S, " do not fit beside the weights (", report_.weight_bytes,
                       " bytes): ", buffer.status().message()));
    *want.buffer = std::move(*buffer);
    total += want.bytes;
  }
  report_.activation_bytes = total;
  return host_metadata_.Allocate(largest.bytes);
}

absl::Status CudaBackend::Impl::AllocateKv(int32_t num_blocks) {
  kv_pool_ = DeviceBuffer();
  kv_layer_bytes_ = int64_t{num_blocks} * kv_layout_.BlockElements() * 2;
  absl::StatusOr<DeviceBuffer> pool =
      DeviceBuffer::Allocate(kv_layer_bytes_ * 2 * config_.num_hidden_layers);
  if (!pool.ok()) return pool.status();
  kv_pool_ = std::move(*pool);
  num_blocks_ = num_blocks;
  // Zeros, as the CPU backend's pool: a padding row of a graph reads block 0.
  MUSERVE_GPU_RETURN_IF_ERROR(
      cudaMemsetAsync(kv_pool_.get(), 0, static_cast<size_t>(kv_pool_.bytes()), stream_));
  return absl::OkStatus();
}

absl::Status CudaBackend::Impl::SizeKvPool() {
  const int64_t block_bytes = kv_layout_.BlockElements() * 2 * 2 * config_.num_hidden_layers;
  report_.kv_bytes_per_token = block_bytes / options_.block_size;
  // A worst-case step over a one-block pool: max_num_batched_tokens tokens
  // of one sequence (as long as the model allows), every logical block
  // mapped to block 0 and no KV written (slots -1). What it takes beyond the
  // preallocated buffers (lazily loaded kernels, library state) is measured.
  size_t free_before = 0, free_after = 0, total = 0;
  const auto T =
      static_cast<int32_t>(std::min<int64_t>(max_tokens_, config_.max_position_embeddings));
  StepBatch batch;
  absl::StatusOr<AttentionPlan> plan = absl::UnknownError("not planned");
  StepLayout layout;
  absl::StatusOr<int32_t> sampled = absl::UnknownError("not uploaded");
  // Everything before the step's collectives, agreed on by a group.
  auto ready = [&]() -> absl::Status {
    if (absl::Status s = AllocateKv(1); !s.ok())
      return absl::ResourceExhaustedError(
          absl::StrCat("no room for even one KV block after the weights: ", s.message()));
    MUSERVE_GPU_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    MUSERVE_GPU_RETURN_IF_ERROR(cudaMemGetInfo(&free_before, &total));
    batch.tokens.assign(T, 0);
    batch.positions.resize(T);
    for (int32_t i = 0; i < T; ++i) batch.positions[i] = i;
    batch.slot_mapping.assign(T, -1);
    StepSequence seq;
    seq.query_start = 0;
    seq.query_len = T;
    seq.context_len = T;
    seq.block_table.assign((T + options_.block_size - 1) / options_.block_size, 0);
    seq.sample = true;
    batch.sequences.push_back(seq);
    const std::vector<int32_t> q = {T}, ctx = {T};
    plan = PlanPagedAttention(q, ctx, dims_, num_sms_);
    if (!plan.ok()) return plan.status();
    layout = StepLayout::For(T, 1, plan->num_tiles(), BlockStrideFor(batch, options_.block_size));
    sampled = Upload(batch, *plan, 1, layout);
    return sampled.status();
  };
  if (absl::Status s = Agree(ready()); !s.ok()) return s;
  // A failure inside the step leaves peers in its collectives: they fail
  // at the communicator's deadline.
  if (absl::Status s = Enqueue(Locate(layout, *plan, T, 1, *sampled)); !s.ok()) return Drain(s);
  if (absl::Status s = Drain(absl::OkStatus()); !s.ok()) return s;
  auto measured = [&]() -> absl::Status {
    MUSERVE_GPU_RETURN_IF_ERROR(cudaMemGetInfo(&free_after, &total));
    report_.peak_step_bytes =
        free_before > free_after ? static_cast<int64_t>(free_before - free_after) : 0;
    kv_pool_ = DeviceBuffer();
    MUSERVE_GPU_RETURN_IF_ERROR(cudaMemGetInfo(&free_after, &total));
    return absl::OkStatus();
  };
  const absl::Status measured_status = measured();

  int64_t num_blocks = options_.num_blocks;
  absl::Status sized = measured_status;
  if (sized.ok() && num_blocks == 0) {
    // The graphs' memory is not known before they are captured over the
    // final pool; keep a margin for them (their nodes, not buffers: the
    // buffers are shared with eager steps).
    const int64_t graph_margin =
        options_.max_graph_batch > 0 ? (int64_t{64} << 20) + (int64_t{4} << 20) * 24 : 0;
    const auto budget =
        static_cast<int64_t>(options_.gpu_memory_utilization * static_cast<double>(total));
    const int64_t in_use = static_cast<int64_t>(total - free_after);
    const int64_t kv_bytes = budget - in_use - graph_margin;
    num_blocks = kv_bytes > 0 ? kv_bytes / block_bytes : 0;
    if (num_blocks < 1)
      sized = absl::ResourceExhaustedError(
          absl::StrCat("--gpu-memory-utilization ", options_.gpu_memory_utilization, " of ", total,
                       " bytes leaves no KV cache: weights ", report_.weight_bytes,
                       ", step buffers ", report_.activation_bytes, ", in use ", in_use,
                       " bytes; raise it or lower "
                       "--max-num-batched-tokens / --max-num-seqs"));
    num_blocks = std::min<int64_t>(num_blocks, INT32_MAX / options_.block_size);
    if (options_.max_num_blocks > 0)
      num_blocks = std::min<int64_t>(num_blocks, options_.max_num_blocks);
  }
  // The ranks of a group share the scheduler's block tables: they take the
  // smallest pool any of them affords (0 from a rank that affords none).
  if (nccl_ != nullptr) {
    absl::StatusOr<int64_t> agreed = GroupMin(sized.ok() ? num_blocks : 0);
    if (!sized.ok()) return sized;
    if (!agreed.ok()) return agreed.status();
    if (*agreed < 1)
      return absl::AbortedError(absl::StrCat(
          "rank ", layout_.rank, ": another rank of the tensor-parallel group has no KV cache"));
    num_blocks = *agreed;
  }
  if (!sized.ok()) return sized;
  absl::Status allocated = AllocateKv(static_cast<int32_t>(num_blocks));
  if (!allocated.ok())
    allocated = absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate the KV cache of ", num_blocks, " blocks: ", allocated.message()));
  if (absl::Status s = Agree(allocated); !s.ok()) return s;
  report_.kv_bytes = kv_pool_.bytes();
  return absl::OkStatus();
}

absl::Status CudaBackend::Impl::CaptureGraphs() {
  // Ranks of a group run eagerly: a graph that captured NCCL calls pins the
  // communicator (NCCL 2.26 on waits in ncclCommAbort for such graphs to be
  // destroyed), so a rank that must abort after a peer died would hang.
  if (nccl_ != nullptr) return absl::OkStatus();
  const int32_t max_batch = std::min({options_.max_graph_batch, max_sequences_, max_tokens_});
  if (max_batch < 1) return absl::OkStatus();
  const int32_t stride = (graph_span_ + options_.block_size - 1) / options_.block_size;
  for (int32_t batch_size : GraphBatchSizes(max_batch)) {
    DecodeGraph g;
    g.batch = batch_size;
    absl::StatusOr<AttentionPlan> plan = PlanFixedDecode(batch_size, graph_span_, dims_, num_sms_);
    if (!plan.ok()) return plan.status();
    g.plan = std::move(*plan);
    g.layout = StepLayout::For(batch_size, batch_size, batch_size, stride);
    // All padding: the captured work is a decode of batch_size sequences.
    absl::StatusOr<int32_t> sampled = Upload(StepBatch{}, g.plan, batch_size, g.layout);
    if (!sampled.ok()) return sampled.status();
    const DeviceStep step = Locate(g.layout, g.plan, batch_size, batch_size, batch_size);
    // An eager run first: kernels load and GEMM algorithms are chosen
    // outside the capture.
    if (absl::Status s = Enqueue(step); !s.ok()) return s;
    if (absl::Status s = Drain(absl::OkStatus()); !s.ok()) return s;
    cudaGraph_t graph = nullptr;
    MUSERVE_GPU_RETURN_IF_ERROR(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    const absl::Status enqueued = Enqueue(step);
    const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
    if (!enqueued.ok()) {
      if (graph != nullptr) cudaGraphDestroy(graph);
      return enqueued;
    }
    MUSERVE_GPU_RETURN_IF_ERROR(ended);
    const cudaError_t made = cudaGraphInstantiate(&g.exec, graph, 0);
    cudaGraphDestroy(graph);
    MUSERVE_GPU_RETURN_IF_ERROR(made);
    graphs_.push_back(std::move(g));
    graph_sizes_.push_back(batch_size);
  }
  report_.num_graphs = static_cast<int32_t>(graphs_.size());
  return absl::OkStatus();
}

absl::StatusOr<int32_t> CudaBackend::Impl::Upload(const StepBatch& batch, const AttentionPlan& plan,
                                                  int32_t padded, const StepLayout& layout) {
  // The previous step's copy must have read the buffer before it changes.
  MUSERVE_GPU_RETURN_IF_ERROR(cudaEventSynchronize(uploaded_));
  absl::StatusOr<int32_t> sampled =
      PackStep(batch, plan, padded, options_.block_size, layout, host_metadata_.span());
  if (!sampled.ok()) return sampled.status();
  MUSERVE_GPU_RETURN_IF_ERROR(cudaMemcpyAsync(metadata_.get(), host_metadata_.span().data(),
                                              static_cast<size_t>(layout.bytes),
                                              cudaMemcpyHostToDevice, stream_));
  MUSERVE_GPU_RETURN_IF_ERROR(cudaEventRecord(uploaded_, stream_));
  return sampled;
}

absl::Status CudaBackend::Impl::RunStep(const StepBatch& batch, size_t logits_size) {
  const ModelConfig& c = config_;
  if (batch.num_tokens() > max_tokens_)
    return absl::InvalidArgumentError(absl::StrCat("step batch has ", batch.num_tokens(),
                                                   " tokens, more than max_num_batched_tokens ",
                                                   max_tokens_));
  if (batch.sequences.size() > static_cast<size_t>(max_sequences_))
    return absl::InvalidArgumentError(absl::StrCat("step batch has ", batch.sequences.size(),
                                                   " sequences, more than max_num_seqs ",
                                                   max_sequences_));
  if (absl::Status s =
          cpu::ValidateStepBatch(batch, c, options_.block_size, num_blocks_, logits_size);
      !s.ok())
    return s;
  if (batch.num_tokens() == 0) return absl::OkStatus();
  if (absl::Status s = SetDevice(); !s.ok()) return s;

  // A decode step (every sequence one new, sampled token) that a graph covers.
  bool decode =
      !graphs_.empty() && batch.sequences.size() <= static_cast<size_t>(graphs_.back().batch);
  for (const StepSequence& seq : batch.sequences)
    decode = decode && seq.query_len == 1 && seq.sample && seq.context_len <= graph_span_;
  if (decode) {
    const auto S = static_cast<int32_t>(batch.sequences.size());
    const DecodeGraph& g =
        *std::lower_bound(graphs_.begin(), graphs_.end(), S,
                          [](const DecodeGraph& graph, int32_t n) { return graph.batch < n; });
    absl::StatusOr<int32_t> sampled = Upload(batch, g.plan, g.batch, g.layout);
    if (!sampled.ok()) return sampled.status();
    MUSERVE_GPU_RETURN_IF_ERROR(cudaGraphLaunch(g.exec, stream_));
    return absl::OkStatus();
  }

  std::vector<int32_t> query_lens, context_lens;
  query_lens.reserve(batch.sequences.size());
  context_lens.reserve(batch.sequences.size());
  for (const StepSequence& seq : batch.sequences) {
    query_lens.push_back(seq.query_len);
    context_lens.push_back(seq.context_len);
  }
  absl::StatusOr<AttentionPlan> plan =
      PlanPagedAttention(query_lens, context_lens, dims_, num_sms_);
  if (!plan.ok()) return plan.status();
  const auto S = static_cast<int32_t>(batch.sequences.size());
  const StepLayout layout = StepLayout::For(batch.num_tokens(), S, plan->num_tiles(),
                                            BlockStrideFor(batch, options_.block_size));
  absl::StatusOr<int32_t> sampled = Upload(batch, *plan, S, layout);
  if (!sampled.ok()) return sampled.status();
  return Enqueue(Locate(layout, *plan, batch.num_tokens(), S, *sampled));
}

absl::StatusOr<int64_t> CudaBackend::Impl::GroupMin(int64_t value) {
#if MUSERVE_HAVE_NCCL
  // Exact as floats: block counts stay below 2^24 (INT32_MAX / block size
  // with 16-token blocks is 2^27, but no GPU holds 2^24 blocks of a model).
  const int32_t ranks = layout_.size;
  if (group_scratch_.get() == nullptr) {
    // Setup failed before taking it: try now (this rank's peers wait).
    absl::StatusOr<DeviceBuffer> scratch = DeviceBuffer::Allocate(int64_t{4} * (ranks + 1));
    if (!scratch.ok()) return scratch.status();
    group_scratch_ = std::move(*scratch);
  }
  const auto mine = static_cast<float>(std::min<int64_t>(value, int64_t{1} << 24));
  // Synchronous: the collective may go on the communicator's own stream
  // when this rank's stream could not be made.
  MUSERVE_GPU_RETURN_IF_ERROR(
      cudaMemcpy(group_scratch_.get(), &mine, sizeof(float), cudaMemcpyHostToDevice));
  const std::span<const float> in(group_scratch_.as<float>(), 1);
  const std::span<float> out(group_scratch_.as<float>() + 1, static_cast<size_t>(ranks));
  if (absl::Status s = nccl_->AllGather(in, out); !s.ok()) return s;
  // Waited for with the group's deadline before the host copy (which would
  // block without one on a gather that never completes).
  if (absl::Status s = nccl_->Synchronize(); !s.ok()) return s;
  std::vector<float> all(static_cast<size_t>(ranks));
  MUSERVE_GPU_RETURN_IF_ERROR(
      cudaMemcpy(all.data(), out.data(), all.size() * sizeof(float), cudaMemcpyDeviceToHost));
  return static_cast<int64_t>(*std::min_element(all.begin(), all.end()));
#else
  return value;
#endif
}

absl::Status CudaBackend::Impl::GatherLogits(int64_t rows) {
#if MUSERVE_HAVE_NCCL
  const int64_t local_v = local_.vocab_size;
  const std::span<const float> local(local_logits_.as<float>(),
                                     static_cast<size_t>(rows * local_v));
  if (!has_logits()) return nccl_->Gather(local, {}, /*root=*/0);
  const int32_t ranks = layout_.size;
  if (absl::Status s = nccl_->Gather(local,
                                     std::span<float>(gathered_logits_.as<float>(),
                                                      static_cast<size_t>(ranks * rows * local_v)),
                                     /*root=*/0);
      !s.ok())
    return s;
  // [rank, row, local vocab] -> [row, rank * local vocab + j].
  for (int32_t r = 0; r < ranks; ++r)
    MUSERVE_GPU_RETURN_IF_ERROR(cudaMemcpy2DAsync(
        logits_.as<float>() + r * local_v, config_.vocab_size * sizeof(float),
        gathered_logits_.as<float>() + r * rows * local_v, local_v * sizeof(float),
        local_v * sizeof(float), static_cast<size_t>(rows), cudaMemcpyDeviceToDevice, stream_));
  return absl::OkStatus();
#else
  (void)rows;
  return absl::InternalError("tensor parallelism needs NCCL");
#endif
}

absl::Status CudaBackend::Impl::Enqueue(const DeviceStep& step) {
  const ModelConfig& c = local_;
  const int64_t T = step.rows, H = c.hidden_size, I = c.intermediate_size;
  const int64_t q_size = c.q_size(), kv_size = c.kv_size(), qkv = q_size + 2 * kv_size;
  const auto eps = static_cast<float>(c.rms_norm_eps);
  float* residual = residual_.as<float>();
  if (step.plan->WorkspaceBytes(T, dims_) > workspace_.bytes())
    return absl::InternalError(
        absl::StrCat("attention plan needs ", step.plan->WorkspaceBytes(T, dims_),
                     " workspace bytes; ", workspace_.bytes(), " allocated"));
  // In a group, the O and down projections' partial sums go straight into
  // the fp32 residual (rank 0 adds to it, the others overwrite their copy)
  // and the all-reduce then leaves residual + the sum of the partials on
  // every rank, as Megatron's row-parallel layers do; the norms then have
  // nothing to add. Alone, a projection lands in proj_ and is added by the
  // next norm.
  const bool group = nccl_ != nullptr;
  // Writes the projection a [T, k] x w^T into the residual stream (group)
  // or into proj_ (alone).
  auto project = [&](const void* a, int64_t k, const void* w) -> absl::Status {
    if (!group) return Gemm(a, T, k, w, H, nullptr, proj_.get());
    if (absl::Status s =
            Gemm(a, T, k, w, H, nullptr, residual, DType::kF32, layout_.rank == 0 ? 1.0f : 0.0f);
        !s.ok())
      return s;
    return AllReduce(residual, T * H);
  };
  // What the next norm adds to the residual: nothing in a group.
  const void* pending = nullptr;

#define MUSERVE_STEP(call)                          \
  do {                                              \
    if (absl::Status s = (call); !s.ok()) return s; \
  } while (false)
  MUSERVE_STEP(LaunchEmbedding(dtype_, step.tokens, T, model_.embed.get(), c.vocab_size, H,
                               layout_.vocab_begin, residual, stream_));
  // A rank embeds its vocabulary range and zeros elsewhere: sum the ranks.
  if (group) MUSERVE_STEP(AllReduce(residual, T * H));
  for (size_t l = 0; l < model_.layers.size(); ++l) {
    const DeviceLayer& layer = model_.layers[l];
    MUSERVE_STEP(LaunchAddRmsNorm(dtype_, residual, pending, layer.input_norm.get(), T, H, eps,
                                  normed_.get(), stream_));
    MUSERVE_STEP(Gemm(normed_.get(), T, H, layer.qkv.get(), qkv, layer.qkv_bias.get(), qkv_.get()));
    MUSERVE_STEP(LaunchRope(dtype_, qkv_.get(), qkv, c.num_attention_heads, Half(qkv_, q_size), qkv,
                            c.num_key_value_heads, c.head_dim, step.positions,
                            model_.inv_freq.as<float>(), T, stream_));
    MUSERVE_STEP(LaunchKvCacheWrite(dtype_, Half(qkv_, q_size), qkv, Half(qkv_, q_size + kv_size),
                                    qkv, step.slots, T, kv_layout_, KCache(l), VCache(l), stream_));
    PagedAttentionArgs a;
    a.dtype = dtype_;
    a.dims = dims_;
    a.k_cache = KCache(l);
    a.v_cache = VCache(l);
    a.q = qkv_.get();
    a.q_stride = qkv;
    a.out = attn_.get();
    a.num_tokens = T;
    a.query_start = step.query_start;
    a.context_lens = step.context_lens;
    a.block_tables = step.block_tables;
    a.max_blocks_per_sequence = step.block_stride;
    a.tile_sequence = step.tile_sequence;
    a.tile_query_begin = step.tile_query_begin;
    a.workspace = workspace_.get();
    MUSERVE_STEP(LaunchPagedAttention(a, *step.plan, stream_));
    MUSERVE_STEP(project(attn_.get(), q_size, layer.o.get()));
    MUSERVE_STEP(LaunchAddRmsNorm(dtype_, residual, group ? nullptr : proj_.get(),
                                  layer.post_norm.get(), T, H, eps, normed_.get(), stream_));
    MUSERVE_STEP(Gemm(normed_.get(), T, H, layer.gate_up.get(), 2 * I, nullptr, gate_up_.get()));
    MUSERVE_STEP(
        LaunchSiluMul(dtype_, gate_up_.get(), Half(gate_up_, I), 2 * I, T, I, act_.get(), stream_));
    MUSERVE_STEP(project(act_.get(), I, layer.down.get()));
    pending = group ? nullptr : proj_.get();
  }
  if (step.sampled == 0) return absl::OkStatus();
  // The last down projection joins the residual in the final norm; the
  // norm runs over every row (cheap) and only the sampled rows go on.
  MUSERVE_STEP(LaunchAddRmsNorm(dtype_, residual, pending, model_.final_norm.get(), T, H, eps,
                                normed_.get(), stream_));
  MUSERVE_STEP(LaunchGatherRows(normed_.get(), H * 2, step.sample_rows, step.sampled,
                                normed_rows_.get(), stream_));
  // A rank's vocabulary slice, gathered to rank 0.
  MUSERVE_STEP(Gemm(normed_rows_.get(), step.sampled, H, model_.lm_head_weights(), c.vocab_size,
                    nullptr, group ? local_logits_.get() : logits_.get(), DType::kF32));
  if (group) MUSERVE_STEP(GatherLogits(step.sampled));
#undef MUSERVE_STEP
  return absl::OkStatus();
}

CudaBackend::CudaBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaBackend::~CudaBackend() = default;

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(
    const LoadedModel& model, const CudaBackendOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  if (absl::Status s = model.config.Validate(); !s.ok()) return s;
  if (model.weights.layers.size() != static_cast<size_t>(model.config.num_hidden_layers))
    return absl::InvalidArgumentError(absl::StrCat("model has ", model.weights.layers.size(),
                                                   " bound layers, config says ",
                                                   model.config.num_hidden_layers));
  absl::StatusOr<ShardLayout> whole = MakeShardLayout(model.config, 0, 1);
  if (!whole.ok()) return whole.status();
  auto impl = std::make_unique<Impl>(model.config, options, *whole, nullptr);
  if (absl::Status s = impl->Init(&model.weights, model.config.torch_dtype, 0); !s.ok()) return s;
  return std::unique_ptr<CudaBackend>(new CudaBackend(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::CreateRandom(
    const ModelConfig& config, const CudaBackendOptions& options, uint64_t seed) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  absl::StatusOr<ShardLayout> whole = MakeShardLayout(config, 0, 1);
  if (!whole.ok()) return whole.status();
  auto impl = std::make_unique<Impl>(config, options, *whole, nullptr);
  if (absl::Status s = impl->Init(nullptr, config.torch_dtype, seed); !s.ok()) return s;
  return std::unique_ptr<CudaBackend>(new CudaBackend(std::move(impl)));
}

#if MUSERVE_HAVE_NCCL
absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::CreateRank(
    const LoadedModel& model, NcclCommunicator& communicator, const CudaBackendOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  if (absl::Status s = model.config.Validate(); !s.ok()) return s;
  if (communicator.device() != options.device)
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", communicator.rank(), "'s communicator is on device ",
                     communicator.device(), ", options.device is ", options.device));
  absl::StatusOr<ShardLayout> layout =
      MakeShardLayout(model.config, communicator.rank(), communicator.size());
  if (!layout.ok()) return layout.status();
  // The rank's slices: row ranges are views of the mapping, column ranges
  // copies of just the rank's columns; both only until they are uploaded.
  absl::StatusOr<ShardWeights> shard = ShardModelWeights(model.config, model.weights, *layout);
  if (!shard.ok()) return shard.status();
  auto impl = std::make_unique<Impl>(model.config, options, *layout, &communicator);
  if (absl::Status s = impl->Init(&shard->weights, model.config.torch_dtype, 0); !s.ok()) return s;
  return std::unique_ptr<CudaBackend>(new CudaBackend(std::move(impl)));
}
#endif

const ModelConfig& CudaBackend::config() const { return impl_->config(); }
KvCacheGeometry CudaBackend::kv_cache() const { return impl_->kv_cache(); }
int32_t CudaBackend::max_num_batched_tokens() const { return impl_->max_num_batched_tokens(); }
const CudaMemoryReport& CudaBackend::memory_report() const { return impl_->report(); }
std::span<const int32_t> CudaBackend::graph_batch_sizes() const { return impl_->graph_sizes(); }

absl::Status CudaBackend::Forward(const StepBatch& batch, std::span<float> logits) {
  const size_t rows = static_cast<size_t>(batch.num_sampled());
  if (absl::Status s = impl_->RunStep(batch, logits.size()); !s.ok()) return impl_->Drain(s);
  if (rows == 0 || batch.num_tokens() == 0) return impl_->Drain(absl::OkStatus());
  return impl_->CopyLogits(static_cast<int32_t>(rows), logits);
}

absl::Status CudaBackend::ForwardSample(const StepBatch& batch, std::span<const SampleInput> inputs,
                                        std::span<SampledToken> out) {
  if (inputs.size() != out.size())
    return absl::InvalidArgumentError(
        absl::StrCat("ForwardSample: ", inputs.size(), " inputs but ", out.size(), " outputs"));
  if (absl::Status s =
          impl_->RunStep(batch, inputs.size() * static_cast<size_t>(config().vocab_size));
      !s.ok())
    return impl_->Drain(s);
  if (inputs.empty() || batch.num_tokens() == 0) return impl_->Drain(absl::OkStatus());
  return impl_->Sample(inputs, out);
}

}  // namespace muserve::cuda
