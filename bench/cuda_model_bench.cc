// cuda_model_bench: the CUDA backend on a Llama-3-8B-shaped model with random
// BF16 weights generated on the GPU (hidden 4096, 32 layers, 32 heads, 8 KV
// heads, intermediate 14336, vocab 128256), against the hardware limits
// measured in the same run:
//   - copy bandwidth: a device-to-device cudaMemcpy of 4 GiB (bytes read +
//     written per second);
//   - BF16 matrix peak: an 8192^3 cuBLASLt GEMM with fp32 accumulation.
// Figures:
//   1. batch-1 decode at a 1k context: tokens/s, and the fraction of the
//      bandwidth limit, copy bandwidth / bytes one step must read (weights
//      + the context's KV);
//   2. decode throughput at batch 64 and 256 with 1k-token contexts;
//   3. prefill of one 4k prompt: the fraction of the matrix peak
//      (2 x parameters x tokens + causal attention FLOPs, per second).
// Steps go through ForwardSample (greedy), as the server runs them: decode
// steps replay CUDA graphs. Exits 0 with a message where no device is visible.
//
//   cuda_model_bench [--layers N] [--iterations N]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/cuda_timing.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_status.h"
#include "cuda/device_buffer.h"
#include "cuda/gemm.h"
#include "cuda/weight_upload.h"
#include "engine/sampling/sampler.h"

namespace muserve::cuda {
namespace {

using Clock = std::chrono::steady_clock;

ModelConfig Llama3_8B(int32_t layers) {
  ModelConfig c;
  c.architecture = Architecture::kLlama;
  c.hidden_size = 4096;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  c.intermediate_size = 14336;
  c.vocab_size = 128256;
  c.max_position_embeddings = 8192;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  c.torch_dtype = DType::kBF16;
  return c;
}

int64_t Parameters(const ModelConfig& c) {
  const int64_t per_layer = c.hidden_size * (c.q_size() + 2 * c.kv_size()) +
                            c.q_size() * c.hidden_size + 3 * c.hidden_size * c.intermediate_size;
  return c.num_hidden_layers * per_layer + 2 * c.vocab_size * c.hidden_size;
}

absl::StatusOr<double> MatrixPeak() {
  const int64_t n = 8192;
  absl::StatusOr<DeviceBuffer> a = DeviceBuffer::Allocate(n * n * 2);
  absl::StatusOr<DeviceBuffer> w = DeviceBuffer::Allocate(n * n * 2);
  absl::StatusOr<DeviceBuffer> out = DeviceBuffer::Allocate(n * n * 2);
  for (const auto* buffer : {&a, &w, &out})
    if (!buffer->ok()) return buffer->status();
  for (const auto* buffer : {&a, &w})
    if (absl::Status s = FillRandom(DType::kBF16, (**buffer).get(), n * n, 1, 1.0f, nullptr);
        !s.ok())
      return s;
  absl::StatusOr<std::unique_ptr<GemmRunner>> gemm = GemmRunner::Create(nullptr);
  if (!gemm.ok()) return gemm.status();
  GemmArgs g;
  g.a = a->get();
  g.lda = n;
  g.w = w->get();
  g.out = out->get();
  g.ldo = n;
  g.m = g.n = g.k = n;
  absl::StatusOr<double> ms = TimeMs(20, [&] { return (*gemm)->Run(g); });
  if (!ms.ok()) return ms.status();
  return 2.0 * static_cast<double>(n) * n * n / (*ms * 1e-3);
}

// Sequences of `context` tokens each, in contiguous blocks: s owns blocks
// [s * per_seq, (s + 1) * per_seq).
class Batches {
 public:
  Batches(int32_t block_size, int32_t context) : block_size_(block_size), context_(context) {}
  int32_t blocks_per_sequence() const { return (context_ + 1 + block_size_ - 1) / block_size_; }

