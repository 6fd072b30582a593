#include "bench/bench_steps.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

#include "engine/api/dtype.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"

namespace muserve::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Sequences with contiguous blocks handed out in order (the bench needs no reuse).
class Steps {
 public:
  explicit Steps(int32_t block_size) : block_size_(block_size) {}

  int Add() {
    lengths_.push_back(0);
    tables_.emplace_back();
    return static_cast<int>(lengths_.size()) - 1;
  }

  void Append(StepBatch& batch, int seq, const std::vector<int32_t>& tokens, bool sample) {
    StepSequence s;
    s.query_start = batch.num_tokens();
    s.query_len = static_cast<int32_t>(tokens.size());
    for (int32_t token : tokens) {
      const int32_t pos = lengths_[seq]++;
      if (pos % block_size_ == 0) tables_[seq].push_back(next_block_++);
      batch.tokens.push_back(token);
      batch.positions.push_back(pos);
      batch.slot_mapping.push_back(int64_t{tables_[seq][pos / block_size_]} * block_size_ +
                                   pos % block_size_);
    }
    s.context_len = lengths_[seq];
    s.block_table = tables_[seq];
    s.sample = sample;
    batch.sequences.push_back(std::move(s));
  }

  int32_t length(int seq) const { return lengths_[seq]; }

 private:
  int32_t block_size_;
  int32_t next_block_ = 0;
  std::vector<int32_t> lengths_;
  std::vector<std::vector<int32_t>> tables_;
};

std::vector<int32_t> Tokens(int n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % vocab);
  return t;
}

// Decodes `batch` sequences (each prefilled with `prompt` tokens) for `steps`
// timed steps; returns tokens/s and the mean bytes read per step.
struct DecodeResult {
  double tokens_per_s;
  double bytes_per_step;
};

DecodeResult Decode(CpuBackend& backend, Steps& steps, int batch, int prompt, int steps_timed,
                    double weight_bytes) {
  const ModelConfig& c = backend.config();
  std::vector<int> seqs;
  StepBatch prefill;
  for (int b = 0; b < batch; ++b) {
    seqs.push_back(steps.Add());
    steps.Append(prefill, seqs.back(), Tokens(prompt, c.vocab_size, 100 + b), true);
  }
  std::vector<float> logits(static_cast<size_t>(batch) * c.vocab_size);
  if (!backend.Forward(prefill, logits).ok()) return {0, 0};
  const double kv_bytes_per_token = static_cast<double>(CpuKvBytesPerToken(c));
  double seconds = 0, bytes = 0;
  for (int i = -2; i < steps_timed; ++i) {  // two untimed warm-up steps
    StepBatch step;
    for (int b = 0; b < batch; ++b) {
      const float* row = logits.data() + static_cast<size_t>(b) * c.vocab_size;
      const int32_t next = static_cast<int32_t>(std::max_element(row, row + c.vocab_size) - row);
      steps.Append(step, seqs[b], {next}, true);
    }
    const auto start = Clock::now();
    if (!backend.Forward(step, logits).ok()) return {0, 0};
    if (i < 0) continue;
    seconds += Seconds(start);
    bytes += weight_bytes;
    for (int s : seqs) bytes += kv_bytes_per_token * steps.length(s);
  }
  return {batch * steps_timed / seconds, bytes / steps_timed};
}

}  // namespace

