// cuda_kernel_bench: the paged attention kernel's decode throughput in GB/s
// of KV cache read, against the device's measured copy bandwidth (what a
// memory-bound kernel can at best reach). Llama-3-8B's attention shape per
// layer (32 query heads, 8 KV heads, head_dim 128, bf16, 16-token blocks in
// shuffled order), at several batch sizes and context lengths. Exits 0 with a
// message where no CUDA device is visible.
//
//   cuda_kernel_bench [--iterations N]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "bench/cuda_timing.h"
#include "cuda/cuda_status.h"
#include "cuda/kernels/paged_attention.h"

namespace muserve::cuda {
namespace {

// Device memory freed on scope exit.
class DeviceMemory {
 public:
  absl::Status Allocate(size_t bytes) {
    MUSERVE_GPU_RETURN_IF_ERROR(cudaMalloc(&data_, bytes));
    MUSERVE_GPU_RETURN_IF_ERROR(cudaMemset(data_, 0, bytes));
    return absl::OkStatus();
  }
  template <class T>
  absl::Status Upload(const std::vector<T>& host) {
    if (absl::Status s = Allocate(host.size() * sizeof(T)); !s.ok()) return s;
    MUSERVE_GPU_RETURN_IF_ERROR(
        cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    return absl::OkStatus();
  }
  ~DeviceMemory() { cudaFree(data_); }
  void* get() const { return data_; }

 private:
  void* data_ = nullptr;
};

// `batch` decodes of `context` keys each: KV GB/s and ms per launch.
absl::Status BenchDecode(int batch, int context, int num_sms, int iterations, double copy_bw) {
  const AttentionDims dims{32, 8, 128, 16, 0};
  const int blocks_per_seq = (context + dims.block_size - 1) / dims.block_size;
  const int num_blocks = batch * blocks_per_seq;
  std::vector<int32_t> perm(num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(1));
  std::vector<int32_t> query_lens(batch, 1), context_lens(batch, context), query_start(batch + 1);
  std::iota(query_start.begin(), query_start.end(), 0);
  absl::StatusOr<AttentionPlan> plan = PlanPagedAttention(query_lens, context_lens, dims, num_sms);
  if (!plan.ok()) return plan.status();

  const int64_t block_bytes = int64_t{dims.num_kv_heads} * dims.block_size * dims.head_dim * 2;
  DeviceMemory q, k, v, out, starts, contexts, tables, tile_seq, tile_begin, workspace;
  for (absl::Status s :
       {q.Allocate(size_t{2} * batch * dims.num_heads * dims.head_dim),
        out.Allocate(size_t{2} * batch * dims.num_heads * dims.head_dim),
        k.Allocate(static_cast<size_t>(num_blocks * block_bytes)),
        v.Allocate(static_cast<size_t>(num_blocks * block_bytes)), starts.Upload(query_start),
        contexts.Upload(context_lens), tables.Upload(perm), tile_seq.Upload(plan->tile_sequence),
        tile_begin.Upload(plan->tile_query_begin),
        workspace.Allocate(
            static_cast<size_t>(std::max<int64_t>(plan->WorkspaceBytes(batch, dims), 4)))})
    if (!s.ok()) return s;
  PagedAttentionArgs args;
  args.dtype = DType::kBF16;
  args.dims = dims;
  args.q = q.get();
  args.k_cache = k.get();
  args.v_cache = v.get();
  args.out = out.get();
  args.num_tokens = batch;
  args.query_start = static_cast<const int32_t*>(starts.get());
  args.context_lens = static_cast<const int32_t*>(contexts.get());
  args.block_tables = static_cast<const int32_t*>(tables.get());
  args.max_blocks_per_sequence = blocks_per_seq;
  args.tile_sequence = static_cast<const int32_t*>(tile_seq.get());
  args.tile_query_begin = static_cast<const int32_t*>(tile_begin.get());
  args.workspace = workspace.get();
  absl::StatusOr<double> ms =
      TimeMs(iterations, [&] { return LaunchPagedAttention(args, *plan, nullptr); });
  if (!ms.ok()) return ms.status();
  const double kv_bytes = 2.0 * batch * context * dims.num_kv_heads * dims.head_dim * 2;
  const double gbps = kv_bytes / (*ms * 1e-3) / 1e9;
  std::printf("decode batch %4d context %6d  splits %2d  %8.3f ms  %7.1f GB/s  %5.1f%% of copy\n",
              batch, context, plan->num_splits, *ms, gbps, 100.0 * gbps * 1e9 / copy_bw);
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  int iterations = 20;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
      iterations = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: cuda_kernel_bench [--iterations N]\n");
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("cuda_kernel_bench: no CUDA device; nothing to measure\n");
    return 0;
  }
  cudaDeviceProp prop;
  int num_sms = 0;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess ||
      cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0) != cudaSuccess) {
    std::fprintf(stderr, "cuda_kernel_bench: cannot query device 0\n");
    return 1;
  }
  absl::StatusOr<double> copy_bw = CopyBandwidth(int64_t{1} << 30, iterations);
  if (!copy_bw.ok()) {
    std::fprintf(stderr, "cuda_kernel_bench: %s\n", copy_bw.status().ToString().c_str());
    return 1;
  }
  std::printf("%s, %d SMs: device copy %.1f GB/s (read + write)\n", prop.name, num_sms,
              *copy_bw / 1e9);
  const int shapes[][2] = {{1, 32768}, {8, 8192}, {32, 4096}, {128, 2048}, {256, 1024}};
  for (const auto& [batch, context] : shapes) {
    if (absl::Status s = BenchDecode(batch, context, num_sms, iterations, *copy_bw); !s.ok()) {
      std::fprintf(stderr, "cuda_kernel_bench: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace muserve::cuda

int main(int argc, char** argv) { return muserve::cuda::Main(argc, argv); }