  // Sequence s's tokens [begin, end) as one chunk.
  void AddChunk(StepBatch& batch, int32_t s, int32_t begin, int32_t end, bool sample) const {
    StepSequence seq;
    seq.query_start = batch.num_tokens();
    seq.query_len = end - begin;
    seq.context_len = end;
    seq.sample = sample;
    for (int32_t b = 0; b < (end + block_size_ - 1) / block_size_; ++b)
      seq.block_table.push_back(s * blocks_per_sequence() + b);
    for (int32_t p = begin; p < end; ++p) {
      batch.tokens.push_back((p * 7919 + s * 104729) % 128000);
      batch.positions.push_back(p);
      batch.slot_mapping.push_back(int64_t{seq.block_table[p / block_size_]} * block_size_ +
                                   p % block_size_);
    }
    batch.sequences.push_back(std::move(seq));
  }

 private:
  int32_t block_size_;
  int32_t context_;
};

absl::Status Step(CudaBackend& backend, const StepBatch& batch) {
  static const SamplingParams greedy = [] {
    SamplingParams p;
    p.temperature = 0;
    return p;
  }();
  static const TokenHistory history;
  const int32_t rows = batch.num_sampled();
  std::vector<SampleInput> inputs(rows, SampleInput{&greedy, &history, {}, 0.0});
  std::vector<SampledToken> out(rows);
  return backend.ForwardSample(batch, inputs, out);
}

// Fills sequences [0, n) up to `context` tokens with prefill steps of at
// most `chunk` tokens.
absl::Status Prefill(CudaBackend& backend, const Batches& batches, int32_t n, int32_t context,
                     int32_t chunk) {
  StepBatch batch;
  for (int32_t s = 0; s < n; ++s) {
    for (int32_t begin = 0; begin < context;) {
      const int32_t room = chunk - batch.num_tokens();
      const int32_t end = std::min(context, begin + room);
      batches.AddChunk(batch, s, begin, end, end == context);
      begin = end;
      if (batch.num_tokens() == chunk) {
        if (absl::Status st = Step(backend, batch); !st.ok()) return st;
        batch = StepBatch();
      }
    }
  }
  if (batch.num_tokens() > 0) return Step(backend, batch);
  return absl::OkStatus();
}

// Seconds per decode step of n sequences at `context` (each step re-decodes
// position `context`, so the context stays fixed).
absl::StatusOr<double> DecodeSeconds(CudaBackend& backend, const Batches& batches, int32_t n,
                                     int32_t context, int iterations) {
  StepBatch batch;
  for (int32_t s = 0; s < n; ++s) batches.AddChunk(batch, s, context, context + 1, true);
  if (absl::Status st = Step(backend, batch); !st.ok()) return st;
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < iterations; ++i)
    if (absl::Status st = Step(backend, batch); !st.ok()) return st;
  return std::chrono::duration<double>(Clock::now() - start).count() / iterations;
}

int Run(int32_t layers, int iterations) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("cuda_model_bench: no CUDA device visible; nothing measured\n");
    return 0;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  auto fail = [](const char* what, const absl::Status& s) {
    std::fprintf(stderr, "cuda_model_bench: %s: %s\n", what, s.ToString().c_str());
    return 1;
  };
  absl::StatusOr<double> bandwidth = CopyBandwidth(int64_t{4} << 30, 10);
  if (!bandwidth.ok()) return fail("copy bandwidth", bandwidth.status());
  absl::StatusOr<double> peak = MatrixPeak();
  if (!peak.ok()) return fail("matrix peak", peak.status());
  std::printf("device: %s, %d SMs, %.1f GiB\n", prop.name, prop.multiProcessorCount,
              static_cast<double>(prop.totalGlobalMem) / (1 << 30));
  std::printf("measured copy bandwidth: %.0f GB/s; BF16 GEMM 8192^3: %.0f TFLOP/s\n",
              *bandwidth / 1e9, *peak / 1e12);

