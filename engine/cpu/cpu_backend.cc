#include "engine/cpu/cpu_backend.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/cpu/attention.h"
#include "engine/cpu/kernel_table.h"
#include "engine/cpu/layer_ops.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/step_validation.h"
#include "engine/cpu/thread_pool.h"
#include "engine/model/shard.h"

namespace muserve {

using cpu::WeightMatrix;

absl::Status CpuBackendOptions::Validate() const {
  if (num_threads < 1)
    return absl::InvalidArgumentError(absl::StrCat("num_threads must be >= 1, got ", num_threads));
  if (num_threads > 1024)
    return absl::InvalidArgumentError(absl::StrCat("num_threads ", num_threads, " is too large"));
  if (block_size < 1)
    return absl::InvalidArgumentError(absl::StrCat("block_size must be >= 1, got ", block_size));
  if (num_blocks < 1)
    return absl::InvalidArgumentError(absl::StrCat("num_blocks must be >= 1, got ", num_blocks));
  if (max_num_batched_tokens < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("max_num_batched_tokens must be >= 1, got ", max_num_batched_tokens));
  return absl::OkStatus();
}

namespace {

// a * b * ..., or nullopt if the product overflows int64 (or a factor is negative).
template <class... Ints>
std::optional<int64_t> CheckedProduct(Ints... factors) {
  int64_t product = 1;
  for (int64_t f : {static_cast<int64_t>(factors)...})
    if (f < 0 || __builtin_mul_overflow(product, f, &product)) return std::nullopt;
  return product;
}

// A checkpoint tensor as a matrix: [rows, cols] for 2-D, [1, n] for vectors.
WeightMatrix Matrix(const TensorView& t) {
  if (t.shape.size() == 2) return {t.data, t.dtype, t.shape[0], t.shape[1]};
  return {t.data, t.dtype, 1, t.num_elements()};
}

// One decoder layer. Invariants: the WeightMatrix views point into the
// checkpoint mapping owned by Impl::model_, which outlives the layer, with the
// shapes the weight binding (weights.h) checked against the config, at any
// alignment; norms are [hidden] fp32 copies; the biases are [q_size] / [kv_size] with
// attention_bias and all three empty otherwise; k_cache and v_cache are
// [num_blocks * block_size, kv_size], zero until a step writes a slot.
struct Layer {
  std::vector<float> input_norm, post_norm;
  std::vector<float> q_bias, k_bias, v_bias;
  WeightMatrix q, k, v, o, gate, up, down;
  std::vector<float> k_cache, v_cache;
};

// An fp32 buffer allocated once and left uninitialised, so that its pages are
// only committed when a step first writes them (steps rarely use all rows).
class Buffer {
 public:
  void Allocate(int64_t floats) { data_.reset(new float[static_cast<size_t>(floats)]); }
  float* data() { return data_.get(); }

 private:
  std::unique_ptr<float[]> data_;
};

}  // namespace

int64_t CpuKvBytesPerToken(const ModelConfig& config, int32_t tensor_parallel_size) {
  const int64_t kv_heads =
      std::max<int64_t>(1, config.num_key_value_heads / std::max(tensor_parallel_size, 1));
  return CheckedProduct(config.num_hidden_layers, 2, kv_heads, config.head_dim, sizeof(float))
      .value_or(std::numeric_limits<int64_t>::max());
}

// Invariants: layers_.size() == config.num_hidden_layers; the layer graph
// has local_'s shapes (the whole model's config_ unless a tensor-parallel
// rank), and communicator_ is null exactly for the whole model (Create), so
// that one rank without a group runs no collectives;
// every per-step buffer holds max_num_batched_tokens rows, the MatMul scratch
// is reserved for every weight matrix and scores_ for the longest attended
// span, so Forward does not allocate; Forward runs on one thread at a time
// (the pool's workers only run inside it).
class CpuBackend::Impl {
 public:
  // The whole model, owned.
  Impl(LoadedModel model, const CpuBackendOptions& options)
      : Impl(model.config, *MakeShardLayout(model.config, 0, 1), nullptr, options) {
    model_ = std::move(model);
    Bind(model_->weights);
  }
  // One rank's slices (validated layout) of a model the caller keeps alive.
  Impl(const ModelConfig& config, ShardWeights shard, const ShardLayout& layout,
       Communicator& communicator, const CpuBackendOptions& options)
      : Impl(config, layout, &communicator, options) {
    shard_ = std::move(shard);
    Bind(shard_.weights);
  }

