#include "bench/machine_limits.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace muserve::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Runs fn(worker) on num_threads threads started together; returns seconds.
template <class Fn>
double TimeOnThreads(int num_threads, Fn fn) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < num_threads; ++w) {
    threads.emplace_back([&, w] {
      ready.fetch_add(1);
      while (!go.load()) {
      }
      fn(w);
    });
  }
  while (ready.load() != num_threads) {
  }
  const auto start = Clock::now();
  go.store(true);
  for (auto& t : threads) t.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

__attribute__((target("avx512f"))) uint64_t ReadAvx512(const std::byte* p, int64_t bytes) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i + 256 <= bytes; i += 256) {
    a0 = _mm512_add_epi32(a0, _mm512_load_si512(p + i));
    a1 = _mm512_add_epi32(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_add_epi32(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_add_epi32(a3, _mm512_load_si512(p + i + 192));
  }
  // Stored and summed by hand: GCC 12's _mm512_reduce_* trip -Wuninitialized.
  alignas(64) uint32_t lanes[16];
  _mm512_store_si512(lanes, _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)));
  uint64_t sum = 0;
  for (uint32_t l : lanes) sum += l;
  return sum;
}

uint64_t ReadPortable(const std::byte* p, int64_t bytes) {
  const auto* q = reinterpret_cast<const uint64_t*>(p);
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int64_t i = 0; i + 4 <= bytes / 8; i += 4) {
    s0 += q[i];
    s1 += q[i + 1];
    s2 += q[i + 2];
    s3 += q[i + 3];
  }
  return s0 + s1 + s2 + s3;
}

constexpr int kChains = 16;

__attribute__((target("avx512f"))) float FmaAvx512(int64_t iterations) {
  __m512 acc[kChains];
#pragma GCC unroll 16
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(0.001f * j);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
    // Keeps the compiler from folding iterations together.
    __asm__ volatile(""
                     : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]), "+v"(acc[4]),
                       "+v"(acc[5]), "+v"(acc[6]), "+v"(acc[7]));
  }
  float out = 0;
  alignas(64) float lanes[16];
  for (int j = 0; j < kChains; ++j) {
    _mm512_store_ps(lanes, acc[j]);
    for (float l : lanes) out += l;
  }
  return out;
}

__attribute__((target("avx2,fma"))) float FmaAvx2(int64_t iterations) {
  __m256 acc[kChains / 2];
#pragma GCC unroll 16
  for (int j = 0; j < kChains / 2; ++j) acc[j] = _mm256_set1_ps(0.001f * j);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains / 2; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
    __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]));
  }
  float out = 0;
  alignas(32) float lanes[8];
  for (int j = 0; j < kChains / 2; ++j) {
    _mm256_store_ps(lanes, acc[j]);
    for (float l : lanes) out += l;
  }
  return out;
}

bool HasAvx512() { return __builtin_cpu_supports("avx512f"); }
bool HasAvx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

}  // namespace

double MeasureReadBandwidth(int num_threads, int64_t buffer_bytes, int passes) {
  buffer_bytes = buffer_bytes / (256 * num_threads) * (256 * num_threads);
  auto* raw = static_cast<std::byte*>(std::aligned_alloc(64, buffer_bytes));
  std::unique_ptr<std::byte, decltype(&std::free)> buffer(raw, &std::free);
  const int64_t per_thread = buffer_bytes / num_threads;
  // First touch by the thread that reads the range (NUMA placement).
  TimeOnThreads(num_threads, [&](int w) { std::memset(raw + w * per_thread, w + 1, per_thread); });
  std::atomic<uint64_t> sink{0};
  double best = 0;
  for (int p = 0; p < passes; ++p) {
    const double seconds = TimeOnThreads(num_threads, [&](int w) {
      const std::byte* begin = raw + w * per_thread;
      sink += HasAvx512() ? ReadAvx512(begin, per_thread) : ReadPortable(begin, per_thread);
    });
    best = std::max(best, static_cast<double>(buffer_bytes) / seconds);
  }
  return sink.load() == 1 ? best + 0 : best;
}

double MeasureFmaPeak(int num_threads, int passes) {
  const int64_t iterations = 20'000'000;
  const int lanes = HasAvx512() ? 16 : HasAvx2() ? 8 : 1;
  const int chains = HasAvx512() ? kChains : HasAvx2() ? kChains / 2 : kChains;
  std::atomic<int64_t> sink{0};
  double best = 0;
  for (int p = 0; p < passes; ++p) {
    const double seconds = TimeOnThreads(num_threads, [&](int) {
      float r = 0;
      if (HasAvx512()) {
        r = FmaAvx512(iterations);
      } else if (HasAvx2()) {
        r = FmaAvx2(iterations);
      } else {
        float acc[kChains] = {};
        for (int64_t i = 0; i < iterations; ++i)
          for (float& a : acc) a = a * 0.999999f + 1e-7f;
        for (float a : acc) r += a;
      }
      sink += static_cast<int64_t>(r);
    });
    const double flops = 2.0 * lanes * chains * static_cast<double>(iterations) * num_threads;
    best = std::max(best, flops / seconds);
  }
  return sink.load() == -1 ? best + 0 : best;
}

const char* FmaPeakIsa() { return HasAvx512() ? "avx512" : HasAvx2() ? "avx2" : "scalar"; }

}  // namespace muserve::bench
