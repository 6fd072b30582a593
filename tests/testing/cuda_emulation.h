// A host emulation of one CUDA thread block, enough to run a kernel written
// in the subset the sampling kernel (cuda/kernels/sampling_kernel.cuh) uses:
// threadIdx / blockIdx, __shared__ (function statics), __syncthreads, the
// warp shuffles, shared-memory atomicMin / atomicMax and the round-to-nearest
// float intrinsics. Each thread of the block is an OS thread; __syncthreads
// is a barrier of the block and a shuffle two barriers of its warp. Blocks
// run one after another. Slow (use blocks of 32-128 threads and small rows),
// but it runs the kernel's own code, on machines without a device.
//
// Include it before the kernel, in a translation unit that includes no CUDA
// header, compiled with -ffp-contract=off (the intrinsics' single roundings).
#pragma once

#include <math.h>

#include <atomic>
#include <barrier>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace muserve::cuda_emulation {

struct Dim3 {
  unsigned x = 0;
  unsigned y = 0;
  unsigned z = 0;
};

// The block being run: its barrier, its warps' barriers, and one 64-bit slot
// per thread through which shuffles pass values.
struct Block {
  std::unique_ptr<std::barrier<>> barrier;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<uint64_t> slots;
};
inline Block* current_block = nullptr;

}  // namespace muserve::cuda_emulation

inline thread_local muserve::cuda_emulation::Dim3 threadIdx;
inline thread_local muserve::cuda_emulation::Dim3 blockIdx;

#define __device__
#define __global__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(threads)

inline void __syncthreads() { muserve::cuda_emulation::current_block->barrier->arrive_and_wait(); }

namespace muserve::cuda_emulation {

// Every lane of the warp publishes `value`, then reads lane `source`'s.
template <class T>
T Exchange(T value, unsigned source) {
  static_assert(sizeof(T) <= sizeof(uint64_t));
  Block& block = *current_block;
  const unsigned warp = threadIdx.x / 32;
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  block.slots[threadIdx.x] = bits;
  block.warps[warp]->arrive_and_wait();
  const uint64_t other = block.slots[warp * 32 + source];
  block.warps[warp]->arrive_and_wait();  // Before anyone's next publish.
  T out;
  std::memcpy(&out, &other, sizeof(T));
  return out;
}

// Runs kernel() on `threads` threads (a multiple of 32) for each of `blocks`
// blocks in turn.
template <class Kernel>
void Launch(unsigned blocks, unsigned threads, Kernel kernel) {
  for (unsigned b = 0; b < blocks; ++b) {
    Block block;
    block.barrier = std::make_unique<std::barrier<>>(threads);
    for (unsigned w = 0; w < threads / 32; ++w) {
      block.warps.push_back(std::make_unique<std::barrier<>>(32));
    }
    block.slots.assign(threads, 0);
    current_block = &block;
    std::vector<std::thread> workers;
    workers.reserve(threads);
    for (unsigned t = 0; t < threads; ++t) {
      workers.emplace_back([t, b, &kernel] {
        threadIdx = Dim3{t, 0, 0};
        blockIdx = Dim3{b, 0, 0};
        kernel();
      });
    }
    for (std::thread& worker : workers) worker.join();
    current_block = nullptr;
  }
}

}  // namespace muserve::cuda_emulation

template <class T>
T __shfl_xor_sync(unsigned /*mask*/, T value, int lane_mask) {
  return muserve::cuda_emulation::Exchange(value, (threadIdx.x % 32) ^ lane_mask);
}
template <class T>
T __shfl_up_sync(unsigned /*mask*/, T value, unsigned delta) {
  const unsigned lane = threadIdx.x % 32;
  return muserve::cuda_emulation::Exchange(value, lane >= delta ? lane - delta : lane);
}

inline int atomicMin(int* address, int value) {
  std::atomic_ref<int> a(*address);
  int old = a.load();
  while (value < old && !a.compare_exchange_weak(old, value)) {
  }
  return old;
}
inline int atomicMax(int* address, int value) {
  std::atomic_ref<int> a(*address);
  int old = a.load();
  while (value > old && !a.compare_exchange_weak(old, value)) {
  }
  return old;
}

inline int min(int a, int b) { return a < b ? a : b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline unsigned __float_as_uint(float v) { return std::bit_cast<unsigned>(v); }
inline float __uint_as_float(unsigned v) { return std::bit_cast<float>(v); }
inline int __float2int_rz(float v) { return static_cast<int>(v); }
inline float __int2float_rn(int v) { return static_cast<float>(v); }