  const ModelConfig& config() const { return config_; }
  KvCacheGeometry kv_cache() const { return {options_.block_size, options_.num_blocks}; }
  int32_t max_num_batched_tokens() const { return options_.max_num_batched_tokens; }

  absl::Status Forward(const StepBatch& batch, std::span<float> logits);

 private:
  Impl(const ModelConfig& config, const ShardLayout& layout, Communicator* communicator,
       const CpuBackendOptions& options)
      : config_(config),
        layout_(layout),
        local_(layout.LocalConfig(config)),
        communicator_(communicator),
        options_(options),
        kernels_(cpu::KernelsFor(cpu::BestIsa())),
        pool_(options.num_threads),
        scratch_(options.num_threads),
        scores_(options.num_threads) {}

  // Builds the layers over `w` (local_'s shapes) and reserves every buffer.
  // Throws std::bad_alloc (or std::length_error) when memory runs out;
  // Create maps it to ResourceExhausted.
  void Bind(const ModelWeights& w) {
    const ModelConfig& c = local_;
    const size_t pool_floats =
        static_cast<size_t>(options_.num_blocks) * options_.block_size * c.kv_size();
    for (const LayerWeights& lw : w.layers) {
      Layer l;
      l.input_norm = cpu::ToF32Vector(kernels_, Matrix(lw.input_layernorm));
      l.post_norm = cpu::ToF32Vector(kernels_, Matrix(lw.post_attention_layernorm));
      if (lw.q_bias) l.q_bias = cpu::ToF32Vector(kernels_, Matrix(*lw.q_bias));
      if (lw.k_bias) l.k_bias = cpu::ToF32Vector(kernels_, Matrix(*lw.k_bias));
      if (lw.v_bias) l.v_bias = cpu::ToF32Vector(kernels_, Matrix(*lw.v_bias));
      l.q = Matrix(lw.q_proj);
      l.k = Matrix(lw.k_proj);
      l.v = Matrix(lw.v_proj);
      l.o = Matrix(lw.o_proj);
      l.gate = Matrix(lw.gate_proj);
      l.up = Matrix(lw.up_proj);
      l.down = Matrix(lw.down_proj);
      l.k_cache.assign(pool_floats, 0.0f);
      l.v_cache.assign(pool_floats, 0.0f);
      layers_.push_back(std::move(l));
    }
    final_norm_ = cpu::ToF32Vector(kernels_, Matrix(w.norm));
    embed_ = Matrix(w.embed_tokens);
    lm_head_ = Matrix(w.lm_head);
    inv_freq_ = cpu::RopeInverseFrequencies(c);
    shape_ = {c.num_attention_heads, c.num_key_value_heads, c.head_dim, options_.block_size,
              c.sliding_window};
    ReservePerStepBuffers();
  }

  void ReservePerStepBuffers();
  absl::Status RunLayer(Layer& layer, const StepBatch& batch);
  // Sums a [T, hidden] buffer over the group's ranks (nothing for one rank).
  // `extra` more floats after the rows (the embedding's verdict, see Forward).
  absl::Status AllReduce(Buffer& buffer, int64_t T, int64_t extra = 0) {
    if (communicator_ == nullptr) return absl::OkStatus();
    return communicator_->AllReduceSum(
        std::span<float>(buffer.data(), static_cast<size_t>(T * config_.hidden_size + extra)));
  }
  // Ranks only: makes room for R rows of logits. False if memory ran out.
  bool GrowLogits(int64_t R);
  // Writes the LM head's logits of the R rows in normed_ into `logits`
  // ([R, vocab]): directly for one rank, else through the ranks' slices.
  absl::Status LmHead(int64_t R, std::span<float> logits);
  // Runs fn(row_begin, row_end) over [0, rows) on the pool.
  template <class Fn>
  void ForRows(int64_t rows, Fn fn) {
    pool_.ParallelFor(rows, [&](int, int64_t b, int64_t e) { fn(b, e); });
  }