int RunModel(const std::filesystem::path& model_dir, int threads, double bandwidth, double peak) {
  absl::StatusOr<LoadedModel> model = LoadModel(model_dir);
  if (!model.ok()) {
    std::fprintf(stderr, "LoadModel: %s\n", model.status().ToString().c_str());
    return 1;
  }
  const ModelConfig c = model->config;
  // Bytes a decode step reads from the weights: every projection and norm,
  // the LM head, and one embedding row per token (the table itself is not read).
  double weight_bytes = 0, matmul_params = 0;
  for (const LayerWeights& l : model->weights.layers) {
    for (const TensorView* t :
         {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj}) {
      weight_bytes += static_cast<double>(t->num_bytes);
      matmul_params += static_cast<double>(t->num_elements());
    }
    weight_bytes +=
        static_cast<double>(l.input_layernorm.num_bytes + l.post_attention_layernorm.num_bytes);
  }
  weight_bytes += static_cast<double>(model->weights.lm_head.num_bytes);
  weight_bytes += static_cast<double>(c.hidden_size * DTypeSize(model->weights.embed_tokens.dtype));
  std::printf("model: %s\n  %lld layers, hidden %lld, %s weights, %.3f GB read per decode step\n",
              model_dir.c_str(), static_cast<long long>(c.num_hidden_layers),
              static_cast<long long>(c.hidden_size),
              DTypeName(model->weights.layers.at(0).q_proj.dtype).data(), weight_bytes / 1e9);

  const int32_t block_size = 16;
  const int kPrompt = 32, kSteps1 = 16, kSteps8 = 8, kBatch = 8, kPrefill = 512;
  CpuBackendOptions options;
  options.num_threads = threads;
  options.block_size = block_size;
  options.num_blocks = ((kPrompt + kSteps1 + 2) / block_size + 1) +
                       kBatch * ((kPrompt + kSteps8 + 2) / block_size + 1) + kPrefill / block_size +
                       1;
  absl::StatusOr<std::unique_ptr<CpuBackend>> backend =
      CpuBackend::Create(*std::move(model), options);
  if (!backend.ok()) {
    std::fprintf(stderr, "CpuBackend::Create: %s\n", backend.status().ToString().c_str());
    return 1;
  }
  Steps steps(block_size);

  // Decode limits: the bandwidth bound (bytes read per step) and, once the
  // batch is large enough, the compute bound (FLOPs per token, context ~40).
  const double decode_flops_per_token =
      2.0 * matmul_params +
      2.0 * static_cast<double>(c.vocab_size) * static_cast<double>(c.hidden_size) +
      4.0 * static_cast<double>(c.num_hidden_layers * c.num_attention_heads * c.head_dim) *
          (kPrompt + kSteps1);
  auto report = [&](int batch, const DecodeResult& d) {
    const double memory_limit = batch * bandwidth / d.bytes_per_step;
    const double compute_limit = peak / decode_flops_per_token;
    const double limit = std::min(memory_limit, compute_limit);
    std::printf(
        "decode batch %d: %.2f tok/s; limit %.2f tok/s (%s-bound; bandwidth %.2f tok/s at %.3f "
        "GB/step, compute %.2f tok/s); ratio %.3f\n",
        batch, d.tokens_per_s, limit, memory_limit <= compute_limit ? "memory" : "compute",
        memory_limit, d.bytes_per_step / 1e9, compute_limit, d.tokens_per_s / limit);
  };
  report(1, Decode(**backend, steps, 1, kPrompt, kSteps1, weight_bytes));
  report(kBatch, Decode(**backend, steps, kBatch, kPrompt, kSteps8, weight_bytes));

  // Prefill: matmul FLOPs of every token, attention over the causal prefix,
  // and the LM head for the one sampled row.
  double flops = 2.0 * matmul_params * kPrefill +
                 2.0 * static_cast<double>(c.vocab_size) * static_cast<double>(c.hidden_size);
  const double attention_pairs = 0.5 * kPrefill * (kPrefill + 1.0);
  flops += 4.0 * static_cast<double>(c.num_hidden_layers * c.num_attention_heads * c.head_dim) *
           attention_pairs;
  StepBatch prefill;
  steps.Append(prefill, steps.Add(), Tokens(kPrefill, c.vocab_size, 7), true);
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));
  const auto start = Clock::now();
  if (absl::Status s = (*backend)->Forward(prefill, logits); !s.ok()) {
    std::fprintf(stderr, "prefill: %s\n", s.ToString().c_str());
    return 1;
  }
  const double seconds = Seconds(start);
  const double achieved = flops / seconds;
  std::printf(
      "prefill %d tokens: %.2f s, %.1f tok/s, %.1f GFLOP/s; peak %.1f GFLOP/s; ratio %.3f\n",
      kPrefill, seconds, kPrefill / seconds, achieved / 1e9, peak / 1e9, achieved / peak);
  return 0;
}

}  // namespace muserve::bench