  const ModelConfig config = Llama3_8B(layers);
  const int32_t context = 1024;
  CudaBackendOptions options;
  options.max_num_batched_tokens = 4096;
  options.max_num_seqs = 256;
  options.max_graph_batch = 256;
  options.gpu_memory_utilization = 0.9;
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend =
      CudaBackend::CreateRandom(config, options, /*seed=*/1);
  if (!backend.ok()) return fail("backend", backend.status());
  CudaBackend& b = **backend;
  const CudaMemoryReport& report = b.memory_report();
  std::printf(
      "model: %d layers, %.2f B parameters, %.2f GB of weights; KV pool %.1f GB (%lld "
      "tokens); %d CUDA graphs\n",
      layers, static_cast<double>(Parameters(config)) / 1e9,
      static_cast<double>(report.weight_bytes) / 1e9, static_cast<double>(report.kv_bytes) / 1e9,
      static_cast<long long>(report.kv_bytes / report.kv_bytes_per_token), report.num_graphs);
  const Batches batches(options.block_size, context);
  if (int64_t{256} * batches.blocks_per_sequence() > b.kv_cache().num_blocks)
    return fail("KV pool", absl::ResourceExhaustedError("too small for 256 x 1k contexts"));

  // Prefill of one 4k prompt (sequence 0's blocks run past its 1k share:
  // this prompt gets a layout of its own, over the blocks of sequences 0-3).
  const Batches long_prompt(options.block_size, 4096 - 1);
  StepBatch prompt;
  long_prompt.AddChunk(prompt, 0, 0, 4096, true);
  const int prefill_iterations = std::max(2, iterations / 10);
  const Clock::time_point t0 = Clock::now();
  for (int i = 0; i <= prefill_iterations; ++i)
    if (absl::Status s = Step(b, prompt); !s.ok()) return fail("prefill", s);
  const double prefill_s =
      std::chrono::duration<double>(Clock::now() - t0).count() / (prefill_iterations + 1);
  const double T = 4096;
  const double attention_flops = 4.0 * config.num_hidden_layers * config.num_attention_heads *
                                 config.head_dim * (T * (T + 1) / 2);
  // The embedding is a gather, and the LM head runs for the one sampled row.
  const double vh = static_cast<double>(config.vocab_size) * config.hidden_size;
  const double prefill_flops =
      2.0 * (static_cast<double>(Parameters(config)) - 2 * vh) * T + 2 * vh + attention_flops;
  std::printf("prefill 4096 tokens: %.1f ms, %.0f TFLOP/s = %.3f of the measured BF16 peak\n",
              prefill_s * 1e3, prefill_flops / prefill_s / 1e12, prefill_flops / prefill_s / *peak);

  if (absl::Status s = Prefill(b, batches, 256, context, options.max_num_batched_tokens); !s.ok())
    return fail("prefill of the decode contexts", s);
  const double kv_per_token = static_cast<double>(report.kv_bytes_per_token);
  for (int32_t n : {1, 64, 256}) {
    absl::StatusOr<double> seconds = DecodeSeconds(b, batches, n, context, iterations);
    if (!seconds.ok()) return fail("decode", seconds.status());
    // What a step must read: every weight but the embedding table (n rows
    // of it), and each sequence's KV.
    const double bytes = static_cast<double>(report.weight_bytes) - 2 * vh +
                         n * 2.0 * config.hidden_size + n * (context + 1) * kv_per_token;
    const double limit_s = bytes / *bandwidth;
    std::printf(
        "decode batch %3d at context %d: %.2f ms/step, %.0f tokens/s; bandwidth limit "
        "%.2f ms/step -> %.3f of it\n",
        n, context, *seconds * 1e3, n / *seconds, limit_s * 1e3, limit_s / *seconds);
  }
  return 0;
}

}  // namespace
}  // namespace muserve::cuda

int main(int argc, char** argv) {
  int32_t layers = 32;
  int iterations = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--layers") == 0)
      layers = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--iterations") == 0)
      iterations = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: cuda_model_bench [--layers N] [--iterations N]\n");
      return 2;
    }
  }
  if (layers < 1 || iterations < 1) {
    std::fprintf(stderr, "cuda_model_bench: --layers and --iterations must be >= 1\n");
    return 2;
  }
  return muserve::cuda::Run(layers, iterations);
}