  // What the weights point into: the whole model, or a rank's slices of a
  // model kept alive by the caller.
  std::optional<LoadedModel> model_;
  ShardWeights shard_;
  ModelConfig config_;  // the whole model's
  ShardLayout layout_;
  ModelConfig local_;  // this rank's shapes (== config_ for one rank)
  Communicator* communicator_ = nullptr;
  CpuBackendOptions options_;
  const cpu::KernelTable& kernels_;
  cpu::ThreadPool pool_;
  cpu::MatMulScratch scratch_;
  std::vector<std::vector<float>> scores_;
  std::vector<Layer> layers_;
  std::vector<float> final_norm_;
  WeightMatrix embed_, lm_head_;
  std::vector<float> inv_freq_;
  cpu::AttentionShape shape_;

  // Activations of the current step, [T, width] row-major, allocated for
  // max_num_batched_tokens rows.
  Buffer hidden_, normed_, q_, k_, v_, attn_, proj_, gate_, up_;
  Buffer cos_, sin_;
  std::vector<int32_t> token_sequence_;  // [max_num_batched_tokens]
  std::vector<int64_t> rows_;            // sampled rows; capacity max_num_batched_tokens
  // Ranks only: [R, local vocab] logits of this rank, and (rank 0 only,
  // which alone returns logits) every rank's, [ranks, R, local vocab]. Grown
  // to the most sampled rows seen so far (as the caller's logits are), not
  // reserved for max_num_batched_tokens rows: that many rows of a large
  // vocabulary would be gigabytes.
  std::vector<float> local_logits_, gathered_logits_;
};

void CpuBackend::Impl::ReservePerStepBuffers() {
  const ModelConfig& c = local_;
  const int64_t T = options_.max_num_batched_tokens;
  // Sizes of a validated config times T <= 2^31 fit int64 (config bounds:
  // widths <= 2^20); Create has checked the total.
  for (Buffer* b : {&normed_, &proj_}) b->Allocate(T * c.hidden_size);
  hidden_.Allocate(T * c.hidden_size + 1);  // + the verdict element (Forward)
  for (Buffer* b : {&q_, &attn_}) b->Allocate(T * c.q_size());
  for (Buffer* b : {&k_, &v_}) b->Allocate(T * c.kv_size());
  for (Buffer* b : {&gate_, &up_}) b->Allocate(T * c.intermediate_size);
  for (Buffer* b : {&cos_, &sin_}) b->Allocate(T * static_cast<int64_t>(inv_freq_.size()));
  token_sequence_.assign(T, 0);
  rows_.reserve(T);
  for (const Layer& l : layers_)
    for (const WeightMatrix* w : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down})
      scratch_.Reserve(*w);
  scratch_.Reserve(lm_head_);
  // ValidateStepBatch bounds every attended span by the pool and by
  // max_position_embeddings (and the window, if any).
  int64_t span = std::min<int64_t>(c.max_position_embeddings,
                                   static_cast<int64_t>(options_.num_blocks) * options_.block_size);
  if (c.sliding_window) span = std::min(span, *c.sliding_window);
  const size_t floats = cpu::AttentionScratchFloats(shape_, span);
  for (std::vector<float>& s : scores_) s.resize(floats);
}

