// kernel_bench: single bf16 projections of the 1b shape (TinyLlama's MLP,
// 5632 x 2048 and 2048 x 5632) against the measured limits, for tuning the
// CPU kernels without building a whole model.
//
// Usage: kernel_bench [--threads N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bench/machine_limits.h"
#include "engine/api/dtype.h"
#include "engine/cpu/kernel_table.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/thread_pool.h"

namespace muserve::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int RunMicro(int threads, double bandwidth, double peak) {
  const int64_t K = 2048, N = 5632;
  // Weights for many distinct projections, so M = 1 streams from memory and
  // not from a large last-level cache.
  const int64_t copies = std::max<int64_t>(2, (int64_t{1} << 30) / (N * K * 2));
  std::vector<uint16_t> w(static_cast<size_t>(copies * N * K));
  std::mt19937 rng(1);
  for (auto& x : w)
    x = F32ToBf16(static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f);
  std::vector<float> x(512 * K, 0.5f), y(512 * N);
  const cpu::KernelTable& kernels = cpu::KernelsFor(cpu::BestIsa());
  cpu::ThreadPool pool(threads);
  cpu::MatMulScratch scratch(threads);
  auto matrix = [&](int64_t i) {
    return cpu::WeightMatrix{w.data() + (i % copies) * N * K, DType::kBF16, N, K};
  };
  for (int64_t i = 0; i < copies; ++i)
    cpu::MatMul(pool, kernels, scratch, x.data(), 1, matrix(i), y.data());
  auto start = Clock::now();
  const int reps = static_cast<int>(copies * 2);
  for (int i = 0; i < reps; ++i)
    cpu::MatMul(pool, kernels, scratch, x.data(), 1, matrix(i), y.data());
  double s = Seconds(start);
  const double gbs = reps * N * K * 2.0 / s;
  std::printf("matmul M=1 bf16 %lldx%lld: %.2f GB/s, ratio to bandwidth %.3f\n",
              static_cast<long long>(N), static_cast<long long>(K), gbs / 1e9, gbs / bandwidth);
  for (int64_t M : {8, 64, 512}) {
    for (auto [n, k] : {std::pair<int64_t, int64_t>{N, K}, std::pair<int64_t, int64_t>{K, N}}) {
      const cpu::WeightMatrix m{w.data(), DType::kBF16, n, k};
      cpu::MatMul(pool, kernels, scratch, x.data(), M, m, y.data());
      s = 1e30;  // best of 3: the machine is shared
      for (int rep = 0; rep < 3; ++rep) {
        start = Clock::now();
        cpu::MatMul(pool, kernels, scratch, x.data(), M, m, y.data());
        s = std::min(s, Seconds(start));
      }
      const double fl = 2.0 * M * n * k / s;
      std::printf("matmul M=%lld bf16 %lldx%lld: %.1f GFLOP/s, ratio to peak %.3f\n",
                  static_cast<long long>(M), static_cast<long long>(n), static_cast<long long>(k),
                  fl / 1e9, fl / peak);
    }
  }
  return 0;
}

}  // namespace
}  // namespace muserve::bench

int main(int argc, char** argv) {
  int threads = 2;
  if (argc == 3 && std::string(argv[1]) == "--threads") threads = std::atoi(argv[2]);
  if (threads < 1) return 2;
  const double bandwidth = muserve::bench::MeasureReadBandwidth(threads, int64_t{1} << 30, 3);
  const double peak = muserve::bench::MeasureFmaPeak(threads, 3);
  std::printf("threads %d: read bandwidth %.2f GB/s, fp32 FMA peak %.1f GFLOP/s (%s)\n", threads,
              bandwidth / 1e9, peak / 1e9, muserve::bench::FmaPeakIsa());
  return muserve::bench::RunMicro(threads, bandwidth, peak);
}