absl::Status CpuBackend::Impl::Forward(const StepBatch& batch, std::span<float> logits) {
  // Validation depends only on the batch and the whole model's config, so
  // every rank of a group accepts or rejects a batch alike, before any
  // collective.
  const ModelConfig& c = config_;
  if (batch.num_tokens() > options_.max_num_batched_tokens)
    return absl::InvalidArgumentError(absl::StrCat("step batch has ", batch.num_tokens(),
                                                   " tokens, more than max_num_batched_tokens ",
                                                   options_.max_num_batched_tokens));
  if (absl::Status s =
          cpu::ValidateStepBatch(batch, c, options_.block_size, options_.num_blocks, logits.size());
      !s.ok())
    return s;
  const int64_t T = batch.num_tokens();
  if (T == 0) return absl::OkStatus();
  const int64_t H = c.hidden_size;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const StepSequence& seq = batch.sequences[s];
    std::fill_n(token_sequence_.begin() + seq.query_start, seq.query_len, static_cast<int32_t>(s));
  }

  ForRows(T, [&](int64_t b, int64_t e) {
    cpu::Embed(kernels_, embed_, batch.tokens.data() + b, e - b, hidden_.data() + b * H,
               layout_.vocab_begin);
    cpu::RopeCosSin(inv_freq_, batch.positions.data() + b, e - b,
                    cos_.data() + b * inv_freq_.size(), sin_.data() + b * inv_freq_.size());
  });
  if (communicator_ != nullptr) {
    // A rank that cannot grow its logits buffers must not leave its peers
    // waiting in a collective: the embedding's all-reduce carries each
    // rank's verdict in one more element, and the ranks fail the step
    // together.
    hidden_.data()[T * H] = GrowLogits(batch.num_sampled()) ? 0.0f : 1.0f;
    if (absl::Status s = AllReduce(hidden_, T, /*extra=*/1); !s.ok()) return s;
    if (hidden_.data()[T * H] != 0.0f)
      return absl::ResourceExhaustedError(
          "a tensor-parallel rank ran out of memory for its logits buffers");
  }
  for (Layer& layer : layers_)
    if (absl::Status s = RunLayer(layer, batch); !s.ok()) return s;

  // Final norm and LM head only for the last row of each sampled sequence
  // (at most T rows: rows_ has the capacity, push_back does not allocate).
  std::vector<int64_t>& rows = rows_;
  rows.clear();
  for (const StepSequence& seq : batch.sequences)
    if (seq.sample) rows.push_back(seq.query_start + seq.query_len - 1);
  if (rows.empty()) return absl::OkStatus();
  const int64_t R = static_cast<int64_t>(rows.size());
  for (int64_t r = 0; r < R; ++r)
    cpu::RmsNorm(kernels_, hidden_.data() + rows[r] * H, 1, H, final_norm_.data(),
                 static_cast<float>(c.rms_norm_eps), normed_.data() + r * H);
  return LmHead(R, logits);
}

bool CpuBackend::Impl::GrowLogits(int64_t R) {
  // Both sizes are checked, not only the local one: a growth that failed
  // half way leaves the buffers of different capacities, and LmHead writes
  // R rows into each.
  const auto floats = static_cast<size_t>(R * local_.vocab_size);
  const size_t gathered_floats = layout_.rank == 0 ? floats * static_cast<size_t>(layout_.size) : 0;
  if (local_logits_.size() >= floats && gathered_logits_.size() >= gathered_floats) return true;
  try {
    if (gathered_logits_.size() < gathered_floats) gathered_logits_.resize(gathered_floats);
    if (local_logits_.size() < floats) local_logits_.resize(floats);
  } catch (const std::bad_alloc&) {
    return false;
  } catch (const std::length_error&) {
    return false;
  }
  return true;
}

absl::Status CpuBackend::Impl::LmHead(int64_t R, std::span<float> logits) {
  if (communicator_ == nullptr) {
    cpu::MatMul(pool_, kernels_, scratch_, normed_.data(), R, lm_head_, logits.data());
    return absl::OkStatus();
  }
  const int64_t local_vocab = local_.vocab_size;
  const int64_t vocab = config_.vocab_size;
  const int32_t ranks = layout_.size;
  cpu::MatMul(pool_, kernels_, scratch_, normed_.data(), R, lm_head_, local_logits_.data());
  const auto local = std::span<const float>(local_logits_.data(), R * local_vocab);
  // Only rank 0's logits are used (TensorParallelBackend returns them), so
  // the slices are gathered there alone.
  if (layout_.rank != 0) return communicator_->Gather(local, {}, /*root=*/0);
  if (absl::Status s = communicator_->Gather(
          local, std::span<float>(gathered_logits_.data(), R * local_vocab * ranks), /*root=*/0);
      !s.ok())
    return s;
  // [rank, row, local vocab] -> [row, rank * local vocab + j].
  for (int32_t r = 0; r < ranks; ++r)
    for (int64_t row = 0; row < R; ++row)
      std::copy_n(gathered_logits_.data() + (r * R + row) * local_vocab, local_vocab,
                  logits.data() + row * vocab + r * local_vocab);
  return absl::OkStatus();
}

absl::Status CpuBackend::Impl::RunLayer(Layer& layer, const StepBatch& batch) {
  const ModelConfig& c = local_;
  const int64_t T = batch.num_tokens();
  const int64_t H = c.hidden_size;
  const int64_t I = c.intermediate_size;
  const float eps = static_cast<float>(c.rms_norm_eps);

  ForRows(T, [&](int64_t b, int64_t e) {
    cpu::RmsNorm(kernels_, hidden_.data() + b * H, e - b, H, layer.input_norm.data(), eps,
                 normed_.data() + b * H);
  });
  cpu::MatMul(pool_, kernels_, scratch_, normed_.data(), T, layer.q, q_.data());
  cpu::MatMul(pool_, kernels_, scratch_, normed_.data(), T, layer.k, k_.data());
  cpu::MatMul(pool_, kernels_, scratch_, normed_.data(), T, layer.v, v_.data());
  ForRows(T, [&](int64_t b, int64_t e) {
    const int64_t half = static_cast<int64_t>(inv_freq_.size());
    if (!layer.q_bias.empty()) {
      cpu::AddBias(q_.data() + b * c.q_size(), e - b, c.q_size(), layer.q_bias.data());
      cpu::AddBias(k_.data() + b * c.kv_size(), e - b, c.kv_size(), layer.k_bias.data());
      cpu::AddBias(v_.data() + b * c.kv_size(), e - b, c.kv_size(), layer.v_bias.data());
    }
    cpu::ApplyRope(q_.data() + b * c.q_size(), e - b, c.q_size(), c.num_attention_heads, c.head_dim,
                   cos_.data() + b * half, sin_.data() + b * half);
    cpu::ApplyRope(k_.data() + b * c.kv_size(), e - b, c.kv_size(), c.num_key_value_heads,
                   c.head_dim, cos_.data() + b * half, sin_.data() + b * half);
  });
  cpu::WriteKv(batch, shape_, k_.data(), v_.data(), layer.k_cache.data(), layer.v_cache.data());
  cpu::PagedAttention(pool_, kernels_, batch, token_sequence_, shape_, q_.data(),
                      layer.k_cache.data(), layer.v_cache.data(), scores_, attn_.data());
  cpu::MatMul(pool_, kernels_, scratch_, attn_.data(), T, layer.o, proj_.data());
  if (absl::Status s = AllReduce(proj_, T); !s.ok()) return s;
  ForRows(T, [&](int64_t b, int64_t e) {
    cpu::AddInPlace(hidden_.data() + b * H, proj_.data() + b * H, (e - b) * H);
    cpu::RmsNorm(kernels_, hidden_.data() + b * H, e - b, H, layer.post_norm.data(), eps,
                 normed_.data() + b * H);
  });
  cpu::MatMul(pool_, kernels_, scratch_, normed_.data(), T, layer.gate, gate_.data());
  cpu::MatMul(pool_, kernels_, scratch_, normed_.data(), T, layer.up, up_.data());
  ForRows(T, [&](int64_t b, int64_t e) {
    cpu::SiluMul(gate_.data() + b * I, up_.data() + b * I, (e - b) * I, gate_.data() + b * I);
  });
  cpu::MatMul(pool_, kernels_, scratch_, gate_.data(), T, layer.down, proj_.data());
  if (absl::Status s = AllReduce(proj_, T); !s.ok()) return s;
  ForRows(T, [&](int64_t b, int64_t e) {
    cpu::AddInPlace(hidden_.data() + b * H, proj_.data() + b * H, (e - b) * H);
  });
  return absl::OkStatus();
}

CpuBackend::CpuBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CpuBackend::~CpuBackend() = default;

namespace {

// Checks what Create and CreateRank share, for the whole model's `config`
// and a rank's `local` shapes (the same for one rank), then runs `make`
// (which allocates the pool and every per-step buffer), mapping running out
// of memory or threads to ResourceExhausted: a request the machine cannot
// hold is a configuration problem to report, not a crash.
template <class Make>
absl::StatusOr<std::unique_ptr<CpuBackend>> CheckedCreate(const ModelConfig& config,
                                                          const ModelConfig& local,
                                                          const CpuBackendOptions& options,
                                                          Make make) {
  if (config.head_dim % 2 != 0)
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim ", config.head_dim, " is odd; RoPE needs pairs"));
  const ModelConfig& c = local;
  const std::optional<int64_t> pool_bytes =
      CheckedProduct(c.num_hidden_layers, 2, c.num_key_value_heads, c.head_dim, sizeof(float),
                     options.num_blocks, options.block_size);
  if (!pool_bytes)
    return absl::InvalidArgumentError(absl::StrCat("KV cache of ", options.num_blocks,
                                                   " blocks of ", options.block_size,
                                                   " tokens overflows int64 bytes for this model"));
  const std::optional<int64_t> activation_bytes = CheckedProduct(
      options.max_num_batched_tokens,
      3 * c.hidden_size + 2 * c.q_size() + 2 * c.kv_size() + 2 * c.intermediate_size + c.head_dim,
      sizeof(float));
  if (!activation_bytes)
    return absl::InvalidArgumentError(absl::StrCat("activations for max_num_batched_tokens ",
                                                   options.max_num_batched_tokens,
                                                   " overflow int64 bytes for this model"));
  try {
    return make();
  } catch (const std::bad_alloc&) {
  } catch (const std::length_error&) {
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start ", options.num_threads, " CPU threads: ", e.what()));
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "cannot allocate the CPU KV cache of ", *pool_bytes, " bytes (", options.num_blocks,
      " blocks of ", options.block_size, " tokens) and ", *activation_bytes,
      " bytes of activations for max_num_batched_tokens ", options.max_num_batched_tokens));
}

absl::Status CheckBoundLayers(const LoadedModel& model) {
  if (model.weights.layers.size() != static_cast<size_t>(model.config.num_hidden_layers))
    return absl::InvalidArgumentError(absl::StrCat("model has ", model.weights.layers.size(),
                                                   " bound layers, config says ",
                                                   model.config.num_hidden_layers));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(LoadedModel model,
                                                               const CpuBackendOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  if (absl::Status s = model.config.Validate(); !s.ok()) return s;
  if (absl::Status s = CheckBoundLayers(model); !s.ok()) return s;
  const ModelConfig config = model.config;
  return CheckedCreate(config, config, options, [&] {
    return std::unique_ptr<CpuBackend>(
        new CpuBackend(std::make_unique<Impl>(std::move(model), options)));
  });
}

absl::StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::CreateRank(
    const LoadedModel& model, Communicator& communicator, const CpuBackendOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  if (absl::Status s = model.config.Validate(); !s.ok()) return s;
  if (absl::Status s = CheckBoundLayers(model); !s.ok()) return s;
  absl::StatusOr<ShardLayout> layout =
      MakeShardLayout(model.config, communicator.rank(), communicator.size());
  if (!layout.ok()) return layout.status();
  return CheckedCreate(model.config, layout->LocalConfig(model.config), options,
                       [&]() -> absl::StatusOr<std::unique_ptr<CpuBackend>> {
                         absl::StatusOr<ShardWeights> shard =
                             ShardModelWeights(model.config, model.weights, *layout);
                         if (!shard.ok()) return shard.status();
                         return std::unique_ptr<CpuBackend>(new CpuBackend(std::make_unique<Impl>(
                             model.config, std::move(*shard), *layout, communicator, options)));
                       });
}

const ModelConfig& CpuBackend::config() const { return impl_->config(); }
KvCacheGeometry CpuBackend::kv_cache() const { return impl_->kv_cache(); }
int32_t CpuBackend::max_num_batched_tokens() const { return impl_->max_num_batched_tokens(); }
absl::Status CpuBackend::Forward(const StepBatch& batch, std::span<float> logits) {
  // Every buffer is preallocated, so nothing below is expected to throw; this
  // keeps the no-exceptions-escape rule should that ever change.
  try {
    return impl_->Forward(batch, logits);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory during the CPU forward pass");
  }
}

}  // namespace muserve
